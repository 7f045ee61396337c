'use strict';
// Staying up: PostgreSQL restarts and lost links, a crashed relay, slow
// clients, --max-connections, and SIGTERM.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const common = require('./common');
const { SECRET, GUCS, token, getJson, metric, eventually, logTimes } = common;
const net = require('node:net');

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'resilience' });
});

test.after(async () => {
  await pg?.stop();
});

const withRelay = (opts, fn) => common.withRelay({ cluster: pg, ...opts }, fn);

test('a PostgreSQL restart is survived: clients stay, get a fresh state, sessions come back', async () => {
  await withRelay({ name: 'restart' }, async (relay) => {
    const alice = await Peer.open(relay.wsUrl(`/ws?token=${token('alice')}`));
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    await alice.waitFor((m) => m.type === 'state');

    await pg.stopServer('fast');
    assert.equal((await relay.waitHealthy([503], 10000)), 503, '/healthz reports the link down');
    assert.equal((await getJson(relay.url('/healthz'))).body.database, 'down');
    assert.equal(await metric(relay, 'presence_relay_db_up'), 0);
    assert.equal((await getJson(relay.url(`/online?token=${token('r')}`))).status, 503);
    await pg.start();
    await relay.waitHealthy([200], 20000);

    const fresh = await watcher.waitFor((m) => m.type === 'state', 10000, 'a fresh state');
    await alice.waitFor((m) => m.type === 'state', 10000, 'a fresh state');
    assert.ok(fresh.users.some((u) => u.user_id === 'alice' && u.status === 'online'), JSON.stringify(fresh));
    await eventually(async () => (await pg.query("SELECT 1 FROM presence.sessions('alice')")).rows.length === 1,
      5000, 'alice re-registered');
    assert.equal(alice.ws.readyState, 1);
    assert.equal(watcher.ws.readyState, 1);
    assert.ok(await metric(relay, 'presence_relay_db_reconnects_total') >= 1);

    // and the feed flows again
    const bob = await Peer.open(relay.wsUrl(`/ws?token=${token('bob')}`));
    await watcher.waitPresence('bob', 'online');
    await bob.close();
    await watcher.waitPresence('bob', 'offline');
    await alice.close();
    await watcher.close();
  });
});

// A port nobody listens on: bound, then closed.
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// A restarted server or a promoted standby gives the relay's users
// presence.reconnect_grace (5 s by default) before showing them offline:
// the relay's tries must come closer together than that, jitter included
// (docs/operations.md, "Standby and failover": at most 1.65 s).
test('the relay retries a database it cannot reach at least every 2 s', async () => {
  const port = await closedPort();
  const r = await startRelay({ secret: SECRET, name: 'retry-pace', expectDb: false,
    db: `host=127.0.0.1 port=${port} dbname=postgres user=presence_relay` });
  try {
    const fails = /database link: cannot connect/;
    // past the table's growth (100, 250, 500, 1000 ms): at its cap
    const times = await eventually(() => { const t = logTimes(r, fails); return t.length >= 10 && t; },
      30000, 'ten tries');
    const gaps = times.slice(1).map((x, i) => x - times[i]);
    assert.ok(Math.max(...gaps) < 2000, `intervals between tries (ms): ${gaps.join(', ')}`);
    assert.ok(Math.max(...gaps.slice(4)) >= 1000, `the backoff grew: ${gaps.join(', ')}`);
    assert.equal((await getJson(r.url('/healthz'))).status, 503);
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
  }
});

test('a crash-restart of PostgreSQL is survived too', async () => {
  await withRelay({ name: 'crash' }, async (relay) => {
    const carol = await Peer.open(relay.wsUrl(`/ws?token=${token('carol')}`));
    await carol.waitFor((m) => m.type === 'state');
    await pg.restart('immediate');
    const fresh = await carol.waitFor((m) => m.type === 'state', 20000, 'a fresh state');
    assert.ok(fresh.users.some((u) => u.user_id === 'carol'), JSON.stringify(fresh));
    assert.equal(carol.ws.readyState, 1);
    await carol.close();
  });
});

test('a killed database backend is a lost link: reconnected, nothing lost', async () => {
  await withRelay({ name: 'terminate' }, async (relay) => {
    const dave = await Peer.open(relay.wsUrl(`/ws?token=${token('dave')}`));
    await dave.waitFor((m) => m.type === 'state');
    const { rows } = await pg.query(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'presence-relay'");
    assert.equal(rows.length, 1);
    const fresh = await dave.waitFor((m) => m.type === 'state', 10000, 'a fresh state');
    assert.ok(fresh.users.some((u) => u.user_id === 'dave'));
    await eventually(async () => (await pg.query("SELECT 1 FROM presence.sessions('dave')")).rows.length === 1,
      5000, 'dave re-registered');
    await dave.close();
  });
});

test('a crashed relay leaves no ghosts: its sessions end with its connection', async () => {
  const relay = await startRelay({ cluster: pg, secret: SECRET, name: 'killed' });
  const listener = await pg.client();
  const seen = [];
  listener.on('notification', (n) => seen.push(JSON.parse(n.payload)));
  await listener.query('LISTEN presence');
  const erin = await Peer.open(relay.wsUrl(`/ws?token=${token('erin')}`));
  await erin.waitFor((m) => m.type === 'state');
  relay.signal('SIGKILL');
  await relay.exited;
  await eventually(() => seen.some((m) => m.user_id === 'erin' && m.status === 'offline'), 10000, 'erin offline');
  assert.equal((await pg.query("SELECT presence.status('erin') AS s")).rows[0].s, 'offline');
  await listener.end();
  await relay.stop();
});

test('a slow client is closed with 1008 while the others keep receiving', async () => {
  await withRelay({ name: 'slow', args: ['--queue-length', '64'] }, async (relay) => {
    const fast = await Peer.open(relay.wsUrl(`/ws?token=${token('fast')}`));
    const slow = await Peer.open(relay.wsUrl(`/ws?token=${token('slow')}`));
    await fast.waitFor((m) => m.type === 'state');
    await slow.waitFor((m) => m.type === 'state');
    slow.ws._socket.pause(); // stops reading: the kernel buffers fill, then lws's

    // enough changes (long user ids) to fill the socket buffers many times
    const N = 12000;
    const pad = 'p'.repeat(200);
    await pg.query(`SELECT presence.connect('${pad}' || i) FROM generate_series(1, ${N}) i`);
    await eventually(async () => await metric(relay, 'presence_relay_slow_clients_dropped_total') >= 1,
      60000, 'the slow client dropped');
    slow.ws._socket.resume();
    assert.equal((await slow.closed).code, 1008);

    // the fast one got every change, in order
    await eventually(() => fast.messages.filter((m) => m.type === 'presence').length >= N, 60000, 'all changes');
    const seqs = fast.messages.filter((m) => m.type === 'presence').map((m) => m.seq);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), 'in seq order');
    assert.equal(fast.ws.readyState, 1);
    await pg.query(`SELECT presence.disconnect('${pad}' || i) FROM generate_series(1, ${N}) i`);
    await eventually(() => fast.messages.filter((m) => m.type === 'presence').length >= 2 * N, 60000, 'all leaves');
    await fast.close();
  });
});

test('a client owed more than --max-client-backlog bytes of changes is closed with 1008', async () => {
  // a ring long enough that only the byte cap can act
  await withRelay({ name: 'abuse-backlog', args: ['--queue-length', '100000', '--max-client-backlog', '200000'] },
    async (relay) => {
      const fast = await Peer.open(relay.wsUrl(`/ws?token=${token('backlog-fast')}`));
      const slow = await Peer.open(relay.wsUrl(`/ws?token=${token('backlog-slow')}`));
      await Promise.all([fast, slow].map((p) => p.waitFor((m) => m.type === 'state')));
      slow.ws._socket.pause();
      // more than the kernel's socket buffers take in, so that the socket chokes
      const N = 12000;
      const pad = 'b'.repeat(200);
      await pg.query(`SELECT presence.connect('${pad}' || i, 's') FROM generate_series(1, ${N}) i`);
      await eventually(async () => await metric(relay, 'presence_relay_slow_clients_dropped_total') >= 1,
        60000, 'the slow client dropped');
      assert.match(relay.log(), /closing a client owed more than 200000 bytes/);
      slow.ws._socket.resume();
      assert.equal((await slow.closed).code, 1008);
      await eventually(() => fast.messages.filter((m) => m.type === 'presence' && m.user_id.startsWith(pad)).length >= N,
        60000, 'all changes to the client that reads');
      await pg.query(`SELECT presence.disconnect('${pad}' || i, 's') FROM generate_series(1, ${N}) i`);
      // their offline changes too, so that the next test's relay is not flooded by them
      await eventually(() => fast.messages.filter((m) => m.type === 'presence' && m.user_id.startsWith(pad) &&
        m.status === 'offline').length >= N, 60000, 'all leaves');
      await fast.close();
    });
});

test('a client that answers no ping is dropped; one that does stays', async () => {
  await withRelay({ name: 'ping', args: ['--ping-interval', '1'] }, async (relay) => {
    const live = await Peer.open(relay.wsUrl(`/ws?token=${token('live')}`));
    let pings = 0;
    live.ws.on('ping', () => { pings += 1; });
    // quiet counts from the upgrade, whenever its state comes
    const t0 = Date.now();
    const mute = await Peer.open(relay.wsUrl(`/ws?token=${token('mute')}`), { autoPong: false });
    await Promise.all([live, mute].map((p) => p.waitFor((m) => m.type === 'state')));
    const { code } = await mute.closed;
    const after = Date.now() - t0;
    // quiet for 1 s: pinged; quiet for 7/3 s: dropped (looked at every 250 ms)
    assert.ok(after >= 2000 && after < 8000, `dropped after ${after} ms`);
    assert.equal(code, 1006, 'no close frame for a client that reads nothing');
    assert.ok(pings >= 2, `the live client was pinged (${pings})`);
    assert.equal(live.ws.readyState, 1, 'and it stays');
    await live.close();
  });
});

test('--max-connections refuses the one too many with 503', async () => {
  await withRelay({ name: 'max', args: ['--max-connections', '3', '--allow-anonymous'] }, async (relay) => {
    const peers = await Promise.all([1, 2, 3].map(() => Peer.open(relay.wsUrl('/ws'))));
    assert.equal(await Peer.refused(relay.wsUrl('/ws')), 503);
    await peers[0].close();
    await eventually(async () => (await getJson(relay.url('/healthz'))).body.connections === 2, 5000, 'one gone');
    const again = await Peer.open(relay.wsUrl('/ws'));
    await again.waitFor((m) => m.type === 'state');
    await Promise.all([again, ...peers.slice(1)].map((p) => p.close()));
  });
});

test('SIGTERM closes every client with 1001 and exits 0', async () => {
  const relay = await startRelay({ cluster: pg, secret: SECRET, name: 'sigterm' });
  const peers = await Promise.all(['t1', 't2', 't3'].map((u) => Peer.open(relay.wsUrl(`/ws?token=${token(u)}`))));
  await Promise.all(peers.map((p) => p.waitFor((m) => m.type === 'state')));
  const t0 = Date.now();
  const status = await relay.stop();
  assert.deepEqual(status, { code: 0, signal: null });
  assert.ok(Date.now() - t0 < 5000, 'promptly');
  for (const p of peers) assert.equal((await p.closed).code, 1001);
  assert.match(relay.log(), /shutting down: closing 3 client/);
});
