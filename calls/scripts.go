package calls

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/wire"
)

// Every transition script runs on one call's keys, all under the hash tag {cid} (one Cluster slot), in this
// order:
//
// KEYS[1] -> ringer:{<cid>}:call      call hash (type, id, created_by, custom, settings, team, ended_at, ...)
// KEYS[2] -> ringer:{<cid>}:members   user id -> member JSON
// KEYS[3] -> ringer:{<cid>}:ring      current ring: id, ends_at, live, accepted, caller, caller_name
// KEYS[4] -> ringer:{<cid>}:ringing   members still ringing, scored by the unix ms their ring ends
// KEYS[5] -> ringer:{<cid>}:rung      members rung in the current ring
// KEYS[6] -> ringer:{<cid>}:accepted  user id -> unix ms
// KEYS[7] -> ringer:{<cid>}:rejected  user id -> unix ms
// KEYS[8] -> ringer:{<cid>}:missed    user id -> unix ms
// KEYS[9] -> ringer:{<cid>}:joined    user id -> unix ms (session participants)
// KEYS[10] -> ringer:{<cid>}:outbox   event sequence number -> event JSON {type, user, at}: every event a
//
//	transition owes, written in the same atomic step, taken out once its webhooks are enqueued; what a killed
//	process leaves is re-driven by the sweeper (Store.SweepOutbox). Written only when ARGV[1] asks for it.
//
// ARGV[1] -> "<now>:<retention>:<max age>:<outbox>": now, unix ms; how long the call's keys live once it
//            ended, and while it has not, after its last transition, ms (keep below); 1 when the events go
//            to the outbox (the process delivers webhooks), else 0: then nothing would ever read them, and
//            the events are only answered, with sequence number 0
//
// Each returns (done, below) an array: first the JSON outcome decoded by outcome in answer.go (a status, the
// members newly rung, the stop and missed-call pushes owed, and the events to publish, so the Go side applies
// every effect the same way), then the call as the script left it, read in the same atomic step (a create
// answers what it wrote, which is what the read would find, and spares Redis the read), so that the answer and
// the effects need no read-back round trip and show exactly this transition's result:
//
// [2] HGETALL KEYS[1]    [3] HGETALL KEYS[2]    [4] HGETALL KEYS[3]    [5] ZRANGE KEYS[4] 0 -1 WITHSCORES
// [6] HGETALL KEYS[6]    [7] HGETALL KEYS[7]    [8] HGETALL KEYS[8]    [9] HGETALL KEYS[9]
//
// (KEYS[5], the rung set, is the scripts' own bookkeeping and is not returned.) A call with more than
// inlineMembers members answers [3] as HLEN KEYS[2] instead, and the store reads the members in chunks.

// luaPrelude holds what every transition shares. begin runs first in each script but create's: it settles
// ring timeouts (expire_due), so a member whose ring time has passed is missed before anything else happens
// and the ring ends on time even when the timeout task runs late.
var luaPrelude = luaMembers + luaEvents + `
local K_CALL, K_MEMBERS, K_RING, K_RINGING, K_RUNG = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_ACCEPTED, K_REJECTED, K_MISSED, K_JOINED = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_OUTBOX = KEYS[10]
local now, retention_ms, max_age_ms, outbox = string.match(ARGV[1], '^(%d+):(%d+):(%d+):([01])$')
now, retention_ms, max_age_ms, outbox = tonumber(now), tonumber(retention_ms), tonumber(max_age_ms), outbox == '1'
local out = {status = 'ok', ring_id = '', stop_ring_id = '',
  rung = {}, stops = {}, missed = {}, events = {}, now = now, ended = false, first_accept = false,
  new_ring = false}

-- in_chunks runs cmd on key with the arguments in list, at most 1000 of them a call: Lua's unpack is bounded
-- by its stack, and a list may hold a thousand callees' pairs. Every command it runs takes one argument, or
-- pairs of them, so an even chunk never splits a pair.
local function in_chunks(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

-- event records an event the transition owes, in the outcome; flush_events (done) numbers it and writes it
-- to the outbox together with the transition's other events, so that a transition owing several events
-- costs one counter increment and one outbox write, not one each.
local function event(typ, user)
  out.events[#out.events + 1] = {type = typ, user = user or '', seq = 0}
end

-- flush_events gives each event of the transition its sequence number, one counter per call, which names it
-- for webhooks (queue.WebhookID) whoever delivers it, and writes them to the outbox in the same atomic step.
-- Every script ends in done, which calls it, so no event is left out of the outbox. A process without
-- webhooks asks for no outbox: its events are published from the answer alone.
local function flush_events()
  local n = #out.events
  if n == 0 or not outbox then return end
  local last = redis.call('HINCRBY', K_CALL, 'evseq', n)
  local first = last - n
  local entries = {}
  for i, e in ipairs(out.events) do
    e.seq = first + i
    entries[#entries + 1] = e.seq
    entries[#entries + 1] = cjson.encode({type = e.type, user = e.user, at = now})
  end
  in_chunks('HSET', K_OUTBOX, entries)
  redis.call('PEXPIRE', K_OUTBOX, ` + strconv.FormatInt(outboxTTL.Milliseconds(), 10) + `)
  return last
end

local function stop(member, typ)
  out.stops[#out.stops + 1] = {member = member, event = typ}
end

local function ended()
  return redis.call('HEXISTS', K_CALL, 'ended_at') == 1
end

local function end_call(by)
  redis.call('HSET', K_CALL, 'ended_at', now)
  for _, m in ipairs(redis.call('ZRANGE', K_RINGING, 0, -1)) do
    stop(m, EV_ENDED)
  end
  redis.call('DEL', K_RINGING)
  redis.call('HSET', K_RING, 'live', '0')
  out.ended = true
  event(EV_ENDED, by)
end

-- settle closes a ring whose gate emptied; a ring that closes with no callee having accepted ends the call.
local function settle(by)
  if redis.call('HGET', K_RING, 'live') == '1' and redis.call('ZCARD', K_RINGING) == 0 then
    redis.call('HSET', K_RING, 'live', '0')
    if redis.call('HGET', K_RING, 'accepted') ~= '1' and not ended() then
      end_call(by)
    end
  end
end

-- miss takes a member out of the gate; its missed-call push is its stop.
local function miss(m)
  redis.call('ZREM', K_RINGING, m)
  redis.call('HSET', K_MISSED, m, now)
  out.missed[#out.missed + 1] = m
  event(EV_MISSED, m)
end

local function expire_due()
  local due = redis.call('ZRANGEBYSCORE', K_RINGING, '-inf', now)
  for _, m in ipairs(due) do
    miss(m)
  end
  if #due > 0 then
    settle(redis.call('HGET', K_RING, 'caller') or '')
  end
end

-- in_team is the team rule (checkTeam): a call of a team is for the backend (server) and for users whose
-- token lists the team (teams) alone.
local function in_team(server, teams)
  local team = redis.call('HGET', K_CALL, 'team') or ''
  if team == '' or server then return true end
  for _, t in ipairs(teams) do
    if t == team then return true end
  end
  return false
end

-- begin is every transition's first step but create's, and the one place a ring timeout is settled: a call
-- that does not exist answers not_found (begin returns false); else every member whose ring time has passed
-- is missed (expire_due) before anything else happens, so the ring ends on time whichever comes first, the
-- timeout task (expireScript), the watchdog (which runs expireScript too) or any other transition.
--
-- A member's own transition (accept, reject, ringing, join, leave: Store.transition) gives user, the actor,
-- and access, JSON {server, teams} of the actor's token: the actor must then pass the team rule (status
-- forbidden) and be a member (not_member), checked in the same step, so the transition needs no read before
-- it. A refused actor settles nothing. live asks for a call that has not ended (status ended).
local function begin(user, access, live)
  if redis.call('EXISTS', K_CALL) == 0 then
    out.status = 'not_found'
    return false
  end
  if access then
    local a = cjson.decode(access)
    if not in_team(a.server, a.teams) then
      out.status = 'forbidden'
      return false
    end
    if redis.call('HEXISTS', K_MEMBERS, user) == 0 then
      out.status = 'not_member'
      return false
    end
  end
  -- The ring whose pushes this transition stops, read before anything may open a new one.
  out.stop_ring_id = redis.call('HGET', K_RING, 'id') or ''
  expire_due()
  if live and ended() then
    out.status = 'ended'
    return false
  end
  return true
end

-- begin_live is begin for a transition that needs the call not to have ended (status ended).
local function begin_live()
  return begin(nil, nil, true)
end

-- being_rung tells whether user is being rung; when not, the status says whether the user answered so before
-- (noop: answered_key, accepted or rejected, holds the user) or never was (not_rung).
local function being_rung(user, answered_key)
  if redis.call('ZSCORE', K_RINGING, user) then return true end
  if redis.call('HEXISTS', answered_key, user) == 1 then out.status = 'noop' else out.status = 'not_rung' end
  return false
end

local function accept(user)
  redis.call('ZREM', K_RINGING, user)
  redis.call('HSET', K_ACCEPTED, user, now)
  stop(user, EV_ACCEPTED)
  local ring = redis.call('HMGET', K_RING, 'accepted', 'caller')
  if ring[1] ~= '1' then
    redis.call('HSET', K_RING, 'accepted', '1')
    out.first_accept = true
    local caller = ring[2]
    if caller and redis.call('HEXISTS', K_JOINED, caller) == 0 then
      redis.call('HSET', K_JOINED, caller, now)
    end
  end
  event(EV_ACCEPTED, user)
end

local function reject(user, reason)
  redis.call('ZREM', K_RINGING, user)
  redis.call('HSET', K_REJECTED, user, now)
  if reason == REASON_BUSY or reason == REASON_TIMEOUT then
    redis.call('HSET', K_MISSED, user, now)
  end
  stop(user, EV_REJECTED)
  event(EV_REJECTED, user)
end

-- cancel is the caller giving up before any accept: every callee still ringing is missed, the call ends.
local function cancel(by)
  event(EV_REJECTED, by)
  for _, m in ipairs(redis.call('ZRANGE', K_RINGING, 0, -1)) do
    miss(m)
  end
  settle(by)
end

-- ring_members rings callees in the live ring, or opens ring new_id when none is live. A member already rung
-- in the live ring is left alone. fresh is given by a create, which has just written the call and emptied
-- every other key of it: its ring timeouts, {auto = ms, incoming = ms}, so nothing need be read back. It
-- answers the ring's live flag and end as it leaves them, and for a new ring the ring hash it wrote, as
-- [field, value, ...] (the fields of a new ring and its members' ring times go in one command).
local function ring_members(new_id, caller, caller_name, callees, fresh)
  local auto, incoming, ring
  if fresh then
    auto, incoming, ring = fresh.auto, fresh.incoming, {}
  else
    local timeouts = redis.call('HMGET', K_CALL, 'auto_ms', 'incoming_ms')
    auto, incoming = tonumber(timeouts[1]), tonumber(timeouts[2])
    ring = redis.call('HMGET', K_RING, 'live', 'id', 'ends_at')
  end
  local ends, ring_hash
  if ring[1] == '1' then
    out.ring_id = ring[2]
    ends = tonumber(ring[3])
  else
    out.ring_id = new_id
    out.new_ring = true
    ends = now + auto
    if not fresh then redis.call('DEL', K_RUNG, K_RINGING, K_RING) end
  end
  -- The members to ring are worked out first and written with one command per key, not a few per member. A
  -- new ring's rung set was just emptied, so only a live ring's needs asking.
  local deadline = math.min(now + incoming, ends)
  local seen, rung, scored, rung_at = {}, {}, {}, {}
  for _, c in ipairs(callees) do
    if not seen[c] and (out.new_ring or redis.call('SISMEMBER', K_RUNG, c) == 0) then
      rung[#rung + 1] = c
      scored[#scored + 1], scored[#scored + 2] = deadline, c
      rung_at[#rung_at + 1], rung_at[#rung_at + 2] = 'at:' .. c, now
      out.rung[#out.rung + 1] = {member = c, deadline = deadline}
    end
    seen[c] = true
  end
  local live = '1'
  if out.new_ring then
    if #out.rung == 0 then live = '0' end
    ring_hash = {'id', new_id, 'ends_at', ends, 'live', live, 'accepted', '0',
      'caller', caller, 'caller_name', caller_name, 'started_at', now}
    for _, v in ipairs(rung_at) do ring_hash[#ring_hash + 1] = v end
    rung_at = ring_hash
  end
  in_chunks('HSET', K_RING, rung_at)
  if #rung > 0 then
    in_chunks('ZADD', K_RINGING, scored)
    in_chunks('SADD', K_RUNG, rung)
    if not fresh then
      in_chunks('HDEL', K_ACCEPTED, rung)
      in_chunks('HDEL', K_REJECTED, rung)
      in_chunks('HDEL', K_MISSED, rung)
    end
  end
  if #out.rung > 0 then
    event(EV_RING, caller)
  end
  return live, ends, ring_hash
end

-- keep sets how long every key of the call lives from this transition on, keys it created included: the
-- retention once the call ended; else the max age from now, or from starts_at when that is ahead; and
-- never less than that past the end of a live ring, so no key of a ringing call lapses. known is given by a
-- create, which knows it all without reading: {call = {type, ended_at, starts_at}, ring = {live, ends_at},
-- keys = n}, where only the first n keys of the call can exist (every later transition sets them all).
local function keep(known)
  -- Every call hash has its type from the create on, so a call without one does not exist.
  local call = known and known.call or redis.call('HMGET', K_CALL, 'type', 'ended_at', 'starts_at')
  if not call[1] then return end
  local ttl = max_age_ms
  if call[2] then
    ttl = retention_ms
  else
    local starts = tonumber(call[3])
    if starts and starts > now then ttl = starts - now + max_age_ms end
  end
  local ring = known and known.ring or redis.call('HMGET', K_RING, 'live', 'ends_at')
  if ring[1] == '1' then
    local ends = tonumber(ring[2])
    if ends and ends > now then ttl = ttl + ends - now end
  end
  for i = 1, known and known.keys or 9 do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end

-- decimal answers values of a [field, value, ...] list as Redis would read them back: a number, a whole
-- one here (a unix ms), as its digits. A number in a script's answer would reach Go as an integer.
local function decimal(list)
  for i, v in ipairs(list) do
    if type(v) == 'number' then list[i] = string.format('%d', v) end
  end
  return list
end

-- done writes the transition's events to the outbox (flush_events), sets the call's lifetime (keep), and
-- answers the outcome and the call's state after the transition (the array described above). A create
-- passes what it knows (keep) and what it wrote (known.wrote: the call's fields, its members unless they
-- were staged, its ring hash and ringing set, each as [field, value, ...]), which is answered instead of read
-- back; the answers, acceptances and participants of a call it just made are empty.
local function done(known)
  local evseq = flush_events()
  keep(known)
  local wrote = known and known.wrote
  if wrote then
    local call = wrote.call
    if evseq then call[#call + 1], call[#call + 2] = 'evseq', evseq end
    return {cjson.encode(out), decimal(call), wrote.members or members(K_MEMBERS),
      decimal(wrote.ring), decimal(wrote.ringing), {}, {}, {}, {}}
  end
  return {cjson.encode(out), redis.call('HGETALL', K_CALL), members(K_MEMBERS),
    redis.call('HGETALL', K_RING), redis.call('ZRANGE', K_RINGING, 0, -1, 'WITHSCORES'),
    known and {} or redis.call('HGETALL', K_ACCEPTED), known and {} or redis.call('HGETALL', K_REJECTED),
    known and {} or redis.call('HGETALL', K_MISSED), known and {} or redis.call('HGETALL', K_JOINED)}
end
`

// luaEvents names the events the scripts write and the reject reasons they read as Lua locals (EV_RING,
// REASON_BUSY, ...), with the values of the Go constants, so each is spelled once (model.go, and queue for the
// events a push carries).
var luaEvents = luaLocals(
	"EV_CREATED", EventCreated, "EV_RING", queue.EventRing, "EV_ACCEPTED", queue.EventAccepted, "EV_REJECTED", queue.EventRejected,
	"EV_MISSED", queue.EventMissed, "EV_ENDED", queue.EventEnded, "EV_MEMBER_ADDED", EventMemberAdded,
	"EV_RINGING", EventRinging, "EV_UPDATED", EventUpdated,
	"REASON_DECLINE", wire.ReasonDecline, "REASON_BUSY", wire.ReasonBusy, "REASON_TIMEOUT", wire.ReasonTimeout,
)

// luaLocals is Lua declaring each name as a local string of its value, given as name, value, ....
func luaLocals(nameValue ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(nameValue); i += 2 {
		// strconv.Quote of these plain ASCII names is a valid Lua string literal.
		fmt.Fprintf(&b, "\nlocal %s = %s", nameValue[i], strconv.Quote(nameValue[i+1]))
	}
	return b.String() + "\n"
}

// luaMembers answers a call's member hash (KEYS[2] of a transition), or only its size when it is too big to
// answer in one command; the store then reads the members by HSCAN (scanMembers).
var luaMembers = `
local function members(key)
  local n = redis.call('HLEN', key)
  if n > ` + strconv.Itoa(inlineMembers) + ` then return n end
  return redis.call('HGETALL', key)
end
`

func script(body string) *redis.Script { return redis.NewScript(luaPrelude + body) }

// createScript creates the call unless it exists, and rings its callees when asked.
//
// KEYS[11] -> optional: ringer:{<cid>}:members:staged:<id>, the members written beforehand (stageMembers in
//
//	big.go), renamed into KEYS[2] in O(1) so that a big call's create never holds Redis for long
//
// ARGV[2] -> JSON {fields: [k, v, ...], members: [user, member JSON, ...], ring, ring_id, caller,
//
//	caller_name, callees: [user, ...]}; members is empty when KEYS[10] holds them
//
// status: ok (created) or exists.
var createScript = script(`
local staged = KEYS[11]
if redis.call('EXISTS', K_CALL) == 1 then
  if staged then redis.call('UNLINK', staged) end
  out.status = 'exists'
  return done()
end
if staged and redis.call('EXISTS', staged) == 0 then
  return redis.error_reply('ERR staged members ' .. staged .. ' expired before the create')
end
local spec = cjson.decode(ARGV[2])
-- A new call starts from nothing: what a vanished call left of its ring, answers and events (keys evicted one
-- by one under memory pressure, say) must not become this call's. The sweeper drops such events too.
redis.call('DEL', K_RING, K_RINGING, K_RUNG, K_ACCEPTED, K_REJECTED, K_MISSED, K_JOINED, K_OUTBOX)
redis.call('HSET', K_CALL, unpack(spec.fields))
if staged then
  redis.call('RENAME', staged, K_MEMBERS)
  redis.call('PERSIST', K_MEMBERS)
end
in_chunks('HSET', K_MEMBERS, spec.members)
event(EV_CREATED, spec.caller)
local fields = {}
for i = 1, #spec.fields, 2 do fields[spec.fields[i]] = spec.fields[i + 1] end
-- What keep would read back: the call just written, not ended, and its ring if it rings; and what done would.
local known = {call = {fields.type, false, fields.starts_at}, ring = {}, keys = 2,
  wrote = {call = spec.fields, members = not staged and spec.members or nil, ring = {}, ringing = {}}}
if spec.ring then
  local live, ends, ring_hash = ring_members(spec.ring_id, spec.caller, spec.caller_name, spec.callees,
    {auto = tonumber(fields.auto_ms), incoming = tonumber(fields.incoming_ms)})
  known.ring, known.keys, known.wrote.ring = {live, ends}, 5, ring_hash
  for _, r in ipairs(out.rung) do
    known.wrote.ringing[#known.wrote.ringing + 1] = r.member
    known.wrote.ringing[#known.wrote.ringing + 1] = r.deadline
  end
end
return done(known)
`)

// ringScript rings members of an existing call: into the live ring, or a new ring. It works out who may ring
// whom on the call as it is, in the same step as the ring, so a ring needs no read before it: the team rule
// (checkTeam), the caller's membership (but for the backend naming nobody, who rings as the creator), the
// members named, or every member but the caller when none are, each of whom must be a member, and at most
// spec.max of them.
//
// ARGV[2] -> JSON {ring_id: the new ring's id (used when no ring is live), user: the actor ("" for the
//
//	backend naming nobody), name: the actor's display name, server: whether the actor is the backend,
//	teams: [team, ...] of the actor's token, members: [user, ...] named, max: the most callees}
//
// status: ok, not_found, ended, forbidden (the team rule), not_member (the actor),
// callee_not_member (out.callee is the first named user who is no member, out.callee_at its index),
// too_many_callees.
var ringScript = script(`
if not begin() then return done() end
local spec = cjson.decode(ARGV[2])
if not in_team(spec.server, spec.teams) then out.status = 'forbidden' return done() end
local caller, caller_name = spec.user, spec.name
if caller == '' and spec.server then
  caller = redis.call('HGET', K_CALL, 'created_by')
  caller_name = redis.call('HGET', K_CALL, 'created_by_name') or ''
elseif redis.call('HEXISTS', K_MEMBERS, caller) == 0 then
  out.status = 'not_member'
  return done()
end
local callees = {}
if #spec.members == 0 then
  local n = redis.call('HLEN', K_MEMBERS) - redis.call('HEXISTS', K_MEMBERS, caller)
  if n > spec.max then out.status = 'too_many_callees' return done() end
  for _, m in ipairs(redis.call('HKEYS', K_MEMBERS)) do
    if m ~= caller then callees[#callees + 1] = m end
  end
else
  for i, u in ipairs(spec.members) do
    if redis.call('HEXISTS', K_MEMBERS, u) == 0 then
      out.status, out.callee, out.callee_at = 'callee_not_member', u, i - 1
      return done()
    end
    if u ~= caller then callees[#callees + 1] = u end
  end
  if #callees > spec.max then out.status = 'too_many_callees' return done() end
end
if ended() then out.status = 'ended' return done() end
ring_members(spec.ring_id, caller, caller_name, callees)
return done()
`)

// acceptScript marks a callee as accepted while it is being rung; the first accept joins the caller.
//
// ARGV[2] -> user id
// ARGV[3] -> the user's access, JSON {server, teams} (begin)
//
// status: ok, noop (accepted before), not_rung, not_found, forbidden, not_member, ended.
var acceptScript = script(`
if not begin(ARGV[2], ARGV[3], true) then return done() end
local user = ARGV[2]
if not being_rung(user, K_ACCEPTED) then return done() end
accept(user)
settle(user)
return done()
`)

// rejectScript rejects the ring for a callee; from the ring's caller before any accept, it cancels the ring.
//
// ARGV[2] -> user id
// ARGV[3] -> reason: decline, busy, cancel or timeout
// ARGV[4] -> the user's access, JSON {server, teams} (begin)
//
// status: ok, noop (rejected before), not_rung, ring_over, not_found, forbidden, not_member, ended.
var rejectScript = script(`
if not begin(ARGV[2], ARGV[4], true) then return done() end
local user = ARGV[2]
if user == redis.call('HGET', K_RING, 'caller') then
  if redis.call('HGET', K_RING, 'live') == '1' and redis.call('HGET', K_RING, 'accepted') ~= '1' then
    cancel(user)
  else
    out.status = 'ring_over'
  end
  return done()
end
if not being_rung(user, K_REJECTED) then return done() end
reject(user, ARGV[3])
settle(user)
return done()
`)

// joinScript joins a user to the call, accepting first when it is being rung.
//
// ARGV[2] -> user id
// ARGV[3] -> the user's access, JSON {server, teams} (begin)
//
// status: ok, not_found, forbidden, not_member, ended.
var joinScript = script(`
if not begin(ARGV[2], ARGV[3], true) then return done() end
local user = ARGV[2]
if redis.call('ZSCORE', K_RINGING, user) then
  accept(user)
  settle(user)
end
if redis.call('HEXISTS', K_JOINED, user) == 0 then
  redis.call('HSET', K_JOINED, user, now)
end
return done()
`)

// leaveScript takes a user out of the call. The ring's caller leaving before any accept cancels the ring; a
// callee leaving while rung declines it; anyone else just leaves.
//
// ARGV[2] -> user id
// ARGV[3] -> the user's access, JSON {server, teams} (begin)
//
// status: ok, not_found, forbidden, not_member, noop (the call had ended).
var leaveScript = script(`
if not begin(ARGV[2], ARGV[3]) then return done() end
local user = ARGV[2]
if ended() then
  redis.call('HDEL', K_JOINED, user)
  out.status = 'noop'
  return done()
end
if user == redis.call('HGET', K_RING, 'caller') and redis.call('HGET', K_RING, 'live') == '1'
   and redis.call('HGET', K_RING, 'accepted') ~= '1' then
  cancel(user)
elseif redis.call('ZSCORE', K_RINGING, user) then
  reject(user, REASON_DECLINE)
  settle(user)
end
redis.call('HDEL', K_JOINED, user)
return done()
`)

// markEndedScript ends the call for everyone; every device still ringing gets a stop.
//
// ARGV[2] -> user id of who ends it (” for the backend)
//
// status: ok, not_found, ended (already).
var markEndedScript = script(`
if not begin_live() then return done() end
end_call(ARGV[2])
return done()
`)

// expireScript is the transition of the timeout task and of the watchdog: nothing but begin, which misses the
// members whose ring time has passed, whichever ring they are in.
//
// ARGV[2] -> ring id the task was scheduled for
//
// status: ok, noop (another ring is current), not_found.
var expireScript = script(`
if not begin() then return done() end
if redis.call('HGET', K_RING, 'id') ~= ARGV[2] then out.status = 'noop' end
return done()
`)

// updateMembersScript adds or changes members and removes others; a removed member still ringing stops.
// It checks the whole update before it writes any of it, so that a refused update stores nothing: in a team
// call, a user token adds no member but itself (API.md, "Teams"); no call passes spec.max members.
//
// ARGV[2] -> JSON {update: [user, member JSON, ...], remove: [user, ...], adder: user id of the user token
//
//	that adds, "" for the backend, max: the most members a call may have}
//
// status: ok, not_found, ended, forbidden (a user token adding another user to a team call), too_many (the
// call would pass max members; members_after says how many it would have had).
var updateMembersScript = script(`
if not begin_live() then return done() end
local spec = cjson.decode(ARGV[2])
local team = redis.call('HGET', K_CALL, 'team') or ''
local count = redis.call('HLEN', K_MEMBERS)
local updating = {}
for i = 1, #spec.update, 2 do
  local m = spec.update[i]
  if not updating[m] and redis.call('HEXISTS', K_MEMBERS, m) == 0 then
    if team ~= '' and spec.adder ~= '' and m ~= spec.adder then
      out.status = 'forbidden'
      return done()
    end
    count = count + 1
  end
  updating[m] = true
end
local removing = {}
for _, m in ipairs(spec.remove) do
  if not removing[m] and not updating[m] and redis.call('HEXISTS', K_MEMBERS, m) == 1 then
    count = count - 1
  end
  removing[m] = true
end
if count > spec.max then
  out.status = 'too_many'
  out.members_after = count
  return done()
end
for i = 1, #spec.update, 2 do
  if redis.call('HSET', K_MEMBERS, spec.update[i], spec.update[i + 1]) == 1 then
    event(EV_MEMBER_ADDED, spec.update[i])
  end
end
for _, m in ipairs(spec.remove) do
  redis.call('HDEL', K_MEMBERS, m)
  if redis.call('ZREM', K_RINGING, m) == 1 then
    stop(m, EV_ENDED)
  end
end
settle('')
return done()
`)

// ringingScript is a callee's acknowledgement that its device rings (POST .../ringing): the first one is kept
// in the ring hash as ack:<user> (session.ringing_by) and owes a call.ringing event; a repeat changes nothing.
//
// ARGV[2] -> user id
// ARGV[3] -> the user's access, JSON {server, teams} (begin)
//
// status: ok, noop (acknowledged before), not_rung, not_found, forbidden, not_member, ended.
var ringingScript = script(`
if not begin(ARGV[2], ARGV[3], true) then return done() end
local user = ARGV[2]
if not redis.call('ZSCORE', K_RINGING, user) then out.status = 'not_rung' return done() end
if redis.call('HEXISTS', K_RING, 'ack:' .. user) == 1 then out.status = 'noop' return done() end
redis.call('HSET', K_RING, 'ack:' .. user, now)
event(EV_RINGING, user)
return done()
`)

// updateScript changes what PATCH /v1/call/{type}/{id} may change: starts_at, custom and the ring timeouts
// (which the next ring takes; a live ring keeps its end). Fields whose value is already the one given are left
// alone; a change owes a call.updated event, and, when starts_at moved, the call's reminder is scheduled anew
// (out.starts_at_moved, see Store.Update).
//
// ARGV[2] -> JSON {fields: [k, v, ...]}: call hash fields to set, among starts_at (unix ms, empty for none),
//
//	custom (JSON), auto_ms and incoming_ms
//
// ARGV[3] -> user id of who updates, empty for the backend
//
// status: ok, noop (nothing changed), not_found, ended.
var updateScript = script(`
if not begin_live() then return done() end
local spec = cjson.decode(ARGV[2])
local changed = false
for i = 1, #spec.fields, 2 do
  local k, v = spec.fields[i], spec.fields[i + 1]
  if (redis.call('HGET', K_CALL, k) or '') ~= v then
    redis.call('HSET', K_CALL, k, v)
    changed = true
    if k == 'starts_at' then out.starts_at_moved = true end
  end
end
if not changed then out.status = 'noop' return done() end
event(EV_UPDATED, ARGV[3])
return done()
`)
