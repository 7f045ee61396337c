'use strict';
// A watcher of a large channel that falls behind (docs/relay.md, "Large
// channels"): it is not closed, it gets no second diff queued while one is
// still unwritten, and when it reads again it gets ONE diff, the net effect
// since the last one it was sent, so that what it is owed is bounded by the
// channel's size, not by how long it lagged.  Its socket is paused while a
// storm of fat joins (100 to 250 kB a diff, megabytes in all: more than the
// kernel's socket buffers take) and leaves goes on.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { Peer } = require('../lib/peer');
const common = require('./common');
const { GUCS, channelToken, metric, eventually } = common;
const { ChannelView, membersOf } = require('../lib/channelview');

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'lagging' });
});

test.after(async () => {
  await pg?.stop();
});

const withRelay = (opts, fn) => common.withRelay({ cluster: pg, ...opts }, fn);

const PAD = 'x'.repeat(900); // their meta: about 1 kB each

// A watcher of room (no global feed), its state taken.
async function watcher(relay, user, room) {
  const p = await Peer.open(relay.wsUrl(`/ws?token=${channelToken(user, [room])}`));
  p.send({ type: 'subscribe', channel: room });
  await p.waitFor((m) => m.type === 'state' && m.channel === room, 10000, `state of ${room}`);
  return p;
}

// Does p's view of room equal presence.members(room) (status and meta)?
async function agrees(p, room) {
  const truth = new Map([...await membersOf(pg, room)].filter(([, v]) => v.sessions > 0));
  const got = ChannelView.of(p.messages).members(room);
  return got.size === truth.size && [...truth].every(([u, v]) => got.get(u)?.status === v.status &&
    JSON.stringify(got.get(u)?.meta) === JSON.stringify(v.meta));
}

// Does any diff (or join) p got name user?
const named = (p, room, user) => p.messages.some((m) => m.channel === room && (m.type === 'diff'
  ? [...m.joins, ...m.leaves, ...m.updates].some((x) => x.user_id === user)
  : m.type === 'join' && m.user_id === user));

// rounds rounds of size fat joins in room, each leaving the round before,
// each seen by fast in a diff of its own; the last round stays.
async function storm(room, fast, rounds, size, tag) {
  const users = (r) => Array.from({ length: size }, (_, i) => `${tag}-${r}-${i}`);
  for (let r = 0; r < rounds; r++) {
    await pg.query(`SELECT presence.join($1, u, 's', pg_catalog.jsonb_build_object('pad', $3::text, 'r', ${r}))
                      FROM unnest($2::text[]) u`, [room, users(r), PAD]);
    if (r > 0) await pg.query("SELECT presence.leave($1, u, 's') FROM unnest($2::text[]) u", [room, users(r - 1)]);
    const first = users(r)[0];
    await eventually(() => named(fast, room, first), 10000, `round ${r} at the fast watcher`);
  }
  return users(rounds - 1);
}

test('a large channel\'s watcher that stops reading is caught up with one diff, not closed, not owed more', async (t) => {
  await withRelay({ name: 'lagging', args: ['--global-feed', 'no', '--large-channel', '1'] }, async (relay) => {
    const room = 'lag:room';
    const fast = await watcher(relay, 'lag-fast', room);
    const slow = await watcher(relay, 'lag-slow', room);
    const slowClosed = slow.closed.then(() => true);
    const d0 = await metric(relay, 'presence_relay_diffs_total');
    const slowRead0 = slow.ws._socket.bytesRead;
    const fastRead0 = fast.ws._socket.bytesRead;
    const seen0 = slow.messages.length;
    slow.ws._socket.pause();

    // 15 MB of diffs in all, several times what the kernel's buffers hold
    const last = await storm(room, fast, 60, 250, 'lag');
    // the leaves of the round before the last one (after the reconnect grace)
    await eventually(() => agrees(fast, room), 15000, 'the fast watcher\'s view is members()');
    const made = (await metric(relay, 'presence_relay_diffs_total')) - d0;
    const fastBytes = fast.ws._socket.bytesRead - fastRead0;

    slow.ws._socket.resume();
    await eventually(() => agrees(slow, room), 15000, 'the slow watcher\'s view is members()');
    assert.equal(await Promise.race([slowClosed, new Promise((r) => setTimeout(() => r(false), 300))]), false,
      'the slow watcher is not closed');
    assert.equal(slow.ws.readyState, 1);
    const got = slow.messages.slice(seen0).filter((m) => m.type === 'diff');
    const slowBytes = slow.ws._socket.bytesRead - slowRead0;
    const info = `${got.length} diffs and ${slowBytes} bytes for the slow watcher; ${made} diffs made, ` +
      `${fastBytes} bytes for the fast one`;
    t.diagnostic(info);
    // what the kernel's buffers took before the socket choked, then one queued, then one catch-up
    assert.ok(got.length < made / 2, info);
    assert.ok(slowBytes < fastBytes / 2, info);
    assert.ok(await metric(relay, 'presence_relay_diff_catch_ups_total') >= 1, info);
    assert.ok(ChannelView.of(slow.messages).members(room).has(last[0]));

    await Promise.all([fast.close(), slow.close()]);
    await pg.query("SELECT presence.leave($1, u, 's') FROM unnest($2::text[]) u", [room, last]);
  });
});

test('a member that joins and leaves while a large channel\'s watcher is not reading: it never hears of it', async () => {
  // no byte cap: only the catch-up may keep the slow watcher from the ghost's diffs
  await withRelay({ name: 'lagging-ghost', args: ['--global-feed', 'no', '--large-channel', '1', '--max-client-backlog', '0'] },
    async (relay) => {
      const room = 'lag:ghost';
      const fast = await watcher(relay, 'ghost-fast', room);
      const slow = await watcher(relay, 'ghost-slow', room);
      slow.ws._socket.pause();

      // enough to fill the socket's buffers: the slow watcher is behind from then on
      const last = await storm(room, fast, 60, 100, 'ghost');
      await pg.query("SELECT presence.join($1, 'ghost', 's', '{\"boo\":true}')", [room]);
      await eventually(() => named(fast, room, 'ghost'), 10000, 'the ghost\'s join at the fast watcher');
      await pg.query("SELECT presence.leave($1, 'ghost', 's')", [room]);
      await eventually(() => fast.messages.some((m) => m.type === 'diff' && m.leaves.some((x) => x.user_id === 'ghost')),
        10000, 'the ghost\'s leave at the fast watcher');
      await eventually(() => agrees(fast, room), 15000, 'the fast watcher\'s view is members()');

      slow.ws._socket.resume();
      await eventually(() => agrees(slow, room), 15000, 'the slow watcher\'s view is members()');
      assert.equal(slow.ws.readyState, 1);
      assert.ok(!slow.messages.some((m) => JSON.stringify(m).includes('"ghost"')),
        'the slow watcher never heard of the ghost');

      await Promise.all([fast.close(), slow.close()]);
      await pg.query("SELECT presence.leave($1, u, 's') FROM unnest($2::text[]) u", [room, last]);
    });
});
