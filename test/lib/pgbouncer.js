'use strict';
// A pgbouncer (Debian's package) in front of a test cluster: on 127.0.0.1
// at a free port, trust authentication, the pool mode asked for; our child
// process, stopped by PID, its log kept for artifacts.
//
//   const pgb = await startPgbouncer(cluster, { poolMode: 'transaction' });
//   pgb.port  pgb.conninfo  await pgb.client()  await pgb.stop();

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { freePort, sleep } = require('./cluster');
const { findProgram, spawnOwned, stopChild } = require('./programs');

class Pgbouncer {
  constructor(cluster, opts) {
    this.cluster = cluster;
    this.poolMode = opts.poolMode || 'transaction';
    this.name = opts.name || `pgbouncer-${this.poolMode}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-pgbouncer-'));
    this.logFile = path.join(this.dir, 'pgbouncer.log');
    this.artifactsDir = opts.artifactsDir || process.env.ARTIFACTS_DIR || null;
    this.user = cluster.user;
    this.database = cluster.database;
  }

  // libpq keyword form, for programs under test.
  get conninfo() {
    return `host=127.0.0.1 port=${this.port} user=${this.user} dbname=${this.database}`;
  }

  async start() {
    this.port = await freePort();
    const users = path.join(this.dir, 'users.txt');
    fs.writeFileSync(users, `"${this.user}" ""\n`);
    const ini = path.join(this.dir, 'pgbouncer.ini');
    fs.writeFileSync(ini, [
      '[databases]',
      `* = host=${this.cluster.socketDir} port=${this.cluster.port}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${this.port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${users}`,
      `pool_mode = ${this.poolMode}`,
      'default_pool_size = 4',
      'max_client_conn = 100',
      'ignore_startup_parameters = extra_float_digits',
      `logfile = ${this.logFile}`,
      '',
    ].join('\n'));
    this.child = spawnOwned(findProgram('pgbouncer', 'PGBOUNCER'), [ini], { stdio: 'ignore' });
    const deadline = Date.now() + 20000;
    for (;;) {
      if (this.child.exitStatus) {
        throw new Error(`pgbouncer exited ${JSON.stringify(this.child.exitStatus)}:\n${this.log()}`);
      }
      try {
        const c = await this.client();
        await c.query('SELECT 1');
        await c.end();
        return this;
      } catch {
        if (Date.now() > deadline) throw new Error(`pgbouncer did not start:\n${this.log()}`);
        await sleep(100);
      }
    }
  }

  // A pg client through the pooler; caller ends it.
  async client() {
    const c = new Client({ host: '127.0.0.1', port: this.port, user: this.user, database: this.database });
    c.on('error', () => {});
    try {
      await c.connect();
    } catch (e) {
      await c.end().catch(() => {});
      throw e;
    }
    return c;
  }

  log() {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  // SIGTERM (immediate shutdown), SIGKILL after 10 s.
  async stop() {
    if (this.child) await stopChild(this.child, 'SIGTERM');
    if (this.artifactsDir && fs.existsSync(this.logFile)) {
      fs.mkdirSync(this.artifactsDir, { recursive: true });
      fs.copyFileSync(this.logFile, path.join(this.artifactsDir, `${this.name}.log`));
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function startPgbouncer(cluster, opts = {}) {
  return new Pgbouncer(cluster, opts).start();
}

module.exports = { startPgbouncer };
