'use strict';
// Another host on a network, for tests: a network namespace of its own,
// joined to the test's by a veth pair, each end with an IPv4 /24 and an IPv6
// /64 address picked for this run.  The namespace lives as long as the
// process holding it (`unshare --net sleep`), which dies with the test
// process (setpriv --pdeathsig) or at close(); the veth pair goes with it.
//
// Creating it needs CAP_NET_ADMIN and CAP_SYS_ADMIN over the test's own
// network namespace: test/netns/run.sh runs the tests in a user and network
// namespace of their own (unshare), so neither root nor the machine's
// network is involved.
//
//   const host = await NetHost.create();
//   host.v4, host.v6            its addresses; host.ourV4, host.ourV6 the test's
//   spawn(...)  with  host.wrap(argv)   runs argv in it
//   await host.close();

const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { sleep } = require('./cluster');
const { spawnOwned, stopChild } = require('./programs');

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

class NetHost {
  static async create() {
    const h = new NetHost();
    await h.start();
    return h;
  }

  async start() {
    const r = crypto.randomBytes(4);
    const tag = r.toString('hex');
    const net4 = `10.${64 + (r[0] % 64)}.${r[1]}`;
    // Groups of four digits, none leading with 0, so that the address we
    // compare is spelled as ss and ip print it (they drop leading zeros).
    const group = (i) => (0x1000 | (r.readUInt16BE(i) & 0x0fff)).toString(16);
    const net6 = `fd00:${group(0)}:${group(2)}`;
    this.ourV4 = `${net4}.1`;
    this.v4 = `${net4}.2`;
    this.ourV6 = `${net6}::1`;
    this.v6 = `${net6}::2`;
    this.ourIf = `vo${tag}`;
    this.theirIf = `vt${tag}`;

    this.holder = spawnOwned('setpriv', ['--pdeathsig', 'KILL', '--', 'unshare', '--net', '--', 'sleep', '3600'],
      { stdio: 'ignore' });
    const own = fs.readlinkSync('/proc/self/ns/net');
    this.nsPath = `/proc/${this.holder.pid}/ns/net`;
    const deadline = Date.now() + 10000;
    for (;;) {
      let ns;
      try { ns = fs.readlinkSync(this.nsPath); } catch { /* not yet */ }
      if (ns && ns !== own) break;
      if (Date.now() > deadline) throw new Error('the network namespace did not appear');
      await sleep(20);
    }

    ip('link', 'add', this.ourIf, 'type', 'veth', 'peer', 'name', this.theirIf, 'netns', String(this.holder.pid));
    ip('addr', 'add', `${this.ourV4}/24`, 'dev', this.ourIf);
    ip('-6', 'addr', 'add', `${this.ourV6}/64`, 'dev', this.ourIf, 'nodad');
    ip('link', 'set', this.ourIf, 'up');
    this.run(['ip', 'link', 'set', 'lo', 'up']);
    this.run(['ip', 'addr', 'add', `${this.v4}/24`, 'dev', this.theirIf]);
    this.run(['ip', '-6', 'addr', 'add', `${this.v6}/64`, 'dev', this.theirIf, 'nodad']);
    this.run(['ip', 'link', 'set', this.theirIf, 'up']);
  }

  // argv, to be run in this namespace.
  wrap(argv) {
    return ['nsenter', `--net=${this.nsPath}`, '--', ...argv];
  }

  // Runs argv here to completion; its stdout, or throws (with .status).
  run(argv, opts = {}) {
    const w = this.wrap(argv);
    return execFileSync(w[0], w.slice(1), { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  async close() {
    if (!this.holder) return;
    await stopChild(this.holder, 'SIGKILL');
    this.holder = null;
  }
}

module.exports = { NetHost };
