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
SELECT try($$SELECT presence.disconnect('lena')$$);
SELECT try($$SELECT presence.set_visible('lena', false)$$);
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT * FROM presence.stats()$$);
SELECT try($$SELECT presence._reset_registry()$$);
SELECT try($$SELECT * FROM presence.users$$);
SELECT try($$SELECT * FROM presence.sessions$$);
SELECT try($$SELECT * FROM presence.journal$$);
SELECT try($$SELECT nextval('presence.notification_seq')$$);
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
SELECT try($$SELECT * FROM presence.stats()$$);
SELECT wait_until($$SELECT presence.status('mallory') = 'offline'$$);
SELECT try($$SELECT * FROM presence.users$$);
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
  presence.disconnect(text, text),
  presence.set_visible(text, boolean),
  presence.stats()
  TO presence_relay;
SET ROLE presence_relay;
SELECT presence.connect('relayed', 'ws-1', NULL, true);
SELECT user_id, status FROM presence.online_users() ORDER BY user_id;
SELECT users, sessions, ready FROM presence.stats();
SELECT presence.disconnect('relayed', 'ws-1');
SELECT try($$SELECT * FROM presence.sessions()$$);
SELECT try($$SELECT * FROM presence.users$$);
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
  presence.disconnect(text, text),
  presence.set_visible(text, boolean),
  presence.sessions(text)
  FROM presence_app;
DROP ROLE presence_app;
REVOKE EXECUTE ON FUNCTION
  presence.connect(text, text, jsonb, boolean),
  presence.heartbeat(text, text, boolean),
  presence.disconnect(text, text),
  presence.set_visible(text, boolean),
  presence.stats()
  FROM presence_relay;
DROP ROLE presence_relay;
