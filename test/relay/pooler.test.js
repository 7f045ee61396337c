'use strict';
// Behind pgbouncer (Debian's) in transaction mode: the write and read
// functions work (pgbench), LISTEN is accepted and delivers nothing, and a
// relay behind it notices (its log, /healthz 503), and moves on to a direct
// connection when its conninfo lists one.  In session mode it works.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { startCluster, sleep } = require('../lib/cluster');
const { startPgbouncer } = require('../lib/pgbouncer');
const { Peer } = require('../lib/peer');
const { GUCS, token, eventually, withRelay, healthWhen } = require('./common');

let pg;
let pooler;	// transaction mode

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'pooler' });
  pooler = await startPgbouncer(pg, { poolMode: 'transaction', name: 'pgbouncer-transaction' });
});

test.after(async () => {
  await pooler?.stop();
  await pg?.stop();
});

// A direct LISTEN client keeping what it hears.
async function directListener() {
  const c = await pg.client();
  const heard = [];
  c.on('notification', (n) => heard.push(JSON.parse(n.payload)));
  await c.query('LISTEN presence');
  return { heard, end: () => c.end() };
}

// Each transaction fails (1/0) unless the call before it did its work.
const SCRIPT = `
SELECT presence.connect('pgb-' || :client_id, 'bench');
SELECT presence.heartbeat('pgb-' || :client_id, 'bench', false);
SELECT presence.heartbeat('pgb-' || :client_id, 'bench');
SELECT presence.set_visible('pgb-' || :client_id, true);
SELECT 1 / (presence.status('pgb-' || :client_id) = 'online')::int;
SELECT 1 / presence.is_online('pgb-' || :client_id)::int;
SELECT 1 / (presence.last_active('pgb-' || :client_id) IS NOT NULL)::int;
SELECT 1 / count(*)::int FROM presence.online_users() WHERE user_id = 'pgb-' || :client_id;
SELECT 1 / count(*)::int FROM presence.sessions('pgb-' || :client_id);
SELECT 1 / (users > 0)::int FROM presence.stats();
SELECT 1 / presence.disconnect('pgb-' || :client_id, 'bench')::int;
`;

test('pgbench through the pooler: the write and read functions work', async () => {
  const listener = await directListener();
  const script = path.join(pooler.dir, 'presence.sql');
  fs.writeFileSync(script, SCRIPT);
  const clients = 4;
  const per = 50;
  const out = await new Promise((resolve, reject) => {
    execFile(path.join(pg.bindir, 'pgbench'),
      ['-n', '-h', '127.0.0.1', '-p', String(pooler.port), '-U', 'postgres', '-c', String(clients), '-j', '2',
        '-t', String(per), '-f', script, 'postgres'],
      { timeout: 60000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  assert.match(out, new RegExp(`number of transactions actually processed: ${clients * per}/${clients * per}`));
  assert.match(out, /number of failed transactions: 0 /);
  // seen from a direct connection: every client's user came online, and no session is left
  await eventually(() => [1, 2, 3, 4].every((i) =>
    listener.heard.some((m) => m.user_id === `pgb-${i - 1}` && m.status === 'online')), 10000, 'every pgbench user online');
  const { rows } = await pg.query("SELECT count(*)::int AS n FROM presence.sessions() WHERE user_id LIKE 'pgb-%'");
  assert.equal(rows[0].n, 0);
  await listener.end();
});

test('LISTEN through the pooler is accepted, and delivers nothing', async () => {
  const listener = await directListener();
  const pooled = await pooler.client();
  const heard = [];
  pooled.on('notification', (n) => heard.push(n));
  await pooled.query('LISTEN presence');
  await pg.query("SELECT presence.connect('unheard')");
  await eventually(() => listener.heard.some((m) => m.user_id === 'unheard'), 10000, 'the direct listener hears it');
  await pooled.query('SELECT 1');
  await sleep(1000); // a negative: give a late delivery a fair chance
  assert.deepEqual(heard, []);
  await pooled.end();
  await listener.end();
  await pg.query("SELECT presence.disconnect('unheard')");
});

test('a relay behind it notices: /healthz 503 no_notifications, and its log says why', async () => {
  await withRelay({ db: pooler.conninfo, name: 'behind-pooler', expectDb: false }, async (relay) => {
    const h = await healthWhen(relay, (b) => b.status === 'no_notifications', '/healthz no_notifications');
    assert.equal(h.status, 503);
    assert.equal(h.body.database, 'up');
    assert.equal(h.body.notifications, 'not_arriving');
    assert.match(relay.log(), /a notification sent to it did not arrive in 5 s: it cannot LISTEN \(a pooler in transaction mode\?\)/);
  });
});

test('with the pooler listed first and the server after it, the relay moves on to the server', async () => {
  const db = `host=127.0.0.1,${pg.socketDir} port=${pooler.port},${pg.port} user=postgres dbname=postgres`;
  await withRelay({ db, name: 'pooler-then-direct', expectDb: false }, async (relay) => {
    const h = await healthWhen(relay, (b) => b.notifications === 'ok', '/healthz notifications ok');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.match(relay.log(), /no notifications on this host, trying the next/);
    const peer = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
    await peer.waitFor((m) => m.type === 'state');
    await pg.query("SELECT presence.connect('moved')");
    await peer.waitPresence('moved', 'online');
    await pg.query("SELECT presence.disconnect('moved')");
    await peer.close();
  });
});

test('directly, or through a pooler in session mode, notifications arrive', async () => {
  const session = await startPgbouncer(pg, { poolMode: 'session', name: 'pgbouncer-session' });
  try {
    for (const [name, db] of [['direct', pg.conninfo], ['session-pooler', session.conninfo]]) {
      await withRelay({ db, name }, async (relay) => {
        const h = await healthWhen(relay, (b) => b.notifications === 'ok', `${name}: /healthz notifications ok`);
        assert.equal(h.status, 200);
        assert.equal(h.body.status, 'ok');
      });
    }
  } finally {
    await session.stop();
  }
});
