// Package worker runs ringer's Asynq handlers: it delivers ring, stop, missed-call and notification pushes to
// every device of a member, checks the ring gate before every ring push, records each delivery in a per-device
// ledger, and acts on provider verdicts (ARCHITECTURE.md, invariants 4, 5, 7, 9).
//
// Its files, by concern: worker.go the configuration, the Asynq servers and their lifecycle; handlers.go the
// handlers, which decode a task, name its call and ring in the log and ask the rest; targets.go which device
// gets which push (API.md's table), as pure functions; push.go what a push carries (payload fields, text,
// lifetime, collapse id); deliver.go the delivery engine, the ledger, and the one place each kind of push
// leaves for its provider; retry.go the retry policy; suppress.go push preferences; watchdog.go the ring
// watchdog; pause.go a provider's back-off; metrics.go and queue_metrics.go the Prometheus series.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

// Sender delivers one push through one provider.
type Sender = providers.Sender

// Providers picks the sender of a device by its push_provider (typ) and push_provider_name (name, empty for
// the type's default); providerName is the name the pick resolved to, for metrics, logs and backoff. An error
// is a name no provider of the type has (removed from the configuration): the push is refused, not retried.
type Providers interface {
	Pick(typ, name string) (providerName string, s Sender, err error)
}

// Devices is the device registry as the worker uses it.
type Devices interface {
	// Targets reads a member's devices and push preferences in one round trip; TargetsMany, several members'.
	Targets(ctx context.Context, userID string) ([]devices.Device, devices.Preferences, error)
	TargetsMany(ctx context.Context, userIDs []string) (map[string]devices.UserTargets, error)
	Prune(ctx context.Context, userID, token string, invalidSince time.Time) (bool, error)
}

// Renderer renders the alert text of a push; a Memo of it renders one call's event to many members.
type Renderer interface {
	textRenderer
	Memo() *templates.Memo
}

// Expirer settles a ring whose time has come (the calls store).
type Expirer interface {
	Expire(ctx context.Context, cid, ringID string) error
}

// Calls is what the worker needs of the calls store: settling rings, and reading what a reminder owes.
type Calls interface {
	Expirer
	// Reminder answers the call and the members to remind for the reminder of cid at startsAt (unix ms);
	// due is false when the call ended or its starts_at moved or passed.
	Reminder(ctx context.Context, cid string, startsAt int64) (info queue.CallInfo, members []string, due bool, err error)
}

// Config wires a Worker.
type Config struct {
	Redis     redis.UniversalClient
	Devices   Devices
	Templates Renderer
	// Providers, when set, picks each device's sender; otherwise FCM and APNs send every push of their type.
	Providers Providers
	FCM       Sender
	APNs      Sender
	Calls     Calls
	// Queue enqueues the watchdog's next tick and its rescues, and the notifications of reminders.
	Queue   *queue.Client
	Metrics *Metrics
	Logger  *slog.Logger

	// RingConcurrency and NotifyConcurrency size the two servers: rings never wait behind notifications.
	RingConcurrency   int
	NotifyConcurrency int
	// RingPollInterval is how often an idle ring server looks for work; it bounds idle ring latency.
	RingPollInterval time.Duration
	// DelayedCheckInterval is how often scheduled tasks (ring timeouts) and retries become due.
	DelayedCheckInterval time.Duration
	// ShutdownTimeout is how long a stopping worker lets running handlers finish before handing them back.
	ShutdownTimeout time.Duration
	// SkipRing and SkipNotify leave a queue to other worker processes (RINGER_QUEUES).
	SkipRing, SkipNotify bool
	// LedgerTTL is how long a push's ledger, and a ring's delivered set, are kept: the calls' retention, so
	// that a call's keys go with it, within [MinLedgerTTL, DefaultLedgerTTL] (a ring's: past its end, ledgerKeep).
	LedgerTTL time.Duration
	// NotifyTTL is the lifetime of notification, missed-call and reminder pushes (RINGER_NOTIFY_TTL): FCM TTL,
	// apns-expiration. Zero is DefaultNotifyTTL.
	NotifyTTL time.Duration
	// Webhooks, when set, serves the webhook queue (queue.QueueWebhook) with its own server: webhook.Sender.
	Webhooks Webhooks
	// QueueShards is how many Asynq queues each queue is split over (RINGER_QUEUE_SHARDS, queue.Layout): the
	// count the enqueueing processes use. Each server serves every shard of its queue, and the shards it
	// finds in Redis at Start beyond them.
	QueueShards int
	// RingWork, when set, is told when this worker begins running ring-side tasks (true: the first ring, stop,
	// timeout or watchdog task) and when it has none left (false). It is called with the tasks' own lock held,
	// so it must not block. The notify child's supervisor passes it on to the child (RingsElsewhere there).
	RingWork func(busy bool)
	// RingsElsewhere, when set, carries the same news from a worker in another process (the notify child's
	// parent): while the last value received is true, this worker's notification pushes give way as they do
	// to its own ring tasks (ringFirst). Its close means that worker is gone, and no longer busy.
	RingsElsewhere <-chan bool
}

// Webhooks delivers webhook tasks and says when a failed one is tried again (webhook.Sender).
type Webhooks interface {
	Handle(ctx context.Context, t *asynq.Task) error
	RetryDelay(n int, err error, t *asynq.Task) time.Duration
}

// Defaults for Config's zero values.
const (
	DefaultRingConcurrency      = 100
	DefaultNotifyConcurrency    = 16
	DefaultRingPollInterval     = 2 * time.Millisecond
	DefaultDelayedCheckInterval = 50 * time.Millisecond
	DefaultShutdownTimeout      = 25 * time.Second
	// DefaultNotifyTTL is how long a provider keeps trying to deliver an alert to a phone that is off or
	// offline. An hour covers a tunnel, a flight's boarding or a dead battery charged again, while "alice is in
	// the call" or "missed call from alice" still tells something new; past it the app shows the call list
	// (GET /v1/calls) instead, and without a lifetime FCM keeps an alert for 4 weeks and APNs until delivered,
	// so a phone back after days would light up with stale calls.
	DefaultNotifyTTL = time.Hour

	// recordPatience is how long a sent push's ledger record is retried while Redis is away.
	recordPatience = 20 * time.Second
	// ledgerBatch is how many sent notification pushes are written to the ledger at once. A crash may repeat up
	// to that many pushes of one batch task (at least once, never lost); one write a push cost a Redis round
	// trip each. Rings and stops record each push at once.
	ledgerBatch = 32
	// deliverParallel bounds the pushes one task has in flight at once.
	deliverParallel = 32
	// sendTimeout bounds one push, the SDK's own retries included, so a provider that never answers holds no
	// worker slot for long.
	sendTimeout = 15 * time.Second
	// DefaultLedgerTTL keeps a push's ledger past every retry of it.
	DefaultLedgerTTL = 48 * time.Hour
	// MinLedgerTTL keeps a push's ledger through its task's quick retries, and a ring's past the ring's end
	// (ledgerKeep) through its stops' retries, whatever the calls' retention: a ring ledger lost early would
	// ring a device twice or leave it unstopped. A notification retried after it may reach a device twice.
	MinLedgerTTL = 2 * time.Minute
)

// Worker holds the handlers and the Asynq servers that run them: ring (rings, stops, timeouts), watch (the
// rings' watchdog ticks) and notify.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	gate   *gate.Gate
	paused *providerPause
	// ringFirst admits notification pushes when this process serves notifications and rings run beside them,
	// in it or in another process (Config.RingsElsewhere); nil otherwise.
	ringFirst *ringFirst
	// ringTasks reports this worker's ring-side tasks to ringFirst and Config.RingWork; nil when neither
	// listens.
	ringTasks *ringTasks
	// recordPatience is how long a sent push's ledger record is retried (the constant; tests shorten it).
	recordPatience time.Duration
	// servers are the Asynq servers Start started, one per queue served.
	servers []*asynq.Server
}

// The watch server's settings. Ticks are due on whole seconds (Asynq keeps scheduled tasks by the second) and
// rescue a ring push after seconds, so a tenth of a second more does not matter. Serving the watch queue from
// the ring server instead (StrictPriority below ring) gave rings the same latency in the bench but cost an
// idle worker a second Redis script on every poll of the ring server (figures in BENCHMARKS.md, "Ring under
// load"): Asynq polls each queue with its own script. Its own few slots keep a burst of ticks from taking a
// ring push's slot or much of the CPU at once.
const (
	watchConcurrency     = 4
	watchPollInterval    = 50 * time.Millisecond
	watchForwardInterval = 100 * time.Millisecond
)

// queueListTimeout bounds Start's read of the queues Redis knows: a worker starts without it.
const queueListTimeout = 2 * time.Second

// webhookConcurrency is how many webhook POSTs one worker process has in flight.
const webhookConcurrency = 16

// New returns a Worker; Start runs it. Redis, Devices, Templates, Calls, Queue, and Providers or a sender of
// each type, are required: a worker missing one would fail on the first task that needs it.
func New(cfg Config) (*Worker, error) {
	var missing []string
	for _, m := range []struct {
		name string
		nil  bool
	}{
		{"Redis", cfg.Redis == nil}, {"Devices", cfg.Devices == nil}, {"Templates", cfg.Templates == nil},
		{"Calls", cfg.Calls == nil}, {"Queue", cfg.Queue == nil},
		{"Providers (or FCM and APNs)", cfg.Providers == nil && (cfg.FCM == nil || cfg.APNs == nil)},
	} {
		if m.nil {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("worker: missing %s", strings.Join(missing, ", "))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	orDefault(&cfg.RingConcurrency, DefaultRingConcurrency)
	orDefault(&cfg.NotifyConcurrency, DefaultNotifyConcurrency)
	orDefault(&cfg.RingPollInterval, DefaultRingPollInterval)
	orDefault(&cfg.DelayedCheckInterval, DefaultDelayedCheckInterval)
	orDefault(&cfg.ShutdownTimeout, DefaultShutdownTimeout)
	orDefault(&cfg.NotifyTTL, DefaultNotifyTTL)
	orDefault(&cfg.LedgerTTL, DefaultLedgerTTL)
	cfg.LedgerTTL = min(max(cfg.LedgerTTL, MinLedgerTTL), DefaultLedgerTTL)
	w := &Worker{cfg: cfg, log: cfg.Logger, gate: gate.New(cfg.Redis), paused: newProviderPause(), recordPatience: recordPatience}
	if !cfg.SkipNotify && (!cfg.SkipRing || cfg.RingsElsewhere != nil) {
		w.ringFirst = newRingFirst(cfg.NotifyConcurrency*deliverParallel, !cfg.SkipRing)
	}
	if !cfg.SkipRing {
		var report []func(busy bool)
		if w.ringFirst != nil {
			report = append(report, w.ringFirst.setHere)
		}
		if cfg.RingWork != nil {
			report = append(report, cfg.RingWork)
		}
		if len(report) > 0 {
			w.ringTasks = &ringTasks{report: report}
		}
	}
	return w, nil
}

// orDefault sets *v to def when it is zero or less: Config's zero values ask for the defaults.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Handler routes ringer's task types to their handlers.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.HandleFunc(queue.TypeRing, w.HandleRing)
	mux.HandleFunc(queue.TypeStop, w.HandleStop)
	mux.HandleFunc(queue.TypeTimeout, w.HandleTimeout)
	mux.HandleFunc(queue.TypeNotify, w.HandleNotify)
	mux.HandleFunc(queue.TypeWatch, w.HandleWatch)
	mux.HandleFunc(queue.TypeReminder, w.HandleReminder)
	if w.cfg.Webhooks != nil {
		mux.HandleFunc(queue.TypeWebhook, w.cfg.Webhooks.Handle)
	}
	return mux
}

// queueServer is how one queue is served: by an Asynq server of its own with concurrency slots, polled every
// poll when idle (each of its shards in turn), its scheduled and retried tasks made due every forward.
type queueServer struct {
	queue         string
	concurrency   int
	poll, forward time.Duration
	retryDelay    asynq.RetryDelayFunc
}

// Start runs the ring, watch and notify servers.
func (w *Worker) Start() error {
	var qs []queueServer
	if !w.cfg.SkipRing {
		// Only rings, stops and timeouts on the ring server: a ring push never queues behind watchdog ticks,
		// which come due in bursts (queue.QueueWatch). Ticks from before the watch queue existed still run there.
		qs = append(qs,
			queueServer{queue.QueueRing, w.cfg.RingConcurrency, w.cfg.RingPollInterval, w.cfg.DelayedCheckInterval, ringRetryDelay},
			queueServer{queue.QueueWatch, watchConcurrency, watchPollInterval, watchForwardInterval, ringRetryDelay})
	}
	if !w.cfg.SkipNotify {
		qs = append(qs, queueServer{queue.QueueNotify, w.cfg.NotifyConcurrency, 100 * time.Millisecond, time.Second, notifyRetryDelay})
	}
	if w.cfg.Webhooks != nil {
		// Its own few slots: a receiver that takes its timeout to answer holds these, never a ring's.
		qs = append(qs, queueServer{queue.QueueWebhook, webhookConcurrency, 100 * time.Millisecond, time.Second, w.cfg.Webhooks.RetryDelay})
	}
	// A worker starts while Redis is away (Asynq retries until it is back); it then serves its own shards only.
	ctx, cancel := context.WithTimeout(context.Background(), queueListTimeout)
	existing, err := queue.KnownQueues(ctx, w.cfg.Redis)
	cancel()
	if err != nil {
		w.log.Warn("cannot list the queues in Redis: serving the configured shards only", "err", err)
	}
	layout := queue.NewLayout(w.cfg.QueueShards)
	if w.ringFirst != nil && w.cfg.RingsElsewhere != nil {
		go w.followRingsElsewhere(w.cfg.RingsElsewhere)
	}
	h := w.Handler()
	for _, q := range qs {
		// Equal weights: Asynq tries a server's queues in a random order on each poll, so every shard is
		// served alike.
		shards := map[string]int{}
		for _, name := range queue.AllShards(q.queue, layout.Names(q.queue), existing) {
			shards[name] = 1
		}
		srv := asynq.NewServerFromRedisClient(w.cfg.Redis, asynq.Config{
			Concurrency:              q.concurrency,
			Queues:                   shards,
			TaskCheckInterval:        q.poll,
			DelayedTaskCheckInterval: q.forward,
			RetryDelayFunc:           q.retryDelay,
			IsFailure:                isFailure,
			ShutdownTimeout:          w.cfg.ShutdownTimeout,
			Logger:                   asynqLogger{w.log},
			LogLevel:                 asynq.WarnLevel,
			ErrorHandler:             asynq.ErrorHandlerFunc(w.taskFailed),
		})
		handler := h
		if w.ringTasks != nil && (q.queue == queue.QueueRing || q.queue == queue.QueueWatch) {
			handler = w.ringTasks.track(h)
		}
		if err := srv.Start(handler); err != nil {
			w.Shutdown() // the servers started so far
			return fmt.Errorf("start %s server: %w", q.queue, err)
		}
		w.servers = append(w.servers, srv)
	}
	return nil
}

// Shutdown stops taking tasks, lets running ones finish within ShutdownTimeout and hands the rest back.
func (w *Worker) Shutdown() {
	var wg sync.WaitGroup
	for _, s := range w.servers {
		wg.Go(s.Shutdown)
	}
	wg.Wait()
}

func (w *Worker) taskFailed(ctx context.Context, t *asynq.Task, err error) {
	if errors.Is(err, errWaitForRing) {
		return
	}
	w.cfg.Metrics.Retries.WithLabelValues(t.Type()).Inc()
	retried, _ := asynq.GetRetryCount(ctx)
	id, _ := asynq.GetTaskID(ctx)
	w.log.Warn("task failed", "task", t.Type(), "task_id", id, "retried", retried, "err", err)
}

// asynqLogger sends Asynq's own logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
