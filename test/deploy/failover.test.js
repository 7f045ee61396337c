'use strict';
// Failover: the primary stopped (immediate), the standby promoted.  Both
// relays find the new primary through their multi-host --db, register
// their sockets' sessions there again and send every client a fresh
// state; nobody who stayed is seen to go, pages closed during the outage
// go offline and pages opened during it come online, and seq goes on from
// where the old primary left it.  Then the same when the standby missed
// the primary's last changes (asynchronous replication): what is lost,
// and what is not.

const test = require('node:test');
const assert = require('node:assert/strict');
const { withSystem, eventually, spread, GRACE_MS, GUCS } = require('./system');
const { getJson } = require('../relay/common');

const SESSION_TIMEOUT_MS = parseInt(GUCS['presence.session_timeout'], 10) * 1000;

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
  await withSystem({}, (sys) => failover(t, sys));
});

async function failover(t, sys) {
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
  // tables on the promoted server, and the relays, which kept the
  // disconnects of the sockets that closed while their link was down, end
  // them once they are back: their users go offline within the grace, not
  // after presence.session_timeout (15 s here).
  const leftAt = await eventually(() => leavers.every((p) => sys.notified(p.user, t0).includes('offline')) && Date.now(),
    GRACE_MS + 10000, 'the pages closed during the outage offline');
  assert.ok(leftAt - tHealthy < GRACE_MS + 2000,
    `the pages closed during the outage offline ${leftAt - tHealthy} ms after the relays were back`);
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
}

// The standby stops receiving WAL (as when it lags), the primary goes on
// for a while, then dies: what it did meanwhile never reaches the new
// primary.
test('a failover that loses the primary\'s last changes: nobody open is lost, those who left come back for session_timeout', async (t) => {
  await withSystem({}, (sys) => lossyFailover(t, sys));
});

async function lossyFailover(t, sys) {
  const pages = await sys.openPages(names('page', 10));
  await sys.converged();
  await sys.standby.query("ALTER SYSTEM SET primary_conninfo = ''", [], 'postgres');
  await sys.standby.query('SELECT pg_reload_conf()', [], 'postgres');
  await eventually(async () => (await sys.primary.query('SELECT count(*)::int AS n FROM pg_stat_replication', [], 'postgres'))
    .rows[0].n === 0, 10000, 'the standby disconnected');

  // Only the primary sees these.
  const leavers = pages.slice(0, 2);
  for (const p of leavers) p.conn.stop();
  const joiners = await sys.openPages(names('joiner', 2));
  await sys.converged();
  const maxBefore = Math.max(...sys.notifications.map((x) => x.n.seq));
  const t0 = Date.now();
  await sys.primary.stopServer('immediate');
  const { rows: [carried] } = await sys.standby.query('SELECT last_value FROM presence.notification_seq');
  assert.ok(Number(carried.last_value) < maxBefore, `the standby lacks the last changes (${carried.last_value} < ${maxBefore})`);

  await sys.standby.promote();
  sys.current = sys.standby;
  await sys.listen(sys.standby);
  for (const r of sys.relays) await r.waitHealthy([200], 20000);
  const stayed = sys.pages.filter((p) => !leavers.includes(p));
  await eventually(() => stayed.every((p) => p.stateAfter(t0)), 20000, 'a fresh state on every page');

  // The relays register every open socket again: the joiners, unknown to
  // the new primary, are online there, and nobody open was seen to go.
  const { rows } = await sys.standby.query('SELECT user_id FROM presence.sessions()');
  for (const p of stayed) assert.ok(rows.some((r) => r.user_id === p.user), `${p.user} registered on the new primary`);
  for (const p of stayed) assert.deepEqual(sys.notified(p.user, t0), [], `${p.user} notified`);

  // The leavers' sessions come back with the new primary's tables, and
  // nobody ends them: they are online until session_timeout.
  const back = await sys.onlineUsers();
  for (const p of leavers) assert.ok(back.includes(p.user), `${p.user} online again on the new primary`);
  const leftAt = await eventually(() => leavers.every((p) => sys.notified(p.user, t0).includes('offline')) && Date.now(),
    SESSION_TIMEOUT_MS + GRACE_MS + 5000, 'the leavers offline again');
  await sys.converged();
  sys.checkPages({ backwards: false });   // seq went back: below

  // seq: the new primary numbers its changes from the
  // presence.notification_seq it replicated, so the numbers of the lost
  // ticks are handed out again (a documented limitation, operations.md
  // "Standby and failover").  What a client gets: on the socket it kept,
  // a fresh state after the stop and before any change, whose seq (null,
  // or the last change the relay had) the changes after it follow; its
  // view starts over from it and agrees with the database (converged()).
  const after = sys.watchers.flatMap((w) => w.view.frames.filter((f) => f.t >= t0 && f.m.type === 'presence'))
    .map((f) => f.m.seq);
  t.diagnostic(`the standby carried seq ${carried.last_value}; the old primary had sent up to ${maxBefore}; ` +
    `the watchers then got ${Math.min(...after)} to ${Math.max(...after)} from the new one`);
  t.diagnostic(`the leavers offline ${leftAt - t0} ms after the primary stopped`);
  assert.ok(Math.min(...after) <= maxBefore, `numbers used again: from ${Math.min(...after)}, the old primary's up to ${maxBefore}`);
  for (const [name, v] of [...sys.watchers.map((w) => [w.name, w.view]), ...stayed.map((p) => [p.user, p.view])]) {
    const since = v.frames.filter((f) => f.t >= t0);
    const first = since.findIndex((f) => f.m.type === 'state');
    assert.ok(first >= 0, `${name}: a fresh state after the failover`);
    assert.ok(since.slice(0, first).every((f) => f.m.type !== 'presence'), `${name}: no change before it`);
    const { seq } = since[first].m;
    assert.ok(seq === null || Number.isInteger(seq), `${name}: the state's seq ${seq}`);
    for (const f of since.slice(first + 1).filter((g) => g.m.type === 'presence')) {
      assert.ok(seq === null || f.m.seq > seq, `${name}: change ${f.m.seq} after the state's seq ${seq}`);
    }
  }
}
