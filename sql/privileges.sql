--
-- What each role of docs/sql.md's Privileges section may do and see:
-- PUBLIC, an application role and the relay's role with the GRANTs shown
-- there, and the tables' owner (the superuser running these tests).
--
SELECT presence.connect('lena');
SELECT presence.set_visible('hidden', false), presence.connect('hidden', 'tab');
CREATE ROLE presence_reader;
CREATE ROLE presence_app;
CREATE ROLE presence_relay;

-- PUBLIC: the read functions, which show invisible users as offline.
SET ROLE presence_reader;
SELECT presence.status('lena'), presence.is_online('lena');
SELECT presence.last_active('lena') IS NOT NULL AS seen;
SELECT user_id, status FROM presence.online_users();
SELECT presence.status('hidden'), presence.last_active('hidden');
SELECT try($$SELECT presence.connect('mallory')$$);
SELECT try($$SELECT presence.heartbeat('lena')$$);
SELECT try($$SELECT presence.heartbeat_many(ARRAY['lena'], ARRAY['default'])$$);
SELECT try($$SELECT presence.disconnect('lena')$$);
SELECT try($$SELECT presence.set_visible('lena', false)$$);
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT * FROM presence.stats()$$);
SELECT try($$SELECT * FROM presence.tick_parts()$$);
SELECT try($$SELECT presence._reset_registry()$$);
SELECT try($$SELECT * FROM presence.users$$);
SELECT try($$SELECT * FROM presence.sessions$$);
SELECT try($$SELECT * FROM presence.journal$$);
SELECT try($$SELECT nextval('presence.notification_seq')$$);
-- Channels: none of their functions is for PUBLIC, reads included (who is
-- in a private room is private).
SELECT try($$SELECT presence.join('room:1', 'mallory')$$);
SELECT try($$SELECT presence.leave('room:1', 'lena')$$);
SELECT try($$SELECT presence.update('room:1', 'lena', NULL, '{}')$$);
SELECT try($$SELECT * FROM presence.members('room:1')$$);
SELECT try($$SELECT * FROM presence.channels('lena')$$);
SELECT try($$SELECT presence.occupancy('room:1')$$);
SELECT try($$SELECT * FROM presence.memberships$$);
-- Status messages: anyone reads them (of users anyone sees), nobody but
-- the application sets them.  Mirrors are their tables' owners' business.
SELECT try($$SELECT presence.set_status_message('lena', 'hacked')$$);
SELECT presence.status_message('lena'), presence.status_message('hidden');
SELECT try($$SELECT presence.mirror('pg_class', 'oid', 'relhasindex')$$);
SELECT try($$SELECT presence.unmirror('pg_class')$$);
SELECT try($$SELECT * FROM presence.mirrors$$);
SELECT try($$SELECT * FROM presence.mirror_state$$);
RESET ROLE;

-- The GRANTs docs/sql.md shows for an application role.
GRANT EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.heartbeat_many(text[], text[], boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean)
  TO presence_app;
SET ROLE presence_app;
SELECT presence.connect('mallory');
SELECT presence.heartbeat('mallory');
SELECT presence.heartbeat_many(ARRAY['mallory', 'mallory'], ARRAY['default', 'tab2']);
SELECT presence.disconnect('mallory', 'tab2');
SELECT presence.disconnect('mallory');
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT * FROM presence.stats()$$);
SELECT wait_until($$SELECT presence.status('mallory') = 'offline'$$);
SELECT try($$SELECT * FROM presence.users$$);
SELECT try($$SELECT presence.join('room:1', 'mallory')$$);
RESET ROLE;
-- For channels, the writes and the reads.
GRANT EXECUTE ON FUNCTION
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.channels(text),
  presence.occupancy(text)
  TO presence_app;
SET ROLE presence_app;
SELECT presence.join('room:1', 'mallory', 'tab', '{"page": "/"}');
SELECT presence.update('room:1', 'mallory', 'tab', '{"page": "/a"}');
SELECT user_id, sessions, metas FROM presence.members('room:1');
SELECT channel, sessions FROM presence.channels('mallory');
SELECT presence.occupancy('room:1');
SELECT presence.leave('room:1', 'mallory', 'tab');
SELECT presence.disconnect('mallory', 'tab');
SELECT try($$SELECT * FROM presence.memberships$$);
RESET ROLE;
-- (mallory gone at the worker's next tick)
SELECT wait_until($$SELECT users = 2 FROM presence.stats()$$);
-- For status messages, the write.
GRANT EXECUTE ON FUNCTION presence.set_status_message(text, text, timestamptz)
  TO presence_app;
SET ROLE presence_app;
SELECT presence.set_status_message('lena', 'In a meeting', now() + interval '1 hour');
SELECT presence.status_message('lena');
SELECT presence.set_status_message('lena', NULL);
RESET ROLE;
-- ... and, if it needs them, sessions(), which lists visible users' only.
GRANT EXECUTE ON FUNCTION presence.sessions(text) TO presence_app;
SET ROLE presence_app;
SELECT user_id, session_id FROM presence.sessions() ORDER BY user_id;
SELECT count(*) AS hidden_sessions FROM presence.sessions('hidden');
RESET ROLE;

-- The GRANTs docs/sql.md shows for the relay's role.
GRANT EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.heartbeat_many(text[], text[], boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean),
  presence.stats()
  TO presence_relay;
-- For channels: join, leave and update for its sockets' channels,
-- members() for the per-channel state it sends, occupancy() for counts;
-- not channels().
GRANT EXECUTE ON FUNCTION
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.occupancy(text)
  TO presence_relay;
SET ROLE presence_relay;
SELECT presence.connect('relayed', 'ws-1', NULL, true);
SELECT presence.heartbeat_many(ARRAY['relayed'], ARRAY['ws-1'], false);
SELECT user_id, status FROM presence.online_users() ORDER BY user_id;
SELECT users, sessions, ready FROM presence.stats();
SELECT presence.join('room:1', 'relayed', 'ws-1', '{"typing": false}');
SELECT presence.update('room:1', 'relayed', 'ws-1', '{"typing": true}');
SELECT user_id, metas FROM presence.members('room:1') WHERE user_id = 'relayed';
SELECT presence.occupancy('room:1') >= 1 AS counted;
SELECT try($$SELECT * FROM presence.channels('relayed')$$);
SELECT presence.leave('room:1', 'relayed', 'ws-1');
SELECT presence.disconnect('relayed', 'ws-1');
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT * FROM presence.users$$);
SELECT try($$SELECT * FROM presence.memberships$$);
RESET ROLE;

-- The tables' owner reads the rows, invisible users' too: visible = false,
-- status as others see it.
SELECT wait_until($$SELECT string_agg(user_id, ',' ORDER BY user_id) = 'hidden,lena'
                      FROM presence.sessions$$);
SELECT user_id, status, visible FROM presence.users
 WHERE user_id IN ('lena', 'hidden') ORDER BY user_id;
SELECT user_id, session_id FROM presence.sessions ORDER BY user_id;

-- A user no longer tracked: last_active comes from the table, for anyone.
SELECT presence.disconnect('lena');
SELECT presence.disconnect('hidden', 'tab'), presence.set_visible('hidden', true);
SELECT wait_until($$SELECT users = 0 FROM presence.stats()$$);
SET ROLE presence_reader;
SELECT presence.status('lena'), presence.last_active('lena') IS NOT NULL AS seen;
RESET ROLE;

DROP ROLE presence_reader;
REVOKE EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.heartbeat_many(text[], text[], boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean),
  presence.sessions(text),
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.channels(text),
  presence.occupancy(text),
  presence.set_status_message(text, text, timestamptz)
  FROM presence_app;
DROP ROLE presence_app;
REVOKE EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.heartbeat_many(text[], text[], boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean),
  presence.stats(),
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.occupancy(text)
  FROM presence_relay;
DROP ROLE presence_relay;
