# The activity walk and a tick that announces many changes at once.
#
# Each worker tick looks at the last activity of a share of the users who
# were active, and writes those that are due.  A tick with many changes to
# announce (a mass expiry, a thousand users leaving at once) is the one
# listeners wait for: it leaves its share of the walk to the next ticks,
# which take it up; the users' last activity is still written.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

# The 3,000 offlines below must be announced by one tick, whatever the
# machine's speed: with no reconnect grace each disconnect wakes the worker,
# whose ticks (at least 2 ms apart under a stream of calls) then split them
# as the calls go on (seen on a slow run: 5, 1,234, ...).  With a grace,
# nothing wakes it: their graces run out within the calls' few milliseconds
# and the sweep, every 2 s, announces them together (or, at worst, in two
# ticks, one of them with more than half).
my $node = presence_node('tick_activity',
	'presence.sweep_interval' => '2s',
	'presence.reconnect_grace' => '1s',
	'presence.max_sessions' => '20000',
	'presence.session_timeout' => '10min',
	'presence.idle_timeout' => '10min');

# 3,000 users who stay, active since their last write; 3,000 who will leave.
sql($node, q{SELECT count(presence.connect('stay' || i)) FROM generate_series(1, 3000) i});
sql($node, q{SELECT count(presence.connect('leave' || i)) FROM generate_series(1, 3000) i});
ok(wait_for($node, q{SELECT count(*) = 6000 FROM presence.users WHERE status = 'online'}),
	'6,000 users online and written');
sql($node, q{SELECT count(presence.heartbeat('stay' || i)) FROM generate_series(1, 3000) i});

# The ticks that announce nothing walk a share of the active users.
ok( wait_for($node,
		q{SELECT active_users_examined > 0 AND notifications = 0
		    FROM presence.tick_parts() WHERE tick = 'last'}),
	'a quiet tick looks at some of the active users');

# 3,000 leave at once.  The ticks are caught as they end: one of them
# announces the offlines (or two, should a sweep fall while their graces run
# out), and a tick that announces more than 1,000 (ACTIVITY_DEFER_CHANGES)
# leaves the walk to the next.
sql($node, q{
	CREATE TABLE seen AS SELECT * FROM presence.tick_parts() WHERE false;
	SELECT count(presence.disconnect('leave' || i)) FROM generate_series(1, 3000) i;
	DO $$
	BEGIN
	  FOR i IN 1..2000 LOOP
	    INSERT INTO seen SELECT * FROM presence.tick_parts()
	      WHERE tick = 'last' AND started_at NOT IN (SELECT started_at FROM seen);
	    EXIT WHEN EXISTS (SELECT FROM seen WHERE notifications > 1500);
	    PERFORM pg_sleep(0.005);
	  END LOOP;
	END $$;
});
ok( wait_for($node,
		q{SELECT count(*) = 3000 FROM presence.users WHERE user_id LIKE 'leave%' AND status = 'offline'}),
	'the 3,000 are offline');
ok(sql($node, q{SELECT count(*) >= 1 FROM seen WHERE notifications > 1500}) eq 't',
	'one tick announced most of them')
  or diag(sql($node, q{SELECT string_agg(notifications || '/' || active_users_examined, ' ') FROM seen}));
is(sql($node, q{SELECT sum(active_users_examined) FROM seen WHERE notifications > 1500}), '0',
	'the tick that announces them leaves the walk to the next')
  or diag(sql($node, q{SELECT string_agg(notifications || '/' || active_users_examined, ' ') FROM seen}));

# The next ticks take the walk up.
ok( wait_for($node,
		q{SELECT active_users_examined > 0 FROM presence.tick_parts() WHERE tick = 'last'}),
	'the ticks after it look at active users again');

$node->stop;
done_testing();
