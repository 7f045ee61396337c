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
RESET ROLE;

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
