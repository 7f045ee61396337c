'use strict';
// A rolling restart of both relays behind nginx, as an operator does it:
// SIGTERM the first, and once its pages are back on the other, start it
// again; then the same with the second.  Every page is closed with 1001
// once or twice and comes back through nginx within the grace: nobody is
// seen to go.  Then the reason for max_fails=0 in operations.md: without
// it, the same restart leaves pages with 502 "no live upstreams" past the
// grace, and they are seen to go.

const test = require('node:test');
const assert = require('node:assert/strict');
const { withSystem, eventually, spread, GRACE_MS } = require('./system');

const users = Array.from({ length: 20 }, (_, i) => `page-${String(i + 1).padStart(2, '0')}`);

// SIGTERM to relay i; resolves once it has exited 0, with the pages that
// were on it.
async function stopRelay(sys, i, pages) {
  const on = (await sys.usersByRelay())[i];
  const moving = pages.filter((p) => on.includes(p.user));
  assert.ok(moving.length > 0, `pages on relay ${i + 1}`);
  const relay = sys.relays[i];
  const stopped = Date.now();
  relay.signal('SIGTERM');
  assert.deepEqual(await relay.exited, { code: 0, signal: null }, relay.log());
  return { moving, stopped };
}

test('a rolling restart of both relays: every page comes back, nobody flaps', async (t) => {
  await withSystem({}, async (sys) => {
    const pages = await sys.openPages(users);
    await sys.converged();
    const t0 = Date.now();
    const outages = [];
    for (const i of [0, 1]) {
      const { moving, stopped } = await stopRelay(sys, i, pages);
      await eventually(() => moving.every((p) => p.open && p.stateAfter(stopped)), 30000,
        `relay ${i + 1}'s pages open again, with a state`).catch((e) => {
        const late = moving.filter((p) => !(p.open && p.stateAfter(stopped)));
        throw new Error(`${e.message}: ${late.length} not back:\n` +
          late.map((p) => `${p.user}: closed ${p.closeCodes()}`).join('\n') + `\nnginx: ${sys.nginx.errorLog().slice(-2000)}`);
      });
      outages.push(...moving.map((p) => p.stateAfter(stopped) - stopped));
      await sys.startRelay(i);
    }
    await eventually(() => sys.watchers.every((w) => w.open), 10000, 'the watchers back');
    await sys.converged();
    const [onFirst, onSecond] = await sys.usersByRelay();
    assert.deepEqual(onFirst, [...users, 'watcher-1'].sort(), 'every page on the relay restarted first');
    assert.deepEqual(onSecond, ['watcher-2']);

    // Nobody's status changed, as the database announced it and as every
    // page saw it.  (The watchers' own users are left out: pinned to one
    // relay, they cannot move to the other as pages do.)
    for (const p of pages) {
      assert.deepEqual(sys.notified(p.user, t0), [], `${p.user} notified\n${sys.seenOf(p.user, t0)}`);
      for (const q of pages) assert.deepEqual(q.view.changes(p.user, t0), [], `${p.user} seen by ${q.user}`);
      assert.ok(p.closeCodes().includes(1001), `${p.user} closed by a relay shutting down (${p.closeCodes()})`);
    }
    t.diagnostic(`SIGTERM to the page's new state: ${spread(outages)}`);
    assert.ok(Math.max(...outages) < GRACE_MS, 'back within the grace');
    sys.checkPages();
  });
});

test('without max_fails=0 (nginx\'s default passive checks), the same restart makes pages flap', async () => {
  const block = (conf) => {
    assert.match(conf, / max_fails=0;/);
    return conf.replace(/ max_fails=0;/g, ';');
  };
  await withSystem({ block }, async (sys) => {
    const pages = await sys.openPages(users);
    await sys.converged();
    // the first relay refuses one connection while it is down: marked
    // failed for fail_timeout (10 s), its pages all go to the second
    const first = await stopRelay(sys, 0, pages);
    await eventually(() => first.moving.every((p) => p.open && p.stateAfter(first.stopped)), 30000,
      'relay 1\'s pages open again');
    await sys.startRelay(0);
    // the second refuses one too: no live upstream left, while the second
    // is down as in the test above
    const second = await stopRelay(sys, 1, pages);
    const flapped = await eventually(() => {
      const f = second.moving.filter((p) => sys.notified(p.user, second.stopped).includes('offline'));
      return f.length > 0 && f;
    }, GRACE_MS + 10000, 'a page of the second relay notified offline');
    await sys.startRelay(1);
    assert.match(sys.nginx.errorLog(), /no live upstreams while connecting to upstream/);
    assert.ok(flapped.length >= second.moving.length / 2,
      `${flapped.length} of ${second.moving.length} pages went offline`);
  });
});
