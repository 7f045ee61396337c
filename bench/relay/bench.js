'use strict';
// Drives one benchmark run per watcher count: a throwaway cluster, a relay,
// the C watchers client; reads the relay's RSS before and after the
// watchers connect (memory per idle connection).  Called by run.sh.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startCluster, sleep } = require('../../test/lib/cluster');
const { startRelay } = require('../../test/lib/relay');

const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

// The relay's own view, from its /metrics histogram: how long after a
// notification reached it each frame was written to a client (bucket upper
// bounds, so these are ceilings).  Independent of how fast the client reads.
async function relaySideDelay(relay) {
  const text = await (await fetch(relay.url('/metrics'))).text();
  const buckets = [...text.matchAll(/_send_delay_seconds_bucket\{le="([^"]+)"\} (\d+)/g)]
    .map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]) * 1000, Number(m[2])]);
  const total = buckets[buckets.length - 1][1];
  const q = (p) => buckets.find(([, n]) => n >= p * total)[0];
  return { relay_write_p50_ms_le: q(0.5), relay_write_p99_ms_le: q(0.99) };
}

async function one(watchers, rounds) {
  const pg = await startCluster({ name: `bench-${watchers}`, gucs: { 'presence.reconnect_grace': '0' } });
  const relay = await startRelay({ cluster: pg, name: `bench-relay-${watchers}`, args: ['--allow-anonymous'] });
  try {
    await sleep(500);
    const before = rssKb(relay.child.pid);
    let after;
    const child = spawn(path.join(__dirname, 'watchers'),
      ['--port', String(relay.port), '--count', String(watchers), '--rounds', String(rounds), '--db', pg.conninfo],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', async (d) => {
      out += d;
      if (after === undefined && out.includes('ready\n')) {
        after = null;
        await sleep(300);
        after = rssKb(relay.child.pid);
      }
    });
    const code = await new Promise((r) => child.on('exit', r));
    if (code !== 0) throw new Error(`watchers exited ${code}`);
    const result = JSON.parse(out.trim().split('\n').pop());
    Object.assign(result, await relaySideDelay(relay));
    result.relay_rss_idle_kb = after;
    result.relay_rss_before_kb = before;
    result.bytes_per_idle_connection = Math.round(((after - before) * 1024) / watchers);
    return result;
  } finally {
    await relay.stop();
    await pg.stop();
  }
}

(async () => {
  const plan = (process.argv[2] || '1000:200,10000:100').split(',').map((x) => x.split(':').map(Number));
  const results = [];
  for (const [w, r] of plan) {
    const res = await one(w, r);
    console.log(JSON.stringify(res));
    results.push(res);
  }
  console.log('\n| watchers | SQL connect -> last watcher p50 / p99 | -> first watcher p50 / p99 | SQL -> direct LISTEN p50 / p99 (db floor) | client CPU per change (client floor) | relay: notification -> frame written, p50 / p99 (ceiling) | relay memory per idle connection |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const x of results) {
    console.log(`| ${x.watchers} | ${x.last_p50_ms} / ${x.last_p99_ms} ms | ${x.first_p50_ms} / ${x.first_p99_ms} ms | ${x.listen_p50_ms} / ${x.listen_p99_ms} ms | ${x.client_cpu_per_round_ms} ms | <= ${x.relay_write_p50_ms_le} / <= ${x.relay_write_p99_ms_le} ms | ${(x.bytes_per_idle_connection / 1024).toFixed(1)} kB |`);
  }
  const dir = path.resolve(__dirname, '..', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'relay.json'), JSON.stringify(results, null, 2));
})().catch((e) => { console.error(e); process.exit(1); });
