package queue

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every Asynq queue keeps all its keys under one hash tag, its name (asynq:{<queue>}:pending and the rest), so
// on a Redis Cluster one queue lives on one master, and a single ring queue would put every ring of the
// whole system through that master. A Layout spreads each of ringer's queues over shards: Asynq queues of
// their own, each task in the one its id picks, every worker serving them all.
//
// Shard 0 keeps the queue's plain name, so a deployment with one shard (the default) is unchanged and a
// change of the count finds its old tasks in place. The other shards are named <queue>.<number>, the number
// chosen so that the shards' hash slots fall in evenly spaced windows of the slot space: a cluster whose
// masters hold equal runs of slots (what redis-cli --cluster create makes) gets the same number of shards on
// each master when the shard count is a multiple of the master count. Random names would leave that to
// chance: four of eight shards on one master of three, say.
//
// Every process that enqueues (the API, a call service through this package) and every worker must use the
// same count; a worker also serves the shards it finds in Redis when it starts (AllShards), so lowering the
// count drains what the old shards hold.

// MaxShards bounds a Layout: an idle worker polls every shard of a queue on each poll.
const MaxShards = 64

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// Layout names the shards of ringer's queues. Its zero value is one shard a queue.
type Layout struct {
	names map[string][]string
}

// NewLayout splits each of ringer's queues over n shards (1 when n < 1, MaxShards at most).
func NewLayout(n int) Layout {
	l := Layout{names: map[string][]string{}}
	for _, base := range []string{QueueRing, QueueWatch, QueueNotify, QueueWebhook} {
		l.names[base] = ShardNames(base, n)
	}
	return l
}

// Names lists the Asynq queues of base, shard 0 first.
func (l Layout) Names(base string) []string {
	if names, ok := l.names[base]; ok {
		return names
	}
	return []string{base}
}

// For names the shard of base that holds the task with id taskID: the same id always lands in the same
// shard, so Asynq's per-queue task ids still deduplicate.
func (l Layout) For(base, taskID string) string {
	names := l.Names(base)
	if len(names) == 1 {
		return names[0]
	}
	h := fnv.New32a()
	h.Write([]byte(taskID))
	return names[h.Sum32()%uint32(len(names))]
}

// Base is the queue a shard belongs to: "ring" for "ring" and for "ring.12".
func Base(name string) string {
	base, num, ok := strings.Cut(name, ".")
	if !ok {
		return name
	}
	if _, err := strconv.ParseUint(num, 10, 32); err != nil {
		return name
	}
	return base
}

// ShardNames names n shards of base: base itself first, then base.<j> for the smallest j whose hash slot
// falls in the next window (of n equal windows of the slot space, counted from base's own) that no shard has
// yet.
func ShardNames(base string, n int) []string {
	n = min(max(n, 1), MaxShards)
	names := []string{base}
	if n == 1 {
		return names
	}
	window := func(name string) int { return int(keySlot(name)) * n / clusterSlots }
	taken := make([]bool, n)
	first := window(base)
	taken[first] = true
	for k := 1; k < n; k++ {
		want := (first + k) % n
		for j := 1; ; j++ {
			name := base + "." + strconv.Itoa(j)
			if window(name) == want && !taken[want] {
				taken[want] = true
				names = append(names, name)
				break
			}
		}
	}
	return names
}

// AllShards adds to names every queue of existing (the queues Redis knows, Inspector.Queues) that is a
// shard of base and not among them: what a worker serves so that no task waits in a shard it was not told of.
func AllShards(base string, names, existing []string) []string {
	out := append([]string(nil), names...)
	for _, q := range existing {
		if Base(q) == base && !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

// asynqQueuesKey is the set of every queue Asynq has enqueued to (its internal/base AllQueues).
const asynqQueuesKey = "asynq:queues"

// KnownQueues lists the queues Asynq has enqueued to on rdb, as Inspector.Queues does, within ctx.
func KnownQueues(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	qs, err := rdb.SMembers(ctx, asynqQueuesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	return qs, nil
}

// keySlot is the Redis Cluster hash slot of a key whose hash tag is tag: CRC16 (XMODEM) modulo 16384, as
// the Cluster specification defines it.
func keySlot(tag string) uint16 {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % clusterSlots
}
