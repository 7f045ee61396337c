// "Simulate a crowd": fifty simulated people, each a real WebSocket with a
// demo token, as a real browser tab would be.  They arrive over a few
// seconds, stay a while, sometimes stop "touching the keyboard" (so the
// server shows them away after its idle timeout), come back, leave, and
// return later, until the crowd is stopped.

import { demoToken, socketUrl } from './presence.js';

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

const rand = (lo, hi) => lo + Math.random() * (hi - lo);

export class Crowd {
  constructor({ size = NAMES.length, onChange = () => {} } = {}) {
    this.names = NAMES.slice(0, size);
    this.onChange = onChange;
    this.running = false;
    this.sockets = new Map(); // name -> WebSocket
    this.timers = new Set();
  }

  get connected() {
    let n = 0;
    for (const ws of this.sockets.values()) if (ws.readyState === WebSocket.OPEN) n++;
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
    for (const ws of this.sockets.values()) ws.close(1000);
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

  async arrive(name) {
    let token;
    try {
      token = await demoToken(SIM_PREFIX + name);
    } catch {
      this.later(rand(2000, 5000), () => this.arrive(name));
      return;
    }
    if (!this.running) return;
    const ws = new WebSocket(socketUrl(token));
    this.sockets.set(name, ws);
    ws.onopen = () => {
      this.onChange();
      const stay = rand(30000, 120000);
      // about half of them wander off for a while (longer than the
      // server's idle timeout, so they show as away)
      if (Math.random() < 0.5) {
        const idleAt = rand(3000, stay / 2);
        this.later(idleAt, () => this.say(ws, false));
        this.later(idleAt + rand(25000, 60000), () => this.say(ws, true));
      }
      this.later(stay, () => this.leave(name, ws));
    };
    ws.onclose = () => {
      if (this.sockets.get(name) === ws) {
        this.sockets.delete(name);
        this.later(rand(5000, 30000), () => this.arrive(name));
      }
      this.onChange();
    };
  }

  say(ws, active) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'heartbeat', active }));
  }

  leave(name, ws) {
    this.sockets.delete(name);
    ws.close(1000);
    this.onChange();
    this.later(rand(5000, 30000), () => this.arrive(name));
  }
}
