'use strict';
// The soak's verdict (bench/soak/soak.js): tables on stdout, everything in
// bench/results/soak.json; true if it passed.

const fs = require('node:fs');
const path = require('node:path');

// Whether the fan-out's p99 drifts over the run, or only wanders: a minute
// has one probe a second, so its p99 is its slowest probe or two, and one
// minute against another says little.  The least-squares line through the
// minutes' p99s, and how far it moves over the run against their mean:
// "the same" if within a fifth of it, or 5 ms (the delays are whole ms).
function fanOutTrend(minutes) {
  const ys = minutes.map((m) => m.p99_ms);
  const n = ys.length;
  const mean = ys.reduce((a, y) => a + y, 0) / n;
  const mx = (n - 1) / 2;
  let sxy = 0;
  let sxx = 0;
  ys.forEach((y, x) => { sxy += (x - mx) * (y - mean); sxx += (x - mx) ** 2; });
  const slope = sxx ? sxy / sxx : 0;
  const drift = slope * (n - 1);
  return {
    minutes: n,
    mean_p99_ms: Math.round(mean * 10) / 10,
    min_p99_ms: Math.min(...ys),
    max_p99_ms: Math.max(...ys),
    slope_ms_per_minute: Math.round(slope * 100) / 100,
    drift_ms: Math.round(drift * 10) / 10,
    same: n < 2 || Math.abs(drift) <= Math.max(mean / 5, 5),
  };
}

// p50 and p99 of a list of delays (ms).
function percentiles(xs) {
  const a = [...(xs || [])].sort((x, y) => x - y);
  const at = (q) => (a.length ? a[Math.min(a.length - 1, Math.floor(q * a.length))] : null);
  return { probes: a.length, p50_ms: at(0.5), p99_ms: at(0.99) };
}

// o: the options; soak: the run, for its counts; then what it found:
// clients (watchers' report), relays (their counters), agree (the tables
// against the registry), memory (MemorySamples.report()).
function report(o, soak, { clients, relays, agree, memory: mem }, out) {
  const minutes = clients.minutes.slice(0, Math.floor(soak.seconds / 60));
  const first = minutes[0];
  const last = minutes[minutes.length - 1];
  const trend = fanOutTrend(minutes);
  const dbLeg = minutes.map((_, i) => percentiles(soak.dbLeg[i]));
  const dropped = clients.failed + relays.reduce((n, r) => n + r.dropped, 0);
  const result = {
    options: o,
    heartbeat_form: soak.heartbeatForm,
    heartbeats: soak.heartbeats,
    churn: soak.churn,
    notifications: soak.notifications,
    gaps: soak.gaps.length,
    clients: { watchers: clients.watchers, states: clients.states, lost: clients.failed, frames: clients.frames },
    relays,
    fan_out_first_minute: first,
    fan_out_last_minute: last,
    fan_out_minutes: minutes,
    fan_out_trend: trend,
    db_leg_minutes: dbLeg,
    minute_samples: soak.minuteSamples,
    agreement: agree,
    memory: mem,
  };
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  console.log(`\nsoak: ${o.minutes} min, ${o.sessions} sessions of ${o.visible ? 'visible' : 'invisible'} users ` +
    `(${soak.heartbeatForm}), ${o.clients} clients, ` +
    `${o.logins} logins and logouts a second\n`);
  console.log('| process | samples | RSS after warm-up, first → last (kB) | range | private (RssAnon), first → last (kB) | range | flat (private, 5 %) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const m of mem) {
    console.log(`| ${m.process} | ${m.samples} | ${m.rss_kb_first} → ${m.rss_kb_last} | ${pct(m.rss_growth)} | ` +
      `${m.anon_kb_first} → ${m.anon_kb_last} | ${pct(m.anon_growth)} | ${!m.judged ? '' : m.flat ? 'yes' : `**no** (last rise ${m.anon_kb_last_rise_s} s into the run)`} |`);
  }
  console.log(`\n| check | result |\n| --- | --- |`);
  console.log(`| seq gaps (LISTEN, ${soak.notifications} notifications) | ${soak.gaps.length} |`);
  console.log(`| clients dropped (connections lost ${clients.failed}; relays' slow clients dropped ${relays.map((r) => r.dropped).join(' + ')}) | ${dropped} |`);
  console.log(`| heartbeats | ${soak.heartbeats.calls} in ${soak.heartbeats.batches} batches, slowest ${soak.heartbeats.slowest} ms, ${soak.heartbeats.late} late |`);
  console.log(`| logins / logouts made | ${soak.churn.logins} / ${soak.churn.logouts} (ticks skipped, a second behind: ${soak.churn.behind}) |`);
  console.log(`| presence.users against the registry | ${agree.registry} online in the registry, ${agree.users_table} in the table; ` +
    `${agree.only_in_registry} only in the registry, ${agree.only_in_table} only in the table; ` +
    `users tracked (invisible included) ${agree.registry_users} / ${agree.users_tracked_table}; ` +
    `sessions ${agree.registry_sessions} / ${agree.sessions_table} |`);
  console.log(`| fan-out (probe login → each client), first minute | p50 ${first.p50_ms} ms, p99 ${first.p99_ms} ms, max ${first.max_ms} ms (${first.receipts} receipts) |`);
  console.log(`| fan-out, last minute | p50 ${last.p50_ms} ms, p99 ${last.p99_ms} ms, max ${last.max_ms} ms (${last.receipts} receipts) |`);
  console.log(`| fan-out p99 over the run's ${trend.minutes} minutes | mean ${trend.mean_p99_ms} ms (minutes from ${trend.min_p99_ms} to ${trend.max_p99_ms}); ` +
    `trend ${trend.slope_ms_per_minute} ms a minute, ${trend.drift_ms} ms over the run: ${trend.same ? 'the same' : '**drifts** (more than a fifth of the mean and 5 ms)'} |`);
  console.log('\nBy minute: the fan-out (probe login → each client), its database part (the call → the soak\'s own LISTEN), ' +
    'and what might make it drift (sampled at the start of the minute; CPU: used in the minute before)\n');
  console.log('| minute | fan-out p50 / p99 | database part p50 / p99 | slowest recent tick | last fold | users / sessions (MB, dead rows) | relays\' CPU | clients\' CPU |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  minutes.forEach((m, i) => {
    const d = dbLeg[i];
    const x = soak.minuteSamples[i] || {};
    console.log(`| ${i + 1} | ${m.p50_ms} / ${m.p99_ms} ms | ${d.p50_ms} / ${d.p99_ms} ms | ${x.slowest_tick_ms?.toFixed(1)} ms | ` +
      `${x.last_fold_ms?.toFixed(0)} ms | ${x.users_mb} / ${x.sessions_mb} (${x.users_dead}, ${x.sessions_dead}) | ` +
      `${x.relays_cpu_ms} ms | ${x.clients_cpu_ms} ms |`);
  });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`\n(${out})`);
  const ok = soak.gaps.length === 0 && dropped === 0 && agree.only_in_registry === 0 && agree.only_in_table === 0 &&
    agree.registry_users === agree.users_tracked_table && agree.registry_sessions === agree.sessions_table &&
    mem.every((m) => m.flat || !m.judged) && trend.same;
  console.log(ok ? 'SOAK PASSED' : 'SOAK FAILED');
  return ok;
}

module.exports = { report };
