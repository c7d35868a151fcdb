// ringer.js: a small client of ringer's HTTP API (API.md) with a live list of calls, as Stream Video's useCalls
// hook keeps one. Plain ES module, no dependencies:
//
//   import { RingerClient, CallingState } from './ringer.js';
//   const client = new RingerClient({ token, userId: 'bob' });
//   const stop = client.useCalls((calls) => {
//     const incoming = calls.filter((c) => !c.isCreatedByMe && c.callingState === CallingState.RINGING);
//     const outgoing = calls.filter((c) => c.isCreatedByMe && c.callingState === CallingState.RINGING);
//     ...
//   });
//   await incoming[0].join();                  // accept
//   await incoming[0].leave({ reject: true }); // reject
//   await outgoing[0].leave();                 // cancel
//   await call.endCall();                      // end, with the end-call right
//
// The list starts from GET /v1/calls and follows GET /v1/events (Server-Sent Events, read with fetch because
// EventSource cannot send the Authorization header). An event, or the answer to one of the user's own
// actions, updates its call at once; the list is then read again from GET /v1/calls, whose calling_state is
// the server's word.

/** The calling states of GET /v1/calls. */
export const CallingState = Object.freeze({
  RINGING: 'ringing',
  JOINED: 'joined',
  IDLE: 'idle',
  ENDED: 'ended',
});

/** Event types of GET /v1/events, also the push "type" field. */
export const EventType = Object.freeze({
  CREATED: 'call.created',
  RING: 'call.ring',
  NOTIFICATION: 'call.notification',
  ACCEPTED: 'call.accepted',
  REJECTED: 'call.rejected',
  MISSED: 'call.missed',
  ENDED: 'call.ended',
  MEMBER_ADDED: 'call.member_added',
  RINGING: 'call.ringing',
  UPDATED: 'call.updated',
});

/** An error answer of the API: {code, message, status}. */
export class RingerError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'http_error';
  }
}

/** RingerClient speaks the API as one user. */
export class RingerClient {
  /**
   * @param {{token: string, userId: string, baseURL?: string}} opts
   */
  constructor({ token, userId, baseURL = '' }) {
    this.token = token;
    this.userId = userId;
    this.baseURL = baseURL;
    this.answerListeners = new Set();
  }

  /**
   * onCallAnswer calls fn({call, members}) with the answer of each call action this client takes (create,
   * ring, accept, reject, join, leave, end): some change the user's calling state without an event to say
   * so (leaving sends none). It returns a function that stops it.
   */
  onCallAnswer(fn) {
    this.answerListeners.add(fn);
    return () => this.answerListeners.delete(fn);
  }

  async callAction(method, path, body) {
    const res = await this.request(method, path, body);
    if (res && res.call) for (const fn of this.answerListeners) fn(res);
    return res;
  }

  /** request sends one API request and returns its JSON answer; a non-2xx answer throws RingerError. */
  async request(method, path, body, { keepalive = false, signal } = {}) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const init = { method, headers, keepalive, signal };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(this.baseURL + path, init);
    const text = await res.text();
    let json = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { message: text };
    }
    if (!res.ok) throw new RingerError(res.status, json.code, json.message);
    return json;
  }

  // Devices.

  registerDevice(id, pushProvider = 'firebase', voip = false) {
    return this.request('POST', '/v1/devices', { id, push_provider: pushProvider, voip_token: voip });
  }

  deleteDevice(id, opts) {
    return this.request('DELETE', `/v1/devices?id=${encodeURIComponent(id)}`, undefined, opts);
  }

  listDevices() {
    return this.request('GET', '/v1/devices');
  }

  // Calls.

  /**
   * getOrCreateCall is POST /v1/call/{type}/{id}. The caller is added to members when missing.
   * @param {{ring?: boolean, notify?: boolean, members?: string[], custom?: object, video?: boolean,
   *          settingsOverride?: object}} opts
   */
  getOrCreateCall(type, id, { ring = false, notify = false, members = [], custom = {}, video, settingsOverride } = {}) {
    const ids = [this.userId, ...members.filter((m) => m !== this.userId)];
    const data = { members: ids.map((user_id) => ({ user_id })), custom: { ...custom } };
    if (video !== undefined) data.custom.video = !!video;
    if (settingsOverride) data.settings_override = settingsOverride;
    return this.callAction('POST', callPath(type, id), { ring, notify, data });
  }

  getCall(type, id) {
    return this.request('GET', callPath(type, id));
  }

  ring(type, id, memberIds = []) {
    return this.callAction('POST', `${callPath(type, id)}/ring`, { members_ids: memberIds });
  }

  accept(type, id) {
    return this.callAction('POST', `${callPath(type, id)}/accept`, {});
  }

  /** ringing tells the caller that this user's device rings (POST .../ringing): call it when the ring arrives. */
  ringing(type, id) {
    return this.callAction('POST', `${callPath(type, id)}/ringing`, {});
  }

  reject(type, id, reason = 'decline') {
    return this.callAction('POST', `${callPath(type, id)}/reject`, { reason });
  }

  join(type, id) {
    return this.callAction('POST', `${callPath(type, id)}/join`, {});
  }

  leave(type, id) {
    return this.callAction('POST', `${callPath(type, id)}/leave`, {});
  }

  markEnded(type, id) {
    return this.callAction('POST', `${callPath(type, id)}/mark_ended`, {});
  }

  /** listCalls is GET /v1/calls: the user's calls, newest first, each with calling_state and created_by_me. */
  listCalls(callingState) {
    const q = callingState ? `?calling_state=${encodeURIComponent(callingState)}` : '';
    return this.request('GET', `/v1/calls${q}`);
  }

  /**
   * events follows GET /v1/events until signal aborts, calling onEvent(name, data) for each event and
   * onOpen() each time the stream is (re)connected: the subscription is live from then on. A dropped
   * stream is opened again after a pause with the last event's id as Last-Event-ID, so the server first
   * replays what the stream missed (API.md, "Event streams"); onError(err) hears why it dropped.
   */
  async events({ onEvent, onOpen = () => {}, onError = () => {}, signal }) {
    let pause = 250;
    const last = { id: '' };
    while (!signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${this.token}`, Accept: 'text/event-stream' };
        if (last.id) headers['Last-Event-ID'] = last.id;
        const res = await fetch(`${this.baseURL}/v1/events`, { headers, signal, cache: 'no-store' });
        if (!res.ok) {
          const body = await res.json().catch(() => ({}));
          throw new RingerError(res.status, body.code, body.message);
        }
        pause = 250;
        onOpen();
        await readSSE(res.body, onEvent, last);
        if (!signal.aborted) onError(new Error('event stream closed'));
      } catch (err) {
        if (signal.aborted) return;
        onError(err);
        if (err instanceof RingerError && (err.status === 401 || err.status === 403)) return;
      }
      await sleep(pause, signal);
      pause = Math.min(pause * 2, 5000);
    }
  }

  /**
   * useCalls keeps the user's calls live, as Stream's useCalls hook does, and calls onChange(calls) with
   * the whole list, newest first, each time it changes. It returns a function that stops it.
   *
   * Each entry: {cid, type, id, call, members, callingState, state: {callingState}, isCreatedByMe,
   * canEnd, join(), accept(), leave({reject, reason}), reject(reason), endCall(), ring(memberIds)}.
   */
  useCalls(onChange, { onStatus = () => {} } = {}) {
    const store = new CallsStore(this, onChange, onStatus);
    store.start();
    return () => store.stop();
  }
}

function callPath(type, id) {
  return `/v1/call/${encodeURIComponent(type)}/${encodeURIComponent(id)}`;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/**
 * readSSE reads a text/event-stream body to its end, calling onEvent(name, data) for each event, and keeps
 * the last event id it saw in last.id (the SSE "last event ID").
 */
async function readSSE(body, onEvent, last = { id: '' }) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) {
          let parsed;
          try {
            parsed = JSON.parse(data.join('\n'));
          } catch {
            parsed = data.join('\n');
          }
          onEvent(name || 'message', parsed);
        }
        name = '';
        data = [];
      } else if (line.startsWith(':')) {
        // a comment: keep-alive
      } else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id' && !val.includes('\0')) last.id = val;
      }
    }
  }
}

/**
 * callingStateOf is what the user's app shows for a call seen in an event, until GET /v1/calls says it
 * exactly: the server knows who is still being rung, an event's call only who answered.
 */
export function callingStateOf(call, userId) {
  const s = call.session || {};
  if (call.ended_at) return CallingState.ENDED;
  if ((s.participants || []).some((p) => p.user_id === userId)) return CallingState.JOINED;
  if (call.ringing) {
    const answered = (m) => m && Object.prototype.hasOwnProperty.call(m, userId);
    if (call.created_by?.id === userId) {
      if (Object.keys(s.accepted_by || {}).length === 0) return CallingState.RINGING;
    } else if (!answered(s.accepted_by) && !answered(s.rejected_by) && !answered(s.missed_by)) {
      return CallingState.RINGING;
    }
  }
  return CallingState.IDLE;
}

/** CallsStore is the state behind useCalls. */
class CallsStore {
  constructor(client, onChange, onStatus) {
    this.client = client;
    this.onChange = onChange;
    this.onStatus = onStatus;
    this.calls = new Map(); // cid -> entry
    this.abort = new AbortController();
    this.readSeq = 0; // the newest GET /v1/calls started
    this.readTimer = null;
  }

  start() {
    this.onStatus({ events: 'connecting' });
    this.stopAnswers = this.client.onCallAnswer((res) => this.update(res.call, res.members, ''));
    this.client.events({
      signal: this.abort.signal,
      // The subscription is live: read the list now, and nothing that happens from here on is missed.
      onOpen: () => {
        this.onStatus({ events: 'connected' });
        this.reload().then(() => this.onStatus({ events: 'connected', loaded: true }));
      },
      onEvent: (name, ev) => this.apply(name, ev),
      onError: (err) => this.onStatus({ events: 'reconnecting', error: String(err.message || err) }),
    });
  }

  stop() {
    this.abort.abort();
    this.stopAnswers?.();
    clearTimeout(this.readTimer);
  }

  /** reload reads GET /v1/calls; an answer older than a later read is dropped. */
  async reload() {
    const seq = ++this.readSeq;
    let list;
    try {
      list = await this.client.listCalls();
    } catch (err) {
      if (!this.abort.signal.aborted) this.onStatus({ error: String(err.message || err) });
      return;
    }
    if (seq !== this.readSeq || this.abort.signal.aborted) return;
    for (const item of list.calls || []) {
      this.put(item.call, item.members, item.calling_state, item.created_by_me);
    }
    // A call that fell out of the newest 100 stays as it was last seen.
    this.emit();
  }

  apply(name, ev) {
    if (!ev || typeof ev !== 'object' || !ev.call) return;
    this.update(ev.call, null, name);
  }

  /** update shows what an event or an answer says of a call at once, then reads the list again. */
  update(call, members, lastEvent) {
    if (this.abort.signal.aborted) return;
    const old = this.calls.get(call.cid);
    const me = this.client.userId;
    this.put(call, members || old?.members || [], callingStateOf(call, me), call.created_by?.id === me, lastEvent);
    this.emit();
    // The server's calling_state settles what the event could not say; events come in bursts.
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.reload(), 30);
  }

  put(call, members, callingState, createdByMe, lastEvent) {
    const client = this.client;
    const old = this.calls.get(call.cid);
    const me = client.userId;
    const mine = members.find((m) => m.user_id === me);
    const entry = {
      cid: call.cid,
      type: call.type,
      id: call.id,
      call,
      members,
      callingState,
      state: { callingState },
      isCreatedByMe: !!createdByMe,
      lastEvent: lastEvent || old?.lastEvent || '',
      // The end-call right of API.md as a user token has it: the creator or a member with role admin.
      canEnd: call.created_by?.id === me || mine?.role === 'admin',
      join: () => client.join(call.type, call.id),
      accept: () => client.accept(call.type, call.id),
      reject: (reason = 'decline') => client.reject(call.type, call.id, reason),
      leave: ({ reject = false, reason = 'decline' } = {}) =>
        reject ? client.reject(call.type, call.id, reason) : client.leave(call.type, call.id),
      endCall: () => client.markEnded(call.type, call.id),
      ring: (memberIds = []) => client.ring(call.type, call.id, memberIds),
    };
    this.calls.set(call.cid, entry);
  }

  emit() {
    const at = (e) => Date.parse(e.call.created_at) || 0;
    const list = [...this.calls.values()].sort((a, b) => at(b) - at(a) || a.cid.localeCompare(b.cid));
    this.onChange(list);
  }
}
