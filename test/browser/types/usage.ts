// An application using src/relay/www/presence.js as docs/relay.md shows,
// compiled with tsc --noEmit against presence.d.ts (test/browser/client.test.js):
// what an application may write must type-check, and each line after an
// expect-error directive must not (tsc fails if one of them does).

import {
  PresenceConnection, PresenceChannel, demoToken, watchActivity,
  type Member, type Meta, type GlobalFrame, type ServerFrame, type ClientMessage, type ErrorFrame,
} from '../../../src/relay/www/presence.js';

const conn = new PresenceConnection('alice', {
  getToken: () => demoToken('alice'),
  onMessage: (m: GlobalFrame) => {
    if (m.type === 'presence') console.log(m.user_id, m.status, m.previous);
    else if (m.type === 'status_message') console.log(m.status_message, m.expires_at);
    else console.log(m.users.length, m.seq);
  },
  onLink: (state) => console.log(state === 'open'),
  onError: (e: ErrorFrame) => console.log(e.code, e.channel, e.request),
});
conn.start();

const room: PresenceChannel = conn.join('room:42', { typing: false, page: '/inbox', cursor: [3, 14] });
const off = room.on('change', (members) => {
  for (const m of members.values()) console.log(m.user_id, m.status, m.meta?.typing === true, m.status_message);
});
room.on('join', (m: Member) => console.log(`${m.user_id} joined`));
room.on('leave', (m) => console.log(m.status === 'offline' ? 'went offline' : 'left'));
room.on('update', (m, previous: Meta | null) => console.log(m.meta, previous));
room.on('presence', (m, previous) => console.log(m.status, previous));
room.on('status_message', (m) => console.log(m.status_message));
room.on('error', (e) => console.log(e.code === 'forbidden', e.request));
room.on('unsubscribed', (reason) => console.log(reason));
off();

conn.subscribe('room:7').on('state', (members) => console.log(members.size));
const sent: boolean = conn.update('room:42', { typing: true });
conn.leave('room:42');
conn.unsubscribe('room:7');
conn.setStatusMessage('In a meeting', 3600);
conn.setStatusMessage(null);
conn.setActive(false);
conn.setVisible(true);
console.log(sent, conn.users.get('bob')?.status_message, conn.channel('room:42').members.size);
const msg: ClientMessage = { type: 'status_message', message: 'Lunch', expires_in: 600 };
conn.send(msg);
const frame = JSON.parse('{}') as ServerFrame;
if (frame.type === 'diff') console.log(frame.joins.length, frame.leaves[0]?.user_id);
const activity = watchActivity(5000, (active) => conn.setActive(active));
console.log(activity.active);
conn.stop();

// @ts-expect-error: a meta is an object
conn.update('room:42', 'typing');
// @ts-expect-error: no such event
room.on('joined', () => {});
// @ts-expect-error: the status message is a string or null
conn.setStatusMessage(42);
// @ts-expect-error: members are read-only to the application
room.members.set('x', {} as Member);
// @ts-expect-error: a status is online or away in a member list
const s: Member['status'] = 'busy';
console.log(s);
