--
-- The SQL interface, one call at a time.
--

-- connect returns the session id; a NULL session_id is the user's "default".
SELECT presence.connect('alice');
SELECT presence.connect('alice', 'tab-2', '{"device": "phone"}');
SELECT presence.connect('bob', NULL, NULL, false);
SELECT presence.connect(user_id => 'carol', session_id => 'ws-1');

SELECT presence.status('alice'), presence.is_online('alice'),
       presence.last_active('alice') IS NOT NULL AS has_last_active;

-- Someone never seen is offline, with no last activity.
SELECT presence.status('nobody'), presence.is_online('nobody'),
       presence.last_active('nobody');

SELECT user_id, status, sessions, last_active IS NOT NULL AS has_last_active
  FROM presence.online_users() ORDER BY user_id;

SELECT user_id, session_id, meta, connected_at <= last_heartbeat AS ordered
  FROM presence.sessions() ORDER BY user_id, session_id;
SELECT session_id, meta FROM presence.sessions('alice') ORDER BY session_id;

-- Connecting again refreshes the session: meta stays unless a new one is given.
SELECT presence.connect('alice', 'tab-2');
SELECT meta FROM presence.sessions('alice') WHERE session_id = 'tab-2';
SELECT presence.connect('alice', 'tab-2', '{"device": "tablet", "v": [1, 2]}');
SELECT meta FROM presence.sessions('alice') WHERE session_id = 'tab-2';

-- A heartbeat moves last_heartbeat on and does not add a session.
SELECT last_heartbeat AS before FROM presence.sessions('alice')
 WHERE session_id = 'default' \gset
SELECT presence.heartbeat('alice');
SELECT last_heartbeat > :'before' AS moved, count(*) OVER () AS sessions
  FROM presence.sessions('alice') WHERE session_id = 'default';

-- Activity on a session whose user is already online is kept in the
-- session alone; every reader still sees it, and it outlives the session.
SELECT presence.heartbeat('alice', 'tab-2');
SELECT presence.last_active('alice') AS before \gset
SELECT pg_sleep(0.01);
SELECT presence.heartbeat('alice', 'tab-2');
SELECT presence.last_active('alice') > :'before' AS moved,
       last_active = presence.last_active('alice') AS listed
  FROM presence.online_users() WHERE user_id = 'alice';
SELECT presence.last_active('alice') AS latest \gset
SELECT presence.heartbeat('alice', 'tab-2', false);
SELECT presence.last_active('alice') = :'latest' AS inactive_heartbeat_ignored;

-- A heartbeat for a session the registry does not know opens it.
SELECT presence.heartbeat('dave', 'reconnected', false);
SELECT user_id, status, sessions FROM presence.online_users()
 WHERE user_id = 'dave';

-- disconnect is true once, then false.
SELECT presence.disconnect('alice', 'tab-2') AS first,
       presence.disconnect('alice', 'tab-2') AS second,
       presence.disconnect('nobody') AS unknown;
SELECT user_id, status, sessions,
       presence.last_active('alice') = :'latest' AS kept_last_active
  FROM presence.online_users() WHERE user_id = 'alice';

-- The last session ending makes the user offline at the worker's next tick
-- (presence.reconnect_grace is 0 in this test configuration).
SELECT presence.disconnect('alice');
SELECT wait_until($$SELECT presence.status('alice') = 'offline'$$);
SELECT presence.is_online('alice'), presence.last_active('alice') IS NOT NULL
  AS keeps_last_active;

-- Calls are not transactional: a rollback does not undo them.
BEGIN;
SELECT presence.connect('erin');
ROLLBACK;
SELECT presence.status('erin');

-- The worker mirrors the registry into the tables, every
-- presence.flush_interval (100ms in this test configuration).
SELECT wait_until($$SELECT array_agg(user_id ORDER BY user_id) = '{bob,carol,dave,erin}'
                      FROM presence.sessions$$);
SELECT user_id, session_id, meta, bound FROM presence.sessions
 ORDER BY user_id, session_id;
SELECT wait_until($$SELECT count(*) = 5 AND bool_and(is_online = (user_id <> 'alice'))
                      FROM presence.users$$);
SELECT user_id, is_online, status, visible, last_active IS NOT NULL AS has_last_active
  FROM presence.users ORDER BY user_id;

-- stats() counts a tick's notifications once its transaction committed.
SELECT wait_until($$SELECT notifications >= 5 FROM presence.stats()$$);
SELECT users >= 4 AS users, sessions, max_sessions, sweeps > 0 AS sweeping,
       notifications >= 5 AS notified, flushes > 0 AS flushed,
       worker_pid = (SELECT pid FROM pg_stat_activity
                      WHERE backend_type = 'presence worker') AS worker_seen,
       ready
  FROM presence.stats();

-- Clean up for the next test.
SELECT presence.disconnect(user_id, session_id)
  FROM presence.sessions() ORDER BY 1;
SELECT wait_until($$SELECT count(*) = 0 FROM presence.online_users()$$);
