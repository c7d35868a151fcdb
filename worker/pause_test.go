package worker

import (
	"testing"
	"time"
)

func TestProviderPauseHoldsBackOnlyThatProviderAndOnlyUntilItsTime(t *testing.T) {
	p := newProviderPause()
	now := time.Unix(1000, 0)
	p.pause("firebase", now, 3*time.Second)
	if got := p.remaining("firebase", now.Add(time.Second)); got != 2*time.Second {
		t.Errorf("firebase remaining %s, want 2s", got)
	}
	if got := p.remaining("apn", now); got != 0 {
		t.Errorf("apn paused %s by firebase's answer", got)
	}
	p.pause("firebase", now, time.Second) // a shorter ask does not cut a longer pause
	if got := p.remaining("firebase", now); got != 3*time.Second {
		t.Errorf("firebase remaining %s after a shorter pause, want 3s", got)
	}
	if got := p.remaining("firebase", now.Add(3*time.Second)); got != 0 {
		t.Errorf("firebase still paused %s after its time", got)
	}
}
