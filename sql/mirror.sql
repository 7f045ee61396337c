--
-- Mirrors (1.1): an application's own users table kept in step by the
-- flusher.  mirror() and unmirror(): defaults, errors, privileges and the
-- table's ownership; what the flusher writes, as whom.
--
CREATE ROLE mirror_owner;
CREATE ROLE mirror_other;
CREATE SCHEMA app AUTHORIZATION mirror_owner;
GRANT USAGE ON SCHEMA app TO mirror_other;

-- The table an ORM made: camelCase columns, bigint ids, a trigger that
-- records who writes, and a constraint that refuses one row.
SET ROLE mirror_owner;
CREATE TABLE app.users (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  "isOnline" boolean NOT NULL DEFAULT false,
  "lastActive" timestamptz,
  status text,
  CONSTRAINT no_13_online CHECK (id <> 13 OR NOT "isOnline")
);
INSERT INTO app.users (id, name) SELECT i, 'user ' || i FROM generate_series(1, 20) i;
-- Shown online by the application's old code: the mirror's sync corrects it.
UPDATE app.users SET "isOnline" = true, status = 'online' WHERE id = 20;
CREATE TABLE app.writes (who name, session_who name, superuser boolean, id bigint);
CREATE FUNCTION app.record_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.writes SELECT current_user, session_user, r.rolsuper, NEW.id
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
  RETURN NEW;
END $$;
CREATE TRIGGER record_write AFTER UPDATE ON app.users
  FOR EACH ROW EXECUTE FUNCTION app.record_write();
CREATE TABLE app.wrong (
  id bigint PRIMARY KEY, flag text, day date, code int, short varchar(5),
  payload json, online_gen boolean GENERATED ALWAYS AS (code > 0) STORED,
  at timestamp(3)
);
RESET ROLE;

-- Not for PUBLIC: the table's owner gets them.
SET ROLE mirror_other;
SELECT try($$SELECT presence.mirror('app.users', 'id', 'isOnline')$$);
SELECT try($$SELECT presence.unmirror('app.users')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION presence.mirror(regclass, name, name, name, name),
  presence.unmirror(regclass) TO mirror_owner, mirror_other;

-- Only the table's owner (or a superuser) may mirror it.
SET ROLE mirror_other;
SELECT try($$SELECT presence.mirror('app.users', 'id', 'isOnline')$$);
SELECT try($$SELECT presence.unmirror('app.users')$$);
RESET ROLE;

-- Bad input: an ERROR with its SQLSTATE, and nothing kept.
SET ROLE mirror_owner;
SELECT try($$SELECT presence.mirror(NULL, 'id', 'isOnline')$$);
SELECT try($$SELECT presence.mirror('app.users', NULL, 'isOnline')$$);
SELECT try($$SELECT presence.mirror('app.users', 'id')$$);
SELECT try($$SELECT presence.mirror('app.users', 'id', 'isOnline', 'isOnline')$$);
SELECT try($$SELECT presence.mirror('app.nope', 'id', 'isOnline')$$);
SELECT try($$SELECT presence.mirror('app.users', 'id', 'isonline')$$);
SELECT try($$SELECT presence.mirror('app.users', 'id', '"isOnline"')$$);
SELECT try($$SELECT presence.mirror('app.users', 'uid', 'isOnline')$$);
SELECT try($$SELECT presence.mirror('app.users', 'ctid', 'isOnline')$$);
SELECT try($$SELECT presence.mirror('app.wrong', 'id', 'flag')$$);
SELECT try($$SELECT presence.mirror('app.wrong', 'id', NULL, 'day')$$);
SELECT try($$SELECT presence.mirror('app.wrong', 'id', NULL, NULL, 'code')$$);
SELECT try($$SELECT presence.mirror('app.wrong', 'id', NULL, NULL, 'short')$$);
SELECT try($$SELECT presence.mirror('app.wrong', 'payload', 'online_gen')$$);
SELECT try($$SELECT presence.mirror('app.wrong', 'id', 'online_gen')$$);
CREATE VIEW app.users_view AS SELECT * FROM app.users;
SELECT try($$SELECT presence.mirror('app.users_view', 'id', 'isOnline')$$);
CREATE TEMP TABLE temp_users (id bigint, online boolean);
SELECT try($$SELECT presence.mirror('temp_users', 'id', 'online')$$);
DROP TABLE temp_users;
RESET ROLE;
-- Not even a superuser may mirror a catalog or presence's own tables.
SELECT try($$SELECT presence.mirror('pg_catalog.pg_class', 'oid', 'relhasindex')$$);
SELECT try($$SELECT presence.mirror('presence.users', 'user_id', 'is_online')$$);
-- An enum status column needs every status.
CREATE TYPE app.mood AS ENUM ('online', 'offline');
ALTER TABLE app.wrong ADD COLUMN mood app.mood;
SELECT try($$SELECT presence.mirror('app.wrong', 'id', NULL, NULL, 'mood')$$);
SELECT count(*) AS kept FROM presence.mirrors;

-- The owner mirrors its table; the configuration, with who set it up.
SET ROLE mirror_owner;
SELECT presence.mirror('app.users', 'id', 'isOnline', 'lastActive', 'status');
SELECT try($$SELECT * FROM presence.mirrors$$);
RESET ROLE;
SELECT target, id_column, online_column, last_active_column, status_column,
       created_by FROM presence.mirrors;

-- The sync: the stale online row is set offline, and then every change
-- reaches the table within a flush interval (100 ms here).
SELECT wait_until($$SELECT NOT "isOnline" AND status = 'offline' FROM app.users WHERE id = 20$$);
SELECT presence.connect('3'), presence.connect('7', 'phone'), presence.connect('13'),
       presence.connect('not-a-number'), presence.connect('99999999999999999999'),
       presence.connect('1000');
SELECT wait_until($$SELECT count(*) = 2 FROM app.users WHERE "isOnline"$$);
SELECT id, "isOnline", status, "lastActive" = presence.last_active(id::text) AS last_active
  FROM app.users WHERE "lastActive" IS NOT NULL OR "isOnline" ORDER BY id;
-- Row 13 is refused by the table's constraint: skipped, the others written.
SELECT id, "isOnline", status FROM app.users WHERE id = 13;

-- The table's trigger ran as its owner, never as the superuser the flusher
-- is (session_user is the flusher's).
SELECT DISTINCT who, superuser,
       session_who = (SELECT rolname FROM pg_roles WHERE oid = 10) AS session_is_the_flusher
  FROM app.writes;

-- What the table's owner's code cannot do in the flusher: the security
-- restricted operation forbids changing role or leaving state behind, and
-- the superuser's privileges are not there to use.
SET ROLE mirror_owner;
CREATE TABLE app.probe (id bigint PRIMARY KEY, online boolean);
INSERT INTO app.probe VALUES (1, false);
CREATE TABLE app.probe_log (attempt text, outcome text);
CREATE FUNCTION app.probe() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  superuser text := quote_ident((SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10));
  attempts text[][] := ARRAY[
    ['SET ROLE to the superuser', 'SET ROLE ' || superuser],
    ['SET SESSION AUTHORIZATION', 'SET SESSION AUTHORIZATION ' || superuser],
    ['RESET ROLE', 'RESET ROLE'],
    ['a temporary table', 'CREATE TEMP TABLE probe_temp ()'],
    ['LISTEN', 'LISTEN probe'],
    ['read presence.sessions', 'SELECT count(*) FROM presence.sessions'],
    ['read a server file', 'SELECT pg_catalog.pg_read_file(''postgresql.conf'')'],
    ['who am I', 'SELECT 1 WHERE current_user = ''mirror_owner'' AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)']];
BEGIN
  FOR i IN 1 .. array_length(attempts, 1) LOOP
    BEGIN
      EXECUTE attempts[i][2];
      INSERT INTO app.probe_log VALUES (attempts[i][1], 'done');
    EXCEPTION WHEN OTHERS THEN
      INSERT INTO app.probe_log VALUES (attempts[i][1], SQLSTATE || ': ' || SQLERRM);
    END;
  END LOOP;
  RETURN NEW;
END $$;
CREATE TRIGGER probe BEFORE UPDATE ON app.probe
  FOR EACH ROW EXECUTE FUNCTION app.probe();
SELECT presence.mirror('app.probe', 'id', 'online');
RESET ROLE;
SELECT presence.connect('1');
SELECT wait_until($$SELECT count(*) > 0 FROM app.probe_log$$);
SELECT * FROM app.probe_log;
SELECT online FROM app.probe;
SELECT presence.unmirror('app.probe'), presence.disconnect('1');

-- Invisible: offline, and the last activity stays what it was.
SELECT "lastActive" AS before FROM app.users WHERE id = 7 \gset
SELECT presence.heartbeat('7', 'phone');
SELECT presence.set_visible('7', false);
SELECT wait_until($$SELECT NOT "isOnline" FROM app.users WHERE id = 7$$);
SELECT id, "isOnline", status, "lastActive" = :'before' AS last_active_kept
  FROM app.users WHERE id = 7;
SELECT presence.set_visible('7', true);
SELECT wait_until($$SELECT "isOnline" AND status = 'online' FROM app.users WHERE id = 7$$);

-- Logging out: offline within a flush interval.
SELECT presence.disconnect('3');
SELECT wait_until($$SELECT NOT "isOnline" AND status = 'offline' FROM app.users WHERE id = 3$$);

-- mirror() again replaces the configuration and syncs the table again.
SET ROLE mirror_owner;
UPDATE app.users SET status = NULL;
SELECT presence.mirror('app.users', 'id', status_column => 'status');
RESET ROLE;
SELECT target, online_column, last_active_column, status_column FROM presence.mirrors;
SELECT wait_until($$SELECT count(*) = 20 FROM app.users WHERE status IS NOT NULL$$);
SELECT status, count(*) FROM app.users GROUP BY status ORDER BY status;

-- Several mirrors: uuid ids, text ids, a timestamp without time zone
-- (written in UTC), a varchar status, an enum status.
SET ROLE mirror_owner;
CREATE TYPE app.presence_status AS ENUM ('online', 'away', 'offline');
CREATE TABLE app.accounts (uid uuid PRIMARY KEY, seen timestamp(3), online boolean);
INSERT INTO app.accounts (uid) VALUES ('8f2b1a2e-2d3c-4b5a-9c8d-7e6f5a4b3c2d'),
                                    ('00000000-0000-0000-0000-000000000001');
CREATE TABLE app.members (handle text PRIMARY KEY, state varchar(10), mood app.presence_status);
INSERT INTO app.members VALUES ('ada', NULL, NULL), ('bo', NULL, NULL);
SELECT presence.mirror('app.accounts', 'uid', 'online', 'seen');
SELECT presence.mirror('app.members', 'handle', status_column => 'state');
RESET ROLE;
SELECT presence.connect('8F2B1A2E-2D3C-4B5A-9C8D-7E6F5A4B3C2D'), presence.connect('ada');
SELECT wait_until($$SELECT count(*) = 1 FROM app.accounts WHERE online$$);
SELECT uid, online, seen = (presence.last_active('8F2B1A2E-2D3C-4B5A-9C8D-7E6F5A4B3C2D')
                            AT TIME ZONE 'UTC')::timestamp(3) AS seen_in_utc
  FROM app.accounts ORDER BY uid;
SELECT wait_until($$SELECT state = 'online' FROM app.members WHERE handle = 'ada'$$);
SELECT * FROM app.members ORDER BY handle;
SET ROLE mirror_owner;
SELECT presence.mirror('app.members', 'handle', status_column => 'mood');
RESET ROLE;
SELECT wait_until($$SELECT mood = 'online' FROM app.members WHERE handle = 'ada'$$);
SELECT count(*) AS mirrors FROM presence.mirrors;

-- unmirror(): true once, then false; the table is no longer written.
SET ROLE mirror_owner;
SELECT presence.unmirror('app.users') AS first, presence.unmirror('app.users') AS second;
RESET ROLE;
SELECT presence.connect('5'), presence.connect('bo');
-- The fold that writes bo's mood to app.members has folded 5 too.
SELECT wait_until($$SELECT mood = 'online' FROM app.members WHERE handle = 'bo'$$);
SELECT "isOnline", status FROM app.users WHERE id = 5;

-- A dropped table's mirror goes with it, whoever drops it.
SET ROLE mirror_owner;
DROP TABLE app.accounts;
RESET ROLE;
SELECT target FROM presence.mirrors ORDER BY target::text;

SELECT presence.disconnect('7', 'phone'), presence.disconnect('13'),
       presence.disconnect('not-a-number'), presence.disconnect('99999999999999999999'),
       presence.disconnect('1000'), presence.disconnect('5'), presence.disconnect('ada'),
       presence.disconnect('8F2B1A2E-2D3C-4B5A-9C8D-7E6F5A4B3C2D'), presence.disconnect('bo');
SELECT wait_until($$SELECT mood = 'offline' FROM app.members WHERE handle = 'ada'$$);
SELECT presence.unmirror('app.members');
DROP SCHEMA app CASCADE;
REVOKE EXECUTE ON FUNCTION presence.mirror(regclass, name, name, name, name),
  presence.unmirror(regclass) FROM mirror_owner, mirror_other;
DROP ROLE mirror_owner;
DROP ROLE mirror_other;
SELECT count(*) AS mirrors FROM presence.mirrors;
