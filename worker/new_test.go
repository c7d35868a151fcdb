package worker

import (
	"strings"
	"testing"
)

// A worker missing a part would fail on the first task that needs it (a watchdog tick without a queue hit a
// nil pointer): New refuses it and names every missing part.
func TestAWorkerMissingItsPartsIsRefusedNamingEachOne(t *testing.T) {
	_, err := New(Config{})
	if err == nil {
		t.Fatal("a worker with no parts was built")
	}
	for _, part := range []string{"Redis", "Devices", "Templates", "Calls", "Queue", "Providers"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %s", err, part)
		}
	}
}
