package calls

import (
	"context"
	"fmt"
	"time"
)

// RingAdmitter says whether a new ring can be delivered in time (queue.Admission): nil, or an error that
// wraps queue.ErrOverloaded, which api answers 503 with Retry-After.
type RingAdmitter interface {
	AdmitRing(ctx context.Context) error
}

// SetRingAdmission makes the store refuse requests that would start a ring while a refuses them; nil admits
// every ring. Call it before the store is used.
func (s *Store) SetRingAdmission(a RingAdmitter) { s.admission = a }

// admitRing is asked before anything of a ring is stored, so that a refused request leaves no trace.
func (s *Store) admitRing(ctx context.Context, cid string) error {
	if s.admission == nil {
		return nil
	}
	if err := s.admission.AdmitRing(ctx); err != nil {
		s.metrics.refused()
		return fmt.Errorf("ring %s: %w", cid, err)
	}
	return nil
}

// Retention defaults (API.md, "Configuration").
const (
	DefaultRetention = 24 * time.Hour
	DefaultMaxAge    = 7 * 24 * time.Hour
)

// SetRetention sets how long an ended call's keys are kept (retention), and how long a call that never ends
// is kept after its last transition (maxAge). Call it before the store is used.
func (s *Store) SetRetention(retention, maxAge time.Duration) {
	if retention > 0 {
		s.retention = retention
	}
	if maxAge > 0 {
		s.maxAge = maxAge
	}
}
