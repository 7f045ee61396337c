// The demo page: join with a name, then a live list of who is online (from
// the relay's "state" and "presence" messages), an activity feed, a
// switch to go invisible and a simulated crowd.

import { PresenceConnection, demoToken, watchActivity } from './presence.js';
import { Crowd, SIM_PREFIX } from './crowd.js';

const IDLE_AFTER_MS = 5000;   // no input for this long: tell the relay we are idle
const FEED_LENGTH = 40;
const NAME_KEY = 'presence-demo-name';

const $ = (id) => document.getElementById(id);

const view = {
  me: null,             // our user id
  conn: null,
  users: new Map(),     // user_id -> { status, lastActive: Date | null }
  rows: new Map(),      // user_id -> <li>
  invisible: false,
  invisibleAsked: 0,    // when we last asked to be hidden or shown
  lastSeq: null,
  link: 'idle',
};

// ---- small helpers ------------------------------------------------------

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function displayName(id) {
  return id.startsWith(SIM_PREFIX) ? id.slice(SIM_PREFIX.length) : id;
}

function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = (w) => String.fromCodePoint(w.codePointAt(0));
  const s = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : first(parts[0] || '?');
  return s.toUpperCase();
}

// A stable colour per name (CSSOM, which the relay's CSP allows).
function paintAvatar(node, id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.codePointAt(0)) % 360;
  node.style.setProperty('--hue', String(h));
  node.textContent = initials(displayName(id));
}

function parseTime(s) {
  if (!s) return null;
  // PostgreSQL's "+00" offsets are not ISO 8601 enough for every browser
  const d = new Date(s.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(d.getTime()) ? null : d;
}

function ago(date, now = Date.now()) {
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ago`;
  return date.toLocaleDateString();
}

function since(date, now = Date.now()) {
  const t = ago(date, now);
  return t === 'just now' ? 'a moment' : t.replace(' ago', '');
}

// ---- the user list ----------------------------------------------------

function statusText(id, u) {
  if (id === view.me && view.invisible) return 'Invisible · others see you offline';
  if (u.status === 'away') return u.lastActive ? `Away · idle for ${since(u.lastActive)}` : 'Away';
  return 'Active now';
}

function rowFor(id) {
  let li = view.rows.get(id);
  if (li) return li;
  li = el('li', 'user entering');
  li.dataset.user = id;
  const avatar = el('span', 'avatar');
  avatar.setAttribute('aria-hidden', 'true');
  paintAvatar(avatar, id);
  const dot = el('span', 'dot');
  avatar.append(dot);
  const text = el('span', 'user-text');
  const name = el('span', 'user-name', displayName(id));
  if (id === view.me) name.append(el('span', 'tag tag-you', 'you'));
  if (id.startsWith(SIM_PREFIX)) name.append(el('span', 'tag tag-sim', 'sim'));
  text.append(name, el('span', 'user-status'));
  li.append(avatar, text);
  li.addEventListener('animationend', () => li.classList.remove('entering'), { once: true });
  view.rows.set(id, li);
  return li;
}


function shown() {
  const list = [...view.users];
  // we always see ourselves, even when hidden from others
  if (view.me && view.invisible && !view.users.has(view.me)) {
    list.push([view.me, { status: 'invisible', lastActive: null }]);
  }
  // ourselves first, then by name: nobody jumps around when they go idle
  return list.sort(([a], [b]) => (b === view.me) - (a === view.me) ||
    displayName(a).localeCompare(displayName(b)));
}

function renderUsers() {
  const ul = $('users');
  const list = shown();
  const keep = new Set(list.map(([id]) => id));
  for (const [id, li] of view.rows) {
    if (!keep.has(id)) {
      li.remove();
      view.rows.delete(id);
    }
  }
  let online = 0;
  let away = 0;
  list.forEach(([id, u], i) => {
    const li = rowFor(id);
    const status = id === view.me && view.invisible ? 'invisible' : u.status;
    li.dataset.status = status;
    li.querySelector('.user-status').textContent = statusText(id, u);
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
    if (status === 'online') online++;
    if (status === 'away') away++;
  });
  $('count').textContent = String(online + away);
  $('count-detail').textContent = away ? `${online} active · ${away} away` : '';
  const others = list.filter(([id]) => id !== view.me).length;
  $('users-empty').hidden = others > 0;
  renderMe();
}

function renderMe() {
  const u = view.users.get(view.me);
  let label;
  if (view.link !== 'open') label = 'Connecting…';
  else if (view.invisible) label = 'Invisible';
  else if (u && u.status === 'away') label = 'Away';
  else label = 'Online';
  $('me-status').textContent = label;
  $('me').dataset.status = label.toLowerCase().replace('…', '');
}

// ---- the feed ---------------------------------------------------------

function feedText(m, wasInvisible) {
  // our own session is live: offline can only mean hidden
  if (m.user_id === view.me && m.status === 'offline') return 'went invisible';
  if (m.user_id === view.me && wasInvisible) return 'became visible';
  if (m.status === 'offline') return m.previous === 'offline' ? 'is offline' : 'left';
  if (m.previous === 'offline') return 'joined';
  if (m.status === 'away') return 'went away';
  return 'is back';
}

function addFeed(m, wasInvisible) {
  const ol = $('feed');
  const li = el('li', 'event');
  li.dataset.kind = m.status;
  li.dataset.user = m.user_id;
  const who = el('span', 'event-who', displayName(m.user_id));
  const what = el('span', 'event-what', ` ${feedText(m, wasInvisible)}`);
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

// Every second: "just now" becomes "5 s ago", "idle for 1 min" ...
function tick() {
  const now = Date.now();
  for (const t of document.querySelectorAll('#feed time[data-at]')) {
    t.textContent = ago(new Date(Number(t.dataset.at)), now);
  }
  for (const [id, li] of view.rows) {
    const u = view.users.get(id);
    if (u) li.querySelector('.user-status').textContent = statusText(id, u);
  }
}

// ---- messages from the relay ------------------------------------------

function onMessage(m) {
  if (m.type === 'state') {
    view.users.clear();
    for (const u of m.users) {
      view.users.set(u.user_id, { status: u.status, lastActive: parseTime(u.last_active) });
    }
    // the relay registers us before it reads the state: if we are not in
    // it, we are invisible (a choice the extension keeps across visits);
    // a state read just before our own request may not show it yet
    if (Date.now() - view.invisibleAsked > 5000) setInvisible(!view.users.has(view.me));
  } else if (m.type === 'presence') {
    const wasInvisible = view.invisible;
    if (m.user_id === view.me) {
      // our session is live: shown offline means hidden (maybe by another tab)
      setInvisible(m.status === 'offline');
      view.invisibleAsked = 0;
    }
    if (m.status === 'offline') view.users.delete(m.user_id);
    else view.users.set(m.user_id, { status: m.status, lastActive: parseTime(m.last_active) });
    view.lastSeq = m.seq;
    $('seq').textContent = `last change #${m.seq}`;
    addFeed(m, wasInvisible);
  }
  renderUsers();
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
  // the demo relay mints tokens for anyone; an application's backend signs its own
  view.conn = new PresenceConnection(name, {
    getToken: () => demoToken(name), onMessage, onLink, active: activity.active,
  });
  view.conn.start();
  renderActivity(activity.active);
  renderUsers();
}

function leave() {
  crowd.stop();
  view.conn?.stop();
  view.conn = null;
  view.me = null;
  view.users.clear();
  for (const li of view.rows.values()) li.remove();
  view.rows.clear();
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
    : '50 simulated people join over real WebSockets, idle now and then, leave and come back.';
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
});

$('crowd').addEventListener('click', () => (crowd.running ? crowd.stop() : crowd.start()));

setInterval(tick, 1000);
renderCrowd();
onLink('idle');
$('link').textContent = '';

const saved = localStorage.getItem(NAME_KEY);
if (saved) join(saved);
else $('join').hidden = false;
