package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// Races where the pushes matter. The transitions themselves (two accepts at once, accept against timeout,
// cancel, reject and mark_ended) are proven atomic at the store level in calls/race_test.go; these check
// that what the devices receive follows the one winner.

// answer is one API answer from a request sent off the test's goroutine.
type answer struct {
	status int
	body   map[string]any
	err    error
}

// post sends a JSON POST as token; safe on any goroutine.
func post(url, token string, body any) answer {
	b, err := json.Marshal(body)
	if err != nil {
		return answer{err: err}
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(b))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// together runs each fn at the same instant, as near as goroutines allow, and waits for them all.
func together(fns ...func()) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for _, fn := range fns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// typesFor lists the push types token got about one call.
func typesFor(msgs []map[string]string, cid string) []string {
	var out []string
	for _, d := range msgs {
		if d["call_cid"] == cid {
			out = append(out, d["type"])
		}
	}
	return out
}

func fcmData(e *harness.Env, token string) []map[string]string {
	var out []map[string]string
	for _, m := range e.FCM.MessagesTo(token) {
		out = append(out, m.Data)
	}
	return out
}

func apnsData(e *harness.Env, token string) []map[string]string {
	var out []map[string]string
	for _, n := range e.APNs.NotificationsTo(token) {
		out = append(out, n.Data())
	}
	return out
}

// TestFiftyConcurrentIdenticalGetOrCreateRingsRingEachDeviceOnce sends the same get-or-create with ring:
// true fifty times at once, three times over. One request creates the call and rings; the other 49 find it
// and ring nobody. Each callee device gets one ring push, and after mark_ended one stop: bob's Android phone
// a call.ended, his VoIP token nothing more (a VoIP push must show a call), his regular iPhone token the
// silent stop (his VoIP token was rung), carol's Android phone a call.ended.
func TestFiftyConcurrentIdenticalGetOrCreateRingsRingEachDeviceOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	voip, iphone := harness.APNsToken("gc-bob-voip"), harness.APNsToken("gc-bob-iphone")
	e.Device("bob", "gc-bob-android", "firebase", false)
	e.Device("bob", voip, "apn", true)
	e.Device("bob", iphone, "apn", false)
	e.Device("carol", "gc-carol-android", "firebase", false)
	alice := e.Token("alice")
	const rounds, requests = 3, 50
	for round := range rounds {
		id := fmt.Sprintf("gc-%d", round)
		answers := make([]answer, requests)
		fns := make([]func(), requests)
		for i := range fns {
			fns[i] = func() { answers[i] = post(e.URL+"/v1/call/default/"+id, alice, ringBody(60_000, "bob", "carol")) }
		}
		together(fns...)
		created, found := 0, 0
		ringIDs := map[string]bool{}
		for _, a := range answers {
			switch {
			case a.err != nil:
				t.Fatalf("round %d: %v", round, a.err)
			case a.status == 201:
				created++
			case a.status == 200:
				found++
			default:
				t.Errorf("round %d: answer %d %v", round, a.status, a.body)
			}
			if call, ok := a.body["call"].(map[string]any); ok {
				ringIDs[fmt.Sprint(call["ring_id"])] = true
			}
		}
		if created != 1 || found != requests-1 || len(ringIDs) != 1 {
			t.Errorf("round %d: %d created, %d found, ring ids %v; want 1, %d, one ring", round, created, found, ringIDs, requests-1)
		}
	}
	cid := func(round int) string { return fmt.Sprintf("default:gc-%d", round) }
	harness.Eventually(t, 30*time.Second, "every ring push", func() bool {
		return len(e.FCM.MessagesTo("gc-bob-android")) >= rounds && len(e.FCM.MessagesTo("gc-carol-android")) >= rounds &&
			len(e.APNs.NotificationsTo(voip)) >= rounds
	})
	e.Quiet()
	for round := range rounds {
		for tok, got := range map[string][]string{
			"bob-android":   typesFor(fcmData(e, "gc-bob-android"), cid(round)),
			"carol-android": typesFor(fcmData(e, "gc-carol-android"), cid(round)),
			"bob-voip":      typesFor(apnsData(e, voip), cid(round)),
			"bob-iphone":    typesFor(apnsData(e, iphone), cid(round)),
		} {
			want := []string{"call.ring"}
			if tok == "bob-iphone" {
				want = nil
			}
			if !same(got, want...) {
				t.Errorf("round %d: %s got %v, want %v", round, tok, got, want)
			}
		}
		e.MustCall(200, "POST", fmt.Sprintf("/v1/call/default/gc-%d/mark_ended", round), alice, nil)
	}
	harness.Eventually(t, 30*time.Second, "every stop push", func() bool {
		return len(e.FCM.MessagesTo("gc-bob-android")) >= 2*rounds && len(e.FCM.MessagesTo("gc-carol-android")) >= 2*rounds &&
			len(e.APNs.NotificationsTo(iphone)) >= rounds
	})
	e.Quiet()
	for round := range rounds {
		for tok, c := range map[string]struct {
			got  []string
			want []string
		}{
			"bob-android":   {typesFor(fcmData(e, "gc-bob-android"), cid(round)), []string{"call.ring", "call.ended"}},
			"carol-android": {typesFor(fcmData(e, "gc-carol-android"), cid(round)), []string{"call.ring", "call.ended"}},
			"bob-voip":      {typesFor(apnsData(e, voip), cid(round)), []string{"call.ring"}},
			"bob-iphone":    {typesFor(apnsData(e, iphone), cid(round)), []string{"call.ended"}},
		} {
			if !same(c.got, c.want...) {
				t.Errorf("round %d after mark_ended: %s got %v, want %v", round, tok, c.got, c.want)
			}
		}
	}
}

// TestAcceptOrRejectRacingTheCallersCancelStopsEachDeviceOnce has the callee accept (or reject) at the very
// instant the caller cancels, several calls at once. Whichever wins, each device of the callee gets exactly
// one stop: call.accepted (or call.rejected) when the callee's request won, call.missed when the cancel won,
// never both, never neither. The VoIP token gets only its ring.
func TestAcceptOrRejectRacingTheCallersCancelStopsEachDeviceOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	type pair struct {
		callee, verb, stop string
		iphone, voip       string
		answer, cancel     answer
	}
	var pairs []*pair
	for i := range 6 {
		for _, verb := range []string{"accept", "reject"} {
			p := &pair{callee: fmt.Sprintf("%s%d", verb, i), verb: verb, stop: "call.accepted"}
			if verb == "reject" {
				p.stop = "call.rejected"
			}
			p.iphone, p.voip = harness.APNsToken(p.callee+"-iphone"), harness.APNsToken(p.callee+"-voip")
			e.Device(p.callee, p.callee+"-android", "firebase", false)
			e.Device(p.callee, p.iphone, "apn", false)
			e.Device(p.callee, p.voip, "apn", true)
			e.MustCall(201, "POST", "/v1/call/default/"+p.callee, e.Token("alice"), ringBody(60_000, p.callee))
			pairs = append(pairs, p)
		}
	}
	harness.Eventually(t, 30*time.Second, "every ring push", func() bool {
		for _, p := range pairs {
			if len(e.FCM.MessagesTo(p.callee+"-android")) == 0 || len(e.APNs.NotificationsTo(p.voip)) == 0 {
				return false
			}
		}
		return true
	})
	var fns []func()
	for _, p := range pairs {
		base := e.URL + "/v1/call/default/" + p.callee
		body := map[string]any{}
		if p.verb == "reject" {
			body["reason"] = "decline"
		}
		fns = append(fns,
			func() { p.answer = post(base+"/"+p.verb, e.Token(p.callee), body) },
			func() { p.cancel = post(base+"/reject", e.Token("alice"), map[string]any{"reason": "cancel"}) })
	}
	together(fns...)
	harness.Eventually(t, 30*time.Second, "every stop push", func() bool {
		for _, p := range pairs {
			if len(e.FCM.MessagesTo(p.callee+"-android")) < 2 || len(e.APNs.NotificationsTo(p.iphone)) < 1 {
				return false
			}
		}
		return true
	})
	e.Quiet()
	won := map[string]int{}
	for _, p := range pairs {
		if p.answer.err != nil || p.cancel.err != nil {
			t.Fatalf("%s: %v %v", p.callee, p.answer.err, p.cancel.err)
		}
		if p.answer.status >= 500 || p.cancel.status >= 500 {
			t.Errorf("%s: %s answered %d, cancel %d", p.callee, p.verb, p.answer.status, p.cancel.status)
		}
		want := p.stop
		switch p.answer.status {
		case 200:
			won[p.verb]++
		case 409:
			want = "call.missed"
			won["cancel"]++
		default:
			t.Errorf("%s: %s answered %d %v, want 200 or 409", p.callee, p.verb, p.answer.status, p.answer.body)
		}
		if got := fcmTypes(e, p.callee+"-android"); !same(got, "call.ring", want) {
			t.Errorf("%s (%s %d, cancel %d): Android phone got %v, want [call.ring %s]", p.callee, p.verb, p.answer.status, p.cancel.status, got, want)
		}
		if got := apnsTypes(e, p.iphone); !same(got, want) {
			t.Errorf("%s (%s %d, cancel %d): iPhone got %v, want [%s]", p.callee, p.verb, p.answer.status, p.cancel.status, got, want)
		}
		if got := apnsTypes(e, p.voip); !same(got, "call.ring") {
			t.Errorf("%s: VoIP token got %v, want [call.ring]", p.callee, got)
		}
	}
	t.Logf("winners of %d races: %v", len(pairs), won)
}
