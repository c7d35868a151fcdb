package calls

import (
	"encoding/json"
	"fmt"
)

// status is a transition script's verdict on the transition it was asked for: the "status" of its outcome
// (scripts.go), parsed once when the answer is decoded, so that nothing downstream compares strings.
type status int

const (
	statusNone            status = iota // no answer: the script did not run, or its answer did not decode
	statusOK                            // the transition happened
	statusExists                        // createScript: the call existed, and was answered as it is
	statusNoop                          // nothing to do: done before (accept, reject, ringing), or nothing changed
	statusNotFound                      // no such call
	statusEnded                         // the call has ended
	statusNotRung                       // the user is not being rung
	statusRingOver                      // the ring's caller rejected a ring that is over
	statusForbidden                     // a user token adding another user to a team call
	statusTooMany                       // the update would pass MaxMembers (outcome.MembersAfter)
	statusNotMember                     // the actor is not a member of the call
	statusCalleeNotMember               // a member named to ring is none (outcome.Callee, outcome.CalleeAt)
	statusTooManyCallees                // a ring of more than MaxRingMembers
)

// statusNames is each status as the scripts spell it, in the order of the constants.
var statusNames = [...]string{"", "ok", "exists", "noop", "not_found", "ended", "not_rung", "ring_over", "forbidden", "too_many",
	"not_member", "callee_not_member", "too_many_callees"}

func (st status) String() string {
	if int(st) < len(statusNames) {
		return statusNames[st]
	}
	return fmt.Sprintf("status(%d)", int(st))
}

func (st *status) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	for i, n := range statusNames {
		if n == name && status(i) != statusNone {
			*st = status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown script status %q", name)
}

// applied tells whether the script made the transition asked for (or found the call it was to create).
func (st status) applied() bool { return st == statusOK || st == statusExists }

// err is the one mapping of a status to the error the caller gets: nil for a transition that happened or
// had nothing to do.
func (st status) err(cid string, out outcome) error {
	var err error
	switch st {
	case statusOK, statusExists, statusNoop:
		return nil
	case statusNotFound:
		err = ErrNotFound
	case statusEnded:
		err = ErrEnded
	case statusNotRung:
		err = ErrNotRung
	case statusRingOver:
		err = ErrRingOver
	case statusForbidden:
		err = ErrForbidden
	case statusTooMany:
		err = &FieldError{Field: "update_members",
			Message: fmt.Sprintf("would make the call %d members, more than the limit of %d", out.MembersAfter, MaxMembers), Limit: true}
	case statusNotMember:
		err = ErrNotMember
	case statusCalleeNotMember:
		return &FieldError{Field: fmt.Sprintf("members_ids[%d]", out.CalleeAt), Message: fmt.Sprintf("%q is not a member of the call", out.Callee)}
	case statusTooManyCallees:
		return &FieldError{Field: "members_ids", Message: fmt.Sprintf("at most %d members can be rung at once", MaxRingMembers), Limit: true}
	default:
		err = fmt.Errorf("script status %d has no error", st)
	}
	return fmt.Errorf("call %s: %w", cid, err)
}
