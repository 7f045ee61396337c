'use strict';
// What the libraries that run Debian's daemons for tests share: finding a
// program that Debian installs in /usr/sbin (not in an unprivileged PATH),
// and children that do not outlive the test process.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

// $ENV_NAME, else name in PATH or /usr/sbin.
function findProgram(name, envName) {
  if (envName && process.env[envName]) return process.env[envName];
  for (const dir of [...(process.env.PATH || '').split(':'), '/usr/sbin']) {
    const p = path.join(dir, name);
    if (dir && fs.existsSync(p)) return p;
  }
  return name;
}

// spawn(), and the child is SIGKILLed if the test process exits first;
// child.exited resolves with { code, signal }, also kept as child.exitStatus.
function spawnOwned(file, args, options) {
  const child = spawn(file, args, options);
  live.add(child);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    live.delete(child);
    child.exitStatus = { code, signal };
    resolve(child.exitStatus);
  }));
  return child;
}

// Sends sig, then SIGKILL after timeoutMs; resolves when the child is gone.
async function stopChild(child, sig, timeoutMs = 10000) {
  if (!child.exitStatus) {
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await child.exited;
    clearTimeout(timer);
  }
  return child.exitStatus;
}

module.exports = { findProgram, spawnOwned, stopChild };
