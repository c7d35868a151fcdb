package browser

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Selectors of the page (web/index.html, web/app.js).
func incoming(cid string) string { return fmt.Sprintf(`[data-testid=incoming-call][data-cid=%q]`, cid) }
func outgoing(cid string) string { return fmt.Sprintf(`[data-testid=outgoing-call][data-cid=%q]`, cid) }
func joined(cid string) string   { return fmt.Sprintf(`[data-testid=joined-call][data-cid=%q]`, cid) }
func row(cid string) string      { return fmt.Sprintf(`[data-testid=call-row][data-cid=%q]`, cid) }
func push(typ, cid string) string {
	return fmt.Sprintf(`[data-testid=push][data-type=%q][data-cid=%q]`, typ, cid)
}

func present(sel string) string { return fmt.Sprintf(`document.querySelector(%q) !== null`, sel) }
func absent(sel string) string  { return fmt.Sprintf(`document.querySelector(%q) === null`, sel) }

// waitLong bounds what the test waits for when it asserts no time: the ring itself, under -race on a busy CI.
const waitLong = 15 * time.Second

// ringBob has alice's page ring bob, checks that alice's page shows the outgoing ring and bob's the incoming
// ring and the call.ring push, each within ringPrompt of alice's click, and returns the call's cid.
func ringBob(t *testing.T, alice, bob *page, video bool) string {
	t.Helper()
	if video {
		alice.click("the video box", `[data-testid=video]`)
	}
	alice.waitFor(waitLong, "bob to be picked", `document.querySelector('[data-testid=member-bob]').checked`)
	alice.click("Call", `[data-testid=call]`)
	alice.waitFor(waitLong, "the call to be placed", `document.body.dataset.lastCallCid !== undefined`)
	cid := eval[string](alice, `document.body.dataset.lastCallCid`)

	alice.waitFor(waitLong, "the outgoing ring", present(outgoing(cid)))
	bob.waitFor(waitLong, "the incoming ring", present(incoming(cid)))
	bob.waitFor(waitLong, "the call.ring push in the device panel", present(push("call.ring", cid)))

	// Both windows run in one browser, so their Date.now() share a clock.
	sent := alice.number("body", "lastCallSentAt")
	for what, at := range map[string]float64{
		"alice's page showed the outgoing ring": alice.number(outgoing(cid), "shownAt"),
		"bob's page showed the incoming ring":   bob.number(incoming(cid), "shownAt"),
		"bob's device got the call.ring push":   bob.number(push("call.ring", cid), "at"),
	} {
		if ms := at - sent; !(ms >= 0 && ms < float64(ringPrompt.Milliseconds())) {
			t.Errorf("%s %.0f ms after alice clicked Call, want within %v", what, ms, ringPrompt)
		}
	}
	if got := bob.text(incoming(cid) + " .who"); got != "Alice is calling you" {
		t.Errorf("bob's incoming ring says %q, want %q", got, "Alice is calling you")
	}
	if video && !bob.has(incoming(cid)+" .badge.video:not([hidden])") {
		t.Errorf("bob's incoming ring does not say video")
	}
	return cid
}

// aliceRingsBob opens alice's and bob's windows on a `ringer serve` with the demo page and has alice ring bob
// (ringBob): the start of every test of what happens to a ring.
func aliceRingsBob(t *testing.T, video bool) (alice, bob *page, cid string) {
	t.Helper()
	base := startDemo(t)
	b := newBrowser(t)
	alice = b.open(t, base, "alice")
	bob = b.open(t, base, "bob")
	return alice, bob, ringBob(t, alice, bob, video)
}

// ringGone waits until the ring of cid is gone from both pages: bob's incoming card and alice's outgoing one.
func ringGone(alice, bob *page, cid string) {
	bob.waitFor(waitLong, "the incoming ring to go", absent(incoming(cid)))
	alice.waitFor(waitLong, "the outgoing ring to go", absent(outgoing(cid)))
}

// TestNewcomerRingsBobFromAliceWithRingerDev is the definition of done: `ringer dev`, the printed URL
// in two windows, alice rings bob, bob accepts, both are in the call; then bob leaves and alice ends it.
func TestNewcomerRingsBobFromAliceWithRingerDev(t *testing.T) {
	t.Parallel()
	base := startDev(t)
	b := newBrowser(t)
	alice := b.open(t, base, "alice")
	bob := b.open(t, base, "bob")

	cid := ringBob(t, alice, bob, true)
	alice.screenshot("01-alice-outgoing-ring")
	bob.screenshot("02-bob-incoming-ring")

	bob.click("Accept", incoming(cid)+" [data-testid=accept]")
	bob.waitFor(waitLong, "bob to be in the call", present(joined(cid)))
	alice.waitFor(waitLong, "alice to be in the call", present(joined(cid)))
	ringGone(alice, bob, cid)
	// Accepting on one device stops the ring on the user's other devices: this one got the stop push too.
	bob.waitFor(waitLong, "the call.accepted stop push", present(push("call.accepted", cid)))
	if got := alice.text(joined(cid) + " .who"); got != "With Bob" {
		t.Errorf("alice's call says %q, want %q", got, "With Bob")
	}
	if !alice.has(joined(cid)+" [data-testid=end]") || bob.has(joined(cid)+" [data-testid=end]") {
		t.Errorf("End shows for alice (the creator, who has the right): %v; for bob (who has not): %v",
			alice.has(joined(cid)+" [data-testid=end]"), bob.has(joined(cid)+" [data-testid=end]"))
	}
	alice.screenshot("03-alice-joined")
	bob.screenshot("03-bob-joined")

	bob.click("Leave", joined(cid)+" [data-testid=leave]")
	bob.waitFor(waitLong, "bob to be out of the call", absent(joined(cid))+` && `+present(row(cid)+`[data-state=idle]`))
	if !alice.has(joined(cid)) {
		t.Errorf("alice left the call when bob did")
	}
	alice.click("End", joined(cid)+" [data-testid=end]")
	alice.waitFor(waitLong, "the call to end for alice", present(row(cid)+`[data-state=ended]`)+` && `+absent(joined(cid)))
	bob.waitFor(waitLong, "the call to end for bob", present(row(cid)+`[data-state=ended]`))
	noExceptions(t, alice, bob)
}

// TestAliceCancelsAndBobsPageShowsTheMissedCall: the caller's Cancel (leave before any accept) stops bob's ring,
// and bob's device gets the call.missed push.
func TestAliceCancelsAndBobsPageShowsTheMissedCall(t *testing.T) {
	t.Parallel()
	alice, bob, cid := aliceRingsBob(t, false)
	alice.click("Cancel", outgoing(cid)+" [data-testid=cancel]")
	ringGone(alice, bob, cid)
	bob.waitFor(waitLong, "the call.missed push", present(push("call.missed", cid)))
	bob.waitFor(waitLong, "the missed call in bob's calls", fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? '').includes('Missed call from Alice')`, row(cid)))
	if bob.has(joined(cid)) || alice.has(joined(cid)) {
		t.Errorf("a cancelled call shows as joined")
	}
	if alert := bob.text(push("call.missed", cid) + " .alert"); alert == "" {
		t.Errorf("the call.missed push has no title or body: a phone would show nothing")
	}
	bob.screenshot("04-bob-missed-call")
	noExceptions(t, alice, bob)
}

// TestBobRejectsAndAlicesPageShowsTheDecline: the callee's Reject ends a one-to-one call; the caller sees it
// declined, and bob's device gets the stop push.
func TestBobRejectsAndAlicesPageShowsTheDecline(t *testing.T) {
	t.Parallel()
	alice, bob, cid := aliceRingsBob(t, false)
	bob.click("Reject", incoming(cid)+" [data-testid=reject]")
	ringGone(alice, bob, cid)
	alice.waitFor(waitLong, "the declined call in alice's calls", present(row(cid)+`[data-state=ended]`)+fmt.Sprintf(
		` && document.querySelector(%q).textContent.includes('Declined by Bob')`, row(cid)))
	bob.waitFor(waitLong, "the call.rejected stop push", present(push("call.rejected", cid)))
	if got := bob.text(row(cid)); !strings.Contains(got, "You declined") {
		t.Errorf("bob's calls say %q, want it to say he declined", got)
	}
	alice.screenshot("05-alice-declined")
	noExceptions(t, alice, bob)
}

// TestNotifyReachesBobAsAnAlertAndBobJoins: Call in notify mode rings nobody; bob's device gets the
// call.notification alert push, and bob joins from his calls. Bob's window first plays alice and switches to
// bob with the picker, as a newcomer with one window would.
func TestNotifyReachesBobAsAnAlertAndBobJoins(t *testing.T) {
	t.Parallel()
	base := startDemo(t)
	b := newBrowser(t)
	alice := b.open(t, base, "alice")
	bob := b.open(t, base, "alice")
	bob.do(waitLong, "pick bob", chromedp.SetValue(chromedp.CSS(`[data-testid=user-select]`), "bob"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid=user-select]').dispatchEvent(new Event('change'))`))
	bob.user = "bob"
	bob.waitFor(waitLong, "the page to play bob", `(() => { const s = document.querySelector('[data-testid=status]');
		return s.dataset.user === 'bob' && s.dataset.ready === 'true' && new URL(location.href).searchParams.get('user') === 'bob'; })()`)

	alice.click("notify", `[data-testid=mode-notify]`)
	alice.click("Call", `[data-testid=call]`)
	alice.waitFor(waitLong, "the call to be placed", `document.body.dataset.lastCallCid !== undefined`)
	cid := eval[string](alice, `document.body.dataset.lastCallCid`)
	bob.waitFor(waitLong, "the call.notification push", present(push("call.notification", cid)))
	bob.waitFor(waitLong, "the call in bob's calls, idle", present(row(cid)+`[data-state=idle]`))
	if bob.has(incoming(cid)) || alice.has(outgoing(cid)) {
		t.Errorf("a notify rang: incoming %v, outgoing %v", bob.has(incoming(cid)), alice.has(outgoing(cid)))
	}
	if alert := bob.text(push("call.notification", cid) + " .alert"); alert == "" {
		t.Errorf("the call.notification push has no title or body")
	}
	bob.click("Join", row(cid)+" [data-testid=join]")
	bob.waitFor(waitLong, "bob to be in the call", present(joined(cid)))
	noExceptions(t, alice, bob)
}
