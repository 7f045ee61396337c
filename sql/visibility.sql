--
-- Invisible users look offline everywhere.
--
SELECT presence.connect('ivy', 'tab', '{"page": "/"}');
SELECT presence.status('ivy'), presence.last_active('ivy') IS NOT NULL AS seen;

SELECT presence.set_visible('ivy', false);
SELECT presence.status('ivy'), presence.is_online('ivy'), presence.last_active('ivy');
SELECT count(*) AS listed FROM presence.online_users() WHERE user_id = 'ivy';
SELECT count(*) AS sessions_listed FROM presence.sessions('ivy');
SELECT count(*) AS sessions_listed FROM presence.sessions() WHERE user_id = 'ivy';

-- Activity while invisible stays hidden.
SELECT presence.heartbeat('ivy', 'tab');
SELECT presence.connect('ivy', 'phone');
SELECT presence.status('ivy'), presence.last_active('ivy');

-- The table shows what others see, and remembers the choice.
SELECT wait_until($$SELECT NOT visible FROM presence.users WHERE user_id = 'ivy'$$);
SELECT user_id, is_online, status, visible FROM presence.users WHERE user_id = 'ivy';

-- Visible again: the real status comes back.
SELECT presence.set_visible('ivy', true);
SELECT presence.status('ivy'), presence.last_active('ivy') IS NOT NULL AS seen;
SELECT user_id, status, sessions FROM presence.online_users() WHERE user_id = 'ivy';
SELECT presence.disconnect('ivy', 'tab'), presence.disconnect('ivy', 'phone');

-- Going invisible before ever connecting is remembered too.
SELECT presence.set_visible('jack', false);
SELECT presence.connect('jack');
SELECT presence.status('jack'), presence.last_active('jack');
SELECT count(*) FROM presence.online_users() WHERE user_id = 'jack';
SELECT presence.disconnect('jack');
-- Offline and invisible, jack stays tracked so the choice is not forgotten.
SELECT wait_until($$SELECT users = 1 FROM presence.stats()$$);
SELECT presence.connect('jack');
SELECT presence.status('jack');
SELECT presence.set_visible('jack', true);
SELECT presence.status('jack');
SELECT presence.disconnect('jack');

-- Making visible a user never seen changes nothing.
SELECT presence.set_visible('kim', true);
SELECT presence.status('kim');
SELECT wait_until($$SELECT count(*) = 0 FROM presence.online_users()$$);
