package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/worker"
)

// yardstickConcurrency is the concurrency of the bare no-op server whose drain rate every fan-out figure is
// compared with (issue 17's yardstick), whatever the worker's own notify concurrency.
const yardstickConcurrency = 50

// runCeiling measures what Asynq itself can do on this machine and Redis: N tasks enqueued 32 at a time (as
// queue.Client's fan-out does), then drained by a server with a no-op handler. "bare" is Asynq's defaults at
// yardstickConcurrency, the ceiling of the fan-out table; "bare" and "ringer options" at the worker's notify
// concurrency follow, the latter with what ringer's notify tasks carry (a task id, 15 minutes' retention,
// MaxRetry), which costs Redis work per task.
func runCeiling(cfg *config, st *state) (*table, error) {
	t := &table{
		title:  fmt.Sprintf("ceiling: no-op Asynq handler, %d tasks", cfg.ceilingN),
		header: byMasterHeader(cfg, "variant", "concurrency", "enqueue (32 at a time)", "enqueue tasks/s", "drain", "drain tasks/s", "Redis B/queued task", "Redis per task", "CPU redis/bench/others"),
	}
	err := guard("ceiling", func(tb *tb) {
		e := newEnv(tb, cfg, 0)
		for i, v := range []struct {
			withOpts    bool
			concurrency int
		}{{false, yardstickConcurrency}, {false, notifyConcurrency(cfg)}, {true, notifyConcurrency(cfg)}} {
			name := "bare"
			if v.withOpts {
				name = "ringer options"
			}
			rate, row := ceilingOnce(e, cfg, v.withOpts, v.concurrency)
			if i == 0 {
				st.ceiling = rate
			}
			t.add(append([]string{name, strconv.Itoa(v.concurrency)}, row...)...)
			e.flushAll()
		}
	})
	t.note("The ceiling every fan-out figure is compared with is the bare drain rate at concurrency %d: %.0f tasks/s.", yardstickConcurrency, st.ceiling)
	t.note("Redis per task: Redis CPU µs per task over the drain, then the commands that cost most (INFO commandstats; a script's time there includes the commands it runs, so the lines are not summed).")
	if cfg.cluster > 0 {
		t.note("On the cluster the ceiling stays one Asynq queue, which lives on one master.")
	}
	byMasterNote(cfg, t, "the drain")
	return t, err
}

func ceilingOnce(e *env, cfg *config, withOpts bool, concurrency int) (float64, []string) {
	n := cfg.ceilingN
	ctx := context.Background()
	client := asynq.NewClientFromRedisClient(e.rdb)
	// A notification task's payload of one member, as the worker's decode reads it.
	payload, _ := json.Marshal(map[string]any{"call": queue.CallInfo{CID: "bench:ceiling", Type: "bench", ID: "ceiling",
		CreatedByID: "caller", CreatedByName: "Caller"}, "notify_id": "0123456789abcdef01234567", "member": "m000000",
		"event": queue.EventNotification})
	mem0 := e.redisMemory()
	start := time.Now()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Int64
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				opts := []asynq.Option{asynq.Queue(queue.QueueNotify)}
				if withOpts {
					opts = append(opts, asynq.TaskID("notify:ceiling:"+strconv.FormatInt(i, 10)),
						asynq.MaxRetry(queue.NotifyMaxRetry), asynq.Retention(queue.NotifyRetention))
				}
				if _, err := client.EnqueueContext(ctx, asynq.NewTask(queue.TypeNotify, payload), opts...); err != nil {
					fail.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	enqueue := time.Since(start)
	if f := fail.Load(); f > 0 {
		e.t.Fatalf("ceiling: %d enqueues failed", f)
	}
	perTask := float64(e.redisMemory()-mem0) / float64(n)

	var done atomic.Int64
	finished := make(chan time.Time, 1)
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{
		Concurrency:       concurrency,
		Queues:            map[string]int{queue.QueueNotify: 1},
		TaskCheckInterval: 100 * time.Millisecond, // as ringer's notify server
		LogLevel:          asynq.ErrorLevel,
	})
	cs0, mcpu0 := e.commandStats(), e.masterCPU()
	rc0, bc0, mc0 := e.redisCPU(), cpuTime(os.Getpid()), machineBusy()
	start = time.Now()
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if done.Add(1) == int64(n) {
			finished <- time.Now()
		}
		return nil
	}))
	if err != nil {
		e.t.Fatalf("ceiling: start server: %v", err)
	}
	var end time.Time
	select {
	case end = <-finished:
	case <-time.After(cfg.timeout):
		srv.Shutdown()
		e.t.Fatalf("ceiling: %d of %d tasks in %s", done.Load(), n, cfg.timeout)
	}
	drain := end.Sub(start)
	rc1, bc1, mc1 := e.redisCPU(), cpuTime(os.Getpid()), machineBusy()
	cs1, byMaster := e.commandStats(), e.byMasterCell(mcpu0)
	others := max(mc1-mc0-(rc1-rc0)-(bc1-bc0), 0)
	srv.Shutdown()
	rate := float64(n) / drain.Seconds()
	return rate, append([]string{
		ms(enqueue), perSec(n, enqueue), ms(drain), fmt.Sprintf("**%.0f**", rate),
		fmt.Sprintf("%.0f", perTask), redisCost(rc1-rc0, cs0, cs1, n, 3),
		fmt.Sprintf("%s / %s / %s", pct(rc1-rc0, drain), pct(bc1-bc0, drain), pct(others, drain)),
	}, byMaster...)
}

// notifyConcurrency is the worker's notify concurrency in this run: the ceiling's server gets the same.
func notifyConcurrency(cfg *config) int {
	if cfg.concurrency > 0 {
		return cfg.concurrency
	}
	return worker.DefaultNotifyConcurrency
}

// concurrencyEnv is the worker's environment for cfg.concurrency.
func concurrencyEnv(cfg *config) []string {
	if cfg.concurrency > 0 {
		return []string{"RINGER_NOTIFY_CONCURRENCY=" + strconv.Itoa(cfg.concurrency)}
	}
	return nil
}

// runFanout notifies N members, in two phases on one Redis:
//
//   - enqueue alone: the API notifies with no worker running; its answer time is the enqueue time, and Redis's
//     memory growth over the queued jobs is the memory per job. Then the worker starts and drains the backlog:
//     from its start to the last push at the fakes is the drain, compared with the ceiling.
//   - live: with the worker running, POST get-or-create {notify: true} with every member, as a client does:
//     request to answer, answer to last push, and pushes per second from the request to the last push.
func runFanout(cfg *config, st *state) (*table, error) {
	t := &table{
		title: "fan-out: notify N members (one device each)",
		header: byMasterHeader(cfg, "members", "devices", "provider latency", "enqueue alone", "drain", "drain pushes/s", "drain × ceiling",
			"live request→first push", "live request→answer", "live answer→last push", "live pushes/s", "live × ceiling", "live CPU api/worker/redis", "lost", "worker peak RSS", "Redis memory of the backlog",
			"replay streams (Redis memory)", "CPU worker/redis/bench/others", "CPU µs per push worker/redis/bench → 2-core bound; without the bench", "Redis per push",
			"FCM connections"),
	}
	var errs []string
	for _, n := range cfg.fanoutN {
		for _, lat := range cfg.latencies {
			for _, mix := range cfg.mixes {
				err := guard(fmt.Sprintf("fanout-%d-%s-%s", n, lat, mix), func(tb *tb) {
					t.add(fanoutOnce(tb, cfg, st, n, lat, mix)...)
				})
				if err != nil {
					errs = append(errs, err.Error())
					t.add(strconv.Itoa(n), mix, lat.String(), "failed: "+err.Error())
				}
			}
		}
	}
	t.note("members include the caller, who gets no push: N members make N−1 pushes. fcm: one FCM token each; mix: every other member one APNs token instead.")
	t.note("FCM connections: accepted by the fake FCM over both phases (the worker's and any readiness check's), and the HTTP version of its requests (-fcm-http1: plain HTTP/1.1).")
	t.note("drain: worker process start to the last push at the fakes, over the backlog the enqueue-alone phase left; drain × ceiling compares it with the bare no-op Asynq drain.")
	t.note("live pushes/s: N−1 over request sent to last push, with the worker draining while the API enqueues; live × ceiling compares it with the bare no-op Asynq drain (issue 17 times the fan-out so). lost: members with no push once the queues are empty.")
	t.note("live CPU: the CPU time the API process, the worker with its notify child, and Redis spent from the live request until the queues were empty: the work the whole fan-out took, which a busy machine moves less than a rate.")
	t.note("2-core bound: 2,000,000 µs of CPU a second over the CPU µs all three spend per push: the rate two cores would carry with no one else on them; the fakes (bench) are part of the cost on this machine, not in production. Without the bench: the same over the worker's and Redis's µs alone, the bound of two cores that the providers are not on, as in production (a model from this run's costs, not a measured rate); each bound also as a multiple of the ceiling.")
	t.note("Redis memory of the backlog: the notify queue's memory usage as Asynq's inspector reports it (its keys and a sample of its tasks), per queued task and per member.")
	t.note("replay streams: the members' event streams kept for a reconnect (Last-Event-ID) once both calls are quiet, and what Redis holds for them (MEMORY USAGE of a sample, times their number). The bench opens no event stream, so its members are absent.")
	byMasterNote(cfg, t, "the drain")
	t.note("CPU: process CPU time over the drain as a share of one core (the machine has 2, so 200%% is all of it); bench is the fakes and this tool; others is every other process of the machine (a shared machine's background load: figures beside a big others are low). Redis per push: Redis CPU µs per push and the commands that cost most (INFO commandstats; a script's time there includes the commands it runs, which also count on their own lines, so the lines are not summed).")
	if len(errs) > 0 {
		return t, fmt.Errorf("%d runs failed: %v", len(errs), errs)
	}
	return t, nil
}

// members is "caller" and n-1 others.
func memberIDs(prefix string, n int) []string {
	ids := make([]string, n)
	ids[0] = "caller"
	for i := 1; i < n; i++ {
		ids[i] = fmt.Sprintf("%s%06d", prefix, i)
	}
	return ids
}

// kindsFor gives member i (1-based among callees) its device per mix.
func kindsFor(mix string) func(i int) []string {
	return func(i int) []string {
		if mix == "mix" && i%2 == 1 {
			return []string{devAPNs}
		}
		return []string{devFCM}
	}
}

func createBody(members []string, ring, notify bool) []byte {
	ms := make([]map[string]string, len(members))
	for i, m := range members {
		ms[i] = map[string]string{"user_id": m}
	}
	b, _ := json.Marshal(map[string]any{
		"ring": ring, "notify": notify,
		"data": map[string]any{
			"members": ms, "custom": map[string]any{"display_name": "Bench all-hands"},
			"settings_override": map[string]any{"ring": map[string]any{"auto_cancel_timeout_ms": 180000, "incoming_call_timeout_ms": 180000}},
		},
	})
	return b
}

func fanoutOnce(t *tb, cfg *config, st *state, n int, lat time.Duration, mix string) []string {
	e := newEnv(t, cfg, lat)
	members := memberIDs("m", n)
	kinds := kindsFor(mix)
	e.seedDevices(members[1:], func(i int) []string { return kinds(i + 1) })
	apiP := e.startRinger("api")
	base := "http://" + apiP.addr
	tok := e.token("caller")
	pushes := n - 1

	// Enqueue alone.
	e.mustDo(base, "POST", "/v1/call/bench/fan-a", tok, createBody(members, false, false))
	t0 := time.Now()
	e.mustDo(base, "GET", "/v1/call/bench/fan-a?notify=true", tok, nil)
	enqueue := time.Since(t0)
	tasks := e.queued() // one per member, or one per batch of members
	if tasks <= 0 || tasks > pushes {
		t.Fatalf("after the notify, %d tasks queued for %d members", tasks, pushes)
	}
	// What Redis holds for the backlog: the notify queue's keys and its tasks (Asynq samples the tasks).
	mem := e.queueMemory(queue.QueueNotify)
	perTask, perMember := float64(mem)/float64(tasks), float64(mem)/float64(pushes)

	// Drain the backlog.
	cs0, mcpu0 := e.commandStats(), e.masterCPU()
	rc0, bc0, mc0 := e.redisCPU(), cpuTime(os.Getpid()), machineBusy()
	before := e.pushes()
	ws := time.Now()
	w := e.startRinger("worker", concurrencyEnv(cfg)...)
	if !e.waitPushes(before+pushes, cfg.timeout) {
		t.Fatalf("drain: %d of %d pushes within %s", e.pushes()-before, pushes, cfg.timeout)
	}
	wc, rc1, bc1, mc1 := familyCPU(w.pid()), e.redisCPU(), cpuTime(os.Getpid()), machineBusy()
	cs1, byMaster := e.commandStats(), e.byMasterCell(mcpu0)
	others := max(mc1-mc0-wc-(rc1-rc0)-(bc1-bc0), 0)
	_, drainEnd, _ := e.received("bench:fan-a")
	drain := drainEnd.Sub(ws)

	// Live: the worker drains while the API enqueues.
	before = e.pushes()
	la0, lw0, lr0 := cpuTime(apiP.pid()), familyCPU(w.pid()), e.redisCPU()
	t0 = time.Now()
	e.mustDo(base, "POST", "/v1/call/bench/fan-b", tok, createBody(members, false, true))
	t1 := time.Now()
	e.waitPushes(before+pushes, cfg.timeout)
	e.quiet(cfg.timeout)
	liveCPU := fmt.Sprintf("%.2f / %.2f / %.2f s", (cpuTime(apiP.pid()) - la0).Seconds(), (familyCPU(w.pid()) - lw0).Seconds(), (e.redisCPU() - lr0).Seconds())
	streams, streamMem := e.replayStreams()
	got, last, first := e.received("bench:fan-b")
	rss := familyStatusKB(w.pid(), "VmHWM")

	drainRate := float64(pushes) / drain.Seconds()
	drainRatio, liveRatio := "–", "–"
	if st.ceiling > 0 {
		drainRatio = fmt.Sprintf("%.2f", drainRate/st.ceiling)
		if last.After(t0) {
			liveRatio = fmt.Sprintf("**%.2f**", float64(pushes)/last.Sub(t0).Seconds()/st.ceiling)
		}
	}
	return append([]string{
		strconv.Itoa(n), mix, lat.String(), ms(enqueue), ms(drain), fmt.Sprintf("**%.0f**", drainRate), drainRatio,
		ms(first.Sub(t0)), ms(t1.Sub(t0)), ms(last.Sub(t1)), fmt.Sprintf("**%s**", perSec(pushes, last.Sub(t0))), liveRatio, liveCPU,
		strconv.Itoa(pushes - got), fmt.Sprintf("%.0f MB", float64(rss)/1024), fmt.Sprintf("%.0f B/task, %.0f B/member (%d tasks)", perTask, perMember, tasks),
		fmt.Sprintf("%d (%.0f MB)", streams, float64(streamMem)/(1<<20)),
		fmt.Sprintf("%s / %s / %s / %s", pct(wc, drain), pct(rc1-rc0, drain), pct(bc1-bc0, drain), pct(others, drain)),
		cpuPerPush(wc, rc1-rc0, bc1-bc0, pushes, st.ceiling),
		redisCost(rc1-rc0, cs0, cs1, pushes, 3),
		fcmConnections(e.fcm),
	}, byMaster...)
}

// replayStreams is how many users' replay streams the Redis servers hold, and about how much memory they take
// (MEMORY USAGE of up to 200 of them, times their number).
func (e *env) replayStreams() (n int, bytes int64) {
	ctx := context.Background()
	var sampled, sampleBytes int64
	for _, c := range e.nodes {
		iter := c.Scan(ctx, 0, "ringer:{u:*}:events", 1000).Iterator()
		for iter.Next(ctx) {
			n++
			if sampled < 200 {
				if b, err := c.MemoryUsage(ctx, iter.Val()).Result(); err == nil {
					sampled, sampleBytes = sampled+1, sampleBytes+b
				}
			}
		}
	}
	if sampled == 0 {
		return n, 0
	}
	return n, sampleBytes / sampled * int64(n)
}

// fcmConnections is how many connections the fake FCM accepted over a run and which HTTP version carried its
// requests: HTTP/2 multiplexes pushes on a few, HTTP/1.1 holds one per push in flight.
func fcmConnections(f *fakefcm.Server) string {
	h1, h2 := f.RequestsOver(1), f.RequestsOver(2)
	proto := "HTTP/2"
	switch {
	case h1 > 0 && h2 > 0:
		proto = fmt.Sprintf("HTTP/2 %d, HTTP/1.1 %d requests", h2, h1)
	case h1 > 0:
		proto = "HTTP/1.1"
	case h2 == 0:
		proto = "no requests"
	}
	return fmt.Sprintf("%d (%s)", f.Connections(), proto)
}

// waitPushes waits until the fakes have received total pushes, giving up after d or after 30 s without
// progress.
func (e *env) waitPushes(total int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	last, lastChange := e.pushes(), time.Now()
	for {
		n := e.pushes()
		if n >= total {
			return true
		}
		now := time.Now()
		if n != last {
			last, lastChange = n, now
		}
		if now.After(deadline) || now.Sub(lastChange) > 30*time.Second {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// received is, for one call, how many distinct device tokens the fakes delivered a push to, when the first
// and the last arrived.
func (e *env) received(cid string) (tokens int, last, first time.Time) {
	seen := map[string]bool{}
	see := func(tok string, at time.Time) {
		seen[tok] = true
		if at.After(last) {
			last = at
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	for _, m := range e.fcm.Messages() {
		if m.Data["call_cid"] == cid {
			see(m.Token, m.At)
		}
	}
	for _, n := range e.apns.Notifications() {
		if s, _ := n.Payload["call_cid"].(string); s == cid {
			see(n.Token, n.At)
		}
	}
	return len(seen), last, first
}

// cpuPerPush is each process's CPU per push, and the pushes per second two cores could carry at that cost
// with nothing else running: a figure that a shared machine's background load does not move much. The second
// bound leaves out the bench (the fakes), which in production run on the providers' machines, not ringer's.
func cpuPerPush(worker, redis, bench time.Duration, pushes int, ceiling float64) string {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(pushes) }
	w, r, b := us(worker), us(redis), us(bench)
	bound := func(perPush float64) string {
		rate := 2e6 / perPush
		if ceiling <= 0 {
			return fmt.Sprintf("%.0f/s", rate)
		}
		return fmt.Sprintf("%.0f/s = %.2f ×", rate, rate/ceiling)
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f → %s; %s", w, r, b, bound(w+r+b), bound(w+r))
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func perSec(n int, d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
}

// pct is CPU time over a wall time, as a share of one core.
func pct(cpu, wall time.Duration) string {
	if wall <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*cpu.Seconds()/wall.Seconds())
}
