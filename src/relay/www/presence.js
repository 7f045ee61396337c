// A presence connection for one user: tokens from a function the
// application supplies (its backend signs them; the demo asks the relay),
// the WebSocket to presence-relay, a fresh token sent before the current
// one expires (else the relay closes the socket with 4001), reconnection
// with backoff, what a client may say (active or not, visible or not, its
// status message), and channels: join, subscribe, leave, unsubscribe,
// update, each channel's members kept by the order rule of docs/relay.md
// and joined or watched again on every new socket.  No library: the relay
// speaks plain JSON over a plain WebSocket.  Types: presence.d.ts.
//
//   const conn = new PresenceConnection('alice', {
//     getToken: () => fetch('/my-app/presence-token').then((r) => r.json()).then((j) => j.token),
//     onMessage: (m) => ...,          // the global feed: {type:"state"|"presence"|"status_message"}, in order
//     onLink: (state) => ...,         // 'connecting' | 'open' | 'retrying'
//     onError: (e) => ...,            // {type:"error",...} frames, those of channels too
//   });
//   conn.start();
//   const room = conn.join('room:42', { typing: false });
//   room.on('change', (members) => ...);
//   conn.update('room:42', { typing: true });
//   conn.setStatusMessage('In a meeting', 3600);
//   conn.setActive(false); conn.setVisible(false); conn.leave('room:42'); conn.stop();

import { PresenceChannel } from './channel.js';

export { PresenceChannel };

// The demo relay mints a token for any name (GET /demo/token, only with
// --demo on loopback).  A real application's backend signs its own.
export async function demoToken(user) {
  const r = await fetch(`/demo/token?user=${encodeURIComponent(user)}`, { cache: 'no-store' });
  if (!r.ok) throw new Error(`token refused: HTTP ${r.status}`);
  return (await r.json()).token;
}

export function socketUrl(token) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws?token=${encodeURIComponent(token)}`;
}

// A token's "exp" in ms (not checked: the relay does that), or null.
function expiresAt(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const { exp } = JSON.parse(atob(b64));
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

const CHANNEL_MAX_BYTES = 256;   // as the relay and presence.join()
const STATUS_MAX_CHARS = 140;    // as presence.set_status_message()

function checkChannel(name) {
  if (typeof name !== 'string' || name === '' || new TextEncoder().encode(name).length > CHANNEL_MAX_BYTES) {
    throw new TypeError(`a channel is a name of 1 to ${CHANNEL_MAX_BYTES} bytes, not ${JSON.stringify(name)}`);
  }
}

function checkMeta(meta, required) {
  if (meta === undefined || meta === null) {
    if (required) throw new TypeError('an update needs a meta object');
    return null;
  }
  if (typeof meta !== 'object' || Array.isArray(meta)) throw new TypeError('a meta is a plain object');
  return meta;
}

export class PresenceConnection {
  constructor(user, { getToken = () => demoToken(user), onMessage = () => {}, onLink = () => {},
    onError = () => {}, active = true } = {}) {
    this.user = user;
    this.getToken = getToken;
    this.onMessage = onMessage;
    this.onLink = onLink;
    this.onError = onError;
    this.ws = null;
    this.active = active;
    this.stopped = true;
    this.retries = 0;
    this.timer = null;
    this.refreshTimer = null;
    this.seq = null;            // the global state's
    this.users = new Map();     // the global feed: user_id -> { user_id, status, last_active, sessions, status_message }
    this.channels = new Map();  // name -> PresenceChannel
    this.statusWish = null;     // a status message to send once a socket is open
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  async connect() {
    this.onLink(this.retries ? 'retrying' : 'connecting');
    let token;
    try {
      token = await this.getToken();
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(socketUrl(token));
    this.ws = ws;
    ws.onopen = () => {
      this.retries = 0;
      // the relay starts every session active; say so if we are not
      if (!this.active) this.send({ type: 'heartbeat', active: false });
      this.rejoin();
      if (this.statusWish) this.send(this.statusWish);
      this.statusWish = null;
      this.onLink('open');
      this.scheduleRefresh(expiresAt(token));
    };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (this.ws === ws) this.receive(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.refreshTimer);
      // a new socket is a new session: its memberships start afresh
      for (const ch of this.channels.values()) ch.stale();
      if (!this.stopped) this.retry();
    };
  }

  // A new socket joins and watches what the last one did; the relay sends
  // each channel's state again.
  rejoin() {
    for (const ch of this.channels.values()) {
      ch.stale();
      if (ch.joined) this.sendJoin(ch);
      else if (ch.watched) this.send({ type: 'subscribe', channel: ch.name });
    }
  }

  // A join, then its meta as an update: a join within the reconnect grace
  // of an earlier session of ours (a reload, a new socket) announces
  // nothing, not even another meta, and the update makes others see it
  // (docs/relay.md, Reloads).
  sendJoin(ch) {
    const sent = this.send({ type: 'join', channel: ch.name });
    if (sent && ch.meta) this.send({ type: 'update', channel: ch.name, meta: ch.meta });
    return sent;
  }

  // The order rule of docs/relay.md: each state (the global one, and each
  // channel's) says up to which seq it is complete; a frame of it at or
  // below that seq is in it already.  Gaps are the relay's business.
  receive(m) {
    if (m.type === 'token') {
      this.scheduleRefresh(m.exp * 1000);
      return;
    }
    if (m.type === 'error') {
      // a refused refresh: try again soon; past expiry the relay closes
      // with 4001 and we reconnect with a new token anyway
      if (m.error === 'token refused') {
        this.scheduleRefresh(Date.now() + 4000);
        return;
      }
      const ch = typeof m.channel === 'string' ? this.channels.get(m.channel) : undefined;
      if (ch) this.refused(ch, m);
      this.onError(m);
      return;
    }
    if (typeof m.channel === 'string') {
      this.channels.get(m.channel)?.apply(m);
      return;
    }
    if (m.type === 'state') {
      this.seq = m.seq;
      this.users = new Map(m.users.map((u) => [u.user_id, { ...u, status_message: u.status_message ?? null }]));
    } else if (m.type === 'presence' || m.type === 'status_message') {
      if (this.seq !== null && m.seq <= this.seq) return;
      const prev = this.users.get(m.user_id);
      if (m.type === 'status_message') {
        if (prev) this.users.set(m.user_id, { ...prev, status_message: m.status_message });
      } else if (m.status === 'offline') {
        this.users.delete(m.user_id);
      } else {
        this.users.set(m.user_id, { user_id: m.user_id, status: m.status, last_active: m.last_active,
          sessions: prev?.sessions ?? null, status_message: prev?.status_message ?? null });
      }
    } else {
      return;
    }
    this.onMessage(m);
  }

  // A channel message the relay refused changed nothing there: neither
  // are we what we asked to be (docs/relay.md, Errors).
  refused(ch, m) {
    if (m.request === 'join') {
      ch.joined = false;
      // a refused join may still have subscribed us (a PostgreSQL refusal):
      // watch only what the application asked to watch
      if (!ch.watched) {
        if (m.code !== 'forbidden' && m.code !== 'bad_channel') this.send({ type: 'unsubscribe', channel: ch.name });
        ch.clear();
      }
    } else if (m.request === 'subscribe') {
      ch.watched = false;
      if (!ch.joined) ch.clear();
    }
    ch.emit('error', { code: m.code, request: m.request });
  }

  // A fresh token when two thirds of this one's life are over.
  scheduleRefresh(expMs) {
    clearTimeout(this.refreshTimer);
    if (!expMs) return;
    const left = expMs - Date.now();
    this.refreshTimer = setTimeout(() => this.refresh(), Math.max(1000, (left * 2) / 3));
  }

  async refresh() {
    let token;
    try {
      token = await this.getToken();
    } catch {
      this.scheduleRefresh(Date.now() + 4000);
      return;
    }
    this.send({ type: 'token', token });
  }

  // 0.5 s, 1 s, 2 s ... 10 s, with jitter so that a restarted relay is not
  // hit by every page at once.
  retry() {
    this.onLink('retrying');
    const base = Math.min(10000, 500 * 2 ** this.retries++);
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  setActive(active) {
    if (active === this.active) return;
    this.active = active;
    this.send({ type: 'heartbeat', active });
  }

  setVisible(visible) {
    return this.send({ type: 'visibility', visible });
  }

  // Our own status message ("In a meeting"), for expiresIn seconds (none:
  // until cleared); null or '' clears it.  Sent now, or when a socket
  // opens.  Everyone sees it in users and members (status_message).
  setStatusMessage(message, expiresIn = null) {
    if (message !== null && typeof message !== 'string') throw new TypeError('a status message is a string, or null');
    if (message && [...message].length > STATUS_MAX_CHARS) {
      throw new RangeError(`a status message has at most ${STATUS_MAX_CHARS} characters`);
    }
    if (expiresIn !== null && expiresIn !== undefined && !(Number.isFinite(expiresIn) && expiresIn > 0)) {
      throw new TypeError('expiresIn is a number of seconds above 0, or null');
    }
    const wish = { type: 'status_message', message: message || null };
    if (message && expiresIn) wish.expires_in = expiresIn;
    if (this.send(wish)) return true;
    this.statusWish = wish;
    return false;
  }

  // The channel's view (made if needed), whether watched or not.
  channel(name) {
    checkChannel(name);
    let ch = this.channels.get(name);
    if (!ch) {
      ch = new PresenceChannel(name);
      this.channels.set(name, ch);
    }
    return ch;
  }

  // Be present in the channel, with meta (an object, or none), and watch
  // it; joining again replaces the meta.
  join(name, meta = null) {
    const ch = this.channel(name);
    ch.meta = checkMeta(meta, false);
    if (!ch.watching) ch.stale();
    ch.joined = true;
    this.sendJoin(ch);
    return ch;
  }

  // Watch the channel (its members and their changes) without being in it.
  subscribe(name) {
    const ch = this.channel(name);
    if (!ch.watching) {
      ch.stale();
      this.send({ type: 'subscribe', channel: name });
    }
    ch.watched = true;
    return ch;
  }

  // Replace our meta in a channel we joined (others get an update).
  update(name, meta) {
    const ch = this.channels.get(name);
    if (!ch?.joined) throw new Error(`not a member of ${name}: join it first`);
    ch.meta = checkMeta(meta, true);
    return this.send({ type: 'update', channel: name, meta: ch.meta });
  }

  // Not present any more.  The relay's leave also stops watching; a
  // channel the application subscribed to stays watched (subscribed again,
  // its state sent again), as a count of its members needs.
  leave(name) {
    const ch = this.channels.get(name);
    if (!ch?.joined) return false;
    ch.joined = false;
    const sent = this.send({ type: 'leave', channel: name });
    if (ch.watched) {
      ch.stale();
      this.send({ type: 'subscribe', channel: name });
    } else {
      ch.clear();
    }
    return sent;
  }

  // Stop watching.  A channel we are a member of is watched until we
  // leave it (the relay sends a member its channel's frames).
  unsubscribe(name) {
    const ch = this.channels.get(name);
    if (!ch?.watched) return false;
    ch.watched = false;
    if (ch.joined) return true;
    ch.clear();
    return this.send({ type: 'unsubscribe', channel: name });
  }
}

// Calls onChange(false) after idleMs without input (or at once when the
// page is hidden), and onChange(true) at the next input.
export function watchActivity(idleMs, onChange) {
  let active = true;
  let timer = null;
  const set = (a) => {
    if (a !== active) {
      active = a;
      onChange(a);
    }
  };
  const input = () => {
    if (document.hidden) return;
    set(true);
    clearTimeout(timer);
    timer = setTimeout(() => set(false), idleMs);
  };
  for (const ev of ['pointermove', 'pointerdown', 'keydown', 'wheel', 'touchstart', 'focus']) {
    window.addEventListener(ev, input, { passive: true, capture: true });
  }
  document.addEventListener('visibilitychange', () => (document.hidden ? set(false) : input()));
  input();
  return { get active() { return active; } };
}
