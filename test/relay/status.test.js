'use strict';
// A client's status message (issue 11: {"type":"status_message"}), and the
// extension's status_message events forwarded to the global feed and to
// the channels of the user.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { Peer } = require('../lib/peer');
const common = require('./common');
const { GUCS, token, channelToken, metric, eventually } = common;

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'status' });
});

test.after(async () => {
  await pg?.stop();
});

const withRelay = (opts, fn) => common.withRelay({ cluster: pg, ...opts }, fn);
const messageOf = async (u) => (await pg.query('SELECT presence.status_message($1) AS m', [u])).rows[0].m;

test('a client sets, replaces and clears its user\'s status message; everybody hears it, with its expiry', async () => {
  await withRelay({ name: 'status-global' }, async (relay) => {
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('sm-watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    const ann = await Peer.open(relay.wsUrl(`/ws?token=${token('sm-ann')}`));
    const s0 = await ann.waitFor((m) => m.type === 'state');
    assert.equal(s0.users.find((u) => u.user_id === 'sm-ann').status_message, null);
    ann.send({ type: 'status_message', message: 'In a meeting', expires_in: 3600 });
    const f = await watcher.waitFor((m) => m.type === 'status_message' && m.user_id === 'sm-ann');
    assert.deepEqual(Object.keys(f), ['type', 'seq', 'user_id', 'status_message', 'expires_at']);
    assert.equal(f.status_message, 'In a meeting');
    const left = Date.parse(f.expires_at) - Date.now();
    assert.ok(left > 3500 * 1000 && left <= 3600 * 1000, `expires in ${left} ms`);
    assert.equal(await messageOf('sm-ann'), 'In a meeting');
    // a late watcher finds it in its state
    const late = await Peer.open(relay.wsUrl(`/ws?token=${token('sm-late')}`));
    const s1 = await late.waitFor((m) => m.type === 'state');
    assert.equal(s1.users.find((u) => u.user_id === 'sm-ann').status_message, 'In a meeting');
    // cleared, without expiry; a short expiry is kept by the extension's sweep
    ann.send({ type: 'status_message', message: null });
    assert.equal((await watcher.waitFor((m) => m.type === 'status_message' && m.user_id === 'sm-ann')).status_message, null);
    await new Promise((r) => setTimeout(r, 1100));	// the next interval: a call of its own
    ann.send({ type: 'status_message', message: 'brb', expires_in: 1 });
    const brb = await watcher.waitFor((m) => m.type === 'status_message' && m.user_id === 'sm-ann');
    assert.equal(brb.status_message, 'brb');
    const gone = await watcher.waitFor((m) => m.type === 'status_message' && m.user_id === 'sm-ann', 5000);
    assert.equal(gone.status_message, null, 'expired');
    await Promise.all([watcher.close(), ann.close(), late.close()]);
  });
});

test('bad status messages are answered with an error and change nothing; flapping costs a call per interval', async () => {
  await withRelay({ name: 'status-bad', args: ['--allow-anonymous'] }, async (relay) => {
    const p = await Peer.open(relay.wsUrl(`/ws?token=${token('sm-bob')}`));
    await p.waitFor((m) => m.type === 'state');
    const bad = [
      [{ type: 'status_message' }, 'bad_status_message'],
      [{ type: 'status_message', message: 5 }, 'bad_status_message'],
      [{ type: 'status_message', message: 'é'.repeat(141) }, 'bad_status_message'],
      [{ type: 'status_message', message: 'x', expires_in: 0 }, 'bad_expires_in'],
      [{ type: 'status_message', message: 'x', expires_in: -5 }, 'bad_expires_in'],
      [{ type: 'status_message', message: 'x', expires_in: '60' }, 'bad_expires_in'],
      [{ type: 'status_message', message: 'x', expires_in: 1e12 }, 'bad_expires_in'],
    ];
    for (const [msg, code] of bad) {
      p.send(msg);
      assert.deepEqual(await p.waitFor((m) => m.type === 'error'), { type: 'error', request: 'status_message', code },
        JSON.stringify(msg));
    }
    assert.equal(await messageOf('sm-bob'), null);
    // 140 characters is fine
    p.send({ type: 'status_message', message: 'é'.repeat(140) });
    await eventually(async () => (await messageOf('sm-bob')) === 'é'.repeat(140), 5000, '140 characters');
    // an anonymous watcher has no user
    const anon = await Peer.open(relay.wsUrl('/ws'));
    await anon.waitFor((m) => m.type === 'state');
    anon.send({ type: 'status_message', message: 'hi' });
    assert.equal((await anon.waitFor((m) => m.type === 'error')).code, 'forbidden');
    // flapping: the first goes at once, the last of the rest at the next tick
    const b0 = await metric(relay, 'presence_relay_status_message_batches_total');
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 25; i++) p.send({ type: 'status_message', message: `m${i}` });
    await eventually(async () => (await messageOf('sm-bob')) === 'm24', 5000, 'the last one');
    const batches = await metric(relay, 'presence_relay_status_message_batches_total') - b0;
    assert.ok(batches >= 1 && batches <= 2, `${batches} batches for 25 messages`);
    await Promise.all([p.close(), anon.close()]);
  });
});

test('in channels: members carry their status message in states, joins and diffs; changes reach the user\'s channels only', async () => {
  await withRelay({ name: 'status-channels', args: ['--global-feed', 'no'] }, async (relay) => {
    const open = async (u, rooms) => Peer.open(relay.wsUrl(`/ws?token=${channelToken(u, rooms)}`));
    const w1 = await open('smc-w1', ['a']);
    const w2 = await open('smc-w2', ['b']);
    w1.send({ type: 'subscribe', channel: 'a' });
    w2.send({ type: 'subscribe', channel: 'b' });
    await w1.waitFor((m) => m.type === 'state');
    await w2.waitFor((m) => m.type === 'state');
    const eve = await open('smc-eve', ['a']);
    eve.send({ type: 'join', channel: 'a' });
    await w1.waitFor((m) => m.type === 'join' && m.user_id === 'smc-eve');
    eve.send({ type: 'status_message', message: 'lunch' });
    const f = await w1.waitFor((m) => m.type === 'status_message');
    assert.deepEqual(Object.keys(f).sort(), ['channel', 'expires_at', 'seq', 'status_message', 'type', 'user_id']);
    assert.equal(f.channel, 'a');
    assert.equal(f.status_message, 'lunch');
    // a new watcher's state has it
    const w3 = await open('smc-w3', ['a']);
    w3.send({ type: 'subscribe', channel: 'a' });
    const st = await w3.waitFor((m) => m.type === 'state');
    assert.equal(st.members.find((m) => m.user_id === 'smc-eve').status_message, 'lunch');
    // hidden, then shown again: its join carries the message
    eve.send({ type: 'visibility', visible: false });
    await w1.waitFor((m) => m.type === 'presence' && m.status === 'offline');
    await new Promise((r) => setTimeout(r, 1100));
    eve.send({ type: 'visibility', visible: true });
    const j = await w1.waitFor((m) => m.type === 'join' && m.user_id === 'smc-eve');
    assert.equal(j.status_message, 'lunch', JSON.stringify(w1.messages));
    // the watcher of b heard nothing of eve
    assert.ok(!w2.messages.some((m) => JSON.stringify(m).includes('smc-eve')), JSON.stringify(w2.messages));
    await Promise.all([w1, w2, w3, eve].map((p) => p.close()));
  });
  // in a large channel, in the diff
  await withRelay({ name: 'status-diff', args: ['--global-feed', 'no', '--large-channel', '1'] }, async (relay) => {
    const ws = await Promise.all(['smd-1', 'smd-2'].map((u) => Peer.open(relay.wsUrl(`/ws?token=${channelToken(u, ['big'])}`))));
    for (const w of ws) {
      w.send({ type: 'subscribe', channel: 'big' });
      await w.waitFor((m) => m.type === 'state');
    }
    await pg.query("SELECT presence.join('big', 'smd-x', 's')");
    await ws[0].waitFor((m) => m.type === 'diff' && m.joins.some((x) => x.user_id === 'smd-x'));
    await pg.query("SELECT presence.set_status_message('smd-x', 'away for a bit')");
    const d = await ws[0].waitFor((m) => m.type === 'diff' && m.updates.some((x) => x.user_id === 'smd-x'));
    assert.equal(d.updates.find((x) => x.user_id === 'smd-x').status_message, 'away for a bit');
    await pg.query("SELECT presence.disconnect('smd-x', 's')");
    await Promise.all(ws.map((w) => w.close()));
  });
});
