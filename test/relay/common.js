'use strict';
// What the relay test files share: the cluster settings, the secret, and
// small helpers for HTTP and tokens.

const assert = require('node:assert/strict');
const { sign } = require('../lib/jwt');
const { startRelay } = require('../lib/relay');

const SECRET = 'relay-test-secret-0123456789abcdef';

// Short timeouts so that the tests see heartbeats, away and offline quickly:
// the relay heartbeats every second (a third of session_timeout).
const GUCS = {
  'presence.session_timeout': '3s',
  'presence.idle_timeout': '2s',
  'presence.reconnect_grace': '500ms',
  'presence.sweep_interval': '100ms',
  'presence.flush_interval': '1s',
};

const token = (sub, opts) => sign(sub === undefined ? {} : { sub }, SECRET, opts);
const bearer = (t) => ({ headers: { Authorization: `Bearer ${t}` } });

async function getJson(url, options) {
  const r = await fetch(url, options);
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, headers: r.headers, body };
}

// The value of one sample of GET /metrics.
async function metric(relay, name) {
  const text = await (await fetch(relay.url('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function eventually(fn, timeoutMs = 10000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Runs fn(relay) with a relay on pg (the test secret), then stops the relay
// and checks that it exited cleanly.
async function withRelay(pg, opts, fn) {
  const relay = await startRelay({ cluster: pg, secret: SECRET, ...opts });
  try {
    await fn(relay);
  } finally {
    const status = await relay.stop();
    assert.deepEqual(status, { code: 0, signal: null }, `relay exit:\n${relay.log()}`);
  }
}

module.exports = { SECRET, GUCS, token, bearer, getJson, metric, eventually, withRelay };
