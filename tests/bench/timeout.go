package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ringer-dev/ringer/queue"
)

// timeoutMs is the shortest ring API.md allows, so a run of many rings is short.
const timeoutMs = 1000

// runTimeout measures how late rings end (API.md: "the ring ends on time within 250 ms"): single-callee rings
// with auto_cancel_timeout_ms 1000, started 10 ms apart, from each ring's due end (created_at + 1 s) to the
// callee's missed-call push at the fake; first with the worker idle, then while a ringLoadN-member
// notification drains.
func runTimeout(cfg *config, st *state) (*table, error) {
	t := &table{
		title:  fmt.Sprintf("ring timeout lateness: %d rings of %d ms, due end to the missed-call push at the fake", cfg.timeoutRings, timeoutMs),
		header: []string{"phase", "rings", "missing", "p50", "p95", "p99", "max", "ended_at − due p50", "ended_at − due max"},
	}
	err := guard("timeout", func(tb *tb) {
		e := newEnv(tb, cfg, 0)
		members := memberIDs("m", cfg.ringLoadN)
		callees := make([]string, 2*cfg.timeoutRings+1)
		for i := range callees {
			callees[i] = fmt.Sprintf("late%05d", i)
		}
		e.seedDevices(members[1:], func(int) []string { return []string{devFCM} })
		e.seedDevices(callees, func(int) []string { return []string{devFCM} })
		apiP := e.startRinger("api")
		e.startWorkers(t)
		base := "http://" + apiP.addr
		tok := e.token("caller")
		ringWarm(e, base, tok, callees[len(callees)-1])

		measure := func(phase string, from int) {
			type rung struct {
				cid, callee string
				due         time.Time
			}
			var rs []rung
			for i := from; i < from+cfg.timeoutRings; i++ {
				cid := fmt.Sprintf("timeout-%s-%d", phase, i)
				raw := e.mustDo(base, "POST", "/v1/call/bench/"+cid, tok, map[string]any{
					"ring": true,
					"data": map[string]any{
						"members":           []map[string]any{{"user_id": "caller"}, {"user_id": callees[i]}},
						"settings_override": map[string]any{"ring": map[string]any{"auto_cancel_timeout_ms": timeoutMs}},
					},
				})
				var answer struct {
					Call struct {
						CreatedAt time.Time `json:"created_at"`
					} `json:"call"`
				}
				if err := json.Unmarshal(raw, &answer); err != nil {
					tb.Fatalf("ring answer: %v", err)
				}
				rs = append(rs, rung{cid: cid, callee: callees[i], due: answer.Call.CreatedAt.Add(timeoutMs * time.Millisecond)})
				time.Sleep(10 * time.Millisecond) // spread the rings' ends as real calls' would be
			}
			var late, settled latencies
			missing := 0
			for _, r := range rs {
				at, ok := e.waitPush(deviceToken(r.callee, devFCM, 0), "bench:"+r.cid, queue.EventMissed, 30*time.Second)
				if !ok {
					missing++
					continue
				}
				late = append(late, at.Sub(r.due))
				var got struct {
					Call struct {
						EndedAt *time.Time `json:"ended_at"`
					} `json:"call"`
				}
				if json.Unmarshal(e.mustDo(base, "GET", "/v1/call/bench/"+r.cid, tok, nil), &got) == nil && got.Call.EndedAt != nil {
					settled = append(settled, got.Call.EndedAt.Sub(r.due))
				}
			}
			label := map[string]string{"idle": "worker otherwise idle", "load": fmt.Sprintf("while the worker drains %d members", cfg.ringLoadN-1)}[phase]
			t.add(append(append([]string{label, strconv.Itoa(cfg.timeoutRings), strconv.Itoa(missing)}, late.cells()...), ms(settled.pct(0.5)), ms(settled.pct(1)))...)
		}
		measure("idle", 0)

		before := e.pushes()
		ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
		defer cancel()
		if st, raw, err := e.do(ctx, base, "POST", "/v1/call/bench/timeout-load", tok, createBody(members, false, true)); err != nil || st/100 != 2 {
			tb.Fatalf("the notification under the rings: %d %v %.200s", st, err, raw)
		}
		measure("load", cfg.timeoutRings)
		if !e.waitPushes(before+cfg.ringLoadN-1+2*cfg.timeoutRings, cfg.timeout) {
			tb.Errorf("the notification under the rings did not drain")
		}
	})
	t.note("Lateness is the fake's receipt of the call.missed push minus the ring's created_at plus %d ms: it includes the timeout task's wait in Asynq's scheduled set, the settling script, the stop task and the provider round trip.", timeoutMs)
	return t, err
}
