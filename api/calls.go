package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

// callResponse is the answer of get-or-create, get and every transition (API.md: "answer 200 with the call
// as in get"). created is false but for a get-or-create that made the call.
type callResponse = wire.CallState

type listResponse struct {
	Calls []calls.ListItem `json:"calls"`
}

// present shapes a state for the wire so that empty collections are [] and {} rather than null, which
// clients of API.md index without checking. It copies what it changes: the state may be the store's.
func present(st calls.State, created bool) callResponse {
	return callResponse{Created: created, Call: presentCall(st.Call), Members: presentMembers(st.Members)}
}

func presentCall(c calls.Call) calls.Call {
	if c.Custom == nil {
		c.Custom = map[string]any{}
	}
	if c.Session.AcceptedBy == nil {
		c.Session.AcceptedBy = map[string]time.Time{}
	}
	if c.Session.RejectedBy == nil {
		c.Session.RejectedBy = map[string]time.Time{}
	}
	if c.Session.MissedBy == nil {
		c.Session.MissedBy = map[string]time.Time{}
	}
	if c.Session.RingingBy == nil {
		c.Session.RingingBy = map[string]time.Time{}
	}
	if c.Session.Participants == nil {
		c.Session.Participants = []calls.Participant{}
	}
	return c
}

func presentMembers(ms []calls.Member) []calls.Member {
	out := make([]calls.Member, len(ms))
	for i, m := range ms {
		if m.Custom == nil {
			m.Custom = map[string]any{}
		}
		out[i] = m
	}
	return out
}

// getOrCreateCall is POST /v1/call/{type}/{id}.
func (s *server) getOrCreateCall(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	typ, id, err := pathCall(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	in, err := decodeCreate(body, tok)
	if err != nil {
		return err
	}
	// A server token that names no creator only gets a call that exists (calls answers 400 naming
	// data.created_by_id for one that does not): a new call needs a creator.
	st, created, err := s.cfg.Calls.GetOrCreate(r.Context(), in.Actor, typ, id, in.Req)
	if err != nil {
		return fmt.Errorf("get-or-create %s:%s: %w", typ, id, err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeCall(w, status, st, created)
	return nil
}

// getCall is GET /v1/call/{type}/{id}?ring=&notify=&user_id=.
func (s *server) getCall(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	typ, id, err := pathCall(r)
	if err != nil {
		return err
	}
	ring, err := queryBool(r, "ring")
	if err != nil {
		return err
	}
	notify, err := queryBool(r, "notify")
	if err != nil {
		return err
	}
	// A server token naming nobody rings and notifies as the call's creator (API.md, "Who may read a call").
	a, err := actor(tok, r.URL.Query().Get("user_id"), "user_id", false)
	if err != nil {
		return err
	}
	c := callRequest{typ: typ, id: id, actor: a}
	st, err := s.cfg.Calls.Get(r.Context(), a, typ, id, ring, notify)
	return c.answer(w, "get", st, err)
}

// updateCall is PATCH /v1/call/{type}/{id}: a server token may update a call without naming anyone, as it may
// end one.
func (s *server) updateCall(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	var b updateBody
	var req calls.UpdateRequest
	c, err := s.readCall(w, r, tok, &b, false, func() (err error) {
		req, err = decodeUpdate(b)
		return err
	})
	if err != nil {
		return err
	}
	st, err := s.cfg.Calls.Update(r.Context(), c.actor, c.typ, c.id, req)
	return c.answer(w, "update", st, err)
}

// updateMembers is POST /v1/call/{type}/{id}/members. The backend may change members without naming anyone
// (API.md: "or a server token").
func (s *server) updateMembers(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	var b membersBody
	var in membersInput
	c, err := s.readCall(w, r, tok, &b, false, func() (err error) {
		in, err = decodeMembersUpdate(b)
		return err
	})
	if err != nil {
		return err
	}
	st, err := s.cfg.Calls.UpdateMembers(r.Context(), c.actor, c.typ, c.id, in.Update, in.Remove)
	return c.answer(w, "update members of", st, err)
}

// ring is POST /v1/call/{type}/{id}/ring. A server token may ring without naming a caller; calls then rings
// the members named, or all of them.
func (s *server) ring(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	var b ringBody
	c, err := s.readCall(w, r, tok, &b, false, func() error {
		return decodeUserIDs("members_ids", b.MembersIDs, MaxMembersIDs)
	})
	if err != nil {
		return err
	}
	st, err := s.cfg.Calls.Ring(r.Context(), c.actor, c.typ, c.id, b.MembersIDs)
	return c.answer(w, "ring", st, err)
}

// reject is POST /v1/call/{type}/{id}/reject.
func (s *server) reject(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	var b rejectBody
	c, err := s.readCall(w, r, tok, &b, true, func() error {
		if b.Reason == "" {
			b.Reason = wire.ReasonDecline
		}
		if !validReason(b.Reason) {
			return fieldErr(wire.CodeInvalidField, "reason", "must be decline, busy, cancel or timeout, not %q", b.Reason)
		}
		return nil
	})
	if err != nil {
		return err
	}
	st, err := s.cfg.Calls.Reject(r.Context(), c.actor, c.typ, c.id, b.Reason)
	return c.answer(w, "reject", st, err)
}

// transition serves the transitions that only need who acts: accept, join and leave, each of which is done
// by a user, so a server token must name one.
func (s *server) transition(name string, do transitionFunc) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
		return s.acting(w, r, tok, name, true, do)
	}
}

// transitionFunc is a method expression of Calls such as Calls.Accept.
type transitionFunc func(Calls, context.Context, calls.Actor, string, string) (calls.State, error)

// markEnded is POST /v1/call/{type}/{id}/mark_ended: a server token may end a call without naming anyone.
func (s *server) markEnded(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	return s.acting(w, r, tok, "mark_ended", false, Calls.MarkEnded)
}

func (s *server) acting(w http.ResponseWriter, r *http.Request, tok TokenClaims, name string, userRequired bool, do transitionFunc) error {
	var b actingBody
	c, err := s.readCall(w, r, tok, &b, userRequired, nil)
	if err != nil {
		return err
	}
	st, err := do(s.cfg.Calls, r.Context(), c.actor, c.typ, c.id)
	return c.answer(w, name, st, err)
}

// callRequest is a request on one call once read: the call its path names and who acts.
type callRequest struct {
	typ, id string
	actor   calls.Actor
}

// readCall reads a request on one call with a body: the call its path names, then the body as decodeActing
// reads it.
func (s *server) readCall(w http.ResponseWriter, r *http.Request, tok TokenClaims, b userBody, userRequired bool, check func() error) (callRequest, error) {
	typ, id, err := pathCall(r)
	if err != nil {
		return callRequest{}, err
	}
	a, err := s.decodeActing(w, r, tok, b, userRequired, check)
	if err != nil {
		return callRequest{}, err
	}
	return callRequest{typ: typ, id: id, actor: a}, nil
}

// answer answers 200 with the state an action left the call in (API.md: "answer 200 with the call as in
// get"), or, when the action failed, says which action on which call by whom.
func (c callRequest) answer(w http.ResponseWriter, action string, st calls.State, err error) error {
	if err != nil {
		return fmt.Errorf("%s %s:%s by %q: %w", action, c.typ, c.id, c.actor.UserID, err)
	}
	writeCall(w, http.StatusOK, st, false)
	return nil
}

// listCalls is GET /v1/calls?calling_state=&user_id=.
func (s *server) listCalls(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	q := r.URL.Query()
	state := q.Get("calling_state")
	if state != "" && !validCallingState(state) {
		return fieldErr(wire.CodeInvalidField, "calling_state", "must be ringing, joined, idle or ended, not %q", state)
	}
	a, err := actor(tok, q.Get("user_id"), "user_id", true)
	if err != nil {
		return err
	}
	items, err := s.cfg.Calls.List(r.Context(), a, state)
	if err != nil {
		return fmt.Errorf("list calls of %s: %w", a.UserID, err)
	}
	out := make([]calls.ListItem, len(items))
	for i, it := range items {
		it.Call = presentCall(it.Call)
		it.Members = presentMembers(it.Members)
		out[i] = it
	}
	writeJSON(w, http.StatusOK, listResponse{Calls: out})
	return nil
}

// userBody is a request body that may name in user_id the user a server token acts for (API.md).
type userBody interface{ actingUser() string }

// decodeActing reads what a request with a body starts with, in the order its errors are answered: the body,
// strictly decoded into b; check, the body's own rules (nil for none), so that a malformed request is a 400
// before anything about who acts; then who acts (actor): the token's user, or for a server token the body's
// user_id, which userRequired makes compulsory.
func (s *server) decodeActing(w http.ResponseWriter, r *http.Request, tok TokenClaims, b userBody, userRequired bool, check func() error) (calls.Actor, error) {
	if err := s.decodeBody(w, r, b); err != nil {
		return calls.Actor{}, err
	}
	if check != nil {
		if err := check(); err != nil {
			return calls.Actor{}, err
		}
	}
	return actor(tok, b.actingUser(), "user_id", userRequired)
}

// decodeBody reads r's body and decodes it strictly into v.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict("", body, v)
}
