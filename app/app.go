// Package app builds a ringer process from its parts and runs it: one builder (Build) for `ringer serve`,
// `ringer api`, `ringer worker`, `ringer dev`, the notify child and the load bench's profiled processes, so
// that every one of them is wired the same way. cmd/ringer parses the environment into a Config and starts
// the components Build returns; it holds no wiring of its own.
//
// A process is a list of components run by Run: each is started in list order, and when the process stops
// each is shut down in the reverse order. Build's list, and the order the callers add to it, is:
//
//  1. the notify child (package notifychild), started first and stopped last: its context ends with the process's,
//     so it drains alongside everything else, and the process waits for it last;
//  2. the worker: it stops fetching tasks and lets running ones finish within its ShutdownTimeout, handing
//     the rest back to Asynq;
//  3. the outbox sweeper (webhooks of events whose process died before enqueueing them);
//  4. the HTTP server, started last (the "listening" line that tools wait for comes once everything else
//     runs) and stopped first: it stops taking requests and finishes those in flight.
//
// Redis is closed by whoever opened it, after Run returns.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/providers/registry"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/ratelimit"
	"github.com/ringer-dev/ringer/templates"
	"github.com/ringer-dev/ringer/webhook"
	"github.com/ringer-dev/ringer/worker"
)

// Config is everything Build needs, already parsed and checked (cmd/ringer's config.go does that).
type Config struct {
	Redis     redis.UniversalClient
	Logger    *slog.Logger
	Providers *registry.Set
	// Registerer gets every metric of the process; nil registers them nowhere.
	Registerer prometheus.Registerer

	// API serves the HTTP API (else only the operations endpoints); Worker runs a worker.
	API, Worker bool
	// NotifyChild is the notify worker a two-queue worker runs beside itself: its parent reports the queues,
	// delivers the webhooks and sweeps the outbox, so it does none of these.
	NotifyChild bool

	// The API's: the JWT secret, the event streams' bounds (0: calls' defaults), and the operations handlers
	// (api.Config: nil turns each off or takes its default).
	Secret             []byte
	SSEPerUser, SSEMax int
	Ready              func(ctx context.Context) error
	Metrics            http.Handler
	Dashboard          http.Handler
	Demo               http.Handler

	// The calls': how long calls are kept, how long ring pushes may wait before new rings are refused (0:
	// never), the webhook receivers and how long a user's events are kept for a reconnect.
	CallRetention, CallMaxAge time.Duration
	RingQueueBudget           time.Duration
	// QueueShards splits each queue over that many Asynq queues (queue.Layout; 0 is one), for enqueues and,
	// in a worker, for the queues served.
	QueueShards  int
	WebhookURLs  []string
	EventsReplay time.Duration
	// RingRate bounds how fast one user starts rings (N 0: no limit); ReminderLead is how long before a
	// scheduled call's start its members are reminded (0: calls' default).
	RingRate     ratelimit.Rate
	ReminderLead time.Duration

	// The worker's (worker.Config; zero values take its defaults). SkipRing and SkipNotify leave a queue to
	// other processes (RINGER_QUEUES, or the notify child).
	TemplatesDir                       string
	RingConcurrency, NotifyConcurrency int
	RingPollInterval, ShutdownTimeout  time.Duration
	SkipRing, SkipNotify               bool
	WebhookSecret                      string
	WebhookTimeout, WebhookRetryBase   time.Duration
	// NotifyTTL is the lifetime of notification, missed-call and reminder pushes (0: the worker's default).
	NotifyTTL time.Duration
	// RingWork and RingsElsewhere carry a ring-serving worker's ring work to a notify worker in another
	// process, so that its notification pushes give way (worker.Config): the notify child's parent sets the
	// first, the child the second.
	RingWork       func(busy bool)
	RingsElsewhere <-chan bool
	// Version is the binary's version, for the webhooks' User-Agent.
	Version string
}

// App is a built process: its parts, and the components Run starts and stops.
type App struct {
	Queue   *queue.Client
	Store   *calls.Store
	Devices *devices.Registry
	// Worker is nil unless Config.Worker.
	Worker *worker.Worker
	// Handler serves the API's routes (Config.API) or the operations endpoints alone.
	Handler http.Handler

	components []Component
}

// Components are the built components in start order: the worker, then the outbox sweeper (each when built).
// The caller puts them in its own list for Run (see the package doc for the order).
func (a *App) Components() []Component { return a.components }

// Build wires the parts of a process. It starts nothing: Run does.
func Build(cfg Config) (*App, error) {
	if cfg.Redis == nil {
		return nil, errors.New("app: Redis is required")
	}
	if cfg.Providers == nil {
		return nil, errors.New("app: Providers is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry() // registered nowhere anyone gathers
	}
	a := &App{Queue: queue.NewClient(cfg.Redis), Devices: devices.New(cfg.Redis)}
	a.Queue.SetRetention(cfg.CallRetention)
	a.Queue.SetShards(cfg.QueueShards)
	a.Store = calls.New(cfg.Redis, a.Queue, log)
	a.Store.SetMetrics(calls.NewMetrics(reg))
	a.Store.SetRetention(cfg.CallRetention, cfg.CallMaxAge)
	if cfg.RingQueueBudget > 0 {
		a.Store.SetRingAdmission(queue.NewAdmission(a.Queue, cfg.RingQueueBudget))
	}
	if cfg.RingRate.N > 0 {
		a.Store.SetRingLimiter(ratelimit.New(cfg.Redis, cfg.RingRate))
	}
	a.Store.SetWebhooks(cfg.WebhookURLs)
	a.Store.SetEventReplay(cfg.EventsReplay)
	if cfg.ReminderLead > 0 {
		a.Store.SetReminderLead(cfg.ReminderLead)
	}

	if cfg.Worker {
		if err := a.buildWorker(cfg, log, reg); err != nil {
			return nil, err
		}
	}
	var err error
	if cfg.API {
		hub, err := calls.NewHub(cfg.Redis, calls.HubConfig{PerUser: cfg.SSEPerUser, Max: cfg.SSEMax, Replay: cfg.EventsReplay,
			Registerer: reg, Logger: log})
		if err != nil {
			return nil, err
		}
		a.Handler, err = api.New(api.Config{
			Secret: cfg.Secret, Calls: a.Store, Devices: a.Devices, Events: hub, Ready: cfg.Ready,
			Metrics: cfg.Metrics, Dashboard: cfg.Dashboard, Demo: cfg.Demo, Registerer: reg, Logger: log,
			ProviderName: cfg.Providers.Known,
		})
		if err != nil {
			return nil, err
		}
	} else if a.Handler, err = api.Ops(api.Config{
		Ready: cfg.Ready, Metrics: cfg.Metrics, Dashboard: cfg.Dashboard, Registerer: reg, Logger: log,
	}); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) buildWorker(cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	tmpl, err := templates.Load(cfg.TemplatesDir)
	if err != nil {
		return fmt.Errorf("RINGER_TEMPLATES_DIR: %w", err)
	}
	var whSender worker.Webhooks
	if !cfg.NotifyChild {
		// Registered with webhooks off too, so dashboards and alerts find the series.
		whMetrics, err := webhook.NewMetrics(reg)
		if err != nil {
			return err
		}
		if len(cfg.WebhookURLs) > 0 && !cfg.SkipRing {
			if whSender, err = webhook.New(webhook.Config{Secret: []byte(cfg.WebhookSecret), Timeout: cfg.WebhookTimeout,
				RetryBase: cfg.WebhookRetryBase, Version: cfg.Version, Metrics: whMetrics, Logger: log}); err != nil {
				return err
			}
			// Events whose process died before enqueueing their webhooks (calls.Store.SweepOutbox).
			defer func() { a.components = append(a.components, sweeper{a.Store}) }()
		}
	}
	a.Worker, err = worker.New(worker.Config{
		Redis: cfg.Redis, Devices: a.Devices, Templates: tmpl, Providers: cfg.Providers, Calls: a.Store, Queue: a.Queue,
		Metrics: worker.NewMetrics(reg), Logger: log,
		RingConcurrency: cfg.RingConcurrency, NotifyConcurrency: cfg.NotifyConcurrency,
		RingPollInterval: cfg.RingPollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
		SkipRing: cfg.SkipRing, SkipNotify: cfg.SkipNotify, Webhooks: whSender,
		LedgerTTL: cfg.CallRetention, NotifyTTL: cfg.NotifyTTL, QueueShards: cfg.QueueShards,
		RingWork: cfg.RingWork, RingsElsewhere: cfg.RingsElsewhere,
	})
	if err != nil {
		return err
	}
	if !cfg.NotifyChild { // the parent reports the queues once
		reg.MustRegister(worker.NewQueueCollector(cfg.Redis))
	}
	a.components = append(a.components, workerComponent{a.Worker, log})
	return nil
}
