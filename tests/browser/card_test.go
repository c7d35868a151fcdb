package browser

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// setValue sets a form control's value and tells the page, as a user's choice would (input and change).
func setValue(sel, value string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.SetValue(chromedp.CSS(sel), value),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%s);
			e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); })()`, strconv.Quote(sel))),
	}
}

// ringtone is what the page says of its ringtone: "playing", "blocked" (the browser waits for a click before
// it plays sound) or "off".
func ringtone(p *page) string { return eval[string](p, `document.body.dataset.ringtone`) }

// visible is a JavaScript condition: the element exists and takes room on the page.
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.checkVisibility() && e.getBoundingClientRect().height > 0; })()`, sel)
}

// hearRingtone waits until the page's ringtone sounds. A browser may hold a page's sound until the user has
// clicked on it: then the card says so, and a click anywhere lets it be heard.
func hearRingtone(t *testing.T, p *page, card string) {
	t.Helper()
	p.waitFor(waitLong, "the ringtone to start", `['playing', 'blocked'].includes(document.body.dataset.ringtone)`)
	if ringtone(p) == "blocked" {
		t.Logf("%s: the browser holds the ringtone until a click", p.user)
		p.waitFor(waitLong, "the card to ask for a click", visible(card+" .sound-note"))
		p.click("the page", `header h1`)
	}
	p.waitFor(waitLong, "the ringtone to play", `document.body.dataset.ringtone === 'playing'`)
	if !p.has(`body:not([data-ringtone=blocked])`) || eval[bool](p, fmt.Sprintf(`document.querySelector(%q).checkVisibility()`, card+" .sound-note")) {
		t.Errorf("%s: the card asks for a click while the ringtone plays", p.user)
	}
}

var hourOfDay = regexp.MustCompile(`^\d\d:\d\d:\d\d$`)

// TestBobsIncomingCallCardRingsUntilHeAccepts: a ring shows bob a call card with a ringtone, which both go when
// he accepts; the calls list names each call and says when it started.
func TestBobsIncomingCallCardRingsUntilHeAccepts(t *testing.T) {
	t.Parallel()
	alice, bob, cid := aliceRingsBob(t, true)
	bob.waitFor(waitLong, "the incoming-call card in view", visible(incoming(cid))+` && (() => {
		const r = document.querySelector(`+fmt.Sprintf("%q", incoming(cid))+`).getBoundingClientRect();
		return r.top >= 0 && r.bottom <= innerHeight; })()`)
	if got := bob.text(incoming(cid) + " .line"); got != "Incoming video call" {
		t.Errorf("bob's card says %q under the caller, want %q", got, "Incoming video call")
	}
	hearRingtone(t, bob, incoming(cid))
	if ringtone(alice) != "off" {
		t.Errorf("alice's ringtone is %q while she calls, want off: only the callee's page rings", ringtone(alice))
	}

	bob.click("Accept", incoming(cid)+" [data-testid=accept]")
	bob.waitFor(waitLong, "the card to go", absent(incoming(cid))+` && document.querySelector('[data-testid=incoming]').hidden`)
	bob.waitFor(waitLong, "the ringtone to stop", `document.body.dataset.ringtone === 'off'`)
	bob.waitFor(waitLong, "bob to be in the call", present(joined(cid)))

	// The calls list: who called whom, or the name the call was given, and when.
	alice.waitFor(waitLong, "alice to be in the call", present(joined(cid)))
	alice.click("End", joined(cid)+" [data-testid=end]")
	alice.waitFor(waitLong, "the call to end", present(row(cid)+`[data-state=ended]`))
	alice.do(waitLong, "name the next call", setValue(`[data-testid=call-name]`, "Standup")...)
	alice.click("notify", `[data-testid=mode-notify]`)
	alice.click("Call", `[data-testid=call]`)
	alice.waitFor(waitLong, "the named call to be placed", fmt.Sprintf(`document.body.dataset.lastCallCid !== %q`, cid))
	named := eval[string](alice, `document.body.dataset.lastCallCid`)
	alice.waitFor(waitLong, "both calls in alice's list", present(row(cid))+" && "+present(row(named)))
	for c, want := range map[string]string{cid: "Alice → Bob", named: "Standup"} {
		if got := alice.text(row(c) + " .label"); got != want {
			t.Errorf("alice's row of %s is named %q, want %q", c, got, want)
		}
		if got := alice.text(row(c) + " .started time"); !hourOfDay.MatchString(got) {
			t.Errorf("alice's row of %s says it started at %q, want the hour of day", c, got)
		}
	}
	bob.waitFor(waitLong, "the named call in bob's list", fmt.Sprintf(`document.querySelector(%q)?.textContent === 'Standup'`, row(named)+" .label"))
	if ringtone(bob) != "off" {
		t.Errorf("a notify rang bob's ringtone: %q", ringtone(bob))
	}
	noExceptions(t, alice, bob)
}

// TestBobsRejectReasonIsLabelledAndSent: the reason a Reject sends is a labelled choice on the card, and the
// reason picked reaches ringer: busy counts as missed for the caller (API.md), so alice's list says Bob was busy.
func TestBobsRejectReasonIsLabelledAndSent(t *testing.T) {
	t.Parallel()
	alice, bob, cid := aliceRingsBob(t, false)
	reason := incoming(cid) + " [data-testid=reject-reason]"
	label := eval[string](bob, fmt.Sprintf(`[...document.querySelector(%q).labels].map((l) => l.textContent.trim()).join('|')`, reason))
	if !strings.HasPrefix(label, "Reject as") {
		t.Errorf("the reject reason's label is %q, want it to say \"Reject as\"", label)
	}
	if got := eval[string](bob, fmt.Sprintf(`[...document.querySelector(%q).options].map((o) => o.value + '=' + o.text).join(', ')`, reason)); got != "decline=Decline, busy=I’m busy" {
		t.Errorf("the reasons offered are %q", got)
	}
	hearRingtone(t, bob, incoming(cid))
	bob.do(waitLong, "pick busy", setValue(reason, "busy")...)
	bob.click("Reject", incoming(cid)+" [data-testid=reject]")
	bob.waitFor(waitLong, "the card to go", absent(incoming(cid)))
	bob.waitFor(waitLong, "the ringtone to stop", `document.body.dataset.ringtone === 'off'`)
	alice.waitFor(waitLong, "alice's list to say Bob was busy", fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? '') === 'Bob was busy'`, row(cid)+" .outcome"))
	bob.waitFor(waitLong, "bob's list to say he was busy", fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? '') === 'You were busy'`, row(cid)+" .outcome"))
	noExceptions(t, alice, bob)
}

// TestAPushShowsItsPayloadOnlyWhenDetailsIsOpened: the phone panel says what each push does; the push's raw
// payload stays folded until "details" is opened.
func TestAPushShowsItsPayloadOnlyWhenDetailsIsOpened(t *testing.T) {
	t.Parallel()
	alice, bob, cid := aliceRingsBob(t, false)
	p := push("call.ring", cid)
	if got := bob.text(p + " .title"); got != "Incoming call from Alice: the phone rings" {
		t.Errorf("the ring push says %q", got)
	}
	if got := bob.text(p + " summary"); !strings.HasPrefix(got, "details") {
		t.Errorf("the push's toggle says %q, want it to start with details", got)
	}
	if bob.has(p+" details[open]") || eval[bool](bob, fmt.Sprintf(`document.querySelector(%q).checkVisibility()`, p+" pre")) {
		t.Fatalf("the push's JSON shows before details is opened")
	}
	bob.click("details", p+" summary")
	bob.waitFor(waitLong, "the push's JSON", visible(p+" pre"))
	payload := eval[string](bob, fmt.Sprintf(`JSON.parse(document.querySelector(%q).textContent).call_cid`, p+" pre"))
	if payload != cid {
		t.Errorf("the JSON shown has call_cid %q, want %q", payload, cid)
	}
	alice.click("Cancel", outgoing(cid)+" [data-testid=cancel]")
	bob.waitFor(waitLong, "the call.missed push", present(push("call.missed", cid)))
	if !bob.has(p + " details[open]") {
		t.Errorf("a new push folded the details bob had opened")
	}
	if bob.has(push("call.missed", cid) + " details[open]") {
		t.Errorf("the new push's JSON shows unasked")
	}
	noExceptions(t, alice, bob)
}
