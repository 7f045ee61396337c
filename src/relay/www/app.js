// The demo page: join with a name, then rooms (channels: the one you are
// in with its members, who types, and a count for each), everyone online
// (the relay's global feed), an activity feed, your status message, a
// switch to go invisible and a simulated crowd.

import { PresenceConnection, demoToken, watchActivity } from './presence.js';
import { Crowd, SIM_PREFIX } from './crowd.js';
import { ROOMS, channelOf } from './rooms.js';
import { PeopleList, el, displayName, paintAvatar, parseTime, ago, since } from './people.js';

const IDLE_AFTER_MS = 5000;     // no input for this long: tell the relay we are idle
const TYPING_FOR_MS = 4000;     // "typing" ends this long after the last keystroke
const FEED_LENGTH = 40;
const NAME_KEY = 'presence-demo-name';

const $ = (id) => document.getElementById(id);

const view = {
  me: null,             // our user id
  conn: null,
  room: null,           // the room we are in
  channels: new Map(),  // room -> PresenceChannel (every room is watched, for its count)
  users: null,          // PeopleList of everyone online
  members: null,        // PeopleList of the room
  invisible: false,
  invisibleAsked: 0,    // when we last asked to be hidden or shown
  myStatus: null,       // { message, until: Date | null }: ours, as we set it or the relay said
  typing: false,
  link: 'idle',
};

const roomFromHash = () => {
  const r = decodeURIComponent(location.hash.slice(1));
  return ROOMS.includes(r) ? r : ROOMS[0];
};

// ---- what a person's row says -------------------------------------------

function statusText(id, status, lastActive) {
  if (id === view.me && view.invisible) return 'Invisible · others see you offline';
  if (status === 'away') return lastActive ? `Away · idle for ${since(lastActive)}` : 'Away';
  return 'Active now';
}

// Our status message, unless it has expired meanwhile.
function ownStatus() {
  const s = view.myStatus;
  if (!s || !s.message || (s.until && s.until.getTime() <= Date.now())) return null;
  return s.message;
}

function person(id, status, lastActive, note, typing = false) {
  const shownStatus = id === view.me && view.invisible ? 'invisible' : status;
  return {
    status: shownStatus,
    statusText: statusText(id, status, parseTime(lastActive)),
    note: id === view.me ? ownStatus() : note,
    typing,
  };
}

// Ourselves first, then by name: nobody jumps around when they go idle.
const byName = ([a], [b]) => (b === view.me) - (a === view.me) || displayName(a).localeCompare(displayName(b));

// ---- everyone online (the global feed) ------------------------------------

function renderUsers() {
  const users = view.conn ? view.conn.users : new Map();
  const list = [...users.values()].map((u) => [u.user_id, person(u.user_id, u.status, u.last_active, u.status_message)]);
  // we always see ourselves, even when hidden from others
  if (view.me && view.invisible && !users.has(view.me)) list.push([view.me, person(view.me, 'invisible', null, null)]);
  list.sort(byName);
  view.users?.show(list);
  let online = 0;
  let away = 0;
  for (const [, p] of list) {
    if (p.status === 'online') online++;
    if (p.status === 'away') away++;
  }
  $('count').textContent = String(online + away);
  $('count-detail').textContent = away ? `${online} active · ${away} away` : '';
  $('users-empty').hidden = list.some(([id]) => id !== view.me);
  renderMe();
}

function renderMe() {
  const u = view.conn?.users.get(view.me);
  let label;
  if (view.link !== 'open') label = 'Connecting…';
  else if (view.invisible) label = 'Invisible';
  else if (u && u.status === 'away') label = 'Away';
  else label = 'Online';
  $('me-status').textContent = label;
  $('me').dataset.status = label.toLowerCase().replace('…', '');
  const note = ownStatus();
  $('me-note').textContent = note ? ` · ${note}` : '';
  $('status-clear').hidden = !note;
  const until = view.myStatus?.until;
  $('status-now').textContent = note ? (until ? `Shown until ${until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` : 'Shown until you clear it') : '';
}

// ---- rooms ------------------------------------------------------------------

function buildRooms() {
  const ul = $('rooms');
  for (const room of ROOMS) {
    const b = el('button', 'room-link');
    b.type = 'button';
    b.dataset.room = room;
    b.append(el('span', 'room-hash', '#'), el('span', 'room-label', room), el('span', 'room-count', '0'));
    b.addEventListener('click', () => enterRoom(room));
    const li = el('li');
    li.append(b);
    ul.append(li);
  }
}

function renderRooms() {
  for (const b of document.querySelectorAll('#rooms .room-link')) {
    const ch = view.channels.get(b.dataset.room);
    b.querySelector('.room-count').textContent = String(ch ? ch.members.size : 0);
    if (b.dataset.room === view.room) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }
}

function typingLine(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

function renderRoom() {
  const ch = view.channels.get(view.room);
  const members = ch ? ch.members : new Map();
  const list = [...members.values()].map((m) => {
    const u = view.conn?.users.get(m.user_id);
    return [m.user_id, person(m.user_id, m.status, u?.last_active ?? m.last_active, m.status_message, m.meta?.typing === true)];
  });
  if (view.me && view.invisible && ch?.joined && !members.has(view.me)) list.push([view.me, person(view.me, 'invisible', null, null)]);
  list.sort(byName);
  view.members?.show(list);
  $('room-name').textContent = `#${view.room}`;
  const away = list.filter(([, p]) => p.status === 'away').length;
  const typers = list.filter(([id, p]) => p.typing && id !== view.me).map(([id]) => displayName(id));
  $('room-detail').textContent = [`${members.size} here`, away ? `${away} away` : '', typingLine(typers)]
    .filter(Boolean).join(' · ');
  $('members-empty').hidden = list.some(([id]) => id !== view.me);
  $('message').placeholder = `Type in #${view.room}…`;
  renderRooms();
}

// Leave the room we are in and join another: others see a leave there
// (after the reconnect grace) and a join here.  We keep watching every room.
function enterRoom(room) {
  if (!ROOMS.includes(room)) room = ROOMS[0];
  if (location.hash !== `#${room}`) history.replaceState(null, '', `#${room}`);
  if (room === view.room) return;
  const old = view.room;
  view.room = room;
  view.typing = false;
  clearTimeout(typingTimer);
  $('message').value = '';
  if (view.conn) {
    if (old) view.conn.leave(channelOf(old));
    view.conn.join(channelOf(room), { typing: false });
  }
  view.members?.clear();
  renderRoom();
}

let typingTimer = null;

// Our meta in the room says whether we are typing.
function setTyping(on) {
  clearTimeout(typingTimer);
  if (on) typingTimer = setTimeout(() => setTyping(false), TYPING_FOR_MS);
  if (on === view.typing) return;
  view.typing = on;
  // not joined: the relay refused our join (the channel's error event)
  if (view.room && view.conn?.channel(channelOf(view.room)).joined) view.conn.update(channelOf(view.room), { typing: on });
}

// ---- the feed -------------------------------------------------------------

function feedText(m, wasInvisible) {
  // our own session is live: offline can only mean hidden
  if (m.user_id === view.me && m.status === 'offline') return 'went invisible';
  if (m.user_id === view.me && wasInvisible) return 'became visible';
  if (m.status === 'offline') return m.previous === 'offline' ? 'is offline' : 'left';
  if (m.previous === 'offline') return 'joined';
  if (m.status === 'away') return 'went away';
  return 'is back';
}

function addFeed(user, kind, text, room) {
  const ol = $('feed');
  const li = el('li', 'event');
  li.dataset.kind = kind;
  li.dataset.user = user;
  if (room) li.dataset.room = room;
  const who = el('span', 'event-who', displayName(user));
  const what = el('span', 'event-what', ` ${text}`);
  const time = el('time', 'event-time');
  const at = new Date();
  time.dateTime = at.toISOString();
  time.dataset.at = String(at.getTime());
  time.textContent = ago(at);
  time.title = at.toLocaleTimeString();
  li.append(el('span', 'event-dot'), who, what, time);
  ol.prepend(li);
  while (ol.children.length > FEED_LENGTH) ol.lastChild.remove();
  $('feed-empty').hidden = true;
}

// Every second: "just now" becomes "5 s ago", "idle for 1 min", a status
// message past its time goes ...
function tick() {
  const now = Date.now();
  for (const t of document.querySelectorAll('#feed time[data-at]')) {
    t.textContent = ago(new Date(Number(t.dataset.at)), now);
  }
  if (!view.me) return;
  renderUsers();
  renderRoom();
}

// ---- messages from the relay ------------------------------------------

// The global feed (conn.users has it already).
function onMessage(m) {
  if (m.type === 'state') {
    const mine = view.conn.users.get(view.me);
    // the relay registers us before it reads the state: if we are not in
    // it, we are invisible (a choice the extension keeps across visits);
    // a state read just before our own request may not show it yet
    if (Date.now() - view.invisibleAsked > 5000) setInvisible(!mine);
    if (mine) {
      const same = view.myStatus?.message === mine.status_message;
      view.myStatus = { message: mine.status_message, until: same ? view.myStatus.until : null };
      if (mine.status_message && !$('status-text').value && document.activeElement !== $('status-text')) {
        $('status-text').value = mine.status_message;
      }
    }
  } else if (m.type === 'presence') {
    const wasInvisible = view.invisible;
    if (m.user_id === view.me) {
      // our session is live: shown offline means hidden (maybe by another tab)
      setInvisible(m.status === 'offline');
      view.invisibleAsked = 0;
    }
    $('seq').textContent = `last change #${m.seq}`;
    addFeed(m.user_id, m.status, feedText(m, wasInvisible));
  } else if (m.type === 'status_message') {
    if (m.user_id === view.me) view.myStatus = { message: m.status_message, until: parseTime(m.expires_at) };
    $('seq').textContent = `last change #${m.seq}`;
  }
  renderUsers();
  renderRoom();
}

function setInvisible(on) {
  view.invisible = on;
  $('invisible').checked = on;
}

function onLink(state) {
  view.link = state;
  const link = $('link');
  link.dataset.state = state;
  link.textContent = state === 'open' ? 'Live' : state === 'retrying' ? 'Reconnecting…' : 'Connecting…';
  renderMe();
}

// Watches a room: its count, and when it is ours its members and the
// joins and leaves of others in the feed.
function watchRoom(room) {
  const ch = view.conn.subscribe(channelOf(room));
  view.channels.set(room, ch);
  ch.on('change', () => (room === view.room ? renderRoom() : renderRooms()));
  ch.on('join', (m) => {
    if (room === view.room && m.user_id !== view.me) addFeed(m.user_id, 'online', `joined #${room}`, room);
  });
  ch.on('leave', (m) => {
    // one who went offline is in the feed already, as "left"
    if (room === view.room && m.user_id !== view.me && m.status !== 'offline') addFeed(m.user_id, 'offline', `left #${room}`, room);
  });
}

// ---- joining and leaving ----------------------------------------------

let activity = null;

function join(name) {
  view.me = name;
  localStorage.setItem(NAME_KEY, name);
  $('join').hidden = true;
  $('app').hidden = false;
  $('me').hidden = false;
  $('me-name').textContent = name;
  paintAvatar($('me-avatar'), name);
  if (!activity) {
    activity = watchActivity(IDLE_AFTER_MS, (active) => {
      view.conn?.setActive(active);
      renderActivity(active);
    });
  }
  view.users = new PeopleList($('users'), name);
  view.members = new PeopleList($('members'), name);
  // the demo relay mints tokens for anyone; an application's backend signs its own
  view.conn = new PresenceConnection(name, {
    getToken: () => demoToken(name), onMessage, onLink, active: activity.active,
  });
  for (const room of ROOMS) watchRoom(room);
  view.room = null;
  enterRoom(roomFromHash());
  view.conn.start();
  renderActivity(activity.active);
  renderUsers();
}

function leave() {
  crowd.stop();
  view.conn?.stop();
  view.conn = null;
  view.me = null;
  view.room = null;
  view.channels.clear();
  view.users?.clear();
  view.members?.clear();
  view.myStatus = null;
  view.typing = false;
  clearTimeout(typingTimer);
  $('status-text').value = '';
  $('message').value = '';
  setInvisible(false);
  localStorage.removeItem(NAME_KEY);
  $('app').hidden = true;
  $('me').hidden = true;
  $('join').hidden = false;
  onLink('idle');
  $('link').textContent = '';
  $('name').focus();
}

function renderActivity(active) {
  const p = $('activity');
  p.dataset.state = active ? 'active' : 'idle';
  p.textContent = active
    ? 'You are active. Stop touching the mouse and keyboard and you will show as away.'
    : 'You look idle: the server will show you as away soon. Move the mouse to come back.';
}

// ---- the crowd ----------------------------------------------------------

const crowd = new Crowd({ onChange: renderCrowd });

function renderCrowd() {
  const b = $('crowd');
  b.setAttribute('aria-pressed', String(crowd.running));
  b.textContent = crowd.running ? 'Stop the crowd' : 'Simulate a crowd';
  $('crowd-status').textContent = crowd.running
    ? `${crowd.connected} of 50 simulated people connected.`
    : '50 simulated people join rooms over real WebSockets, switch rooms, type, set a status, idle now and then, leave and come back.';
}

// ---- wiring -------------------------------------------------------------

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('name').value.trim().replace(/\s+/g, ' ');
  const err = $('join-error');
  if (!name) {
    err.textContent = 'Please type a name.';
    err.hidden = false;
    return;
  }
  if (name.startsWith(SIM_PREFIX)) {
    err.textContent = `Names starting with "${SIM_PREFIX}" belong to the simulated crowd.`;
    err.hidden = false;
    return;
  }
  err.hidden = true;
  join(name);
});

$('leave').addEventListener('click', leave);

$('invisible').addEventListener('change', (e) => {
  const on = e.target.checked;
  if (!view.conn || !view.conn.setVisible(!on)) {
    e.target.checked = view.invisible;
    return;
  }
  view.invisibleAsked = Date.now();
  setInvisible(on);
  renderUsers();
  renderRoom();
});

$('status-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!view.conn) return;
  const message = $('status-text').value.trim();
  const secs = Number($('status-expiry').value) || null;
  view.conn.setStatusMessage(message || null, secs);
  view.myStatus = { message: message || null, until: message && secs ? new Date(Date.now() + secs * 1000) : null };
  renderUsers();
  renderRoom();
});

$('status-clear').addEventListener('click', () => {
  if (!view.conn) return;
  view.conn.setStatusMessage(null);
  view.myStatus = null;
  view.typing = false;
  clearTimeout(typingTimer);
  $('status-text').value = '';
  $('message').value = '';
  renderUsers();
  renderRoom();
});

$('message').addEventListener('input', (e) => setTyping(e.target.value.trim() !== ''));
$('message').addEventListener('blur', () => setTyping(false));
$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  $('message').value = '';
  setTyping(false);
});

window.addEventListener('hashchange', () => view.me && enterRoom(roomFromHash()));

$('crowd').addEventListener('click', () => (crowd.running ? crowd.stop() : crowd.start()));

buildRooms();
setInterval(tick, 1000);
renderCrowd();
onLink('idle');
$('link').textContent = '';

const saved = localStorage.getItem(NAME_KEY);
if (saved) join(saved);
else $('join').hidden = false;
