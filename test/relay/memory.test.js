'use strict';
// Memory amplification: with 20,000 users online the state is megabytes,
// and clients that never read must not make the relay hold a copy each
// (60 of them once took it from 15 MB to 133 MB).  The user ids are long,
// so that the state is more than the kernel's socket buffers take in
// (up to 4 MB here).  Not in the AddressSanitizer pass: it measures the
// relay's resident memory.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { startCluster } = require('../lib/cluster');
const { startRelay } = require('../lib/relay');
const { Peer } = require('../lib/peer');
const { GUCS, metric, eventually } = require('./common');

const USERS = 20000;
const NON_READERS = 60;
const HTTP_NON_READERS = 30;

const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

test('clients that do not read cost no copy of a big state, and are closed', async (t) => {
  // sessions that outlive the test: nobody heartbeats them
  const pg = await startCluster({ name: 'memory',
    gucs: { ...GUCS, 'presence.session_timeout': '1h', 'presence.idle_timeout': '1h' } });
  let relay;
  const sockets = [];
  try {
    // all of them notified before the relay listens, so that it is not the ring that culls
    const listener = await pg.client();
    let notified = 0;
    listener.on('notification', () => { notified += 1; });
    await listener.query('LISTEN presence');
    await pg.query(`SELECT presence.connect('member-' || i || '-' || repeat('x', 220), 's')
                      FROM generate_series(1, ${USERS}) i`);
    await eventually(() => notified >= USERS, 60000, 'every join notified');
    await listener.end();

    relay = await startRelay({ cluster: pg, name: 'memory',
      args: ['--allow-anonymous', '--send-timeout', '3', '--max-connections-per-ip', '0'] });
    const pid = relay.child.pid;
    const reader = await Peer.open(relay.wsUrl('/ws'));
    const state = await reader.waitFor((m) => m.type === 'state', 30000);
    assert.equal(state.users.length, USERS);
    const base = rssMb(pid);

    // WebSocket clients that stop reading as soon as they are in
    const stalled = await Promise.all(Array.from({ length: NON_READERS }, async () => {
      const p = new Peer(relay.wsUrl('/ws'));
      p.ws.once('upgrade', (res) => res.socket.pause());
      await p.opened;
      return p;
    }));
    // and GET /online requests whose answers nobody reads
    for (let i = 0; i < HTTP_NON_READERS; i++) {
      const s = net.connect(relay.port, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET /online HTTP/1.1\r\nHost: relay\r\n\r\n');
      s.pause();
      sockets.push(s);
    }
    let peak = base;
    await eventually(async () => {
      peak = Math.max(peak, rssMb(pid));
      return await metric(relay, 'presence_relay_send_timeouts_total') >= NON_READERS;
    }, 30000, 'every WebSocket non-reader closed after --send-timeout');
    const grew = peak - base;
    t.diagnostic(`relay RSS ${base.toFixed(1)} MB with one reader, at most ${peak.toFixed(1)} MB ` +
      `with ${NON_READERS} + ${HTTP_NON_READERS} clients not reading a ${(JSON.stringify(state).length / 1e6).toFixed(1)} MB state`);
    const mb = JSON.stringify(state).length / 1e6;
    assert.ok(grew < 4 * mb + 10, `grew ${grew.toFixed(1)} MB (a copy each would be ~${(NON_READERS * (mb - 4)).toFixed(0)} MB)`);

    // once they read, they see why: 1008
    const one = stalled[0];
    one.ws._socket.resume();
    const { code, reason } = await one.closed;
    assert.equal(code, 1008);
    assert.equal(reason, 'too slow');
    // the others are gone too; so are the /online requests, unanswered
    await eventually(async () => await metric(relay, 'presence_relay_connections{kind="watcher"}') === 1,
      15000, 'only the reader left');
    const answers = await Promise.all(sockets.map((s) => new Promise((resolve) => {
      let got = 0;
      s.on('data', (d) => { got += d.length; });
      s.on('close', () => resolve(got));
      s.resume();
    })));
    assert.ok(answers.every((n) => n < JSON.stringify(state).length), 'closed before the whole body');

    // the reader never noticed
    await pg.query("SELECT presence.connect('after-the-storm', 's')");
    await reader.waitPresence('after-the-storm', 'online');
    assert.equal(reader.ws.readyState, 1);
    // and a reader of /online gets all of it
    const online = await (await fetch(relay.url('/online'))).json();
    assert.equal(online.users.length, USERS + 1);
    await reader.close();
    for (const p of stalled) p.ws.terminate();
  } finally {
    for (const s of sockets) s.destroy();
    const status = await relay?.stop();
    await pg.stop();
    if (relay) assert.deepEqual(status, { code: 0, signal: null });
  }
});
