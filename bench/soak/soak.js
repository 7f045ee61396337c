'use strict';
// The soak (bench/soak.sh runs it): a throwaway cluster and two relays
// under the load of a large site for a long time, and whether anything
// grows or goes wrong:
//
//  * --sessions sessions (one a user, "soak-<n>") heartbeated at their real
//    rate: all of them every 20 s, in 100 batches spread over the 20 s
//    (presence.heartbeat_many when the extension has it, else
//    count(presence.heartbeat(u, s)) over unnest), from arrays made once.
//    Their users are invisible (unless --visible): the relay sends every
//    client a state of everyone online, some 100 bytes a user, and a
//    million of them would be 100 MB per client;
//  * --clients WebSocket clients (bench/relay/watchers --soak, each a
//    tracked user with a token) spread over the two relays, connecting over
//    --ramp seconds: each one's login goes to every client connected
//    before it, and each gets a state of every client before it, so
//    10,000 at once is some 50 million frames and 5 GB of states, which the
//    relays do not send within --send-timeout;
//  * --logins logins and as many logouts a second: presence.connect of a
//    new user, presence.disconnect of the one that logged in 30 s before,
//    one call each;
//  * a probe a second (a user "probe-<ms>" logging in), whose "online" the
//    clients time: fan-out delay per minute;
//  * a LISTEN client checking that seq has no gap.
//
// Every 10 s it samples the resident memory of every process (the
// postmaster and its children, named by pg_stat_activity, the relays, the
// clients, this driver); at the end it says whether each stayed flat after
// the warm-up (the first sixth of the run): its private memory (RssAnon)
// within 5 %.  (A postgres process's RSS also counts the pages of shared
// memory it has touched, shared buffers and the registry, which grows
// until it has touched all it will: shown, not judged.)  Then the gaps, the
// clients dropped, whether presence.users agrees with the registry once
// the churn stopped and a fold ran, and the fan-out p99 of the first and
// the last minute.  Results: printed, and in bench/results/soak.json.
//
//   node bench/soak.js [--minutes 30] [--sessions 1000000] [--clients 10000]
//                      [--logins 500] [--ramp 600] [--visible] [--short]

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startCluster, sleep } = require('../../test/lib/cluster');
const { startRelay } = require('../../test/lib/relay');
const { sign } = require('../../test/lib/jwt');
const { spawnOwned } = require('../../test/lib/programs');
const { MemorySamples, childrenOf } = require('./memory');
const { report } = require('./report');

const SECRET = 'soak-secret-0123456789abcdef0123456789';
const HEARTBEAT_EVERY_MS = 20000;
const BATCHES = 100;                 // per heartbeat interval
const CHURN_TICK_MS = 100;
const LOGGED_IN_FOR_MS = 30000;      // a churn user logs out this long after it logged in
const SAMPLE_EVERY_MS = 10000;
const RESULTS = path.join(__dirname, '..', 'results');
const HARNESS = 'soak driver (node; the harness: shown, not judged)';

function options(argv) {
  const o = { minutes: 30, sessions: 1000000, clients: 10000, logins: 500, ramp: 600, visible: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--visible') o.visible = true;
    else if (a === '--short') Object.assign(o, { minutes: 3, sessions: 100000, clients: 1000, logins: 20, ramp: 20 });
    else if (['--minutes', '--sessions', '--clients', '--logins', '--ramp'].includes(a)) o[a.slice(2)] = Number(argv[++i]);
    else throw new Error(`soak: unknown argument ${a}`);
  }
  for (const k of ['minutes', 'sessions', 'clients', 'logins', 'ramp']) if (!(o[k] > 0)) throw new Error(`soak: --${k} must be positive`);
  return o;
}

const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

// A connection of the driver's, named for pg_stat_activity; its errors
// (the server stopping at the end, say) surface through its queries.
async function connect(pg, name) {
  const c = await pg.client();
  c.on('error', () => {});
  await c.query(`SET application_name = '${name}'`);
  return c;
}

class Soak {
  constructor(o) {
    this.o = o;
    this.seconds = o.minutes * 60;
    this.memory = new MemorySamples(HARNESS);
    this.gaps = [];
    this.notifications = 0;
    this.lastSeq = null;
    this.heartbeats = { batches: 0, calls: 0, slowest: 0, late: 0 };
    this.churn = { logins: 0, logouts: 0, behind: 0 };
    this.dbLeg = [];
    this.minuteSamples = [];
  }

  async start() {
    const o = this.o;
    const extra = o.logins * (LOGGED_IN_FOR_MS / 1000) * 2 + o.clients + 10000;
    this.pg = await startCluster({
      name: 'soak',
      gucs: {
        'presence.max_sessions': o.sessions + extra,
        'max_wal_size': '4GB',
        'shared_buffers': '512MB',
      },
      artifactsDir: path.join(RESULTS, 'soak-logs'),
    });
    this.relays = [];
    for (const i of [1, 2]) {
      this.relays.push(await startRelay({
        cluster: this.pg, secret: SECRET, name: `soak-relay-${i}`,
        args: ['--max-connections-per-ip', '0'],
        artifactsDir: path.join(RESULTS, 'soak-logs'),
      }));
    }
    this.db = await connect(this.pg, 'soak-driver');
  }

  async load() {
    const o = this.o;
    const t0 = Date.now();
    const chunk = 50000;
    const conns = await Promise.all([0, 1].map(() => connect(this.pg, 'soak-load')));
    let next = 1;
    await Promise.all(conns.map(async (c) => {
      while (next <= o.sessions) {
        const from = next;
        next += chunk;
        const range = [from, Math.min(o.sessions, from + chunk - 1)];
        if (!o.visible) {
          await c.query("SELECT count(*) FROM (SELECT presence.set_visible('soak-' || i, false) " +
            'FROM generate_series($1::int, $2::int) i) hidden', range);
        }
        await c.query("SELECT count(presence.connect('soak-' || i)) FROM generate_series($1::int, $2::int) i", range);
      }
    }));
    await Promise.all(conns.map((c) => c.end()));
    await this.db.query("SELECT count(presence.connect('churn-' || i)) FROM generate_series(1, $1::int) i",
      [o.logins * LOGGED_IN_FOR_MS / 1000]);
    await this.db.query(
      `CREATE TABLE soak_batches AS SELECT i % ${BATCHES} AS b, array_agg('soak-' || i) AS users,
         array_agg('default'::text) AS sessions FROM generate_series(1, $1::int) i GROUP BY 1`, [o.sessions]);
    const many = (await this.db.query(
      "SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'heartbeat_many' AND pronamespace = 'presence'::regnamespace")).rows[0].n;
    this.heartbeatSql = many
      ? 'SELECT presence.heartbeat_many(users, sessions) AS n FROM soak_batches WHERE b = $1'
      : 'SELECT count(presence.heartbeat(u, s))::int AS n FROM soak_batches, unnest(users, sessions) AS t(u, s) WHERE b = $1';
    this.heartbeatForm = many ? 'presence.heartbeat_many' : 'count(presence.heartbeat(u, s)) over unnest';
    log(`${o.sessions} sessions of ${o.visible ? 'visible' : 'invisible'} users connected in ${Date.now() - t0} ms; ` +
      `heartbeats by ${this.heartbeatForm}`);
  }

  // Until the worker has announced the load and both relays have taken
  // every notification: clients connected before would each be owed them
  // all, and be dropped as too slow.
  async drained() {
    const deadline = Date.now() + 600000;
    for (let last = -1; ;) {
      const n = Number((await this.db.query('SELECT notifications FROM presence.stats()')).rows[0].notifications);
      const taken = await Promise.all(this.relays.map(async (r) => {
        const text = await (await fetch(r.url('/metrics'))).text();
        return Number(/^presence_relay_notifications_total (\d+)/m.exec(text)[1]);
      }));
      if (n === last && taken.every((t) => t >= n)) return;
      if (Date.now() > deadline) throw new Error(`the load not announced in 10 minutes (${n}, relays ${taken})`);
      last = n;
      await sleep(1000);
    }
  }

  // All sessions every 20 s, a batch every 200 ms, until stop().
  heartbeat() {
    this.heartbeating = (async () => {
      const c = await connect(this.pg, 'soak-heartbeat');
      const every = HEARTBEAT_EVERY_MS / BATCHES;
      const t0 = Date.now();
      for (let i = 0; !this.stopHeartbeats; i++) {
        const s = Date.now();
        const { rows } = await c.query(this.heartbeatSql, [i % BATCHES]);
        const took = Date.now() - s;
        this.heartbeats.batches++;
        this.heartbeats.calls += Number(rows[0].n);
        this.heartbeats.slowest = Math.max(this.heartbeats.slowest, took);
        const wait = t0 + (i + 1) * every - Date.now();
        if (wait < 0) this.heartbeats.late++;
        else await sleep(wait);
      }
      await c.end();
    })();
  }

  async listen() {
    this.listener = await connect(this.pg, 'soak-listen');
    this.listener.on('notification', (n) => {
      const { seq, user_id: user, status } = JSON.parse(n.payload);
      if (this.lastSeq !== null && seq !== this.lastSeq + 1) this.gaps.push({ after: this.lastSeq, got: seq });
      this.lastSeq = seq;
      this.notifications++;
      // the database's part of a probe's fan-out: its call to this LISTEN
      if (this.t0 && status === 'online' && user?.startsWith('probe-')) {
        const minute = Math.floor((Date.now() - this.t0) / 60000);
        (this.dbLeg[minute] ||= []).push(Date.now() - Number(user.slice(6)));
      }
    });
    await this.listener.query('LISTEN presence');
  }

  // Logins of new users and logouts of those logged in 30 s before, one
  // call each, over four connections; the churn users of the first 30 s
  // were logged in with the load, so that logouts run from the start.
  async startChurn() {
    const o = this.o;
    this.churnConns = await Promise.all([0, 1, 2, 3].map(() => connect(this.pg, 'soak-churn')));
    const pre = o.logins * LOGGED_IN_FOR_MS / 1000;
    this.loggedIn = Array.from({ length: pre }, (_, i) => `churn-${i + 1}`);
    this.nextChurn = pre + 1;
    this.probes = [];
    const perTick = o.logins * CHURN_TICK_MS / 1000;
    let owed = 0;
    let k = 0;
    let pending = 0;
    const call = (sql, arg, what) => {
      pending++;
      this.churnConns[k++ % this.churnConns.length].query(sql, [arg])
        .then(() => { this.churn[what]++; }, (e) => { this.churnError = e; })
        .finally(() => { pending--; });
    };
    this.churnTimer = setInterval(() => {
      if (pending > o.logins * 2) {  // a second behind: count it, do not pile on
        this.churn.behind++;
        return;
      }
      owed += perTick;
      for (; owed >= 1; owed--) {
        const u = `churn-${this.nextChurn++}`;
        this.loggedIn.push(u);
        call('SELECT presence.connect($1)', u, 'logins');
        call('SELECT presence.disconnect($1)', this.loggedIn.shift(), 'logouts');
      }
    }, CHURN_TICK_MS);
    this.probeTimer = setInterval(() => {
      const u = `probe-${Date.now()}`;
      this.probes.push(u);
      call('SELECT presence.connect($1)', u, 'logins');
      if (this.probes.length > 10) call('SELECT presence.disconnect($1)', this.probes.shift(), 'logouts');
    }, 1000);
  }

  async stopChurn() {
    clearInterval(this.churnTimer);
    clearInterval(this.probeTimer);
    for (const u of this.probes) await this.db.query('SELECT presence.disconnect($1)', [u]);
    await Promise.all(this.churnConns.map((c) => c.end()));
    if (this.churnError) throw this.churnError;
  }

  // The processes to watch, by label.
  async processes() {
    const procs = new Map();
    const { rows } = await this.db.query('SELECT pid, backend_type, application_name FROM pg_stat_activity');
    const byPid = new Map(rows.map((r) => [r.pid, r.backend_type === 'client backend'
      ? `postgres: ${r.application_name || 'client'}` : `postgres: ${r.backend_type}`]));
    procs.set('postgres: postmaster', this.pg.child.pid);
    for (const pid of childrenOf(this.pg.child.pid)) {
      let name = byPid.get(pid);
      if (!name) {
        try { name = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(); } catch { continue; }
      }
      procs.set(`${name} [${pid}]`, pid);
    }
    this.relays.forEach((r, i) => procs.set(`relay ${i + 1}`, r.child.pid));
    if (this.watchers) {
      procs.set('clients: driver', this.watchers.pid);
      childrenOf(this.watchers.pid).forEach((pid, i) => procs.set(`clients: process ${i + 1}`, pid));
    }
    procs.set(HARNESS, process.pid);
    return procs;
  }

  async sample() {
    this.memory.add(Date.now() - this.t0, await this.processes());
  }

  // Once a minute, what might make the fan-out drift: the worker's slowest
  // recent tick, the flusher's last fold, the tables' size and dead rows,
  // and the CPU the relays and the clients used in the minute.
  async sampleMinute() {
    const cpu = (pid) => {
      try {
        const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000 / 100;
      } catch { return NaN; }
    };
    const { rows: [r] } = await this.db.query(`
      SELECT (SELECT max(total_ms) FROM presence.tick_parts())::float8 AS slowest_tick_ms,
             (SELECT last_flush_ms FROM presence.stats())::float8 AS last_fold_ms,
             (pg_total_relation_size('presence.users') / 1048576)::int AS users_mb,
             (pg_total_relation_size('presence.sessions') / 1048576)::int AS sessions_mb,
             (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'presence.users'::regclass)::int AS users_dead,
             (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'presence.sessions'::regclass)::int AS sessions_dead`);
    const now = { relays: this.relays.reduce((a, x) => a + cpu(x.child.pid), 0),
      clients: [this.watchers.pid, ...childrenOf(this.watchers.pid)].reduce((a, p) => a + cpu(p), 0) };
    const before = this.lastCpu || now;
    this.lastCpu = now;
    this.minuteSamples.push({ ...r, relays_cpu_ms: Math.round(now.relays - before.relays),
      clients_cpu_ms: Math.round(now.clients - before.clients) });
  }

  // Until the clients' own logins are announced: no notification for 2 s.
  async quiet() {
    const deadline = Date.now() + 600000;
    for (let last = -1; last !== this.notifications;) {
      if (Date.now() > deadline) throw new Error('the clients\' logins still being announced after 10 minutes');
      last = this.notifications;
      await sleep(2000);
    }
  }

  // The clients: resolves with their report once they exit.
  async startClients() {
    const o = this.o;
    const exp = Math.floor(Date.now() / 1000) + this.seconds + 3600;
    const file = path.join(os.tmpdir(), `soak-tokens-${process.pid}`);
    fs.writeFileSync(file, Array.from({ length: o.clients }, (_, i) => sign({ sub: `client-${i + 1}` }, SECRET, { exp })).join('\n') + '\n',
      { mode: 0o600 });
    const child = spawnOwned(path.join(__dirname, '..', 'relay', 'watchers'),
      ['--soak', '--seconds', String(this.seconds), '--port', this.relays.map((r) => r.port).join(','),
        '--tokens', file, '--count', String(o.clients), '--procs', '2',
        '--connect-rate', String(Math.ceil(o.clients / o.ramp))],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    this.watchers = child;
    let out = '';
    const ready = new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('ready\n')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`watchers exited ${code} before ready`)));
    });
    this.clientsDone = new Promise((resolve, reject) => child.on('exit', (code) => {
      fs.rmSync(file, { force: true });
      if (code !== 0) reject(new Error(`watchers exited ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    }));
    this.clientsDone.catch(() => {});
    await ready;
  }

  async relayMetrics() {
    return Promise.all(this.relays.map(async (r) => {
      const text = await (await fetch(r.url('/metrics'))).text();
      const v = (name) => Number((new RegExp(`^${name} (\\d+)`, 'm').exec(text) || [0, NaN])[1]);
      return {
        dropped: v('presence_relay_slow_clients_dropped_total'),
        send_timeouts: v('presence_relay_send_timeouts_total'),
        db_reconnects: v('presence_relay_db_reconnects_total'),
        session_errors: v('presence_relay_session_errors_total'),
      };
    }));
  }

  // Once the churn stopped: the reconnect grace over, two folds later,
  // presence.users and presence.sessions against the registry.
  async agreement() {
    await sleep(7000);   // presence.reconnect_grace (5 s) and a tick
    const flushes = async () => Number((await this.db.query('SELECT flushes FROM presence.stats()')).rows[0].flushes);
    const f0 = await flushes();
    const deadline = Date.now() + 120000;
    while (await flushes() < f0 + 2) {
      if (Date.now() > deadline) throw new Error('no fold in two minutes');
      await sleep(500);
    }
    const { rows: [r] } = await this.db.query(`
      WITH reg AS (SELECT user_id, status FROM presence.online_users()),
           tab AS (SELECT user_id, status FROM presence.users WHERE status <> 'offline')
      SELECT (SELECT count(*) FROM reg)::int AS registry, (SELECT count(*) FROM tab)::int AS users_table,
             (SELECT count(*) FROM (SELECT * FROM reg EXCEPT SELECT * FROM tab) x)::int AS only_in_registry,
             (SELECT count(*) FROM (SELECT * FROM tab EXCEPT SELECT * FROM reg) x)::int AS only_in_table,
             (SELECT sessions FROM presence.stats())::int AS registry_sessions,
             (SELECT count(*) FROM presence.sessions)::int AS sessions_table,
             (SELECT users FROM presence.stats())::int AS registry_users,
             (SELECT count(*) FROM presence.users WHERE NOT visible OR status <> 'offline')::int AS users_tracked_table`);
    return r;
  }

  async run() {
    const o = this.o;
    await this.start();
    await this.load();
    this.heartbeat();
    await this.drained();
    log('the load announced, and taken by the relays');
    await this.listen();
    log(`${o.clients} clients connecting to the relays over ${o.ramp} s`);
    await this.startClients();
    await this.quiet();
    this.t0 = Date.now();
    await this.startChurn();
    log(`soak: ${o.minutes} min, ${o.logins} logins and logouts a second, ${o.clients} clients, ${o.sessions} sessions`);
    await this.sample();
    await this.sampleMinute();
    const sampler = setInterval(() => this.sample().catch((e) => { this.sampleError = e; }), SAMPLE_EVERY_MS);
    const minutely = setInterval(() => this.sampleMinute().catch((e) => { this.sampleError = e; }), 60000);
    const progress = setInterval(() => log(`${Math.round((Date.now() - this.t0) / 1000)} s: ` +
      `${this.notifications} notifications, ${this.gaps.length} gaps, ${this.churn.logins} logins, ` +
      `${this.churn.logouts} logouts, ${this.heartbeats.calls} heartbeats (slowest batch ${this.heartbeats.slowest} ms)`), 60000);
    let clients;
    try {
      clients = await this.clientsDone;
    } finally {
      clearInterval(sampler);
      clearInterval(minutely);
      clearInterval(progress);
    }
    await this.sample();
    await this.stopChurn();
    const relays = await this.relayMetrics();
    const agree = await this.agreement();
    this.stopHeartbeats = true;
    await this.heartbeating;
    if (this.sampleError) throw this.sampleError;
    return { clients, relays, agree };
  }

  async stop() {
    this.stopHeartbeats = true;
    clearInterval(this.churnTimer);
    clearInterval(this.probeTimer);
    this.watchers?.kill('SIGKILL');
    await this.listener?.end().catch(() => {});
    await this.db?.end().catch(() => {});
    for (const r of this.relays || []) await r.stop();
    await this.pg?.stop();
  }
}

async function main() {
  const o = options(process.argv.slice(2));
  const soak = new Soak(o);
  let ok = false;
  try {
    const result = await soak.run();
    ok = report(o, soak, { ...result, memory: soak.memory.report(soak.seconds * 1000 / 6) },
      path.join(RESULTS, 'soak.json'));
  } finally {
    await soak.stop();
  }
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
