// Types of presence.js (the browser client of presence-relay) and of the
// relay's messages, for TypeScript users.  The protocol is docs/relay.md's.
//
//   import { PresenceConnection, type Member } from './presence.js';

/** A status others see. `offline` only in changes: an offline user is in no list. */
export type Status = 'online' | 'away';
export type AnyStatus = Status | 'offline';

/** A member's meta: a JSON object of at most 1 kB as PostgreSQL prints it. */
export type Meta = { [key: string]: Json };
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** A user of the global feed (presence.online_users()). */
export interface User {
  user_id: string;
  status: Status;
  /** ISO 8601, or null */
  last_active: string | null;
  /** null when known only from a change */
  sessions: number | null;
  status_message: string | null;
}

/** A member of a channel, as PresenceChannel keeps it. */
export interface Member {
  user_id: string;
  /** `offline` only in a `leave` event: the member's sessions ended or it went invisible */
  status: AnyStatus;
  last_active: string | null;
  /** sessions in the channel (0 during the reconnect grace), null when known only from a change */
  sessions: number | null;
  /** the first session's meta (the state's), then the last one any of its sessions set */
  meta: Meta | null;
  status_message: string | null;
}

// ---- messages from the relay -------------------------------------------

export interface StateFrame {
  type: 'state';
  /** the last change the state includes; null: none had reached the relay yet */
  seq: number | null;
  users: Array<{ user_id: string; status: Status; last_active: string | null; sessions: number; status_message: string | null }>;
}
export interface PresenceFrame {
  type: 'presence';
  seq: number;
  user_id: string;
  status: AnyStatus;
  previous: AnyStatus;
  last_active: string | null;
}
export interface StatusMessageFrame {
  type: 'status_message';
  seq: number;
  user_id: string;
  status_message: string | null;
  expires_at: string | null;
}
/** What onMessage gets: the global feed. */
export type GlobalFrame = StateFrame | PresenceFrame | StatusMessageFrame;

export interface MemberItem {
  user_id: string;
  status: Status;
  meta: Meta | null;
  status_message?: string | null;
}
export interface ChannelStateFrame {
  type: 'state';
  channel: string;
  seq: number | null;
  members: Array<MemberItem & { last_active: string | null; sessions: number; metas: Array<Meta | null> }>;
}
export interface JoinFrame { type: 'join'; channel: string; seq: number; user_id: string; status: Status; meta: Meta | null; status_message?: string | null }
export interface UpdateFrame { type: 'update'; channel: string; seq: number; user_id: string; meta: Meta }
export interface LeaveFrame { type: 'leave'; channel: string; seq: number; user_id: string }
export interface ChannelPresenceFrame extends Omit<PresenceFrame, 'type'> { type: 'presence'; channel: string }
export interface ChannelStatusMessageFrame extends Omit<StatusMessageFrame, 'type'> { type: 'status_message'; channel: string }
export interface DiffFrame {
  type: 'diff';
  channel: string;
  seq: number;
  joins: MemberItem[];
  leaves: Array<{ user_id: string }>;
  updates: MemberItem[];
}
export interface UnsubscribedFrame { type: 'unsubscribed'; channel: string; reason?: 'forbidden' }
export type ChannelFrame = ChannelStateFrame | JoinFrame | UpdateFrame | LeaveFrame | ChannelPresenceFrame
  | ChannelStatusMessageFrame | DiffFrame | UnsubscribedFrame;

export type ErrorCode = 'forbidden' | 'bad_channel' | 'bad_meta' | 'too_large' | 'too_many_channels'
  | 'not_joined' | 'full' | 'failed' | 'rate_limited' | 'bad_status_message' | 'bad_expires_in';
export interface ErrorFrame {
  type: 'error';
  /** the message refused: join, subscribe, update, leave, unsubscribe, status_message */
  request?: string;
  channel?: string;
  code: ErrorCode;
}
export interface TokenFrame { type: 'token'; exp: number }
export type ServerFrame = GlobalFrame | ChannelFrame | ErrorFrame | TokenFrame;

// ---- messages to the relay ---------------------------------------------

export type ClientMessage =
  | { type: 'heartbeat'; active?: boolean }
  | { type: 'visibility'; visible: boolean }
  | { type: 'token'; token: string }
  | { type: 'join'; channel: string; meta?: Meta | null }
  | { type: 'subscribe' | 'leave' | 'unsubscribe'; channel: string }
  | { type: 'update'; channel: string; meta: Meta }
  | { type: 'status_message'; message: string | null; expires_in?: number };

// ---- the client ---------------------------------------------------------

export type LinkState = 'connecting' | 'open' | 'retrying';

export interface ConnectionOptions {
  /** a token for the user, from your backend (default: the demo relay's /demo/token) */
  getToken?: () => Promise<string>;
  /** the global feed, after conn.users has it; frames the state has already are not passed */
  onMessage?: (m: GlobalFrame) => void;
  onLink?: (state: LinkState) => void;
  /** every error frame but a refused token refresh (channels' also go to their `error` event) */
  onError?: (e: ErrorFrame) => void;
  /** whether the user is active at start (default true) */
  active?: boolean;
}

export interface ChannelEvents {
  /** a state replaced the members (after a subscribe, a join, a new socket) */
  state: (members: ReadonlyMap<string, Member>) => void;
  /** a member is shown */
  join: (member: Member) => void;
  /** a member is gone: it left, or its status is `offline` */
  leave: (member: Member) => void;
  update: (member: Member, previousMeta: Meta | null) => void;
  /** online <-> away */
  presence: (member: Member, previous: AnyStatus) => void;
  status_message: (member: Member) => void;
  /** after every frame that changed the members, once */
  change: (members: ReadonlyMap<string, Member>) => void;
  /** the relay refused a message about this channel; nothing changed there */
  error: (error: { code: ErrorCode; request?: string }) => void;
  /** a fresh token no longer allows the channel */
  unsubscribed: (reason: string) => void;
}

export class PresenceChannel {
  readonly name: string;
  readonly members: ReadonlyMap<string, Member>;
  /** the state's seq */
  readonly seq: number | null;
  /** a state came on this socket */
  readonly synced: boolean;
  readonly joined: boolean;
  readonly watched: boolean;
  /** joined or watched: its frames are applied */
  readonly watching: boolean;
  readonly meta: Meta | null;
  /** returns a function that removes the listener */
  on<K extends keyof ChannelEvents>(type: K, fn: ChannelEvents[K]): () => void;
  off<K extends keyof ChannelEvents>(type: K, fn: ChannelEvents[K]): void;
}

export class PresenceConnection {
  constructor(user: string, options?: ConnectionOptions);
  readonly user: string;
  /** the open socket, if any */
  readonly ws: WebSocket | null;
  /** the global feed's users (online or away), with their status messages */
  readonly users: ReadonlyMap<string, User>;
  readonly channels: ReadonlyMap<string, PresenceChannel>;
  start(): void;
  stop(): void;
  /** tells the relay whether the user is active (it shows them away after presence.idle_timeout) */
  setActive(active: boolean): void;
  /** hides or shows the user to everyone; false if no socket is open */
  setVisible(visible: boolean): boolean;
  /** null or '' clears; at most 140 characters; expiresIn in seconds. False: sent when a socket opens */
  setStatusMessage(message: string | null, expiresIn?: number | null): boolean;
  /** the channel's view, made if needed, joined or watched or not */
  channel(name: string): PresenceChannel;
  /** be present (and watch); joining again replaces the meta. Kept across new sockets */
  join(name: string, meta?: Meta | null): PresenceChannel;
  /** watch without being present. Kept across new sockets */
  subscribe(name: string): PresenceChannel;
  /** replaces our meta; throws if not joined; false if no socket is open (the next join carries it) */
  update(name: string, meta: Meta): boolean;
  /** not present any more; a subscribed channel stays watched. False if not joined or no socket is open */
  leave(name: string): boolean;
  /** stop watching (a joined channel is watched until left) */
  unsubscribe(name: string): boolean;
  /** sends a raw message; false if no socket is open */
  send(message: ClientMessage): boolean;
}

/** A token from the demo relay (GET /demo/token, --demo only). */
export function demoToken(user: string): Promise<string>;
/** ws(s)://this host/ws?token=... */
export function socketUrl(token: string): string;
/** onChange(false) after idleMs without input or when the page is hidden, onChange(true) at the next input */
export function watchActivity(idleMs: number, onChange: (active: boolean) => void): { readonly active: boolean };
