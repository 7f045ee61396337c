'use strict';
// Debian's nginx for tests: the http-block configuration given, in a temp
// prefix of its own (pid, logs, temp files), in the foreground as our
// child, stopped by PID.
//
//   const nginx = await startNginx((dir) => httpBlock, port);  // it listens on 127.0.0.1:port
//   (dir: its prefix, for the logs the block names)  nginx.errorLog()  await nginx.stop();

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep } = require('./cluster');
const { findProgram, spawnOwned, stopChild } = require('./programs');

const repoRoot = path.resolve(__dirname, '..', '..');

const listening = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});

class Nginx {
  constructor(name) {
    this.name = name;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-nginx-'));
    this.artifactsDir = process.env.ARTIFACTS_DIR || null;
  }

  errorLog() {
    try { return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8'); } catch { return ''; }
  }

  async start(makeBlock, port) {
    const d = this.dir;
    const httpBlock = makeBlock(d);
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
      .map((t) => `    ${t}_temp_path ${d}/${t};\n`).join('');
    fs.writeFileSync(path.join(d, 'nginx.conf'),
      `pid ${d}/nginx.pid;\nerror_log ${d}/error.log info;\nworker_processes 1;\n` +
      `events { worker_connections 256; }\nhttp {\n${temp}    access_log off;\n${httpBlock}\n}\n`);
    this.child = spawnOwned(findProgram('nginx', 'NGINX'),
      ['-p', d, '-e', `${d}/error.log`, '-c', `${d}/nginx.conf`, '-g', 'daemon off;'], { stdio: 'ignore' });
    const deadline = Date.now() + 10000;
    while (!(await listening(port))) {
      if (this.child.exitStatus) {
        throw new Error(`nginx exited ${JSON.stringify(this.child.exitStatus)}:\n${this.errorLog()}`);
      }
      if (Date.now() > deadline) throw new Error(`nginx did not listen:\n${this.errorLog()}`);
      await sleep(50);
    }
    return this;
  }

  // SIGQUIT (graceful), SIGKILL after 10 s.
  async stop() {
    if (this.child) await stopChild(this.child, 'SIGQUIT');
    if (this.artifactsDir) {
      fs.mkdirSync(this.artifactsDir, { recursive: true });
      for (const f of fs.readdirSync(this.dir).filter((n) => n.endsWith('.log'))) {
        fs.copyFileSync(path.join(this.dir, f), path.join(this.artifactsDir, `${this.name}-${f}`));
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function startNginx(makeBlock, port, name = 'nginx') {
  const n = new Nginx(name);
  try {
    return await n.start(makeBlock, port);
  } catch (e) {
    await n.stop();
    throw e;
  }
}


// A single relay behind nginx, with the headers docs/operations.md tells
// operators to set (X-Real-IP, X-Forwarded-For), for --trusted-proxy tests.
//
//   const proxy = await startProxy({ upstreamPort: relay.port });
//   proxy.wsUrl('/ws')  proxy.log()  await proxy.stop();
async function startProxy({ upstreamPort }) {
  const port = await freePort();
  const block = () => `
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
      listen 127.0.0.1:${port};
      location / {
        proxy_pass http://127.0.0.1:${upstreamPort};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout 1h;
      }
    }`;
  const nginx = await startNginx(block, port, 'proxy');
  return {
    port,
    url: (p = '/') => `http://127.0.0.1:${port}${p}`,
    wsUrl: (p = '/ws') => `ws://127.0.0.1:${port}${p}`,
    log: () => nginx.errorLog(),
    stop: () => nginx.stop(),
  };
}

// The nginx block of docs/operations.md ("Several relays behind nginx") as
// written, changed only where a test machine must differ: it listens on
// 127.0.0.1:port without TLS, logs into dir, and its upstream servers are
// the relays on relayPorts (the documented lines, parameters and all, with
// the ports replaced; documented lines beyond the relays are dropped, so
// they must all say the same but for the port).
function operationsBlock(dir, port, relayPorts) {
  const text = fs.readFileSync(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const block = text.slice(text.indexOf('\n## Several relays behind nginx\n')).match(/```nginx\n([\s\S]*?)```/)[1];
  const servers = [...block.matchAll(/^(\s*server 127\.0\.0\.1:)(\d+)([^;\n]*;.*)\n/gm)];
  assert.ok(servers.length >= relayPorts.length, `the documented upstream has ${servers.length} servers`);
  assert.equal(new Set(servers.map((m) => m[3])).size, 1, 'the documented servers differ by their port only');
  let conf = block
    .replace(/listen 443 ssl;/, `listen 127.0.0.1:${port};`)
    .replace(/^\s*ssl_certificate.*\n/gm, '')
    .replace('/var/log/nginx/presence.log', `${dir}/presence.log`);
  servers.forEach((m, i) => {
    conf = conf.replace(m[0], i < relayPorts.length ? `${m[1]}${relayPorts[i]}${m[3]}\n` : '');
  });
  assert.doesNotMatch(conf, /ssl|\/var\/log/);
  return conf;
}

module.exports = { startNginx, startProxy, operationsBlock };
