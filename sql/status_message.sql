--
-- Status messages (1.1): set_status_message() and status_message(), the
-- column in online_users() and members(), expiry, who sees them.
--

-- Set for a user online, with no expiry (expires_at defaults to NULL).
SELECT presence.connect('sam'), presence.join('room:m', 'sam');
SELECT presence.set_status_message('sam', 'In a meeting');
SELECT presence.status_message('sam');
SELECT user_id, status, status_message FROM presence.online_users() WHERE user_id = 'sam';
SELECT user_id, status, status_message FROM presence.members('room:m');

-- Kept in presence.users, with its expiry.
SELECT presence.set_status_message('sam', 'Lunch 🍜', 'infinity');
SELECT wait_until($$SELECT status_message = 'Lunch 🍜' FROM presence.users WHERE user_id = 'sam'$$);
SELECT status_message, status_message_expires_at FROM presence.users WHERE user_id = 'sam';
SELECT presence.set_status_message(user_id => 'sam', message => 'Back at 3',
                                   expires_at => now() + interval '1 hour');
SELECT wait_until($$SELECT status_message = 'Back at 3' FROM presence.users WHERE user_id = 'sam'$$);
SELECT status_message_expires_at > now() + interval '59 minutes' AS expires_in_an_hour
  FROM presence.users WHERE user_id = 'sam';

-- 140 characters at most, however many bytes they take.
SELECT presence.set_status_message('sam', repeat('é', 140));
SELECT char_length(presence.status_message('sam')), octet_length(presence.status_message('sam'));
SELECT try($$SELECT presence.set_status_message('sam', repeat('é', 141))$$);
SELECT char_length(presence.status_message('sam')) AS unchanged;

-- Bad input changes nothing.
SELECT try($$SELECT presence.set_status_message('sam', 'x', now() - interval '1 second')$$);
SELECT try($$SELECT presence.set_status_message('sam', 'x', '-infinity')$$);
SELECT try($$SELECT presence.set_status_message(NULL, 'x')$$);
SELECT try($$SELECT presence.set_status_message('', 'x')$$);
SELECT try($$SELECT presence.set_status_message(repeat('u', 257), 'x')$$);
SELECT try($$SELECT presence.status_message(NULL)$$);
SELECT char_length(presence.status_message('sam')) AS unchanged;

-- NULL clears it, and so does an empty message (an expiry then means
-- nothing, even one in the past).
SELECT presence.set_status_message('sam', NULL);
SELECT presence.status_message('sam');
SELECT presence.set_status_message('sam', 'again'), presence.status_message('sam');
SELECT presence.set_status_message('sam', '', now() - interval '1 day');
SELECT presence.status_message('sam');
SELECT status_message FROM presence.online_users() WHERE user_id = 'sam';

-- It expires: hidden at once, cleared from the registry and the table by
-- the worker's sweep.
SELECT presence.set_status_message('sam', 'Brb', clock_timestamp() + interval '200 ms');
SELECT presence.status_message('sam');
SELECT wait_until($$SELECT presence.status_message('sam') IS NULL$$);
SELECT wait_until($$SELECT status_message IS NULL FROM presence.users WHERE user_id = 'sam'$$);

-- Nobody sees the message of a user they do not see: offline...
SELECT presence.set_status_message('tom', 'On vacation until Monday');
SELECT presence.status_message('tom');
SELECT wait_until($$SELECT status_message = 'On vacation until Monday' FROM presence.users WHERE user_id = 'tom'$$);
SELECT presence.connect('tom');
SELECT presence.status_message('tom');
SELECT user_id, status_message FROM presence.online_users() WHERE user_id = 'tom';
-- ... or invisible.
SELECT presence.set_visible('tom', false);
SELECT presence.status_message('tom');
SELECT count(*) FROM presence.online_users() WHERE user_id = 'tom';
SELECT presence.set_visible('tom', true);
SELECT presence.status_message('tom');

-- A user who has a message keeps their registry entry when they log out
-- (it counts in stats().users); clearing it lets the entry go.
SELECT presence.disconnect('tom');
SELECT wait_until($$SELECT presence.status('tom') = 'offline'$$);
SELECT presence.status_message('tom');
-- Two more worker ticks: the one that took tom's offline has ended.
SELECT sweeps AS ticks FROM presence.stats() \gset
SELECT wait_until(format('SELECT sweeps >= %s FROM presence.stats()', :ticks + 2));
SELECT users FROM presence.stats();
SELECT presence.set_status_message('tom', NULL);
SELECT wait_until($$SELECT status_message IS NULL FROM presence.users WHERE user_id = 'tom'$$);
SELECT wait_until($$SELECT users = 1 FROM presence.stats()$$);

-- Clearing the message of someone who has none, or who is unknown, does
-- nothing.
SELECT presence.set_status_message('nobody', NULL);
SELECT users FROM presence.stats();

SELECT presence.leave('room:m', 'sam'), presence.disconnect('sam');
SELECT wait_until($$SELECT users = 0 FROM presence.stats()$$);
