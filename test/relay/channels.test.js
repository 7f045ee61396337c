'use strict';
// Channels through the relay (DESIGN.md section 8, docs/relay.md): join,
// subscribe, leave, unsubscribe and update; per-channel states and events;
// the authorization matrix of the token's "channels" claim; error frames
// that change nothing; caps; --global-feed no; memberships ending with
// their socket.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { Peer } = require('../lib/peer');
const common = require('./common');
const { GUCS, token, channelToken, getJson, metric, eventually } = common;
const { ChannelView, membersOf } = require('../lib/channelview');

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'channels' });
});

test.after(async () => {
  await pg?.stop();
});

const withRelay = (opts, fn) => common.withRelay({ cluster: pg, ...opts }, fn);

// A socket of user with the given channels claim, its first state taken
// (the global one, unless --global-feed no).
async function open(relay, user, channels, { globalFeed = true } = {}) {
  const p = await Peer.open(relay.wsUrl(`/ws?token=${channelToken(user, channels)}`));
  if (globalFeed) await p.waitFor((m) => m.type === 'state' && !m.channel);
  return p;
}

const stateOf = (p, channel) => p.waitFor((m) => m.type === 'state' && m.channel === channel, 10000,
  `state of ${channel}`);
const eventIn = (p, channel, type, user) => p.waitFor((m) => m.type === type && m.channel === channel &&
  (user === undefined || m.user_id === user), 10000, `${type} ${user} in ${channel}`);
const members = async (channel) => (await pg.query(
  'SELECT user_id, status, sessions, metas FROM presence.members($1) ORDER BY user_id', [channel])).rows;

test('join: a state with the member itself, then the channel\'s joins, updates, status changes and leaves', async () => {
  await withRelay({ name: 'channels-basics' }, async (relay) => {
    const alice = await open(relay, 'alice', ['room:*']);
    alice.send({ type: 'join', channel: 'room:1', meta: { page: '/inbox' } });
    const s0 = await stateOf(alice, 'room:1');
    // null: no change had reached the relay's link yet (docs/relay.md)
    assert.ok(s0.seq === null || typeof s0.seq === 'number', JSON.stringify(s0));
    const me = s0.members.find((m) => m.user_id === 'alice');
    assert.ok(me, JSON.stringify(alice.messages));
    assert.deepEqual(me.meta, { page: '/inbox' });
    assert.deepEqual(me.metas, [{ page: '/inbox' }]);
    assert.equal(me.status, 'online');
    assert.equal(me.sessions, 1);
    assert.deepEqual(Object.keys(me).sort(), ['last_active', 'meta', 'metas', 'sessions', 'status', 'status_message', 'user_id']);
    assert.deepEqual(await members('room:1'), [{ user_id: 'alice', status: 'online', sessions: 1, metas: [{ page: '/inbox' }] }]);

    const watcher = await open(relay, 'watcher', ['room:1']);
    watcher.send({ type: 'subscribe', channel: 'room:1' });
    const s1 = await stateOf(watcher, 'room:1');
    assert.deepEqual(s1.members.map((m) => m.user_id), ['alice'], 'a watcher is not a member');

    const bob = await open(relay, 'bob', ['room:1']);
    bob.send({ type: 'join', channel: 'room:1' });
    const j = await eventIn(watcher, 'room:1', 'join', 'bob');
    assert.deepEqual(j, { type: 'join', channel: 'room:1', seq: j.seq, user_id: 'bob', status: 'online', meta: null, status_message: null });
    assert.ok(s1.seq === null || j.seq > s1.seq);
    bob.send({ type: 'update', channel: 'room:1', meta: { typing: true } });
    const u = await eventIn(watcher, 'room:1', 'update', 'bob');
    assert.deepEqual(u.meta, { typing: true });
    assert.ok(u.seq > j.seq);
    await eventIn(alice, 'room:1', 'update', 'bob');

    bob.send({ type: 'heartbeat', active: false });
    const away = await eventIn(watcher, 'room:1', 'presence', 'bob');
    assert.equal(away.status, 'away');
    assert.equal(away.previous, 'online');

    bob.send({ type: 'leave', channel: 'room:1' });
    assert.deepEqual(await bob.waitFor((m) => m.type === 'unsubscribed'), { type: 'unsubscribed', channel: 'room:1' });
    const l = await eventIn(watcher, 'room:1', 'leave', 'bob');
    assert.deepEqual(Object.keys(l).sort(), ['channel', 'seq', 'type', 'user_id']);
    assert.deepEqual((await members('room:1')).map((m) => m.user_id), ['alice']);

    // unsubscribe: no more frames of the channel
    watcher.send({ type: 'unsubscribe', channel: 'room:1' });
    await watcher.waitFor((m) => m.type === 'unsubscribed' && m.channel === 'room:1');
    const n = watcher.messages.length;
    alice.send({ type: 'update', channel: 'room:1', meta: { page: '/outbox' } });
    await eventIn(alice, 'room:1', 'update', 'alice');
    assert.ok(!watcher.messages.slice(n).some((m) => m.channel === 'room:1'));
    await Promise.all([alice.close(), bob.close(), watcher.close()]);
    await eventually(async () => (await members('room:1')).length === 0, 10000, 'room:1 empty');
  });
});

// Sends msg and returns the client's answer: the first frame naming the
// channel, or an error, after it.
async function answer(p, msg) {
  const from = p.messages.length;
  p.send(msg);
  return p.waitFor((m, i) => (m.type === 'error' || m.channel === msg.channel), 10000, `an answer to ${JSON.stringify(msg)}`)
    .then((m) => { assert.ok(p.messages.indexOf(m) >= from); return m; });
}

test('the channels claim: names, prefixes, "*", no claim, a bad claim, anonymous; forbidden changes nothing', async () => {
  await withRelay({ name: 'channels-auth', args: ['--allow-anonymous'] }, async (relay) => {
    const cases = [
      // claim, channel, allowed
      [['room:1'], 'room:1', true],
      [['room:1'], 'room:10', false],
      [['room:1'], 'room:', false],
      [['room:*'], 'room:1', true],
      [['room:*'], 'room:', true],
      [['room:*'], 'room', false],
      [['room:*'], 'ROOM:1', false],
      [['*'], 'anything at all', true],
      [['team:9', 'doc:*'], 'doc:7f3a', true],
      [['team:9', 'doc:*'], 'team:90', false],
      [['team:9', 'doc:*'], 'team:9', true],
      [[], 'room:1', false],
      [undefined, 'room:1', false],
    ];
    for (const [claim, channel, allowed] of cases) {
      const user = `auth-${Math.random().toString(36).slice(2)}`;
      const t = claim === undefined ? token(user) : channelToken(user, claim);
      const p = await Peer.open(relay.wsUrl(`/ws?token=${t}`));
      await p.waitFor((m) => m.type === 'state');
      for (const type of ['subscribe', 'join']) {
        const a = await answer(p, { type, channel });
        if (allowed) {
          assert.equal(a.type, 'state', `${JSON.stringify(claim)} ${type} ${channel}: ${JSON.stringify(a)}`);
        } else {
          assert.deepEqual(a, { type: 'error', request: type, channel, code: 'forbidden' },
            `${JSON.stringify(claim)} ${type} ${channel}`);
        }
        if (allowed) {
          p.send({ type: 'leave', channel });
          await p.waitFor((m) => m.type === 'unsubscribed' && m.channel === channel);
        }
      }
      if (!allowed) {
        // nothing changed: not a member, not watching (an update is refused as not joined)
        assert.ok(!(await members(channel)).some((m) => m.user_id === user), `${user} is not in ${channel}`);
        assert.deepEqual((await pg.query('SELECT * FROM presence.channels($1)', [user])).rows, []);
        const a = await answer(p, { type: 'update', channel, meta: { x: 1 } });
        assert.equal(a.code, 'forbidden');
      }
      await p.close();
    }
    // a claim that is not an array of names: the token is refused
    for (const bad of ['room:*', [1], [''], [['room:1']], { room: 1 }, ['x'.repeat(258)]]) {
      assert.equal(await Peer.refused(relay.wsUrl(`/ws?token=${channelToken('bad-claim', bad)}`)), 401, JSON.stringify(bad));
    }
    // an anonymous watcher has no channel
    const anon = await Peer.open(relay.wsUrl('/ws'));
    await anon.waitFor((m) => m.type === 'state');
    for (const type of ['subscribe', 'join']) {
      assert.deepEqual(await answer(anon, { type, channel: 'room:1' }), { type: 'error', request: type, channel: 'room:1', code: 'forbidden' });
    }
    assert.ok(await metric(relay, 'presence_relay_channel_forbidden_total') >= 14);
    await anon.close();
  });
});

test('bad names and metas, updates of channels not joined: an error frame each, nothing changed', async () => {
  await withRelay({ name: 'channels-errors' }, async (relay) => {
    const p = await open(relay, 'erring', ['*']);
    const bad = [
      [{ type: 'join' }, 'bad_channel'],
      [{ type: 'join', channel: '' }, 'bad_channel'],
      [{ type: 'join', channel: 'x'.repeat(257) }, 'bad_channel'],
      [{ type: 'subscribe', channel: 42 }, 'bad_channel'],
      [{ type: 'join', channel: 'ok', meta: [1, 2] }, 'bad_meta'],
      [{ type: 'join', channel: 'ok', meta: 'text' }, 'bad_meta'],
      [{ type: 'join', channel: 'ok', meta: { big: 'm'.repeat(1020) } }, 'bad_meta'],
      [{ type: 'update', channel: 'ok', meta: { a: 1 } }, 'not_joined'],
    ];
    for (const [msg, code] of bad) {
      p.send(msg);
      const e = await p.waitFor((m) => m.type === 'error', 5000, `error for ${JSON.stringify(msg)}`);
      assert.equal(e.code, code, JSON.stringify(msg));
      assert.equal(e.request, msg.type);
    }
    assert.deepEqual(await members('ok'), []);
    // the limits themselves pass: a 256-byte name, a meta of 1 kB as jsonb prints it
    const name = 'n'.repeat(256);
    p.send({ type: 'join', channel: name, meta: { big: 'm'.repeat(1011) } });
    const s = await stateOf(p, name);
    assert.equal(s.members[0].meta.big.length, 1011);
    p.send({ type: 'update', channel: name });
    assert.equal((await p.waitFor((m) => m.type === 'error')).code, 'bad_meta', 'update needs a meta');
    // a channel message over 8 kB is refused whole
    p.send({ type: 'update', channel: name, meta: { a: 'é'.repeat(100) }, pad: 'p'.repeat(9000) });
    assert.equal((await p.waitFor((m) => m.type === 'error')).code, 'too_large');
    assert.equal((await members(name))[0].metas[0].big.length, 1011, 'unchanged');
    await p.close();
  });
});

test('--max-channels-per-client: one channel more is refused, one less lets another in', async () => {
  await withRelay({ name: 'channels-cap', args: ['--max-channels-per-client', '3'] }, async (relay) => {
    const p = await open(relay, 'capped', ['c:*']);
    for (const c of ['c:1', 'c:2', 'c:3']) {
      p.send({ type: c === 'c:2' ? 'subscribe' : 'join', channel: c });
      await stateOf(p, c);
    }
    assert.deepEqual(await answer(p, { type: 'join', channel: 'c:4' }),
      { type: 'error', request: 'join', channel: 'c:4', code: 'too_many_channels' });
    assert.deepEqual(await members('c:4'), []);
    // a channel it is in already is no more
    p.send({ type: 'join', channel: 'c:2', meta: { again: true } });
    await eventIn(p, 'c:2', 'join', 'capped');
    p.send({ type: 'unsubscribe', channel: 'c:2' });
    await p.waitFor((m) => m.type === 'unsubscribed' && m.channel === 'c:2');
    // unsubscribed but still a member of c:2: it still counts
    assert.equal((await answer(p, { type: 'subscribe', channel: 'c:4' })).code, 'too_many_channels');
    p.send({ type: 'leave', channel: 'c:2' });
    await eventually(async () => (await members('c:2')).length === 0, 5000, 'c:2 left');
    assert.equal((await answer(p, { type: 'subscribe', channel: 'c:4' })).type, 'state');
    await p.close();
  });
});

test('--global-feed no: no global state or change, only the channels asked for; no /online', async () => {
  await withRelay({ name: 'channels-noglobal', args: ['--global-feed', 'no'] }, async (relay) => {
    const a = await open(relay, 'ng-a', ['r:*'], { globalFeed: false });
    const b = await open(relay, 'ng-b', ['r:*'], { globalFeed: false });
    a.send({ type: 'join', channel: 'r:1' });
    await stateOf(a, 'r:1');
    b.send({ type: 'join', channel: 'r:2' });
    await stateOf(b, 'r:2');
    await pg.query("SELECT presence.connect('ng-outsider')");
    b.send({ type: 'join', channel: 'r:1' });
    await eventIn(a, 'r:1', 'join', 'ng-b');
    await pg.query("SELECT presence.disconnect('ng-outsider')");
    b.send({ type: 'heartbeat', active: false });
    await eventIn(a, 'r:1', 'presence', 'ng-b');
    for (const p of [a, b]) {
      assert.ok(p.messages.every((m) => m.channel), `only channel frames: ${JSON.stringify(p.messages)}`);
      assert.ok(!p.messages.some((m) => JSON.stringify(m).includes('ng-outsider')));
    }
    assert.equal((await getJson(relay.url(`/online?token=${token('reader')}`))).status, 404);
    await Promise.all([a.close(), b.close()]);
  });
});

test('memberships end with their socket: closed, and the relay killed (-9)', async () => {
  const relay = await common.startRelayFor(pg, { name: 'channels-end' });
  try {
    const w = await open(relay, 'end-watcher', ['end'], { globalFeed: true });
    w.send({ type: 'subscribe', channel: 'end' });
    await stateOf(w, 'end');
    const p = await open(relay, 'end-a', ['end']);
    p.send({ type: 'join', channel: 'end', meta: { n: 1 } });
    await eventIn(w, 'end', 'join', 'end-a');
    await p.close();
    await eventIn(w, 'end', 'leave', 'end-a');
    assert.deepEqual(await members('end'), []);

    const q = await open(relay, 'end-b', ['end']);
    q.send({ type: 'join', channel: 'end', meta: { n: 2 } });
    await eventIn(w, 'end', 'join', 'end-b');
    assert.equal((await members('end')).length, 1);
    const listener = await pg.client();
    const seen = [];
    listener.on('notification', (n) => seen.push(JSON.parse(n.payload)));
    await listener.query('LISTEN presence');
    relay.signal('SIGKILL');
    await relay.exited;
    // the bound session ended with the relay's connection, and its membership with it
    await eventually(() => seen.some((m) => m.event === 'leave' && m.user_id === 'end-b'), 10000, 'the leave');
    assert.deepEqual(await members('end'), []);
    assert.deepEqual((await pg.query("SELECT * FROM presence.channels('end-b')")).rows, []);
    await listener.end();
  } finally {
    await relay.stop();
    relay.cleanup();
  }
});

for (const mode of ['fast', 'immediate']) {
  test(`a PostgreSQL restart (${mode}): memberships joined again with their last meta, fresh per-channel states`, async () => {
    await withRelay({ name: `channels-restart-${mode}` }, async (relay) => {
      const room = `restart-${mode}`;
      const alice = await open(relay, 'rs-alice', [room]);
      alice.send({ type: 'join', channel: room, meta: { m: 1 } });
      await stateOf(alice, room);
      alice.send({ type: 'update', channel: room, meta: { m: 2 } });
      const w = await open(relay, 'rs-watcher', [room]);
      w.send({ type: 'subscribe', channel: room });
      await stateOf(w, room);
      await eventually(async () => (await membersOf(pg, room)).get('rs-alice')?.meta?.m === 2, 5000, 'meta 2');
      // the flusher has the membership (a crash restart reloads from the tables)
      await eventually(async () => (await pg.query(
        'SELECT 1 FROM presence.memberships WHERE channel = $1', [room])).rows.length === 1, 5000, 'flushed');

      await pg.restart(mode);
      const s = await stateOf(w, room);
      const fresh = await stateOf(alice, room);
      for (const st of [s, fresh]) {
        const a = st.members.find((m) => m.user_id === 'rs-alice');
        assert.ok(a, JSON.stringify(st));
        assert.deepEqual(a.meta, { m: 2 });
      }
      await eventually(async () => {
        const m = (await membersOf(pg, room)).get('rs-alice');
        return m && m.sessions === 1 && m.meta.m === 2;
      }, 10000, 'rs-alice joined again, bound to the relay\'s new link');
      // and the channel's events flow again (bob comes as a join, or in a
      // fresh state if the relay found the restarted worker's first
      // notifications dropped and read the states again)
      const bob = await open(relay, 'rs-bob', [room]);
      bob.send({ type: 'join', channel: room, meta: { m: 3 } });
      await eventually(() => ChannelView.of(w.messages).members(room).has('rs-bob'), 10000, 'rs-bob in the view');
      const j = w.messages.find((m) => m.type === 'join' && m.user_id === 'rs-bob');
      assert.ok(!j || s.seq === null || j.seq > s.seq);
      const view = ChannelView.of(w.messages);
      assert.deepEqual([...view.members(room).keys()].sort(), ['rs-alice', 'rs-bob']);
      await Promise.all([alice.close(), bob.close(), w.close()]);
    });
  });
}

test('a channel with more watchers than --large-channel gets diffs: fewer frames, the same members', async () => {
  await withRelay({ name: 'channels-diff', args: ['--large-channel', '3'] }, async (relay) => {
    const room = 'big-room';
    const watchers = [];
    for (let i = 0; i < 5; i++) {
      const w = await open(relay, `dw-${i}`, [room]);
      w.send({ type: 'subscribe', channel: room });
      await stateOf(w, room);
      watchers.push(w);
    }
    const d0 = await metric(relay, 'presence_relay_diffs_total');
    const t0 = Date.now();
    // a storm: 60 users join, a third of them update, a third leave, one hides
    const users = Array.from({ length: 60 }, (_, i) => `storm-${i}`);
    await pg.query(`SELECT presence.join($1, u, 's', pg_catalog.jsonb_build_object('n', i))
                      FROM unnest($2::text[]) WITH ORDINALITY AS t(u, i)`, [room, users]);
    await pg.query(`SELECT presence.update($1, u, 's', '{"typing":true}') FROM unnest($2::text[]) u`,
      [room, users.slice(0, 20)]);
    await pg.query("SELECT presence.leave($1, u, 's') FROM unnest($2::text[]) u", [room, users.slice(20, 40)]);
    await pg.query("SELECT presence.set_visible('storm-59', false)");
    const truth = async () => {
      const m = await membersOf(pg, room);
      return new Map([...m].filter(([, v]) => v.sessions > 0));
    };
    // leaves take the reconnect grace (500 ms) to be announced
    await eventually(async () => (await truth()).size === 39, 10000, '39 members');
    const expected = await truth();
    for (const w of watchers) {
      await eventually(() => {
        const got = ChannelView.of(w.messages).members(room);
        return got.size === expected.size &&
          [...expected].every(([u, v]) => got.get(u)?.status === v.status &&
            JSON.stringify(got.get(u)?.meta) === JSON.stringify(v.meta));
      }, 10000, 'the watcher\'s view is members()');
      const frames = w.messages.filter((m) => m.channel === room && m.type !== 'state');
      assert.ok(frames.every((m) => m.type === 'diff'), `only diffs: ${JSON.stringify(frames.map((m) => m.type))}`);
      // 140 events; at most one diff per 100 ms
      const limit = Math.ceil((Date.now() - t0) / 100) + 2;
      assert.ok(frames.length <= limit, `${frames.length} frames in ${Date.now() - t0} ms`);
      assert.ok(frames.length < 20, `${frames.length} frames for 141 events`);
    }
    assert.ok(await metric(relay, 'presence_relay_diffs_total') > d0);
    // back under the threshold: frames per event again
    await Promise.all(watchers.slice(0, 3).map((w) => w.close()));
    await pg.query("SELECT presence.join($1, 'after-big', 's')", [room]);
    await eventIn(watchers[3], room, 'join', 'after-big');
    await Promise.all(watchers.slice(3).map((w) => w.close()));
    await pg.query("SELECT presence.disconnect(u, 's') FROM unnest($1::text[]) u", [[...users, 'after-big']]);
    await pg.query("SELECT presence.set_visible('storm-59', true)");
  });
});
