package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
)

// The Asynq handlers. Each decodes its task, names the call and the ring or notification in its log, asks
// targets.go which device gets which push, and hands the pushes to the delivery engine (deliver.go).

// HandleRing sends the ring push to every device of one member while the member is still rung. It holds the
// member's lease while it works, renewing it, so that a stop waits for it and the watchdog can tell a live
// worker from a dead one.
func (w *Worker) HandleRing(ctx context.Context, t *asynq.Task) error {
	var task queue.RingTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	log := w.log.With("cid", task.Call.CID, "ring_id", task.RingID, "member", task.Member)
	now := time.Now()
	if now.UnixMilli() >= task.EndsAt {
		log.Info("ring over before its push left", "reason", "timeout")
		return fmt.Errorf("ring %s to %s: over: %w", task.RingID, task.Member, asynq.RevokeTask)
	}
	// The member's devices are read while the gate is asked, and the gate answers the push's ledger with the
	// lease: one round trip on the way to the phone where there were three. A ring the gate turns away has
	// read the devices for nothing.
	ahead := w.readTargets(ctx, task.Member)
	admission, lease, err := w.gate.Admit(ctx, task.Call.CID, task.RingID, task.Member, queue.RingTaskID(task.RingID, task.Member), now)
	if err != nil {
		return fmt.Errorf("ring %s to %s: gate: %w", task.RingID, task.Member, err)
	}
	switch admission {
	case gate.Over:
		log.Info("ring stopped before its push left")
		return fmt.Errorf("ring %s to %s: stopped: %w", task.RingID, task.Member, asynq.RevokeTask)
	case gate.Held, gate.Delivered:
		return nil // another worker has it, or had it: this task is a duplicate
	}
	stopRenew := lease.KeepAlive(ctx)
	ringCtx, cancel := context.WithDeadline(ctx, queue.FromUnixMs(task.EndsAt))
	first := known{targets: ahead, reached: tokenSet(lease.Reached)}
	err = withQuickRetries(ringCtx, func() error {
		// A quick retry reads both again: its own first try's pushes are in the ledger.
		k := first
		first = known{}
		return w.ringDevices(ringCtx, log, task, k)
	})
	cancel()
	stopRenew()
	done, wait := true, time.Duration(0)
	if err != nil && !errors.Is(err, asynq.SkipRetry) {
		done, wait = false, retryWait(err)
	}
	if rerr := lease.Release(ctx, done, wait, w.ledgerKeep(task.EndsAt)); rerr != nil {
		log.Warn("ring lease not released; it lapses by itself", "err", rerr)
	}
	return err
}

// ledgerKeep is how long a ring's ledger and delivered set are kept: the configured time, and at least
// MinLedgerTTL past the ring's end, so that neither lapses while the ring or its stops may still need it.
func (w *Worker) ledgerKeep(endsAt int64) time.Duration {
	return max(w.cfg.LedgerTTL, time.Until(queue.FromUnixMs(endsAt))+MinLedgerTTL)
}

// ringDevices sends the ring push to the member's devices (ringRoutes) that its ring ledger lacks, reading
// what k does not already know.
func (w *Worker) ringDevices(ctx context.Context, log *slog.Logger, task queue.RingTask, k known) error {
	t, err := w.targetsOf(ctx, task.Member, k.targets)
	if err != nil {
		return fmt.Errorf("ring %s to %s: devices: %w", task.RingID, task.Member, err)
	}
	routes := ringRoutes(t.Devices)
	if w.suppressed(log, "", t.Preferences, queue.EventRing, len(routes)) {
		// The member is still rung (its calls, events and webhooks say so, and the ring times out as
		// usual); only its devices are spared. The task is done: the watchdog has nothing to rescue.
		return nil
	}
	m := newMessage(task.Call, queue.EventRing, task.Member, task.RingID)
	m.expires, m.collapseID = queue.FromUnixMs(task.EndsAt), collapseID(task.RingID)
	pushes, err := w.targets(routes, m)
	if err != nil {
		return err
	}
	d := delivery{log: log, ledger: w.ringLedger(task.Call.CID, task.RingID, task.Member, w.ledgerKeep(task.EndsAt)), batch: 1, reached: k.reached}
	if task.EnqueuedAt > 0 {
		d.ringStart = queue.FromUnixMs(task.EnqueuedAt)
	}
	return w.deliver(ctx, d, pushes)
}

// ringLedger is the ledger of one member's ring push: the devices a stop goes to.
func (w *Worker) ringLedger(cid, ringID, member string, keep time.Duration) ledger {
	return w.ledgerAt(gate.LedgerKey(cid, queue.RingTaskID(ringID, member)), keep)
}

// HandleStop tells the devices that got a member's ring to stop: a silent stop push (stopRoutes), or, for
// call.missed, the missed-call alert that is the stop (alertRoutes).
func (w *Worker) HandleStop(ctx context.Context, t *asynq.Task) error {
	var task queue.StopTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	cid := task.Call.CID
	log := w.log.With("cid", cid, "ring_id", task.RingID, "member", task.Member, "event", task.Event)
	// The wait is short (the ring's sends are bounded) and blocks here rather than going through an Asynq
	// retry, which only comes due at the ring server's next check of delayed tasks; past gate.StopWait it
	// goes back to Asynq.
	// The member's devices and the stop's own ledger (which only this task adds to) are read during the wait,
	// and the ring's ledger with the lease that ends it: it is complete only once no ring push is in flight.
	ahead := w.readTargets(ctx, task.Member)
	d := delivery{log: log, ledger: w.ledgerAt(gate.LedgerKey(cid, queue.StopTaskID(task.RingID, task.Member)), w.cfg.LedgerTTL), batch: 1}
	stopLedger := readAhead(func() (map[string]bool, error) { return d.ledger.reached(ctx) })
	idle, rang, err := w.gate.WaitIdleThenRead(ctx, cid, task.RingID, task.Member, gate.StopWait, queue.RingTaskID(task.RingID, task.Member))
	if err != nil {
		return fmt.Errorf("stop %s for %s: %w", task.RingID, task.Member, err)
	} else if !idle {
		return fmt.Errorf("stop %s for %s: %w", task.RingID, task.Member, errWaitForRing)
	}
	targets, err := w.targetsOf(ctx, task.Member, ahead)
	if err != nil {
		return fmt.Errorf("stop %s for %s: devices: %w", task.RingID, task.Member, err)
	}
	devs, prefs, reached := targets.Devices, targets.Preferences, tokenSet(rang)
	m := newMessage(task.Call, task.Event, task.Member, task.RingID)
	m.collapseID = collapseID(task.RingID)
	routes := stopRoutes(devs, reached)
	// A member who turned pushes off gets no missed-call alert; the devices its ring reached before still
	// get their stop, silent, as for any other end of the ring (stop pushes are never withheld).
	if task.Event == queue.EventMissed {
		if alerts := alertRoutes(devs); !w.suppressed(log, "", prefs, queue.EventMissed, len(alerts)) {
			routes, m.expires = alerts, time.Now().Add(w.cfg.NotifyTTL)
		}
	}
	pushes, err := w.targets(routes, m)
	if err != nil {
		return err
	}
	if r := <-stopLedger; r.err == nil {
		d.reached = r.v // else the first try reads it again
	}
	return withQuickRetries(ctx, func() error {
		err := w.deliver(ctx, d, pushes)
		d.reached = nil // a quick retry reads the ledger again: its first try's pushes are in it
		return err
	})
}

// HandleNotify sends the call.notification (or call.reminder) alert to every device that shows alerts
// (alertRoutes) of each member of one batch.
func (w *Worker) HandleNotify(ctx context.Context, t *asynq.Task) error {
	var task queue.NotifyTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	cid := task.Call.CID
	log := w.log.With("cid", cid, "notify_id", task.NotifyID, "batch", task.Batch)
	byUser, err := w.cfg.Devices.TargetsMany(ctx, task.Members)
	if err != nil {
		return fmt.Errorf("notify %s batch %d: devices: %w", task.NotifyID, task.Batch, err)
	}
	event := task.Event
	if event == "" {
		event = queue.EventNotification
	}
	expires := time.Now().Add(w.cfg.NotifyTTL)
	// Every member gets the same event of the same call: a text that does not name its receiver is rendered
	// once per platform and locale.
	texts := w.cfg.Templates.Memo()
	var pushes []target
	for _, member := range task.Members {
		targets := byUser[member]
		routes := alertRoutes(targets.Devices)
		if w.suppressed(log, member, targets.Preferences, event, len(routes)) {
			continue
		}
		m := newMessage(task.Call, event, member, "")
		m.expires, m.texts = expires, texts
		ps, err := w.targets(routes, m)
		if err != nil {
			return err
		}
		pushes = append(pushes, ps...)
	}
	d := delivery{log: log, ledger: w.ledgerAt(gate.BatchLedgerKey(cid, queue.NotifyTaskID(task.NotifyID, task.Batch)), w.cfg.LedgerTTL), batch: ledgerBatch, summary: true}
	return w.deliver(ctx, d, pushes)
}

// HandleReminder reminds the members of a scheduled call who have not joined (API.md, "Reminders"): it reads
// the call again and reminds nobody when the call ended or its starts_at moved (the move scheduled a reminder
// of its own), then sends call.reminder as a notification whose id is the reminder's, so that a retried or
// repeated reminder enqueues the same notification tasks and each device gets one push.
func (w *Worker) HandleReminder(ctx context.Context, t *asynq.Task) error {
	var task queue.ReminderTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	log := w.log.With("cid", task.CID, "starts_at", queue.FromUnixMs(task.StartsAt).UTC())
	info, members, due, err := w.cfg.Calls.Reminder(ctx, task.CID, task.StartsAt)
	if err != nil {
		return fmt.Errorf("reminder of %s: %w", task.CID, err)
	}
	if !due {
		log.Info("reminder dropped: the call ended, or its starts_at moved or passed")
		return nil
	}
	notifyID := queue.ReminderNotifyID(task.CID, task.StartsAt)
	if err := w.cfg.Queue.Notify(ctx, info, notifyID, queue.EventReminder, members); err != nil {
		return fmt.Errorf("reminder of %s: %w", task.CID, err)
	}
	log.Info("reminder enqueued", "notify_id", notifyID, "members", len(members))
	return nil
}

// HandleTimeout settles a ring at its member or ring deadline.
func (w *Worker) HandleTimeout(ctx context.Context, t *asynq.Task) error {
	var task queue.TimeoutTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	// Asynq keeps a scheduled task's time in whole seconds, truncated, so this task can start up to a second
	// before its moment: wait for it, to end the ring on time rather than find nobody due yet.
	if early := time.Until(queue.FromUnixMs(task.At)); early > 0 {
		select {
		case <-time.After(early):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := w.cfg.Calls.Expire(ctx, task.CID, task.RingID); err != nil {
		return fmt.Errorf("timeout of ring %s: %w", task.RingID, err)
	}
	return nil
}
