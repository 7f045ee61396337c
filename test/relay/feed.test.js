'use strict';
// What clients see: state first, then joins and leaves; away and back;
// invisible users; batched heartbeats; the HTTP endpoints; bad frames.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, bearer, getJson, metric, eventually } = require('./common');

let pg;
let relay;
let watcher;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'feed' });
  relay = await startRelay({ cluster: pg, secret: SECRET, name: 'feed' });
  watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
  await watcher.waitFor((m) => m.type === 'state');
});

test.after(async () => {
  await watcher?.close();
  const status = await relay?.stop();
  await pg?.stop();
  assert.deepEqual(status, { code: 0, signal: null });
});

test('the first message is a state that includes users already online', async () => {
  await pg.query("SELECT presence.connect('from-sql', 's1')");
  const p = await Peer.open(relay.wsUrl(`/ws?token=${token('newcomer')}`));
  const first = await p.waitFor();
  assert.equal(first.type, 'state');
  const names = first.users.map((u) => u.user_id);
  assert.ok(names.includes('from-sql'));
  assert.ok(names.includes('newcomer'), 'a client finds itself in its first state');
  const me = first.users.find((u) => u.user_id === 'newcomer');
  assert.deepEqual(Object.keys(me).sort(), ['last_active', 'sessions', 'status', 'status_message', 'user_id']);
  assert.equal(me.status_message, null, 'online_users()\'s status message (1.1), none here');
  assert.equal(me.status, 'online');
  await p.close();
  await pg.query("SELECT presence.disconnect('from-sql', 's1')");
});

test('a watcher sees a join and a leave, with seq', async () => {
  const alice = await Peer.open(relay.wsUrl('/ws'), bearer(token('alice')));
  const join = await watcher.waitPresence('alice', 'online');
  assert.equal(join.previous, 'offline');
  assert.equal(typeof join.seq, 'number');
  assert.ok(join.last_active);
  await alice.close();
  const leave = await watcher.waitPresence('alice', 'offline');
  assert.ok(leave.seq > join.seq);
  const { rows } = await pg.query("SELECT 1 FROM presence.sessions('alice')");
  assert.equal(rows.length, 0, 'the session ended with the socket');
});

test('changes made in SQL reach WebSocket clients', async () => {
  await pg.query("SELECT presence.connect('bob')");
  await watcher.waitPresence('bob', 'online');
  await pg.query("SELECT presence.disconnect('bob')");
  await watcher.waitPresence('bob', 'offline');
});

test('two tabs of one user are two sessions, one presence', async () => {
  const t1 = await Peer.open(relay.wsUrl(`/ws?token=${token('carol')}`));
  await watcher.waitPresence('carol', 'online');
  const t2 = await Peer.open(relay.wsUrl(`/ws?token=${token('carol')}`));
  await t2.waitFor((m) => m.type === 'state');
  const { rows } = await pg.query("SELECT count(*)::int AS n FROM presence.sessions('carol')");
  assert.equal(rows[0].n, 2);
  await t1.close();
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(!watcher.messages.slice(watcher.cursor).some((m) => m.user_id === 'carol' && m.status === 'offline'),
    'closing one tab does not make carol offline');
  await t2.close();
  await watcher.waitPresence('carol', 'offline');
});

test('"active": false lets a user go away; true brings them back at once', async () => {
  const dave = await Peer.open(relay.wsUrl(`/ws?token=${token('dave')}`));
  await watcher.waitPresence('dave', 'online');
  dave.send({ type: 'heartbeat', active: false });
  await watcher.waitPresence('dave', 'away', 8000);
  const t0 = Date.now();
  dave.send({ type: 'heartbeat', active: true });
  await watcher.waitPresence('dave', 'online', 3000);
  assert.ok(Date.now() - t0 < 1000, 'back online without waiting for the next interval');
  await dave.close();
  await watcher.waitPresence('dave', 'offline');
});

test('one heartbeat query per interval keeps every session alive', async () => {
  const peers = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((u) => Peer.open(relay.wsUrl(`/ws?token=${token(u)}`))));
  await Promise.all(peers.map((p) => p.waitFor((m) => m.type === 'state')));
  const b0 = await metric(relay, 'presence_relay_heartbeat_batches_total');
  // past session_timeout (3 s): without heartbeats they would be gone
  await new Promise((r) => setTimeout(r, 4000));
  const b1 = await metric(relay, 'presence_relay_heartbeat_batches_total');
  const { rows } = await pg.query(
    "SELECT user_id, last_heartbeat > connected_at AS beat FROM presence.sessions() WHERE user_id LIKE 'h_'");
  assert.equal(rows.length, 4);
  assert.ok(rows.every((r) => r.beat));
  assert.ok(b1 - b0 >= 3 && b1 - b0 <= 5, `${b1 - b0} batches in 4 s for 5 sessions: one per second`);
  await Promise.all(peers.map((p) => p.close()));
});

test('invisible users never appear', async () => {
  await pg.query("SELECT presence.set_visible('ghost', false)");
  const ghost = await Peer.open(relay.wsUrl(`/ws?token=${token('ghost')}`));
  const state = await ghost.waitFor((m) => m.type === 'state');
  assert.ok(!state.users.some((u) => u.user_id === 'ghost'));
  const online = await getJson(relay.url('/online'), bearer(token('reader')));
  assert.ok(!online.body.users.some((u) => u.user_id === 'ghost'));
  // a visible user joining after shows the feed is flowing
  const eve = await Peer.open(relay.wsUrl(`/ws?token=${token('eve')}`));
  await watcher.waitPresence('eve', 'online');
  assert.ok(!watcher.messages.some((m) => m.user_id === 'ghost' && m.status !== 'offline'));
  await ghost.close();
  await eve.close();
  await watcher.waitPresence('eve', 'offline');
});

test('a client can hide its own user and show it again', async () => {
  const gina = await Peer.open(relay.wsUrl(`/ws?token=${token('gina')}`));
  await watcher.waitPresence('gina', 'online');
  gina.send({ type: 'visibility', visible: false });
  const hidden = await watcher.waitPresence('gina', 'offline');
  assert.equal(hidden.previous, 'online');
  // the choice is kept (the table follows within flush_interval) and
  // outlives the socket: a new one finds gina hidden
  await eventually(async () => (await pg.query(
    "SELECT 1 FROM presence.users WHERE user_id = 'gina' AND NOT visible")).rows.length === 1,
  5000, 'presence.users.visible = false for gina');
  await gina.close();
  const again = await Peer.open(relay.wsUrl(`/ws?token=${token('gina')}`));
  const state = await again.waitFor((m) => m.type === 'state');
  assert.ok(!state.users.some((u) => u.user_id === 'gina'));
  again.send({ type: 'visibility', visible: true });
  await watcher.waitPresence('gina', 'online');
  await again.close();
  await watcher.waitPresence('gina', 'offline');
});

test('only a boolean "visible" counts; a watcher has nobody to hide', async () => {
  const m0 = await metric(relay, 'presence_relay_malformed_messages_total');
  const hank = await Peer.open(relay.wsUrl(`/ws?token=${token('hank')}`));
  await watcher.waitPresence('hank', 'online');
  hank.send({ type: 'visibility' });
  hank.send({ type: 'visibility', visible: 'no' });
  await eventually(async () => await metric(relay, 'presence_relay_malformed_messages_total') === m0 + 2,
    5000, 'two malformed messages counted');
  // a state asked for now is read after any visibility change queued before
  const look = await Peer.open(relay.wsUrl(`/ws?token=${token('look')}`));
  const state = await look.waitFor((m) => m.type === 'state');
  assert.ok(state.users.some((u) => u.user_id === 'hank' && u.status === 'online'));
  await look.close();

  const anon = await startRelay({ cluster: pg, secret: SECRET, name: 'feed-anon', args: ['--allow-anonymous'] });
  const peek = await Peer.open(anon.wsUrl('/ws'));
  await peek.waitFor((m) => m.type === 'state');
  peek.send({ type: 'visibility', visible: false });
  const peek2 = await Peer.open(anon.wsUrl('/ws'));
  const state2 = await peek2.waitFor((m) => m.type === 'state');
  assert.ok(state2.users.some((u) => u.user_id === 'hank' && u.status === 'online'));
  await Promise.all([peek.close(), peek2.close()]);
  assert.deepEqual(await anon.stop(), { code: 0, signal: null });
  anon.cleanup();
  await hank.close();
  await watcher.waitPresence('hank', 'offline');
});

test('GET /online, /healthz and /metrics', async () => {
  const frank = await Peer.open(relay.wsUrl(`/ws?token=${token('frank')}`));
  await watcher.waitPresence('frank', 'online');
  const online = await getJson(relay.url('/online'), bearer(token('reader')));
  assert.equal(online.status, 200);
  assert.ok(online.body.users.some((u) => u.user_id === 'frank' && u.status === 'online'));

  const health = await getJson(relay.url('/healthz'));
  assert.equal(health.status, 200);
  assert.equal(health.body.database, 'up');

  const text = await (await fetch(relay.url('/metrics'))).text();
  for (const name of ['presence_relay_connections{kind="tracked"}', 'presence_relay_messages_sent_total',
    'presence_relay_db_reconnects_total', 'presence_relay_slow_clients_dropped_total',
    'presence_relay_notification_send_delay_seconds_count', 'presence_relay_db_up']) {
    assert.match(text, new RegExp(`^${name.replace(/[{}]/g, '\\$&')} \\d`, 'm'), name);
  }
  assert.match(text, /^# TYPE presence_relay_notification_send_delay_seconds histogram$/m);
  assert.equal(await metric(relay, 'presence_relay_connections{kind="tracked"}'), 2);
  assert.ok(await metric(relay, 'presence_relay_notification_send_delay_seconds_count') > 0);
  await frank.close();
  await watcher.waitPresence('frank', 'offline');
});

test('malformed JSON is ignored: the client stays, so do others', async () => {
  const m0 = await metric(relay, 'presence_relay_malformed_messages_total');
  const gina = await Peer.open(relay.wsUrl(`/ws?token=${token('gina')}`));
  await gina.waitFor((m) => m.type === 'state');
  // a message is a JSON object: a bare array or scalar is malformed too
  const junks = ['{', 'not json', '{"type":"heartbeat","active":"yes"}', '{"a":1} trailing', '\u00e9t\u00e9',
    '[1,2]', '[{"type":"heartbeat","active":false}]', '42', '"heartbeat"'];
  for (const junk of junks) gina.send(junk);
  // a valid object that is not ours is ignored quietly, not counted
  gina.send({ type: 'something-else' });
  await eventually(async () => await metric(relay, 'presence_relay_malformed_messages_total') - m0 === junks.length,
    5000, 'malformed count');
  await pg.query("SELECT presence.connect('henry')");
  await gina.waitPresence('henry', 'online');
  await watcher.waitPresence('henry', 'online');
  await pg.query("SELECT presence.disconnect('henry')");
  await gina.close();
});

test('an empty object {} is valid JSON: ignored, not counted as malformed', async () => {
  const m0 = await metric(relay, 'presence_relay_malformed_messages_total');
  const ivy = await Peer.open(relay.wsUrl(`/ws?token=${token('ivy')}`));
  await ivy.waitFor((m) => m.type === 'state');
  ivy.send('{}');
  ivy.send(' { \n} ');
  ivy.ws.send('{', { fin: false });
  ivy.ws.send(' }', { fin: true });
  ivy.send('{}}');	// and one that is not: read after the others
  await eventually(async () => await metric(relay, 'presence_relay_malformed_messages_total') - m0 === 1,
    5000, 'only the last message counted as malformed');
  await pg.query("SELECT presence.connect('iris')");
  await ivy.waitPresence('iris', 'online');
  assert.equal(await metric(relay, 'presence_relay_malformed_messages_total') - m0, 1);
  await pg.query("SELECT presence.disconnect('iris')");
  await ivy.close();
});

test('a message over 64 kB closes that client with 1009, fragmented or not', async () => {
  const big = await Peer.open(relay.wsUrl(`/ws?token=${token('big')}`));
  await big.waitFor((m) => m.type === 'state');
  big.send(JSON.stringify({ type: 'heartbeat', pad: 'x'.repeat(70 * 1024) }));
  assert.equal((await big.closed).code, 1009);

  const frag = await Peer.open(relay.wsUrl(`/ws?token=${token('frag')}`));
  await frag.waitFor((m) => m.type === 'state');
  const piece = 'y'.repeat(20 * 1024);
  frag.ws.send('{"type":"heartbeat","pad":"', { fin: false });
  for (let i = 0; i < 4; i++) frag.ws.send(piece, { fin: false });
  frag.ws.send('"}', { fin: true });
  assert.equal((await frag.closed).code, 1009);

  // just under the limit, in fragments, is a fine heartbeat
  const ok = await Peer.open(relay.wsUrl(`/ws?token=${token('ok-frag')}`));
  await ok.waitFor((m) => m.type === 'state');
  ok.ws.send('{"type":"heartbeat","pad":"', { fin: false });
  ok.ws.send('z'.repeat(60 * 1024), { fin: false });
  ok.ws.send('","active":false}', { fin: true });
  await pg.query("SELECT presence.connect('ivan')");
  await ok.waitPresence('ivan', 'online');
  await pg.query("SELECT presence.disconnect('ivan')");
  assert.equal(ok.ws.readyState, 1);
  await ok.close();

  assert.ok(await metric(relay, 'presence_relay_oversized_frames_total') >= 2);
  await watcher.waitPresence('big', 'offline');
});

test('a binary frame closes that client with 1003', async () => {
  const bin = await Peer.open(relay.wsUrl(`/ws?token=${token('bin')}`));
  await bin.waitFor((m) => m.type === 'state');
  bin.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await bin.closed).code, 1003);
  assert.equal(watcher.ws.readyState, 1, 'others are untouched');
});
