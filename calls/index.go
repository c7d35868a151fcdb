package calls

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

func userCallsKey(user string) string { return "ringer:{u:" + user + "}:calls" }

// maxUserCalls bounds a user's call index; GET /v1/calls shows at most 100.
const maxUserCalls = 1000

func memberIDs(ms []MemberInput) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	return ids
}

// memberIndex is who gets the call in their call list (GET /v1/calls), and when it was made theirs, and
// who no longer has it there.
type memberIndex struct {
	at      time.Time
	users   []string
	removed []string
}

func (ix *memberIndex) empty() bool { return ix == nil || len(ix.users)+len(ix.removed) == 0 }

// queue records the call in each user's call list, newest first, takes it out of the lists of removed
// members, and returns the commands whose errors matter. A removal that fails is covered all the same: the
// list shows only calls the user is still a member of (List). The list lapses keep after the last call added
// to it, and List drops calls that lapsed from it.
func (ix *memberIndex) queue(ctx context.Context, p redis.Pipeliner, cid string, keep time.Duration) []redis.Cmder {
	if ix == nil {
		return nil
	}
	cmds := make([]redis.Cmder, 0, 2*len(ix.users))
	for _, u := range ix.users {
		k := userCallsKey(u)
		cmds = append(cmds,
			p.ZAddNX(ctx, k, redis.Z{Score: float64(ix.at.UnixMilli()), Member: cid}),
			p.ZRemRangeByRank(ctx, k, 0, -maxUserCalls-1),
			p.PExpire(ctx, k, keep))
	}
	for _, u := range ix.removed {
		p.ZRem(ctx, userCallsKey(u), cid)
	}
	return cmds
}
