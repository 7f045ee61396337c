'use strict';
// Who may connect: the whole token matrix, header and query, anonymous
// watchers, origins, --demo tokens, and no token ever in the log.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { sign } = require('../lib/jwt');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, bearer, getJson, metric } = require('./common');

let pg;
let strict; // secret only
let anon; // secret + --allow-anonymous
const usedTokens = [];
const tok = (...a) => { const t = token(...a); usedTokens.push(t); return t; };
const now = () => Math.floor(Date.now() / 1000);

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'auth' });
  strict = await startRelay({ cluster: pg, secret: SECRET, name: 'auth-strict' });
  anon = await startRelay({ cluster: pg, secret: SECRET, args: ['--allow-anonymous'], name: 'auth-anon' });
});

test.after(async () => {
  const a = await strict?.stop();
  const b = await anon?.stop();
  await pg?.stop();
  assert.deepEqual(a, { code: 0, signal: null });
  assert.deepEqual(b, { code: 0, signal: null });
});

test('a valid token in the query opens a tracked session', async () => {
  const p = await Peer.open(strict.wsUrl(`/ws?token=${tok('q-user')}`));
  const state = await p.waitFor((m) => m.type === 'state');
  assert.ok(Array.isArray(state.users));
  const { rows } = await pg.query("SELECT session_id FROM presence.sessions('q-user')");
  assert.equal(rows.length, 1);
  assert.match(rows[0].session_id, /^relay-.+-\d+-\d+$/);
  await p.close();
});

test('a valid token in an Authorization header works the same', async () => {
  const p = await Peer.open(strict.wsUrl('/ws'), bearer(tok('h-user')));
  await p.waitFor((m) => m.type === 'state');
  const { rows } = await pg.query("SELECT 1 FROM presence.sessions('h-user')");
  assert.equal(rows.length, 1);
  await p.close();
});

const refusedTokens = {
  expired: () => tok('x', { exp: now() - 60 }),
  'not yet valid (nbf)': () => sign({ sub: 'x', nbf: now() + 600 }, SECRET),
  'without exp': () => tok('x', { exp: null }),
  'bad signature': () => { const t = sign({ sub: 'x' }, 'another-secret-0123456789abcdefgh'); usedTokens.push(t); return t; },
  'alg none': () => tok('x', { alg: 'none' }),
  'HS512 with the right key': () => tok('x', { alg: 'HS512' }),
  'tampered payload': () => {
    const [h, , s] = tok('x').split('.');
    return `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', exp: now() + 60 })).toString('base64url')}.${s}`;
  },
  'without sub': () => tok(undefined),
  'with an empty sub': () => tok(''),
  'with a sub over 256 bytes': () => tok('u'.repeat(257)),
  'malformed: not a JWT': () => 'not-a-token',
  'malformed: bad base64': () => '!!!.???.***',
  'malformed: two parts': () => tok('x').split('.').slice(0, 2).join('.'),
};

for (const [what, make] of Object.entries(refusedTokens)) {
  test(`a token ${what} is refused with 401, in query and header, even with --allow-anonymous`, async () => {
    const t = make();
    assert.equal(await Peer.refused(strict.wsUrl(`/ws?token=${encodeURIComponent(t)}`)), 401);
    assert.equal(await Peer.refused(strict.wsUrl('/ws'), bearer(t)), 401);
    assert.equal(await Peer.refused(anon.wsUrl(`/ws?token=${encodeURIComponent(t)}`)), 401);
    const r = await getJson(strict.url(`/online?token=${encodeURIComponent(t)}`));
    assert.equal(r.status, 401);
  });
}

test('a 401 says how to authenticate, before any upgrade', async () => {
  const p = new Peer(strict.wsUrl('/ws'));
  const e = await p.opened.then(() => null, (err) => err);
  assert.equal(e.status, 401);
  assert.equal(e.headers['www-authenticate'], 'Bearer');
});

test('an Authorization header that is not Bearer is refused', async () => {
  assert.equal(await Peer.refused(anon.wsUrl('/ws'), { headers: { Authorization: 'Basic dXNlcjpwdw==' } }), 401);
});

test('no token: 401 without --allow-anonymous', async () => {
  assert.equal(await Peer.refused(strict.wsUrl('/ws')), 401);
  assert.equal((await getJson(strict.url('/online'))).status, 401);
});

test('no token with --allow-anonymous: watches but is not tracked', async () => {
  const before = (await pg.query('SELECT count(*)::int AS n FROM presence.sessions()')).rows[0].n;
  const p = await Peer.open(anon.wsUrl('/ws'));
  await p.waitFor((m) => m.type === 'state');
  const a = await Peer.open(anon.wsUrl(`/ws?token=${tok('seen-by-anon')}`));
  await p.waitPresence('seen-by-anon', 'online');
  const after = (await pg.query('SELECT count(*)::int AS n FROM presence.sessions()')).rows[0].n;
  assert.equal(after, before + 1, 'only the token holder became a session');
  assert.equal(await metric(anon, 'presence_relay_connections{kind="watcher"}'), 1);
  const online = await getJson(anon.url('/online'));
  assert.equal(online.status, 200);
  assert.equal(online.body.type, 'state');
  await a.close();
  await p.close();
});

test('/online with a valid token returns the snapshot', async () => {
  const r = await getJson(strict.url('/online'), bearer(tok('reader')));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.body.type, 'state');
  assert.ok(Array.isArray(r.body.users));
});

test('WebSocket lives at /ws only', async () => {
  assert.equal(await Peer.refused(strict.wsUrl(`/elsewhere?token=${tok('x')}`)), 404);
});

test('refusals are counted in /metrics', async () => {
  assert.ok(await metric(strict, 'presence_relay_auth_failures_total') >= Object.keys(refusedTokens).length);
});

test('--allow-origin refuses other browser origins with 403', async () => {
  const r = await startRelay({ cluster: pg, secret: SECRET, args: ['--allow-origin', 'https://app.example,https://b.example'], name: 'auth-origin' });
  try {
    assert.equal(await Peer.refused(r.wsUrl(`/ws?token=${tok('o')}`), { origin: 'https://evil.example' }), 403);
    const ok = await Peer.open(r.wsUrl(`/ws?token=${tok('o')}`), { origin: 'https://b.example' });
    await ok.waitFor((m) => m.type === 'state');
    await ok.close();
    const online = await getJson(r.url('/online'), { headers: { Authorization: `Bearer ${tok('o')}`, Origin: 'https://app.example' } });
    assert.equal(online.headers.get('access-control-allow-origin'), 'https://app.example');
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
  }
});

test('/demo/token does not exist without --demo', async () => {
  assert.equal((await getJson(strict.url('/demo/token?user=zoe'))).status, 404);
  assert.equal((await getJson(anon.url('/demo/token?user=zoe'))).status, 404);
});

test('--demo mints short-lived tokens the relay accepts', async () => {
  const r = await startRelay({ cluster: pg, args: ['--demo'], name: 'auth-demo' });
  try {
    const got = await getJson(r.url('/demo/token?user=zoe'));
    assert.equal(got.status, 200);
    usedTokens.push(got.body.token);
    const claims = JSON.parse(Buffer.from(got.body.token.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'zoe');
    assert.ok(claims.exp > now() && claims.exp <= now() + 3600, 'expires within the hour');
    // the demo page's rooms, and nothing else
    assert.deepEqual(claims.channels, ['room:*']);
    assert.equal((await getJson(r.url('/demo/token'))).status, 400);
    const p = await Peer.open(r.wsUrl(`/ws?token=${got.body.token}`));
    const state = await p.waitFor((m) => m.type === 'state');
    assert.ok(state.users.some((u) => u.user_id === 'zoe'));
    p.send({ type: 'join', channel: 'room:general' });
    const room = await p.waitFor((m) => m.type === 'state' && m.channel === 'room:general');
    assert.deepEqual(room.members.map((m) => m.user_id), ['zoe']);
    p.send({ type: 'subscribe', channel: 'team:9' });
    const refused = await p.waitFor((m) => m.type === 'error');
    assert.deepEqual(refused, { type: 'error', request: 'subscribe', channel: 'team:9', code: 'forbidden' });
    await p.close();
    assert.equal(await Peer.refused(r.wsUrl('/ws')), 401, '--demo does not imply anonymous');
  } finally {
    assert.deepEqual(await r.stop(), { code: 0, signal: null });
  }
});

test('--demo refuses to start unless bound to loopback', async () => {
  const r = await startRelay({ cluster: pg, args: ['--demo'], bind: '0.0.0.0', wait: false, name: 'auth-demo-public' });
  const status = await r.exited;
  assert.equal(status.code, 2);
  assert.match(r.log(), /--demo needs a loopback --bind/);
});

test('a relay nobody could connect to refuses to start', async () => {
  const r = await startRelay({ cluster: pg, wait: false, name: 'auth-nobody' });
  assert.equal((await r.exited).code, 2);
  assert.match(r.log(), /nobody could connect/);
});

test('no token ever reaches the log', async () => {
  await strict.stop();
  await anon.stop();
  const logs = strict.log() + anon.log();
  assert.ok(logs.includes('refused'), 'the log does record refusals');
  for (const t of usedTokens) {
    for (const part of t.split('.').filter((x) => x.length > 8)) {
      assert.ok(!logs.includes(part), 'a token part appears in the log');
    }
  }
});
