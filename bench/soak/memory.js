'use strict';
// Resident memory of processes over a soak (bench/soak/soak.js): samples
// by label, and whether each stayed flat after the warm-up: its private
// memory (RssAnon) within 5 %.  A postgres process's RSS also counts the
// pages of shared memory it has touched (shared buffers, the registry),
// which grows until it has touched all it will: shown, not judged.

const fs = require('node:fs');

const FLAT = 0.05;

// Resident memory of a process, in kB: all of it, and its private part
// (shared memory a postgres process touches counts in the first only).
function memory(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((new RegExp(`${k}:\\s+(\\d+)`).exec(s) || [0, 0])[1]);
    return { rss: kb('VmRSS'), anon: kb('RssAnon') };
  } catch {
    return null;
  }
}

function childrenOf(ppid) {
  const kids = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) kids.push(Number(d));
    } catch { /* gone */ }
  }
  return kids;
}

class MemorySamples {
  // notJudged: the label of a process shown but not judged (the harness).
  constructor(notJudged) {
    this.notJudged = notJudged;
    this.samples = new Map();        // label -> [{ t, rss, anon }]
  }

  // Notes the memory of each process of procs (label -> pid) at time t (ms).
  add(t, procs) {
    for (const [label, pid] of procs) {
      const m = memory(pid);
      if (!m) continue;
      if (!this.samples.has(label)) this.samples.set(label, []);
      this.samples.get(label).push({ t, ...m });
    }
  }

  // Per process seen twice or more after warmMs: first and last sample,
  // ranges, and whether it is flat.
  report(warmMs) {
    const rows = [];
    for (const [label, s] of this.samples) {
      const after = s.filter((x) => x.t >= warmMs);
      if (after.length < 2) continue;
      const range = (k) => [Math.min(...after.map((x) => x[k])), Math.max(...after.map((x) => x[k]))];
      const [rMin, rMax] = range('rss');
      const [aMin, aMax] = range('anon');
      rows.push({
        process: label,
        judged: label !== this.notJudged,
        samples: after.length,
        rss_kb_first: after[0].rss,
        rss_kb_last: after[after.length - 1].rss,
        rss_growth: (rMax - rMin) / rMin,
        anon_kb_first: after[0].anon,
        anon_kb_last: after[after.length - 1].anon,
        anon_growth: aMin ? (aMax - aMin) / aMin : 0,
        flat: (aMax - aMin) <= FLAT * aMin,
        // to tell a leak (rising to the end) from a plateau reached late
        anon_kb_last_rise_s: Math.round(after.reduce((w, x, i) => (i && x.anon > after[i - 1].anon ? x.t : w), after[0].t) / 1000),
        anon_kb_series: after.map((x) => [Math.round(x.t / 1000), x.anon]),
      });
    }
    return rows;
  }
}

module.exports = { MemorySamples, childrenOf };
