package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
)

// outboxCallsKey indexes the calls whose outbox may hold events, scored by the unix ms of their last
// transition. A transition writes it before its script when webhooks are on (Store.runKeys), so any event a
// script commits is findable even if the process dies right after.
const outboxCallsKey = "ringer:webhooks:outbox"

// Sweeper timing: an event still in an outbox OutboxGrace after its call's last transition was not drained by
// the process that made it (killed, or Redis was away), and the sweeper enqueues its webhooks.
const (
	OutboxGrace         = 5 * time.Second
	OutboxSweepInterval = time.Second
	outboxSweepBatch    = 200
)

// zremIfScoreScript takes a call out of the outbox index unless a transition wrote it again since it was
// read: such a transition may have events in the outbox that its process has yet to drain.
//
// KEYS[1] -> ringer:webhooks:outbox
// ARGV[1] -> cid
// ARGV[2] -> the score read
var zremIfScoreScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
`)

// outboxEntry is one event as a transition script wrote it in the outbox (event in scripts.go).
type outboxEntry struct {
	Type string `json:"type"`
	User string `json:"user"`
	At   int64  `json:"at"`
}

// SweepOutbox enqueues the webhooks of events left in the outboxes of calls whose last transition is older
// than OutboxGrace, and answers how many events it re-drove. A call's index entry goes once its outbox is
// empty. The webhook ids are those the live path uses, so an event both enqueue is delivered once; a re-driven
// event carries the call as it is when re-driven.
func (s *Store) SweepOutbox(ctx context.Context) (int, error) {
	if len(s.webhooks) == 0 {
		return 0, nil
	}
	cutoff := s.now().Add(-OutboxGrace).UnixMilli()
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, outboxCallsKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(cutoff, 10), Count: outboxSweepBatch,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("sweep outbox: %w", err)
	}
	n := 0
	for _, z := range zs {
		cid, _ := z.Member.(string)
		k, err := s.sweepCall(ctx, cid)
		n += k
		if err != nil {
			return n, err
		}
		if err := zremIfScoreScript.Run(ctx, s.rdb, []string{outboxCallsKey}, cid, strconv.FormatInt(int64(z.Score), 10)).Err(); err != nil {
			return n, fmt.Errorf("sweep outbox of %s: %w", cid, err)
		}
	}
	return n, nil
}

func (s *Store) sweepCall(ctx context.Context, cid string) (int, error) {
	entries, err := s.rdb.HGetAll(ctx, outboxKey(cid)).Result()
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	snap, err := s.read(ctx, cid)
	if errors.Is(err, ErrNotFound) {
		// The call is gone: what its events would say cannot be told any more.
		s.log.Warn("outbox of a call that is gone dropped", "cid", cid, "events", len(entries))
		return 0, s.rdb.Del(ctx, outboxKey(cid)).Err()
	}
	if err != nil {
		return 0, err
	}
	call, err := json.Marshal(snap.Call)
	if err != nil {
		return 0, fmt.Errorf("sweep outbox of %s: encode call: %w", cid, err)
	}
	var tasks []queue.WebhookTask
	seqs := make([]string, 0, len(entries))
	for f, v := range entries {
		seqs = append(seqs, f)
		seq, err := strconv.ParseInt(f, 10, 64)
		var e outboxEntry
		if err == nil {
			err = json.Unmarshal([]byte(v), &e)
		}
		if err != nil {
			s.log.Error("outbox entry not decoded", "cid", cid, "seq", f, "err", err)
			continue
		}
		body, err := json.Marshal(eventWire{Type: e.Type, CallCID: cid, Call: call, User: UserRef{ID: e.User}, CreatedAt: time.UnixMilli(e.At).UTC()})
		if err != nil {
			return 0, fmt.Errorf("sweep outbox of %s: encode event: %w", cid, err)
		}
		tasks = append(tasks, s.webhookTasks(cid, seq, e.At, body)...)
	}
	if err := s.queue.EnqueueWebhooks(ctx, tasks); err != nil {
		return 0, fmt.Errorf("sweep outbox of %s: %w", cid, err)
	}
	if err := s.rdb.HDel(ctx, outboxKey(cid), seqs...).Err(); err != nil {
		return 0, fmt.Errorf("sweep outbox of %s: %w", cid, err)
	}
	s.log.Info("outbox events re-driven", "cid", cid, "events", len(seqs))
	return len(seqs), nil
}

// RunOutboxSweeper sweeps every OutboxSweepInterval until ctx ends. Every worker process runs one; they may
// re-drive the same event at once, which the deterministic webhook ids make harmless.
func (s *Store) RunOutboxSweeper(ctx context.Context) {
	t := time.NewTicker(OutboxSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.SweepOutbox(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("outbox sweep", "err", err)
			}
		}
	}
}
