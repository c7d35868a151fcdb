package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
)

// withEvictionCheck adds to ready that Redis never evicts keys (maxmemory-policy noeviction). Asynq keeps
// every task in Redis: an evicted task is a push lost without a trace, and an evicted call key a ring that
// stops answering. With noeviction a full Redis refuses writes instead, which callers see as errors and retry.
// Managed Redis often refuses CONFIG GET; then the policy cannot be known, and that is logged once rather
// than failing readiness for good.
func withEvictionCheck(ready func(context.Context) error, rdb redis.UniversalClient, log *slog.Logger) func(context.Context) error {
	var once sync.Once
	return func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		policy, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			once.Do(func() {
				log.Warn("cannot read redis maxmemory-policy; make sure it is noeviction", "err", err)
			})
			return nil
		}
		if p, ok := policy["maxmemory-policy"]; ok && p != "noeviction" {
			return &api.NotReady{Part: "redis maxmemory-policy is " + p + ", not noeviction",
				Err: errors.New("redis may evict queued pushes and calls")}
		}
		return nil
	}
}
