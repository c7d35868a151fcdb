package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
)

// The delivery engine: a task's pushes go out deliverParallel at a time, each to a device its ledger does not
// hold yet; successes are recorded in the ledger, dead tokens pruned, and the verdicts turned into the task's
// result (ARCHITECTURE.md, invariants 5 and 9).

// delivery is one task's pushes on their way.
type delivery struct {
	// log names the call and the ring or notification of every push line.
	log    *slog.Logger
	ledger ledger
	// reached is the ledger's tokens when the handler has them already (a ring's came with its lease); nil
	// reads them.
	reached map[string]bool
	// batch is how many successes are written to the ledger at once: 1 for rings and stops, whose every push
	// must be on record at once, ledgerBatch for notifications.
	batch int
	// ringStart is when a ring's task was enqueued, for ringer_ring_latency_seconds; zero for other pushes.
	ringStart time.Time
	// summary is for tasks that serve many members (notification batches): each push's line names its member,
	// a push that went out is logged at Debug rather than Info, and the task logs one Info line with the
	// counts (outcome.logSummary). Rings and stops, the product, keep an Info line per push; a push to retry
	// or refused is a Warn line whatever the task.
	summary bool
}

// ledger is the set of device tokens one push has reached (ARCHITECTURE.md, invariant 5): a retry skips them,
// a stop goes to a ring's. The first record gives it its time to live, keep.
type ledger struct {
	rdb  redis.UniversalClient
	key  string
	keep time.Duration
	// patience is how long a record is retried while Redis is away (recordPatience).
	patience time.Duration
}

// ledgerAt is the ledger under key, kept keep.
func (w *Worker) ledgerAt(key string, keep time.Duration) ledger {
	return ledger{rdb: w.cfg.Redis, key: key, keep: keep, patience: w.recordPatience}
}

// reached is the set of tokens on record.
func (l ledger) reached(ctx context.Context) (map[string]bool, error) {
	tokens, err := l.rdb.SMembers(ctx, l.key).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", l.key, err)
	}
	return tokenSet(tokens), nil
}

// record adds tokens whose pushes succeeded; first gives the ledger its time to live. The pushes have left,
// so the record is retried through a short Redis outage rather than lost, which would send them again.
func (l ledger) record(ctx context.Context, tokens []string, first bool) error {
	ctx = context.WithoutCancel(ctx)
	members := make([]any, len(tokens))
	for i, t := range tokens {
		members[i] = t
	}
	var err error
	wait := 50 * time.Millisecond
	for deadline := time.Now().Add(l.patience); ; {
		pipe := l.rdb.Pipeline()
		pipe.SAdd(ctx, l.key, members...)
		if first {
			pipe.Expire(ctx, l.key, l.keep)
		}
		if _, err = pipe.Exec(ctx); err == nil {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("record push in %s: %w", l.key, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// outcome gathers the verdicts of one delivery's pushes and writes its successes to the ledger, batch at a
// time. Its methods are safe for the delivery's goroutines.
type outcome struct {
	ledger ledger
	batch  int

	mu         sync.Mutex
	recorded   bool     // the ledger exists and has its time to live
	unrecorded []string // sent, not yet in the ledger
	recordErr  error
	retry      bool
	retryAfter time.Duration
	rejected   []string
	tally      map[providers.Verdict]int
}

// count notes one push's verdict for the task's summary line.
func (o *outcome) count(v providers.Verdict) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tally == nil {
		o.tally = map[providers.Verdict]int{}
	}
	o.tally[v]++
}

// logSummary is a summing-up delivery's one Info line: how many of its devices' pushes went out, are to be
// retried, were refused (the token dead, or the payload), or had gone out before (a retried task).
func (o *outcome) logSummary(ctx context.Context, log *slog.Logger, devices, before int, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	log.LogAttrs(ctx, slog.LevelInfo, "notification batch pushed", slog.Int("devices", devices),
		slog.Int("sent", o.tally[providers.Sent]), slog.Int("retry", o.tally[providers.Retry]),
		slog.Int("refused", o.tally[providers.Unregistered]+o.tally[providers.Rejected]),
		slog.Int("sent_before", before), slog.Int64("ms", took.Milliseconds()))
}

// halted says whether the ledger failed to record: a push sent now would be sent again on the retry.
func (o *outcome) halted() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.recordErr != nil
}

// sent notes a push that reached token, and records what is due.
func (o *outcome) sent(ctx context.Context, token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unrecorded = append(o.unrecorded, token)
	if len(o.unrecorded) >= o.batch {
		o.flush(ctx)
	}
}

// retryLater notes a push the provider asked to retry, after at least after.
func (o *outcome) retryLater(after time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retry = true
	o.retryAfter = max(o.retryAfter, after)
}

// reject notes a push whose payload the provider refused.
func (o *outcome) reject(token, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejected = append(o.rejected, providers.TokenSuffix(token)+": "+reason)
}

// flush writes the pushes sent so far to the ledger; the caller holds mu.
func (o *outcome) flush(ctx context.Context) {
	if len(o.unrecorded) == 0 || o.recordErr != nil {
		return
	}
	if err := o.ledger.record(ctx, o.unrecorded, !o.recorded); err != nil {
		o.recordErr = err
		return
	}
	o.recorded, o.unrecorded = true, o.unrecorded[:0]
}

// result records what is left and says what becomes of the task: retried (after the longest Retry-After),
// failed without retry for a rejected payload, or done.
func (o *outcome) result(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flush(ctx)
	switch {
	case o.recordErr != nil:
		// The pushes went out; a retry may repeat only those whose record was lost (at least once).
		return o.recordErr
	case o.retry:
		return &retryAfterError{after: o.retryAfter, err: errors.New("provider asked to retry")}
	case len(o.rejected) > 0:
		return fmt.Errorf("payload rejected by provider for %v: %w", o.rejected, asynq.SkipRetry)
	}
	return nil
}

// deliver sends each push whose device is not yet in the ledger, deliverParallel at a time, and answers the
// task's result (outcome.result).
func (w *Worker) deliver(ctx context.Context, d delivery, pushes []target) error {
	if len(pushes) == 0 {
		d.log.Info("no device to push to")
		return nil
	}
	reached := d.reached
	if reached == nil {
		var err error
		if reached, err = d.ledger.reached(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	o := &outcome{ledger: d.ledger, batch: d.batch, recorded: len(reached) > 0}
	todo := make([]target, 0, len(pushes))
	for _, p := range pushes {
		if !reached[p.dev.ID] {
			todo = append(todo, p)
		}
	}
	before := len(pushes) - len(todo)
	// deliverParallel goroutines take the pushes in turn, rather than a goroutine each: each push runs deep
	// (HTTP/2, TLS), and a new goroutine grows its stack from the smallest size every time, where one that
	// sends several pushes grows it once.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(deliverParallel, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				// A halted outcome: the ledger failed, and a push sent now would be sent again on the retry.
				if i >= len(todo) || o.halted() {
					return
				}
				w.deliverOne(ctx, d, o, todo[i])
			}
		}()
	}
	wg.Wait()
	if d.summary {
		o.logSummary(ctx, d.log, len(pushes), before, time.Since(start))
	}
	return o.result(ctx)
}

// deliverOne sends one push and notes its verdict; a dead token is pruned.
func (w *Worker) deliverOne(ctx context.Context, d delivery, o *outcome, p target) {
	member := p.dev.UserID
	sentAt := time.Now()
	var res providers.Result
	var providerName string
	var took time.Duration
	if p.form == alert {
		res, providerName, took = w.sendNotification(ctx, p)
	} else {
		res, providerName, took = w.sendRing(ctx, p, d.ringStart)
	}
	logPush(ctx, d, p, res, providerName, took)
	if d.summary {
		o.count(res.Verdict)
	}
	switch res.Verdict {
	case providers.Sent:
		o.sent(ctx, p.dev.ID)
	case providers.Retry:
		o.retryLater(res.RetryAfter)
	case providers.Unregistered:
		// Without the provider's word on when the token died, the send time keeps a registration made after it.
		since := res.InvalidSince
		if since.IsZero() {
			since = sentAt
		}
		if _, err := w.cfg.Devices.Prune(context.WithoutCancel(ctx), member, p.dev.ID, since); err != nil {
			d.log.Error("token not pruned", "member", member, "provider", p.dev.PushProvider, "provider_name", providerName, "token", providers.TokenSuffix(p.dev.ID), "err", err)
		} else {
			w.cfg.Metrics.Pruned.WithLabelValues(p.dev.PushProvider, providerName).Inc()
		}
	case providers.Rejected:
		o.reject(p.dev.ID, res.Reason)
	}
}

// sendRing is the one place a ring or stop push leaves for its provider.
func (w *Worker) sendRing(ctx context.Context, p target, ringStart time.Time) (providers.Result, string, time.Duration) {
	return w.send(ctx, p, ringStart)
}

// sendNotification is the one place a notification, missed-call or reminder push leaves for its provider.
func (w *Worker) sendNotification(ctx context.Context, p target) (providers.Result, string, time.Duration) {
	if w.ringFirst != nil && isNotification(ctx) {
		release, err := w.ringFirst.admit(ctx)
		if err != nil {
			return providers.Result{Verdict: providers.Retry, Reason: "task ended while waiting for rings", Err: err}, "", 0
		}
		defer release()
	}
	return w.send(ctx, p, time.Time{})
}

// send makes one push through the device's provider, counts it, and returns its verdict, the provider's name
// and how long the provider took.
func (w *Worker) send(ctx context.Context, p target, ringStart time.Time) (providers.Result, string, time.Duration) {
	p.push.Token = p.dev.ID
	typ := p.dev.PushProvider
	name, sender, pickErr := w.pick(typ, p.dev.PushProviderName)
	start := time.Now()
	var res providers.Result
	if pickErr != nil {
		// The device names a provider this process does not have (removed from the file): no retry can
		// reach it, and the token is not dead, so it is neither retried nor pruned.
		res = providers.Result{Verdict: providers.Rejected, Reason: "provider not configured", Err: pickErr}
	} else if wait := w.paused.remaining(name, start); wait > 0 {
		res = providers.Result{Verdict: providers.Retry, RetryAfter: wait, Reason: "provider asked to slow down"}
	} else {
		sendCtx, cancel := context.WithTimeout(ctx, sendTimeout)
		res = sender.Send(sendCtx, p.push)
		cancel()
		if res.Verdict == providers.Retry && res.RetryAfter > 0 {
			// Only this provider slows down: another app's or environment's provider has its own quota.
			w.paused.pause(name, time.Now(), res.RetryAfter)
		}
	}
	took := time.Since(start)
	kind := p.push.Data["type"]
	w.cfg.Metrics.observePush(typ, name, kind, res.Verdict.String(), took)
	if res.Verdict == providers.Sent && kind == queue.EventRing && !ringStart.IsZero() {
		w.cfg.Metrics.RingSeconds.Observe(time.Since(ringStart).Seconds())
	}
	return res, name, took
}

// logPush writes one push's line: "push sent" at Info (Debug in a summing-up delivery, delivery.summary),
// "push to retry" or "push refused" at Warn. The attributes are built only for a line the handler keeps.
func logPush(ctx context.Context, d delivery, p target, res providers.Result, name string, took time.Duration) {
	msg, level := "push sent", slog.LevelInfo
	switch res.Verdict {
	case providers.Sent:
		if d.summary {
			level = slog.LevelDebug
		}
	case providers.Retry:
		msg, level = "push to retry", slog.LevelWarn
	default:
		msg, level = "push refused", slog.LevelWarn
	}
	if !d.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	if d.summary {
		attrs = append(attrs, slog.String("member", p.dev.UserID))
	}
	attrs = append(attrs, slog.String("provider", p.dev.PushProvider), slog.String("provider_name", name),
		slog.String("type", p.push.Data["type"]), slog.String("kind", p.push.Kind.String()), slog.Bool("voip", p.push.VoIP),
		slog.String("token", providers.TokenSuffix(p.dev.ID)), slog.String("verdict", res.Verdict.String()),
		slog.Int64("ms", took.Milliseconds()))
	switch res.Verdict {
	case providers.Sent:
		if res.Reason != "" { // the log sink's "logged, not sent"
			attrs = append(attrs, slog.String("reason", res.Reason))
		}
	case providers.Retry:
		attrs = append(attrs, slog.String("reason", res.Reason), slog.Duration("retry_after", res.RetryAfter), slog.Any("err", res.Err))
	default:
		attrs = append(attrs, slog.String("reason", res.Reason), slog.Any("err", res.Err))
	}
	d.log.LogAttrs(ctx, level, msg, attrs...)
}

// pick finds the sender of a device: through Providers when set, else the one sender of its type.
func (w *Worker) pick(typ, name string) (string, Sender, error) {
	if w.cfg.Providers != nil {
		return w.cfg.Providers.Pick(typ, name)
	}
	if typ == providers.APN {
		return typ, w.cfg.APNs, nil
	}
	return typ, w.cfg.FCM, nil
}
