'use strict';
// What the relay test files share: the cluster settings, the secret, and
// small helpers for relays, HTTP and tokens.

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
// a token whose "channels" claim is channels (names and "prefix*" patterns)
const channelToken = (sub, channels, opts) => sign({ sub, channels }, SECRET, opts);
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

// The times (ms since the epoch, from lws's "[YYYY/MM/DD HH:MM:SS:ffff]"
// prefix) of the relay's log lines that match re: its database link's
// failed attempts, say.
function logTimes(relay, re) {
  return relay.log().split('\n').filter((l) => re.test(l)).map((l) => {
    const m = l.match(/^\[(\d+)\/(\d+)\/(\d+) (\d+):(\d+):(\d+):(\d+)\]/);
    return m ? Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]) + Number(m[7]) / 10 : NaN;
  });
}

// Runs fn(relay) on a relay started with opts (the test secret unless
// given), then stops it, checks that it exited 0, and removes its files.
async function withRelay(opts, fn) {
  const relay = await startRelay({ secret: SECRET, ...opts });
  try {
    await fn(relay);
  } finally {
    const status = await relay.stop();
    assert.deepEqual(status, { code: 0, signal: null }, `relay exit:\n${relay.log()}`);
    relay.cleanup();
  }
}

// A relay on cluster pg with the test secret (stopped by the caller).
const startRelayFor = (pg, opts = {}) => startRelay({ cluster: pg, secret: SECRET, ...opts });

// The relay's /healthz ({ status, body }) once pred(body) holds.
function healthWhen(relay, pred, what, timeoutMs = 20000) {
  return eventually(async () => {
    const r = await getJson(relay.url('/healthz'));
    return pred(r.body) && r;
  }, timeoutMs, what);
}

module.exports = {
  SECRET, GUCS, token, channelToken, bearer, getJson, metric, eventually, withRelay, healthWhen, startRelayFor,
  logTimes,
};
