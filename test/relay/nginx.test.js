'use strict';
// The nginx configuration of docs/operations.md, as written (but on a
// loopback port without TLS), run by Debian's nginx in front of three
// relays: WebSockets go through and are spread, the access log keeps no
// token, /metrics and /demo/token are refused.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startCluster, freePort } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { startNginx, operationsBlock } = require('../lib/nginx');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, getJson, eventually } = require('./common');

let pg;
let relays = [];
let nginx;
let port;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'nginx' });
  for (const i of [1, 2, 3]) {
    relays.push(await startRelay({ cluster: pg, secret: SECRET, name: `nginx-relay-${i}` }));
  }
  port = await freePort();
  nginx = await startNginx((dir) => operationsBlock(dir, port, relays.map((r) => r.port)), port);
});

test.after(async () => {
  await nginx?.stop();
  for (const r of relays) {
    assert.deepEqual(await r.stop(), { code: 0, signal: null }, r.log());
    r.cleanup();
  }
  await pg?.stop();
});

const through = (p) => `http://127.0.0.1:${port}${p}`;

test('WebSockets go through nginx, spread over the relays, and get the changes', async () => {
  const tokens = ['n1', 'n2', 'n3'].map((u) => token(u));
  const peers = [];
  for (const t of tokens) {
    const p = await Peer.open(`ws://127.0.0.1:${port}/ws?token=${t}`);
    await p.waitFor((m) => m.type === 'state');
    peers.push(p);
  }
  // least_conn: one each
  const counts = await Promise.all(relays.map(async (r) => (await getJson(r.url('/healthz'))).body.connections));
  assert.deepEqual(counts, [1, 1, 1]);
  await pg.query("SELECT presence.connect('through-nginx')");
  await Promise.all(peers.map((p) => p.waitPresence('through-nginx', 'online')));
  await pg.query("SELECT presence.disconnect('through-nginx')");
  await Promise.all(peers.map((p) => p.close()));

  // logged, without the tokens
  const log = await eventually(() => {
    const l = fs.readFileSync(path.join(nginx.dir, 'presence.log'), 'utf8');
    return l.split('\n').filter((x) => x.includes('"GET /ws HTTP/1.1" 101')).length === 3 && l;
  }, 5000, 'three WebSocket requests in the access log');
  assert.doesNotMatch(log, /token/);
  for (const t of tokens) assert.ok(!log.includes(t.split('.')[1]), 'no token in the access log');
});

test('/healthz goes through; /metrics and /demo/token do not', async () => {
  assert.equal((await getJson(through('/healthz'))).status, 200);
  assert.equal((await getJson(through('/metrics'))).status, 404);
  assert.equal((await fetch(through('/metrics'))).headers.get('server')?.startsWith('nginx'), true, 'refused by nginx');
  assert.equal((await getJson(through('/demo/token?user=admin'))).status, 404);
});
