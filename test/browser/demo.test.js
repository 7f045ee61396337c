'use strict';
// The demo as people see it: scripts/demo.sh serving the page, two people
// (two browser contexts of Debian's headless Chromium) who see each other
// come, go idle, hide, and leave; who are first in two rooms (each sees the
// other only in the rooms' counts), then in the same one (each sees the
// other join, type, and their status message), and switch rooms; a
// simulated crowd spread over the rooms; then Ctrl-C, after which nothing
// the demo started is left.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { freePort } = require('../lib/cluster');
const { startDemo, alive, launchChromium } = require('./demo');

const ARTIFACTS = process.env.ARTIFACTS_DIR || null;

// The demo's timeouts (scripts/demo.sh): idle 20 s, grace 3 s; the page
// reports idle after 5 s without input.
const AWAY_WITHIN = 60000;
const SEE_WITHIN = 15000;
const TOKEN_TTL = 15;

let demo;
let browser;
let chrome;
const people = {};     // name -> { context, page, errors }

const row = (page, user, status) =>
  page.locator(status ? `#users [data-user="${user}"][data-status="${status}"]` : `#users [data-user="${user}"]`);
// in the room one is in
const member = (page, user, more = '') => page.locator(`#members [data-user="${user}"]${more}`);
// the global feed's lines, and those of the room one is in
const feedLine = (page, user, what) =>
  page.locator(`#feed [data-user="${user}"]:not([data-room])`).filter({ hasText: what }).first();
const roomLine = (page, user, what) =>
  page.locator(`#feed [data-user="${user}"][data-room]`).filter({ hasText: what }).first();
const roomCountIs = (page, room, n, timeout = SEE_WITHIN) => page.waitForFunction(([r, want]) =>
  document.querySelector(`#rooms [data-room="${r}"] .room-count`).textContent === String(want), [room, n], { timeout });
const roomCount = async (page, room) => Number(await page.locator(`#rooms [data-room="${room}"] .room-count`).textContent());
const membersShown = (page) => page.locator('#members [data-user]').evaluateAll((lis) => lis.map((li) => li.dataset.user));
// everyone a page ever showed in its room's member list (sessionStorage
// keeps it across reloads), recorded by a script the test adds to the page
const everInRoom = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('test-ever-in-room') || '[]'));
function recordRoomMembers() {
  const seen = new Set(JSON.parse(sessionStorage.getItem('test-ever-in-room') || '[]'));
  new MutationObserver(() => {
    const before = seen.size;
    for (const li of document.querySelectorAll('#members [data-user]')) seen.add(li.dataset.user);
    if (seen.size !== before) sessionStorage.setItem('test-ever-in-room', JSON.stringify([...seen]));
  }).observe(document, { childList: true, subtree: true });
}
const shows = (locator, timeout = SEE_WITHIN) => locator.waitFor({ state: 'visible', timeout });
const gone = (locator, timeout = SEE_WITHIN) => locator.waitFor({ state: 'detached', timeout });
const countIs = (page, n, timeout = SEE_WITHIN) =>
  page.waitForFunction((want) => document.getElementById('count').textContent === String(want), n, { timeout });

// The frames the relay sends to a person's own socket (not those of the
// crowd the page runs), as the test sees them through the browser.
function recordFrames(page, user, frames) {
  page.on('websocket', (ws) => {
    const token = new URL(ws.url()).searchParams.get('token');
    const sub = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).sub;
    if (sub !== user) return;
    ws.on('framereceived', (f) => {
      try { frames.push(JSON.parse(f.payload)); } catch { /* not JSON: the test of it is elsewhere */ }
    });
  });
}

// name opens the page (at #room, if given) and joins.
async function arrive(name, room) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(recordRoomMembers);
  const page = await context.newPage();
  const errors = [];
  const frames = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  recordFrames(page, name, frames);
  await page.goto(demo.url + (room ? `#${room}` : ''));
  await page.getByPlaceholder('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await shows(row(page, name));
  await shows(member(page, name));
  people[name] = { context, page, errors, frames };
  return page;
}

// Command lines of the processes that name path (postgres backends too).
function processesMentioning(p) {
  const found = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(p)) found.push(`${pid}: ${cmd}`);
    } catch { /* gone meanwhile */ }
  }
  return found;
}

// Keeps someone "using" the page (mouse moves) until cond is visible.
async function busyUntil(page, locator, timeout) {
  const deadline = Date.now() + timeout;
  for (let i = 0; ; i++) {
    await page.mouse.move(200 + (i % 40) * 5, 300 + (i % 7) * 9);
    try {
      await locator.waitFor({ state: 'visible', timeout: 1000 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
}

test.before(async () => {
  // tokens that expire every few seconds: the pages keep theirs fresh
  demo = await startDemo({ port: await freePort(), args: ['--token-ttl', String(TOKEN_TTL)] });
  chrome = await launchChromium();
  browser = chrome.browser;
});

test.after(async () => {
  await chrome?.close();
  if (demo && !demo.exitStatus) await demo.interrupt();
  demo?.saveOutput(ARTIFACTS);
});

test('the page is served by the relay, with its security headers', async () => {
  const r = await fetch(demo.url);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
  assert.match(await r.text(), /<title>presence/);
});

test('two people in two rooms: each sees the other online, and in the rooms\' counts only', async () => {
  const alice = await arrive('Alice');
  const bob = await arrive('Bob', 'design');
  await shows(row(alice, 'Bob', 'online'));
  await shows(row(bob, 'Alice', 'online'));
  await countIs(alice, 2);
  await countIs(bob, 2);
  await shows(feedLine(alice, 'Bob', 'joined'));
  assert.equal(await row(bob, 'Alice').locator('.user-status').textContent(), 'Active now');
  assert.equal(await alice.locator('#link').textContent(), 'Live');
  // Alice is in #general (the first room), Bob in #design
  assert.equal(await alice.locator('#room-name').textContent(), '#general');
  assert.equal(await bob.locator('#room-name').textContent(), '#design');
  for (const page of [alice, bob]) {
    await roomCountIs(page, 'general', 1);
    await roomCountIs(page, 'design', 1);
    assert.equal(await roomCount(page, 'random'), 0);
  }
  assert.deepEqual(await membersShown(alice), ['Alice']);
  assert.deepEqual(await membersShown(bob), ['Bob']);
  assert.equal(await alice.locator('#members-empty').isVisible(), true);
});

test('Alice sets a status message: Bob sees it next to her name', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  await alice.locator('#status-text').fill('Writing the docs');
  await alice.locator('#status-expiry').selectOption({ label: "Don't clear" });
  await alice.getByRole('button', { name: 'Set', exact: true }).click();
  await shows(row(bob, 'Alice').locator('.user-note').filter({ hasText: /^Writing the docs$/ }));
  // she sees it too, beside her name and in the top bar
  await shows(member(alice, 'Alice').locator('.user-note').filter({ hasText: /^Writing the docs$/ }));
  assert.equal(await alice.locator('#me-note').textContent(), ' · Writing the docs');
  assert.equal(await alice.locator('#status-now').textContent(), 'Shown until you clear it');
});

test('Alice stops touching her page: Bob sees her go away, then come back', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  await shows(alice.getByText('You look idle'), 10000);
  await busyUntil(bob, row(bob, 'Alice', 'away'), AWAY_WITHIN);
  assert.match(await row(bob, 'Alice').locator('.user-status').textContent(), /^Away · idle for /);
  await shows(feedLine(bob, 'Alice', 'went away'));
  // Bob kept using his page: Alice sees him online all along
  await shows(row(alice, 'Bob', 'online'), 1000);
  await shows(alice.locator('#me-status').filter({ hasText: 'Away' }));

  await alice.mouse.move(400, 400);
  await shows(row(bob, 'Alice', 'online'), 5000);
  await shows(feedLine(bob, 'Alice', 'is back'));
});

test('Alice goes invisible: Bob sees her offline; visible again, back', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  await alice.getByText('Go invisible').click();
  await gone(row(bob, 'Alice'));
  await countIs(bob, 1);
  await shows(feedLine(bob, 'Alice', 'left'));
  // an invisible user is in no room, to others
  await roomCountIs(bob, 'general', 0);
  await shows(member(alice, 'Alice', '[data-status="invisible"]'));
  // she still sees herself, marked as hidden, and everyone else
  await shows(row(alice, 'Alice', 'invisible'));
  assert.match(await row(alice, 'Alice').locator('.user-status').textContent(), /^Invisible/);
  assert.equal(await alice.locator('#me-status').textContent(), 'Invisible');
  await shows(row(alice, 'Bob', 'online'));

  // the extension keeps the choice: after a reload she is still hidden
  await alice.reload();
  await shows(row(alice, 'Alice', 'invisible'));
  assert.equal(await alice.getByRole('switch').isChecked(), true);
  assert.equal(await row(bob, 'Alice').count(), 0);

  await alice.getByText('Go invisible').click();
  await shows(row(bob, 'Alice', 'online'));
  await countIs(bob, 2);
  await roomCountIs(bob, 'general', 1);
  assert.equal(await alice.getByRole('switch').isChecked(), false);
});

test('Alice reloads her page: Bob sees no leave and no join', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  const before = await bob.locator('#feed [data-user="Alice"]').count();
  await alice.reload();
  await shows(row(alice, 'Alice', 'online'));
  await shows(alice.locator('#link').filter({ hasText: 'Live' }));
  // a leave would come reconnect_grace (3 s) after the old socket closed
  await assert.rejects(bob.waitForFunction((n) => document.querySelectorAll('#feed [data-user="Alice"]').length > n,
    before, { timeout: 6000 }), /Timeout/, 'no new line about Alice in the feed');
  await shows(row(bob, 'Alice', 'online'), 0);
  // back in her room, which nobody saw her leave
  await shows(member(alice, 'Alice'));
  assert.equal(await alice.locator('#room-name').textContent(), '#general');
  assert.equal(await roomCount(bob, 'general'), 1);
});

test('Bob comes to #general: each sees the other join, type, and set a status', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  // in two rooms, neither ever showed the other in their room
  assert.ok(!(await everInRoom(alice)).includes('Bob'), 'Alice never saw Bob in #general');
  assert.ok(!(await everInRoom(bob)).includes('Alice'), 'Bob never saw Alice in #design');

  await bob.locator('#rooms [data-room="general"]').click();
  await shows(member(alice, 'Bob', '[data-status="online"]'));
  await shows(roomLine(alice, 'Bob', 'joined #general'));
  await shows(member(bob, 'Alice'));
  assert.equal(await bob.locator('#room-name').textContent(), '#general');
  assert.equal(new URL(bob.url()).hash, '#general');
  // her status message came with the room's state
  assert.equal(await member(bob, 'Alice').locator('.user-note').textContent(), 'Writing the docs');
  for (const page of [alice, bob]) {
    await roomCountIs(page, 'general', 2);
    // Bob's leave of #design shows after the reconnect grace (3 s)
    await roomCountIs(page, 'design', 0);
  }

  // Bob types: Alice sees it while he does
  await bob.locator('#message').pressSequentially('hello', { delay: 30 });
  await shows(member(alice, 'Bob', '[data-typing]'));
  await shows(alice.locator('#room-detail').filter({ hasText: 'Bob is typing…' }));
  await bob.locator('#message').press('Enter');
  await shows(member(alice, 'Bob', ':not([data-typing])'));
  assert.equal(await bob.locator('#message').inputValue(), '');

  // Bob's status message, until he clears it
  await bob.locator('#status-text').fill('In a meeting');
  await bob.locator('#status-expiry').selectOption({ label: '30 minutes' });
  await bob.getByRole('button', { name: 'Set', exact: true }).click();
  await shows(member(alice, 'Bob').locator('.user-note').filter({ hasText: /^In a meeting$/ }));
  await shows(row(alice, 'Bob').locator('.user-note').filter({ hasText: /^In a meeting$/ }));
  assert.match(await bob.locator('#status-now').textContent(), /^Shown until \d/);
  await bob.getByRole('button', { name: 'Clear' }).click();
  await member(alice, 'Bob').locator('.user-note').waitFor({ state: 'hidden', timeout: SEE_WITHIN });
  assert.equal(await row(alice, 'Bob').locator('.user-note').isVisible(), false);
});

test('Alice switches to #random: Bob sees her leave #general, and the counts change', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  await alice.locator('#rooms [data-room="random"]').click();
  await shows(member(alice, 'Alice'));
  assert.deepEqual(await membersShown(alice), ['Alice']);
  await roomCountIs(bob, 'random', 1);
  // the leave comes after the reconnect grace
  await gone(member(bob, 'Alice'));
  await shows(roomLine(bob, 'Alice', 'left #general'));
  await roomCountIs(bob, 'general', 1);
  await roomCountIs(alice, 'general', 1);
  // still online, everywhere
  await shows(row(bob, 'Alice', 'online'), 0);
});

test('a simulated crowd of 50 comes, spreads over the rooms, switches, types, idles, and goes when stopped', async () => {
  const { page: alice } = people.Alice;
  const { page: bob, frames } = people.Bob;
  const crowdFrom = frames.length;
  await bob.getByRole('button', { name: 'Simulate a crowd' }).click();
  const sims = (page, status) => page.locator(status ? `#users [data-user^="sim:"][data-status="${status}"]`
    : '#users [data-user^="sim:"]');
  // everyone arrives within 8 s and stays at least 30 s
  await alice.waitForFunction(() => document.querySelectorAll('#users [data-user^="sim:"]').length === 50,
    null, { timeout: 30000 });
  await shows(bob.getByText('50 of 50 simulated people connected.'));
  // spread over the rooms: each has some, and everyone online is in one
  // (someone switching is in two for the reconnect grace)
  await bob.waitForFunction(() => {
    const counts = [...document.querySelectorAll('#rooms .room-count')].map((c) => Number(c.textContent));
    const online = Number(document.getElementById('count').textContent);
    return counts.every((n) => n >= 3) && counts.reduce((a, b) => a + b) >= online;
  }, null, { timeout: SEE_WITHIN });
  // some type in Bob's room, some say what they are up to
  await shows(bob.locator('#members [data-user^="sim:"][data-typing]').first(), 30000);
  await shows(bob.locator('#users [data-user^="sim:"] .user-note:not([hidden])').first(), 30000);

  // about half of them idle for longer than the idle timeout; Bob keeps
  // using his page meanwhile, Alice does not
  await busyUntil(bob, sims(bob, 'away').first(), 90000);
  await shows(row(bob, 'Alice', 'away'));
  const away = await sims(bob, 'away').count();
  const total = Number(await bob.locator('#count').textContent());
  assert.ok(away >= 1 && total >= 2 + 25, `${total} shown, ${away} away`);
  assert.match(await bob.locator('#count-detail').textContent(), /^\d+ active · \d+ away$/);
  // and they switch rooms now and then: Bob's socket (which watches every
  // room) saw one of them join a room while still in, or just out of, another
  const switched = () => {
    const room = new Map();
    for (const m of frames.slice(crowdFrom)) {
      if (!m.user_id?.startsWith('sim:')) continue;
      if (m.type === 'presence' && !m.channel && m.status === 'offline') room.delete(m.user_id);
      if (m.type === 'join' && m.channel) {
        if (room.has(m.user_id) && room.get(m.user_id) !== m.channel) return m.user_id;
        room.set(m.user_id, m.channel);
      }
    }
    return null;
  };
  for (const deadline = Date.now() + 60000; !switched();) {
    assert.ok(Date.now() < deadline, 'nobody of the crowd switched rooms within a minute');
    await bob.mouse.move(300, 300 + (Date.now() % 50));
    await bob.waitForTimeout(500);
  }
  if (ARTIFACTS) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // someone typing in the picture, no hover left over, no half-played animation
    await shows(bob.locator('#members [data-user^="sim:"][data-typing]').first(), 30000);
    await bob.mouse.move(1270, 790);
    await bob.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await bob.screenshot({ path: path.join(ARTIFACTS, 'demo.png'), animations: 'disabled' });
  }

  await bob.getByRole('button', { name: 'Stop the crowd' }).click();
  await alice.waitForFunction(() => document.querySelectorAll('#users [data-user^="sim:"]').length === 0,
    null, { timeout: SEE_WITHIN });
  await countIs(alice, 2);
  for (const page of [alice, bob]) {
    await roomCountIs(page, 'general', 1);
    await roomCountIs(page, 'random', 1);
    await roomCountIs(page, 'design', 0);
  }
});

test('Bob closes his page: Alice sees him leave', async () => {
  const { page: alice } = people.Alice;
  await people.Bob.context.close();
  await gone(row(alice, 'Bob'));
  await shows(feedLine(alice, 'Bob', 'left'));
  await countIs(alice, 1);
  await roomCountIs(alice, 'general', 0);
  // the feed's times tick
  await alice.waitForFunction(() => [...document.querySelectorAll('#feed time')].some((t) => / s ago$/.test(t.textContent)),
    null, { timeout: 10000 });
});

test('tokens lasting 15 s were refreshed all along: no socket was closed for an expired one', async () => {
  const text = await (await fetch(new URL('/metrics', demo.url))).text();
  const sample = (event) => Number(new RegExp(`^presence_relay_tokens_total\\{event="${event}"\\} (\\d+)$`, 'm').exec(text)[1]);
  assert.equal(sample('expired'), 0);
  assert.equal(sample('refused'), 0);
  assert.ok(sample('refreshed') >= 10, `${sample('refreshed')} tokens refreshed`);
});

test('the pages logged no errors (no CSP violations, no failed scripts)', () => {
  for (const [name, { errors }] of Object.entries(people)) assert.deepEqual(errors, [], `${name}'s page`);
});

test('Ctrl-C stops the demo and leaves nothing behind', async () => {
  await people.Alice.context.close();
  const { pids, dir } = demo;
  assert.ok(alive(pids.postgres) && alive(pids.relay), 'running until now');
  assert.ok(fs.existsSync(dir));
  const status = await demo.interrupt();
  assert.deepEqual(status, { code: 0, signal: null }, demo.output());
  assert.ok(!alive(pids.postgres), 'postgres stopped');
  assert.ok(!alive(pids.relay), 'relay stopped');
  assert.ok(!fs.existsSync(dir), `${dir} removed`);
  assert.deepEqual(processesMentioning(dir), [], 'no process of the demo is left');
  assert.match(demo.output(), /relay \(pid \d+\) stopped/);
  assert.match(demo.output(), /postgres \(pid \d+\) stopped/);
});
