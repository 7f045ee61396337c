'use strict';
// presence-relay seen from another host: the relay runs in a network
// namespace of its own (test/lib/netns.js), this test is the other host on
// the veth link.  --bind must mean exactly that address: with a loopback
// one (and --demo, which mints a token for anyone who asks) the other host
// cannot connect at all; with the namespace's own address it can.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, sleep } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { NetHost } = require('../lib/netns');
const { Peer } = require('../lib/peer');
const { sign } = require('../lib/jwt');

const SECRET = 'netns-test-secret-0123456789abcdef';

let pg;
let host;

test.before(async () => {
  pg = await startCluster({ name: 'netns' });
  host = await NetHost.create();
});

test.after(async () => {
  await host?.close();
  await pg?.stop();
});

const url = (addr, port, p) => `http://${addr.includes(':') ? `[${addr}]` : addr}:${port}${p}`;

// HTTP status of GET url from inside the relay's namespace (curl: 0 when
// nothing answers).
function statusInside(u) {
  try {
    return Number(host.run(['curl', '-s', '-g', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', u]));
  } catch (e) {
    return Number(e.stdout) || 0;
  }
}

// The relay's listening sockets, as ss shows them inside its namespace.
function listening(port) {
  return host.run(['ss', '-Hltn', `sport = :${port}`])
    .split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
}

// Starts a relay in the namespace; waits until it answers /healthz there.
async function relayInside(bind, args = [], probe = bind) {
  const relay = await startRelay({
    db: pg.socketConninfo, secret: SECRET, bind, args, wait: false,
    wrapper: host.wrap([]).join(' '), name: `netns-${bind}`,
  });
  const deadline = Date.now() + 30000;
  while (statusInside(url(probe, relay.port, '/healthz')) !== 200) {
    if (relay.exitStatus || Date.now() > deadline) throw new Error(`relay not healthy:\n${relay.log()}`);
    await sleep(100);
  }
  return relay;
}

async function stop(relay) {
  const status = await relay.stop();
  assert.deepEqual(status, { code: 0, signal: null }, relay.log());
  relay.cleanup();
}

// Does a TCP connection from here to addr:port get refused?  (A refusal is
// an answer: the other host is reachable, nothing listens there.)
async function refusedFromOutside(addr, port) {
  try {
    await fetch(url(addr, port, '/demo/token?user=admin'), { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    return e.cause?.code === 'ECONNREFUSED';
  }
  return false;
}

test('--bind 127.0.0.1 (with --demo): the other host cannot connect', async () => {
  const relay = await relayInside('127.0.0.1', ['--demo']);
  try {
    assert.equal(statusInside(url('127.0.0.1', relay.port, '/demo/token?user=admin')), 200, 'served on loopback');
    assert.ok(await refusedFromOutside(host.v4, relay.port), 'refused on its IPv4 address');
    assert.ok(await refusedFromOutside(host.v6, relay.port), 'refused on its IPv6 address');
    assert.deepEqual(listening(relay.port), [`127.0.0.1:${relay.port}`]);
  } finally {
    await stop(relay);
  }
});

test('--bind ::1: the other host cannot connect either', async () => {
  const relay = await relayInside('::1');
  try {
    assert.deepEqual(listening(relay.port), [`[::1]:${relay.port}`]);
    assert.ok(await refusedFromOutside(host.v4, relay.port));
    assert.ok(await refusedFromOutside(host.v6, relay.port));
  } finally {
    await stop(relay);
  }
});

// The other host uses the relay: /healthz, and a WebSocket that sees a join.
async function usedFromOutside(addr, port) {
  const health = await fetch(url(addr, port, '/healthz'));
  assert.equal(health.status, 200);
  assert.equal((await health.json()).status, 'ok');
  const base = url(addr, port, '').replace(/^http/, 'ws');
  const t = sign({ sub: `far-${port}` }, SECRET);
  const peer = await Peer.open(`${base}/ws?token=${t}`);
  const state = await peer.waitFor((m) => m.type === 'state');
  assert.ok(state.users.some((u) => u.user_id === `far-${port}`));
  await pg.query('SELECT presence.connect($1)', [`near-${port}`]);
  await peer.waitPresence(`near-${port}`, 'online');
  await pg.query('SELECT presence.disconnect($1)', [`near-${port}`]);
  await peer.close();
}

test('--bind on its IPv4 address: the other host connects, over HTTP and WebSocket; loopback does not', async () => {
  const relay = await relayInside(host.v4);
  try {
    assert.deepEqual(listening(relay.port), [`${host.v4}:${relay.port}`]);
    await usedFromOutside(host.v4, relay.port);
    assert.equal(statusInside(url('127.0.0.1', relay.port, '/healthz')), 0, 'nothing on its loopback');
    assert.ok(await refusedFromOutside(host.v6, relay.port), 'nor on its IPv6 address');
  } finally {
    await stop(relay);
  }
});

test('--bind on its IPv6 address: the same, in IPv6', async () => {
  const relay = await relayInside(host.v6);
  try {
    assert.deepEqual(listening(relay.port), [`[${host.v6}]:${relay.port}`]);
    await usedFromOutside(host.v6, relay.port);
    assert.ok(await refusedFromOutside(host.v4, relay.port));
  } finally {
    await stop(relay);
  }
});

test('--metrics-bind 127.0.0.1: /metrics stays inside while the relay serves the other host', async () => {
  const relay = await relayInside(host.v4, ['--metrics-bind', '127.0.0.1:9464']);
  try {
    assert.deepEqual(listening(9464), ['127.0.0.1:9464']);
    assert.equal(statusInside(url('127.0.0.1', 9464, '/metrics')), 200);
    assert.ok(await refusedFromOutside(host.v4, 9464), 'the metrics port is not reachable from outside');
    assert.equal((await fetch(url(host.v4, relay.port, '/metrics'))).status, 404);
    await usedFromOutside(host.v4, relay.port);
  } finally {
    await stop(relay);
  }
});
