--
-- One user's share of the registry: presence.max_sessions_per_user (50,
-- the default, here).  Beyond it a new session fails with 53400 and
-- changes nothing; a live session can always be refreshed.
--
SELECT count(presence.connect('greedy', 's' || i)) FROM generate_series(1, 50) i;
SELECT sessions AS before FROM presence.stats() \gset

SELECT presence.connect('greedy', 's51', '{"one": "more"}');
SELECT try($$SELECT presence.heartbeat('greedy', 's51')$$);
SELECT try($$SELECT presence.connect('greedy', NULL)$$);

-- Nothing changed.
SELECT count(*) AS greedy_sessions FROM presence.sessions('greedy');
SELECT sessions = :before AS unchanged FROM presence.stats();
SELECT count(*) AS s51 FROM presence.sessions('greedy') WHERE session_id = 's51';

-- Refreshing a live session, with or without new meta, still works.
SELECT presence.connect('greedy', 's1', '{"v": 2}');
SELECT presence.heartbeat('greedy', 's50', false);
SELECT meta FROM presence.sessions('greedy') WHERE session_id = 's1';

-- Other users are not affected.
SELECT presence.connect('modest');

-- Once one ends, there is room for one more.
SELECT presence.disconnect('greedy', 's1');
SELECT presence.connect('greedy', 's51');
SELECT try($$SELECT presence.connect('greedy', 's52')$$);
SELECT count(*) AS greedy_sessions FROM presence.sessions('greedy');

SELECT count(presence.disconnect(user_id, session_id))
  FROM presence.sessions() WHERE user_id IN ('greedy', 'modest');
SELECT wait_until($$SELECT users = 0 FROM presence.stats()$$);
