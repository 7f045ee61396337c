--
-- heartbeat_many(user_ids, session_ids, active): how many were live; the
-- others are opened as heartbeat() opens them.  Every bad input is an
-- ERROR with its SQLSTATE that changes nothing, and so is a batch that a
-- limit refuses: nothing of it is applied.
--

-- Unknown sessions are opened (none was live), then found live.
SELECT presence.heartbeat_many(ARRAY['hm1', 'hm2', 'hm2'], ARRAY['a', 'a', 'b']);
SELECT presence.heartbeat_many(ARRAY['hm1', 'hm2', 'hm2'], ARRAY['a', 'a', 'b']);
SELECT user_id, session_id, meta FROM presence.sessions() WHERE user_id LIKE 'hm%' ORDER BY 1, 2;
SELECT user_id, status, sessions FROM presence.online_users() WHERE user_id LIKE 'hm%' ORDER BY 1;

-- Mixed: two live, one new.  A pair given twice counts as live the second
-- time, as two heartbeat() calls would find it.
SELECT presence.heartbeat_many(ARRAY['hm1', 'hm3', 'hm2'], ARRAY['a', 'a', 'b']);
SELECT presence.heartbeat_many(ARRAY['hm4', 'hm4', 'hm4'], ARRAY['x', 'x', 'y']);
SELECT count(*) FROM presence.sessions('hm4');

-- Empty arrays: nothing to do.  Any lower bound will do: pairs go by
-- position.
SELECT presence.heartbeat_many('{}', '{}');
SELECT presence.heartbeat_many('{}'::text[], '{}'::text[], false);
SELECT presence.heartbeat_many('[0:1]={hm1,hm2}'::text[], '[5:6]={a,a}'::text[]);

-- The session heartbeat() uses when given none is 'default', by name.
SELECT presence.heartbeat('hm5');
SELECT presence.heartbeat_many(ARRAY['hm5'], ARRAY['default']);

-- A heartbeat without activity keeps a session alive and leaves the user's
-- last activity as it was.
SELECT last_active AS hm1_active FROM presence.online_users() WHERE user_id = 'hm1' \gset
SELECT last_heartbeat AS hm1_heartbeat FROM presence.sessions('hm1') \gset
SELECT pg_sleep(0.01);
SELECT presence.heartbeat_many(ARRAY['hm1'], ARRAY['a'], false);
SELECT last_active = :'hm1_active' AS activity_unchanged FROM presence.online_users() WHERE user_id = 'hm1';
SELECT last_heartbeat > :'hm1_heartbeat' AS heartbeat_moved FROM presence.sessions('hm1');
SELECT presence.heartbeat_many(ARRAY['hm1'], ARRAY['a']);
SELECT last_active > :'hm1_active' AS activity_moved FROM presence.online_users() WHERE user_id = 'hm1';

-- Bad input.  Each batch below starts with live sessions and a new one, so
-- that a call that changed anything would show it.
CREATE TEMP TABLE before AS
  SELECT user_id, session_id, last_heartbeat FROM presence.sessions();
SELECT sessions AS sessions_before FROM presence.stats() \gset
SELECT pg_sleep(0.01);
\set VERBOSITY sqlstate
-- NULL arrays, NULL active.
SELECT presence.heartbeat_many(NULL, ARRAY['a']);
SELECT presence.heartbeat_many(ARRAY['hm1'], NULL);
SELECT presence.heartbeat_many(ARRAY['hm1'], ARRAY['a'], NULL);
-- Different lengths, either way round.
SELECT presence.heartbeat_many(ARRAY['hm1', 'hm2', 'new1'], ARRAY['a', 'a']);
SELECT presence.heartbeat_many(ARRAY['hm1'], ARRAY['a', 'b']);
SELECT presence.heartbeat_many('{}', ARRAY['a']);
-- NULL elements, in either array, anywhere.
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1', NULL], ARRAY['a', 'a', 'a']);
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1', 'hm2'], ARRAY['a', 'a', NULL]);
SELECT presence.heartbeat_many(ARRAY[NULL, 'hm1'], ARRAY['a', 'a']);
-- Empty ids.
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1', ''], ARRAY['a', 'a', 'a']);
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1'], ARRAY['a', '']);
-- Ids over 256 bytes (counted in bytes).
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1', repeat('x', 257)], ARRAY['a', 'a', 'a']);
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1'], ARRAY['a', repeat('é', 129)]);
-- Arrays of more than one dimension.
SELECT presence.heartbeat_many('{{hm1,hm2},{new1,new2}}', '{{a,a},{a,a}}');
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1'], '{{a},{a}}');
\set VERBOSITY default
-- What the errors say.
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1', NULL], ARRAY['a', 'a', 'a']);
SELECT presence.heartbeat_many('[0:2]={hm1,new1,""}'::text[], ARRAY['a', 'a', 'a']);
SELECT presence.heartbeat_many(ARRAY['hm1', 'new1'], ARRAY['a', repeat('s', 300)]);
SELECT presence.heartbeat_many(ARRAY['hm1', 'hm2', 'new1'], ARRAY['a', 'a']);
SELECT presence.heartbeat_many('{{hm1,hm2},{new1,new2}}', '{{a,a},{a,a}}');
-- 256 bytes is fine.
SELECT presence.heartbeat_many(ARRAY[repeat('x', 256)], ARRAY[repeat('s', 256)]);
SELECT presence.disconnect(repeat('x', 256), repeat('s', 256));
SELECT wait_until($$SELECT sessions = $$ || :sessions_before || $$ FROM presence.stats()$$);

-- None of the bad calls changed anything: no session opened, no heartbeat
-- recorded.
SELECT sessions = :sessions_before AS unchanged FROM presence.stats();
SELECT count(*) AS new_sessions FROM presence.sessions() WHERE user_id LIKE 'new%';
SELECT count(*) AS heartbeats_moved
  FROM presence.sessions() s JOIN before b USING (user_id, session_id)
 WHERE s.last_heartbeat <> b.last_heartbeat;

-- presence.max_sessions_per_user (50 here): a batch that would open a 51st
-- session of one user fails with 53400 and changes nothing, the live
-- sessions it names and the other users' new sessions included.
SELECT count(presence.connect('hmgreedy', 's' || i)) FROM generate_series(1, 49) i;
DROP TABLE before;
CREATE TEMP TABLE before AS
  SELECT user_id, session_id, last_heartbeat FROM presence.sessions();
SELECT sessions AS sessions_before FROM presence.stats() \gset
SELECT pg_sleep(0.01);
SELECT presence.heartbeat_many(ARRAY['hm1', 'hmgreedy', 'hmnew', 'hmgreedy', 'hmgreedy'],
                               ARRAY['a', 's1', 'a', 's50', 's51']);
SELECT sessions = :sessions_before AS unchanged FROM presence.stats();
SELECT count(*) AS greedy_sessions FROM presence.sessions('hmgreedy');
SELECT count(*) AS hmnew_sessions FROM presence.sessions('hmnew');
SELECT count(*) AS heartbeats_moved
  FROM presence.sessions() s JOIN before b USING (user_id, session_id)
 WHERE s.last_heartbeat <> b.last_heartbeat;
SELECT presence.status('hmnew');
-- The 50th fits, given twice or not; live sessions of a full user can be
-- heartbeated in a batch.
SELECT presence.heartbeat_many(ARRAY['hm1', 'hmgreedy', 'hmnew', 'hmgreedy', 'hmgreedy'],
                               ARRAY['a', 's1', 'a', 's50', 's50']);
SELECT count(*) AS greedy_sessions FROM presence.sessions('hmgreedy');
SELECT presence.heartbeat_many(ARRAY['hmgreedy', 'hmgreedy'], ARRAY['s1', 's50']);
-- One session ended: a batch may open one again.
SELECT presence.disconnect('hmgreedy', 's1');
SELECT presence.heartbeat_many(ARRAY['hmgreedy', 'hmgreedy'], ARRAY['s51', 's52']);
SELECT presence.heartbeat_many(ARRAY['hmgreedy'], ARRAY['s51']);
SELECT count(*) AS greedy_sessions FROM presence.sessions('hmgreedy');
SELECT count(presence.disconnect('hmgreedy', session_id)) FROM presence.sessions('hmgreedy');

-- A full registry (presence.max_sessions is 1000 here): a batch that needs
-- two more sessions than there is room for fails after waiting a tick, and
-- opens none; one that fits opens all.
SELECT sessions AS sessions_before FROM presence.stats() \gset
SELECT presence.heartbeat_many(array_agg('hmfill' || i), array_agg('a'::text))
  FROM generate_series(1, 999 - :sessions_before) i;
SELECT sessions, max_sessions FROM presence.stats();
SELECT last_heartbeat AS hm1_heartbeat FROM presence.sessions('hm1') \gset
SELECT presence.heartbeat_many(ARRAY['hm1', 'hmfull1', 'hmfull2'], ARRAY['a', 'a', 'a']);
SELECT sessions, max_sessions FROM presence.stats();
SELECT presence.status('hmfull1'), presence.status('hmfull2');
SELECT last_heartbeat = :'hm1_heartbeat' AS hm1_unchanged FROM presence.sessions('hm1');
SELECT presence.heartbeat_many(ARRAY['hm1', 'hmfull1'], ARRAY['a', 'a']);
SELECT sessions, max_sessions FROM presence.stats();
SELECT count(*) FILTER (WHERE presence.disconnect('hmfill' || i, 'a'))
  FROM generate_series(1, 999 - :sessions_before) i;
SELECT presence.disconnect('hmfull1', 'a');

-- A batch leaves the registry as the same heartbeat() calls one by one
-- would: run the same story on users a:* one call at a time and on users
-- b:* in batches, and compare.
CREATE TEMP TABLE story (step int, user_id text, session_id text, active boolean);
INSERT INTO story VALUES
  (1, 'ann', 's1', true), (1, 'ann', 's2', false), (1, 'bob', 's1', false),
  (1, 'ann', 's1', true), (1, 'cid', 's1', true), (1, 'hid', 's1', true),
  (2, 'ann', 's2', true), (2, 'bob', 's1', true), (2, 'dan', 's1', false),
  (2, 'dan', 's1', false), (2, 'hid', 's2', false),
  (3, 'bob', 's2', false), (3, 'cid', 's1', false), (3, 'eve', 's9', false);
SELECT presence.set_visible('a:hid', false), presence.set_visible('b:hid', false);
SELECT presence.connect('a:cid', 's1', '{"m": 1}'), presence.connect('b:cid', 's1', '{"m": 1}');
-- Activity and its absence go in separate batches (active is one flag per
-- call): within a step, the active ones first, then the others.
CREATE FUNCTION one_by_one(prefix text, s int) RETURNS void LANGUAGE sql AS $$
  SELECT count(presence.heartbeat(prefix || user_id, session_id, active))
    FROM (SELECT * FROM story WHERE step = s ORDER BY NOT active) t $$;
CREATE FUNCTION batched(prefix text, s int) RETURNS int LANGUAGE sql AS $$
  SELECT coalesce(sum(presence.heartbeat_many(u, ss, a)), 0)::int
    FROM (SELECT array_agg(prefix || user_id ORDER BY ord) AS u,
                 array_agg(session_id ORDER BY ord) AS ss, active AS a
            FROM (SELECT *, row_number() OVER () AS ord FROM story WHERE step = s) t
           GROUP BY active ORDER BY NOT active) b $$;
CREATE FUNCTION state(prefix text) RETURNS TABLE (user_id text, status text,
    visible_sessions int, session_ids text, meta jsonb) LANGUAGE sql AS $$
  SELECT u, presence.status(prefix || u),
         (SELECT sessions FROM presence.online_users() o WHERE o.user_id = prefix || u),
         (SELECT string_agg(session_id, ',' ORDER BY session_id)
            FROM presence.sessions(prefix || u)),
         (SELECT jsonb_agg(meta ORDER BY session_id) FROM presence.sessions(prefix || u))
    FROM (SELECT DISTINCT user_id AS u FROM story) users ORDER BY u $$;
SELECT one_by_one('a:', 1), batched('b:', 1);
SELECT one_by_one('a:', 2), batched('b:', 2);
SELECT one_by_one('a:', 3), batched('b:', 3);
SELECT * FROM state('b:');
SELECT count(*) AS differences FROM (
  (SELECT * FROM state('a:') EXCEPT SELECT * FROM state('b:'))
  UNION ALL
  (SELECT * FROM state('b:') EXCEPT SELECT * FROM state('a:'))) d;
-- Invisible users' sessions are counted live like anyone's.
SELECT presence.heartbeat_many(ARRAY['b:hid', 'b:hid'], ARRAY['s1', 's2']);
SELECT user_id FROM presence.online_users() WHERE user_id LIKE '_:hid';

-- Clean up.
SELECT presence.set_visible('a:hid', true), presence.set_visible('b:hid', true);
SELECT count(*) FILTER (WHERE presence.disconnect(user_id, session_id))
  FROM presence.sessions() WHERE user_id LIKE 'hm%' OR user_id LIKE '_:%';
SELECT wait_until($$SELECT users = 0 FROM presence.stats()$$);

-- tick_parts(): the last tick and the slowest recent one; the parts follow
-- each other within the whole (the worker has ticked by now).
SELECT presence.heartbeat_many(ARRAY['hmtick'], ARRAY['a']);
SELECT wait_until($$SELECT notifications > 0 FROM presence.tick_parts() WHERE tick = 'last'$$);
SELECT tick, total_ms > 0 AS timed,
       sweep_ms >= 0 AND collect_ms >= activity_ms AND activity_ms >= 0
         AND lock_wait_ms >= 0 AND journal_ms >= 0 AND notify_ms >= 0
         AND commit_ms >= queue_ms AND queue_ms >= 0 AS parts,
       other_ms >= 0 AS within_the_whole
  FROM presence.tick_parts() ORDER BY tick;
SELECT presence.disconnect('hmtick', 'a');
SELECT wait_until($$SELECT users = 0 FROM presence.stats()$$);
