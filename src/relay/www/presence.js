// A presence connection for one user: tokens from a function the
// application supplies (its backend signs them; the demo asks the relay),
// the WebSocket to presence-relay, a fresh token sent before the current
// one expires (else the relay closes the socket with 4001), reconnection
// with backoff, and the two things a client may say (active or not,
// visible or not).  No library: the relay speaks plain JSON over a plain
// WebSocket.
//
//   const conn = new PresenceConnection('alice', {
//     getToken: () => fetch('/my-app/presence-token').then((r) => r.json()).then((j) => j.token),
//     onMessage: (m) => ...,          // {type:"state"} and {type:"presence"}, in order, gapless
//     onLink: (state) => ...,         // 'connecting' | 'open' | 'retrying'
//   });
//   conn.start(); conn.setActive(false); conn.setVisible(false); conn.stop();

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

export class PresenceConnection {
  constructor(user, { getToken = () => demoToken(user), onMessage = () => {}, onLink = () => {}, active = true } = {}) {
    this.user = user;
    this.getToken = getToken;
    this.onMessage = onMessage;
    this.onLink = onLink;
    this.ws = null;
    this.active = active;
    this.stopped = true;
    this.retries = 0;
    this.timer = null;
    this.refreshTimer = null;
    this.seq = null;          // of the state, then of the last change applied
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
      if (!this.stopped) this.retry();
    };
  }

  // The order rule of docs/relay.md: a state says up to which seq it is
  // complete; a change at or below that is in it already, and one that
  // skips a number means changes were lost: start over with a new socket.
  receive(m) {
    if (m.type === 'state') {
      this.seq = m.seq;
    } else if (m.type === 'presence') {
      if (this.seq !== null && m.seq <= this.seq) return;
      if (this.seq !== null && m.seq > this.seq + 1) {
        this.resync();
        return;
      }
      this.seq = m.seq;
    } else if (m.type === 'token') {
      this.scheduleRefresh(m.exp * 1000);
      return;
    } else if (m.type === 'error') {
      // a refused refresh: try again soon; past expiry the relay closes
      // with 4001 and we reconnect with a new token anyway
      if (m.error === 'token refused') this.scheduleRefresh(Date.now() + 4000);
      return;
    }
    this.onMessage(m);
  }

  resync() {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.refreshTimer);
    if (ws) ws.close(1000);
    this.connect();
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
