'use strict';
// Upgrades as operations.md describes them, with relays and pages running:
// the database at 1.0, the server restarted (fast) for the new library,
// then the update as its SQL block has it.  Pages stay connected through it
// all, get a fresh state after the restart, and nobody is seen to go.
// Then a restart that keeps the server down 5 s (a todo: users flap).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { withSystem, eventually, spread } = require('./system');
const { repoRoot } = require('../lib/relay');

// The SQL of operations.md's "Upgrades", as written.
function upgradeBlock() {
  const text = fs.readFileSync(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const sql = text.slice(text.indexOf('\n## Upgrades\n')).match(/```sql\n([\s\S]*?)```/)[1];
  assert.match(sql, /ALTER EXTENSION presence UPDATE/);
  return sql;
}

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);

// Stops the primary (fast), keeps it down downMs, starts it; resolves once
// every page has a fresh state, with the time the restart began.
async function restartPrimary(sys, pages, downMs) {
  const t0 = Date.now();
  await sys.primary.stopServer('fast');
  // the server down while a package is installed, say: not a synchronisation
  if (downMs) await new Promise((resolve) => setTimeout(resolve, downMs - (Date.now() - t0)));
  await sys.primary.start();
  await sys.listen(sys.primary);
  for (const r of sys.relays) await r.waitHealthy([200], 20000);
  await eventually(() => pages.every((p) => p.stateAfter(t0)), 20000, 'a fresh state on every page').catch((e) => {
    throw new Error(`${e.message}: none on ${pages.filter((p) => !p.stateAfter(t0)).map((p) => p.user)}\n` +
      sys.relays.map((r) => r.log().slice(-1500)).join('\n'));
  });
  await sys.converged();
  for (const p of pages) assert.equal(p.sockets().length, 1, `${p.user}: one socket all along`);
  return t0;
}

// The pages of which anyone (LISTEN, a watcher, a page) saw a change since t0.
const flapped = (sys, pages, t0) => pages.filter((p) => sys.notified(p.user, t0).length ||
  [...sys.watchers.map((w) => w.view), ...pages.map((q) => q.view)].some((v) => v.changes(p.user, t0).length));

test('a restart of the primary and ALTER EXTENSION UPDATE from 1.0, under two relays: nobody flaps', async (t) => {
  await withSystem({ version: '1.0' }, async (sys) => {
    const version = async () => (await sys.primary.query(
      "SELECT extversion FROM pg_extension WHERE extname = 'presence'")).rows[0].extversion;
    assert.equal(await version(), '1.0');
    const pages = await sys.openPages(names('page', 16));
    await sys.converged();

    const t0 = await restartPrimary(sys, pages, 0);
    assert.deepEqual(flapped(sys, pages, t0).map((p) => `${p.user}\n${sys.seenOf(p.user, t0)}`), []);
    t.diagnostic(`restart to a page's fresh state: ${spread(pages.map((p) => p.stateAfter(t0) - t0))}`);

    const t1 = Date.now();
    await sys.primary.query(upgradeBlock());
    assert.equal(await version(), '1.1');
    const late = sys.newPage('late');
    await eventually(async () => (await sys.onlineUsers()).includes('late'), 10000, 'a page after the update online');
    await sys.converged();
    assert.deepEqual(flapped(sys, pages, t1).map((p) => p.user), [], 'nothing announced by the update');
    assert.deepEqual(sys.notified(late.user, t1), ['online']);
    sys.checkPages();

    // A longer restart: the relays' backoff (up to 5 s, +20 %) may bring
    // one back after the grace that the restarted server gave its users.
    const t2 = await restartPrimary(sys, pages, 5000);
    const f = flapped(sys, pages, t2);
    t.diagnostic(`the server down 5 s: restart to a page's fresh state: ${spread(pages.map((p) => p.stateAfter(t2) - t2))}; ` +
      `${f.length} of ${pages.length} pages seen to go and come back`);
    await t.test('nobody flaps when the server was down 5 s', {
      todo: 'a fast shutdown ends the relays\' bound sessions (their backends exit), so the restarted server gives ' +
        'their users only presence.reconnect_grace, and a relay whose next try comes later (its backoff reaches 5 s ' +
        '+20 %) shows its users offline and back',
    }, () => {
      assert.deepEqual(f.map((p) => p.user), []);
    });
  });
});
