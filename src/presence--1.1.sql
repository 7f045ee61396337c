/* presence 1.1: who is online, and in which channel, tracked in shared memory */

\echo Use "CREATE EXTENSION presence" to load this file. \quit

-- Everyone may call the read functions; the schema's other objects carry
-- their own privileges.  The functions that run SQL pin their search_path.
GRANT USAGE ON SCHEMA presence TO PUBLIC;

-- The durable mirror of the registry, written only by the presence worker.
-- status and is_online are what others see: an invisible user is 'offline'.
-- Half of each page is left free so that the flusher's updates of online
-- users' last_active (once a minute each) stay HOT, without index entries.
CREATE TABLE presence.users (
	user_id text PRIMARY KEY,
	is_online boolean NOT NULL DEFAULT false,
	status text NOT NULL DEFAULT 'offline'
		CHECK (status IN ('online', 'away', 'offline')),
	last_active timestamptz,
	visible boolean NOT NULL DEFAULT true,
	status_message text
		CHECK (char_length(status_message) BETWEEN 1 AND 140),
	status_message_expires_at timestamptz
) WITH (fillfactor = 50);

CREATE TABLE presence.sessions (
	user_id text NOT NULL,
	session_id text NOT NULL,
	connected_at timestamptz NOT NULL,
	meta jsonb,
	bound boolean NOT NULL DEFAULT false,
	PRIMARY KEY (user_id, session_id)
);

-- Each worker tick's changes, one row per tick, until the worker folds them
-- into the two tables above (every presence.flush_interval).  Arrays are
-- stored uncompressed: compressing them would cost the tick more than the
-- bytes saved.
CREATE TABLE presence.journal (
	tick bigint PRIMARY KEY,
	user_ids text[] NOT NULL,
	user_statuses text[] NOT NULL,
	user_last_active timestamptz[] NOT NULL,
	user_visible boolean[] NOT NULL,
	session_users text[] NOT NULL,
	session_ids text[] NOT NULL,
	session_connected_at timestamptz[] NOT NULL,
	session_meta text[] NOT NULL,
	session_bound boolean[] NOT NULL,
	session_ended boolean[] NOT NULL,
	member_channels text[] NOT NULL DEFAULT '{}',
	member_users text[] NOT NULL DEFAULT '{}',
	member_sessions text[] NOT NULL DEFAULT '{}',
	member_metas jsonb[] NOT NULL DEFAULT '{}',
	member_joined_at timestamptz[] NOT NULL DEFAULT '{}',
	user_status_messages text[] NOT NULL DEFAULT '{}',
	user_message_expires timestamptz[] NOT NULL DEFAULT '{}'
);
ALTER TABLE presence.journal
	ALTER user_ids SET STORAGE EXTERNAL,
	ALTER user_statuses SET STORAGE EXTERNAL,
	ALTER user_last_active SET STORAGE EXTERNAL,
	ALTER user_visible SET STORAGE EXTERNAL,
	ALTER session_users SET STORAGE EXTERNAL,
	ALTER session_ids SET STORAGE EXTERNAL,
	ALTER session_connected_at SET STORAGE EXTERNAL,
	ALTER session_meta SET STORAGE EXTERNAL,
	ALTER session_bound SET STORAGE EXTERNAL,
	ALTER session_ended SET STORAGE EXTERNAL,
	ALTER member_channels SET STORAGE EXTERNAL,
	ALTER member_users SET STORAGE EXTERNAL,
	ALTER member_sessions SET STORAGE EXTERNAL,
	ALTER member_metas SET STORAGE EXTERNAL,
	ALTER member_joined_at SET STORAGE EXTERNAL,
	ALTER user_status_messages SET STORAGE EXTERNAL,
	ALTER user_message_expires SET STORAGE EXTERNAL;

-- The durable mirror of channel memberships: a session in a channel, with
-- its meta, written only by the presence worker's flusher.  Keyed by user
-- first: the flusher deletes the memberships of a session that ended.
CREATE TABLE presence.memberships (
	channel text NOT NULL,
	user_id text NOT NULL,
	session_id text NOT NULL,
	meta jsonb,
	joined_at timestamptz NOT NULL,
	PRIMARY KEY (user_id, session_id, channel)
);

-- Holds the seq of the last notification sent, so seq never repeats.
CREATE SEQUENCE presence.notification_seq;

-- pg_dump keeps the rows of these four; the journal is the worker's own
-- and is not dumped (the tables hold everything but its last few seconds).
SELECT pg_catalog.pg_extension_config_dump('presence.users', '');
SELECT pg_catalog.pg_extension_config_dump('presence.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('presence.notification_seq', '');
SELECT pg_catalog.pg_extension_config_dump('presence.memberships', '');

REVOKE ALL ON presence.users, presence.sessions, presence.journal,
	presence.notification_seq, presence.memberships FROM PUBLIC;

-- Rows that someone other than the worker adds (a restore) are merged into
-- the registry at the worker's next tick.
CREATE FUNCTION presence.rows_added() RETURNS trigger
	AS 'MODULE_PATHNAME', 'presence_rows_added' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION presence.rows_added() FROM PUBLIC;
CREATE TRIGGER rows_added AFTER INSERT ON presence.users
	FOR EACH STATEMENT EXECUTE FUNCTION presence.rows_added();
CREATE TRIGGER rows_added AFTER INSERT ON presence.sessions
	FOR EACH STATEMENT EXECUTE FUNCTION presence.rows_added();
CREATE TRIGGER rows_added AFTER INSERT ON presence.memberships
	FOR EACH STATEMENT EXECUTE FUNCTION presence.rows_added();

-- Write functions: not executable by PUBLIC.

CREATE FUNCTION presence.connect(user_id text, session_id text DEFAULT NULL,
								 meta jsonb DEFAULT NULL,
								 bound boolean DEFAULT false)
	RETURNS text
	AS 'MODULE_PATHNAME', 'presence_connect'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.heartbeat(user_id text, session_id text DEFAULT NULL,
								   active boolean DEFAULT true)
	RETURNS void
	AS 'MODULE_PATHNAME', 'presence_heartbeat'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.disconnect(user_id text, session_id text DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'presence_disconnect'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.set_visible(user_id text, visible boolean)
	RETURNS void
	AS 'MODULE_PATHNAME', 'presence_set_visible'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE EXECUTE ON FUNCTION
	presence.connect(text, text, jsonb, boolean),
	presence.heartbeat(text, text, boolean),
	presence.disconnect(text, text),
	presence.set_visible(text, boolean)
	FROM PUBLIC;

-- Heartbeats of many sessions in one call (an app server's or a relay's
-- batch): how many were live; the others are opened as heartbeat() opens
-- them.  A write function, not for PUBLIC.
CREATE FUNCTION presence.heartbeat_many(user_ids text[], session_ids text[],
										active boolean DEFAULT true)
	RETURNS int
	AS 'MODULE_PATHNAME', 'presence_heartbeat_many'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE EXECUTE ON FUNCTION
	presence.heartbeat_many(text[], text[], boolean) FROM PUBLIC;

-- Read functions: PUBLIC, and never reveal an invisible user.

CREATE FUNCTION presence.status(user_id text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'presence_status'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION presence.is_online(user_id text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'presence_is_online'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- SECURITY DEFINER: for users no longer tracked it reads presence.users,
-- which PUBLIC may not read.
CREATE FUNCTION presence.last_active(user_id text)
	RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'presence_last_active'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION presence.online_users()
	RETURNS TABLE (user_id text, status text, last_active timestamptz,
				   sessions int, status_message text)
	AS 'MODULE_PATHNAME', 'presence_online_users'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;

CREATE FUNCTION presence.sessions(user_id text DEFAULT NULL)
	RETURNS TABLE (user_id text, session_id text, connected_at timestamptz,
				   last_heartbeat timestamptz, meta jsonb)
	AS 'MODULE_PATHNAME', 'presence_sessions'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;

REVOKE EXECUTE ON FUNCTION presence.sessions(text) FROM PUBLIC;

CREATE FUNCTION presence.stats(
	OUT users bigint,
	OUT sessions bigint,
	OUT max_sessions bigint,
	OUT sweeps bigint,
	OUT last_sweep_ms double precision,
	OUT notifications bigint,
	OUT flushes bigint,
	OUT last_flush_ms double precision,
	OUT worker_pid int,
	OUT ready boolean,
	OUT memberships bigint,
	OUT max_memberships bigint,
	OUT channels bigint)
	AS 'MODULE_PATHNAME', 'presence_stats'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Its counts of users and sessions change when an invisible user comes or
-- goes: not for PUBLIC, like sessions().
REVOKE EXECUTE ON FUNCTION presence.stats() FROM PUBLIC;

-- Where the worker's ticks spend their time: the last tick, and the slowest
-- of the last one to two minutes.  Like stats(), not for PUBLIC.
CREATE FUNCTION presence.tick_parts(
	OUT tick text,
	OUT started_at timestamptz,
	OUT total_ms double precision,
	OUT sweep_ms double precision,
	OUT collect_ms double precision,
	OUT activity_ms double precision,
	OUT lock_wait_ms double precision,
	OUT journal_ms double precision,
	OUT notify_ms double precision,
	OUT commit_ms double precision,
	OUT queue_ms double precision,
	OUT notifications bigint,
	OUT journal_rows bigint,
	OUT active_users_examined bigint,
	OUT other_ms double precision)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'presence_tick_parts'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 2;
REVOKE EXECUTE ON FUNCTION presence.tick_parts() FROM PUBLIC;

-- Channels: write functions, and reads, none executable by PUBLIC (who is in
-- a private room is private).

CREATE FUNCTION presence.join(channel text, user_id text,
							  session_id text DEFAULT NULL,
							  meta jsonb DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'presence_join'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.leave(channel text, user_id text,
							   session_id text DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'presence_leave'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.update(channel text, user_id text, session_id text,
								meta jsonb)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'presence_update'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.members(channel text)
	RETURNS TABLE (user_id text, status text, last_active timestamptz,
				   sessions int, metas jsonb, status_message text)
	AS 'MODULE_PATHNAME', 'presence_members'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;

CREATE FUNCTION presence.channels(user_id text)
	RETURNS TABLE (channel text, sessions int)
	AS 'MODULE_PATHNAME', 'presence_channels'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10;

CREATE FUNCTION presence.occupancy(channel text)
	RETURNS int
	AS 'MODULE_PATHNAME', 'presence_occupancy'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

REVOKE EXECUTE ON FUNCTION
	presence.join(text, text, text, jsonb),
	presence.leave(text, text, text),
	presence.update(text, text, text, jsonb),
	presence.members(text),
	presence.channels(text),
	presence.occupancy(text)
	FROM PUBLIC;

-- Status messages: what a user is up to, shown while others see them
-- online or away.  Setting one is a write function, not for PUBLIC;
-- reading one is for PUBLIC, like status().
CREATE FUNCTION presence.set_status_message(user_id text, message text,
											expires_at timestamptz DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'presence_set_status_message'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE EXECUTE ON FUNCTION
	presence.set_status_message(text, text, timestamptz) FROM PUBLIC;

CREATE FUNCTION presence.status_message(user_id text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'presence_status_message'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Mirrors: an application's own users table, whose online, last activity
-- and status columns the flusher keeps in step (presence.mirror()).  The
-- configuration is kept by pg_dump; presence.mirror_state, the flusher's
-- own record of which configuration it has synced (by its created_at) and
-- of the users a failed write still owes, is not: a restored mirror is
-- synced whole again.
CREATE TABLE presence.mirrors (
	target regclass PRIMARY KEY,
	id_column name NOT NULL,
	online_column name,
	last_active_column name,
	status_column name,
	created_by name NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	CHECK (online_column IS NOT NULL OR last_active_column IS NOT NULL
		   OR status_column IS NOT NULL)
);
CREATE TABLE presence.mirror_state (
	target regclass PRIMARY KEY,
	synced timestamptz NOT NULL,
	pending text[] NOT NULL DEFAULT '{}'
);
SELECT pg_catalog.pg_extension_config_dump('presence.mirrors', '');
REVOKE ALL ON presence.mirrors, presence.mirror_state FROM PUBLIC;

-- Not for PUBLIC either: grant them to the role that owns the table.  They
-- check that the calling role owns the table (or is a superuser).
CREATE FUNCTION presence.mirror(target regclass, id_column name,
								online_column name DEFAULT NULL,
								last_active_column name DEFAULT NULL,
								status_column name DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'presence_mirror'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION presence.unmirror(target regclass)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'presence_unmirror'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE EXECUTE ON FUNCTION
	presence.mirror(regclass, name, name, name, name),
	presence.unmirror(regclass)
	FROM PUBLIC;

-- A dropped table's mirror goes with it.  SECURITY DEFINER: whoever drops a
-- table may not write presence.mirrors.
CREATE FUNCTION presence._mirrors_dropped()
	RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'presence_mirrors_dropped'
	LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION presence._mirrors_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER presence_mirrors_dropped ON sql_drop
	EXECUTE FUNCTION presence._mirrors_dropped();

-- A new extension starts from empty tables: the registry starts empty too,
-- and the worker loads it from the tables.
CREATE FUNCTION presence._reset_registry() RETURNS void
	AS 'MODULE_PATHNAME', 'presence_reset_registry' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION presence._reset_registry() FROM PUBLIC;
SELECT presence._reset_registry();
