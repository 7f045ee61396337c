'use strict';
// Runs scripts/demo.sh the way a user does (without its setup step), reads
// from what it prints the page's address and the PIDs and directory it
// made, and stops it with SIGINT, as Ctrl-C would.
//
//   const demo = await startDemo({ port, args: ['--token-ttl', '15'] });
//   demo.url  demo.pids  demo.dir  demo.output()
//   const { code, signal } = await demo.interrupt();
//   const chrome = await launchChromium();  chrome.browser  await chrome.close();

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const repoRoot = path.resolve(__dirname, '..', '..');

class Demo {
  constructor(port) {
    this.port = port;
    this.out = '';
    this.exitStatus = null;
  }

  output() { return this.out; }

  start(timeoutMs, args) {
    this.child = spawn(path.join(repoRoot, 'scripts', 'demo.sh'), ['--no-setup', '--port', String(this.port), ...args],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (b) => { this.out += b.toString(); };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      this.exitStatus = { code, signal };
      resolve(this.exitStatus);
    }));
    // a test run that dies still lets demo.sh clean up after itself
    process.on('exit', () => { if (!this.exitStatus) this.child.kill('SIGINT'); });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('demo.sh printed no address in time')), timeoutMs);
      const fail = (e) => {
        clearTimeout(timer);
        this.child.stdout.off('data', check);
        reject(new Error(`${e.message}\n--- demo.sh said:\n${this.out}`));
      };
      const check = () => {
        const url = /open\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(this.out);
        if (!url || !/Ctrl-C stops/.test(this.out)) return;
        clearTimeout(timer);
        this.child.stdout.off('data', check);
        this.url = url[1];
        this.pids = {
          postgres: Number(/PostgreSQL \(pid (\d+)\)/.exec(this.out)[1]),
          relay: Number(/presence-relay \(pid (\d+)\)/.exec(this.out)[1]),
        };
        this.dir = /removes (\/\S+?)\.?\n/.exec(this.out)[1];
        resolve(this);
      };
      this.child.stdout.on('data', check);
      this.exited.then((s) => fail(new Error(`demo.sh exited ${JSON.stringify(s)}`)));
    });
  }

  // SIGINT, as Ctrl-C in a terminal; SIGKILL if it hangs.
  async interrupt(timeoutMs = 60000) {
    if (!this.exitStatus) {
      this.child.kill('SIGINT');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exitStatus;
  }

  saveOutput(dir) {
    if (!dir) return;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'demo.sh.log'), this.out);
  }
}

// args: more of demo.sh's options, e.g. ['--token-ttl', '15']
async function startDemo({ port, timeoutMs = 90000, args = [] }) {
  const demo = new Demo(port);
  return demo.start(timeoutMs, args);
}

// Is a process with this PID still there?
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// as the machine needs them: no sandbox as an unprivileged user in a
// container, and no calls home that a closed network would refuse
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Debian's headless Chromium, with a home of its own, so that its dot files
// end with the test (playwright gives each launch a fresh --user-data-dir
// and removes it).  close() closes it and removes that home.
async function launchChromium() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-chromium-'));
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
      env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
    });
    return {
      browser,
      close: async () => {
        await browser.close();
        fs.rmSync(home, { recursive: true, force: true });
      },
    };
  } catch (e) {
    fs.rmSync(home, { recursive: true, force: true });
    throw e;
  }
}

module.exports = { startDemo, alive, launchChromium, repoRoot };
