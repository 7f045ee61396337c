'use strict';
// What a client knows of its channels, from the frames the relay sent it,
// by the rule of docs/relay.md: a channel's "state" replaces what it knew
// of the channel and remembers its seq; an event (join, update, leave,
// presence, diff) whose seq is not above that seq is dropped; the others
// are applied in order.
//
//   const view = new ChannelView();
//   for (const m of peer.messages) view.apply(m);
//   view.members('room:1')  -> Map user_id -> { status, meta }

class ChannelView {
  constructor() {
    this.channels = new Map(); // channel -> { seq, members: Map }
  }

  apply(m) {
    if (!m.channel) return;
    if (m.type === 'state') {
      this.channels.set(m.channel, {
        seq: m.seq,
        members: new Map(m.members.map((x) => [x.user_id, { status: x.status, meta: x.meta }])),
      });
      return;
    }
    if (m.type === 'unsubscribed') {
      this.channels.delete(m.channel);
      return;
    }
    const c = this.channels.get(m.channel);
    if (!c || (c.seq !== null && m.seq !== undefined && m.seq <= c.seq)) return;
    const get = (u) => c.members.get(u);
    switch (m.type) {
      case 'join':
        c.members.set(m.user_id, { status: m.status, meta: m.meta });
        break;
      case 'update':
        if (get(m.user_id)) get(m.user_id).meta = m.meta;
        break;
      case 'leave':
        c.members.delete(m.user_id);
        break;
      case 'presence':
        if (m.status === 'offline') c.members.delete(m.user_id);
        else if (get(m.user_id)) get(m.user_id).status = m.status;
        break;
      case 'diff':
        for (const x of m.joins) c.members.set(x.user_id, { status: x.status, meta: x.meta });
        for (const x of m.leaves) c.members.delete(x.user_id);
        for (const x of m.updates) c.members.set(x.user_id, { status: x.status, meta: x.meta });
        break;
      default:
        break;
    }
  }

  members(channel) {
    return this.channels.get(channel)?.members || new Map();
  }

  static of(messages) {
    const v = new ChannelView();
    for (const m of messages) v.apply(m);
    return v;
  }
}

// presence.members(channel) in the same shape: Map user_id -> { status, meta, sessions }
async function membersOf(pg, channel) {
  const { rows } = await pg.query('SELECT user_id, status, sessions, metas FROM presence.members($1)', [channel]);
  return new Map(rows.map((r) => [r.user_id, { status: r.status, meta: r.metas[0] ?? null, sessions: r.sessions }]));
}

module.exports = { ChannelView, membersOf };
