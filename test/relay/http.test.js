'use strict';
// The HTTP side's small print: answers of any size, and the CORS preflight
// browsers send before GET /online with an Authorization header.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, getJson } = require('./common');

let pg;
let relay;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'http' });
  relay = await startRelay({ cluster: pg, secret: SECRET, name: 'http',
    args: ['--demo', '--allow-origin', 'https://app.example'] });
});

test.after(async () => {
  const status = await relay?.stop();
  await pg?.stop();
  assert.deepEqual(status, { code: 0, signal: null });
});

test('/demo/token for a 256-byte name that escapes to six times that', async () => {
  const name = '\u0001'.repeat(256);
  const r = await getJson(relay.url(`/demo/token?user=${'%01'.repeat(256)}`));
  assert.equal(r.status, 200);
  const claims = JSON.parse(Buffer.from(r.body.token.split('.')[1], 'base64url').toString());
  assert.equal(claims.sub, name);
  const p = await Peer.open(relay.wsUrl(`/ws?token=${r.body.token}`));
  const state = await p.waitFor((m) => m.type === 'state');
  assert.ok(state.users.some((u) => u.user_id === name), 'and it works');
  await p.close();
  assert.equal((await getJson(relay.url(`/demo/token?user=${'x'.repeat(257)}`))).status, 400);
});

test('OPTIONS /online from an allowed origin answers the CORS preflight', async () => {
  const r = await fetch(relay.url('/online'), {
    method: 'OPTIONS',
    headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'GET',
      'Access-Control-Request-Headers': 'authorization' },
  });
  await r.text();
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.match(r.headers.get('access-control-allow-methods'), /\bGET\b/);
  assert.match(r.headers.get('access-control-allow-headers'), /\bAuthorization\b/i);
  assert.ok(Number(r.headers.get('access-control-max-age')) > 0);
  // and the GET it was for
  const got = await getJson(relay.url('/online'),
    { headers: { Origin: 'https://app.example', Authorization: `Bearer ${token('cors')}` } });
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('access-control-allow-origin'), 'https://app.example');
});

test('OPTIONS /online from another origin, or without --allow-origin, is 403', async () => {
  const ask = (r, origin) => fetch(r.url('/online'), { method: 'OPTIONS', headers: { Origin: origin } })
    .then(async (res) => { await res.text(); return res; });
  const other = await ask(relay, 'https://evil.example');
  assert.equal(other.status, 403);
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  const plain = await startRelay({ cluster: pg, secret: SECRET, name: 'http-plain' });
  try {
    assert.equal((await ask(plain, 'https://app.example')).status, 403);
  } finally {
    assert.deepEqual(await plain.stop(), { code: 0, signal: null });
  }
  assert.equal((await fetch(relay.url('/elsewhere'), { method: 'OPTIONS',
    headers: { Origin: 'https://app.example' } })).status, 404);
});
