'use strict';
// A WebSocket client for tests (the npm "ws" package) that keeps every
// JSON message it gets, so a test can wait for the one it expects.
//
//   const p = await Peer.open(relay.wsUrl('/ws?token=' + t));
//   const state = await p.waitFor((m) => m.type === 'state');
//   const { code } = await p.closed;
//   await Peer.refused(url) -> HTTP status of a refused upgrade
//   await Peer.refusal(url) -> { status, body } of a refused upgrade

const WebSocket = require('ws');

class Peer {
  // options: those of ws, plus protocols (the subprotocols to ask for)
  constructor(url, options = {}) {
    const { protocols, ...wsOptions } = options;
    this.messages = [];
    this.cursor = 0;
    this.waiters = [];
    this.ws = new WebSocket(url, protocols, { handshakeTimeout: 10000, ...wsOptions });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (req, res) => {
        const e = new Error(`upgrade refused: HTTP ${res.statusCode}`);
        e.status = res.statusCode;
        e.headers = res.headers;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          try { e.body = JSON.parse(body); } catch { e.body = body; }
          reject(e);
          req.destroy();
        });
        res.on('error', () => reject(e));
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.once('close',
      (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      let m;
      try { m = JSON.parse(data.toString()); } catch { m = { unparsable: data.toString() }; }
      this.messages.push(m);
      this._wake();
    });
    this.ws.on('close', () => this._wake());
  }

  static async open(url, options) {
    const p = new Peer(url, options);
    await p.opened;
    return p;
  }

  // Resolves with the HTTP status of an upgrade the server refused.
  static async refused(url, options) {
    const p = new Peer(url, options);
    try {
      await p.opened;
    } catch (e) {
      if (e.status) return e.status;
      throw e;
    }
    p.ws.terminate();
    throw new Error('upgrade was accepted');
  }

  // The status and (JSON) body of an upgrade the server refused.
  static async refusal(url, options) {
    const p = new Peer(url, options);
    try {
      await p.opened;
    } catch (e) {
      if (e.status) return { status: e.status, body: e.body, headers: e.headers };
      throw e;
    }
    p.ws.terminate();
    throw new Error('upgrade was accepted');
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  // The next message (after those already taken) that pred accepts.
  waitFor(pred = () => true, timeoutMs = 10000, what = 'message') {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = this.cursor; i < this.messages.length; i++) {
          if (pred(this.messages[i])) {
            this.cursor = i + 1;
            done();
            resolve(this.messages[i]);
            return;
          }
        }
        if (this.ws.readyState === WebSocket.CLOSED) {
          done();
          reject(new Error(`closed while waiting for ${what}; got ${JSON.stringify(this.messages.slice(this.cursor))}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages.slice(this.cursor)).slice(0, 2000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  // A presence change for user (optionally with the given status).
  waitPresence(user, status, timeoutMs) {
    return this.waitFor((m) => m.type === 'presence' && m.user_id === user &&
      (status === undefined || m.status === status), timeoutMs, `presence ${user} ${status}`);
  }

  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  async close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}

module.exports = { Peer };
