// A presence connection for one user: a demo token, the WebSocket to
// presence-relay, reconnection with backoff, and the two things a client
// may say (active or not, visible or not).  No library: the relay speaks
// plain JSON over a plain WebSocket.
//
//   const conn = new PresenceConnection('alice', {
//     onMessage: (m) => ...,          // {type:"state"} and {type:"presence"}
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

export class PresenceConnection {
  constructor(user, { onMessage = () => {}, onLink = () => {}, active = true } = {}) {
    this.user = user;
    this.onMessage = onMessage;
    this.onLink = onLink;
    this.ws = null;
    this.active = active;
    this.stopped = true;
    this.retries = 0;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  async connect() {
    this.onLink(this.retries ? 'retrying' : 'connecting');
    let token;
    try {
      token = await demoToken(this.user);
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
    };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      this.onMessage(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.stopped) this.retry();
    };
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
