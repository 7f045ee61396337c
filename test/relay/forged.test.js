'use strict';
// Hostile database roles: notifications forged by a role with no grants,
// look-alike operators and functions planted in public, and the seq of a
// state that lets clients tell old events from new ones.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('pg');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, bearer, getJson, metric, eventually, logTimes } = require('./common');

let pg;
let relay;
let watcher;

// as documented in docs/relay.md (Database role)
const RELAY_ROLE_SQL = `
  CREATE ROLE presence_relay LOGIN;
  GRANT USAGE ON SCHEMA presence TO presence_relay;
  GRANT EXECUTE ON FUNCTION presence.connect(text, text, jsonb, boolean),
                            presence.heartbeat(text, text, boolean),
                            presence.heartbeat_many(text[], text[], boolean),
                            presence.disconnect(text, text),
                            presence.set_visible(text, boolean),
                            presence.stats()
        TO presence_relay;`;

const connectAs = async (user) => {
  const c = new Client({ host: pg.socketDir, port: pg.port, user, database: pg.database });
  await c.connect();
  return c;
};
const relayConninfo = () => `host=${pg.socketDir} port=${pg.port} user=presence_relay dbname=${pg.database}`;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'forged' });
  await pg.query(`${RELAY_ROLE_SQL}
    CREATE ROLE eve LOGIN;           -- no grants at all
    CREATE ROLE mallory LOGIN;
    GRANT CREATE ON SCHEMA public TO mallory;`);
  relay = await startRelay({ secret: SECRET, name: 'forged', args: ['--db', relayConninfo()] });
  watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('watcher')}`));
  await watcher.waitFor((m) => m.type === 'state');
});

test.after(async () => {
  await watcher?.close();
  const status = await relay?.stop();
  await pg?.stop();
  assert.deepEqual(status, { code: 0, signal: null });
});

// Everything the watcher got since its cursor, as a list.
const since = (peer) => peer.messages.slice(peer.cursor);

test('notifications forged by a role with no grants reach nobody; real changes still do', async () => {
  const forged = [
    // a full "state" through the duplicated "type" a spliced frame had
    '{"seq":1,"type":"state","users":[{"user_id":"mallory","status":"online","last_active":null,"sessions":1}]}',
    // a perfectly shaped change: the sender is what gives it away
    '{"seq":999999,"user_id":"mallory","status":"online","previous":"offline","last_active":null}',
    '{}',
    '{"seq":2,"user_id":"x","status":"online"',
    '[{"seq":3,"user_id":"x","status":"online","previous":"offline","last_active":null}]',
    `{"seq":4,"user_id":"${'m'.repeat(7000)}","status":"online","previous":"offline","last_active":null}`,
    `{"seq":5,"user_id":"x","status":"${'o'.repeat(300)}","previous":"offline","last_active":null}`,
  ];
  const eve = await connectAs('eve');
  const ignored0 = await metric(relay, 'presence_relay_notifications_ignored_total{reason="sender"}');
  for (const payload of forged) await eve.query('SELECT pg_notify($1, $2)', ['presence', payload]);
  // and a flood, which must not turn into a flood of queries
  const reads0 = await metric(relay, 'presence_relay_worker_pid_reads_total');
  for (let i = 0; i < 300; i++) await eve.query(`NOTIFY presence, '{"seq":${i}}'`);
  await eve.end();

  // a real change, notified after all that, arrives alone
  await pg.query("SELECT presence.connect('real-1', 's')");
  const real = await watcher.waitPresence('real-1', 'online');
  const got = since(watcher);
  assert.ok(!watcher.messages.some((m) => m.type === 'state' && m.users?.some((u) => u.user_id === 'mallory')),
    'no forged state');
  assert.ok(!watcher.messages.some((m) => m.user_id === 'mallory' || m.unparsable !== undefined ||
    (m.type === 'presence' && m.user_id !== 'real-1' && m.user_id !== 'watcher')),
  `nothing forged reached the client: ${JSON.stringify(watcher.messages).slice(0, 500)} ${got.length}`);
  await eventually(async () => await metric(relay, 'presence_relay_notifications_ignored_total{reason="sender"}') ===
    ignored0 + forged.length + 300, 10000, 'every forged notification counted as ignored');
  const reads = await metric(relay, 'presence_relay_worker_pid_reads_total') - reads0;
  assert.ok(reads <= 4, `${reads} reads of worker_pid for 300 forged notifications`);
  assert.equal(typeof real.seq, 'number');
  assert.deepEqual(Object.keys(real).sort(), ['last_active', 'previous', 'seq', 'status', 'type', 'user_id']);
  await pg.query("SELECT presence.disconnect('real-1', 's')");
  await watcher.waitPresence('real-1', 'offline');
});

test('a restarted presence worker is recognised by its new pid: nothing is lost', async () => {
  const { rows: [{ pid }] } = await pg.query('SELECT worker_pid AS pid FROM presence.stats()');
  await pg.query('SELECT pg_terminate_backend($1)', [pid]);
  // the postmaster starts it again after a few seconds
  await eventually(async () => {
    const { rows } = await pg.query('SELECT worker_pid AS p FROM presence.stats()');
    return rows[0].p && rows[0].p !== pid;
  }, 30000, 'a new worker');
  await pg.query("SELECT presence.connect('after-restart', 's')");
  await watcher.waitPresence('after-restart', 'online', 15000);
  await pg.query("SELECT presence.disconnect('after-restart', 's')");
  await watcher.waitPresence('after-restart', 'offline', 15000);
  assert.match(relay.log(), /the presence worker is now pid \d+/);
});

// What the relay's queries once resolved to, given a better type match,
// planted by a role with CREATE on public; and the relay's role prefers
// public, so that only a pinned search_path helps.
async function plant() {
  const mallory = await connectAs('mallory');
  await mallory.query(`
    CREATE FUNCTION public.hide(text, json) RETURNS text
      LANGUAGE sql AS $$ SELECT '{"type":"state","users":[]' $$;
    CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = json, FUNCTION = public.hide);
    CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text
      LANGUAGE sql AS $$ SELECT NULL::text WHERE false $$;
    CREATE FUNCTION public.unnest(boolean[]) RETURNS SETOF boolean
      LANGUAGE sql AS $$ SELECT NULL::boolean WHERE false $$;
    CREATE FUNCTION public.to_json(timestamptz) RETURNS json
      LANGUAGE sql AS $$ SELECT '"planted"'::json $$;
    CREATE FUNCTION public.count() RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;
    CREATE FUNCTION public.eq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
    CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.eq);`);
  await mallory.end();
  await pg.query('ALTER ROLE presence_relay SET search_path = public, pg_catalog');
}

async function unplant() {
  await pg.query('ALTER ROLE presence_relay RESET search_path');
  await pg.query(`DROP OPERATOR public.|| (text, json); DROP OPERATOR public.= (text, text);
    DROP FUNCTION public.hide(text, json), public.unnest(text[]), public.unnest(boolean[]),
      public.to_json(timestamptz), public.count(), public.eq(text, text)`);
}

test('look-alike operators and functions planted in public change nothing', async () => {
  await plant();
  const r = await startRelay({ secret: SECRET, name: 'forged-planted', args: ['--db', relayConninfo()] });
  try {
    const w = await Peer.open(r.wsUrl(`/ws?token=${token('planted-watcher')}`));
    const state = await w.waitFor((m) => m.type === 'state');
    assert.ok(state.users.some((u) => u.user_id === 'planted-watcher' && u.sessions === 1), JSON.stringify(state));
    assert.ok(state.users.every((u) => u.last_active !== 'planted'));
    const alice = await Peer.open(r.wsUrl(`/ws?token=${token('planted-alice')}`));
    await w.waitPresence('planted-alice', 'online');
    alice.send({ type: 'visibility', visible: false });
    await w.waitPresence('planted-alice', 'offline');
    alice.send({ type: 'visibility', visible: true });
    await w.waitPresence('planted-alice', 'online', 5000);
    // heartbeats keep the sessions alive past session_timeout (3 s)
    const b0 = await metric(r, 'presence_relay_heartbeat_batches_total');
    await eventually(async () => await metric(r, 'presence_relay_heartbeat_batches_total') >= b0 + 4, 10000, 'heartbeats');
    const { rows } = await pg.query("SELECT count(*)::int AS n FROM presence.sessions() WHERE user_id LIKE 'planted-%'");
    assert.equal(rows[0].n, 2);
    const online = await getJson(r.url('/online'), bearer(token('reader')));
    assert.ok(online.body.users.some((u) => u.user_id === 'planted-alice'));
    await alice.close();
    await w.waitPresence('planted-alice', 'offline');
    await w.close();
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
  }
});

// The user's own options are seen in the time zone of last_active.
test('--db as a URI, a keyword string or PG* variables: options kept, search_path pinned', async () => {
  const forms = {
    uri: {
      args: ['--db', `postgresql:///${pg.database}?host=${encodeURIComponent(pg.socketDir)}&port=${pg.port}` +
        '&user=presence_relay&options=-cTimeZone%3DAsia%2FKolkata'],
      offset: '+05:30',
    },
    keywords: { args: ['--db', `${relayConninfo()} options='-c TimeZone=Asia/Kathmandu'`], offset: '+05:45' },
    env: {
      args: [],
      env: { PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: 'presence_relay', PGDATABASE: pg.database,
        PGOPTIONS: '-c TimeZone=Etc/GMT+3' },
      offset: '-03:00',
    },
  };
  try {
    for (const [form, { args, env, offset }] of Object.entries(forms)) {
      const r = await startRelay({ secret: SECRET, name: `forged-db-${form}`, args, env });
      try {
        const p = await Peer.open(r.wsUrl(`/ws?token=${token(`db-${form}`)}`));
        const state = await p.waitFor((m) => m.type === 'state');
        const me = state.users.find((u) => u.user_id === `db-${form}`);
        assert.ok(me, `${form}: found itself despite planted look-alikes: ${JSON.stringify(state)}`);
        assert.ok(me.last_active.endsWith(offset), `${form}: ${me.last_active} in the time zone of its options`);
        await p.close();
      } finally {
        assert.deepEqual(await r.stop(), { code: 0, signal: null }, r.log());
      }
    }
  } finally {
    await unplant();
  }
});

test('state carries the seq of the last change queued before it; later events have higher seqs', async () => {
  // quiet first: once the watcher has seen this, nothing older is on its way
  await pg.query("SELECT presence.connect('seq-quiet', 's')");
  await watcher.waitPresence('seq-quiet', 'online');
  const r = await startRelay({ cluster: pg, secret: SECRET, name: 'forged-seq', args: ['--allow-anonymous'] });
  try {
    // a link that has had no change yet gives null (a watcher makes none)
    const first = await Peer.open(r.wsUrl('/ws'));
    const s0 = await first.waitFor((m) => m.type === 'state');
    assert.ok('seq' in s0);
    assert.equal(s0.seq, null);
    assert.ok(s0.users.some((u) => u.user_id === 'seq-quiet'));

    // churn, while clients come and go
    const users = Array.from({ length: 20 }, (_, i) => `churn-${i}`);
    let stop = false;
    const churn = (async () => {
      for (let round = 0; !stop; round++) {
        const u = users[round % users.length];
        await pg.query(round % 3 ? 'SELECT presence.connect($1, $2)' : 'SELECT presence.disconnect($1, $2)', [u, 's']);
      }
    })();
    const peers = [];
    for (let i = 0; i < 8; i++) {
      await new Promise((res) => setTimeout(res, 150));
      const p = await Peer.open(r.wsUrl(`/ws?token=${token(`seq-${i}`)}`));
      p.state = await p.waitFor((m) => m.type === 'state');
      peers.push(p);
    }
    stop = true;
    await churn;
    await pg.query("SELECT presence.connect('seq-end', 's')");
    await Promise.all([first, ...peers].map((p) => p.waitPresence('seq-end', 'online')));

    // first's view: its state, then every event in order
    const log = first.messages.filter((m) => m.type === 'presence');
    for (let i = 1; i < log.length; i++) assert.equal(log[i].seq, log[i - 1].seq + 1, 'no gap, no repeat');
    for (const p of peers) {
      const S = p.state.seq;
      assert.equal(typeof S, 'number', 'a state after changes has a seq');
      const events = p.messages.filter((m) => m.type === 'presence');
      assert.ok(events.every((e) => e.seq > S), 'every event after a state is newer than it');
      // a user with no change after S is in the state as its last change up to S left it
      const last = new Map();
      const later = new Set();
      for (const e of log) if (e.seq <= S) last.set(e.user_id, e.status); else later.add(e.user_id);
      for (const [u, status] of last) {
        if (later.has(u) || !u.startsWith('churn-')) continue;
        const inState = p.state.users.find((x) => x.user_id === u);
        assert.equal(inState ? inState.status : 'offline', status, `${u} as of seq ${S}`);
      }
      // and state + events end where first's view ends
      const view = new Map(p.state.users.map((u) => [u.user_id, u.status]));
      for (const e of events) if (e.status === 'offline') view.delete(e.user_id); else view.set(e.user_id, e.status);
      const ref = new Map(s0.users.map((u) => [u.user_id, u.status]));
      for (const e of log) if (e.status === 'offline') ref.delete(e.user_id); else ref.set(e.user_id, e.status);
      for (const u of users) assert.equal(view.get(u), ref.get(u), `${u}: the same in every client's view`);
    }
    const online = await getJson(r.url('/online'), bearer(token('reader')));
    assert.equal(typeof online.body.seq, 'number');
    await Promise.all([first, ...peers].map((p) => p.close()));
    await pg.query("SELECT presence.disconnect(u, 's') FROM unnest($1::text[]) u", [[...users, 'seq-end', 'seq-quiet']]);
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
  }
});

test('the role needs EXECUTE on presence.stats(): without it the link says so and stays down', async () => {
  await pg.query('REVOKE EXECUTE ON FUNCTION presence.stats() FROM presence_relay, PUBLIC');
  const r = await startRelay({ secret: SECRET, name: 'forged-nostats', expectDb: false,
    args: ['--db', relayConninfo()] });
  try {
    await eventually(() => /GRANT EXECUTE ON FUNCTION presence\.stats\(\)/.test(r.log()), 10000, 'the hint in the log');
    await eventually(async () => (await getJson(r.url('/healthz'))).status === 503, 5000, '/healthz 503');
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
    await pg.query('GRANT EXECUTE ON FUNCTION presence.stats() TO presence_relay, PUBLIC');
  }
});

// A link that comes up and fails at once (here: no grant on stats()) is
// retried at the backoff's pace, not in a loop: the backoff starts over
// only after a link stayed up 10 s.  Before, it started over at every link
// up, and the relay tried about every 0.13 s (some 38 times in 5 s).
test('a link that fails right after it came up is retried at the backoff\'s pace, not in a loop', async () => {
  await pg.query('REVOKE EXECUTE ON FUNCTION presence.stats() FROM presence_relay, PUBLIC');
  const r = await startRelay({ secret: SECRET, name: 'forged-nostats-pace', expectDb: false,
    args: ['--db', relayConninfo()] });
  try {
    const hint = /the relay's role needs GRANT EXECUTE ON FUNCTION presence\.stats\(\)/;
    // a try later than 5 s after the first closes the window
    const times = await eventually(() => {
      const t = logTimes(r, hint);
      return t.length && t[t.length - 1] > t[0] + 5000 && t;
    }, 15000, 'tries over more than 5 s');
    const inWindow = times.filter((x) => x <= times[0] + 5000).length;
    assert.ok(inWindow <= 8, `${inWindow} tries in 5 s, each saying why:\n${r.log()}`);
    assert.equal((await getJson(r.url('/healthz'))).status, 503);
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
    await pg.query('GRANT EXECUTE ON FUNCTION presence.stats() TO presence_relay, PUBLIC');
  }
});

test('heartbeats go out through presence.heartbeat_many(): the active and the idle sessions apart, the timeout re-read', async () => {
  // a role that may not call heartbeat() at all
  await pg.query('REVOKE EXECUTE ON FUNCTION presence.heartbeat(text, text, boolean) FROM presence_relay');
  const r = await startRelay({ secret: SECRET, name: 'forged-beats', args: ['--db', relayConninfo()] });
  try {
    const busy = await Peer.open(r.wsUrl(`/ws?token=${token('beat-busy')}`));
    const idle = await Peer.open(r.wsUrl(`/ws?token=${token('beat-idle')}`));
    await Promise.all([busy, idle].map((p) => p.waitFor((m) => m.type === 'state')));
    idle.send({ type: 'heartbeat', active: false });
    const b0 = await metric(r, 'presence_relay_heartbeat_batches_total');
    // past session_timeout (3 s): without heartbeats both would be gone
    await eventually(async () => await metric(r, 'presence_relay_heartbeat_batches_total') >= b0 + 4, 10000, 'heartbeats');
    const { rows } = await pg.query(
      "SELECT user_id, last_heartbeat > connected_at AS beat FROM presence.sessions() WHERE user_id LIKE 'beat-%' ORDER BY 1");
    assert.deepEqual(rows, [{ user_id: 'beat-busy', beat: true }, { user_id: 'beat-idle', beat: true }]);
    // the idle one's heartbeats are not activity: it goes away, the busy one does not
    await busy.waitPresence('beat-idle', 'away', 8000);
    assert.equal((await pg.query("SELECT presence.status('beat-busy') AS s")).rows[0].s, 'online');
    assert.doesNotMatch(r.log(), /heartbeat failed/);
    await Promise.all([busy.close(), idle.close()]);
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
    await pg.query('GRANT EXECUTE ON FUNCTION presence.heartbeat(text, text, boolean) TO presence_relay');
  }
});
