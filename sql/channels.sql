--
-- Channels (1.1): join, leave, update, members, channels, occupancy.
--

-- join opens the session if it is not live (like heartbeat) and is
-- activity: a user never seen is online at once.  session_id defaults to
-- 'default', meta to none.
SELECT presence.join('room:1', 'amy');
SELECT presence.status('amy'), user_id, session_id FROM presence.sessions('amy');
SELECT user_id, status, sessions, metas, last_active = presence.last_active(user_id) AS last_active
  FROM presence.members('room:1');
SELECT * FROM presence.channels('amy');
SELECT presence.occupancy('room:1');

-- A second session of amy, with meta, and bob.  One member per user; its
-- metas are its sessions' in join order, null for a session without meta.
SELECT presence.join('room:1', 'amy', 'phone', '{"page": "/inbox"}');
SELECT presence.join(channel => 'room:1', user_id => 'bob', meta => '{"typing": false}');
SELECT user_id, status, sessions, metas FROM presence.members('room:1') ORDER BY user_id;
SELECT presence.occupancy('room:1');

-- metas holds one entry per session however many: 40 sessions, every third
-- without meta, make an array that reads back as written.
SELECT count(presence.join('room:many', 'mo', 's' || i,
                           CASE WHEN i % 3 <> 0 THEN jsonb_build_object('i', i, 'pad', repeat('x', i)) END))
  FROM generate_series(1, 40) i;
SELECT sessions, jsonb_array_length(metas) AS length, metas->0 AS first, metas->2 AS third,
       metas->38 AS thirty_ninth, metas @> '[{"i": 40}]' AS has_40,
       metas::text::jsonb = metas AS reparsed_equal,
       (SELECT array_agg(coalesce(m->>'i', '-') ORDER BY n) FROM jsonb_array_elements(metas) WITH ORDINALITY AS e(m, n)) AS order_kept
  FROM presence.members('room:many');
SELECT count(presence.disconnect('mo', 's' || i)) FROM generate_series(1, 40) i;

-- Joining again: meta is replaced when given, kept when not.
SELECT presence.join('room:1', 'amy', 'phone');
SELECT metas FROM presence.members('room:1') WHERE user_id = 'amy';
SELECT presence.join('room:1', 'amy', 'phone', '{"page": "/settings"}');
SELECT metas FROM presence.members('room:1') WHERE user_id = 'amy';

-- update replaces the meta of a member's session; false if not a member.
SELECT presence.update('room:1', 'bob', NULL, '{"typing": true}');
SELECT metas FROM presence.members('room:1') WHERE user_id = 'bob';
SELECT presence.update('room:1', 'bob', 'other-tab', '{"typing": true}') AS not_a_session,
       presence.update('room:2', 'bob', NULL, '{"typing": true}') AS not_in_room_2,
       presence.update('room:1', 'nobody', NULL, '{"typing": true}') AS nobody;
SELECT count(*) AS other_tab_not_opened FROM presence.sessions('bob') WHERE session_id = 'other-tab';

-- A session in several channels; channels() says where a user is.
SELECT presence.join('room:2', 'amy', 'phone'), presence.join('doc:7f3a', 'amy', 'phone');
SELECT channel, sessions FROM presence.channels('amy') ORDER BY channel;
SELECT presence.occupancy('room:2'), presence.occupancy('doc:7f3a'),
       presence.occupancy('room:none');
SELECT count(*) FROM presence.members('room:none');
SELECT count(*) FROM presence.channels('nobody');

-- leave: true once, then false; the session stays live.
SELECT presence.leave('room:2', 'amy', 'phone') AS first,
       presence.leave('room:2', 'amy', 'phone') AS second,
       presence.leave('room:2', 'nobody') AS nobody;
SELECT count(*) AS phone_still_live FROM presence.sessions('amy') WHERE session_id = 'phone';

-- A session's membership is found among its own channels when it has a
-- few, through the tables when it has more: both find the channel of that
-- exact name, whatever names are alike ('w:1', 'w:10', 'w:1 ').  Each
-- update lands on its own channel, each leave ends only its own.
SELECT presence.join('w:1', 'wes'), presence.join('w:10', 'wes'), presence.join('w:1 ', 'wes');
SELECT presence.update('w:10', 'wes', NULL, '{"in": "w:10"}'),
       presence.update('w:1 ', 'wes', NULL, '{"in": "w:1 "}'),
       presence.update('w:1', 'wes', NULL, '{"in": "w:1"}'),
       presence.update('w:', 'wes', NULL, '{"in": "w:"}') AS not_in_w,
       presence.update('w:100', 'wes', NULL, '{"in": "w:100"}') AS not_in_w100;
SELECT '[' || channel || ']' AS channel, (SELECT metas FROM presence.members(channel)) AS metas
  FROM presence.channels('wes') ORDER BY channel;
SELECT count(presence.join('w:' || i, 'wes', NULL, jsonb_build_object('at', i))) AS five_more
  FROM generate_series(2, 6) i;
SELECT presence.update('w:10', 'wes', NULL, '{"again": "w:10"}'),
       presence.update('w:6', 'wes', NULL, '{"again": "w:6"}'),
       presence.update('w:7', 'wes', NULL, '{"again": "w:7"}') AS not_in_w7;
SELECT presence.leave('w:1', 'wes') AS left_w1, presence.leave('w:1', 'wes') AS again;
SELECT wait_until($$SELECT NOT EXISTS (SELECT FROM presence.channels('wes') WHERE channel = 'w:1')$$);
SELECT '[' || channel || ']' AS channel, (SELECT metas FROM presence.members(channel)) AS metas
  FROM presence.channels('wes') ORDER BY channel;
SELECT count(presence.leave(channel, 'wes')) AS left_all FROM presence.channels('wes');
SELECT wait_until($$SELECT NOT EXISTS (SELECT FROM presence.channels('wes'))$$);
SELECT presence.disconnect('wes');
-- With no reconnect grace (this test configuration), amy leaves room:2 at
-- the worker's next tick (until then reads show her, as for a user's
-- status), and the channel, empty, goes with her.
SELECT wait_until($$SELECT presence.occupancy('room:2') = 0$$);
SELECT count(*) AS listed FROM presence.members('room:2');
SELECT wait_until($$SELECT channels = 2 FROM presence.stats()$$);
SELECT memberships, channels FROM presence.stats();

-- Leaving with one of two sessions keeps the member, with one session.
SELECT presence.leave('room:1', 'amy');
SELECT user_id, sessions, metas FROM presence.members('room:1') ORDER BY user_id;

-- A session's end ends its memberships, however it ends.
SELECT presence.disconnect('amy', 'phone');
SELECT count(*) FROM presence.channels('amy') WHERE sessions > 0;
SELECT wait_until($$SELECT presence.occupancy('room:1') = 1 AND presence.occupancy('doc:7f3a') = 0$$);
SELECT user_id FROM presence.members('room:1');
SELECT count(*) FROM presence.channels('amy');

-- The worker mirrors memberships into presence.memberships.
SELECT presence.join('room:3', 'cat', 'web', '{"n": 1}');
SELECT wait_until($$SELECT count(*) = 2 FROM presence.memberships$$);
SELECT channel, user_id, session_id, meta, joined_at IS NOT NULL AS has_joined_at
  FROM presence.memberships ORDER BY channel, user_id;
SELECT presence.update('room:3', 'cat', 'web', '{"n": 2}');
SELECT wait_until($$SELECT meta = '{"n": 2}' FROM presence.memberships WHERE user_id = 'cat'$$);
SELECT presence.disconnect('cat', 'web');
SELECT wait_until($$SELECT count(*) = 1 FROM presence.memberships$$);
SELECT channel, user_id FROM presence.memberships;

-- Invisible users are in no channel, to everyone else; channels() answers
-- for them as the registry holds them.
SELECT presence.join('room:1', 'ivy', 'tab', '{"page": "/"}');
SELECT presence.occupancy('room:1');
SELECT presence.set_visible('ivy', false);
SELECT user_id FROM presence.members('room:1') ORDER BY 1;
SELECT presence.occupancy('room:1');
SELECT channel, sessions FROM presence.channels('ivy');
-- Joins and updates while invisible stay hidden too.
SELECT presence.join('room:4', 'ivy', 'tab'), presence.update('room:1', 'ivy', 'tab', '{"page": "/x"}');
SELECT presence.occupancy('room:4'), count(*) AS listed FROM presence.members('room:4');
SELECT presence.set_visible('ivy', true);
SELECT user_id, metas FROM presence.members('room:1') ORDER BY 1;
SELECT presence.occupancy('room:1'), presence.occupancy('room:4');
SELECT presence.disconnect('ivy', 'tab');

-- stats() counts memberships and channels (ivy's leave room:4, empty, at
-- the worker's next tick).
SELECT wait_until($$SELECT channels = 1 FROM presence.stats()$$);
SELECT memberships, max_memberships, channels FROM presence.stats();

-- Clean up for the next test.
SELECT presence.disconnect(user_id, session_id) FROM presence.sessions() ORDER BY 1;
SELECT wait_until($$SELECT memberships = 0 AND channels = 0 AND users = 0 FROM presence.stats()$$);
SELECT wait_until($$SELECT count(*) = 0 FROM presence.memberships$$);

--
-- Every bad input gets an ERROR with a SQLSTATE, and changes nothing.
--
SELECT presence.join('room:k', 'kit', 'keep', '{"k": 1}');
SELECT memberships AS memberships_before, channels AS channels_before,
       sessions AS sessions_before FROM presence.stats() \gset

-- Channel names: NULL, empty, over 256 bytes.
SELECT try($$SELECT presence.join(NULL, 'kit')$$);
SELECT try($$SELECT presence.join('', 'kit')$$);
SELECT try($$SELECT presence.join(repeat('c', 257), 'kit')$$);
SELECT try($$SELECT presence.join(repeat('é', 129), 'kit')$$);
SELECT try($$SELECT presence.leave(NULL, 'kit')$$);
SELECT try($$SELECT presence.leave('', 'kit')$$);
SELECT try($$SELECT presence.leave(repeat('c', 257), 'kit')$$);
SELECT try($$SELECT presence.update(NULL, 'kit', 'keep', '{}')$$);
SELECT try($$SELECT presence.update('', 'kit', 'keep', '{}')$$);
SELECT try($$SELECT presence.update(repeat('c', 257), 'kit', 'keep', '{}')$$);
SELECT try($$SELECT * FROM presence.members(NULL)$$);
SELECT try($$SELECT * FROM presence.members('')$$);
SELECT try($$SELECT * FROM presence.members(repeat('c', 257))$$);
SELECT try($$SELECT presence.occupancy(NULL)$$);
SELECT try($$SELECT presence.occupancy('')$$);
SELECT try($$SELECT presence.occupancy(repeat('c', 257))$$);

-- User and session ids, as for sessions.
SELECT try($$SELECT presence.join('room:k', NULL)$$);
SELECT try($$SELECT presence.join('room:k', '')$$);
SELECT try($$SELECT presence.join('room:k', repeat('u', 257))$$);
SELECT try($$SELECT presence.join('room:k', 'kit', '')$$);
SELECT try($$SELECT presence.join('room:k', 'kit', repeat('s', 257))$$);
SELECT try($$SELECT presence.leave('room:k', NULL)$$);
SELECT try($$SELECT presence.leave('room:k', 'kit', '')$$);
SELECT try($$SELECT presence.update('room:k', NULL, 'keep', '{}')$$);
SELECT try($$SELECT presence.update('room:k', 'kit', '', '{}')$$);
SELECT try($$SELECT * FROM presence.channels(NULL)$$);
SELECT try($$SELECT * FROM presence.channels('')$$);
SELECT try($$SELECT * FROM presence.channels(repeat('u', 257))$$);

-- meta: a JSON object of at most 1 kB; update requires one.
SELECT try($$SELECT presence.join('room:k', 'kit', 'keep', '[1, 2]')$$);
SELECT try($$SELECT presence.join('room:k', 'kit', 'keep', '"text"')$$);
SELECT try($$SELECT presence.join('room:k', 'kit', 'keep', 'null')$$);
SELECT try($$SELECT presence.join('room:k', 'kit', 'keep', jsonb_build_object('pad', repeat('x', 1100)))$$);
SELECT try($$SELECT presence.update('room:k', 'kit', 'keep', NULL)$$);
SELECT try($$SELECT presence.update('room:k', 'kit', 'keep', '[]')$$);
SELECT try($$SELECT presence.update('room:k', 'kit', 'keep', '1')$$);
SELECT try($$SELECT presence.update('room:k', 'kit', 'keep', jsonb_build_object('pad', repeat('x', 1100)))$$);
-- A new session whose join fails is not opened either.
SELECT try($$SELECT presence.join('room:k', 'kit', 'new', '[1]')$$);
SELECT try($$SELECT presence.join('room:k', 'newcomer', NULL, '[1]')$$);

-- 256 bytes is the limit for a channel name, counted in bytes.
SELECT presence.join(repeat('c', 256), 'kit', 'keep');
SELECT length(channel) FROM presence.channels('kit') ORDER BY 1;
SELECT presence.leave(repeat('c', 256), 'kit', 'keep');
SELECT wait_until(format('SELECT channels = %s FROM presence.stats()', :channels_before));

-- A big meta within the limit is fine.
SELECT presence.update('room:k', 'kit', 'keep', jsonb_build_object('pad', repeat('x', 1000)));
SELECT length(metas->>0) FROM presence.members('room:k');
SELECT presence.update('room:k', 'kit', 'keep', '{"k": 1}');

-- Nothing above changed the registry.
SELECT memberships = :memberships_before AS memberships_unchanged,
       channels = :channels_before AS channels_unchanged,
       sessions = :sessions_before AS sessions_unchanged
  FROM presence.stats();
SELECT user_id, sessions, metas FROM presence.members('room:k');
SELECT session_id FROM presence.sessions() ORDER BY 1;
SELECT presence.status('newcomer');

-- presence.max_channels_per_session (default 100): 54000, nothing changes.
SELECT count(presence.join('room:' || i, 'kit', 'keep')) FROM generate_series(1, 99) i;
SELECT count(*) FROM presence.channels('kit');
SELECT memberships AS memberships_before, channels AS channels_before FROM presence.stats() \gset
SELECT try($$SELECT presence.join('room:100', 'kit', 'keep')$$);
\set VERBOSITY default
SELECT presence.join('room:100', 'kit', 'keep');
\set VERBOSITY terse
SELECT count(*) FROM presence.channels('kit');
SELECT presence.occupancy('room:100'), count(*) AS listed FROM presence.members('room:100');
SELECT memberships = :memberships_before AS memberships_unchanged,
       channels = :channels_before AS channels_unchanged
  FROM presence.stats();
-- Joining a channel it is in already, and another session, still work;
-- after a leave there is room again.
SELECT presence.join('room:1', 'kit', 'keep', '{"again": true}'),
       presence.join('room:100', 'kit', 'other');
SELECT presence.leave('room:1', 'kit', 'keep');
SELECT presence.join('room:100', 'kit', 'keep');
SELECT channel, sessions FROM presence.channels('kit')
 WHERE sessions > 0 AND channel IN ('room:1', 'room:100', 'room:k') ORDER BY 1;
SELECT presence.disconnect('kit', 'other'), presence.disconnect('kit', 'keep');
SELECT wait_until($$SELECT memberships = 0 AND channels = 0 FROM presence.stats()$$);

-- A join that would open a session beyond presence.max_sessions_per_user
-- (50) fails as connect does, and changes nothing; live sessions join.
SELECT count(presence.connect('many', 's' || i)) FROM generate_series(1, 50) i;
SELECT try($$SELECT presence.join('room:m', 'many', 's51')$$);
SELECT count(*) AS sessions, presence.occupancy('room:m') FROM presence.sessions('many');
SELECT presence.join('room:m', 'many', 's50');
SELECT user_id, sessions FROM presence.members('room:m');
SELECT count(presence.disconnect('many', 's' || i)) FROM generate_series(1, 50) i;
SELECT wait_until($$SELECT memberships = 0 AND channels = 0 AND users = 0 FROM presence.stats()$$);

-- A full table: presence.max_memberships is 1000 in this test
-- configuration.  53400 naming the setting; nothing changes.
SELECT count(presence.join('fill:' || (i % 10), 'f' || (i / 10)))
  FROM generate_series(0, 999) i;
SELECT memberships, max_memberships, channels FROM presence.stats();
SELECT sessions AS sessions_full FROM presence.stats() \gset
SELECT try($$SELECT presence.join('fill:0', 'f0', 'new-tab')$$);
SELECT try($$SELECT presence.join('fill:new', 'late')$$);
\set VERBOSITY default
SELECT presence.join('fill:0', 'late');
\set VERBOSITY terse
SELECT presence.status('late'), count(*) AS late_sessions FROM presence.sessions('late');
SELECT count(*) AS new_tab_sessions FROM presence.sessions('f0') WHERE session_id = 'new-tab';
SELECT presence.occupancy('fill:new'), channels, sessions = :sessions_full AS sessions_unchanged
  FROM presence.stats();
-- Existing memberships still work: rejoin, update, leave.
SELECT presence.join('fill:0', 'f0', NULL, '{"still": "works"}'),
       presence.update('fill:0', 'f0', NULL, '{"still": "updates"}');
SELECT metas FROM presence.members('fill:0') WHERE user_id = 'f0';
SELECT presence.leave('fill:0', 'f0');
SELECT presence.join('fill:new', 'late');
SELECT presence.occupancy('fill:new');
SELECT count(presence.disconnect(user_id, session_id)) FROM presence.sessions();
SELECT wait_until($$SELECT memberships = 0 AND channels = 0 AND users = 0 FROM presence.stats()$$);
