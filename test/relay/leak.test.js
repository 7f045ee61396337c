'use strict';
// No leak across channels: with --global-feed no, a client hears about a
// user only in a channel it watches, and only if that user was in that
// channel.  Over a run with many users and rooms (joins, leaves, updates,
// status changes, status messages, invisibility, sockets reconnecting,
// members joined from SQL, the relay's database link cut once) every frame every client gets
// is recorded and checked; at the end every watcher's view of its rooms,
// built from those frames by the client's rule, is what members() says.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { Peer } = require('../lib/peer');
const { ChannelView, membersOf } = require('../lib/channelview');
const common = require('./common');
const { GUCS, channelToken, eventually } = common;

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'leak' });
});

test.after(async () => {
  await pg?.stop();
});

// A deterministic generator, so that a failure can be run again as it was.
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const ROOMS = Array.from({ length: 8 }, (_, i) => `leak:${i}`);
const USERS = Array.from({ length: 40 }, (_, i) => `lu-${i}`);
const SQL_USERS = Array.from({ length: 10 }, (_, i) => `ls-${i}`);
const WATCHERS = Array.from({ length: 16 }, (_, i) => `lw-${i}`);

// Every user id a frame names (its own, its members', its diff's).
function named(m) {
  const ids = [];
  if (m.user_id !== undefined) ids.push(m.user_id);
  for (const x of m.members || []) ids.push(x.user_id);
  for (const k of ['joins', 'leaves', 'updates']) for (const x of m[k] || []) ids.push(x.user_id);
  return ids;
}

test('a watcher of one room never hears of a member of another; views end as members() says', async (t) => {
  const seed = Number(process.env.LEAK_SEED || 10);
  const rnd = random(seed);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  // ever[room]: every user that was, at some time, made a member of it
  const ever = new Map(ROOMS.map((r) => [r, new Set()]));
  const relay = await common.startRelayFor(pg, { name: 'leak', args: ['--global-feed', 'no', '--message-rate', '0'] });
  // every notification, for a failure's message
  const listener = await pg.client();
  const notes = [];
  listener.on('notification', (n) => notes.push(n.payload));
  await listener.query('LISTEN presence');
  // each client: its socket, every frame it got, and what it watched when
  const clients = [];
  const strays = [];
  const actions = new Map();   // user -> what was done, for a failure's message
  const did = (user, what) => actions.set(user, [...(actions.get(user) || []), what]);
  const connect = async (user, rooms) => {
    const p = await Peer.open(relay.wsUrl(`/ws?token=${channelToken(user, ['leak:*'])}`));
    const c = { user, p, asked: new Set(), joined: new Map() };
    // a frame of a channel must be of one the client asked for, by then
    p.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.channel && !c.asked.has(m.channel)) strays.push(`${user}: ${JSON.stringify(m)}`);
    });
    clients.push(c);
    for (const r of rooms) c.asked.add(r);
    const send = p.send.bind(p);
    p.send = (m) => { did(user, JSON.stringify(m)); send(m); };
    return c;
  };
  // A join within the reconnect grace after the user left the room (a
  // reload, or a leave and a join) announces nothing, whatever its meta
  // (docs/sql.md), so a page that wants its meta shown sends it again as an
  // update after joining, as relay.md says.
  const join = (c, room, meta) => {
    ever.get(room).add(c.user);
    c.asked.add(room);
    c.joined.set(room, { ...meta, joined: true });
    c.p.send({ type: 'join', channel: room, meta });
    c.p.send({ type: 'update', channel: room, meta: c.joined.get(room) });
  };
  try {
    // watchers: two rooms each; users: one or two rooms each
    const watchers = [];
    for (let i = 0; i < WATCHERS.length; i++) {
      const rooms = [ROOMS[i % ROOMS.length], ROOMS[(i * 3 + 1) % ROOMS.length]];
      const w = await connect(WATCHERS[i], rooms);
      for (const r of new Set(rooms)) w.p.send({ type: 'subscribe', channel: r });
      watchers.push(w);
    }
    const members = [];
    for (const u of USERS) {
      const c = await connect(u, []);
      join(c, pick(ROOMS), { n: 0 });
      if (rnd() < 0.5) join(c, pick(ROOMS), { n: 0 });
      members.push(c);
    }

    // the run: 600 steps of everything a room sees
    let cut = false;
    for (let step = 0; step < 600; step++) {
      const c = pick(members);
      const r = rnd();
      if (r < 0.25) {
        join(c, pick(ROOMS), { n: step });
      } else if (r < 0.4 && c.joined.size) {
        const room = pick([...c.joined.keys()]);
        c.joined.delete(room);
        c.p.send({ type: 'leave', channel: room });
      } else if (r < 0.6 && c.joined.size) {
        const room = pick([...c.joined.keys()]);
        c.joined.set(room, { n: step, typing: rnd() < 0.5 });
        c.p.send({ type: 'update', channel: room, meta: c.joined.get(room) });
      } else if (r < 0.65) {
        c.p.send({ type: 'heartbeat', active: rnd() < 0.5 });
      } else if (r < 0.7) {
        // a status message: heard in the user's channels only
        c.p.send({ type: 'status_message', message: rnd() < 0.8 ? `step ${step}` : null });
      } else if (r < 0.78) {
        c.p.send({ type: 'visibility', visible: rnd() < 0.6 });
      } else if (r < 0.85) {
        // a reload: the socket goes, a new one joins the same rooms
        const rooms = [...c.joined];
        await c.p.close();
        did(c.user, 'reload');
        members.splice(members.indexOf(c), 1);
        const again = await connect(c.user, []);
        for (const [room] of rooms) join(again, room, { n: step, reloaded: true });
        members.push(again);
      } else if (r < 0.95) {
        // members joined by the application, in SQL (unbound: they time out too)
        const u = pick(SQL_USERS);
        const room = pick(ROOMS);
        ever.get(room).add(u);
        if (rnd() < 0.6) await pg.query("SELECT presence.join($1, $2, 's', jsonb_build_object('sql', $3::int))", [room, u, step]);
        else await pg.query("SELECT presence.leave($1, $2, 's')", [room, u]);
      } else if (!cut && step > 300) {
        // the relay's link is cut: it connects again, joins again, sends states again
        cut = true;
        await pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'presence-relay'");
        for (const u of USERS) did(u, 'CUT');
      }
      if (step % 20 === 0) await new Promise((res) => setTimeout(res, 10));
    }

    // quiet: everybody visible and active, the SQL members gone, then a
    // marker in every room that every watcher must see
    for (const c of members) {
      c.p.send({ type: 'visibility', visible: true });
      c.p.send({ type: 'heartbeat', active: true });
    }
    await pg.query("SELECT presence.disconnect(u, 's') FROM unnest($1::text[]) u", [SQL_USERS]);
    await new Promise((res) => setTimeout(res, 1500));
    await pg.query("SELECT presence.connect('marker', 'm')");
    for (const room of ROOMS) {
      ever.get(room).add('marker');
      await pg.query("SELECT presence.join($1, 'marker', 'm')", [room]);
    }
    for (const w of watchers) {
      for (const room of w.asked) {
        await eventually(() => ChannelView.of(w.p.messages).members(room).has('marker'), 15000,
          `${w.user} sees the marker in ${room}`);
      }
    }

    // 1. no leak: every frame names only users that were in its channel
    let frames = 0;
    for (const c of clients) {
      for (const m of c.p.messages) {
        frames++;
        assert.ok(m.channel || m.type === 'error', `${c.user}: a frame with no channel: ${JSON.stringify(m)}`);
        if (!m.channel) continue;
        for (const u of named(m)) {
          assert.ok(ever.get(m.channel)?.has(u),
            `${c.user} heard of ${u} in ${m.channel}, where ${u} never was: ${JSON.stringify(m)}`);
        }
      }
    }
    assert.deepEqual(strays, [], 'frames of channels never asked for');
    // 2. every watcher's view is members() (compared until they agree: a
    // change may still be on its way)
    const differences = async (w, room) => {
      const got = ChannelView.of(w.p.messages).members(room);
      const truth = await membersOf(pg, room);
      const out = [];
      for (const u of new Set([...got.keys(), ...truth.keys()])) {
        const g = got.get(u);
        const t = truth.get(u);
        if (!g || !t || g.status !== t.status ||
            (t.sessions === 1 && JSON.stringify(g.meta) !== JSON.stringify(t.meta))) {
          const about = w.p.messages.filter((m) => m.channel === room && (m.type === 'state' || named(m).includes(u)))
            .map((m) => (m.type === 'state' ? `state@${m.seq}:${JSON.stringify(m.members.find((x) => x.user_id === u) || null)}` : JSON.stringify(m)));
          out.push(`${u}: view ${JSON.stringify(g)}, members() ${JSON.stringify(t)}; frames: ${about.join(' ')}; ` +
            `${u} did: ${(actions.get(u) || []).join(' ')}; ${u}'s errors: ${JSON.stringify(clients.filter((c) => c.user === u)
              .flatMap((c) => c.p.messages.filter((m) => m.type === 'error')))}; notified: ${notes.filter((n) => n.includes(`"${u}"`)).join(' ')}`);
        }
      }
      return out;
    };
    for (const w of watchers) {
      for (const room of w.asked) {
        let last = [];
        try {
          await eventually(async () => (last = await differences(w, room)).length === 0, 10000, 'agreement');
        } catch {
          assert.deepEqual(last, [], `${w.user}'s view of ${room}`);
        }
      }
    }
    assert.ok(frames > 1000, `${frames} frames checked`);
    assert.ok(cut, 'the link was cut');
    t.diagnostic(`seed ${seed}: ${frames} frames to ${clients.length} clients checked`);
  } finally {
    await listener.end();
    await Promise.all(clients.map((c) => c.p.close()));
    assert.deepEqual(await relay.stop(), { code: 0, signal: null }, relay.log());
    relay.cleanup();
  }
});
