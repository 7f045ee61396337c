--
-- Write functions and sessions() are not for PUBLIC; reads are.
--
SELECT presence.connect('lena');
CREATE ROLE presence_reader;
CREATE ROLE presence_app;

SET ROLE presence_reader;
SELECT presence.status('lena'), presence.is_online('lena');
SELECT presence.last_active('lena') IS NOT NULL AS seen;
SELECT user_id, status FROM presence.online_users();
SELECT count(*) FROM presence.stats();
SELECT try($$SELECT presence.connect('mallory')$$);
SELECT try($$SELECT presence.heartbeat('lena')$$);
SELECT try($$SELECT presence.disconnect('lena')$$);
SELECT try($$SELECT presence.set_visible('lena', false)$$);
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT * FROM presence.users$$);
SELECT try($$SELECT * FROM presence.sessions$$);
-- Channels: none of their functions is for PUBLIC, reads included (who is
-- in a private room is private).
SELECT try($$SELECT presence.join('room:1', 'mallory')$$);
SELECT try($$SELECT presence.leave('room:1', 'lena')$$);
SELECT try($$SELECT presence.update('room:1', 'lena', NULL, '{}')$$);
SELECT try($$SELECT * FROM presence.members('room:1')$$);
SELECT try($$SELECT * FROM presence.channels('lena')$$);
SELECT try($$SELECT presence.occupancy('room:1')$$);
SELECT try($$SELECT * FROM presence.memberships$$);
RESET ROLE;

-- The GRANTs docs/sql.md shows for an application role.
GRANT EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean)
  TO presence_app;
SET ROLE presence_app;
SELECT presence.connect('mallory');
SELECT presence.heartbeat('mallory');
SELECT presence.disconnect('mallory');
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT presence.join('room:1', 'mallory')$$);
RESET ROLE;

-- The channel GRANTs docs/sql.md shows: the application writes and reads;
-- the relay's role also calls connect, heartbeat and disconnect for its
-- sockets, join, leave and update for their channels, members() for the
-- per-channel state it sends and occupancy() for counts; not channels().
GRANT EXECUTE ON FUNCTION
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.channels(text),
  presence.occupancy(text)
  TO presence_app;
CREATE ROLE presence_relay;
GRANT EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.disconnect(text, text),
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.occupancy(text)
  TO presence_relay;
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
SET ROLE presence_relay;
SELECT presence.connect('rae', 'ws-1', NULL, true);
SELECT presence.join('room:1', 'rae', 'ws-1', '{"typing": false}');
SELECT presence.update('room:1', 'rae', 'ws-1', '{"typing": true}');
SELECT user_id, metas FROM presence.members('room:1') WHERE user_id = 'rae';
SELECT presence.occupancy('room:1') >= 1 AS counted;
SELECT try($$SELECT * FROM presence.channels('rae')$$);
SELECT presence.leave('room:1', 'rae', 'ws-1'), presence.disconnect('rae', 'ws-1');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.channels(text),
  presence.occupancy(text)
  FROM presence_app;
REVOKE EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.disconnect(text, text),
  presence.join(text, text, text, jsonb),
  presence.leave(text, text, text),
  presence.update(text, text, text, jsonb),
  presence.members(text),
  presence.occupancy(text)
  FROM presence_relay;
DROP ROLE presence_relay;

-- A user no longer tracked: last_active comes from the table, for anyone.
SELECT presence.disconnect('lena');
SELECT wait_until($$SELECT users = 0 FROM presence.stats()$$);
SET ROLE presence_reader;
SELECT presence.status('lena'), presence.last_active('lena') IS NOT NULL AS seen;
RESET ROLE;

DROP ROLE presence_reader;
REVOKE EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean)
  FROM presence_app;
DROP ROLE presence_app;
