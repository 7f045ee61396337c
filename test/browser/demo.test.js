'use strict';
// The demo as people see it: scripts/demo.sh serving the page, two people
// (two browser contexts of Debian's headless Chromium) who see each other
// come, go idle, hide, and leave; a simulated crowd; then Ctrl-C, after
// which nothing the demo started is left.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { freePort } = require('../lib/cluster');
const { startDemo, alive } = require('./demo');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// as the machine needs them: no sandbox as an unprivileged user in a
// container, and no calls home that a closed network would refuse
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = process.env.ARTIFACTS_DIR || null;

// The demo's timeouts (scripts/demo.sh): idle 20 s, grace 3 s; the page
// reports idle after 5 s without input.
const AWAY_WITHIN = 60000;
const SEE_WITHIN = 15000;
const TOKEN_TTL = 15;

let demo;
let browser;
let browserHome;
const people = {};     // name -> { context, page, errors }

const row = (page, user, status) =>
  page.locator(status ? `#users [data-user="${user}"][data-status="${status}"]` : `#users [data-user="${user}"]`);
const feedLine = (page, user, what) =>
  page.locator(`#feed [data-user="${user}"]`).filter({ hasText: what }).first();
const shows = (locator, timeout = SEE_WITHIN) => locator.waitFor({ state: 'visible', timeout });
const gone = (locator, timeout = SEE_WITHIN) => locator.waitFor({ state: 'detached', timeout });
const countIs = (page, n, timeout = SEE_WITHIN) =>
  page.waitForFunction((want) => document.getElementById('count').textContent === String(want), n, { timeout });

async function arrive(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(demo.url);
  await page.getByPlaceholder('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await shows(row(page, name));
  people[name] = { context, page, errors };
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
  // a home of its own, so that Chromium's dot files end with the test;
  // playwright gives each launch a fresh --user-data-dir and removes it
  browserHome = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: browserHome, XDG_CONFIG_HOME: browserHome, XDG_CACHE_HOME: browserHome },
  });
});

test.after(async () => {
  await browser?.close();
  if (browserHome) fs.rmSync(browserHome, { recursive: true, force: true });
  if (demo && !demo.exitStatus) await demo.interrupt();
  demo?.saveOutput(ARTIFACTS);
});

test('the page is served by the relay, with its security headers', async () => {
  const r = await fetch(demo.url);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
  assert.match(await r.text(), /<title>presence/);
});

test('two people join and each sees the other appear', async () => {
  const alice = await arrive('Alice');
  const bob = await arrive('Bob');
  await shows(row(alice, 'Bob', 'online'));
  await shows(row(bob, 'Alice', 'online'));
  await countIs(alice, 2);
  await countIs(bob, 2);
  await shows(feedLine(alice, 'Bob', 'joined'));
  assert.equal(await row(bob, 'Alice').locator('.user-status').textContent(), 'Active now');
  assert.equal(await alice.locator('#link').textContent(), 'Live');
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
});

test('a simulated crowd of 50 comes, idles, and goes when stopped', async () => {
  const { page: alice } = people.Alice;
  const { page: bob } = people.Bob;
  await bob.getByRole('button', { name: 'Simulate a crowd' }).click();
  const sims = (page, status) => page.locator(status ? `#users [data-user^="sim:"][data-status="${status}"]`
    : '#users [data-user^="sim:"]');
  // everyone arrives within 8 s and stays at least 30 s
  await alice.waitForFunction(() => document.querySelectorAll('#users [data-user^="sim:"]').length === 50,
    null, { timeout: 30000 });
  await shows(bob.getByText('50 of 50 simulated people connected.'));
  // about half of them idle for longer than the idle timeout; Bob keeps
  // using his page meanwhile, Alice does not
  await busyUntil(bob, sims(bob, 'away').first(), 90000);
  await shows(row(bob, 'Alice', 'away'));
  const away = await sims(bob, 'away').count();
  const total = Number(await bob.locator('#count').textContent());
  assert.ok(away >= 1 && total >= 2 + 25, `${total} shown, ${away} away`);
  assert.match(await bob.locator('#count-detail').textContent(), /^\d+ active · \d+ away$/);
  if (ARTIFACTS) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // no hover left over, no half-played animation
    await bob.mouse.move(1270, 790);
    await bob.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await bob.screenshot({ path: path.join(ARTIFACTS, 'demo.png'), animations: 'disabled' });
  }

  await bob.getByRole('button', { name: 'Stop the crowd' }).click();
  await alice.waitForFunction(() => document.querySelectorAll('#users [data-user^="sim:"]').length === 0,
    null, { timeout: SEE_WITHIN });
  await countIs(alice, 2);
});

test('Bob closes his page: Alice sees him leave', async () => {
  const { page: alice } = people.Alice;
  await people.Bob.context.close();
  await gone(row(alice, 'Bob'));
  await shows(feedLine(alice, 'Bob', 'left'));
  await countIs(alice, 1);
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
