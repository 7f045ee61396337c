// "Simulate a crowd": fifty simulated people, each a real WebSocket with
// demo tokens (a PresenceConnection, as a real browser tab would have).  They arrive over a few
// seconds in one of the rooms, stay a while, type now and then (their
// meta there says so), switch rooms, some set a status message, some stop
// "touching the keyboard" (so the server shows them away after its idle
// timeout) and come back, leave, and return later, until the crowd is
// stopped.

import { PresenceConnection, demoToken } from './presence.js';
import { ROOMS, channelOf } from './rooms.js';

export const SIM_PREFIX = 'sim:';

const NAMES = [
  'Ada', 'Alan', 'Barbara', 'Bjarne', 'Brian', 'Claude', 'Dennis', 'Donald',
  'Edsger', 'Frances', 'Grace', 'Guido', 'Hedy', 'Ivan', 'James', 'Jean',
  'John', 'Joan', 'Ken', 'Karen', 'Leslie', 'Linus', 'Lynn', 'Margaret',
  'Mary', 'Niklaus', 'Radia', 'Richard', 'Robin', 'Ron', 'Shafi', 'Sophie',
  'Tim', 'Tony', 'Ward', 'Whitfield', 'Yukihiro', 'Anders', 'Bertrand', 'Carl',
  'Dana', 'Evelyn', 'Fran', 'Gordon', 'Hal', 'Irene', 'Jim', 'Kathleen',
  'Larry', 'Martha',
];

const STATUSES = [
  'In a meeting', 'Focusing', 'Out for lunch', 'Commuting', 'On call',
  'Reviewing pull requests', 'Back in 10', 'Working remotely',
];

const rand = (lo, hi) => lo + Math.random() * (hi - lo);
const pick = (list) => list[Math.floor(Math.random() * list.length)];

export class Crowd {
  constructor({ size = NAMES.length, onChange = () => {} } = {}) {
    this.names = NAMES.slice(0, size);
    this.onChange = onChange;
    this.running = false;
    this.sockets = new Map(); // name -> PresenceConnection
    this.timers = new Set();
  }

  get connected() {
    let n = 0;
    for (const conn of this.sockets.values()) if (conn.ws && conn.ws.readyState === WebSocket.OPEN) n++;
    return n;
  }

  start() {
    if (this.running) return;
    this.running = true;
    // everyone arrives within 8 s and stays at least 30 s
    for (const name of this.names) this.later(rand(0, 8000), () => this.arrive(name));
    this.onChange();
  }

  stop() {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const conn of this.sockets.values()) conn.stop();
    this.sockets.clear();
    this.onChange();
  }

  later(ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.running) fn();
    }, ms);
    this.timers.add(t);
  }

  arrive(name) {
    let opened = false;
    // an idle person neither types nor switches rooms: both are activity
    const sim = { idle: false };
    const conn = new PresenceConnection(SIM_PREFIX + name, {
      getToken: () => demoToken(SIM_PREFIX + name),
      onLink: (state) => {
        this.onChange();
        if (state !== 'open' || opened) return;
        opened = true;
        const stay = rand(30000, 120000);
        // about half of them wander off for a while (longer than the
        // server's idle timeout, so they show as away)
        if (Math.random() < 0.5) {
          const idleAt = rand(3000, stay / 2);
          this.later(idleAt, () => {
            sim.idle = true;
            conn.setActive(false);
          });
          this.later(idleAt + rand(25000, 60000), () => {
            sim.idle = false;
            conn.setActive(true);
          });
        }
        // some say what they are up to, for a few minutes
        if (Math.random() < 0.4) this.later(rand(500, 10000), () => conn.setStatusMessage(pick(STATUSES), Math.round(rand(120, 900))));
        this.later(stay, () => this.leave(name, conn));
      },
    });
    this.sockets.set(name, conn);
    // joined before the socket opens: sent as soon as it does
    this.enter(name, conn, sim, pick(ROOMS));
    conn.start();
  }

  // In a room: type now and then, and after a while go to another.
  enter(name, conn, sim, room) {
    const here = () => this.sockets.get(name) === conn && conn.channels.get(channelOf(room))?.joined;
    conn.join(channelOf(room), { typing: false });
    const typeAgain = () => this.later(rand(4000, 20000), () => {
      if (!here()) return;
      if (sim.idle) {
        typeAgain();
        return;
      }
      conn.update(channelOf(room), { typing: true });
      this.later(rand(1500, 5000), () => {
        if (!here()) return;
        conn.update(channelOf(room), { typing: false });
        typeAgain();
      });
    });
    typeAgain();
    const moveOn = () => this.later(rand(10000, 45000), () => {
      if (!here()) return;
      if (sim.idle) {
        moveOn();
        return;
      }
      conn.leave(channelOf(room));
      this.enter(name, conn, sim, pick(ROOMS.filter((r) => r !== room)));
    });
    moveOn();
  }

  leave(name, conn) {
    this.sockets.delete(name);
    conn.stop();
    this.onChange();
    this.later(rand(5000, 30000), () => this.arrive(name));
  }
}
