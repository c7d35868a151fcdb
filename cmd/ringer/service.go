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
	"github.com/ringer-dev/ringer/logwriter"
	"github.com/ringer-dev/ringer/notifychild"
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

// roles says which parts a process runs. child is the notify worker a two-queue worker runs beside itself
// (notifychild.go).
type roles struct{ api, worker, dashboard, child bool }

// newLogger is a logger writing records in format to out. A record at Warn or above is written out at once,
// with whatever waited before it; Info and Debug records wait in out's buffer, if it has one (logwriter).
func newLogger(format string, level slog.Level, out *logwriter.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(out, opts)
	if format == "text" {
		h = slog.NewTextHandler(out, opts)
	}
	return slog.New(logwriter.NewHandler(h, out))
}

func runService(ctx context.Context, getenv func(string) string, stderr io.Writer, r roles) error {
	cfg, err := loadConfig(getenv, r.api)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" && len(cfg.RedisClusterAddrs) == 0 {
		return errors.New("REDIS_URL is not set (or REDIS_CLUSTER_ADDRS for a cluster); `ringer dev` starts its own Redis")
	}
	h := &hooks{demo: getenv("RINGER_DEMO") == "1"}
	if r.child {
		if h.parentRingWork, err = notifychild.ParentRingWork(getenv); err != nil {
			return err
		}
	}
	return serve(ctx, cfg, stderr, r, h)
}

// hooks lets `ringer dev` see the parts serve builds.
type hooks struct {
	listening func(addr string)
	// demo serves the demo page (web) at / and /demo/: `ringer dev`, or RINGER_DEMO=1.
	demo bool
	// childEnv is set in the notify child's environment on top of this process's.
	childEnv []string
	// parentRingWork is, in the notify child, its parent's ring work (notifychild.ParentRingWork).
	parentRingWork <-chan bool
}

// serve runs the roles until ctx ends, then drains (app.Run: the components stop in the order the app
// package documents). It logs to stderr through a buffer (RINGER_LOG_FLUSH_INTERVAL) that it writes out
// when it returns, whichever way, and hands stderr itself to the notify child, which keeps a buffer of its own.
func serve(ctx context.Context, cfg config, stderr io.Writer, r roles, h *hooks) error {
	// Deferred first, so it runs last: after Run, and after whatever logs while the process closes.
	logOut := logwriter.New(stderr, cfg.LogFlushInterval)
	defer logOut.Close()
	log := newLogger(cfg.LogFormat, cfg.LogLevel, logOut)
	if r.child {
		log = log.With("process", "notify-child")
		var stop context.CancelFunc
		ctx, stop = notifychild.UntilParentGone(ctx)
		defer stop()
	}
	applySchedSlice(cfg.SchedSlice, r.child, log)
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
	// The child's series carry a label, so the parent can serve them beside its own.
	var registerer prometheus.Registerer = reg
	if r.child {
		registerer = prometheus.WrapRegistererWith(prometheus.Labels{notifychild.MetricLabel: "notify"}, reg)
	}
	registerer.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

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
	var components []app.Component
	listening := make(chan struct{})
	var gather prometheus.Gatherer = reg
	var child *notifychild.Supervisor
	var ringWork func(busy bool)
	var ringsElsewhere <-chan bool
	if h != nil {
		ringsElsewhere = h.parentRingWork
	}
	// The demo page shows the pushes this process's log sink sends, so under it notifications stay here.
	if r.worker && !r.child && cfg.notifyChild() && demo == nil {
		// stderr itself, not logOut: exec hands a file to the child as it is, where any other writer would get
		// a pipe and a goroutine of this process copying into it; the child gathers its own lines.
		child, err = notifychild.New(notifychild.Config{Env: h.childEnv, Stderr: stderr, Logger: log,
			After: listening, Grace: cfg.ShutdownTimeout + 5*time.Second})
		if err != nil {
			return err
		}
		gather = prometheus.Gatherers{reg, child}
		ownReady := ready
		ready = func(ctx context.Context) error {
			if err := ownReady(ctx); err != nil {
				return err
			}
			if err := child.Ready(); err != nil {
				return &api.NotReady{Part: "notify worker process down", Err: err}
			}
			return nil
		}
		components = append(components, child)
		ringWork = child.RingWork
	}
	metrics := promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})

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
		Redis: rdb, Logger: log, Providers: provs, Registerer: registerer,
		API: r.api, Worker: r.worker, NotifyChild: r.child,
		Secret: []byte(cfg.Secret), SSEPerUser: cfg.SSEPerUser, SSEMax: cfg.SSEMax,
		Ready: ready, Metrics: metrics, Dashboard: dash, Demo: demo,
		CallRetention: cfg.CallRetention, CallMaxAge: cfg.CallMaxAge, RingQueueBudget: cfg.RingQueueBudget,
		WebhookURLs: cfg.WebhookURLs, EventsReplay: cfg.EventsReplay, RingRate: cfg.RingRate, ReminderLead: cfg.ReminderLead,
		TemplatesDir: cfg.TemplatesDir, RingConcurrency: cfg.RingConcurrency, NotifyConcurrency: cfg.NotifyConcurrency,
		RingPollInterval: cfg.RingPollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
		SkipRing: !cfg.ServeRing, SkipNotify: !cfg.ServeNotify || child != nil,
		WebhookSecret: cfg.WebhookSecret, WebhookTimeout: cfg.WebhookTimeout, WebhookRetryBase: cfg.WebhookRetryBase,
		NotifyTTL: cfg.NotifyTTL, QueueShards: cfg.QueueShards, Version: version(),
		RingWork: ringWork, RingsElsewhere: ringsElsewhere,
	})
	if err != nil {
		return err
	}
	components = append(components, a.Components()...)
	// The event stream clears its own write deadline (api/events.go); the read deadline ends once a request's
	// body is read, so streams outlive both timeouts.
	components = append(components, &app.HTTPServer{
		Addr: cfg.Addr, AddrFrom: "RINGER_ADDR", Handler: a.Handler,
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTPReadTimeout),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		OnListen: func(addr string) {
			if r.child {
				// Not "listening": tools that start ringer take the first such line as the address of what they started.
				log.Info("notify child listening", "addr", addr)
				if err := notifychild.ReportAddr(addr); err != nil {
					log.Error("could not tell the parent worker where this process listens", "err", err)
				}
			} else {
				log.Info("listening", "addr", addr, "api", r.api, "worker", r.worker, "dashboard", dash != nil)
			}
			// Tools that start ringer wait for this line, so it does not wait for the ticker. It stays at Info
			// (which would otherwise wait): at Warn it would tell the operator something is wrong.
			_ = logOut.Flush()
			if h != nil && h.listening != nil {
				h.listening(addr)
			}
			close(listening)
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

// applySchedSlice runs this process's threads with slice (setSchedSlice), except in the notify child, which
// inherits its parent's slice and goes back to the kernel's: its pushes are the bulk work that rings cut into.
// A slice of 0 touches no thread, in the parent or the child: each keeps what it was started with.
func applySchedSlice(slice time.Duration, child bool, log *slog.Logger) {
	if slice == 0 {
		return
	}
	if child {
		slice = 0
	}
	took, err := setSchedSlice(slice)
	switch {
	case err != nil:
		log.Warn("scheduler slice not set: threads run with the kernel's", "slice", slice.String(), "err", err)
	case slice > 0 && took:
		log.Info("scheduler slice set", "slice", slice.String())
	case slice > 0:
		log.Info("scheduler slice not taken (Linux 6.12 or later takes one): threads run with the kernel's", "slice", slice.String())
	}
}

// runNotifyChild is the child's main: it first lowers its own priority by RINGER_NOTIFY_NICE, re-executing
// itself so that every thread runs lowered (the parent's threads keep theirs), then runs the notify worker.
func runNotifyChild(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	if err := notifychild.Lower(cfg.NotifyNice, getenv); err != nil {
		// Unbuffered: nothing closes this writer, and a Warn record is written out at once in any case.
		newLogger(cfg.LogFormat, cfg.LogLevel, logwriter.New(stderr, 0)).Warn("notify worker runs at the worker's priority", "process", "notify-child", "err", err)
	}
	return runService(ctx, getenv, stderr, roles{worker: true, child: true})
}
