'use strict';
// Debian's nginx as a reverse proxy in front of a relay, for tests: one
// process in the foreground (no master, no daemon), its files in a temp
// dir, listening on 127.0.0.1 at a free port, stopped by PID.  It sets
// X-Real-IP and X-Forwarded-For as docs/operations.md tells operators to.
//
//   const proxy = await startNginx({ upstreamPort: relay.port });
//   proxy.wsUrl('/ws')  ...  await proxy.stop();

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep } = require('./cluster');

const NGINX = process.env.NGINX || '/usr/sbin/nginx';

function config(dir, port, upstreamPort) {
  const t = (name) => path.join(dir, name);
  return `
daemon off;
master_process off;
pid ${t('nginx.pid')};
error_log ${t('error.log')} info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${t('body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
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
  }
}
`;
}

async function startNginx({ upstreamPort }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-nginx-'));
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, config(dir, port, upstreamPort));
  const log = fs.openSync(path.join(dir, 'out.log'), 'a');
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')],
    { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = null;
  const done = new Promise((resolve) => child.once('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const killOnExit = () => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } };
  process.on('exit', killOnExit);
  const readLog = () => ['out.log', 'error.log'].map((f) => {
    try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch { return ''; }
  }).join('');

  // listening?
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited) throw new Error(`nginx exited ${JSON.stringify(exited)}:\n${readLog()}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen:\n${readLog()}`);
    await sleep(50);
  }

  return {
    port,
    url: (p = '/') => `http://127.0.0.1:${port}${p}`,
    wsUrl: (p = '/ws') => `ws://127.0.0.1:${port}${p}`,
    log: readLog,
    async stop() {
      if (!exited) {
        process.kill(child.pid, 'SIGTERM');
        const timer = setTimeout(killOnExit, 10000);
        await done;
        clearTimeout(timer);
      }
      process.removeListener('exit', killOnExit);
      fs.rmSync(dir, { recursive: true, force: true });
      return exited;
    },
  };
}

module.exports = { startNginx };
