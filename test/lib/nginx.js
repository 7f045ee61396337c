'use strict';
// Debian's nginx for tests, configured with the configuration that
// docs/operations.md shows ("Several relays behind nginx"), as written:
// only what cannot be the same on a test machine is changed (the upstream
// servers become the test's relays, `listen 443 ssl` a loopback port, log
// and temp paths the test's own directory). So a test through this nginx
// tests the documented configuration.
//
//   const nginx = await startNginx({ upstreams: [relayA.port, relayB.port] });
//   nginx.url('/healthz')  nginx.wsUrl('/ws?token=...')
//   await nginx.stop();
//
// Runs as whoever runs the test (an unprivileged user), with its own prefix,
// in the foreground as our child, stopped by PID.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep } = require('./cluster');

const repoRoot = path.resolve(__dirname, '..', '..');
const docsFile = path.join(repoRoot, 'docs', 'operations.md');

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

// The first ```nginx block of docs/operations.md.
function documentedConfig() {
  const text = fs.readFileSync(docsFile, 'utf8');
  const m = text.match(/```nginx\n([\s\S]*?)```/);
  if (!m) throw new Error(`no nginx block in ${docsFile}`);
  return m[1];
}

// The documented configuration, made to run here: upstream servers are the
// given ports (each keeps the parameters the docs give their first server),
// the server listens on 127.0.0.1:port without TLS, logs go to dir.
function testConfig(doc, { upstreams, port, dir }) {
  const lines = doc.split('\n');
  const out = [];
  let serversDone = false;
  for (const line of lines) {
    const server = line.match(/^(\s*)server\s+127\.0\.0\.1:\d+(.*;.*)$/);
    if (server) {
      if (!serversDone) {
        for (const p of upstreams) out.push(`${server[1]}server 127.0.0.1:${p}${server[2]}`);
        serversDone = true;
      }
      continue;
    }
    if (/^\s*listen\s/.test(line)) {
      out.push(line.replace(/listen\s+[^;]*;/, `listen 127.0.0.1:${port};`));
      continue;
    }
    if (/^\s*ssl_/.test(line)) continue;
    out.push(line.replace(/\/var\/log\/nginx\//g, `${dir}/`));
  }
  if (!serversDone) throw new Error('the documented configuration has no upstream server line');
  return out.join('\n');
}

class Nginx {
  constructor(opts) {
    this.opts = opts;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-nginx-'));
    this.artifactsDir = opts.artifactsDir || process.env.ARTIFACTS_DIR || null;
    this.name = opts.name || 'nginx';
  }

  url(p = '/') { return `http://127.0.0.1:${this.port}${p}`; }
  wsUrl(p = '/ws') { return `ws://127.0.0.1:${this.port}${p}`; }
  log() {
    try { return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8'); } catch { return ''; }
  }

  async start() {
    this.port = this.opts.port || await freePort();
    const d = this.dir;
    for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(d, t));
    const site = testConfig(documentedConfig(), { upstreams: this.opts.upstreams, port: this.port, dir: d });
    this.conf = path.join(d, 'nginx.conf');
    fs.writeFileSync(this.conf, [
      'worker_processes 1;',
      `pid ${d}/nginx.pid;`,
      `error_log ${d}/error.log info;`,
      'events { worker_connections 4096; }',
      'http {',
      `  client_body_temp_path ${d}/client_body;`,
      `  proxy_temp_path ${d}/proxy;`,
      `  fastcgi_temp_path ${d}/fastcgi;`,
      `  uwsgi_temp_path ${d}/uwsgi;`,
      `  scgi_temp_path ${d}/scgi;`,
      `  access_log ${d}/access.log;`,
      site,
      '}',
      '',
    ].join('\n'));
    const bin = process.env.NGINX_BIN || '/usr/sbin/nginx';
    // -e: the compiled-in error log (/var/log/nginx) is not ours to write
    execFileSync(bin, ['-t', '-q', '-e', path.join(d, 'error.log'), '-p', d, '-c', this.conf], { stdio: 'pipe' });
    const log = fs.openSync(path.join(d, 'stderr.log'), 'a');
    this.child = spawn(bin, ['-e', path.join(d, 'error.log'), '-p', d, '-c', this.conf, '-g', 'daemon off;'],
      { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    live.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      live.delete(this.child);
      this.exitStatus = { code, signal };
      resolve(this.exitStatus);
    }));
    await this.waitListening();
    return this;
  }

  async waitListening(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitStatus) throw new Error(`nginx exited ${JSON.stringify(this.exitStatus)}:\n${this.log()}`);
      try {
        const r = await fetch(this.url('/nginx-test-probe'));
        await r.text();
        return;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`nginx not listening in time:\n${this.log()}`);
      await sleep(50);
    }
  }

  // The access log lines so far (to check what nginx kept of requests).
  accessLog() {
    const files = fs.readdirSync(this.dir).filter((f) => f.endsWith('.log') && !['error.log', 'stderr.log'].includes(f));
    return files.map((f) => fs.readFileSync(path.join(this.dir, f), 'utf8')).join('');
  }

  async stop(timeoutMs = 10000) {
    if (this.child && !this.exitStatus) {
      process.kill(this.child.pid, 'SIGTERM');   // fast: a WebSocket would hold a graceful stop forever
      const timer = setTimeout(() => { try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.artifactsDir) {
      fs.mkdirSync(this.artifactsDir, { recursive: true });
      for (const f of ['error.log', 'nginx.conf']) {
        try { fs.copyFileSync(path.join(this.dir, f), path.join(this.artifactsDir, `${this.name}-${f}`)); } catch { /* none */ }
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function startNginx(opts) {
  return new Nginx(opts).start();
}

module.exports = { startNginx, testConfig, documentedConfig };
