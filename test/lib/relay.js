'use strict';
// Runs presence-relay for a test: on 127.0.0.1 at a free port, against a
// cluster from ./cluster.js, log kept for artifacts, stopped by PID.
//
//   RELAY_BIN      the program (default: src/relay/presence-relay of this repo)
//   RELAY_WRAPPER  a command put in front of it, e.g.
//                  "valgrind --leak-check=full --error-exitcode=99"
//
//   const relay = await startRelay({ cluster, secret: 's3cret', args: ['--allow-anonymous'] });
//   (db: 'conninfo' instead of cluster for a conninfo of the test's own)
//   relay.url('/ws')  relay.wsUrl('/ws?token=...')
//   const { code, signal } = await relay.stop();

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep } = require('./cluster');

const repoRoot = path.resolve(__dirname, '..', '..');
const defaultBin = path.join(repoRoot, 'src', 'relay', 'presence-relay');

const live = new Set();
const dirs = new Set();   // removed when the test file's process exits
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

let counter = 0;

class Relay {
  constructor(opts) {
    this.opts = opts;
    this.name = opts.name || `relay-${++counter}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-relay-'));
    dirs.add(this.dir);
    this.logFile = path.join(this.dir, 'relay.log');
    this.artifactsDir = opts.artifactsDir || process.env.ARTIFACTS_DIR || null;
  }

  // Where clients reach it: its --bind address, 127.0.0.1 if that is 0.0.0.0
  // (or not given), ::1 if it is ::, or opts.host.
  get host() {
    const wildcard = { '0.0.0.0': '127.0.0.1', '::': '::1' };
    const h = this.opts.host || wildcard[this.opts.bind] || this.opts.bind || '127.0.0.1';
    return h.includes(':') ? `[${h}]` : h;
  }

  url(p = '/') { return `http://${this.host}:${this.port}${p}`; }
  wsUrl(p = '/ws') { return `ws://${this.host}:${this.port}${p}`; }
  log() { try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; } }

  async start() {
    const o = this.opts;
    this.port = o.port || await freePort();
    const args = ['--port', String(this.port), '--bind', o.bind || '127.0.0.1'];
    if (o.db || o.cluster) args.push('--db', o.db || o.cluster.conninfo);
    if (o.secret !== undefined) {
      this.secretFile = path.join(this.dir, 'secret');
      fs.writeFileSync(this.secretFile, o.secret + '\n', { mode: 0o600 });
      args.push('--jwt-secret-file', this.secretFile);
    }
    args.push(...(o.args || []));
    const bin = o.bin || process.env.RELAY_BIN || defaultBin;
    const wrapper = (o.wrapper ?? process.env.RELAY_WRAPPER ?? '').split(/\s+/).filter(Boolean);
    const argv = [...wrapper, bin, ...args];
    const log = fs.openSync(this.logFile, 'a');
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log], env: { ...process.env, ...(o.env || {}) } });
    fs.closeSync(log);
    live.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      live.delete(this.child);
      this.exitStatus = { code, signal };
      resolve(this.exitStatus);
    }));
    if (o.wait === false) return this;
    try {
      await this.waitHealthy(o.expectDb === false ? [200, 503] : [200]);
    } catch (e) {
      // nobody else holds it: it would keep the test process alive
      this.signal('SIGKILL');
      await this.exited;
      throw e;
    }
    return this;
  }

  // Waits until GET /healthz answers with one of the given statuses.
  async waitHealthy(statuses = [200], timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitStatus) throw new Error(`relay exited ${JSON.stringify(this.exitStatus)}:\n${this.log()}`);
      try {
        const r = await fetch(this.url('/healthz'));
        await r.text();
        if (statuses.includes(r.status)) return r.status;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`relay not healthy in time:\n${this.log()}`);
      await sleep(50);
    }
  }

  signal(sig) {
    if (this.child && !this.exitStatus) process.kill(this.child.pid, sig);
  }

  // SIGTERM, then the exit status (SIGKILL after timeoutMs).
  async stop(timeoutMs = 20000) {
    if (!this.exitStatus) {
      this.signal('SIGTERM');
      const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.artifactsDir) {
      fs.mkdirSync(this.artifactsDir, { recursive: true });
      fs.copyFileSync(this.logFile, path.join(this.artifactsDir, `${this.name}.log`));
    }
    return this.exitStatus;
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }
}

async function startRelay(opts = {}) {
  const r = new Relay(opts);
  return r.start();
}

module.exports = { startRelay, Relay, repoRoot };
