'use strict';
// kill -9 of one of two relays behind nginx: its pages come back through
// nginx on the other; those back within presence.reconnect_grace show no
// change to anyone, those kept away longer go offline once and come back
// once, those that closed meanwhile go offline once; the database, the
// watchers and every page end up agreeing with who is there.

const test = require('node:test');
const assert = require('node:assert/strict');
const { withSystem, eventually, spread, GRACE_MS } = require('./system');

test('kill -9 of a relay: its pages move to the other, and only those away past the grace are seen to go', async (t) => {
  await withSystem({ killed: ['deploy-relay-1'] }, (sys) => crash(t, sys));
});

async function crash(t, sys) {
  const users = Array.from({ length: 24 }, (_, i) => `page-${String(i + 1).padStart(2, '0')}`);
  const pages = await sys.openPages(users);
  await sys.converged();
  const [onFirst, onSecond] = await sys.usersByRelay();
  assert.equal(onFirst.length + onSecond.length, users.length + 2, 'every page and watcher has a session');
  const mine = pages.filter((p) => onFirst.includes(p.user));
  assert.ok(mine.length >= 8, `nginx spread the pages (${onFirst.length} and ${onSecond.length} sessions)`);
  // Of the killed relay's pages, two have a backend that is slow to give
  // them a token (back after the grace), two are closed by their users.
  const slow = mine.slice(0, 2);
  const gone = mine.slice(2, 4);
  const back = mine.slice(4);
  for (const p of slow) p.tokenDelayMs = GRACE_MS + 2000;

  const killed = sys.relays[0];
  const watcher = sys.watchers[1];
  const sockets = watcher.sockets;
  const t0 = Date.now();
  killed.signal('SIGKILL');
  for (const p of gone) p.conn.stop();
  await killed.exited;

  await eventually(() => [...back, ...slow].every((p) => p.open && p.stateAfter(t0)), 20000,
    'the killed relay\'s pages open again, with a state');
  const [, after] = await sys.usersByRelay();
  for (const p of [...back, ...slow]) assert.ok(after.includes(p.user), `${p.user} on the other relay`);
  await sys.converged();
  assert.equal(watcher.sockets, sockets, 'the other relay\'s watcher stayed connected');

  // What the watcher on the surviving relay, the pages that stayed, and
  // the database's notifications show, user by user.
  const stayed = pages.filter((p) => !mine.includes(p));
  const seenBy = [watcher.view, ...stayed.map((p) => p.view)];
  const expect = (p, statuses) => {
    assert.deepEqual(sys.notified(p.user, t0), statuses, `${p.user} notified\n${sys.seenOf(p.user, t0)}`);
    for (const v of seenBy) assert.deepEqual(v.changes(p.user, t0), statuses, `${p.user}\n${sys.seenOf(p.user, t0)}`);
  };
  for (const p of [...back, ...stayed]) expect(p, []);
  for (const p of slow) expect(p, ['offline', 'online']);
  for (const p of gone) expect(p, ['offline']);

  const outage = back.map((p) => p.stateAfter(t0) - t0);
  t.diagnostic(`pages back within the grace (${GRACE_MS} ms): kill to their new state: ${spread(outage)}`);
  assert.ok(Math.max(...outage) < GRACE_MS, 'back within the grace');

  // As systemd would: the relay starts again, and its watcher comes back.
  await sys.startRelay(0);
  await eventually(() => sys.watchers[0].open, 10000, 'the first watcher back');
  await sys.converged();
  sys.checkPages();
}
