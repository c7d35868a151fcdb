package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/registry"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/ratelimit"
	"github.com/ringer-dev/ringer/templates"
	"github.com/ringer-dev/ringer/webhook"
	"github.com/ringer-dev/ringer/worker"
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
	if r.child {
		log = log.With("process", "notify-child")
	}
	return serve(ctx, cfg, log, r, &hooks{demo: getenv("RINGER_DEMO") == "1", stderr: stderr})
}

// hooks lets `ringer dev` see the parts serve builds.
type hooks struct {
	listening func(addr string)
	// demo serves the demo page (web) at / and /demo/: `ringer dev`, or RINGER_DEMO=1.
	demo bool
	// stderr takes the notify child's logs; childEnv is set in its environment on top of this process's.
	stderr   io.Writer
	childEnv []string
}

// serve runs the roles until ctx ends, then drains: the API stops taking requests and finishes those in
// flight, the worker finishes or hands back its tasks.
func serve(ctx context.Context, cfg config, log *slog.Logger, r roles, h *hooks) error {
	if r.child {
		var stop context.CancelFunc
		ctx, stop = untilParentGone(ctx)
		defer stop()
	}
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
		registerer = prometheus.WrapRegistererWith(prometheus.Labels{childMetricLabel: "notify"}, reg)
	}
	registerer.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	q := queue.NewClient(rdb)
	q.SetRetention(cfg.CallRetention)
	store := calls.New(rdb, q, log)
	store.SetMetrics(calls.NewMetrics(registerer))
	store.SetRetention(cfg.CallRetention, cfg.CallMaxAge)
	if cfg.RingQueueBudget > 0 {
		store.SetRingAdmission(queue.NewAdmission(q, cfg.RingQueueBudget))
	}
	if cfg.RingRate.N > 0 {
		store.SetRingLimiter(ratelimit.New(rdb, cfg.RingRate))
	}
	store.SetWebhooks(cfg.WebhookURLs)
	store.SetEventReplay(cfg.EventsReplay)
	store.SetReminderLead(cfg.ReminderLead)
	devs := devices.New(rdb)

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
	var gather prometheus.Gatherer = reg
	var child *notifyChild
	// The demo page shows the pushes this process's log sink sends, so under it notifications stay here.
	if r.worker && !r.child && cfg.notifyChild() && demo == nil {
		if child, err = newNotifyChild(append(os.Environ(), h.childEnv...), h.stderr, log); err != nil {
			return err
		}
		gather = prometheus.Gatherers{reg, child}
		ownReady := ready
		ready = func(ctx context.Context) error {
			if err := ownReady(ctx); err != nil {
				return err
			}
			if err := child.ready(); err != nil {
				return &api.NotReady{Part: "notify worker process down", Err: err}
			}
			return nil
		}
	}
	metrics := promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})

	var w *worker.Worker
	if r.worker {
		tmpl, err := templates.Load(cfg.TemplatesDir)
		if err != nil {
			return fmt.Errorf("RINGER_TEMPLATES_DIR: %w", err)
		}
		var whSender worker.Webhooks
		var whMetrics *webhook.Metrics
		if !r.child {
			// Registered with webhooks off too, so dashboards and alerts find the series.
			if whMetrics, err = webhook.NewMetrics(registerer); err != nil {
				return err
			}
		}
		if len(cfg.WebhookURLs) > 0 && cfg.ServeRing && !r.child {
			if whSender, err = webhook.New(webhook.Config{Secret: []byte(cfg.WebhookSecret), Timeout: cfg.WebhookTimeout,
				RetryBase: cfg.WebhookRetryBase, Version: version(), Metrics: whMetrics, Logger: log}); err != nil {
				return err
			}
			// Events whose process died before enqueueing their webhooks (calls.Store.SweepOutbox).
			go store.RunOutboxSweeper(ctx)
		}
		w = worker.New(worker.Config{
			Redis: rdb, Devices: devs, Templates: tmpl, Providers: provs, Calls: store, Queue: q,
			Metrics: worker.NewMetrics(registerer), Logger: log,
			RingConcurrency: cfg.RingConcurrency, NotifyConcurrency: cfg.NotifyConcurrency,
			RingPollInterval: cfg.RingPollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
			SkipRing: !cfg.ServeRing, SkipNotify: !cfg.ServeNotify || child != nil, Webhooks: whSender,
			LedgerTTL: cfg.CallRetention,
			NotifyTTL: cfg.NotifyTTL,
		})
		if !r.child { // the parent reports the queues once
			reg.MustRegister(worker.NewQueueCollector(rdb))
		}
		if err := w.Start(); err != nil {
			return err
		}
		log.Info("worker started")
	}

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

	var handler http.Handler
	if r.api {
		hub, err := calls.NewHub(rdb, calls.HubConfig{PerUser: cfg.SSEPerUser, Max: cfg.SSEMax, Replay: cfg.EventsReplay,
			Registerer: registerer, Logger: log})
		if err != nil {
			return err
		}
		handler, err = api.New(api.Config{
			Secret: []byte(cfg.Secret), Calls: store, Devices: devs, Events: hub, Ready: ready,
			Metrics: metrics, Dashboard: dash, Demo: demo, Registerer: registerer, Logger: log,
			ProviderName: provs.Known,
		})
		if err != nil {
			return err
		}
	} else {
		handler, err = api.Ops(api.Config{
			Ready: ready, Metrics: metrics, Dashboard: dash, Registerer: registerer, Logger: log,
		})
		if err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if w != nil {
			w.Shutdown()
		}
		return fmt.Errorf("RINGER_ADDR %s: %w", cfg.Addr, err)
	}
	// The event stream clears its own write deadline (api/events.go); the read deadline ends once a request's
	// body is read, so streams outlive both timeouts.
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTPReadTimeout),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if r.child {
		// Not "listening": tools that start ringer take the first such line as the address of what they started.
		log.Info("notify child listening", "addr", ln.Addr().String())
		if err := reportAddrToParent(ln.Addr().String()); err != nil {
			log.Error("could not tell the parent worker where this process listens", "err", err)
		}
	} else {
		log.Info("listening", "addr", ln.Addr().String(), "api", r.api, "worker", r.worker, "dashboard", dash != nil)
	}
	if h != nil && h.listening != nil {
		h.listening(ln.Addr().String())
	}
	// Started after this process's "listening" line, which tools that start ringer wait for, so a slow child
	// start (it runs niced) never holds up the API. It drains alongside this process's worker: SIGTERM reaches
	// it when ctx ends.
	stopChild := func() {}
	if child != nil {
		childCtx, cancelChild := context.WithCancel(ctx)
		go child.run(childCtx, cfg.ShutdownTimeout+5*time.Second)
		stopChild = func() { cancelChild(); child.wait() }
		defer stopChild()
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if w != nil {
			w.Shutdown()
		}
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("draining", "timeout", cfg.ShutdownTimeout)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelDrain()
	// SSE streams use ctx as their base and end with it; other requests finish.
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Warn("http drain cut short", "err", err)
	}
	if w != nil {
		w.Shutdown()
	}
	stopChild()
	log.Info("stopped")
	return nil
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
