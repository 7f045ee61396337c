// How the demo page shows people: names, avatars, times, and lists of rows
// (everyone online, the members of a room) kept in order without being
// rebuilt, so that nobody's row flickers when someone else changes.

import { SIM_PREFIX } from './crowd.js';

export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function displayName(id) {
  return id.startsWith(SIM_PREFIX) ? id.slice(SIM_PREFIX.length) : id;
}

function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = (w) => String.fromCodePoint(w.codePointAt(0));
  const s = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : first(parts[0] || '?');
  return s.toUpperCase();
}

// A stable colour per name (CSSOM, which the relay's CSP allows).
export function paintAvatar(node, id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.codePointAt(0)) % 360;
  node.style.setProperty('--hue', String(h));
  node.textContent = initials(displayName(id));
}

export function parseTime(s) {
  if (!s) return null;
  // PostgreSQL's "+00" offsets are not ISO 8601 enough for every browser
  const d = new Date(s.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(d.getTime()) ? null : d;
}

export function ago(date, now = Date.now()) {
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ago`;
  return date.toLocaleDateString();
}

export function since(date, now = Date.now()) {
  const t = ago(date, now);
  return t === 'just now' ? 'a moment' : t.replace(' ago', '');
}

// A list of people in a <ul>: show(entries) with entries [id, person] in
// order, each person { status, statusText, note, typing }.
export class PeopleList {
  constructor(ul, me) {
    this.ul = ul;
    this.me = me;
    this.rows = new Map();   // user_id -> <li>
  }

  row(id) {
    let li = this.rows.get(id);
    if (li) return li;
    li = el('li', 'user entering');
    li.dataset.user = id;
    const avatar = el('span', 'avatar');
    avatar.setAttribute('aria-hidden', 'true');
    paintAvatar(avatar, id);
    avatar.append(el('span', 'dot'));
    const text = el('span', 'user-text');
    const name = el('span', 'user-name', displayName(id));
    if (id === this.me) name.append(el('span', 'tag tag-you', 'you'));
    if (id.startsWith(SIM_PREFIX)) name.append(el('span', 'tag tag-sim', 'sim'));
    const line = el('span', 'user-line');
    line.append(el('span', 'user-status'), el('span', 'user-typing', 'typing'));
    const note = el('span', 'user-note');
    note.hidden = true;
    text.append(name, line, note);
    li.append(avatar, text);
    li.addEventListener('animationend', () => li.classList.remove('entering'), { once: true });
    this.rows.set(id, li);
    return li;
  }

  show(entries) {
    const keep = new Set(entries.map(([id]) => id));
    for (const [id, li] of this.rows) {
      if (!keep.has(id)) {
        li.remove();
        this.rows.delete(id);
      }
    }
    entries.forEach(([id, p], i) => {
      const li = this.row(id);
      li.dataset.status = p.status;
      if (p.typing) li.dataset.typing = '';
      else delete li.dataset.typing;
      const status = li.querySelector('.user-status');
      if (status.textContent !== p.statusText) status.textContent = p.statusText;
      const note = li.querySelector('.user-note');
      if (note.textContent !== (p.note || '')) note.textContent = p.note || '';
      note.hidden = !p.note;
      if (this.ul.children[i] !== li) this.ul.insertBefore(li, this.ul.children[i] || null);
    });
  }

  clear() {
    for (const li of this.rows.values()) li.remove();
    this.rows.clear();
  }
}
