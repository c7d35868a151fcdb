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
	alice, bob, cid := aliceRingsBob(t, false)
	alice.waitFor(waitLong, "alice's outgoing ring to say Ringing", fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? '').startsWith('Ringing')`, outgoing(cid)+" .who"))
	alice.click("Cancel", outgoing(cid)+" [data-testid=cancel]")
	alice.waitFor(waitLong, "the outgoing ring to go", absent(outgoing(cid)))
	noExceptions(t, alice, bob)
}
