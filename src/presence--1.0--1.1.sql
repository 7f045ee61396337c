/* presence 1.0 -> 1.1, in place: the registry and its live sessions stay */

\echo Use "ALTER EXTENSION presence UPDATE TO '1.1'" to load this file. \quit

-- The journal carries each tick's channel members too.  The defaults let a
-- worker that has not yet seen this version (it checks at each tick) go on
-- appending 1.0's rows meanwhile.
ALTER TABLE presence.journal
	ADD COLUMN member_channels text[] NOT NULL DEFAULT '{}',
	ADD COLUMN member_users text[] NOT NULL DEFAULT '{}',
	ADD COLUMN member_sessions text[] NOT NULL DEFAULT '{}',
	ADD COLUMN member_metas jsonb[] NOT NULL DEFAULT '{}',
	ADD COLUMN member_joined_at timestamptz[] NOT NULL DEFAULT '{}';
ALTER TABLE presence.journal
	ALTER member_channels SET STORAGE EXTERNAL,
	ALTER member_users SET STORAGE EXTERNAL,
	ALTER member_sessions SET STORAGE EXTERNAL,
	ALTER member_metas SET STORAGE EXTERNAL,
	ALTER member_joined_at SET STORAGE EXTERNAL;

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
SELECT pg_catalog.pg_extension_config_dump('presence.memberships', '');
REVOKE ALL ON presence.memberships FROM PUBLIC;
CREATE TRIGGER rows_added AFTER INSERT ON presence.memberships
	FOR EACH STATEMENT EXECUTE FUNCTION presence.rows_added();

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

-- stats() counts memberships and channels too.  It counts users and
-- sessions, invisible ones too: not for PUBLIC, like sessions().
DROP FUNCTION presence.stats();
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
REVOKE EXECUTE ON FUNCTION presence.stats() FROM PUBLIC;

-- Status messages: kept in presence.users, carried by the journal (whose
-- defaults, again, let a worker still writing 1.0's rows go on), shown in
-- online_users(), which gets the column (a view over it must be dropped
-- before the update and made again after).
ALTER TABLE presence.users
	ADD COLUMN status_message text
		CHECK (char_length(status_message) BETWEEN 1 AND 140),
	ADD COLUMN status_message_expires_at timestamptz;
ALTER TABLE presence.journal
	ADD COLUMN user_status_messages text[] NOT NULL DEFAULT '{}',
	ADD COLUMN user_message_expires timestamptz[] NOT NULL DEFAULT '{}';
ALTER TABLE presence.journal
	ALTER user_status_messages SET STORAGE EXTERNAL,
	ALTER user_message_expires SET STORAGE EXTERNAL;

DROP FUNCTION presence.online_users();
CREATE FUNCTION presence.online_users()
	RETURNS TABLE (user_id text, status text, last_active timestamptz,
				   sessions int, status_message text)
	AS 'MODULE_PATHNAME', 'presence_online_users'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;

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
