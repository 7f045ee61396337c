'use strict';
// Drives the relay benchmarks (called by run.sh):
//
//   bench.js [W:R,...]            the global feed, for each watcher count W
//   bench.js channels [W:C:R]     W watchers in C channels (default 10000:1000:200)
//   bench.js storm [W:RATE:S]     W watchers of one channel while RATE members a
//                                 second join and leave it, S seconds (10000:1000:30)
//
// For the global feed and channels:
//  1. the client's floor: bench/relay/watchers --trivial, the same client
//     against a built-in fan-out that does nothing but one send() per
//     socket (no relay, no database);
//  2. the relay: a throwaway cluster, a relay, bench/relay/watchers with
//     SQL changes; the relay's RSS before and after the watchers connect
//     (memory per idle connection) and its CPU time during the rounds.
// For a storm: frames per watcher per second, watchers dropped, the relay's
// CPU per second.  Channel watchers are users with tokens (a "channels"
// claim), against a relay with --global-feed no.
//
// Env: BENCH_PROCS (watcher processes, default 1), BENCH_RELAY_ARGS (extra
// relay flags), BENCH_SKIP_TRIVIAL=1, BENCH_IDLE (seconds the watchers stay
// idle before the rounds: the relay's CPU while they do, default 0).

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { startCluster, sleep } = require('../../test/lib/cluster');
const { startRelay } = require('../../test/lib/relay');
const { sign } = require('../../test/lib/jwt');

const SECRET = 'bench-secret-0123456789abcdef0123456789';

const procs = Number(process.env.BENCH_PROCS || 1);
const idle = Number(process.env.BENCH_IDLE || 0);
const relayArgs = (process.env.BENCH_RELAY_ARGS || '').split(/\s+/).filter(Boolean);
const clockTicks = 100;	// USER_HZ on Linux

// A relay older than a limit has no flag to lift it (bench/compare.sh runs
// an older one): its flags, and their values, are left out.
const relayHelp = execFileSync(process.env.RELAY_BIN || path.join(__dirname, '../../src/relay/presence-relay'),
  ['--help'], { encoding: 'utf8' });
function known(args) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    const takesValue = i + 1 < args.length && !args[i + 1].startsWith('--');
    if (relayHelp.includes(`${args[i]} `)) out.push(args[i], ...(takesValue ? [args[i + 1]] : []));
    if (takesValue) i++;
  }
  return out;
}

const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
// utime + stime of a process, in milliseconds
const cpuMs = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks;
};

// The relay's own view, from its /metrics histogram: how long after a
// notification reached it each frame was written to a client (bucket upper
// bounds, so these are ceilings).
async function relaySideDelay(relay) {
  const text = await (await fetch(relay.url('/metrics'))).text();
  const buckets = [...text.matchAll(/_send_delay_seconds_bucket\{le="([^"]+)"\} (\d+)/g)]
    .map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]) * 1000, Number(m[2])]);
  const total = buckets[buckets.length - 1][1];
  const q = (p) => buckets.find(([, n]) => n >= p * total)[0];
  return { relay_write_p50_ms_le: q(0.5), relay_write_p99_ms_le: q(0.99) };
}

// Runs the client; onReady() is awaited when it prints "ready", onIdleDone()
// when it prints "idle done".
async function runWatchers(args, onReady, onIdleDone) {
  const child = spawn(path.join(__dirname, 'watchers'), [...args, '--procs', String(procs)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let ready;
  let idleDone;
  child.stdout.on('data', (d) => {
    out += d;
    if (!ready && out.includes('ready\n')) ready = onReady ? onReady() : Promise.resolve();
    if (!idleDone && out.includes('idle done\n')) idleDone = ready.then(() => onIdleDone && onIdleDone());
  });
  const code = await new Promise((r) => child.on('exit', r));
  await ready;
  await idleDone;
  if (code !== 0) throw new Error(`watchers exited ${code}`);
  const result = JSON.parse(out.trim().split('\n').pop());
  // every watcher must get every change, in order
  if (result.incomplete_rounds || result.out_of_order || result.failed) {
    throw new Error(`changes missed or out of order: ${JSON.stringify(result)}`);
  }
  return result;
}

// A file of W tokens, one per line: user w<i>, any channel "bench:*".
function tokenFile(watchers) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tokens-')), 'tokens');
  const exp = Math.floor(Date.now() / 1000) + 3 * 3600;
  const lines = [];
  for (let i = 0; i < watchers; i++) lines.push(sign({ sub: `w${i}`, channels: ['bench:*'], exp }, SECRET));
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

// watchers: W; extra: the client's arguments of the scenario (--channels
// C, or --storm RATE --seconds S, with --tokens FILE)
async function relayRun(watchers, rounds, extra = []) {
  const pg = await startCluster({
    name: `bench-${watchers}`,
    // no timeouts during the run: every notification is a bench change
    gucs: { 'presence.reconnect_grace': '0', 'presence.session_timeout': '1h', 'presence.idle_timeout': '1h' },
  });
  const args = extra.length
    ? ['--global-feed', 'no', '--max-sessions-per-user', '0', '--message-rate', '0']
    : ['--allow-anonymous'];
  const relay = await startRelay({
    cluster: pg, name: `bench-relay-${watchers}`, secret: extra.length ? SECRET : undefined,
    args: known([...args, '--max-connections-per-ip', '0', ...relayArgs]),
  });
  try {
    await sleep(500);
    const before = rssKb(relay.child.pid);
    let after;
    let cpu0;
    let idleCpu;
    let t0;
    const result = await runWatchers(
      ['--port', String(relay.port), '--count', String(watchers), '--rounds', String(rounds), '--db', pg.conninfo,
        '--idle', String(idle), ...extra],
      async () => {
        await sleep(300);
        after = rssKb(relay.child.pid);
        cpu0 = cpuMs(relay.child.pid);
        t0 = Date.now();
      },
      () => {
        const cpu = cpuMs(relay.child.pid);
        idleCpu = cpu - cpu0;
        cpu0 = cpu;
      },
    );
    if (idle) result.relay_idle_cpu_percent = Number(((idleCpu / ((idle - 0.3) * 1000)) * 100).toFixed(2));
    if (result.storm_per_second !== undefined) {
      // the relay's CPU per second of the storm (and the second before it)
      result.relay_cpu_ms_per_second = Number(((cpuMs(relay.child.pid) - cpu0) / ((Date.now() - t0) / 1000)).toFixed(1));
      const text = await (await fetch(relay.url('/metrics'))).text();
      result.relay_slow_clients_dropped = Number(/^presence_relay_slow_clients_dropped_total (\d+)/m.exec(text)[1]);
      result.relay_diffs = Number(/^presence_relay_diffs_total (\d+)/m.exec(text)[1]);
      // catch-up diffs for watchers that fell behind, and states for those too far behind
      result.relay_catch_ups = Number(/^presence_relay_diff_catch_ups_total (\d+)/m.exec(text)[1]);
      result.relay_channel_states = Number(/^presence_relay_channel_states_total (\d+)/m.exec(text)[1]);
    } else {
      result.relay_cpu_per_round_ms = Number(((cpuMs(relay.child.pid) - cpu0) / rounds).toFixed(2));
      Object.assign(result, await relaySideDelay(relay));
    }
    result.relay_rss_idle_kb = after;
    result.relay_rss_before_kb = before;
    result.bytes_per_idle_connection = Math.round(((after - before) * 1024) / watchers);
    return result;
  } finally {
    await relay.stop();
    await pg.stop();
  }
}

const ms = (a, b) => `${a} / ${b} ms`;

async function globalFeed(spec) {
  const plan = (spec || '1000:200,10000:100').split(',').map((x) => x.split(':').map(Number));
  const results = [];
  for (const [w, r] of plan) {
    const res = { watchers: w, rounds: r, procs };
    if (process.env.BENCH_SKIP_TRIVIAL !== '1') {
      res.floor = await runWatchers(['--trivial', '--count', String(w), '--rounds', String(r)]);
      console.log(JSON.stringify(res.floor));
    }
    res.relay = await relayRun(w, r);
    console.log(JSON.stringify(res.relay));
    results.push(res);
  }
  console.log(`\nrelay (procs=${procs}):`);
  console.log('| watchers | SQL connect -> last watcher p50 / p99 | -> median watcher p50 / p99 | -> first watcher p50 / p99 | SQL -> plain LISTEN p50 / p99 (db floor) | relay CPU per change | relay: notification -> frame written p50 / p99 (ceiling) | relay memory per idle connection |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const { relay: x } of results) {
    console.log(`| ${x.watchers} | ${ms(x.last_p50_ms, x.last_p99_ms)} | ${ms(x.median_p50_ms, x.median_p99_ms)} | ${ms(x.first_p50_ms, x.first_p99_ms)} | ${ms(x.listen_p50_ms, x.listen_p99_ms)} | ${x.relay_cpu_per_round_ms} ms | <= ${x.relay_write_p50_ms_le} / <= ${x.relay_write_p99_ms_le} ms | ${(x.bytes_per_idle_connection / 1024).toFixed(1)} kB |`);
  }
  console.log('\nclient floor:');
  console.log('| watchers | trivial fan-out: trigger -> last watcher p50 / p99 | its send loop p50 / p99 | client CPU per frame (trivial / relay run) |');
  console.log('| --- | --- | --- | --- |');
  for (const { floor: f, relay: x } of results) {
    if (!f) continue;
    console.log(`| ${f.watchers} | ${ms(f.last_p50_ms, f.last_p99_ms)} | ${ms(f.server_send_loop_p50_ms, f.server_send_loop_p99_ms)} | ${f.client_cpu_per_frame_us} / ${x.client_cpu_per_frame_us} µs |`);
  }
  return { file: 'relay.json', results };
}

// W watchers in C channels of W/C: a join in one channel, to its subscribers.
async function channels(spec) {
  const [w, c, r] = (spec || '10000:1000:200').split(':').map(Number);
  const tokens = tokenFile(w);
  const res = { watchers: w, channels: c, rounds: r, procs };
  try {
    if (process.env.BENCH_SKIP_TRIVIAL !== '1') {
      res.floor = await runWatchers(['--trivial', '--count', String(w), '--rounds', String(r), '--channels', String(c)]);
      console.log(JSON.stringify(res.floor));
    }
    res.relay = await relayRun(w, r, ['--tokens', tokens, '--channels', String(c)]);
    console.log(JSON.stringify(res.relay));
  } finally {
    fs.rmSync(path.dirname(tokens), { recursive: true, force: true });
  }
  const x = res.relay;
  const f = res.floor;
  console.log(`\nrelay, ${w} watchers in ${c} channels of ${w / c} (procs=${procs}):`);
  console.log('| SQL join -> last subscriber p50 / p99 | -> first subscriber p50 / p99 | SQL -> plain LISTEN p50 / p99 (db floor) | client floor: trigger -> last subscriber p50 / p99 | relay CPU per change | relay memory per idle connection |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  console.log(`| ${ms(x.last_p50_ms, x.last_p99_ms)} | ${ms(x.first_p50_ms, x.first_p99_ms)} | ${ms(x.listen_p50_ms, x.listen_p99_ms)} | ${f ? ms(f.last_p50_ms, f.last_p99_ms) : '-'} | ${x.relay_cpu_per_round_ms} ms | ${(x.bytes_per_idle_connection / 1024).toFixed(1)} kB |`);
  return { file: 'relay-channels.json', results: res };
}

// W watchers of one channel while RATE members a second join and leave it.
async function stormRun(spec) {
  const [w, rate, seconds] = (spec || '10000:1000:30').split(':').map(Number);
  const tokens = tokenFile(w);
  let x;
  try {
    x = await relayRun(w, 1, ['--tokens', tokens, '--storm', String(rate), '--seconds', String(seconds)]);
    console.log(JSON.stringify(x));
  } finally {
    fs.rmSync(path.dirname(tokens), { recursive: true, force: true });
  }
  console.log(`\nrelay, ${w} watchers of one channel, ${rate} members a second joining and leaving for ${seconds} s (procs=${procs}):`);
  console.log('| frames per watcher per second (mean / most) | watchers dropped (client / relay) | diffs made (shared / catch-up) | state queries | relay CPU per second | client CPU per frame |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  console.log(`| ${x.frames_per_watcher_per_second} / ${x.most_frames_per_watcher_per_second} | ${x.failed} / ${x.relay_slow_clients_dropped} | ${x.relay_diffs} / ${x.relay_catch_ups} | ${x.relay_channel_states} | ${x.relay_cpu_ms_per_second} ms | ${x.client_cpu_per_frame_us} µs |`);
  if (x.failed || x.relay_slow_clients_dropped) throw new Error('watchers were dropped');
  return { file: 'relay-storm.json', results: x };
}

(async () => {
  const [mode, spec] = ['channels', 'storm'].includes(process.argv[2])
    ? [process.argv[2], process.argv[3]] : ['global', process.argv[2]];
  const { file, results } = await (mode === 'channels' ? channels(spec) : mode === 'storm' ? stormRun(spec) : globalFeed(spec));
  const dir = path.resolve(__dirname, '..', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, file), JSON.stringify(results, null, 2));
})().catch((e) => { console.error(e); process.exit(1); });
