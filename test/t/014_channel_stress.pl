# Eight connections at once on the same 20 users, 3 sessions each and 5
# channels: join, leave, update, connect, disconnect, heartbeat, set_visible
# and the reads, with a short grace.  Afterwards the registry agrees with
# itself, a listener that applied every event sees the members members()
# lists, and once nobody calls everything ends, and the listener agrees.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('channel_stress',
	'presence.max_sessions' => '1000',
	'presence.max_memberships' => '1000',
	'presence.reconnect_grace' => '100ms',
	'presence.idle_timeout' => '300ms',
	'presence.session_timeout' => '10s');
my $script = $node->basedir . '/stress.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set u random(1, 20)
\set s random(1, 3)
\set c random(1, 5)
\set op random(1, 12)
SELECT CASE :op
  WHEN 1 THEN presence.join('ch' || :c, 'u' || :u, 's' || :s, jsonb_build_object('n', :s))::text
  WHEN 2 THEN presence.join('ch' || :c, 'u' || :u, 's' || :s)::text
  WHEN 3 THEN presence.leave('ch' || :c, 'u' || :u, 's' || :s)::text
  WHEN 4 THEN presence.update('ch' || :c, 'u' || :u, 's' || :s, jsonb_build_object('typing', :c > 2))::text
  WHEN 5 THEN presence.connect('u' || :u, 's' || :s, NULL, :s = 1)::text
  WHEN 6 THEN presence.disconnect('u' || :u, 's' || :s)::text
  WHEN 7 THEN presence.heartbeat('u' || :u, 's' || :s, :s <> 2)::text
  WHEN 8 THEN presence.set_visible('u' || :u, :c <> 5)::text
  WHEN 9 THEN (SELECT count(*) FROM presence.members('ch' || :c))::text
  WHEN 10 THEN presence.occupancy('ch' || :c)::text
  WHEN 11 THEN (SELECT count(*) FROM presence.channels('u' || :u))::text
  ELSE (SELECT count(*) FROM presence.online_users())::text
END;
});
my $l = listen_start($node);
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-T', '6', '-f', $script, '-d', $node->connstr('postgres') ],
	'pgbench: 8 clients, 6 s of every channel and session call');

# Quiet now, and everyone visible: the registry agrees with itself.
sql($node, q{SELECT presence.set_visible('u' || i, true) FROM generate_series(1, 20) i});
# channels() of every user, through a view for the checks.
sql($node, q{CREATE VIEW where_all AS
	SELECT 'u' || i AS user_id, ch.* FROM generate_series(1, 20) i, presence.channels('u' || i) ch});
is( sql($node, q{
	SELECT bool_and(presence.occupancy(c) = (SELECT count(*) FROM presence.members(c)))
	  FROM (SELECT 'ch' || i AS c FROM generate_series(1, 5) i) c}),
	't', 'occupancy() counts what members() lists, in every channel');
is(sql($node, q{SELECT coalesce(sum(sessions), 0) = (SELECT memberships FROM presence.stats()) FROM where_all}),
	't', 'channels() counts the memberships stats() counts');
is( sql($node, q{SELECT count(*) FROM where_all w
	  WHERE w.sessions > (SELECT count(*) FROM presence.sessions(w.user_id))}),
	'0', 'no user is in a channel with more sessions than it has live');
is( sql($node, q{SELECT count(*) FROM where_all w
	  WHERE w.sessions > 0 AND NOT EXISTS (SELECT FROM presence.members(w.channel) m WHERE m.user_id = w.user_id)}),
	'0', 'every member with a session there is listed by members() (everyone is visible)');

# A listener that applies every event as docs/sql.md says (a user's offline
# takes it out of every channel) has the members members() lists.
my (%in, %status, $prev, $gaps, $events);
$gaps = 0;
sub hear
{
	while (my $n = listen_next($l, 1))
	{
		$gaps++ if defined $prev && $n->{seq} != $prev + 1;
		$prev = $n->{seq};
		$events++;
		if (!defined $n->{event})
		{
			my $user = $n->{user_id};
			$status{$user} = $n->{status};
			if ($n->{status} eq 'offline')
			{
				delete $in{$_} for grep { index($_, "$user|") == 0 } keys %in;
			}
		}
		elsif ($n->{event} eq 'join') { $in{"$n->{user_id}|$n->{channel}"} = 1; }
		elsif ($n->{event} eq 'leave') { delete $in{"$n->{user_id}|$n->{channel}"}; }
	}
}
hear();
ok(keys %in > 20, scalar(keys %in) . ' members in the 5 channels, as the listener heard');
is(join(',', sort keys %in),
	sql($node, q{SELECT coalesce(string_agg(m.user_id || '|' || c, ',' ORDER BY m.user_id || '|' || c), '')
	               FROM (SELECT 'ch' || i AS c FROM generate_series(1, 5) i) c, presence.members(c) m}),
	'the listener\'s members are members()\'s');

# Left alone, every session times out: every member leaves, every channel
# goes, and the tables empty.
sql($node, "ALTER SYSTEM SET presence.session_timeout = '1s'");
sql($node, 'SELECT pg_reload_conf()');
ok(wait_for($node, q{SELECT users = 0 AND sessions = 0 AND memberships = 0 AND channels = 0
                       FROM presence.stats()}, 30),
	'every session, membership and channel gone after the timeouts');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.memberships}), 'presence.memberships empty');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.sessions}), 'presence.sessions empty');

# What the listener heard: seq without gaps, nobody left in any channel,
# and every user offline.
hear();
ok($events > 100, "the listener heard $events notifications");
is($gaps, 0, 'seq has no gaps');
is(join(',', sort keys %in), '', 'nobody left in any channel');
ok(!grep({ $_ ne 'offline' } values %status), 'the last word on every user is offline');
ok(!$node->log_contains(qr/TRAP|PANIC|terminated by signal|ERROR/), 'no error or crash in the server log');
listen_stop($l);
$node->stop;
done_testing();
