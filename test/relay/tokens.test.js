'use strict';
// Token lifetime: a short secret is refused, exp and nbf are NumericDates,
// a socket is closed (4001) when its token expires, and a client may send
// a fresh token for its user to keep it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { sign } = require('../lib/jwt');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, metric } = require('./common');

let pg;
let relay;
const now = () => Date.now() / 1000;
const lasting = (sub, seconds, claims = {}) => sign({ sub, exp: now() + seconds, ...claims }, SECRET);

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'tokens' });
  relay = await startRelay({ cluster: pg, secret: SECRET, name: 'tokens', args: ['--allow-anonymous'] });
});

test.after(async () => {
  const status = await relay?.stop();
  await pg?.stop();
  assert.deepEqual(status, { code: 0, signal: null });
});

test('a secret shorter than 32 bytes is refused at start, with a clear error', async () => {
  const r = await startRelay({ cluster: pg, secret: 'x'.repeat(31), wait: false, name: 'tokens-short' });
  assert.equal((await r.exited).code, 1);
  assert.match(r.log(), /holds 31 bytes: HS256 needs a secret of at least 32/);
  const ok = await startRelay({ cluster: pg, secret: 'y'.repeat(32), name: 'tokens-32' });
  assert.deepEqual(await ok.stop(), { code: 0, signal: null });
});

test('exp and nbf are NumericDates: integers and fractions count, strings and others refuse', async () => {
  const t = Math.floor(now());
  const cases = [
    [{ exp: t + 600.5 }, true],
    [{ exp: t + 600, nbf: t - 60.25 }, true],
    [{ exp: t + 600, nbf: t + 600.75 }, false],
    [{ exp: t + 600, nbf: t + 600 }, false],
    [{ exp: t + 600, nbf: String(t + 600) }, false],
    [{ exp: t + 600, nbf: String(t - 600) }, false],
    [{ exp: String(t + 600) }, false],
    [{ exp: t + 600, nbf: null }, false],
    [{ exp: t + 600, nbf: [t] }, false],
    [{ exp: true }, false],
    [{ exp: t - 0.5 }, false],
  ];
  for (const [claims, accepted] of cases) {
    const tok = sign({ sub: 'nd', ...claims }, SECRET);
    if (accepted) {
      const p = await Peer.open(relay.wsUrl(`/ws?token=${tok}`));
      await p.waitFor((m) => m.type === 'state');
      await p.close();
    } else {
      assert.equal(await Peer.refused(relay.wsUrl(`/ws?token=${tok}`)), 401, JSON.stringify(claims));
    }
  }
});

test('a socket is closed with 4001 when its token expires', async () => {
  const t0 = Date.now();
  const p = await Peer.open(relay.wsUrl(`/ws?token=${lasting('short', 2)}`));
  await p.waitFor((m) => m.type === 'state');
  const { code, reason } = await p.closed;
  const after = (Date.now() - t0) / 1000;
  assert.equal(code, 4001);
  assert.equal(reason, 'token expired');
  assert.ok(after >= 1.5 && after < 5, `closed after ${after} s`);
  assert.ok(await metric(relay, 'presence_relay_tokens_total{event="expired"}') >= 1);
  const { rows } = await pg.query("SELECT 1 FROM presence.sessions('short')");
  assert.equal(rows.length, 0, 'its session ended with it');
});

test('a fresh token for the same user keeps the socket past the old expiry', async () => {
  const p = await Peer.open(relay.wsUrl(`/ws?token=${lasting('keeper', 2)}`));
  await p.waitFor((m) => m.type === 'state');
  const fresh = lasting('keeper', 60);
  p.send({ type: 'token', token: fresh });
  const ack = await p.waitFor((m) => m.type === 'token');
  assert.ok(Math.abs(ack.exp - JSON.parse(Buffer.from(fresh.split('.')[1], 'base64url')).exp) < 0.001);
  // past the first token's expiry (and the relay's 250 ms granularity)
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(p.ws.readyState, 1, 'still open');
  await pg.query("SELECT presence.connect('keeper-check', 's')");
  await p.waitPresence('keeper-check', 'online');
  await pg.query("SELECT presence.disconnect('keeper-check', 's')");
  assert.ok(await metric(relay, 'presence_relay_tokens_total{event="refreshed"}') >= 1);
  await p.close();
});

test('a token for another user closes the socket with 4003', async () => {
  const p = await Peer.open(relay.wsUrl(`/ws?token=${token('me')}`));
  await p.waitFor((m) => m.type === 'state');
  p.send({ type: 'token', token: token('admin') });
  const { code, reason } = await p.closed;
  assert.equal(code, 4003);
  assert.equal(reason, 'token for another user');
});

test('an invalid or expired refresh is answered with an error and changes nothing', async () => {
  const p = await Peer.open(relay.wsUrl(`/ws?token=${lasting('stubborn', 3)}`));
  await p.waitFor((m) => m.type === 'state');
  const bad = {
    expired: sign({ sub: 'stubborn', exp: now() - 10 }, SECRET),
    forged: sign({ sub: 'stubborn', exp: now() + 600 }, 'another-secret-0123456789abcdefgh'),
    garbage: 'not-a-token',
  };
  for (const [what, tok] of Object.entries(bad)) {
    p.send({ type: 'token', token: tok });
    const e = await p.waitFor((m) => m.type === 'error');
    assert.equal(e.error, 'token refused', what);
    assert.equal(typeof e.reason, 'string');
  }
  const m0 = await metric(relay, 'presence_relay_malformed_messages_total');
  p.send({ type: 'token', token: 42 });
  p.send({ type: 'token' });
  const { code } = await p.closed;
  assert.equal(code, 4001, 'closed at the first token\'s expiry');
  assert.equal(await metric(relay, 'presence_relay_malformed_messages_total') - m0, 2);
  assert.ok(await metric(relay, 'presence_relay_tokens_total{event="refused"}') >= 3);
});

test('an anonymous watcher has no token to refresh: error, and it stays', async () => {
  const p = await Peer.open(relay.wsUrl('/ws'));
  await p.waitFor((m) => m.type === 'state');
  p.send({ type: 'token', token: token('anyone') });
  const e = await p.waitFor((m) => m.type === 'error');
  assert.equal(e.reason, 'anonymous socket');
  assert.equal(p.ws.readyState, 1);
  await p.close();
});
