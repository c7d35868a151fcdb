package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/app"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/registry"
)

// version is the module version the binary was built from, for the webhooks' User-Agent.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// roles says which parts a process runs.
type roles struct{ api, worker, dashboard bool }

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

func runService(ctx context.Context, getenv func(string) string, stderr io.Writer, r roles) error {
	cfg, err := loadConfig(getenv, r.api)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" && len(cfg.RedisClusterAddrs) == 0 {
		return errors.New("REDIS_URL is not set (or REDIS_CLUSTER_ADDRS for a cluster); `ringer dev` starts its own Redis")
	}
	log := newLogger(cfg.LogFormat, stderr)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	return serve(ctx, cfg, log, r, &hooks{demo: getenv("RINGER_DEMO") == "1"})
}

// hooks lets `ringer dev` see the parts serve builds.
type hooks struct {
	listening func(addr string)
	// demo serves the demo page (web) at / and /demo/: `ringer dev`, or RINGER_DEMO=1.
	demo bool
}

// serve runs the roles until ctx ends, then drains (app.Run: the components stop in the order the app
// package documents).
func serve(ctx context.Context, cfg config, log *slog.Logger, r roles, h *hooks) error {
	rdb, err := cfg.redisClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		log.Warn("redis not reachable at start; will keep trying", "err", err)
	}
	cancel()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	provs, err := providerSet(ctx, cfg, log)
	if err != nil {
		return err
	}
	ready := withEvictionCheck(readiness(rdb, provs), rdb, log)
	var demo http.Handler
	if r.api && h != nil && h.demo {
		if demo, err = demoHandler(cfg, log, r, provs.Default(providers.Firebase).Sender); err != nil {
			return err
		}
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})

	var dash http.Handler
	if r.dashboard && cfg.DashboardUser != "" {
		conn, err := cfg.asynqConn()
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		mon := asynqmon.New(asynqmon.Options{RootPath: "/asynq", RedisConnOpt: conn})
		defer mon.Close()
		// Basic auth rides along with every request a logged-in browser makes, whichever page makes it, so
		// state-changing requests from another origin (pause the ring queue, delete tasks) are refused.
		dash = http.NewCrossOriginProtection().Handler(basicAuth(cfg.DashboardUser, cfg.DashboardPassword, mon))
	} else if r.dashboard {
		log.Info("dashboard off: set RINGER_DASHBOARD_USER and RINGER_DASHBOARD_PASSWORD to serve it at /asynq/")
	}

	a, err := app.Build(app.Config{
		Redis: rdb, Logger: log, Providers: provs, Registerer: reg,
		API: r.api, Worker: r.worker,
		Secret: []byte(cfg.Secret), SSEPerUser: cfg.SSEPerUser, SSEMax: cfg.SSEMax,
		Ready: ready, Metrics: metrics, Dashboard: dash, Demo: demo,
		CallRetention: cfg.CallRetention, CallMaxAge: cfg.CallMaxAge, RingQueueBudget: cfg.RingQueueBudget,
		WebhookURLs: cfg.WebhookURLs, EventsReplay: cfg.EventsReplay, RingRate: cfg.RingRate, ReminderLead: cfg.ReminderLead,
		TemplatesDir: cfg.TemplatesDir, RingConcurrency: cfg.RingConcurrency, NotifyConcurrency: cfg.NotifyConcurrency,
		RingPollInterval: cfg.RingPollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
		SkipRing: !cfg.ServeRing, SkipNotify: !cfg.ServeNotify,
		WebhookSecret: cfg.WebhookSecret, WebhookTimeout: cfg.WebhookTimeout, WebhookRetryBase: cfg.WebhookRetryBase,
		NotifyTTL: cfg.NotifyTTL, Version: version(),
	})
	if err != nil {
		return err
	}
	components := a.Components()
	// The event stream clears its own write deadline (api/events.go); the read deadline ends once a request's
	// body is read, so streams outlive both timeouts.
	components = append(components, &app.HTTPServer{
		Addr: cfg.Addr, AddrFrom: "RINGER_ADDR", Handler: a.Handler,
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTPReadTimeout),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		OnListen: func(addr string) {
			log.Info("listening", "addr", addr, "api", r.api, "worker", r.worker, "dashboard", dash != nil)
			if h != nil && h.listening != nil {
				h.listening(addr)
			}
		},
	})
	return app.Run(ctx, log, cfg.ShutdownTimeout, components...)
}

// readiness is /readyz: Redis answers, and each configured provider's credentials work (the error names
// every failing provider).
func readiness(rdb redis.UniversalClient, provs *registry.Set) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return &api.NotReady{Part: "redis unreachable", Err: err}
		}
		if err := provs.Check(ctx); err != nil {
			part := "provider check failing"
			var ce *registry.CheckError
			if errors.As(err, &ce) {
				part = "provider check failing: " + strings.Join(ce.Failing, ", ")
			}
			return &api.NotReady{Part: part, Err: err}
		}
		return nil
	}
}

// basicAuth guards the dashboard, which has no auth of its own.
func basicAuth(user, password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="ringer dashboard"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
