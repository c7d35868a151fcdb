package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

// HandleRing sends the ring push to every device of one member while the member is still rung. It holds the
// member's lease while it works, renewing it, so that a stop waits for it and the watchdog can tell a live
// worker from a dead one.
func (w *Worker) HandleRing(ctx context.Context, t *asynq.Task) error {
	var task queue.RingTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	cid := task.Call.CID
	log := w.log.With("cid", cid, "ring_id", task.RingID, "member", task.Member)
	now := time.Now()
	if now.UnixMilli() >= task.EndsAt {
		log.Info("ring over before its push left", "reason", "timeout")
		return fmt.Errorf("ring %s to %s: over: %w", task.RingID, task.Member, asynq.RevokeTask)
	}
	admission, lease, err := w.gate.Admit(ctx, cid, task.RingID, task.Member, now)
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
	err = w.withQuickRetries(ringCtx, func() error { return w.ringDevices(ringCtx, log, task) })
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

// retryWait is how long a retried ring push waits: the provider's Retry-After, else the longest quick retry.
func retryWait(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > 0 {
		return ra.after + 500*time.Millisecond
	}
	return maxRingRetryDelay + 500*time.Millisecond
}

// ringDevices sends the ring push to each of the member's devices: FCM tokens a data message, VoIP tokens a
// VoIP push, regular APNs tokens an alert only when the member has no VoIP token.
func (w *Worker) ringDevices(ctx context.Context, log *slog.Logger, task queue.RingTask) error {
	devs, prefs, err := w.cfg.Devices.Targets(ctx, task.Member)
	if err != nil {
		return fmt.Errorf("ring %s to %s: devices: %w", task.RingID, task.Member, err)
	}
	hasVoIP := false
	for _, d := range devs {
		if d.PushProvider == providers.APN && d.VoIPToken {
			hasVoIP = true
		}
	}
	base := pushData(task.Call, queue.EventRing, task.Member, task.RingID)
	ring := providers.Push{Kind: providers.KindRing, Data: base, Expires: queue.FromUnixMs(task.EndsAt), CollapseID: collapseID(task.RingID)}
	var pushes []target
	for _, d := range devs {
		switch {
		case d.PushProvider == providers.Firebase:
			pushes = append(pushes, target{dev: d, push: ring})
		case d.VoIPToken:
			voip := ring
			voip.VoIP = true
			pushes = append(pushes, target{dev: d, push: voip})
		case !hasVoIP:
			r, err := w.render(queue.EventRing, d, task.Call)
			if err != nil {
				return err
			}
			alert := ring
			alert.Title, alert.Body = r.Title, r.Body
			pushes = append(pushes, target{dev: d, push: alert})
		}
	}
	if w.suppressed(log, "", prefs, queue.EventRing, len(pushes)) {
		// The member is still rung (its calls, events and webhooks say so, and the ring times out as
		// usual); only its devices are spared. The task is done: the watchdog has nothing to rescue.
		return nil
	}
	start := time.Time{}
	if task.EnqueuedAt > 0 {
		start = queue.FromUnixMs(task.EnqueuedAt)
	}
	return w.deliver(ctx, log, gate.LedgerKey(task.Call.CID, queue.RingTaskID(task.RingID, task.Member)), w.ledgerKeep(task.EndsAt), pushes, start, 1)
}

// HandleStop tells the devices that got a member's ring to stop: a silent stop push, or, for call.missed,
// the missed-call alert that is the stop.
func (w *Worker) HandleStop(ctx context.Context, t *asynq.Task) error {
	var task queue.StopTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	cid := task.Call.CID
	log := w.log.With("cid", cid, "ring_id", task.RingID, "member", task.Member, "event", task.Event)
	// The wait is short (the ring's sends are bounded) and blocks here rather than going through an Asynq
	// retry, which would add tens of milliseconds to the stop; past gate.StopWait it goes back to Asynq.
	if idle, err := w.gate.WaitIdle(ctx, cid, task.RingID, []string{task.Member}, gate.StopWait); err != nil {
		return fmt.Errorf("stop %s for %s: %w", task.RingID, task.Member, err)
	} else if !idle {
		return fmt.Errorf("stop %s for %s: %w", task.RingID, task.Member, errWaitForRing)
	}
	devs, prefs, err := w.cfg.Devices.Targets(ctx, task.Member)
	if err != nil {
		return fmt.Errorf("stop %s for %s: devices: %w", task.RingID, task.Member, err)
	}
	rung, err := w.cfg.Redis.SMembers(ctx, gate.LedgerKey(cid, queue.RingTaskID(task.RingID, task.Member))).Result()
	if err != nil {
		return fmt.Errorf("stop %s for %s: ring ledger: %w", task.RingID, task.Member, err)
	}
	reached := make(map[string]bool, len(rung))
	for _, tok := range rung {
		reached[tok] = true
	}
	data := pushData(task.Call, task.Event, task.Member, task.RingID)
	var pushes []target
	// A member who turned pushes off gets no missed-call alert; the devices its ring reached before still
	// get their stop, silent, as for any other end of the ring (stop pushes are never withheld).
	if task.Event == queue.EventMissed && !w.suppressed(log, "", prefs, queue.EventMissed, countAlertDevices(devs)) {
		// The missed-call alert goes to every device that shows alerts, rung or not: it is the stop and the
		// record of the call.
		for _, d := range devs {
			if d.VoIPToken {
				continue
			}
			r, err := w.render(queue.EventMissed, d, task.Call)
			if err != nil {
				return err
			}
			pushes = append(pushes, target{dev: d, push: providers.Push{Kind: providers.KindAlert, Data: data, Title: r.Title, Body: r.Body,
				Expires: time.Now().Add(w.cfg.NotifyTTL), CollapseID: collapseID(task.RingID)}})
		}
	} else {
		voipRang := false
		for _, d := range devs {
			if d.VoIPToken && reached[d.ID] {
				voipRang = true
			}
		}
		for _, d := range devs {
			// A VoIP push must show a call, so a VoIP-rung member is stopped through its regular APNs tokens.
			switch {
			case d.VoIPToken:
				continue
			case reached[d.ID], d.PushProvider == providers.APN && voipRang:
				pushes = append(pushes, target{dev: d, push: providers.Push{Kind: providers.KindStop, Data: data, CollapseID: collapseID(task.RingID)}})
			}
		}
	}
	ledger := gate.LedgerKey(cid, t.ResultWriter().TaskID())
	return w.withQuickRetries(ctx, func() error { return w.deliver(ctx, log, ledger, w.cfg.LedgerTTL, pushes, time.Time{}, 1) })
}

// quickRetries are the waits, before jitter, between tries of a ring or stop push inside its handler: a
// phone must ring or stop within moments, and Asynq's own retries are only as fine as whole seconds.
var quickRetries = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

// withQuickRetries runs try again after a short jittered wait while it asks to be retried, resending only
// what the ledger lacks; a longer Retry-After, or a fourth failure, goes back to Asynq.
func (w *Worker) withQuickRetries(ctx context.Context, try func() error) error {
	err := try()
	for _, base := range quickRetries {
		var ra *retryAfterError
		if !errors.As(err, &ra) {
			return err
		}
		wait := jitter(base)
		if ra.after > time.Second {
			return err
		}
		wait = max(wait, ra.after)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		err = try()
	}
	return err
}

// HandleNotify sends the call.notification alert to every device that shows alerts of each member of one
// batch.
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
	var pushes []target
	for _, member := range task.Members {
		targets := byUser[member]
		if w.suppressed(log, member, targets.Preferences, event, countAlertDevices(targets.Devices)) {
			continue
		}
		data := pushData(task.Call, event, member, "")
		for _, d := range targets.Devices {
			if d.VoIPToken {
				continue // a VoIP push must show a call
			}
			r, err := w.render(event, d, task.Call)
			if err != nil {
				return err
			}
			pushes = append(pushes, target{dev: d, push: providers.Push{Kind: providers.KindAlert, Data: data, Title: r.Title, Body: r.Body, Expires: expires}, logMember: true})
		}
	}
	return w.deliver(ctx, log, gate.LedgerKey(cid, queue.NotifyTaskID(task.NotifyID, task.Batch)), w.cfg.LedgerTTL, pushes, time.Time{}, ledgerBatch)
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

// collapseID is the collapse id (apns-collapse-id, FCM collapse_key) of every push of one ring, its ring and
// its stops alike: a device that was offline gets only the latest of them, never a stale ring after its stop.
func collapseID(ringID string) string { return "ring-" + ringID }

// suppressed says whether a member's push preferences withhold its pushes of event now, and if so logs it
// and counts the n pushes withheld. log names the call and the ring or notification, and the member unless
// member is given (a notification task serves many members).
func (w *Worker) suppressed(log *slog.Logger, member string, prefs devices.Preferences, event string, n int) bool {
	if !prefs.Muted(time.Now()) {
		return false
	}
	reason := "call_level none"
	if prefs.CallLevel != devices.CallLevelNone {
		reason = "disabled_until " + prefs.DisabledUntil.Format(time.RFC3339)
	}
	w.cfg.Metrics.Suppressed.WithLabelValues(event).Add(float64(n))
	attrs := []any{"type", event, "reason", reason, "devices", n}
	if member != "" {
		attrs = append(attrs, "member", member)
	}
	log.Info("push suppressed: the member turned pushes off", attrs...)
	return true
}

// countAlertDevices is how many of devs show alerts: every device but VoIP tokens.
func countAlertDevices(devs []devices.Device) int {
	n := 0
	for _, d := range devs {
		if !d.VoIPToken {
			n++
		}
	}
	return n
}

type target struct {
	dev  devices.Device
	push providers.Push
	// logMember adds the member to the push's log line, for tasks that serve many members.
	logMember bool
}

// deliver sends each push whose device is not yet in the ledger, deliverParallel at a time, records
// successes batch at a time (1 for rings and stops, whose every push must be on record at once), prunes dead
// tokens, and turns the verdicts into the task's result: retry (after the longest
// Retry-After), fail without retry for a rejected payload, or done.
func (w *Worker) deliver(ctx context.Context, log *slog.Logger, ledger string, keep time.Duration, pushes []target, ringStart time.Time, batch int) error {
	if len(pushes) == 0 {
		log.Info("no device to push to")
		return nil
	}
	done, err := w.cfg.Redis.SMembers(ctx, ledger).Result()
	if err != nil {
		return fmt.Errorf("ledger %s: %w", ledger, err)
	}
	sent := make(map[string]bool, len(done))
	for _, tok := range done {
		sent[tok] = true
	}
	var (
		mu         sync.Mutex
		retry      bool
		retryAfter time.Duration
		rejected   []string
		recordErr  error
		recorded   = len(done) > 0 // the ledger exists and has its time to live
		unrecorded []string        // sent, not yet in the ledger: written ledgerBatch at a time
		wg         sync.WaitGroup
		slots      = make(chan struct{}, deliverParallel)
	)
	// flush writes the pushes sent so far to the ledger; the caller holds mu.
	flush := func() {
		if len(unrecorded) == 0 || recordErr != nil {
			return
		}
		if err := w.record(ctx, ledger, keep, unrecorded, !recorded); err != nil {
			recordErr = err
			return
		}
		recorded, unrecorded = true, unrecorded[:0]
	}
	for _, p := range pushes {
		if sent[p.dev.ID] {
			continue
		}
		slots <- struct{}{}
		mu.Lock()
		halted := recordErr != nil
		mu.Unlock()
		if halted {
			// The ledger cannot record (Redis is gone): a push sent now would be sent again on the retry.
			<-slots
			break
		}
		release := func() {}
		if w.ringFirst != nil && isNotification(ctx) {
			if release, err = w.ringFirst.admit(ctx); err != nil {
				<-slots
				mu.Lock()
				retry = true
				mu.Unlock()
				break
			}
		}
		wg.Add(1)
		go func() {
			defer func() { release(); <-slots; wg.Done() }()
			member := p.dev.UserID
			plog := log
			if p.logMember {
				plog = log.With("member", member)
			}
			sentAt := time.Now()
			res, providerName := w.send(ctx, plog, p, ringStart)
			mu.Lock()
			defer mu.Unlock()
			switch res.Verdict {
			case providers.Sent:
				unrecorded = append(unrecorded, p.dev.ID)
				if len(unrecorded) >= batch {
					flush()
				}
			case providers.Retry:
				retry = true
				retryAfter = max(retryAfter, res.RetryAfter)
			case providers.Unregistered:
				// Without the provider's word on when the token died, the send time keeps a registration
				// made after it.
				since := res.InvalidSince
				if since.IsZero() {
					since = sentAt
				}
				if _, err := w.cfg.Devices.Prune(context.WithoutCancel(ctx), member, p.dev.ID, since); err != nil {
					log.Error("token not pruned", "member", member, "provider", p.dev.PushProvider, "provider_name", providerName, "token", providers.TokenSuffix(p.dev.ID), "err", err)
				} else {
					w.cfg.Metrics.Pruned.WithLabelValues(p.dev.PushProvider, providerName).Inc()
				}
			case providers.Rejected:
				rejected = append(rejected, providers.TokenSuffix(p.dev.ID)+": "+res.Reason)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	flush()
	mu.Unlock()
	switch {
	case recordErr != nil:
		// The pushes went out; a retry may repeat only those whose record was lost (at least once).
		return recordErr
	case retry:
		return &retryAfterError{after: retryAfter, err: errors.New("provider asked to retry")}
	case len(rejected) > 0:
		return fmt.Errorf("payload rejected by provider for %v: %w", rejected, asynq.SkipRetry)
	}
	return nil
}

// record adds tokens whose pushes succeeded to the ledger; the first record of a ledger gives it its time to
// live. The pushes have left, so the record is retried through a short Redis outage rather than lost, which
// would send them again.
func (w *Worker) record(ctx context.Context, ledger string, keep time.Duration, tokens []string, first bool) error {
	ctx = context.WithoutCancel(ctx)
	members := make([]any, len(tokens))
	for i, t := range tokens {
		members[i] = t
	}
	var err error
	wait := 50 * time.Millisecond
	for deadline := time.Now().Add(recordPatience); ; {
		pipe := w.cfg.Redis.Pipeline()
		pipe.SAdd(ctx, ledger, members...)
		if first {
			pipe.Expire(ctx, ledger, keep)
		}
		if _, err = pipe.Exec(ctx); err == nil {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("record push in %s: %w", ledger, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// send makes one push through the device's provider and returns its verdict and the provider's name.
func (w *Worker) send(ctx context.Context, log *slog.Logger, p target, ringStart time.Time) (providers.Result, string) {
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
	attrs := []any{"provider", typ, "provider_name", name, "type", kind, "kind", p.push.Kind.String(), "voip", p.push.VoIP,
		"token", providers.TokenSuffix(p.dev.ID), "verdict", res.Verdict.String(), "ms", took.Milliseconds()}
	switch res.Verdict {
	case providers.Sent:
		if res.Reason != "" { // the log sink's "logged, not sent"
			attrs = append(attrs, "reason", res.Reason)
		}
		log.Info("push sent", attrs...)
	case providers.Retry:
		log.Warn("push to retry", append(attrs, "reason", res.Reason, "retry_after", res.RetryAfter, "err", res.Err)...)
	default:
		log.Warn("push refused", append(attrs, "reason", res.Reason, "err", res.Err)...)
	}
	return res, name
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

// render is the text of event's push to device d, in d's locale.
func (w *Worker) render(event string, d devices.Device, c queue.CallInfo) (templates.Rendered, error) {
	r, err := w.cfg.Templates.Render(event, d.PushProvider, templates.Data{
		CallCID: c.CID, CallType: c.Type, CallID: c.ID, CallDisplayName: c.DisplayName,
		CallerID: c.CreatedByID, CallerName: c.CreatedByName, ReceiverID: d.UserID, Video: c.Video, Custom: c.Custom,
		Locale: d.Locale,
	})
	if err != nil {
		return r, fmt.Errorf("render %s for %s: %w: %w", event, d.PushProvider, err, asynq.SkipRetry)
	}
	return r, nil
}

// pushData is the string fields every push carries (API.md, "Push payloads").
func pushData(c queue.CallInfo, event, receiver, ringID string) map[string]string {
	video := "false"
	if c.Video {
		video = "true"
	}
	name := c.CreatedByName
	if name == "" {
		name = c.CreatedByID
	}
	// Names are cut as the templates' size budget assumes.
	name = templates.Truncate(name, templates.FieldLimit)
	return map[string]string{
		"sender": "ringer", "type": event,
		"call_cid": c.CID, "call_type": c.Type, "call_id": c.ID, "call_display_name": templates.Truncate(c.DisplayName, templates.FieldLimit),
		"created_by_id": c.CreatedByID, "created_by_display_name": name,
		"receiver_id": receiver, "ring_id": ringID, "video": video,
	}
}
