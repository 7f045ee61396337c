// What a client knows of one channel: its members, built from the relay's
// frames by the order rule of docs/relay.md, and the events an application
// listens to.  A PresenceConnection makes these (conn.join(), conn.subscribe(),
// conn.channel()) and feeds them; an application only reads and listens:
//
//   const room = conn.join('room:42', { typing: false });
//   room.on('change', (members) => render(members));   // after every frame applied
//   room.on('join', (m) => feed(`${m.user_id} joined`));
//   room.members   // Map user_id -> { user_id, status, last_active, sessions, meta, status_message }
//
// A member's meta is the one its first session joined with (the state's),
// then the last one any of its sessions set.  Members are replaced, never
// changed in place, so an application may keep one and compare it with the
// next.

const EVENTS = ['state', 'join', 'leave', 'update', 'presence', 'status_message', 'change', 'error', 'unsubscribed'];

// Two metas (JSON objects as the relay wrote them, or null) are the same.
function sameMeta(a, b) {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

// A member from a state or diff item (which name every field) or from a
// join frame, keeping what the frame does not say from the member as it was.
function memberOf(x, prev) {
  const has = (k) => Object.prototype.hasOwnProperty.call(x, k);
  return {
    user_id: x.user_id,
    status: x.status ?? prev?.status ?? 'online',
    last_active: has('last_active') ? x.last_active : prev?.last_active ?? null,
    sessions: has('sessions') ? x.sessions : prev?.sessions ?? null,
    meta: has('meta') ? x.meta : prev?.meta ?? null,
    status_message: has('status_message') ? x.status_message : prev?.status_message ?? null,
  };
}

export class PresenceChannel {
  constructor(name) {
    this.name = name;
    this.members = new Map();
    this.seq = null;        // the state's: frames at or below it are in it already
    this.synced = false;    // a state came on this socket, and nothing since made it stale
    this.joined = false;    // the application wants to be a member
    this.watched = false;   // the application subscribed
    this.meta = null;       // our meta here: the join's, then the last update's
    this.listeners = new Map(EVENTS.map((e) => [e, new Set()]));
  }

  // Frames come while the application is a member or subscribed.
  get watching() {
    return this.joined || this.watched;
  }

  on(type, fn) {
    const set = this.listeners.get(type);
    if (!set) throw new TypeError(`no such channel event: ${type}`);
    set.add(fn);
    return () => set.delete(fn);
  }

  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  // A listener that throws is reported, and the others still run.
  emit(type, ...args) {
    for (const fn of [...this.listeners.get(type)]) {
      try {
        fn(...args);
      } catch (e) {
        (globalThis.reportError || console.error)(e);
      }
    }
  }

  // Until the next state, what we show may be out of date: frames that
  // come meanwhile belong to a subscription that ended (docs/relay.md: no
  // frame of a channel comes between its "unsubscribed" and the next state).
  stale() {
    this.synced = false;
  }

  // Not watched any more: nobody to show.
  clear() {
    this.synced = false;
    this.seq = null;
    if (this.members.size === 0) return;
    this.members = new Map();
    this.emit('change', this.members);
  }

  // One frame of this channel from the relay.
  apply(m) {
    if (m.type === 'state') {
      this.members = new Map(m.members.map((x) => [x.user_id, memberOf(x, null)]));
      this.seq = m.seq;
      this.synced = true;
      this.emit('state', this.members);
      this.emit('change', this.members);
      return;
    }
    if (m.type === 'unsubscribed') {
      // the answer to our own leave or unsubscribe changes nothing we do
      // not know; a fresh token that no longer allows the channel does
      if (m.reason) {
        this.joined = false;
        this.watched = false;
        this.clear();
        this.emit('unsubscribed', m.reason);
      }
      return;
    }
    if (!this.synced || !this.watching) return;
    if (this.seq !== null && typeof m.seq === 'number' && m.seq <= this.seq) return;
    const changed = this.event(m);
    if (changed) this.emit('change', this.members);
  }

  // Applies a join, update, leave, presence, status_message or diff frame;
  // true if the members changed.
  event(m) {
    const prev = this.members.get(m.user_id);
    switch (m.type) {
      case 'join':
        return this.put(memberOf(m, prev));
      case 'update':
        return prev ? this.put({ ...prev, meta: m.meta }) : false;
      case 'status_message':
        return prev ? this.put({ ...prev, status_message: m.status_message }) : false;
      case 'presence':
        if (!prev) return false;
        if (m.status === 'offline') return this.remove(m.user_id, 'offline');
        return this.put({ ...prev, status: m.status, last_active: m.last_active ?? prev.last_active });
      case 'leave':
        return this.remove(m.user_id);
      case 'diff': {
        let changed = false;
        for (const x of m.joins || []) changed = this.put(memberOf(x, this.members.get(x.user_id))) || changed;
        for (const x of m.leaves || []) changed = this.remove(x.user_id) || changed;
        for (const x of m.updates || []) changed = this.put(memberOf(x, this.members.get(x.user_id))) || changed;
        return changed;
      }
      default:
        return false;
    }
  }

  // Shows next as the member it names, with an event for each difference.
  put(next) {
    const prev = this.members.get(next.user_id);
    this.members.set(next.user_id, next);
    if (!prev) {
      this.emit('join', next);
      return true;
    }
    let changed = false;
    if (prev.status !== next.status) {
      this.emit('presence', next, prev.status);
      changed = true;
    }
    if (!sameMeta(prev.meta, next.meta)) {
      this.emit('update', next, prev.meta);
      changed = true;
    }
    if (prev.status_message !== next.status_message) {
      this.emit('status_message', next);
      changed = true;
    }
    return changed || prev.last_active !== next.last_active || prev.sessions !== next.sessions;
  }

  // The member is gone: it left, or (status "offline") its sessions ended
  // or it went invisible, for which the relay sends no leave.
  remove(id, status) {
    const prev = this.members.get(id);
    if (!prev) return false;
    this.members.delete(id);
    this.emit('leave', status ? { ...prev, status } : prev);
    return true;
  }
}
