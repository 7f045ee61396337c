'use strict';
// The system as docs/operations.md deploys it, for the deploy suite: a
// primary and a streaming standby (pg_basebackup), two relays whose --db
// names both over TCP with target_session_attrs=read-write, Debian's nginx
// running the documented block in front of them, pages running the demo
// page's own client (src/relay/www/presence.js: reconnect, backoff, token
// refresh) through nginx, watchers pinned to one relay each that record
// every frame, and a LISTEN client that records every notification.
//
//   const sys = await startSystem();
//   const pages = await sys.openPages(['u1', 'u2']);
//   sys.relays[0].signal('SIGKILL');  await sys.restartRelay(0);
//   await sys.converged();            // the database, watchers and pages agree with who is there
//   await sys.stop();

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { Client } = require('pg');
const { startCluster, freePort, sleep } = require('../lib/cluster');
const { startRelay, repoRoot } = require('../lib/relay');
const { startNginx, operationsBlock } = require('../lib/nginx');
const { sign } = require('../lib/jwt');
const { eventually } = require('../relay/common');

const SECRET = 'deploy-test-secret-0123456789abcdef';

// The relay heartbeats every 5 s (a third of session_timeout). A client
// that comes back within the 3 s grace shows nothing; one kept away longer
// (nginx refusing it, say) is seen going offline: the first retry of the
// page's backoff is at most 0.5 s, so the grace is six times that.  Any
// ghost (a session nobody heartbeats) would outlive converged()'s wait,
// which is shorter than session_timeout.
const GRACE_MS = 3000;
const GUCS = {
  'presence.session_timeout': '15s',
  'presence.reconnect_grace': `${GRACE_MS}ms`,
  'presence.sweep_interval': '100ms',
  'presence.flush_interval': '1s',
};
const CONVERGE_MS = GRACE_MS + 5000;

// Tokens live 15 s, so that pages refresh them (at two thirds of their
// life) several times in a scenario; one not refreshed closes its socket
// with 4001, which pages are checked never to see.
const TOKEN_TTL_S = 15;
const token = (user) => sign({ sub: user }, SECRET, { exp: Math.floor(Date.now() / 1000) + TOKEN_TTL_S });

// What a client knows from the feed, by the order rule of relay.md: a
// state replaces it, a change at or below the known seq is in it already.
// Every frame is kept, with its time and the socket it came on.
class View {
  constructor() {
    this.frames = [];
    this.online = new Map();
    this.seq = null;
    this.socket = null;       // the socket of the last frame, and the
    this.socketMax = 0;       // highest seq of a change applied from it
    this.gaps = [];           // changes that skipped a number
    this.backwards = [];      // changes on one socket at or below one applied before
  }

  apply(m, socket) {
    this.frames.push({ t: Date.now(), socket, m });
    if (socket !== this.socket) {
      this.socket = socket;
      this.socketMax = 0;
    }
    if (m.type === 'state') {
      this.online = new Map(m.users.map((u) => [u.user_id, u.status]));
      this.seq = m.seq;
    } else if (m.type === 'presence') {
      if (this.seq !== null && m.seq <= this.seq) return;
      if (this.seq !== null && m.seq > this.seq + 1) this.gaps.push({ after: this.seq, got: m.seq });
      if (m.seq <= this.socketMax) this.backwards.push({ max: this.socketMax, got: m.seq });
      this.socketMax = Math.max(this.socketMax, m.seq);
      this.seq = m.seq;
      if (m.status === 'offline') this.online.delete(m.user_id);
      else this.online.set(m.user_id, m.status);
    }
  }

  users() { return [...this.online.keys()].sort(); }

  // The statuses announced for user by presence frames after time since.
  changes(user, since = 0) {
    return this.frames.filter((f) => f.t >= since && f.m.type === 'presence' && f.m.user_id === user)
      .map((f) => f.m.status);
  }

  // States received after time since.
  states(since = 0) { return this.frames.filter((f) => f.t >= since && f.m.type === 'state'); }
}

// A watcher pinned to one relay (not through nginx): it sees the changes
// of everyone while that relay runs, and reconnects every 100 ms to its
// relay's port when it is gone.  Its own user is tracked like any other
// (with a token good for an hour: it does not refresh).
class Watcher {
  constructor(name, relayAt) {
    this.name = name;
    this.relayAt = relayAt;   // () => the relay it watches (restarts on the same port)
    this.view = new View();
    this.sockets = 0;
    this.running = false;
    this.ws = null;
  }

  start() {
    this.running = true;
    this.connect();
  }

  connect() {
    const n = ++this.sockets;
    const ws = new WebSocket(this.relayAt().wsUrl(`/ws?token=${sign({ sub: this.name }, SECRET)}`));
    this.ws = ws;
    ws.on('message', (data) => this.view.apply(JSON.parse(data.toString()), n));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (this.ws === ws) this.ws = null;
      if (this.running) this.timer = setTimeout(() => this.connect(), 100);
    });
  }

  get open() { return this.ws?.readyState === WebSocket.OPEN; }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.ws?.terminate();
  }
}

// A page: PresenceConnection as the demo page runs it, through nginx,
// with tokens minted here (a backend would sign them the same way).
// tokenDelayMs keeps it away that long before each reconnection (its
// backend slow to answer), so that it comes back after the grace.
class Page {
  constructor(PresenceConnection, user, opts = {}) {
    this.user = user;
    this.view = new View();
    this.links = [];          // { t, state } from onLink
    this.tokenDelayMs = opts.tokenDelayMs || 0;
    this.tokens = 0;
    this.conn = new PresenceConnection(user, {
      getToken: async () => {
        if (this.tokens++ && this.tokenDelayMs && !this.conn.ws) await sleep(this.tokenDelayMs);
        return token(user);
      },
      onMessage: (m) => this.view.apply(m, this.sockets().length),
      onLink: (state) => this.links.push({ t: Date.now(), state }),
    });
  }

  sockets() { return Page.sockets.filter((s) => s.user === this.user); }
  get open() { return this.conn.ws?.readyState === WebSocket.OPEN; }
  // The close codes of its sockets, in order.
  closeCodes() { return this.sockets().map((s) => s.closeCode).filter((c) => c !== undefined); }
  // When its first state after time since came.
  stateAfter(since) { return this.view.states(since)[0]?.t; }
}
Page.sockets = [];

// The page's WebSocket: the npm ws package, noting whose socket it is (the
// token's sub) and how it closed.  A failed handshake (nginx's 502) is an
// "error" event, which a browser's WebSocket may have no listener for, but
// an EventEmitter without one throws: this one listens.
class PageWebSocket extends WebSocket {
  constructor(url, ...rest) {
    super(url, ...rest);
    const t = new URL(url).searchParams.get('token');
    this.user = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()).sub;
    this.addEventListener('close', (e) => { this.closeCode = e.code; });
    this.on('error', () => {});
    Page.sockets.push(this);
  }
}

// The relay command of operations.md ("Several relays behind nginx"), as
// written but for what a test machine must change: the database servers
// and database (the primary and the standby, on 127.0.0.1 over TCP; the
// role is the documented one, made by start()), the secret file (startRelay writes one), the
// ports.  Returns { db(primary, standby), args(metricsPort) }, the flags
// but --db, --jwt-secret-file, --bind and --port (which startRelay gives).
function documentedRelay() {
  const text = fs.readFileSync(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const block = text.slice(text.indexOf('\n## Several relays behind nginx\n')).match(/```\n(presence-relay [\s\S]*?)```/)[1];
  const words = block.replace(/\\\n/g, ' ').match(/'[^']*'|\S+/g).map((w) => w.replace(/^'(.*)'$/, '$1'));
  assert.equal(words.shift(), 'presence-relay');
  const flags = new Map();
  for (let i = 0; i < words.length; i += 2) flags.set(words[i], words[i + 1]);
  assert.equal(flags.get('--bind'), '127.0.0.1');
  assert.match(flags.get('--metrics-bind'), /^127\.0\.0\.1:\d+$/);
  const keywords = new Map(flags.get('--db').split(/\s+/).map((kv) => kv.split('=')));
  assert.equal(keywords.get('host').split(',').length, 2, 'two database servers in --db');
  const db = (primary, standby) => [...keywords].map(([k, v]) => ({
    host: `host=${primary.host},${standby.host} port=${primary.port},${standby.port}`,
    dbname: `dbname=${primary.database}`,
  })[k] || `${k}=${v}`).join(' ');
  const args = (metricsPort) => [...flags].filter(([f]) => !['--db', '--jwt-secret-file', '--bind', '--port'].includes(f))
    .flatMap(([f, v]) => [f, f === '--metrics-bind' ? `127.0.0.1:${metricsPort}` : v]);
  return { db, args };
}

let presenceModule;
// src/relay/www/presence.js, as the browser loads it, in a world with the
// globals it uses: WebSocket, and location (the page served by nginx).
async function loadClient(nginxPort) {
  globalThis.WebSocket = PageWebSocket;
  globalThis.location = { protocol: 'http:', host: `127.0.0.1:${nginxPort}` };
  presenceModule ??= await import(path.join(repoRoot, 'src', 'relay', 'www', 'presence.js'));
  return presenceModule.PresenceConnection;
}

class System {
  // opts.block: a change to the documented nginx block (only to show what
  // goes wrong without a part of it); opts.version: the extension's;
  // opts.beforeRelays(sys): run once the database servers run, before any
  // relay starts.
  constructor(opts = {}) {
    this.block = opts.block || ((conf) => conf);
    this.version = opts.version;
    this.beforeRelays = opts.beforeRelays || (async () => {});
    this.relays = [];
    this.watchers = [];
    this.pages = [];
    this.notifications = [];  // { t, server, n } from LISTEN
    this.statuses = {};       // relay name -> exit status
  }

  // The relay command of operations.md, run by startRelay(i).  Restarting
  // relay i (once it exited) starts a new one on its ports.
  async startRelay(i) {
    const old = this.relays[i];
    if (old) {
      assert.ok(old.exitStatus, 'the relay it replaces has exited');
      this.statuses[old.name] = await old.stop();
      old.cleanup();
    }
    const { db, args } = documentedRelay();
    this.relays[i] = await startRelay({
      db: db(this.primary, this.standby),
      secret: SECRET,
      bind: '127.0.0.1',
      port: old?.port,
      name: `deploy-relay-${i + 1}${old ? `-${++this.restarts}` : ''}`,
      args: args(this.metricsPorts[i]),
    });
    return this.relays[i];
  }

  async start() {
    this.primary = await startCluster({ gucs: GUCS, name: 'deploy-primary', extension: !this.version });
    if (this.version) await this.primary.query(`CREATE EXTENSION presence VERSION '${this.version}'`);
    // the relays' role, as relay.md makes it
    const relayMd = fs.readFileSync(path.join(repoRoot, 'docs', 'relay.md'), 'utf8');
    let role = relayMd.slice(relayMd.indexOf('\n## Database role\n')).match(/```sql\n([\s\S]*?)```/)[1];
    // 1.0 has no heartbeat_many, status messages or channels (operations.md's
    // update grants what the relay needs of them): their lines and grants go
    if (this.version === '1.0') {
      role = role.replace(/^\s*presence\.heartbeat_many\([^)]*\),.*\n/m, '').split(';')
        .filter((stmt) => !/set_status_message|presence\.join\(/.test(stmt)).join(';');
    }
    await this.primary.query(role);
    this.standby = await this.primary.startStandby({ name: 'deploy-standby' });
    this.current = this.primary;
    await this.listen(this.primary);
    await this.beforeRelays(this);
    this.metricsPorts = [await freePort(), await freePort()];
    this.restarts = 0;
    await this.startRelay(0);
    await this.startRelay(1);
    this.port = await freePort();
    this.nginx = await startNginx((dir) => this.block(operationsBlock(dir, this.port, this.relays.map((r) => r.port))),
      this.port, 'deploy-nginx');
    this.PresenceConnection = await loadClient(this.port);
    for (const i of [0, 1]) {
      const w = new Watcher(`watcher-${i + 1}`, () => this.relays[i]);
      w.start();
      this.watchers.push(w);
    }
    await eventually(() => this.watchers.every((w) => w.view.states().length), 10000, 'the watchers\' states');
  }

  // LISTENs on server, noting every notification; on a new primary after a
  // failover, call it again.
  async listen(server) {
    await this.listener?.end().catch(() => {});
    this.listener = new Client({ host: server.socketDir, port: server.port, user: 'postgres', database: 'postgres' });
    this.listener.on('error', () => {});
    this.listener.on('notification', (n) => this.notifications.push({ t: Date.now(), server: server.name, n: JSON.parse(n.payload) }));
    await this.listener.connect();
    await this.listener.query('LISTEN presence');
  }

  // A page for user, started (opts for Page).
  newPage(user, opts) {
    const p = new Page(this.PresenceConnection, user, opts);
    this.pages.push(p);
    p.conn.start();
    return p;
  }

  // Opens a page per user, and waits until each has its state and is
  // online in the database.
  async openPages(users, opts) {
    const pages = users.map((u) => this.newPage(u, opts));
    await eventually(() => pages.every((p) => p.view.states().length), 20000, 'every page\'s state');
    await eventually(async () => {
      const online = await this.onlineUsers();
      return users.every((u) => online.includes(u));
    }, 10000, 'the pages\' users online');
    return pages;
  }

  // The users whose sessions are on each relay: [[users on relay 1], [... 2]]
  // (a relay names its sessions relay-<host>-<pid>-<n>).
  async usersByRelay() {
    const { rows } = await this.current.query('SELECT user_id, session_id FROM presence.sessions()');
    const pid = (x) => Number(x.session_id.match(/-(\d+)-\d+$/)[1]);
    return this.relays.map((r) => rows.filter((x) => pid(x) === r.child.pid).map((x) => x.user_id).sort());
  }

  async onlineUsers() {
    const { rows } = await this.current.query('SELECT user_id FROM presence.online_users() ORDER BY 1');
    return rows.map((r) => r.user_id);
  }

  // Who is there: every page not stopped, and every watcher whose relay runs.
  expected() {
    return [...this.pages.filter((p) => !p.conn.stopped).map((p) => p.user),
      ...this.watchers.filter((w, i) => !this.relays[i].exitStatus).map((w) => w.name)].sort();
  }

  // Waits until the database, every watcher and every open page show
  // exactly who is there, and returns what the database says.
  async converged(timeoutMs = CONVERGE_MS) {
    const want = this.expected();
    const views = () => [...this.watchers.filter((w, i) => !this.relays[i].exitStatus).map((w) => [w.name, w.view]),
      ...this.pages.filter((p) => !p.conn.stopped).map((p) => [p.user, p.view])];
    try {
      return await eventually(async () => {
        const online = await this.onlineUsers();
        return JSON.stringify(online) === JSON.stringify(want) &&
          views().every(([, v]) => JSON.stringify(v.users()) === JSON.stringify(want)) && online;
      }, timeoutMs, 'the database, the watchers and the pages to agree with who is there');
    } catch (e) {
      const online = await this.onlineUsers().catch((x) => x.message);
      const wrong = views().filter(([, v]) => JSON.stringify(v.users()) !== JSON.stringify(want))
        .map(([n, v]) => `${n}: ${v.users().join(' ')}`);
      throw new Error(`${e.message}\nwant:   ${want.join(' ')}\nonline: ${[].concat(online).join(' ')}\n` +
        `views that differ:\n${wrong.slice(0, 10).join('\n')}`);
    }
  }

  // Every frame a watcher or page got about user after time since, as
  // "who: status status ...", for failure messages.
  seenOf(user, since) {
    return [...this.watchers.map((w) => [w.name, w.view]), ...this.pages.map((p) => [p.user, p.view])]
      .map(([n, v]) => `${n}: ${v.changes(user, since).join(' ')}`).join('\n');
  }

  // The notifications for user since time since, as statuses.
  notified(user, since = 0) {
    return this.notifications.filter((x) => x.t >= since && x.n.user_id === user).map((x) => x.n.status);
  }

  // Checks what every page and watcher went through: no socket closed for
  // an expired token (4001), no gap, and (unless opts.backwards is false)
  // no seq on one socket at or below one it had before.
  checkPages(opts = {}) {
    const views = [...this.pages.map((p) => [p.user, p.view]), ...this.watchers.map((w) => [w.name, w.view])];
    for (const p of this.pages) assert.ok(!p.closeCodes().includes(4001), `${p.user}: a token expired (${p.closeCodes()})`);
    for (const [name, v] of views) {
      assert.deepEqual(v.gaps, [], `${name}: gaps`);
      if (opts.backwards !== false) assert.deepEqual(v.backwards, [], `${name}: seq went back`);
    }
  }

  // Stops everything started, by PID, whatever state it is in; returns the
  // exit status of every relay, by name.
  async stop() {
    for (const p of this.pages) p.conn.stop();
    for (const w of this.watchers) w.stop();
    for (const s of Page.sockets) s.terminate();
    const steps = [
      () => this.listener?.end(),
      () => this.nginx?.stop(),
      ...this.relays.map((r) => async () => {
        this.statuses[r.name] = await r.stop();
        r.cleanup();
      }),
      () => this.standby?.stop(),
      () => this.primary?.stop(),
    ];
    const errors = [];
    for (const step of steps) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
    return this.statuses;
  }
}

async function startSystem(opts) {
  const sys = new System(opts);
  try {
    await sys.start();
  } catch (e) {
    await sys.stop();
    throw e;
  }
  return sys;
}

// Runs fn(sys) on a system of its own (opts for startSystem), stopped
// after; every relay must have exited 0 unless allowed to have been killed
// (opts.killed: their names).
async function withSystem(opts, fn) {
  const sys = await startSystem(opts);
  try {
    await fn(sys);
  } finally {
    const statuses = await sys.stop();
    for (const [name, status] of Object.entries(statuses)) {
      if (!(opts.killed || []).includes(name)) assert.deepEqual(status, { code: 0, signal: null }, name);
    }
  }
}

// Quantiles of a list of durations, for the figures the tests print.
function spread(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  return s.length ? `min ${s[0]} ms, median ${q(0.5)} ms, max ${s[s.length - 1]} ms (${s.length})` : 'none';
}

module.exports = { startSystem, withSystem, eventually, spread, sleep, GRACE_MS, GUCS, SECRET };
