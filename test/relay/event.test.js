'use strict';
// The shape check of notification payloads (src/relay/event.c), through
// src/relay/event-check: only the worker's documented shape passes, and
// the frame is built afresh.  (Through a database these payloads would be
// dropped for their sender before their shape is looked at.)

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { repoRoot } = require('../lib/relay');

const BIN = path.join(repoRoot, 'src', 'relay', 'event-check');

function check(payloads) {
  const out = execFileSync(BIN, { input: payloads.join('\n') + '\n', encoding: 'utf8' });
  return out.trimEnd().split('\n').map((l) => (l === 'refused' ? null : JSON.parse(l.slice(3))));
}

const good = {
  seq: 1043, user_id: '42', status: 'away', previous: 'online', last_active: '2026-11-28T03:00:00.123+00:00',
};
const payload = (over = {}, drop = []) => {
  const o = { ...good, ...over };
  for (const k of drop) delete o[k];
  return JSON.stringify(o);
};

test('the documented shape passes and becomes a presence frame', () => {
  const [a, b, c] = check([
    payload(),
    payload({ last_active: null, status: 'offline', previous: 'away', user_id: 'é "quoted" \\ \u0001' }),
    payload({ last_active: '2026-01-01T00:00:00-03:30', seq: 9007199254740991 }),
  ]);
  assert.deepEqual(a, { type: 'presence', ...good });
  assert.equal(b.user_id, 'é "quoted" \\ \u0001');
  assert.equal(b.last_active, null);
  assert.equal(c.last_active, '2026-01-01T00:00:00-03:30');
  assert.deepEqual(Object.keys(a), ['type', 'seq', 'user_id', 'status', 'previous', 'last_active']);
});

test('anything else is refused', () => {
  const bad = {
    'a duplicated member': payload().replace('{', '{"status":"online",'),
    'a duplicated member, escaped': payload().replace('{', '{"st\\u0061tus":"online",'),
    'a "type" member': payload().replace('{', '{"type":"state",'),
    'another member': payload({ users: [] }),
    'a missing member': payload({}, ['previous']),
    'an empty object': '{}',
    'unterminated JSON': payload().slice(0, -1),
    'a bare array': `[${payload()}]`,
    'a string': '"x"',
    'trailing bytes': `${payload()} x`,
    'two objects': payload() + payload(),
    'seq as a string': payload({ seq: '1043' }),
    'seq as a fraction': payload({ seq: 1.5 }),
    'seq negative': payload({ seq: -1 }),
    'seq zero': payload({ seq: 0 }),
    'seq past int64': payload().replace('1043', '9223372036854775808'),
    'seq with leading zero': payload().replace('1043', '01043'),
    'an unknown status': payload({ status: 'busy' }),
    'a status of another case': payload({ previous: 'Online' }),
    'status null': payload({ status: null }),
    'an empty user id': payload({ user_id: '' }),
    'a user id over 256 bytes': payload({ user_id: 'u'.repeat(257) }),
    'a user id of 129 two-byte characters': payload({ user_id: 'é'.repeat(129) }),
    'a NUL in the user id': payload({ user_id: 'a\u0000b' }),
    'a lone surrogate in the user id': payload().replace('"42"', '"\\ud800"'),
    'a user id as a number': payload({ user_id: 42 }),
    'a nested object': payload({ user_id: { id: '42' } }),
    'last_active not a timestamp': payload({ last_active: 'yesterday' }),
    'last_active with junk after': payload({ last_active: '2026-11-28T03:00:00+00:00 ' }),
    'last_active as a number': payload({ last_active: 1700000000 }),
    'true as a value': payload({ last_active: true }),
    'an oversized payload': payload({ user_id: 'x'.repeat(9000) }),
  };
  const verdicts = check(Object.values(bad));
  Object.keys(bad).forEach((what, i) => assert.equal(verdicts[i], null, what));
  // and the limits themselves pass
  const [u256, e128] = check([payload({ user_id: 'u'.repeat(256) }), payload({ user_id: 'é'.repeat(128) })]);
  assert.equal(u256.user_id.length, 256);
  assert.equal(e128.user_id, 'é'.repeat(128));
});

// Channel events (1.1): join, update, leave.
const channelEvents = {
  join: { seq: 2001, channel: 'room:42', event: 'join', user_id: '42', status: 'online', meta: { page: '/inbox' } },
  update: { seq: 2002, channel: 'room:42', event: 'update', user_id: '42', meta: { typing: true } },
  leave: { seq: 2003, channel: 'room:42', event: 'leave', user_id: '42' },
};
const channelPayload = (kind, over = {}, drop = []) => {
  const o = { ...channelEvents[kind], ...over };
  for (const k of drop) delete o[k];
  return JSON.stringify(o);
};

test('channel events of the documented shapes pass and become channel frames, meta written afresh', () => {
  const [j, u, l, jn, nested] = check([
    channelPayload('join'),
    channelPayload('update'),
    channelPayload('leave'),
    channelPayload('join', { status: 'away', meta: null }),
    // as PostgreSQL prints a jsonb: blanks after ':' and ','; escapes of all kinds
    '{"seq":7,"channel":"r","event":"update","user_id":"u","meta":{"a": [1, 2.50, -3e2, true, null], "\\u00e9\\ud83d\\ude00": "x\\ny\\u0001\\/"}}',
  ]);
  assert.deepEqual(j, { type: 'join', channel: 'room:42', seq: 2001, user_id: '42', status: 'online', meta: { page: '/inbox' } });
  assert.deepEqual(Object.keys(j), ['type', 'channel', 'seq', 'user_id', 'status', 'meta']);
  assert.deepEqual(u, { type: 'update', channel: 'room:42', seq: 2002, user_id: '42', meta: { typing: true } });
  assert.deepEqual(l, { type: 'leave', channel: 'room:42', seq: 2003, user_id: '42' });
  assert.equal(jn.status, 'away');
  assert.equal(jn.meta, null);
  assert.deepEqual(nested.meta, { a: [1, 2.5, -300, true, null], 'é😀': 'x\ny\u0001/' });
  // numbers are copied as written, the rest compact
  const [raw] = execFileSync(BIN, { input: '{"seq":7,"channel":"r","event":"update","user_id":"u","meta":{"a": [1, 2.50, -3e2]}}\n', encoding: 'utf8' }).split('\n');
  assert.equal(raw, 'ok {"type":"update","channel":"r","seq":7,"user_id":"u","meta":{"a":[1,2.50,-3e2]}}');
});

test('channel events of any other shape are refused', () => {
  const bad = {
    'an unknown event': channelPayload('join', { event: 'kick' }),
    'event as a number': channelPayload('join', { event: 1 }),
    'a join without meta': channelPayload('join', {}, ['meta']),
    'a join without status': channelPayload('join', {}, ['status']),
    'a join offline': channelPayload('join', { status: 'offline' }),
    'a join with previous': channelPayload('join', { previous: 'offline' }),
    'a join without channel': channelPayload('join', {}, ['channel']),
    'an update with meta null': channelPayload('update', { meta: null }),
    'an update with status': channelPayload('update', { status: 'online' }),
    'an update with an array meta': channelPayload('update', { meta: [1] }),
    'an update with a string meta': channelPayload('update', { meta: '{}' }),
    'a leave with meta': channelPayload('leave', { meta: null }),
    'a leave with last_active': channelPayload('leave', { last_active: null }),
    'a status change with a channel': payload({ channel: 'room:42' }),
    'an empty channel': channelPayload('leave', { channel: '' }),
    'a channel over 256 bytes': channelPayload('leave', { channel: 'c'.repeat(257) }),
    'a channel as a number': channelPayload('leave', { channel: 42 }),
    'a meta with a lone surrogate': channelPayload('update').replace('true', '"\\udc00"'),
    'a meta with a NUL': channelPayload('update').replace('true', '"a\\u0000"'),
    'a meta with a bad number': channelPayload('update').replace('true', '01'),
    'a meta with a trailing comma': channelPayload('update').replace('true', '[1,]'),
    'a meta with a comment': channelPayload('update').replace('true', '1 # no'),
    'a meta nested 40 deep': channelPayload('update').replace('true', '['.repeat(40) + ']'.repeat(40)),
    'a meta unterminated': channelPayload('update').replace('true}', 'true'),
    'a duplicated event': channelPayload('leave').replace('{', '{"event":"join",'),
  };
  const verdicts = check(Object.values(bad));
  Object.keys(bad).forEach((what, i) => assert.equal(verdicts[i], null, what));
  const [c256] = check([channelPayload('leave', { channel: 'c'.repeat(256) })]);
  assert.equal(c256.channel.length, 256);
});

// A user's status message (1.1, issue 11).
test('status_message events of the documented shape pass; others are refused', () => {
  const ok = { seq: 3001, event: 'status_message', user_id: '42', status_message: 'In a meeting', expires_at: '2026-11-28T04:00:00+00:00' };
  const msg = (over = {}, drop = []) => {
    const o = { ...ok, ...over };
    for (const k of drop) delete o[k];
    return JSON.stringify(o);
  };
  const [a, b, c] = check([msg(), msg({ status_message: null, expires_at: null }), msg({ status_message: 'é'.repeat(140) })]);
  assert.deepEqual(a, { type: 'status_message', seq: 3001, user_id: '42', status_message: 'In a meeting', expires_at: '2026-11-28T04:00:00+00:00' });
  assert.deepEqual(Object.keys(a), ['type', 'seq', 'user_id', 'status_message', 'expires_at']);
  assert.equal(b.status_message, null);
  assert.equal(b.expires_at, null);
  assert.equal(c.status_message.length, 140);
  const bad = {
    'no expires_at': msg({}, ['expires_at']),
    'no status_message': msg({}, ['status_message']),
    'a channel': msg({ channel: 'room:1' }),
    'a status': msg({ status: 'online' }),
    'an empty message': msg({ status_message: '' }),
    'a message over 560 bytes': msg({ status_message: 'x'.repeat(561) }),
    'a message as a number': msg({ status_message: 5 }),
    'expires_at not a timestamp': msg({ expires_at: 'soon' }),
    'another event': msg({ event: 'status' }),
  };
  const verdicts = check(Object.values(bad));
  Object.keys(bad).forEach((what, i) => assert.equal(verdicts[i], null, what));
});
