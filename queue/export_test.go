package queue

import "time"

// What the external tests reach inside the package for.

// SetFreshness sets how long a read of the backlog serves; 0 reads it on every ask.
func (a *Admission) SetFreshness(d time.Duration) { a.fresh = d }

// AsynqTaskKey is the Redis key Asynq keeps task id of queue q under.
func AsynqTaskKey(q, id string) string { return asynqTaskKeyPrefix(q) + id }
