package browser

import (
	"fmt"
	"testing"
)

// TestAlicesPageSaysRingingOnceBobsDeviceAcknowledgesTheRing: bob's page acknowledges the ring when its
// device gets the call.ring push (POST .../ringing), and alice's outgoing ring goes from "Calling" to
// "Ringing".
func TestAlicesPageSaysRingingOnceBobsDeviceAcknowledgesTheRing(t *testing.T) {
	t.Parallel()
	base := startDemo(t)
	b := newBrowser(t)
	alice := b.open(t, base, "alice")
	bob := b.open(t, base, "bob")

	cid := ringBob(t, alice, bob, false)
	alice.waitFor(waitLong, "alice's outgoing ring to say Ringing", fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? '').startsWith('Ringing')`, outgoing(cid)+" .who"))
	alice.click("Cancel", outgoing(cid)+" [data-testid=cancel]")
	alice.waitFor(waitLong, "the outgoing ring to go", absent(outgoing(cid)))
	noExceptions(t, alice, bob)
}
