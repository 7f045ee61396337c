'use strict';
// The commands of operations.md's "Monitoring", run as written against the
// deploy system (only the ports and the database changed for the test
// machine), and every metric and stats() column its table names found in
// what they answer.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { withSystem } = require('./system');
const { repoRoot } = require('../lib/relay');

function section() {
  const text = fs.readFileSync(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const from = text.indexOf('\n## Monitoring\n');
  assert.ok(from >= 0);
  const to = text.indexOf('\n## ', from + 1);
  return text.slice(from, to < 0 ? undefined : to);
}

// The table's rows of one source ("`presence.stats()`", say), up to the next.
function rowsOf(text, source) {
  const rows = text.split('\n').filter((l) => l.startsWith('| '));
  const at = rows.findIndex((r) => r.startsWith(`| ${source} |`));
  assert.ok(at >= 0, `a row for ${source}`);
  const end = rows.findIndex((r, i) => i > at && !r.startsWith('| |'));
  return rows.slice(at, end < 0 ? undefined : end);
}

test('the monitoring commands of operations.md answer as it says', async () => {
  await withSystem({}, async (sys) => {
    await sys.openPages(['page-01', 'page-02', 'page-03']);
    await sys.converged();
    const text = section();
    const block = text.match(/```\n([\s\S]*?)```/)[1];
    const relay = sys.relays[0];
    const metricsPort = relay.opts.args[relay.opts.args.indexOf('--metrics-bind') + 1].split(':')[1];
    // not a superuser: what the text says it needs
    await sys.primary.query('CREATE ROLE monitor LOGIN IN ROLE pg_monitor');
    await sys.primary.query('GRANT EXECUTE ON FUNCTION presence.stats() TO monitor');
    const out = [];
    for (const line of block.trim().split('\n')) {
      const command = line.replace(/\s+# .*$/, '')
        .replace('127.0.0.1:8081', `127.0.0.1:${relay.port}`)
        .replace('127.0.0.1:9081', `127.0.0.1:${metricsPort}`)
        .replace('psql -d app', `psql -h ${sys.primary.socketDir} -p ${sys.primary.port} -U monitor -d postgres`);
      out.push(execFileSync('sh', ['-c', command], { encoding: 'utf8' }));
    }
    const [health, metrics, stats, activity] = out;

    const h = JSON.parse(health);
    assert.deepEqual({ ...h, connections: 0 }, { status: 'ok', database: 'up', notifications: 'ok', connections: 0 });
    assert.ok(h.connections >= 1);
    for (const name of new Set(text.match(/presence_relay_[a-z_]+/g))) {
      assert.match(metrics, new RegExp(`^${name}(_bucket)?[{ ]`, 'm'), `${name} in /metrics`);
    }
    assert.match(metrics, /^presence_relay_tokens_total\{event="expired"\} /m);
    assert.match(metrics, /^presence_relay_connections\{kind="tracked"\} [1-9]/m);

    const [columns, values] = stats.split('\n').filter((l, i) => i !== 1).map((l) => l.split('|').map((c) => c.trim()));
    for (const row of rowsOf(text, '`presence.stats()`')) {
      for (const [, name] of row.split(' | ')[1].matchAll(/`([a-z_]+)`/g)) assert.ok(columns.includes(name), `stats() has ${name}`);
    }
    assert.equal(values[columns.indexOf('ready')], 't');
    assert.equal(values[columns.indexOf('sessions')], '5', 'three pages and two watchers');
    assert.match(activity, /presence worker/);
    assert.match(activity, /presence flusher/);
  });
});
