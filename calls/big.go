package calls

import (
	"context"
	"fmt"
	"time"

	"github.com/ringer-dev/ringer/gate"
)

// inlineMembers is the most members a transition script answers with the call (scripts.go). A bigger call's
// members are staged before its create and read in chunks after a transition, so that no one command on a
// big call holds Redis, and every ring waiting behind it, for long.
const inlineMembers = 1000

// scanMembers reads a call's member hash inlineMembers fields at a time.
func (s *Store) scanMembers(ctx context.Context, cid string) (map[string]string, error) {
	members := map[string]string{}
	it := s.rdb.HScan(ctx, gate.CallKey(cid, "members"), 0, "", inlineMembers).Iterator()
	for it.Next(ctx) {
		field := it.Val()
		if !it.Next(ctx) {
			break
		}
		members[field] = it.Val()
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("call %s: read members: %w", cid, err)
	}
	return members, nil
}

// stageMembers writes a big call's members, inlineMembers at a time, to a key of their own that createScript
// renames into place, and returns that key. The key lapses if the create never comes.
func (s *Store) stageMembers(ctx context.Context, cid string, memberPairs []string) (string, error) {
	key := gate.CallKey(cid, "members:staged:"+newID())
	pipe := s.rdb.Pipeline()
	for i := 0; i < len(memberPairs); i += 2 * inlineMembers {
		chunk := memberPairs[i:min(i+2*inlineMembers, len(memberPairs))]
		args := make([]any, len(chunk))
		for j, v := range chunk {
			args[j] = v
		}
		pipe.HSet(ctx, key, args...)
	}
	pipe.PExpire(ctx, key, stagedMembersTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("create %s: stage members: %w", cid, err)
	}
	return key, nil
}

// stagedMembersTTL is how long staged members wait for their create: far longer than the create takes.
const stagedMembersTTL = time.Minute

// stageBig stages a big call's members for createScript (KEYS[10]) and leaves none in its spec; a call that
// exists already needs neither.
func (s *Store) stageBig(ctx context.Context, cid string, keys, memberPairs []string) ([]string, []string, error) {
	exists, err := s.rdb.Exists(ctx, gate.CallKey(cid, "call")).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("create %s: %w", cid, err)
	}
	if exists == 1 {
		return keys, []string{}, nil
	}
	staged, err := s.stageMembers(ctx, cid, memberPairs)
	if err != nil {
		return nil, nil, err
	}
	return append(keys, staged), []string{}, nil
}
