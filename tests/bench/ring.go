package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

// pushesTo is the types of the pushes the fakes delivered to token for call cid, and when each arrived.
func (e *env) pushesTo(token, cid string) (types []string, at []time.Time) {
	for _, m := range e.fcm.MessagesTo(token) {
		if m.Data["call_cid"] == cid {
			types, at = append(types, m.Data["type"]), append(at, m.At)
		}
	}
	for _, n := range e.apns.NotificationsTo(token) {
		if s, _ := n.Payload["call_cid"].(string); s == cid {
			typ, _ := n.Payload["type"].(string)
			types, at = append(types, typ), append(at, n.At)
		}
	}
	return types, at
}

// waitPush waits up to d for a push of typ to token for cid and returns when the fake got it.
func (e *env) waitPush(token, cid, typ string, d time.Duration) (time.Time, bool) {
	var got time.Time
	ok := harness.Poll(d, 500*time.Microsecond, func() bool {
		types, at := e.pushesTo(token, cid)
		i := slices.Index(types, typ)
		if i >= 0 {
			got = at[i]
		}
		return i >= 0
	})
	return got, ok
}

// latencies summarises samples.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (l latencies) cells() []string {
	if len(l) == 0 {
		return []string{"–", "–", "–", "–"}
	}
	return []string{ms(l.pct(0.50)), ms(l.pct(0.95)), fmt.Sprintf("**%s**", ms(l.pct(0.99))), ms(l.pct(1))}
}

// runRing rings single callees one after another, from the ring request to the ring push at the fake: first
// with nothing else running, then while a notification to ringLoadN members drains. Callees alternate
// between an FCM token and an APNs VoIP token.
func runRing(cfg *config, st *state) (*table, error) {
	t := &table{
		title:  fmt.Sprintf("ring under load: %d single-callee rings, request to ring push at the fake", cfg.rings),
		header: []string{"phase", "rings", "missing", "p50", "p95", "p99", "max", "API answer p50", "API answer p99", "notify delivered during the rings"},
	}
	err := guard("ring", func(tb *tb) {
		e := newEnv(tb, cfg, 0)
		members := memberIDs("m", cfg.ringLoadN)
		callees := make([]string, 3*cfg.rings)
		for i := range callees {
			callees[i] = fmt.Sprintf("callee%05d", i)
		}
		e.seedDevices(members[1:], func(int) []string { return []string{devFCM} })
		e.seedDevices(callees, func(i int) []string { return []string{calleeKind(i)} })
		apiP := e.startRinger("api")
		e.startWorkers(t)
		base := "http://" + apiP.addr
		tok := e.token("caller")

		byKind := map[string]map[string]latencies{} // phase → callee's device kind → latencies
		ringAll := func(phase string, from, n int) (lat, answer latencies, missing int) {
			if byKind[phase] == nil {
				byKind[phase] = map[string]latencies{}
			}
			for i := from; i < from+n; i++ {
				c := callees[i]
				cid := fmt.Sprintf("ring-%s-%d", phase, i)
				start := time.Now()
				e.mustDo(base, "POST", "/v1/call/bench/"+cid, tok, createBody([]string{"caller", c}, true, false))
				answer = append(answer, time.Since(start))
				at, ok := e.waitPush(deviceToken(c, calleeKind(i), 0), "bench:"+cid, queue.EventRing, 10*time.Second)
				if !ok {
					missing++
					continue
				}
				lat = append(lat, at.Sub(start))
				byKind[phase][calleeKind(i)] = append(byKind[phase][calleeKind(i)], at.Sub(start))
			}
			return lat, answer, missing
		}
		defer func() {
			for _, ph := range []string{"idle", "during", "load"} {
				if k := byKind[ph]; k != nil {
					t.note("%s: FCM callees p50 %s p99 %s; APNs VoIP callees p50 %s p99 %s.", map[string]string{"idle": "idle", "during": "during the notify request", "load": "during the drain"}[ph],
						ms(k[devFCM].pct(0.5)), ms(k[devFCM].pct(0.99)), ms(k[devAPNsVoIP].pct(0.5)), ms(k[devAPNsVoIP].pct(0.99)))
				}
			}
		}()

		// A warm-up ring opens the worker's connections to the fakes, as a running ringer has them.
		ringWarm(e, base, tok, callees[0])

		idle, idleAnswer, miss := ringAll("idle", 0, cfg.rings)
		t.add(append(append([]string{"idle", strconv.Itoa(cfg.rings), strconv.Itoa(miss)}, idle.cells()...),
			ms(idleAnswer.pct(0.5)), ms(idleAnswer.pct(0.99)), "–")...)

		// Under load, in two parts: while the notification's own request runs (the API creates a 100,000-member
		// call, enqueues its batches and publishes its events), then while the worker drains it.
		before := e.pushes()
		pushes := cfg.ringLoadN - 1
		notifyDone := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
			defer cancel()
			st, raw, err := e.do(ctx, base, "POST", "/v1/call/bench/load", tok, createBody(members, false, true))
			if err == nil && st/100 != 2 {
				err = fmt.Errorf("status %d: %.200s", st, raw)
			}
			notifyDone <- err
		}()
		slow0 := e.slowlogLens()
		ringsSent := 0
		var during, duringAnswer latencies
		duringMiss := 0
		var notifyErr error
		answered := false
		for !answered && ringsSent < cfg.rings {
			select {
			case notifyErr = <-notifyDone:
				answered = true
				continue
			default:
			}
			l, a, m := ringAll("during", cfg.rings+ringsSent, 1)
			during, duringAnswer, duringMiss = append(during, l...), append(duringAnswer, a...), duringMiss+m
			ringsSent++
		}
		if !answered {
			notifyErr = <-notifyDone
		}
		if notifyErr != nil {
			tb.Fatalf("the notification under the rings: %v", notifyErr)
		}
		t.add(append(append([]string{fmt.Sprintf("while the API takes the %d-member notify request", cfg.ringLoadN), strconv.Itoa(ringsSent), strconv.Itoa(duringMiss)}, during.cells()...),
			ms(duringAnswer.pct(0.5)), ms(duringAnswer.pct(0.99)), fmt.Sprintf("%d of %d when the API answered", e.pushes()-before-ringsSent, pushes))...)

		atStart := e.pushes() - before - ringsSent
		loaded, loadedAnswer, miss := ringAll("load", 2*cfg.rings, cfg.rings)
		atEnd := e.pushes() - before - ringsSent - cfg.rings
		t.add(append(append([]string{fmt.Sprintf("while the worker drains %d members", pushes), strconv.Itoa(cfg.rings), strconv.Itoa(miss)}, loaded.cells()...),
			ms(loadedAnswer.pct(0.5)), ms(loadedAnswer.pct(0.99)), fmt.Sprintf("%d → %d of %d", atStart, min(atEnd, pushes), pushes))...)
		if !e.waitPushes(before+pushes+ringsSent+cfg.rings, cfg.timeout) {
			tb.Errorf("the notification under the rings: %d of %d pushes", e.pushes()-before-ringsSent-cfg.rings, pushes)
		}
		if slow := e.slowlog(slow0, 3); slow != "" {
			t.note("Redis's slowest commands while loaded (SLOWLOG, over 10 ms): %s.", slow)
		}
	})
	t.note("Each ring is POST /v1/call (get-or-create, ring: true, caller and one callee); the clock runs from the request to the fake's receipt of the ring push. Callees alternate: FCM token, APNs VoIP token. One ring at a time.")
	t.note("Under load: first while the notify request (get-or-create, notify: true, every member) is in the API, at most as many rings as fit before it answers; then after its answer, while the worker drains it. The last column shows how far the notification got while the rings ran (not done, or the rings ran without load).")
	return t, err
}

// stopModes are when the stop scenario accepts: see runStop.
var stopModes = []string{"all", "first", "now"}

func calleeKind(i int) string {
	if i%2 == 0 {
		return devFCM
	}
	return devAPNsVoIP
}

// ringWarm rings once and waits for the push, so the worker's provider connections and OAuth token exist.
func ringWarm(e *env, base, tok, callee string) {
	e.mustDo(base, "POST", "/v1/call/bench/warm", tok, createBody([]string{"caller", callee}, true, false))
	if _, ok := e.waitPush(deviceToken(callee, devFCM, 0), "bench:warm", queue.EventRing, 30*time.Second); !ok {
		e.t.Fatalf("warm-up ring did not arrive")
	}
	e.mustDo(base, "POST", "/v1/call/bench/warm/mark_ended", tok, nil)
}

// runStop accepts while a callee with stopDevices devices rings: half its devices FCM, a quarter APNs VoIP, a
// quarter regular APNs. Iterations take turns: accept once every ring push arrived (the phone rings), once
// the first arrived (the others are in flight: the race the in-flight mark settles), or as soon as the ring
// request answered (most ring pushes never leave). The clock runs from the accept's answer to the last stop
// push at the fakes.
func runStop(cfg *config, st *state) (*table, error) {
	t := &table{
		title:  fmt.Sprintf("stop latency: accept while a callee with %d devices rings", cfg.stopDevices),
		header: []string{"accept", "accepts", "stop pushes", "p50", "p95", "p99", "max", "ring pushes after the accept answered", "stops missing"},
	}
	err := guard("stop", func(tb *tb) {
		e := newEnv(tb, cfg, 0)
		nf, nv := cfg.stopDevices/2, cfg.stopDevices/4
		na := cfg.stopDevices - nf - nv
		kinds := func(int) []string {
			var k []string
			for j := 0; j < nf; j++ {
				k = append(k, devFCM)
			}
			for j := 0; j < nv; j++ {
				k = append(k, devAPNsVoIP)
			}
			for j := 0; j < na; j++ {
				k = append(k, devAPNs)
			}
			return k
		}
		// deviceToken numbers a user's devices by their index among all its kinds.
		var tokens []string
		var kindOf []string
		for j, k := range kinds(0) {
			tokens = append(tokens, deviceToken("stopcallee", k, j))
			kindOf = append(kindOf, k)
		}
		e.seedDevices([]string{"stopcallee", "callee00000"}, func(i int) []string {
			if i == 0 {
				return kinds(0)
			}
			return []string{devFCM}
		})
		apiP := e.startRinger("api")
		e.startRinger("worker", concurrencyEnv(cfg)...)
		base := "http://" + apiP.addr
		tok, calleeTok := e.token("caller"), e.token("stopcallee")
		ringWarm(e, base, tok, "callee00000")

		type sample struct {
			lat                time.Duration
			stops, late, short int
		}
		results := map[string][]sample{}
		for i := 0; i < cfg.stopIters; i++ {
			cid := fmt.Sprintf("stop-%d", i)
			e.mustDo(base, "POST", "/v1/call/bench/"+cid, tok, createBody([]string{"caller", "stopcallee"}, true, false))
			mode := stopModes[i%len(stopModes)]
			switch mode {
			case "first":
				// The phone rings on one device while the other ring pushes are still in flight.
				if _, ok := e.waitPush(tokens[0], "bench:"+cid, queue.EventRing, 10*time.Second); !ok {
					tb.Fatalf("%s: no ring push to device 0", cid)
				}
			case "all":
				for j, k := range kindOf {
					if k != devAPNs {
						if _, ok := e.waitPush(tokens[j], "bench:"+cid, queue.EventRing, 10*time.Second); !ok {
							tb.Fatalf("%s: no ring push to device %d", cid, j)
						}
					}
				}
			}
			e.mustDo(base, "POST", "/v1/call/bench/"+cid+"/accept", calleeTok, nil)
			answered := time.Now()
			// Every push the accept owes has been attempted once the queues are empty; a stop waiting for a
			// ring in flight shows as a retry until it goes.
			if !e.quiet(cfg.timeout) {
				tb.Fatalf("%s: queues not quiet after the accept", cid)
			}
			var s sample
			var last time.Time
			voipRang := false
			rung := map[string]bool{}
			for j, tk := range tokens {
				types, at := e.pushesTo(tk, "bench:"+cid)
				for x, typ := range types {
					switch typ {
					case queue.EventRing:
						rung[tk] = true
						if kindOf[j] == devAPNsVoIP {
							voipRang = true
						}
						if at[x].After(answered) {
							s.late++
						}
					case queue.EventAccepted:
						s.stops++
						if at[x].After(last) {
							last = at[x]
						}
					}
				}
			}
			want := 0
			for j, tk := range tokens {
				if (kindOf[j] == devFCM && rung[tk]) || (kindOf[j] == devAPNs && voipRang) {
					want++
				}
			}
			s.short = max(want-s.stops, 0)
			if !last.IsZero() {
				s.lat = max(last.Sub(answered), 0)
			}
			results[mode] = append(results[mode], s)
		}
		for _, mode := range stopModes {
			var lat latencies
			stops, late, short := 0, 0, 0
			for _, s := range results[mode] {
				if s.stops > 0 {
					lat = append(lat, s.lat)
				}
				stops += s.stops
				late += s.late
				short += s.short
			}
			label := map[string]string{"all": "once every ring push arrived", "first": "once the first ring push arrived",
				"now": "as soon as the ring request answered"}[mode]
			t.add(append(append([]string{label, strconv.Itoa(len(results[mode])), strconv.Itoa(stops)}, lat.cells()...),
				fmt.Sprintf("**%d**", late), strconv.Itoa(short))...)
		}
	})
	t.note("Latency: from the accept's 200 to the last call.accepted stop push at the fakes (negative clamps to 0: a stop that beat the answer). Stops go to the FCM tokens the ring reached and, when a VoIP token rang, the regular APNs tokens (API.md).")
	t.note("A ring push after the accept answered breaks \"no ring push leaves after the ring has stopped\" as a user sees it; stops missing are owed stop pushes that never came.")
	return t, err
}
