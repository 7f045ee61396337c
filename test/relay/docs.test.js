'use strict';
// The examples of docs/relay.md, docs/sql.md and the README, taken as
// written and run: the JSON messages have the shape and time format of real
// ones, the browser client works (and reconnects with a fresh token), and
// the GRANTs are all a role needs, even where PUBLIC lost USAGE on the
// schema.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const WebSocket = require('ws');
const { startCluster } = require('../lib/cluster');
const { startRelay, repoRoot } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { SECRET, GUCS, token, bearer, getJson, eventually, withRelay } = require('./common');

let pg;

test.before(async () => {
  pg = await startCluster({ gucs: GUCS, name: 'docs' });
});

test.after(async () => {
  await pg?.stop();
});

// The first ```lang block after the line `heading` of docs/file.
function docBlock(file, heading, lang) {
  const text = fs.readFileSync(path.join(repoRoot, 'docs', file), 'utf8');
  const at = text.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `${file} has no "${heading}"`);
  const m = text.slice(at).match(new RegExp('```' + lang + '\\n([\\s\\S]*?)```'));
  assert.ok(m, `${file}: no ${lang} block after "${heading}"`);
  return m[1];
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d:\d\d$/;
const keys = (o) => Object.keys(o).sort();

test('the JSON examples have the keys and the time format of real messages', async () => {
  const [stateEx, presenceEx] = docBlock('relay.md', '## Messages', 'json').trim().split('\n').map((l) => JSON.parse(l));
  const notifyEx = JSON.parse(docBlock('sql.md', '## Notifications', 'json'));

  const listener = await pg.client();
  const notes = [];
  listener.on('notification', (n) => notes.push(JSON.parse(n.payload)));
  await listener.query('LISTEN presence');
  try {
    await messagesMatch(stateEx, presenceEx, notifyEx, notes);
  } finally {
    await listener.end();
  }
});

async function messagesMatch(stateEx, presenceEx, notifyEx, notes) {
  await withRelay({ cluster: pg, name: 'docs-messages' }, async (relay) => {
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('doc-watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    await pg.query("SELECT presence.connect('doc-42')");
    const presence = await watcher.waitPresence('doc-42', 'online');
    const late = await Peer.open(relay.wsUrl(`/ws?token=${token('doc-late')}`));
    const state = await late.waitFor((m) => m.type === 'state');
    const notify = await eventually(() => notes.find((n) => n.user_id === 'doc-42'), 5000, 'the notification');

    assert.deepEqual(keys(stateEx), keys(state));
    assert.deepEqual(keys(stateEx.users[0]), keys(state.users.find((u) => u.user_id === 'doc-42')));
    assert.deepEqual(keys(presenceEx), keys(presence));
    assert.deepEqual(keys(notifyEx), keys(notify));
    for (const [what, v] of [['state', state.users[0].last_active], ['presence', presence.last_active],
      ['notification', notify.last_active], ['state example', stateEx.users[0].last_active],
      ['presence example', presenceEx.last_active], ['notification example', notifyEx.last_active]]) {
      assert.match(v, ISO, what);
    }
    await Promise.all([watcher.close(), late.close()]);
    await pg.query("SELECT presence.disconnect('doc-42')");
  });
}

test('{"type":"heartbeat"} without "active" counts as active', async () => {
  await withRelay({ cluster: pg, name: 'docs-heartbeat' }, async (relay) => {
    const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('hb-watcher')}`));
    await watcher.waitFor((m) => m.type === 'state');
    const idler = await Peer.open(relay.wsUrl(`/ws?token=${token('idler')}`));
    await watcher.waitPresence('idler', 'online');
    idler.send({ type: 'heartbeat', active: false });
    await watcher.waitPresence('idler', 'away', 8000);
    idler.send({ type: 'heartbeat' });
    await watcher.waitPresence('idler', 'online', 3000);
    await Promise.all([watcher.close(), idler.close()]);
  });
});

test('the browser client of relay.md works: state, away and back, and after a relay restart a fresh token', async () => {
  const example = docBlock('relay.md', '## A browser client', 'js');
  assert.ok(example.includes('wss://presence.example.com/ws'));
  const first = await startRelay({ cluster: pg, secret: SECRET, name: 'docs-client-1' });
  const { port } = first;

  // the page's world: fetch answers the token endpoint, render records
  let fetches = 0;
  let stopped = false;
  const sockets = [];
  const renders = [];
  const listeners = {};
  class TrackedWebSocket extends WebSocket {
    constructor(...args) { super(...args); sockets.push(this); }
  }
  const page = {
    fetch: async (url) => {
      assert.equal(url, '/my-app/presence-token');
      fetches += 1;
      return { ok: true, json: async () => ({ token: token('reader') }) };
    },
    WebSocket: TrackedWebSocket,
    document: { hidden: false, addEventListener: (type, fn) => { listeners[type] = fn; } },
    render: (online) => renders.push(new Map(online)),
    setTimeout: (fn, ms) => (stopped ? undefined : setTimeout(fn, ms)),
    clearTimeout,
    atob,
    encodeURIComponent,
  };
  const latest = () => renders[renders.length - 1];
  const shows = (status) => () => latest()?.get('reader')?.status === status;
  // what a browser would show in its console (run as a module: top-level
  // await is allowed)
  const pageErrors = [];
  const onPageError = (e) => pageErrors.push(e);
  process.on('uncaughtException', onPageError);
  let second;
  try {
    vm.createContext(page);
    vm.runInContext(`(async () => {\n${example.replace('wss://presence.example.com', `ws://127.0.0.1:${port}`)}\n})().catch((e) => { throw e; });`, page)
      .catch(onPageError);
    await eventually(shows('online'), 10000, 'a state showing the reader online');
    page.document.hidden = true;
    listeners.visibilitychange();
    await eventually(shows('away'), 8000, 'the reader away');
    page.document.hidden = false;
    listeners.visibilitychange();
    await eventually(shows('online'), 3000, 'the reader back');

    assert.deepEqual(await first.stop(), { code: 0, signal: null }, first.log());
    first.cleanup();
    const before = renders.length;
    second = await startRelay({ cluster: pg, secret: SECRET, port, name: 'docs-client-2' });
    await eventually(() => renders.length > before && shows('online')(), 20000, 'a state from the new relay');
    assert.ok(fetches >= 2, `a token per connection (${fetches} fetched)`);
    assert.deepEqual(pageErrors, []);
  } finally {
    process.off('uncaughtException', onPageError);
    stopped = true;
    for (const s of sockets) s.terminate();
    if (second) {
      assert.deepEqual(await second.stop(), { code: 0, signal: null }, second.log());
      second.cleanup();
    } else if (!first.exitStatus) {
      await first.stop();
      first.cleanup();
    }
  }
});

// Runs fn with USAGE on the schema revoked from PUBLIC, as a hardened
// database may have it, and role (made by fn's docs) dropped after.
async function withoutPublicUsage(role, fn) {
  await pg.query('REVOKE USAGE ON SCHEMA presence FROM PUBLIC');
  try {
    await fn();
  } finally {
    await pg.query('GRANT USAGE ON SCHEMA presence TO PUBLIC');
    await pg.query(`DROP OWNED BY ${role}`).catch(() => {});
    await pg.query(`DROP ROLE IF EXISTS ${role}`);
  }
}

test('the relay role of relay.md is all the relay needs', async () => {
  await withoutPublicUsage('presence_relay', async () => {
    await pg.query(docBlock('relay.md', '## Database role', 'sql'));
    const db = `host=${pg.socketDir} port=${pg.port} user=presence_relay dbname=${pg.database}`;
    await withRelay({ db, name: 'docs-role' }, async (relay) => {
      const watcher = await Peer.open(relay.wsUrl(`/ws?token=${token('role-watcher')}`));
      await watcher.waitFor((m) => m.type === 'state');
      const hider = await Peer.open(relay.wsUrl(`/ws?token=${token('hider')}`));
      await watcher.waitPresence('hider', 'online');
      hider.send({ type: 'visibility', visible: false });
      await watcher.waitPresence('hider', 'offline');
      const online = await getJson(relay.url('/online'), bearer(token('reader')));
      assert.equal(online.status, 200);
      assert.ok(online.body.users.some((u) => u.user_id === 'role-watcher'));
      assert.equal((await getJson(relay.url('/healthz'))).body.status, 'ok');
      // channels: join, update and leave the socket's memberships, read states
      const { channelToken } = require('./common');
      const member = await Peer.open(relay.wsUrl(`/ws?token=${channelToken('role-member', ['room:*'])}`));
      member.send({ type: 'join', channel: 'room:role', meta: { a: 1 } });
      const st = await member.waitFor((m) => m.type === 'state' && m.channel === 'room:role');
      assert.ok(st.members.some((m) => m.user_id === 'role-member'), JSON.stringify(st));
      // (an update in the worker's tick of the join would be folded into it)
      await member.waitFor((m) => m.type === 'join');
      member.send({ type: 'update', channel: 'room:role', meta: { a: 2 } });
      assert.deepEqual((await member.waitFor((m) => m.type === 'update')).meta, { a: 2 });
      member.send({ type: 'leave', channel: 'room:role' });
      await member.waitFor((m) => m.type === 'unsubscribed');
      await eventually(async () => (await pg.query("SELECT * FROM presence.channels('role-member')")).rows.length === 0,
        5000, 'role-member left room:role');
      assert.ok(!member.messages.some((m) => m.type === 'error'), JSON.stringify(member.messages));
      await member.close();
      await Promise.all([watcher.close(), hider.close()]);
      await pg.query("SELECT presence.set_visible('hider', true)");
    });
  });
});

test('the application role of sql.md can make every call', async () => {
  await withoutPublicUsage('app', async () => {
    await pg.query('CREATE ROLE app');
    await pg.query(docBlock('sql.md', '## Privileges', 'sql'));
    const c = await pg.client();
    try {
      await c.query('SET ROLE app');
      await c.query("SELECT presence.connect('doc-app', 'tab')");
      await c.query("SELECT presence.heartbeat('doc-app', 'tab', false)");
      assert.equal((await c.query("SELECT presence.heartbeat_many(ARRAY['doc-app'], ARRAY['tab'], false) AS n")).rows[0].n, 1);
      await c.query("SELECT presence.set_visible('doc-app', true)");
      assert.equal((await c.query("SELECT presence.status('doc-app') AS s")).rows[0].s, 'online');
      assert.equal((await c.query("SELECT count(*)::int AS n FROM presence.online_users() WHERE user_id = 'doc-app'")).rows[0].n, 1);
      assert.equal((await c.query("SELECT count(*)::int AS n FROM presence.sessions('doc-app')")).rows[0].n, 1);
      assert.equal((await c.query("SELECT presence.disconnect('doc-app', 'tab') AS d")).rows[0].d, true);
    } finally {
      await c.end();
    }
  });
});

// Every ```json block after a heading, each line a JSON value.
function docLines(file, heading) {
  return docBlock(file, heading, 'json').trim().split('\n').map((l) => JSON.parse(l));
}

test('the channel examples of relay.md have the keys of real frames', async () => {
  const { channelToken } = require('./common');
  const [stateEx] = docLines('relay.md', '### From the relay');
  const text = fs.readFileSync(path.join(repoRoot, 'docs', 'relay.md'), 'utf8');
  const at = text.indexOf('\n### From the relay\n');
  const events = [...text.slice(at).matchAll(/```json\n([\s\S]*?)```/g)][1][1].trim().split('\n').map((l) => JSON.parse(l));
  const [diffEx] = docLines('relay.md', '### Large channels');
  const [claimEx] = docLines('relay.md', '### Who may use which channel');
  assert.ok(Array.isArray(claimEx.channels));
  const byType = (list) => Object.fromEntries(list.map((m) => [m.type, m]));
  const examples = byType(events);

  await withRelay({ cluster: pg, name: 'docs-channels', args: ['--global-feed', 'no'] }, async (relay) => {
    const open = async (u) => Peer.open(relay.wsUrl(`/ws?token=${channelToken(u, claimEx.channels)}`));
    const w = await open('doc-w');
    w.send({ type: 'subscribe', channel: 'room:docs' });
    await w.waitFor((m) => m.type === 'state');
    const a = await open('doc-a');
    a.send({ type: 'join', channel: 'room:docs', meta: { page: '/inbox' } });
    const state = await a.waitFor((m) => m.type === 'state');
    await w.waitFor((m) => m.type === 'join');
    a.send({ type: 'update', channel: 'room:docs', meta: { typing: true } });
    await w.waitFor((m) => m.type === 'update');
    a.send({ type: 'heartbeat', active: false });
    await w.waitFor((m) => m.type === 'presence', 8000);
    a.send({ type: 'status_message', message: 'At lunch' });
    await w.waitFor((m) => m.type === 'status_message');
    a.send({ type: 'leave', channel: 'room:docs' });
    await w.waitFor((m) => m.type === 'leave');
    w.send({ type: 'unsubscribe', channel: 'room:docs' });
    await w.waitFor((m) => m.type === 'unsubscribed');
    const real = byType(w.messages);
    assert.deepEqual(keys(stateEx), keys(state));
    assert.deepEqual(keys(stateEx.members[0]), keys(state.members[0]));
    for (const type of ['join', 'update', 'presence', 'status_message', 'leave', 'unsubscribed']) {
      assert.deepEqual(keys(examples[type]), keys(real[type]), type);
    }
    assert.match(real.presence.last_active, ISO);
    await Promise.all([w.close(), a.close()]);
  });

  await withRelay({ cluster: pg, name: 'docs-diff', args: ['--global-feed', 'no', '--large-channel', '1'] }, async (relay) => {
    const ws = await Promise.all(['doc-d1', 'doc-d2'].map((u) => Peer.open(relay.wsUrl(`/ws?token=${channelToken(u, ['room:*'])}`))));
    for (const w of ws) {
      w.send({ type: 'subscribe', channel: 'room:diff' });
      await w.waitFor((m) => m.type === 'state');
    }
    await pg.query("SELECT presence.join('room:diff', 'doc-d', 's', '{\"typing\":false}')");
    const diff = await ws[0].waitFor((m) => m.type === 'diff');
    assert.deepEqual(keys(diffEx), keys(diff));
    assert.deepEqual(keys(diffEx.joins[0]), keys(diff.joins[0]));
    await pg.query("SELECT presence.update('room:diff', 'doc-d', 's', '{\"typing\":true}')");
    const upd = await ws[0].waitFor((m) => m.type === 'diff' && m.updates.length);
    assert.deepEqual(keys(diffEx.updates[0]), keys(upd.updates[0]));
    await pg.query("SELECT presence.disconnect('doc-d', 's')");
    const left = await ws[0].waitFor((m) => m.type === 'diff' && m.leaves.length);
    assert.deepEqual(keys(diffEx.leaves[0]), keys(left.leaves[0]));
    await Promise.all(ws.map((w) => w.close()));
  });
});

// The README's quick start, statement by statement on one connection as
// psql would run it, on a fresh database: every `-- → ...` comment is the
// row the statement returns (psql's way: columns joined by " | ", jsonb as
// PostgreSQL prints it), and LISTEN hears 42 come online.
test('the README quick start runs as written', async () => {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const block = readme.slice(readme.indexOf('## Quick start')).match(/```sql\n([\s\S]*?)```/)[1];
  const fresh = await startCluster({ gucs: GUCS, name: 'readme', extension: false });
  const c = await fresh.client();
  const notes = [];
  c.on('notification', (n) => notes.push(JSON.parse(n.payload)));
  const text = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v).replace(/":/g, '": ').replace(/,"/g, ', "') : String(v));
  try {
    let checked = 0;
    for (const line of block.trim().split('\n')) {
      const [statement, comment = ''] = line.split(/;\s*--\s*/);
      const r = await c.query({ text: statement, rowMode: 'array' });
      const expected = comment.match(/^→\s*(.*)$/);
      if (expected) {
        assert.equal(r.rows.length, 1, `${statement}: one row`);
        assert.equal(r.rows[0].map(text).join(' | '), expected[1].trim(), statement);
        checked += 1;
      }
    }
    assert.equal(checked, 3, 'three results to check');
    await eventually(() => notes.some((n) => n.user_id === '42' && n.status === 'online'), 5000, 'LISTEN hears 42 online');
  } finally {
    await c.end();
    await fresh.stop();
  }
});
