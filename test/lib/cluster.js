'use strict';
// Throwaway PostgreSQL clusters for tests: initdb into a temp dir, preloaded
// with presence, listening on 127.0.0.1 at a free port and on a unix socket
// in the same temp dir; the postmaster is our child and is stopped by PID.
//
//   const { startCluster } = require('../lib/cluster');
//   const pg = await startCluster({ gucs: { 'presence.idle_timeout': '2s' } });
//   await pg.query('SELECT presence.connect($1)', ['42']);
//   await pg.restart();
//   const standby = await pg.startStandby();   // streaming, hot standby
//   await standby.promote();
//   await pg.stop();
//
// initdb refuses to run as root: run tests as an unprivileged user.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');

function pgBindir() {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
}

// A port nobody listens on right now (the kernel's pick).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function gucLine(name, value) {
  const v = typeof value === 'number' ? String(value) : `'${String(value).replace(/'/g, "''")}'`;
  return `${name} = ${v}\n`;
}

// Every live postmaster we started, so that a crashing test run still stops them.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGQUIT'); } catch { /* already gone */ }
  }
});

class Cluster {
  constructor(opts) {
    this.database = opts.database || 'postgres';
    this.gucs = opts.gucs || {};
    this.extension = opts.extension !== false;
    this.artifactsDir = opts.artifactsDir || process.env.ARTIFACTS_DIR || null;
    this.name = opts.name || 'cluster';
    this.bindir = pgBindir();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-pg-'));
    this.dataDir = path.join(this.dir, 'data');
    this.socketDir = this.dir;
    this.logFile = path.join(this.dir, 'postgres.log');
    this.host = '127.0.0.1';
    this.user = 'postgres';
    this.child = null;
  }

  get connectionString() {
    return `postgresql://${this.user}@${this.host}:${this.port}/${encodeURIComponent(this.database)}`;
  }

  // libpq keyword form for programs under test: over the unix socket, or
  // over TCP when PRESENCE_TEST_DB=tcp (test/relay/run.sh runs both ways).
  get conninfo() {
    return process.env.PRESENCE_TEST_DB === 'tcp' ? this.tcpConninfo : this.socketConninfo;
  }

  get socketConninfo() {
    return `host=${this.socketDir} port=${this.port} user=${this.user} dbname=${this.database}`;
  }

  get tcpConninfo() {
    return `host=${this.host} port=${this.port} user=${this.user} dbname=${this.database}`;
  }

  async init() {
    this.port = await freePort();
    execFileSync(path.join(this.bindir, 'initdb'),
      ['-D', this.dataDir, '-U', this.user, '-A', 'trust', '-E', 'UTF8',
        '--locale=C', '--no-sync'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.configure();
  }

  // A base backup of primary (over its unix socket; initdb's pg_hba.conf
  // trusts local replication) that streams from it: standby.signal and
  // primary_conninfo are written by pg_basebackup -R.
  async initStandby(primary) {
    this.port = await freePort();
    execFileSync(path.join(this.bindir, 'pg_basebackup'),
      ['-D', this.dataDir, '-h', primary.socketDir, '-p', String(primary.port),
        '-U', primary.user, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    this.configure();
  }

  // Appends this cluster's own settings; the last line for a setting wins,
  // so a standby's override what it copied from its primary.
  configure() {
    let conf = '\n# test/lib/cluster.js\n';
    conf += gucLine('port', this.port);
    conf += gucLine('listen_addresses', '127.0.0.1');
    conf += gucLine('unix_socket_directories', this.socketDir);
    conf += gucLine('fsync', 'off');
    conf += gucLine('shared_preload_libraries', 'presence');
    conf += gucLine('presence.database', this.database);
    for (const [k, v] of Object.entries(this.gucs)) conf += gucLine(k, v);
    fs.appendFileSync(path.join(this.dataDir, 'postgresql.conf'), conf);
  }

  async start() {
    const log = fs.openSync(this.logFile, 'a');
    this.child = spawn(path.join(this.bindir, 'postgres'), ['-D', this.dataDir],
      { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    live.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      live.delete(this.child);
      resolve({ code, signal });
    }));
    await this.waitReady();
  }

  async waitReady(timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = new Client({ host: this.socketDir, port: this.port, user: this.user, database: 'postgres' });
      try {
        await c.connect();
        await c.end();
        return;
      } catch (e) {
        await c.end().catch(() => {});
        if (Date.now() > deadline) throw new Error(`postgres did not start: ${e.message}\n${this.log()}`);
        await sleep(100);
      }
    }
  }

  log() {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  // One-shot query on a fresh connection (as the superuser).
  async query(sql, params = [], database = this.database) {
    const c = new Client({ host: this.socketDir, port: this.port, user: this.user, database });
    await c.connect();
    try {
      return await c.query(sql, params);
    } finally {
      await c.end();
    }
  }

  // A connection that stays open (LISTEN, bound sessions); caller ends it.
  async client(database = this.database) {
    const c = new Client({ host: this.socketDir, port: this.port, user: this.user, database });
    await c.connect();
    return c;
  }

  // mode: 'fast' (SIGINT, clean) or 'immediate' (SIGQUIT, crash-like).
  async stopServer(mode = 'fast') {
    if (!this.child) return;
    const sig = mode === 'immediate' ? 'SIGQUIT' : 'SIGINT';
    try { process.kill(this.child.pid, sig); } catch { /* gone */ }
    const timer = setTimeout(() => { try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ } }, 30000);
    await this.exited;
    clearTimeout(timer);
    this.child = null;
  }

  async restart(mode = 'fast') {
    await this.stopServer(mode);
    await this.start();
  }

  // Starts a hot standby of this cluster, streaming from it, on a port and
  // in a temp dir of its own; stop() it like any cluster.  Options: name,
  // gucs (on top of this cluster's).
  async startStandby(opts = {}) {
    const standby = new Cluster({
      name: opts.name || `${this.name}-standby`,
      database: this.database,
      gucs: { ...this.gucs, ...(opts.gucs || {}) },
      extension: false,
      artifactsDir: this.artifactsDir,
    });
    try {
      await standby.initStandby(this);
      await standby.start();
    } catch (e) {
      await standby.stop().catch(() => {});
      throw e;
    }
    return standby;
  }

  // Is this server in recovery (a standby)?
  async inRecovery() {
    return (await this.query('SELECT pg_is_in_recovery() AS r', [], 'postgres')).rows[0].r;
  }

  // Promotes this standby and waits until it accepts writes.
  async promote(timeoutMs = 30000) {
    execFileSync(path.join(this.bindir, 'pg_ctl'),
      ['promote', '-w', '-t', String(Math.ceil(timeoutMs / 1000)), '-D', this.dataDir],
      { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  async stop() {
    await this.stopServer('fast');
    if (this.artifactsDir && fs.existsSync(this.logFile)) {
      fs.mkdirSync(this.artifactsDir, { recursive: true });
      fs.copyFileSync(this.logFile, path.join(this.artifactsDir, `${this.name}-postgres.log`));
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Starts a fresh cluster with presence preloaded and (unless extension:
// false) CREATE EXTENSION presence done in options.database.
// Options: gucs {name: value}, database, extension, name, artifactsDir.
async function startCluster(opts = {}) {
  const cluster = new Cluster(opts);
  await cluster.init();
  await cluster.start();
  if (cluster.database !== 'postgres') {
    await cluster.query(`CREATE DATABASE "${cluster.database.replace(/"/g, '""')}"`, [], 'postgres');
  }
  if (cluster.extension) await cluster.query('CREATE EXTENSION presence');
  return cluster;
}

module.exports = { startCluster, freePort, sleep, Cluster };
