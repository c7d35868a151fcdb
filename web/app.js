// The demo page: one window plays one demo user. It registers a browser "device" for that user, shows every
// push ringer sends to it, and filters the live list of ringer.js's useCalls as the Stream docs do: incoming
// rings get Accept / Reject, outgoing rings get Cancel, joined calls get Leave and, with the right, End.
import { RingerClient, CallingState } from './ringer.js';

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
  }

  async start() {
    const tok = await getJSON(`/demo/token?user=${encodeURIComponent(this.userId)}`);
    if (this.closed) return;
    this.name = tok.name;
    this.client = new RingerClient({ token: tok.token, userId: this.userId });
    this.stopCalls = this.client.useCalls((calls) => this.closed || renderCalls(calls), {
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
    $('device-name').textContent = `${this.device} · ${config.push_provider}`;
    if (!config.pushes) {
      $('device-note').textContent = `No device panel: ${config.pushes_off}`;
      this.pushesReady = true;
      return;
    }
    $('device-note').textContent = `${this.name}'s browser "device". Every push ringer sends to it shows here, ` +
      'as a phone would receive it (the FCM log provider hands it to this page).';
    this.source = new EventSource(`/demo/pushes?token=${encodeURIComponent(this.device)}`);
    this.source.addEventListener('push', (e) => {
      if (this.closed) return;
      const p = JSON.parse(e.data);
      showPush(p);
      // A phone acknowledges a ring when it shows the incoming call; this page's device does so on arrival.
      const cid = p.data?.call_cid || '';
      const colon = cid.indexOf(':');
      if (p.type === 'call.ring' && colon > 0) {
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
  const id = `demo-${Date.now().toString(36)}-${randomId(4)}`;
  document.body.dataset.lastCallSentAt = String(Date.now());
  document.body.dataset.lastCallCid = `default:${id}`;
  await act($('call'), () => s.client.getOrCreateCall('default', id, {
    ring: mode === 'ring',
    notify: mode === 'notify',
    members,
    video: $('video').checked,
    custom: { display_name: `${s.name}'s call` },
  }));
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
// and shape there and updated in place after, so that a button never vanishes under the pointer because the
// list was read again.

const views = new Map(); // list id -> Map cid -> {shape, node}
const firstShown = new Map(); // list id and cid -> when the page first showed it (Date.now())

function renderCalls(calls) {
  const me = session?.userId;
  // As the Stream docs filter useCalls.
  const incoming = calls.filter((c) => !c.isCreatedByMe && c.callingState === CallingState.RINGING);
  const outgoing = calls.filter((c) => c.isCreatedByMe && c.callingState === CallingState.RINGING);
  const joined = calls.filter((c) => c.callingState === CallingState.JOINED);

  renderRing('incoming', 'incoming-call', incoming, () => '', (c) => [
    button('Accept', 'accept', (b) => act(b, () => c.join())),
    reasonSelect(c),
    button('Reject', 'reject', (b) => act(b, () => c.leave({ reject: true, reason: rejectReasons.get(c.cid) || 'decline' }))),
  ], (c) => `${callerName(c)} is calling you`);
  renderRing('outgoing', 'outgoing-call', outgoing, () => '', (c) => [
    button('Cancel', 'cancel', (b) => act(b, () => c.leave())),
  ], (c) => {
    // "Calling…" until a callee's device acknowledges the ring (POST .../ringing), then "Ringing…".
    const acked = Object.keys(c.call.session?.ringing_by || {}).length > 0;
    return `${acked ? 'Ringing' : 'Calling'} ${others(c, me) || ''}…`;
  });
  renderRing('joined', 'joined-call', joined, (c) => String(c.canEnd), (c) => [
    button('Leave', 'leave', (b) => act(b, () => c.leave())),
    c.canEnd ? button('End', 'end', (b) => act(b, () => c.endCall())) : null,
  ], (c) => `With ${participants(c, me) || 'nobody yet'}`);

  renderKeyed('calls', $('calls'), calls, (c) => (c.callingState === CallingState.IDLE ? 'join' : ''), (c) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'call-row';
    tr.dataset.cid = c.cid;
    const state = el('td', '', '');
    state.append(el('span', 'state', ''), el('span', 'outcome', ''));
    const actions = el('td', '', '');
    if (c.callingState === CallingState.IDLE) actions.append(button('Join', 'join', (b) => act(b, () => c.join())));
    tr.append(el('td', 'name', ''), el('td', 'from', ''), state, el('td', 'mine', ''), actions);
    return tr;
  }, (tr, c) => {
    tr.dataset.state = c.callingState;
    const name = tr.querySelector('.name');
    setText(name, c.call.custom?.display_name || c.id);
    name.title = c.cid;
    setText(tr.querySelector('.from'), callerName(c));
    const st = tr.querySelector('.state');
    st.className = `state ${c.callingState}`;
    setText(st, c.callingState);
    setText(tr.querySelector('.outcome'), outcome(c, me));
    setText(tr.querySelector('.mine'), String(c.isCreatedByMe));
  });
}

// renderRing shows one of the call panels: who, the call's badges, and the buttons of its actions.
function renderRing(id, testid, calls, shape, buttons, who) {
  document.querySelector(`[data-testid=${id}]`).hidden = calls.length === 0;
  renderKeyed(id, $(id), calls, shape, (c) => {
    const li = document.createElement('li');
    li.dataset.testid = testid;
    li.dataset.cid = c.cid;
    const key = `${id} ${c.cid}`;
    if (!firstShown.has(key)) firstShown.set(key, Date.now());
    li.dataset.shownAt = String(firstShown.get(key));
    const badges = el('span', 'badges', '');
    badges.append(el('span', 'badge name', ''), el('span', 'badge video', 'video'));
    li.append(el('span', 'who', ''), badges, ...buttons(c).filter(Boolean));
    return li;
  }, (li, c) => {
    setText(li.querySelector('.who'), who(c));
    setText(li.querySelector('.badge.name'), c.call.custom?.display_name || c.id);
    li.querySelector('.badge.video').hidden = c.call.custom?.video !== true;
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

function reasonSelect(c) {
  const s = document.createElement('select');
  s.dataset.testid = 'reject-reason';
  s.setAttribute('aria-label', 'reject reason');
  for (const r of ['decline', 'busy']) s.append(new Option(r, r));
  s.value = rejectReasons.get(c.cid) || 'decline';
  s.addEventListener('change', () => rejectReasons.set(c.cid, s.value));
  return s;
}

function callerName(c) {
  const by = c.call.created_by || {};
  return by.name || displayName(by.id);
}

function others(c, me) {
  return (c.members || []).map((m) => m.user_id).filter((u) => u !== me).map(displayName).join(', ');
}

function participants(c, me) {
  return (c.call.session?.participants || []).map((p) => p.user_id).filter((u) => u !== me).map(displayName).join(', ');
}

// outcome says how a call that is no longer ringing went, from this user's side.
function outcome(c, me) {
  const s = c.call.session || {};
  const has = (m, u) => !!m && Object.prototype.hasOwnProperty.call(m, u);
  if (c.callingState === CallingState.RINGING || c.callingState === CallingState.JOINED) return '';
  const accepted = Object.keys(s.accepted_by || {});
  if (!c.isCreatedByMe) {
    if (has(s.missed_by, me)) return `Missed call from ${callerName(c)}`;
    if (has(s.rejected_by, me)) return 'You declined';
    if (has(s.accepted_by, me)) return 'Answered';
    return c.callingState === CallingState.ENDED ? 'Ended' : '';
  }
  if (accepted.length > 0) return `Answered by ${accepted.map(displayName).join(', ')}`;
  const rejected = Object.keys(s.rejected_by || {}).filter((u) => u !== me);
  if (rejected.length > 0) return `Declined by ${rejected.map(displayName).join(', ')}`;
  const missed = Object.keys(s.missed_by || {});
  if (missed.length > 0) return `Not answered by ${missed.map(displayName).join(', ')}`;
  return c.callingState === CallingState.ENDED ? 'Ended' : '';
}

// The device panel.

function showPush(p) {
  const li = document.createElement('li');
  li.dataset.testid = 'push';
  li.dataset.type = p.type;
  li.dataset.cid = p.data?.call_cid || '';
  li.dataset.at = String(Date.now());
  const head = el('div', 'push-head', '');
  head.append(
    el('time', '', clock(new Date(p.received_at))),
    el('span', `type ${p.kind}`, p.type),
    el('span', 'kind', p.kind === 'ring' ? 'ring · data-only, high priority' : p.kind),
  );
  li.append(head);
  if (p.title || p.body) li.append(el('div', 'alert', [p.title, p.body].filter(Boolean).join(' — ')));
  const details = document.createElement('details');
  details.append(el('summary', '', `from ${p.data?.created_by_display_name || p.data?.created_by_id || '?'} · ${p.data?.call_cid || ''}`));
  details.append(el('pre', '', JSON.stringify(p.data, null, 2)));
  li.append(details);
  const list = $('pushes');
  list.querySelectorAll('details[open]').forEach((d) => { d.open = false; });
  details.open = true;
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

function clock(d) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
