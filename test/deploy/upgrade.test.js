'use strict';
// Upgrades as operations.md describes them.  A database at 1.0 with live
// sessions: the server restarted for the new library, then the update as
// its SQL block has it (sessions kept, nothing announced); then the relays
// of the new build start, and pages with them.  A restart of the primary
// under two relays: pages stay connected, get a fresh state, and nobody is
// seen to go; nor when it keeps the server down 5 s.
// And this build's relay in front of a database still at 1.0.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { withSystem, eventually, spread, GRACE_MS, GUCS, SECRET } = require('./system');
const { repoRoot, startRelay } = require('../lib/relay');
const { startCluster } = require('../lib/cluster');
const { Peer } = require('../lib/peer');
const { sign } = require('../lib/jwt');

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);

// The SQL of operations.md's "Upgrades", as written.
function upgradeBlock() {
  const text = fs.readFileSync(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const sql = text.slice(text.indexOf('\n## Upgrades\n')).match(/```sql\n([\s\S]*?)```/)[1];
  assert.match(sql, /ALTER EXTENSION presence UPDATE/);
  return sql;
}

const version = async (server) => (await server.query(
  "SELECT extversion FROM pg_extension WHERE extname = 'presence'")).rows[0].extversion;

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
  await eventually(() => pages.every((p) => p.stateAfter(t0)), 20000, 'a fresh state on every page');
  await sys.converged();
  for (const p of pages) assert.equal(p.sockets().length, 1, `${p.user}: one socket all along`);
  return t0;
}

// The pages of which anyone (LISTEN, a watcher, a page) saw a change since t0.
const flapped = (sys, pages, t0) => pages.filter((p) => sys.notified(p.user, t0).length ||
  [...sys.watchers.map((w) => w.view), ...pages.map((q) => q.view)].some((v) => v.changes(p.user, t0).length));

// At 1.0, before any relay: the application's sessions live through the
// restart and the update, which announces nothing.
async function updateFrom10(sys) {
  const apps = names('app', 5);
  await sys.primary.query("SELECT count(presence.connect(u, 'web')) FROM unnest($1::text[]) u", [apps]);
  await eventually(() => apps.every((u) => sys.notified(u).includes('online')), 10000, 'the app users announced');
  assert.equal(await version(sys.primary), '1.0');
  await sys.primary.restart('fast');
  await sys.listen(sys.primary);
  const t0 = Date.now();
  await sys.primary.query(upgradeBlock());
  assert.equal(await version(sys.primary), '1.1');
  // the role then has every function relay.md's role has at 1.1
  const relayMd = fs.readFileSync(path.join(repoRoot, 'docs', 'relay.md'), 'utf8');
  const roleSql = relayMd.slice(relayMd.indexOf('\n## Database role\n')).match(/```sql\n([\s\S]*?)```/)[1];
  const fns = [...roleSql.matchAll(/presence\.\w+\([^)]*\)/g)].map((m) => m[0]);
  assert.ok(fns.length >= 10, `relay.md's role grants ${fns.length} functions`);
  const missing = await sys.primary.query(
    "SELECT f FROM unnest($1::text[]) f WHERE NOT has_function_privilege('presence_relay', f, 'EXECUTE')", [fns]);
  assert.deepEqual(missing.rows.map((r) => r.f), [], 'functions relay.md grants that the updated role lacks');
  const { rows } = await sys.primary.query("SELECT user_id FROM presence.sessions() WHERE session_id = 'web' ORDER BY 1");
  assert.deepEqual(rows.map((r) => r.user_id), apps, 'the sessions lived through the restart and the update');
  await sys.primary.query("SELECT count(presence.disconnect(u, 'web')) FROM unnest($1::text[]) u", [apps]);
  await eventually(() => apps.every((u) => sys.notified(u, t0).includes('offline')), GRACE_MS + 5000, 'the app users gone');
  for (const u of apps) assert.deepEqual(sys.notified(u, t0), ['offline'], `${u}: nothing announced by the update`);
}

test('the update from 1.0, then relays; restarts of the primary under two relays', async (t) => {
  await withSystem({ version: '1.0', beforeRelays: updateFrom10 }, async (sys) => {
    const pages = await sys.openPages(names('page', 16));
    await sys.converged();

    const t0 = await restartPrimary(sys, pages, 0);
    assert.deepEqual(flapped(sys, pages, t0).map((p) => `${p.user}\n${sys.seenOf(p.user, t0)}`), []);
    t.diagnostic(`restart to a page's fresh state: ${spread(pages.map((p) => p.stateAfter(t0) - t0))}`);
    sys.checkPages();

    // A longer restart.  A fast shutdown may end the relays' bound sessions
    // (their backends exit) before the worker's last tick: the restarted
    // server then keeps their users for presence.reconnect_grace only (3 s
    // here), and the relays must be back within it.  Their tries are at
    // most 1.65 s apart (with the old 5 s backoff cap, all 16 flapped).
    const t2 = await restartPrimary(sys, pages, 5000);
    const f = flapped(sys, pages, t2);
    t.diagnostic(`the server down 5 s: restart to a page's fresh state: ${spread(pages.map((p) => p.stateAfter(t2) - t2))}; ` +
      `${f.length} of ${pages.length} pages seen to go and come back`);
    assert.deepEqual(f.map((p) => `${p.user}\n${sys.seenOf(p.user, t2)}`), [], 'nobody flaps when the server was down 5 s');
  });
});

// The relay reads the snapshot as the extension's version has it: 1.0's
// online_users() has no status_message, and every user's is null.
test('this build\'s relay in front of a database still at 1.0: states, with status_message null', async () => {
  const pg = await startCluster({ gucs: GUCS, name: 'deploy-relay-on-1.0', extension: false });
  let relay;
  let peer;
  try {
    await pg.query("CREATE EXTENSION presence VERSION '1.0'");
    relay = await startRelay({ cluster: pg, secret: SECRET, name: 'deploy-relay-on-1.0' });
    peer = await Peer.open(relay.wsUrl(`/ws?token=${sign({ sub: 'reader' }, SECRET)}`));
    const state = await peer.waitFor((m) => m.type === 'state', 10000, 'a state');
    assert.deepEqual(state.users.map((u) => [u.user_id, u.status, u.sessions, u.status_message]),
      [['reader', 'online', 1, null]], JSON.stringify(state));
  } finally {
    peer?.ws.terminate();
    const status = await relay?.stop();
    relay?.cleanup();
    await pg.stop();
    if (relay) assert.deepEqual(status, { code: 0, signal: null });
  }
});
