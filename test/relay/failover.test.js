'use strict';
// The database link over TCP with a multi-host conninfo, as in production:
// libpq tries each host in turn, each on a socket of its own, and
// target_session_attrs=read-write passes over a standby.  The relay must
// end on the primary, come back to it after a restart, get past a host that
// never answers, and follow a promotion.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { startCluster, freePort } = require('../lib/cluster');
const { Peer } = require('../lib/peer');
const { spawnOwned } = require('../lib/programs');
const { GUCS, token, metric, eventually, withRelay } = require('./common');

let primary;
let standby;

test.before(async () => {
  primary = await startCluster({ gucs: GUCS, name: 'failover' });
  standby = await primary.startStandby({ name: 'failover-standby' });
});

test.after(async () => {
  await standby?.stop();
  await primary?.stop();
});

// A conninfo naming each server (a cluster or just {port}) on 127.0.0.1.
function multiHost(servers, extra = '') {
  return `host=${servers.map(() => '127.0.0.1').join(',')} ` +
    `port=${servers.map((s) => s.port).join(',')} ` +
    `user=postgres dbname=postgres target_session_attrs=read-write ${extra}`;
}

// The client addresses of the relay's connections to one server.
async function relayOn(cluster) {
  const { rows } = await cluster.query(
    "SELECT host(client_addr) AS addr FROM pg_stat_activity WHERE application_name = 'presence-relay'",
    [], 'postgres');
  return rows.map((r) => r.addr);
}

// The feed flows from `server`: a change made there reaches `peer`.
async function feedFlows(server, peer, user) {
  await server.query('SELECT presence.connect($1)', [user]);
  await peer.waitPresence(user, 'online');
  await server.query('SELECT presence.disconnect($1)', [user]);
  await peer.waitPresence(user, 'offline');
}

test('a standby listed first is passed over: the relay ends on the primary, and returns to it after a restart', async () => {
  assert.equal(await standby.inRecovery(), true);
  await withRelay({ db: multiHost([standby, primary]), name: 'standby-first' }, async (relay) => {
    assert.deepEqual(await relayOn(primary), ['127.0.0.1'], 'on the primary, over TCP');
    assert.deepEqual(await relayOn(standby), []);
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    await feedFlows(primary, watcher, 'amy');

    await primary.stopServer('fast');
    await relay.waitHealthy([503], 10000);
    // meanwhile it reaches the standby and leaves it, as it must
    await eventually(() => /read-only/.test(relay.log()), 10000, 'the standby refused as read-only');
    await primary.start();
    await relay.waitHealthy([200], 20000);
    await watcher.waitFor((m) => m.type === 'state', 10000, 'a fresh state');
    assert.deepEqual(await relayOn(primary), ['127.0.0.1']);
    assert.deepEqual(await relayOn(standby), []);
    await feedFlows(primary, watcher, 'ben');
    await watcher.close();
  });
});

test('a dead port listed first is skipped', async () => {
  const dead = { port: await freePort() };
  await withRelay({ db: multiHost([dead, primary]), name: 'dead-first' }, async (relay) => {
    assert.deepEqual(await relayOn(primary), ['127.0.0.1']);
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    await feedFlows(primary, watcher, 'cat');
    await watcher.close();
  });
});

// A port whose accept queue is full, so the kernel drops further SYNs, as a
// host that is down behind a router does: its listener (backlog 1) is a
// stopped process that never accepts, and two connections fill its queue.
async function blackHole() {
  const port = await freePort();
  const child = spawnOwned(process.execPath, ['-e',
    `require('net').createServer().listen({ port: ${port}, host: '127.0.0.1', backlog: 1 },
       () => process.kill(process.pid, 'SIGSTOP'))`], { stdio: 'ignore' });
  const stopped = () => {
    try { return fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1][0] === 'T'; } catch { return false; }
  };
  await eventually(stopped, 10000, 'the listener stopped');
  const fillers = [];
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, '127.0.0.1');
    fillers.push(s);
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  }
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

// A relay on [silent, primary] with connect_timeout=2 must be up on the
// primary after 2 s and some, its log naming the silent one; then fn(relay).
async function pastSilent(silent, name, fn = async () => {}) {
  const t0 = Date.now();
  await withRelay({ db: multiHost([silent, primary], 'connect_timeout=2'), name }, async (relay) => {
    const took = Date.now() - t0;
    assert.ok(took >= 2000 && took < 9000, `up after ${took} ms`);
    assert.match(relay.log(), new RegExp(`no answer from 127\\.0\\.0\\.1 port ${silent.port} in 2 s`));
    assert.deepEqual(await relayOn(primary), ['127.0.0.1']);
    await fn(relay);
  });
}

test('a host that never answers is given up after connect_timeout, and the next one tried', async () => {
  const hole = await blackHole();
  try {
    await pastSilent(hole, 'black-hole');
  } finally {
    hole.close();
  }
});

test('a server that accepts and then says nothing is given up, and the next attempt starts after it', async () => {
  const held = new Set();   // takes the startup packet, never answers
  const frozen = net.createServer((s) => { held.add(s); s.on('error', () => {}); });
  await new Promise((resolve) => frozen.listen(0, '127.0.0.1', resolve));
  const silent = { port: frozen.address().port };
  try {
    await pastSilent(silent, 'frozen', async (relay) => {
      // a lost link is re-made from the primary on, not from the silent one
      await primary.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'presence-relay'",
        [], 'postgres');
      await eventually(async () => await metric(relay, 'presence_relay_db_reconnects_total') === 1,
        10000, 'reconnected');
      assert.equal(relay.log().match(/no answer from/g).length, 1, relay.log());
    });
  } finally {
    for (const s of held) s.destroy();
    await new Promise((resolve) => frozen.close(resolve));
  }
});

// Last: it leaves the primary stopped and the standby promoted.
test('when the primary is gone and the standby promoted, the relay follows', async () => {
  await withRelay({ db: multiHost([primary, standby]), name: 'promotion' }, async (relay) => {
    assert.deepEqual(await relayOn(primary), ['127.0.0.1']);
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    await primary.stopServer('fast');
    await relay.waitHealthy([503], 10000);
    await standby.promote();
    assert.equal(await standby.inRecovery(), false);
    await relay.waitHealthy([200], 20000);
    await watcher.waitFor((m) => m.type === 'state', 10000, 'a fresh state');
    assert.deepEqual(await relayOn(standby), ['127.0.0.1']);
    await eventually(async () => (await standby.query('SELECT ready FROM presence.stats()')).rows[0].ready,
      10000, 'the promoted server\'s worker ready');
    await feedFlows(standby, watcher, 'dan');
    await watcher.close();
  });
});
