--
-- Every bad input gets an ERROR with a SQLSTATE, and changes nothing.
--
SELECT presence.connect('victor', 'keep', '{"k": 1}');
SELECT sessions AS sessions_before FROM presence.stats() \gset

-- NULL, empty and oversized ids.
SELECT try($$SELECT presence.connect(NULL)$$);
SELECT try($$SELECT presence.connect('')$$);
SELECT try($$SELECT presence.connect(repeat('x', 257))$$);
SELECT try($$SELECT presence.connect('victor', '')$$);
SELECT try($$SELECT presence.connect('victor', repeat('s', 257))$$);
SELECT try($$SELECT presence.heartbeat(NULL)$$);
SELECT try($$SELECT presence.heartbeat('')$$);
SELECT try($$SELECT presence.heartbeat(repeat('x', 300), 's')$$);
SELECT try($$SELECT presence.disconnect(NULL)$$);
SELECT try($$SELECT presence.disconnect('victor', '')$$);
SELECT try($$SELECT presence.set_visible(NULL, false)$$);
SELECT try($$SELECT presence.set_visible('', false)$$);
SELECT try($$SELECT presence.status(NULL)$$);
SELECT try($$SELECT presence.is_online('')$$);
SELECT try($$SELECT presence.last_active(repeat('x', 257))$$);
SELECT try($$SELECT * FROM presence.sessions('')$$);

-- 256 bytes is the limit, counted in bytes, not characters.
SELECT length(presence.connect(repeat('x', 256), repeat('s', 256)));
SELECT try($$SELECT presence.connect(repeat('é', 129))$$);
SELECT presence.disconnect(repeat('x', 256), repeat('s', 256));

-- NULL flags.
SELECT try($$SELECT presence.connect('victor', 'keep', NULL, NULL)$$);
SELECT try($$SELECT presence.heartbeat('victor', 'keep', NULL)$$);
SELECT try($$SELECT presence.set_visible('victor', NULL)$$);

-- meta must be a JSON object of at most 1 kB.
SELECT try($$SELECT presence.connect('victor', 'keep', '[1, 2]')$$);
SELECT try($$SELECT presence.connect('victor', 'keep', '"text"')$$);
SELECT try($$SELECT presence.connect('victor', 'keep', '42')$$);
SELECT try($$SELECT presence.connect('victor', 'keep', 'null')$$);
SELECT try($$SELECT presence.connect('victor', 'keep', jsonb_build_object('pad', repeat('x', 1100)))$$);
SELECT try($$SELECT presence.connect('victor', 'keep', '{"unterminated": ')$$);
-- A big meta within the limit is fine.
SELECT presence.connect('victor', 'big', jsonb_build_object('pad', repeat('x', 1000)));
SELECT length(meta::text) FROM presence.sessions('victor') WHERE session_id = 'big';
SELECT presence.disconnect('victor', 'big');

-- Nothing above changed the registry: the same session, with its meta.
SELECT sessions = :sessions_before AS unchanged FROM presence.stats();
SELECT user_id, session_id, meta FROM presence.sessions() ORDER BY 1, 2;

-- A full registry: presence.max_sessions is 1000 in this test configuration.
SELECT count(presence.connect('fill' || i))
  FROM generate_series(1, 1000 - :sessions_before) i;
SELECT sessions, max_sessions FROM presence.stats();
SELECT try($$SELECT presence.connect('one-too-many')$$);
SELECT try($$SELECT presence.heartbeat('one-too-many')$$);
\set VERBOSITY default
SELECT presence.connect('fill', 'one-more');
-- Existing sessions still work, and the failed calls left nothing behind.
SELECT presence.connect('fill1'), presence.heartbeat('victor', 'keep');
SELECT presence.status('one-too-many'), sessions FROM presence.stats();
SELECT count(presence.disconnect('fill' || i))
  FROM generate_series(1, 1000 - :sessions_before) i;
SELECT wait_until($$SELECT sessions = 1 FROM presence.stats()$$);
SELECT presence.connect('one-too-many');
SELECT presence.disconnect('one-too-many'), presence.disconnect('victor', 'keep');

-- Another database: the registry belongs to presence.database only.  Without
-- the extension, PostgreSQL itself finds no schema presence; with it, the
-- functions say where presence is tracked.
CREATE DATABASE presence_other;
\c presence_other
\set VERBOSITY sqlstate
SELECT presence.connect('x');
\set VERBOSITY default
CREATE EXTENSION presence;
SELECT presence.connect('x');
\set VERBOSITY sqlstate
SELECT presence.connect('x');
\set VERBOSITY default
SELECT presence.status('x');
SELECT ready FROM presence.stats();
-- Channels too.
\set VERBOSITY sqlstate
SELECT presence.join('room:1', 'x');
SELECT * FROM presence.members('room:1');
SELECT presence.occupancy('room:1');
\set VERBOSITY default
\c postgres
DROP DATABASE presence_other;
