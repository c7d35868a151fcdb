package worker

import (
	"sync"
	"time"
)

// providerPause remembers a provider's request to slow down (429 with Retry-After, or 503 with it): until
// then no push to that provider leaves this worker, so the wait applies to the provider as a whole rather than
// to the one job that heard it while every other job keeps hammering.
type providerPause struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func newProviderPause() *providerPause { return &providerPause{until: map[string]time.Time{}} }

// remaining is how long provider is still paused at now; zero when it is not.
func (p *providerPause) remaining(provider string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.until[provider].Sub(now); d > 0 {
		return d
	}
	return 0
}

// pause holds provider back until now+d, unless it is already held back longer.
func (p *providerPause) pause(provider string, now time.Time, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := now.Add(d); until.After(p.until[provider]) {
		p.until[provider] = until
	}
}
