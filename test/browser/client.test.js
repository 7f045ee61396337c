'use strict';
// The browser client, src/relay/www/presence.js, as an application uses it:
// in Debian's headless Chromium, on a page the demo relay serves (so that
// the module loads under the relay's CSP).  First the order rule and the
// events of a channel, from frames handed to it; then, against the relay,
// join, subscribe, update, leave (a subscribed channel stays watched),
// forbidden, a new socket joining and watching again, and status messages
// in users and members; presence.d.ts against the JS and tsc; and the
// example of docs/relay.md, run as written.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { freePort } = require('../lib/cluster');
const { startDemo, launchChromium, repoRoot } = require('./demo');

const ARTIFACTS = process.env.ARTIFACTS_DIR || null;
const WITHIN = 15000;

let demo;
let chrome;
let page;
const errors = [];

// Until fn (run in the page) is true.
const until = (fn, arg) => page.waitForFunction(fn, arg, { timeout: WITHIN });

test.before(async () => {
  demo = await startDemo({ port: await freePort() });
  chrome = await launchChromium();
  page = await (await chrome.browser.newContext()).newPage();
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(demo.url);
  await page.evaluate(async () => {
    window.client = await import('/presence.js');
  });
});

test.after(async () => {
  await chrome?.close();
  if (demo) {
    await demo.interrupt();
    if (ARTIFACTS) fs.writeFileSync(path.join(ARTIFACTS, 'client-demo.sh.log'), demo.output());
  }
});

test('a channel follows the order rule, with an event for each change, and the global feed its own', async () => {
  const got = await page.evaluate(() => {
    const { PresenceConnection } = window.client;
    const global = [];
    let tokens = 0;
    const c = new PresenceConnection('t', {
      onMessage: (m) => global.push(`${m.type} ${m.seq}`),
      getToken: () => { tokens++; return new Promise(() => {}); }, // never opens a socket
    });
    const room = c.subscribe('room:a');
    const events = [];
    const who = (m) => `${m.user_id}:${m.status}:${JSON.stringify(m.meta)}:${m.status_message}`;
    room.on('state', (ms) => events.push(`state ${[...ms.keys()]}`));
    room.on('join', (m) => events.push(`join ${who(m)}`));
    room.on('leave', (m) => events.push(`leave ${who(m)}`));
    room.on('update', (m, prev) => events.push(`update ${who(m)} was ${JSON.stringify(prev)}`));
    room.on('presence', (m, prev) => events.push(`presence ${who(m)} was ${prev}`));
    room.on('status_message', (m) => events.push(`status_message ${who(m)}`));
    let changes = 0;
    room.on('change', () => changes++);
    const ch = (m) => c.receive({ channel: 'room:a', ...m });
    ch({ type: 'join', seq: 3, user_id: 'early', status: 'online', meta: null }); // before its state: dropped
    ch({ type: 'state', seq: 10, members: [
      { user_id: 'x', status: 'online', last_active: null, sessions: 1, meta: { typing: false }, metas: [{ typing: false }], status_message: 'hi' },
      { user_id: 'y', status: 'away', last_active: null, sessions: 2, meta: null, metas: [null, null], status_message: null },
    ] });
    ch({ type: 'join', seq: 9, user_id: 'z', status: 'online', meta: null }); // the state has it
    ch({ type: 'join', seq: 11, user_id: 'z', status: 'online', meta: { p: 1 }, status_message: 'yo' });
    ch({ type: 'update', seq: 12, user_id: 'y', meta: { typing: true } });
    ch({ type: 'presence', seq: 13, user_id: 'y', status: 'online', previous: 'away', last_active: null });
    ch({ type: 'status_message', seq: 14, user_id: 'z', status_message: null, expires_at: null });
    ch({ type: 'presence', seq: 15, user_id: 'x', status: 'offline', previous: 'online', last_active: null });
    ch({ type: 'leave', seq: 16, user_id: 'z' });
    ch({ type: 'diff', seq: 17, joins: [{ user_id: 'w', status: 'online', meta: null, status_message: null }],
      leaves: [{ user_id: 'y' }], updates: [] });
    c.receive({ type: 'join', channel: 'room:b', seq: 18, user_id: 'v', status: 'online', meta: null }); // not watched
    ch({ type: 'unsubscribed' }); // the answer to a leave: nothing to do
    ch({ type: 'update', seq: 19, user_id: 'w', meta: { typing: true } });
    const before = [...room.members.keys()];
    ch({ type: 'state', seq: null, members: [] }); // a new link: everything after it applies
    ch({ type: 'join', seq: 2, user_id: 'u', status: 'away', meta: null });

    c.receive({ type: 'state', seq: 5, users: [
      { user_id: 'u1', status: 'online', last_active: null, sessions: 1, status_message: null },
      { user_id: 'u2', status: 'away', last_active: null, sessions: 1, status_message: 'brb' },
    ] });
    c.receive({ type: 'presence', seq: 4, user_id: 'u3', status: 'online', previous: 'offline', last_active: null });
    c.receive({ type: 'presence', seq: 7, user_id: 'u3', status: 'online', previous: 'offline', last_active: null });
    c.receive({ type: 'status_message', seq: 8, user_id: 'u1', status_message: 'busy', expires_at: null });
    c.receive({ type: 'presence', seq: 9, user_id: 'u2', status: 'offline', previous: 'away', last_active: null });
    const users = [...c.users.values()].map((u) => `${u.user_id}:${u.status}:${u.status_message}`);
    // seqs the global feed skips (channel events) are no reason to start over
    return { events, changes, before, after: [...room.members.keys()], meta: room.members.get('u').meta, global, users,
      reconnected: tokens > 0 };
  });
  assert.deepEqual(got.events, [
    'state x,y',
    'join z:online:{"p":1}:yo',
    'update y:away:{"typing":true}:null was null',
    'presence y:online:{"typing":true}:null was away',
    'status_message z:online:{"p":1}:null',
    'leave x:offline:{"typing":false}:hi',
    'leave z:online:{"p":1}:null',
    'join w:online:null:null',
    'leave y:online:{"typing":true}:null',
    'update w:online:{"typing":true}:null was null',
    'state ',
    'join u:away:null:null',
  ]);
  assert.equal(got.changes, 11, 'a change per frame that changed something (the diff once)');
  assert.deepEqual(got.before, ['w']);
  assert.deepEqual(got.after, ['u']);
  assert.equal(got.meta, null);
  assert.deepEqual(got.global, ['state 5', 'presence 7', 'status_message 8', 'presence 9'], 'channel frames are not the global feed\'s');
  assert.deepEqual(got.users, ['u1:online:busy', 'u3:online:null']);
  assert.equal(got.reconnected, false);
});

test('bad arguments are refused before anything is sent', async () => {
  const got = await page.evaluate(() => {
    const c = new window.client.PresenceConnection('t');
    const refused = (fn) => { try { fn(); return null; } catch (e) { return e.name; } };
    return [
      refused(() => c.join('')),
      refused(() => c.subscribe('x'.repeat(257))),
      refused(() => c.join('room:a', [1])),
      refused(() => c.update('room:a', { typing: true })), // not joined
      refused(() => c.setStatusMessage('x'.repeat(141))),
      refused(() => c.setStatusMessage('ok', -1)),
      refused(() => c.setStatusMessage('😀'.repeat(140), 60)), // 140 characters, 560 bytes
    ];
  });
  assert.deepEqual(got, ['TypeError', 'TypeError', 'TypeError', 'Error', 'RangeError', 'TypeError', null]);
});

test('through the relay: a watcher sees a member join, update, and leave; leave keeps a subscribed channel watched', async () => {
  await page.evaluate(() => {
    const log = (window.log = []);
    const open = (user) => {
      const c = new window.client.PresenceConnection(user, { onError: (e) => log.push(`${user} error ${e.code} ${e.request} ${e.channel}`) });
      c.start();
      return c;
    };
    window.carol = open('carol');
    window.dave = open('dave');
    const room = window.carol.subscribe('room:x');
    for (const type of ['join', 'leave', 'update']) room.on(type, (m) => log.push(`carol ${type} ${m.user_id} ${JSON.stringify(m.meta)}`));
  });
  await until(() => window.carol.channel('room:x').synced);
  await page.evaluate(() => window.dave.join('room:x', { page: 1 }));
  await until(() => window.carol.channel('room:x').members.get('dave')?.meta?.page === 1);
  await until(() => window.dave.channel('room:x').synced && window.dave.channel('room:x').members.has('dave'));
  assert.ok(await page.evaluate(() => window.log.some((l) => l.startsWith('carol join dave'))), 'a join event');

  await page.evaluate(() => window.dave.update('room:x', { page: 2 }));
  await until(() => window.carol.channel('room:x').members.get('dave')?.meta?.page === 2);

  // carol joins and leaves: she still watches (she subscribed), and dave sees her go
  await page.evaluate(() => window.carol.join('room:x', { page: 9 }));
  await until(() => window.dave.channel('room:x').members.get('carol')?.meta?.page === 9);
  const left = await page.evaluate(() => window.carol.leave('room:x'));
  assert.equal(left, true);
  await until(() => !window.dave.channel('room:x').members.has('carol'));
  await until(() => window.carol.channel('room:x').synced && !window.carol.channel('room:x').members.has('carol'));
  await page.evaluate(() => window.dave.update('room:x', { page: 3 }));
  await until(() => window.carol.channel('room:x').members.get('dave')?.meta?.page === 3);
  assert.deepEqual(await page.evaluate(() => [window.carol.channel('room:x').watching, window.carol.channel('room:x').joined]), [true, false]);
});

test('a channel the token does not allow: an error event, and neither joined nor watched', async () => {
  const got = await page.evaluate(() => new Promise((resolve) => {
    const ch = window.dave.join('team:1');
    ch.on('error', (e) => resolve({ e, joined: ch.joined, watching: ch.watching }));
  }));
  assert.deepEqual(got, { e: { code: 'forbidden', request: 'join' }, joined: false, watching: false });
  assert.ok(await page.evaluate(() => window.log.includes('dave error forbidden join team:1')));
});

test('a new socket joins and watches again; within the grace nobody sees a leave', async () => {
  await page.evaluate(() => {
    window.states = 0;
    window.carol.channel('room:x').on('state', () => window.states++);
    window.dave.ws.close(); // as a dropped connection: the client opens another
  });
  await until(() => window.dave.ws !== null && window.dave.ws.readyState === 1 && window.dave.channel('room:x').synced);
  // the new session is a member: its update reaches carol
  await page.evaluate(() => window.dave.update('room:x', { page: 4 }));
  await until(() => window.carol.channel('room:x').members.get('dave')?.meta?.page === 4);
  assert.ok(!(await page.evaluate(() => window.log.some((l) => l.startsWith('carol leave dave')))), 'no leave of dave');

  // carol's new socket subscribes again and gets the channel's state again
  await page.evaluate(() => window.carol.ws.close());
  await until(() => window.states >= 1 && window.carol.channel('room:x').synced);
  assert.equal(await page.evaluate(() => window.carol.channel('room:x').members.get('dave')?.meta?.page), 4);
});

test('a status message: in users and members, until cleared', async () => {
  await page.evaluate(() => window.dave.setStatusMessage('Out for lunch', 600));
  await until(() => window.carol.users.get('dave')?.status_message === 'Out for lunch' &&
    window.carol.channel('room:x').members.get('dave')?.status_message === 'Out for lunch');
  await page.evaluate(() => window.dave.setStatusMessage(null));
  await until(() => window.carol.users.get('dave')?.status_message === null &&
    window.carol.channel('room:x').members.get('dave')?.status_message === null);
  await page.evaluate(() => { window.carol.stop(); window.dave.stop(); });
});

test('presence.d.ts declares what presence.js has, and a usage example compiles with it', async () => {
  const dts = fs.readFileSync(path.join(repoRoot, 'src/relay/www/presence.d.ts'), 'utf8');
  const methods = (cls) => {
    const body = new RegExp(`export class ${cls} \\{([\\s\\S]*?)\\n\\}`).exec(dts)[1];
    return [...body.matchAll(/^ {2}(?!readonly|constructor)(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]);
  };
  const declared = { PresenceConnection: methods('PresenceConnection'), PresenceChannel: methods('PresenceChannel') };
  assert.ok(declared.PresenceConnection.includes('join') && declared.PresenceChannel.includes('on'));
  const missing = await page.evaluate((d) => Object.entries(d).flatMap(([cls, names]) =>
    names.filter((n) => typeof window.client[cls].prototype[n] !== 'function').map((n) => `${cls}.${n}`)), declared);
  assert.deepEqual(missing, []);
  const functions = [...dts.matchAll(/^export function (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(await page.evaluate((f) => f.filter((n) => typeof window.client[n] !== 'function'), functions), []);

  const tsc = path.join(repoRoot, 'test/node_modules/typescript/bin/tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', path.join(repoRoot, 'test/browser/types/tsconfig.json')])
    .catch((e) => assert.fail(`tsc: ${e.stdout}${e.stderr}`));
});

// The first ```js block after the line `heading` of docs/relay.md.
function docBlock(heading) {
  const text = fs.readFileSync(path.join(repoRoot, 'docs/relay.md'), 'utf8');
  const at = text.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `relay.md has no "${heading}"`);
  return /```js\n([\s\S]*?)```/.exec(text.slice(at))[1];
}

test('the presence.js example of relay.md works as written', async () => {
  const example = docBlock('### presence.js');
  const token = (await (await fetch(new URL('/demo/token?user=alice', demo.url))).json()).token;
  // the application's token endpoint, and the example as a module of the page
  await page.route('**/my-app/presence-token', (route) => route.fulfill({ json: { token } }));
  await page.route('**/relay-md-example.js', (route) => route.fulfill({ body: example, contentType: 'text/javascript' }));
  await page.evaluate(async () => {
    for (const [tag, id] of [['ul', 'people'], ['span', 'lobby-count'], ['input', 'draft']]) {
      const e = document.createElement(tag);
      e.id = id;
      document.body.append(e);
    }
    await import('/relay-md-example.js');
  });
  const people = () => page.locator('#people li').allTextContents();
  await until(() => document.querySelector('#people li')?.textContent === 'alice · In a meeting');

  await page.evaluate(() => {
    window.erin = new window.client.PresenceConnection('erin');
    window.erin.start();
    window.erin.join('room:42');
    window.erin.join('room:lobby');
  });
  await until(() => document.querySelectorAll('#people li').length === 2 && document.getElementById('lobby-count').textContent === '1');
  await page.evaluate(() => window.erin.update('room:42', { typing: true }));
  await until(() => [...document.querySelectorAll('#people li')].some((li) => li.textContent === 'erin · typing…'));
  // alice types in the example's box: erin sees it
  await page.locator('#draft').fill('hello');
  await until(() => window.erin.channel('room:42').members.get('alice')?.meta?.typing === true);
  await page.locator('#draft').fill('');
  await until(() => window.erin.channel('room:42').members.get('alice')?.meta?.typing === false);
  assert.deepEqual((await people()).sort(), ['alice · In a meeting', 'erin · typing…']);
  await page.evaluate(() => window.erin.stop());
});

test('the page logged no errors', () => {
  assert.deepEqual(errors, []);
});
