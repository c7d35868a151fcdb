package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringer-dev/ringer/queue"
)

// The overload and soak scenarios drive one `ringer serve` (API, worker and its notify child in one, as the
// issue measured it) with an open-loop load: requests start at a set rate whatever the answers, as callers
// do, so an API that slows down does not slow its own load.

// overloadRingMs is the ring timeout of these scenarios: the 30 s default of API.md.
const overloadRingMs = 30000

// ringShot is one ring request of an open-loop run and its answer.
type ringShot struct {
	cid, callee string
	start       time.Time
	status      int // 0: no answer (transport error)
	retryAfter  bool
	took        time.Duration
}

// openLoop starts fire(i) at rate per second for d, on at most clients goroutines at once; a start that finds
// every client busy is counted as shed by the bench (the machine, not ringer, ran out). It returns how many
// started and how many were shed.
func openLoop(rate float64, d time.Duration, clients int, fire func(i int)) (started, shed int) {
	slots := make(chan struct{}, clients)
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		el := now.Sub(start)
		if el >= d {
			break
		}
		due := int(el.Seconds() * rate)
		for ; started+shed < due; started++ {
			select {
			case slots <- struct{}{}:
			default:
				shed++
				continue
			}
			wg.Add(1)
			go func(i int) {
				defer func() { <-slots; wg.Done() }()
				fire(i)
			}(started)
		}
	}
	wg.Wait()
	return started, shed
}

// ringer is a ringer process as these scenarios drive it.
type ringerUnderLoad struct {
	e      *env
	p      *proc
	base   string
	client *http.Client
	tokens map[string]string
	mu     sync.Mutex
}

// underLoadUsers is how many callers, and callees, the overload and soak scenarios ring between: callee i has
// one FCM device.
const underLoadUsers = 2000

func underLoadCaller(i int) string { return fmt.Sprintf("oc%04d", i) }
func underLoadCallee(i int) string { return fmt.Sprintf("od%04d", i) }

// startUnderLoad seeds the callees' devices, starts `ringer serve` with extra environment, and warms it up with
// one ring.
func startUnderLoad(tb *tb, cfg *config, extra ...string) *ringerUnderLoad {
	e := newEnv(tb, cfg, 0)
	callees := make([]string, underLoadUsers)
	for i := range callees {
		callees[i] = underLoadCallee(i)
	}
	e.seedDevices(callees, func(int) []string { return []string{devFCM} })
	r := newRingerUnderLoad(e, extra...)
	ringWarm(e, r.base, r.token("caller"), callees[0])
	return r
}

func newRingerUnderLoad(e *env, extra ...string) *ringerUnderLoad {
	p := e.startRinger("serve", append(concurrencyEnv(e.cfg), extra...)...)
	return &ringerUnderLoad{e: e, p: p, base: "http://" + p.addr, tokens: map[string]string{},
		client: &http.Client{Transport: &http.Transport{MaxConnsPerHost: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute},
			Timeout: 30 * time.Second}}
}

func (r *ringerUnderLoad) token(user string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.tokens[user]; ok {
		return t
	}
	t := r.e.token(user)
	r.tokens[user] = t
	return t
}

// send makes one request and answers its status, whether it carried Retry-After, and how long it took.
func (r *ringerUnderLoad) send(method, path, user string, body []byte) (int, bool, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, _ := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+r.token(user))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	res, err := r.client.Do(req)
	if err != nil {
		return 0, false, time.Since(t0)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After") != "", time.Since(t0)
}

// ring starts one single-callee ring of overloadRingMs.
func (r *ringerUnderLoad) ring(cid, caller, callee string) ringShot {
	body := fmt.Appendf(nil, `{"ring":true,"data":{"members":[{"user_id":%q},{"user_id":%q}],`+
		`"settings_override":{"ring":{"auto_cancel_timeout_ms":%d,"incoming_call_timeout_ms":%d}}}}`, caller, callee, overloadRingMs, overloadRingMs)
	s := ringShot{cid: cid, callee: callee, start: time.Now()}
	s.status, s.retryAfter, s.took = r.send("POST", "/v1/call/bench/"+cid, caller, body)
	return s
}

// goroutines reads go_goroutines of the process itself (not its notify child's, which carry a label).
func (r *ringerUnderLoad) goroutines() int {
	res, err := r.client.Get(r.base + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// firstRings is, per call, when its first ring push reached the fakes.
func (e *env) firstRings() map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range e.fcm.Messages() {
		if m.Data["type"] != queue.EventRing {
			continue
		}
		cid := m.Data["call_cid"]
		if at, ok := out[cid]; !ok || m.At.Before(at) {
			out[cid] = m.At
		}
	}
	return out
}

// ringTally is what became of the rings of one run.
type ringTally struct {
	requests, accepted, refused, refusedNoRetryAfter, failed, shed int
	rang, late, never                                              int
	latency, refusal                                               latencies
	wall                                                           time.Duration
}

func (t ringTally) goodput() float64 { return float64(t.rang) / t.wall.Seconds() }

// tally waits for the rings of shots to be served (the ring queue quiet, or every ring over), then counts
// which rang while ringing: the ring push reached the fake before the ring's end.
func (e *env) tally(shots ringShots, wall time.Duration, shed int) ringTally {
	var last time.Time
	for _, s := range shots {
		if s.start.After(last) {
			last = s.start
		}
	}
	deadline := last.Add(overloadRingMs*time.Millisecond + 5*time.Second)
	for time.Now().Before(deadline) && e.queuedRing() > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	first := e.firstRings()
	t := ringTally{requests: len(shots), shed: shed, wall: wall}
	for _, s := range shots {
		switch {
		case s.status == http.StatusCreated:
			t.accepted++
			at, ok := first["bench:"+s.cid]
			switch {
			case !ok:
				t.never++
			case at.Sub(s.start) <= overloadRingMs*time.Millisecond:
				t.rang++
				t.latency = append(t.latency, at.Sub(s.start))
			default:
				t.late++
			}
		case s.status == http.StatusServiceUnavailable:
			t.refused++
			t.refusal = append(t.refusal, s.took)
			if !s.retryAfter {
				t.refusedNoRetryAfter++
			}
		default:
			t.failed++
		}
	}
	return t
}

// queuedRing is how many ring-queue tasks (every shard) are pending or running (read cheaply: two list
// lengths a shard).
func (e *env) queuedRing() int64 {
	ctx := context.Background()
	var n int64
	for _, q := range e.shards(queue.QueueRing) {
		p, _ := e.rdb.LLen(ctx, "asynq:{"+q+"}:pending").Result()
		a, _ := e.rdb.LLen(ctx, "asynq:{"+q+"}:active").Result()
		n += p + a
	}
	return n
}

// ringAt runs an open-loop ring load at rate for warm+d, each ring a new call from caller i to callee i, and
// tallies the rings started after warm. The warm-up lets the run reach its steady state: a ring costs its
// push at once, and its timeout (and the missed-call push) a ring timeout later, so a run judged on its first
// ring timeout sees only part of what each ring costs.
func (r *ringerUnderLoad) ringAt(prefix string, rate float64, warm, d time.Duration) ringTally {
	shots, shed := r.fireRings(prefix, rate, warm+d)
	return r.e.tally(startedAfter(shots, shots.start().Add(warm)), d, shed)
}

// ringShots are the rings of one open-loop run, in the order they were answered.
type ringShots []ringShot

// start is when the first ring of the run started.
func (ss ringShots) start() time.Time {
	var first time.Time
	for _, s := range ss {
		if first.IsZero() || s.start.Before(first) {
			first = s.start
		}
	}
	return first
}

func startedAfter(ss ringShots, from time.Time) ringShots {
	var out ringShots
	for _, s := range ss {
		if !s.start.Before(from) {
			out = append(out, s)
		}
	}
	return out
}

// fireRings runs an open-loop ring load at rate for d and answers every ring with how many the bench shed.
func (r *ringerUnderLoad) fireRings(prefix string, rate float64, d time.Duration) (ringShots, int) {
	var mu sync.Mutex
	shots := make(ringShots, 0, int(rate*d.Seconds())+1)
	_, shed := openLoop(rate, d, 512, func(i int) {
		s := r.ring(fmt.Sprintf("%s-%d", prefix, i), underLoadCaller(i%underLoadUsers), underLoadCallee(i%underLoadUsers))
		mu.Lock()
		shots = append(shots, s)
		mu.Unlock()
	})
	return shots, shed
}

func (t ringTally) row(phase string, rate float64) []string {
	return []string{phase, fmt.Sprintf("%.0f", rate), strconv.Itoa(t.requests), strconv.Itoa(t.accepted),
		fmt.Sprintf("%d (%d without Retry-After)", t.refused, t.refusedNoRetryAfter), fmt.Sprintf("%d / %d", t.failed, t.shed),
		fmt.Sprintf("%d (%s)", t.rang, share(t.rang, t.accepted)), strconv.Itoa(t.late + t.never),
		fmt.Sprintf("%.0f", t.goodput()), ms(t.latency.pct(0.5)), ms(t.latency.pct(0.99)), ms(t.refusal.pct(0.99))}
}

// rateShare is rate as a share of the rate of, to the precision share gives counts.
func rateShare(rate, of float64) string { return share(int(rate*1000), int(of*1000)) }

func share(n, of int) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f %%", 100*float64(n)/float64(of))
}

// dropRate is how fast the worker takes ring tasks whose ring is over off its queue: n such tasks are
// enqueued into the paused ring queue, which is then resumed and timed until empty.
func (r *ringerUnderLoad) dropRate(n int) float64 {
	e := r.e
	ringQueues := e.shards(queue.QueueRing)
	for _, q := range ringQueues {
		if err := e.insp.PauseQueue(q); err != nil {
			e.t.Fatalf("pause the ring queue %s: %v", q, err)
		}
	}
	members := make([]queue.RingMember, n)
	over := time.Now().Add(-time.Second)
	for i := range members {
		members[i] = queue.RingMember{UserID: fmt.Sprintf("x%06d", i), EndsAt: over}
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.timeout)
	defer cancel()
	qc := queue.NewClient(e.rdb)
	qc.SetShards(e.cfg.shards)
	if err := qc.EnqueueRing(ctx, queue.CallInfo{CID: "bench:expired", Type: "bench", ID: "expired"}, "expired", members); err != nil {
		e.t.Fatalf("enqueue ring tasks past their ring: %v", err)
	}
	start := time.Now()
	for _, q := range ringQueues {
		if err := e.insp.UnpauseQueue(q); err != nil {
			e.t.Fatalf("resume the ring queue %s: %v", q, err)
		}
	}
	for e.queuedRing() > 0 {
		if time.Since(start) > e.cfg.timeout {
			e.t.Fatalf("%d ring tasks past their ring still queued after %s", e.queuedRing(), e.cfg.timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds()
}

// sustainable finds the ring rate this machine delivers in full, for as long as it is offered: steps at
// rising rates, each run for cfg.rampWarm (a ring timeout, so that the timeouts of the step's first rings are
// under way) and then judged over cfg.rampStep, until a judged window has a refusal, a ring that did not ring
// while ringing, or a ring p99 past the budget. It answers the goodput of the last step that passed (of the
// first, when none did).
func (r *ringerUnderLoad) sustainable(t *table, cfg *config) float64 {
	rate, best := cfg.rampFrom, 0.0
	for step := 0; step < cfg.rampSteps; step++ {
		tl := r.ringAt(fmt.Sprintf("ramp%d", step), rate, cfg.rampWarm, cfg.rampStep)
		t.add(tl.row(fmt.Sprintf("ramp step %d", step+1), rate)...)
		ok := tl.refused == 0 && tl.failed+tl.shed == 0 && tl.rang == tl.accepted && tl.latency.pct(0.99) <= cfg.budget
		if !ok {
			if best == 0 {
				best = tl.goodput()
			}
			break
		}
		best = tl.goodput()
		rate *= 1.3
	}
	return best
}

// runOverload finds the sustainable ring rate, then rings at twice it for cfg.overloadDuration: how many
// rings the API accepts, refuses (503 overloaded, with Retry-After) and how many of those it accepted rang
// while ringing, against the bar (≥ 99 % of accepted rings ring in time, goodput ≥ 90 % of the
// sustainable rate).
func runOverload(cfg *config, st *state) (*table, error) {
	t := &table{
		title: fmt.Sprintf("overload: rings at twice the sustainable rate for %s, ring timeout %d s, budget %s", cfg.overloadDuration, overloadRingMs/1000, cfg.budget),
		header: []string{"phase", "offered/s", "requests", "accepted 201", "refused 503", "errors / shed by the bench", "rang while ringing", "late or never",
			"goodput/s", "ring p50", "ring p99", "503 answer p99"},
	}
	err := guard("overload", func(tb *tb) {
		r := startUnderLoad(tb, cfg, "RINGER_RING_QUEUE_BUDGET="+cfg.budget.String())
		e := r.e

		drop := r.dropRate(cfg.expiredN)
		sus := r.sustainable(t, cfg)
		t.note("Ring tasks found past their ring: %d dropped at %.0f/s (the worker takes them off the queue without a device lookup or a provider round trip), against %.0f rings/s delivered.", cfg.expiredN, drop, sus)
		t.note("Sustainable ring rate (goodput of the last ramp step served in full): %.0f rings/s.", sus)
		shots, shed := r.fireRings("over", 2*sus, cfg.overloadDuration)
		over := e.tally(shots, cfg.overloadDuration, shed)
		t.add(over.row("overload (2× sustainable)", 2*sus)...)
		t.note("Of the rings accepted under overload, %s rang while ringing (the bar: ≥ 99 %%); goodput %.0f rings/s is %s of the sustainable rate (the bar: ≥ 90 %%).",
			share(over.rang, over.accepted), over.goodput(), rateShare(over.goodput(), sus))
		// The first ring timeout of the run carries no timeouts of its own rings: the steady state is after it.
		if warm := overloadRingMs * time.Millisecond; cfg.overloadDuration > warm {
			steady := e.tally(startedAfter(shots, shots.start().Add(warm)), cfg.overloadDuration-warm, 0)
			t.add(steady.row("overload, after its first ring timeout", 2*sus)...)
			t.note("After the overload's first ring timeout (its rings' timeouts and missed-call pushes under way), goodput %.0f rings/s is %s of the sustainable rate.",
				steady.goodput(), rateShare(steady.goodput(), sus))
		}
		if over.refusedNoRetryAfter > 0 {
			tb.Errorf("%d refusals without Retry-After", over.refusedNoRetryAfter)
		}
	})
	t.note("One `ringer serve` (API, worker, notify child), fake FCM at 0 ms, one FCM device per callee; each ring is a new call (get-or-create, ring: true, caller and one callee). Open loop: requests start at the offered rate whatever the answers, from up to 512 clients (errors are answers other than 201 and 503, or none; shed are starts dropped because every client was busy).")
	t.note("Rang while ringing: the ring push reached the fake within the ring's 30 s. Late or never: accepted rings whose push came after the ring's end or not at all.")
	return t, err
}

// runSoak holds a steady load of rings (each accepted, then ended), and notifications, at cfg.soakShare of
// the sustainable ring rate for cfg.soakDuration, with a short call retention, and samples Redis memory,
// ringer's RSS and goroutines, and ring latency over time: each should be flat once the retention has turned
// over.
func runSoak(cfg *config, st *state) (*table, error) {
	t := &table{
		title:  fmt.Sprintf("soak: %s of rings, accepts and notifications at %.0f %% of the sustainable ring rate, call retention %s", cfg.soakDuration, 100*cfg.soakShare, cfg.soakRetention),
		header: []string{"at", "calls made", "Redis used_memory", "Redis keys", "ringer RSS", "goroutines", "rings in window", "ring p50", "ring p99"},
	}
	err := guard("soak", func(tb *tb) {
		r := startUnderLoad(tb, cfg, "RINGER_CALL_RETENTION="+cfg.soakRetention.String())
		e := r.e

		rate := cfg.soakRate
		if rate == 0 {
			calib := &table{}
			rate = cfg.soakShare * r.sustainable(calib, cfg)
			t.note("Sustainable ring rate by a ramp before the soak: %.0f rings/s; the soak offers %.0f requests/s.", rate/cfg.soakShare, rate)
			if !e.quiet(2 * time.Minute) {
				tb.Fatalf("the ramp's rings did not drain")
			}
		}
		var (
			mu     sync.Mutex
			shots  []ringShot
			made   atomic.Int64
			errs   = &answerCounts{}
			stop   = make(chan struct{})
			sample sync.WaitGroup
		)
		type point struct {
			at                time.Duration
			calls, mem, keys  int64
			rssKB, goroutines int
		}
		var points []point
		start := time.Now()
		sample.Add(1)
		go func() {
			defer sample.Done()
			tick := time.NewTicker(cfg.soakSample)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				keys := e.dbSize()
				points = append(points, point{at: time.Since(start), calls: made.Load(), mem: e.redisMemory(), keys: keys,
					rssKB: int(familyStatusKB(r.p.pid(), "VmRSS")), goroutines: r.goroutines()})
			}
		}()
		// One request in ten is a notification to three members; the others ring a callee, who accepts half a
		// second later; the caller ends the call half a second after that, so it lapses after the retention.
		openLoop(rate, cfg.soakDuration, 512, func(i int) {
			caller, callee := underLoadCaller(i%underLoadUsers), underLoadCallee(i%underLoadUsers)
			cid := fmt.Sprintf("soak-%d", i)
			made.Add(1)
			if i%10 == 9 {
				body := fmt.Appendf(nil, `{"notify":true,"data":{"members":[{"user_id":%q},{"user_id":%q},{"user_id":%q}]}}`,
					caller, callee, underLoadCallee((i+1)%underLoadUsers))
				st, _, _ := r.send("POST", "/v1/call/bench/"+cid, caller, body)
				errs.unless(http.StatusCreated, "notify", st)
				return
			}
			s := r.ring(cid, caller, callee)
			mu.Lock()
			shots = append(shots, s)
			mu.Unlock()
			if !errs.unless(http.StatusCreated, "ring", s.status) {
				return
			}
			time.Sleep(500 * time.Millisecond)
			st, _, _ := r.send("POST", "/v1/call/bench/"+cid+"/accept", callee, nil)
			errs.unless(http.StatusOK, "accept", st)
			time.Sleep(500 * time.Millisecond)
			st, _, _ = r.send("POST", "/v1/call/bench/"+cid+"/mark_ended", caller, nil)
			errs.unless(http.StatusOK, "end", st)
		})
		close(stop)
		sample.Wait()

		first := e.firstRings()
		window := func(from, to time.Duration) latencies {
			var l latencies
			for _, s := range shots {
				at, ok := first["bench:"+s.cid]
				if el := s.start.Sub(start); ok && el >= from && el < to {
					l = append(l, at.Sub(s.start))
				}
			}
			return l
		}
		var prev time.Duration
		for _, p := range points {
			l := window(prev, p.at)
			t.add(p.at.Round(time.Second).String(), strconv.FormatInt(p.calls, 10), mb(p.mem), strconv.FormatInt(p.keys, 10),
				mb(int64(p.rssKB)*1024), strconv.Itoa(p.goroutines), strconv.Itoa(len(l)), ms(l.pct(0.5)), ms(l.pct(0.99)))
			prev = p.at
		}
		// Flatness after the warm-up: the ring, then the longest any key of it is kept (the call's retention
		// after its end, completed tasks as long or a minute, the ring's ledgers two minutes past its end).
		warm := overloadRingMs*time.Millisecond + max(cfg.soakRetention, 2*time.Minute) + cfg.soakSample
		var lo, hi int64 = -1, 0
		for _, p := range points {
			if p.at < warm {
				continue
			}
			if lo < 0 || p.mem < lo {
				lo = p.mem
			}
			hi = max(hi, p.mem)
		}
		if lo > 0 {
			t.note("Redis used_memory after %s: %s to %s, a spread of %s (the bar: within 10 %%).", warm, mb(lo), mb(hi), share(int(hi-lo), int(lo)))
		} else {
			t.note("The soak was shorter than its warm-up (%s): no flatness figure.", warm)
		}
		// Bytes per call: Redis's growth per call made while nothing had lapsed yet (up to the retention after
		// the first ring's end), and over the whole soak, which a bounded Redis drives towards zero.
		if len(points) > 1 {
			p0, early, last := points[0], points[0], points[len(points)-1]
			for _, p := range points {
				if p.at <= cfg.soakRetention+overloadRingMs*time.Millisecond {
					early = p
				}
			}
			t.note("Redis bytes per call made: %s while no call had lapsed (%s to %s), %s over the whole soak (%s to %s, %d calls).",
				perCall(early.mem-p0.mem, early.calls-p0.calls), p0.at.Round(time.Second), early.at.Round(time.Second),
				perCall(last.mem-p0.mem, last.calls-p0.calls), p0.at.Round(time.Second), last.at.Round(time.Second), last.calls-p0.calls)
		}
		t.note("Requests answered other than expected (201, 200): %s.", errs)
	})
	t.note("One `ringer serve`, fake FCM at 0 ms. Ring p50/p99: request to the ring push at the fake, of the rings started in each sample window. RSS is ringer's and its notify child's; goroutines are the parent process's go_goroutines.")
	return t, err
}

func perCall(bytes, calls int64) string {
	if calls <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f B", float64(bytes)/float64(calls))
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// answerCounts counts the unexpected answers of a run by request and status (0: no answer).
type answerCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// unless counts status under what unless it is want, and answers whether it was.
func (a *answerCounts) unless(want int, what string, status int) bool {
	if status == want {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	a.n[fmt.Sprintf("%s %d", what, status)]++
	return false
}

func (a *answerCounts) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.n) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(a.n))
	for k := range a.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, a.n[k])
	}
	return strings.Join(parts, ", ")
}
