// The demo page: one window plays one demo user. It registers a browser "device" (the page's phone) for that
// user, shows every push ringer sends to it, and filters the live list of ringer.js's useCalls as the Stream
// docs do: an incoming ring is a call card with a ringtone, Accept and Reject; an outgoing ring says "Calling…"
// until the callee's phone acknowledges it, then "Ringing…", with Cancel; a joined call has Leave and, with
// the right, End.
import { RingerClient, CallingState, EventType } from './ringer.js';

const $ = (id) => document.getElementById(id);

let config = null; // GET /demo/config
let session = null; // the user this window plays

main().catch((err) => showError(err));

async function main() {
  config = await getJSON('/demo/config');
  const select = $('user');
  for (const u of config.users) select.append(new Option(displayName(u), u));
  const wanted = new URLSearchParams(location.search).get('user');
  select.value = config.users.includes(wanted) ? wanted : config.users[0];
  select.addEventListener('change', () => play(select.value).catch(showError));
  $('sound').addEventListener('change', () => {
    ringtone.enabled = $('sound').checked;
    if (session) renderCalls(session.calls);
  });
  // A browser lets a page make sound only after the user has done something on it: the first click or key
  // lets a ringtone that is already due be heard.
  for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, () => ringtone.unlock(), true);
  ringtone.prepare();
  $('call-form').addEventListener('submit', (e) => {
    e.preventDefault();
    placeCall();
  });
  window.addEventListener('pagehide', () => session?.close(true));
  await play(select.value);
}

async function getJSON(path) {
  const res = await fetch(path, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || `${path}: HTTP ${res.status}`);
  return body;
}

function displayName(user) {
  return user ? user[0].toUpperCase() + user.slice(1) : '';
}

// play makes this window user's window: a token, a device, the push stream and the live calls.
async function play(userId) {
  if (session) await session.close(false);
  const url = new URL(location.href);
  url.searchParams.set('user', userId);
  history.replaceState(null, '', url);
  document.title = `${displayName(userId)} · ringer`;
  clearError();
  $('pushes').replaceChildren();
  renderCalls([]);
  renderMembers(userId);
  session = new Session(userId);
  await session.start();
}

class Session {
  constructor(userId) {
    this.userId = userId;
    this.device = config.device_token_prefix + randomId(16);
    this.pushesReady = false;
    this.callsReady = false;
    this.events = 'connecting';
    this.closed = false;
    this.calls = [];
  }

  async start() {
    const tok = await getJSON(`/demo/token?user=${encodeURIComponent(this.userId)}`);
    if (this.closed) return;
    this.name = tok.name;
    this.client = new RingerClient({ token: tok.token, userId: this.userId });
    this.stopCalls = this.client.useCalls((calls) => {
      if (this.closed) return;
      this.calls = calls;
      renderCalls(calls);
    }, {
      onStatus: (s) => {
        if (s.events) this.events = s.events;
        if (s.loaded) this.callsReady = true;
        if (s.error && s.events !== 'reconnecting') showError(s.error);
        this.status();
      },
    });
    await this.startDevice();
    this.status();
  }

  // startDevice follows the browser device's pushes, then registers it: from then on every push ringer sends
  // to this user's devices reaches the panel too.
  async startDevice() {
    $('phone-owner').textContent = `${this.name}'s phone`;
    $('device-name').textContent = config.push_provider;
    $('device-name').title = `device token ${this.device}`;
    if (!config.pushes) {
      $('device-note').textContent = `No phone here: ${config.pushes_off}`;
      this.pushesReady = true;
      return;
    }
    $('device-note').textContent = `Every push ringer sends to ${this.name}'s phone shows here as the phone gets it ` +
      '(the FCM log provider hands it to this page). Open "details" for its payload.';
    this.source = new EventSource(`/demo/pushes?token=${encodeURIComponent(this.device)}`);
    this.source.addEventListener('push', (e) => {
      if (this.closed) return;
      const p = JSON.parse(e.data);
      showPush(p);
      // A phone acknowledges a ring when it shows the incoming call; this page's device does so on arrival.
      const cid = p.data?.call_cid || '';
      const colon = cid.indexOf(':');
      if (p.type === EventType.RING && colon > 0) {
        this.client.ringing(cid.slice(0, colon), cid.slice(colon + 1)).catch(() => {});
      }
    });
    await new Promise((resolve) => {
      this.source.addEventListener('open', resolve, { once: true });
      this.source.addEventListener('error', resolve, { once: true });
    });
    if (this.closed) return;
    try {
      await this.client.registerDevice(this.device, config.push_provider);
      this.pushesReady = true;
    } catch (err) {
      showError(`register device: ${err.message}`);
    }
  }

  status() {
    const ready = this.pushesReady && this.callsReady && this.events === 'connected';
    const el = $('status');
    el.dataset.ready = String(ready);
    el.dataset.user = this.userId;
    el.textContent = `${this.name || this.userId} · events ${this.events}` +
      (config.pushes ? ` · device ${this.pushesReady ? 'registered' : 'registering…'}` : '');
    $('call').disabled = !ready;
  }

  // close stops following and forgets the device; on pagehide the request must outlive the page.
  async close(unloading) {
    this.closed = true;
    ringtone.stop();
    this.stopCalls?.();
    this.source?.close();
    if (this.client && this.pushesReady && config.pushes) {
      const p = this.client.deleteDevice(this.device, { keepalive: true }).catch(() => {});
      if (!unloading) await p;
    }
  }
}

function randomId(n) {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => abc[b % abc.length]).join('');
}

// The call form.

function renderMembers(me) {
  const box = $('members');
  box.replaceChildren();
  const others = config.users.filter((u) => u !== me);
  for (const u of others) {
    const label = document.createElement('label');
    const cb = document.createElement('input');
    cb.type = 'checkbox';
    cb.value = u;
    cb.checked = u === others[0];
    cb.dataset.testid = `member-${u}`;
    label.append(cb, ` ${displayName(u)}`);
    box.append(label);
  }
}

async function placeCall() {
  const s = session;
  if (!s?.client) return;
  const members = [...$('members').querySelectorAll('input:checked')].map((cb) => cb.value);
  for (const m of $('others').value.split(',')) {
    if (m.trim()) members.push(m.trim());
  }
  if (members.length === 0) {
    showError('Pick at least one member to call.');
    return;
  }
  const mode = document.querySelector('input[name=mode]:checked').value;
  const name = $('call-name').value.trim();
  const id = `demo-${Date.now().toString(36)}-${randomId(4)}`;
  document.body.dataset.lastCallSentAt = String(Date.now());
  document.body.dataset.lastCallCid = `default:${id}`;
  await act($('call'), () => s.client.getOrCreateCall('default', id, {
    ring: mode === 'ring',
    notify: mode === 'notify',
    members,
    video: $('video').checked,
    custom: name ? { display_name: name } : {},
  }));
  $('call-name').value = '';
}

// act runs one API action from a button, which stays disabled meanwhile; a failure shows in the error bar.
async function act(button, fn) {
  clearError();
  button.disabled = true;
  try {
    await fn();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
    session?.status();
  }
}

function showError(err) {
  const el = $('error');
  el.textContent = String(err?.message || err);
  el.hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

// Rendering the useCalls list. Each list keeps one element per call, built once while the call keeps its place
// and shape there and updated in place after, so that a button never vanishes under the pointer, nor a picked
// reject reason resets, because the list was read again.

const views = new Map(); // list id -> Map cid -> {shape, node}
const firstShown = new Map(); // list id and cid -> when the page first showed it (Date.now())
const answering = new Set(); // cids of incoming rings whose Accept or Reject was clicked: the ringtone stops at once

function renderCalls(calls) {
  const me = session?.userId;
  // As the Stream docs filter useCalls.
  const incoming = calls.filter((c) => !c.isCreatedByMe && c.callingState === CallingState.RINGING);
  const outgoing = calls.filter((c) => c.isCreatedByMe && c.callingState === CallingState.RINGING);
  const joined = calls.filter((c) => c.callingState === CallingState.JOINED);

  renderCards('incoming', 'incoming-call', incoming, () => '', (c) => {
    const answer = (b, fn) => {
      answering.add(c.cid);
      ringtone.ring(false);
      // Should the answer fail, the call still rings: the ringtone comes back.
      return act(b, fn).finally(() => {
        answering.delete(c.cid);
        if (session) renderCalls(session.calls);
      });
    };
    return [
      reasonSelect(c),
      button('Reject', 'reject', (b) => answer(b, () => c.leave({ reject: true, reason: rejectReasons.get(c.cid) || 'decline' }))),
      button('Accept', 'accept', (b) => answer(b, () => c.join())),
    ];
  }, (c) => ({
    avatar: callerName(c),
    who: `${callerName(c)} is calling you`,
    line: `Incoming ${c.call.custom?.video === true ? 'video' : 'audio'} call`,
  }));
  renderCards('outgoing', 'outgoing-call', outgoing, () => '', (c) => [
    button('Cancel', 'cancel', (b) => act(b, () => c.leave())),
  ], (c) => {
    // "Calling…" until a callee's phone acknowledges the ring (POST .../ringing), then "Ringing…".
    const acked = Object.keys(c.call.session?.ringing_by || {}).map(displayName);
    const callees = others(c, me) || 'nobody';
    return {
      avatar: callees,
      who: `${acked.length > 0 ? 'Ringing' : 'Calling'} ${callees}…`,
      line: acked.length > 0 ? `${list(acked)}'s phone is ringing` : 'Waiting for their phone to ring',
    };
  });
  renderCards('joined', 'joined-call', joined, (c) => String(c.canEnd), (c) => [
    button('Leave', 'leave', (b) => act(b, () => c.leave())),
    c.canEnd ? button('End for all', 'end', (b) => act(b, () => c.endCall())) : null,
  ], (c) => {
    const company = participants(c, me);
    return { avatar: company || '·', who: `With ${company || 'nobody yet'}`, line: 'In the call' };
  });

  // The ringtone sounds while a ring for this user waits for an answer: it starts when the ring arrives and
  // stops on Accept, on Reject, and when the ring ends (missed, or the caller gave up).
  ringtone.ring(incoming.some((c) => !answering.has(c.cid)));

  $('no-calls').hidden = calls.length > 0;
  renderKeyed('calls', $('calls'), calls, (c) => (c.callingState === CallingState.IDLE ? 'join' : ''), (c) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'call-row';
    tr.dataset.cid = c.cid;
    const name = el('td', 'name', '');
    name.append(el('span', 'dir', ''), el('span', 'label', ''));
    const state = el('td', '', '');
    state.append(el('span', 'state', ''), el('span', 'outcome', ''));
    const actions = el('td', 'actions', '');
    if (c.callingState === CallingState.IDLE) actions.append(button('Join', 'join', (b) => act(b, () => c.join())));
    tr.append(name, el('td', 'started', ''), state, actions);
    tr.querySelector('.started').append(document.createElement('time'));
    return tr;
  }, (tr, c) => {
    tr.dataset.state = c.callingState;
    tr.dataset.mine = String(c.isCreatedByMe);
    const dir = tr.querySelector('.dir');
    setText(dir, c.isCreatedByMe ? '↗' : '↙');
    dir.title = c.isCreatedByMe ? 'you called (isCreatedByMe)' : `${callerName(c)} called you`;
    const label = tr.querySelector('.label');
    setText(label, callLabel(c));
    label.title = c.cid;
    setTime(tr.querySelector('.started time'), c.call.created_at);
    const st = tr.querySelector('.state');
    st.className = `state ${c.callingState}`;
    st.title = `callingState: ${c.callingState}`;
    setText(st, stateWords[c.callingState] || c.callingState);
    setText(tr.querySelector('.outcome'), outcome(c, me));
  });
}

const stateWords = {
  [CallingState.RINGING]: 'ringing',
  [CallingState.JOINED]: 'in the call',
  [CallingState.IDLE]: 'live, not joined',
  [CallingState.ENDED]: 'ended',
};

// renderCards shows one kind of call card: who and what, the call's name and time, and its buttons.
function renderCards(id, testid, calls, shape, buttons, describe) {
  document.querySelector(`[data-testid=${id}]`).hidden = calls.length === 0;
  renderKeyed(id, $(id), calls, shape, (c) => {
    const card = document.createElement('article');
    card.className = `call-card ${id}`;
    card.dataset.testid = testid;
    card.dataset.cid = c.cid;
    const key = `${id} ${c.cid}`;
    if (!firstShown.has(key)) firstShown.set(key, Date.now());
    card.dataset.shownAt = String(firstShown.get(key));
    const text = el('div', 'card-text', '');
    const badges = el('div', 'badges', '');
    badges.append(el('span', 'badge name', ''), el('span', 'badge video', 'video'), document.createElement('time'));
    text.append(el('div', 'who', ''), el('div', 'line', ''), badges);
    const actions = el('div', 'card-actions', '');
    actions.append(...buttons(c).filter(Boolean));
    card.append(el('div', 'avatar', ''), text, actions);
    if (id === 'incoming') card.append(el('p', 'sound-note', 'Click anywhere on the page to hear the ringtone.'));
    return card;
  }, (card, c) => {
    const d = describe(c);
    setText(card.querySelector('.avatar'), initials(d.avatar));
    setText(card.querySelector('.who'), d.who);
    setText(card.querySelector('.line'), d.line);
    const name = card.querySelector('.badge.name');
    setText(name, displayNameOf(c.call));
    name.hidden = name.textContent === '';
    name.title = c.cid;
    card.querySelector('.badge.video').hidden = c.call.custom?.video !== true;
    setTime(card.querySelector('.badges time'), c.call.created_at);
  });
}

// renderKeyed makes container show one node per call, in order. A call's node is built once and then only
// updated, unless its shape (which buttons it has) changes; the container is touched only when the nodes or
// their order change.
function renderKeyed(id, container, calls, shape, build, update) {
  const old = views.get(id) || new Map();
  const next = new Map();
  const nodes = calls.map((c) => {
    let v = old.get(c.cid);
    const sh = shape(c);
    if (!v || v.shape !== sh) v = { shape: sh, node: build(c) };
    update(v.node, c);
    next.set(c.cid, v);
    return v.node;
  });
  views.set(id, next);
  const kids = container.children;
  if (nodes.length !== kids.length || nodes.some((n, i) => kids[i] !== n)) container.replaceChildren(...nodes);
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// setTime shows an RFC 3339 time as the hour of day, the whole time on hover.
function setTime(node, rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return;
  if (node.dateTime !== rfc3339) {
    node.dateTime = rfc3339;
    node.title = d.toLocaleString();
  }
  setText(node, clock(d, false));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}

function button(label, testid, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.testid = testid;
  b.addEventListener('click', () => onClick(b));
  return b;
}

const rejectReasons = new Map(); // cid -> the reason picked, kept across renders

// reasonSelect is the labelled reason a Reject sends (API.md: busy counts as missed for the caller, decline not).
function reasonSelect(c) {
  const label = el('label', 'reason', '');
  const s = document.createElement('select');
  s.dataset.testid = 'reject-reason';
  for (const [value, text] of [['decline', 'Decline'], ['busy', 'I’m busy']]) s.append(new Option(text, value));
  s.value = rejectReasons.get(c.cid) || 'decline';
  s.addEventListener('change', () => rejectReasons.set(c.cid, s.value));
  label.append(el('span', '', 'Reject as'), s);
  return label;
}

// displayNameOf is the name the call was given, as pushes carry it (API.md, call_display_name).
function displayNameOf(call) {
  for (const k of ['display_name', 'name', 'title']) {
    const v = call.custom?.[k];
    if (typeof v === 'string' && v.trim()) return v.trim();
  }
  return '';
}

// callLabel tells one call from another in a list: its name, else who called whom.
function callLabel(c) {
  const named = displayNameOf(c.call);
  if (named) return named;
  const by = c.call.created_by?.id;
  const callees = (c.members || []).map((m) => m.user_id).filter((u) => u !== by).map(displayName);
  return callees.length > 0 ? `${callerName(c)} → ${list(callees)}` : `${callerName(c)}’s call`;
}

function callerName(c) {
  const by = c.call.created_by || {};
  return by.name || displayName(by.id);
}

function others(c, me) {
  return list((c.members || []).map((m) => m.user_id).filter((u) => u !== me).map(displayName));
}

function participants(c, me) {
  return list((c.call.session?.participants || []).map((p) => p.user_id).filter((u) => u !== me).map(displayName));
}

// list names a few people: "Bob", "Bob, Carol", "Bob, Carol, Dave +2".
function list(names) {
  return names.length > 3 ? `${names.slice(0, 3).join(', ')} +${names.length - 3}` : names.join(', ');
}

function initials(names) {
  return (names.match(/\p{L}/u)?.[0] || '·').toUpperCase();
}

// outcome says how a call that is no longer ringing went, from this user's side. A reject with reason busy
// also marks the callee missed (API.md), which tells it from a decline.
function outcome(c, me) {
  const s = c.call.session || {};
  const has = (m, u) => !!m && Object.prototype.hasOwnProperty.call(m, u);
  if (c.callingState === CallingState.RINGING || c.callingState === CallingState.JOINED) return '';
  const accepted = Object.keys(s.accepted_by || {});
  if (!c.isCreatedByMe) {
    if (has(s.rejected_by, me)) return has(s.missed_by, me) ? 'You were busy' : 'You declined';
    if (has(s.missed_by, me)) return `Missed call from ${callerName(c)}`;
    if (has(s.accepted_by, me)) return 'Answered';
    return c.callingState === CallingState.ENDED ? 'Ended' : '';
  }
  if (accepted.length > 0) return `Answered by ${list(accepted.map(displayName))}`;
  const rejected = Object.keys(s.rejected_by || {}).filter((u) => u !== me);
  const busy = rejected.filter((u) => has(s.missed_by, u)).map(displayName);
  const declined = rejected.filter((u) => !has(s.missed_by, u)).map(displayName);
  const missed = Object.keys(s.missed_by || {}).filter((u) => !has(s.rejected_by, u)).map(displayName);
  const parts = [];
  if (declined.length > 0) parts.push(`Declined by ${list(declined)}`);
  if (busy.length > 0) parts.push(`${list(busy)} ${busy.length > 1 ? 'were' : 'was'} busy`);
  if (missed.length > 0) parts.push(`Not answered by ${list(missed)}`);
  if (parts.length > 0) return parts.join(' · ');
  return c.callingState === CallingState.ENDED ? 'Ended' : '';
}

// The ringtone: two sine tones together (a phone's 440 + 480 Hz ring), twice a second and then a pause, made
// with the Web Audio API, so the page needs no sound file.
class Ringtone {
  constructor() {
    this.enabled = true;
    this.ctx = null;
    this.nodes = null; // {gain, oscillators, timer} while it sounds
  }

  // ring starts the ringtone when on is true and it is enabled, and stops it otherwise.
  ring(on) {
    if (on && this.enabled) this.start();
    else this.stop();
  }

  // prepare makes the audio context ahead of the first ring: a browser may take a while to open its audio
  // output, and the ring's card must not wait for it.
  prepare() {
    const AudioContext = window.AudioContext || window.webkitAudioContext;
    if (this.ctx || !AudioContext) return this.ctx;
    this.ctx = new AudioContext();
    this.ctx.addEventListener('statechange', () => this.show());
    return this.ctx;
  }

  start() {
    if (this.nodes) return;
    const ctx = this.prepare();
    if (!ctx) return;
    ctx.resume().catch(() => {});
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const oscillators = [440, 480].map((hz) => {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(gain);
      o.start();
      return o;
    });
    const burst = () => {
      const t = ctx.currentTime;
      const g = gain.gain;
      g.cancelScheduledValues(t);
      g.setValueAtTime(0, t);
      for (const at of [0, 0.5]) {
        g.linearRampToValueAtTime(0.12, t + at + 0.03);
        g.setValueAtTime(0.12, t + at + 0.4);
        g.linearRampToValueAtTime(0, t + at + 0.43);
      }
    };
    burst();
    this.nodes = { gain, oscillators, timer: setInterval(burst, 3000) };
    this.show();
  }

  stop() {
    if (!this.nodes) return;
    clearInterval(this.nodes.timer);
    for (const o of this.nodes.oscillators) o.stop();
    this.nodes.gain.disconnect();
    this.nodes = null;
    this.show();
  }

  // unlock resumes the audio after a click or key press, which a browser may wait for before it plays sound.
  unlock() {
    if (this.ctx?.state === 'suspended') this.ctx.resume().catch(() => {});
  }

  // show tells the page (and its tests) whether the ringtone sounds: "playing", "blocked" while the browser
  // waits for a click before it plays sound, or "off".
  show() {
    let state = 'off';
    if (this.nodes) state = this.ctx.state === 'running' ? 'playing' : 'blocked';
    document.body.dataset.ringtone = state;
  }
}

const ringtone = new Ringtone();

// The phone panel.

// pushTitle says what a phone shows, or does, for a push.
function pushTitle(p) {
  const from = p.data?.created_by_display_name || p.data?.created_by_id || 'someone';
  const what = p.data?.video === 'true' ? 'video call' : 'call';
  switch (p.type) {
    case EventType.RING: return `Incoming ${what} from ${from}: the phone rings`;
    case EventType.NOTIFICATION: return `${from} started a ${what}: the phone shows a notification`;
    case EventType.MISSED: return 'The ringing stops; the phone shows a missed call';
    case EventType.ACCEPTED: return 'Answered: the ringing stops';
    case EventType.REJECTED: return 'Declined: the ringing stops';
    case EventType.ENDED: return 'Call ended: the ringing stops';
    default: return p.type;
  }
}

function showPush(p) {
  const li = document.createElement('li');
  li.dataset.testid = 'push';
  li.dataset.type = p.type;
  li.dataset.cid = p.data?.call_cid || '';
  li.dataset.at = String(Date.now());
  li.className = 'push';
  li.dataset.kind = p.kind;
  const head = el('div', 'push-head', '');
  head.append(el('time', '', clock(new Date(p.received_at), true)), el('span', 'title', pushTitle(p)));
  li.append(head);
  if (p.title || p.body) li.append(el('div', 'alert', [p.title, p.body].filter(Boolean).join(' — ')));
  const details = document.createElement('details');
  const summary = el('summary', '', 'details');
  summary.dataset.testid = 'push-details';
  summary.append(' ', el('span', `type ${p.kind}`, p.type),
    el('span', 'kind', p.kind === 'ring' ? 'data-only, high priority' : p.kind));
  details.append(summary, el('pre', '', JSON.stringify(p.data, null, 2)));
  li.append(details);
  const pushes = $('pushes');
  pushes.prepend(li);
  while (pushes.children.length > 100) pushes.lastChild.remove();
}

// clock is the time of day of d, to the second, or to the millisecond for pushes (their order matters).
function clock(d, ms) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  const s = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return ms ? `${s}.${p(d.getMilliseconds(), 3)}` : s;
}
