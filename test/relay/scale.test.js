'use strict';
// A thousand concurrent clients on one relay: all tracked, all fed, kept
// alive by batched heartbeats, and all gone when they close.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, bearer, getJson, metric, eventually } = require('./common');

const N = 1000;

test('1,000 concurrent clients', async (t) => {
  const pg = await startCluster({ gucs: GUCS, name: 'scale' });
  // every client comes from 127.0.0.1: no per-address cap here
  const relay = await startRelay({ cluster: pg, secret: SECRET, name: 'scale', args: ['--max-connections-per-ip', '0'] });
  try {
    const watcher = await Peer.open(relay.wsUrl('/ws'), bearer(token('watcher')));
    await watcher.waitFor((m) => m.type === 'state');

    const t0 = Date.now();
    const peers = await Promise.all(Array.from({ length: N }, (_, i) =>
      Peer.open(relay.wsUrl(`/ws?token=${token(`user-${i}`)}`))));
    await Promise.all(peers.map((p) => p.waitFor((m) => m.type === 'state', 30000)));
    const joined = new Set();
    await eventually(() => {
      for (const m of watcher.messages) if (m.type === 'presence' && m.status === 'online') joined.add(m.user_id);
      return joined.size >= N;
    }, 30000, 'the watcher to see every join');
    const elapsed = Date.now() - t0;

    const online = await getJson(relay.url('/online'), bearer(token('reader')));
    assert.equal(online.body.users.length, N + 1);
    assert.equal(await metric(relay, 'presence_relay_connections{kind="tracked"}'), N + 1);
    assert.equal((await pg.query('SELECT count(*)::int AS n FROM presence.sessions()')).rows[0].n, N + 1);

    // past session_timeout: still there, on one heartbeat query a second
    const b0 = await metric(relay, 'presence_relay_heartbeat_batches_total');
    await new Promise((r) => setTimeout(r, 3500));
    const b1 = await metric(relay, 'presence_relay_heartbeat_batches_total');
    assert.ok(b1 - b0 <= 5, `${b1 - b0} heartbeat queries in 3.5 s for ${N} sockets`);
    assert.equal((await pg.query('SELECT count(*)::int AS n FROM presence.sessions()')).rows[0].n, N + 1);

    // a change reaches all of them
    await pg.query("SELECT presence.connect('broadcast')");
    await Promise.all(peers.map((p) => p.waitPresence('broadcast', 'online', 20000)));

    await Promise.all(peers.map((p) => p.close()));
    await eventually(async () => (await pg.query('SELECT count(*)::int AS n FROM presence.sessions()')).rows[0].n === 2,
      20000, 'every session ended');
    await eventually(() => watcher.messages.filter((m) => m.type === 'presence' && m.status === 'offline').length >= N,
      20000, 'the watcher to see every leave');
    t.diagnostic(`${N} clients connected, tracked and seen by a watcher in ${elapsed} ms`);
    await watcher.close();
  } finally {
    const status = await relay.stop();
    await pg.stop();
    assert.deepEqual(status, { code: 0, signal: null });
  }
});
