'use strict';
// Where the relay listens: exactly the --bind address (ss shows it), only
// numeric addresses it can bind (else a clear error at start), and
// --metrics-bind moving /metrics to a listener of its own.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { execFileSync } = require('node:child_process');
const { startCluster, freePort } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, getJson, withRelay } = require('./common');

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'listen' });
});

test.after(async () => {
  await pg?.stop();
});

// The local addresses of the listening TCP sockets on port, as ss prints them.
function listening(port) {
  return execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' })
    .split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
}

// Starts a relay that must refuse to start (within 10 s); returns its log.
async function refusal(args, opts = {}) {
  const relay = await startRelay({ cluster: pg, secret: SECRET, args, wait: false, ...opts });
  const timer = setTimeout(() => relay.signal('SIGKILL'), 10000);
  const status = await relay.exited;
  clearTimeout(timer);
  const log = relay.log();
  relay.cleanup();
  assert.deepEqual(status, { code: 2, signal: null }, log);
  return log;
}

test('--bind 127.0.0.1 listens on 127.0.0.1 only, not on every address', async () => {
  await withRelay({ cluster: pg, bind: '127.0.0.1', name: 'bind-v4' }, async (relay) => {
    assert.deepEqual(listening(relay.port), [`127.0.0.1:${relay.port}`]);
    assert.equal((await getJson(relay.url('/healthz'))).status, 200);
  });
});

test('--bind 0.0.0.0 is every IPv4 address', async () => {
  await withRelay({ cluster: pg, bind: '0.0.0.0', name: 'bind-any4' }, async (relay) => {
    assert.deepEqual(listening(relay.port), [`0.0.0.0:${relay.port}`]);
  });
});

test('host names, interface names and addresses it cannot bind are refused at start', async () => {
  assert.match(await refusal(['--bind', 'localhost']),
    /--bind localhost: not a numeric IPv4 or IPv6 address .*host and interface names are not accepted/);
  assert.match(await refusal(['--bind', 'lo']), /--bind lo: not a numeric/);
  // TEST-NET-3: on no machine
  assert.match(await refusal(['--bind', '203.0.113.254']),
    /--bind: cannot listen on 203\.0\.113\.254 port \d+: Cannot assign requested address/);
  const taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    assert.match(await refusal([], { port: taken.address().port }),
      /--bind: cannot listen on 127\.0\.0\.1 port \d+: Address already in use/);
  } finally {
    taken.close();
  }
});

test('--metrics-bind serves /metrics and /healthz there, and /metrics no longer on the main listener', async () => {
  const mport = await freePort();
  await withRelay({ cluster: pg, name: 'metrics-bind', args: ['--metrics-bind', `127.0.0.1:${mport}`] }, async (relay) => {
    const admin = (p) => `http://127.0.0.1:${mport}${p}`;
    assert.deepEqual(listening(mport), [`127.0.0.1:${mport}`]);
    assert.equal((await getJson(relay.url('/metrics'))).status, 404);
    assert.equal((await getJson(relay.url('/healthz'))).status, 200, 'the main listener keeps /healthz');

    const peer = await Peer.open(relay.wsUrl(`/ws?token=${token('mia')}`));
    await peer.waitFor((m) => m.type === 'state');
    const metrics = await fetch(admin('/metrics'));
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type'), /^text\/plain/);
    assert.match(await metrics.text(), /^presence_relay_connections\{kind="tracked"\} 1$/m);
    const health = await getJson(admin('/healthz'));
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');

    // nothing else there: no snapshot, no tokens, no WebSocket
    assert.equal((await getJson(admin('/online'))).status, 404);
    assert.equal((await getJson(admin('/'))).status, 404);
    await assert.rejects(Peer.open(`ws://127.0.0.1:${mport}/ws?token=${token('mia')}`));
    assert.equal(peer.ws.readyState, 1);
    await peer.close();
  });
});

test('--metrics-bind takes ADDR:PORT or [ADDR]:PORT, and nothing else', async () => {
  const port = await freePort();
  assert.match(await refusal(['--metrics-bind', 'localhost:9090']), /--metrics-bind localhost: not a numeric/);
  assert.match(await refusal(['--metrics-bind', '::1:9090']), /expected ADDR:PORT, or \[ADDR\]:PORT for IPv6/);
  assert.match(await refusal(['--metrics-bind', '127.0.0.1']), /expected ADDR:PORT/);
  assert.match(await refusal(['--metrics-bind', '127.0.0.1:0']), /bad port/);
  assert.match(await refusal(['--metrics-bind', `127.0.0.1:${port}`], { port }),
    /the same address and port as --bind and --port/);
});
