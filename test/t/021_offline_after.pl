# presence.offline_after, the seed's 30-minute rule, seen by a LISTEN client:
# a user with live sessions and no activity for that long is shown offline
# (announced with previous: away) in every read and in their channels
# (without a leave per channel), and their next activity brings them back
# (their status, then one join per channel).  A reload applies new values
# to every user at once; a restart keeps the hidden users hidden.
use strict;
use warnings FATAL => 'all';

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('offline_after',
	'presence.session_timeout' => '60s',
	'presence.idle_timeout' => '1s',
	'presence.offline_after' => '2s');
my $l = listen_start($node);
my $seq;

# The next notification as "event user channel status previous", checking
# that seq grows by one.
sub next_event
{
	my ($within) = @_;
	my $n = listen_next_in_order($l, \$seq, $within // 10);
	return 'none' unless defined $n;
	return join(' ', $n->{event} // 'status', $n->{user_id}, $n->{channel} // '-',
		$n->{status} // '-', $n->{previous} // '-');
}

my $reads = q{SELECT presence.status('ola') || ' ' || presence.is_online('ola')
	|| ' online_users:' || (SELECT count(*) FROM presence.online_users() WHERE user_id = 'ola')
	|| ' members:' || (SELECT count(*) FROM presence.members('room:1'))
	|| ' occupancy:' || presence.occupancy('room:1')};

# --- Online, away after 1 s, offline after 2 s.
my $t0 = time;
sql($node, q{SELECT presence.join('room:1', 'ola', 'tab')});
is(next_event(), 'status ola - online offline', 'ola online');
is(next_event(), 'join ola room:1 online -', 'ola joins room:1');
my $connected = sql($node, q{SELECT presence.last_active('ola')});
is(next_event(3), 'status ola - away online', 'away after the idle timeout');
is(next_event(3), 'status ola - offline away', 'offline after presence.offline_after, previous: away');
my $took = time - $t0;
ok($took >= 1.9 && $took < 4, "offline 2 s after the last activity ($took s)");
ok(listen_none($l, 0.5), 'no leave for room:1: the offline says it all');

is(sql($node, $reads), 'offline false online_users:0 members:0 occupancy:0',
	'every read shows ola offline, and in no channel');
is(sql($node, q{SELECT presence.last_active('ola')}), $connected,
	'last_active() still says when she was last active');
is(sql($node, q{SELECT string_agg(channel, ',') FROM presence.channels('ola')}), 'room:1',
	'channels() answers as the registry holds it: her membership stays');
is(sql($node, q{SELECT count(*) FROM presence.sessions('ola')}), '1', 'her session is live');
ok(wait_for($node, q{SELECT NOT is_online AND status = 'offline' FROM presence.users WHERE user_id = 'ola'}),
	'presence.users says offline');

# --- A heartbeat without activity keeps the session, not the status.
sql($node, q{SELECT presence.heartbeat('ola', 'tab', false)});
sql($node, q{SELECT presence.heartbeat('ola', 'other-tab', false)});
ok(listen_none($l, 0.5), 'inactive heartbeats, even one that opens a session, bring nothing back');
is(sql($node, $reads), 'offline false online_users:0 members:0 occupancy:0', 'still offline');

# --- Activity brings her back: her status, then her channel.
sql($node, q{SELECT presence.heartbeat('ola', 'tab')});
is(next_event(), 'status ola - online offline', 'an active heartbeat: online again');
is(next_event(), 'join ola room:1 online -', 'and back in room:1');
is(sql($node, $reads), 'online true online_users:1 members:1 occupancy:1', 'every read shows her');

# Each kind of activity: update, join, connect.
for my $activity (
	[ q{SELECT presence.update('room:1', 'ola', 'tab', '{"typing": true}')}, 'update' ],
	[ q{SELECT presence.join('room:2', 'ola', 'tab')},                       'join' ],
	[ q{SELECT presence.connect('ola', 'tab')},                              'connect' ])
{
	is(next_event(3), 'status ola - away online', 'away');
	is(next_event(3), 'status ola - offline away', 'offline');
	sql($node, $activity->[0]);
	is(next_event(), 'status ola - online offline', "$activity->[1] is activity: online again");
	my @joins = sort map { next_event() } 1 .. ($activity->[1] eq 'update' ? 1 : 2);
	if ($activity->[1] eq 'join')
	{
		is(join(', ', @joins), 'join ola room:1 online -, join ola room:2 online -',
			'back in room:1, and joins room:2');
	}
	else
	{
		is($joins[0], 'join ola room:1 online -', 'back in room:1');
		is($joins[1], 'join ola room:2 online -', 'and room:2') if @joins > 1;
	}
}
sql($node, q{SELECT presence.leave('room:2', 'ola', 'tab')});
is(next_event(), 'leave ola room:2 - -', 'ola leaves room:2');

# --- Invisible while inactive: nothing to announce either way.
is(next_event(3), 'status ola - away online', 'away');
is(next_event(3), 'status ola - offline away', 'offline');
sql($node, q{SELECT presence.set_visible('ola', false)});
sql($node, q{SELECT presence.set_visible('ola', true)});
ok(listen_none($l, 0.5), 'hiding and showing an inactive user announces nothing');
is(sql($node, $reads), 'offline false online_users:0 members:0 occupancy:0', 'still offline');

# --- Logging out while shown offline: nothing to announce, no grace.
sql($node, q{SELECT presence.disconnect('ola', 'tab'), presence.disconnect('ola', 'other-tab')});
ok(listen_none($l, 0.5), 'the logout of a user shown offline announces nothing');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.sessions WHERE user_id = 'ola'}),
	'her sessions are gone from the table');
sql($node, q{SELECT presence.connect('ola')});
is(next_event(), 'status ola - online offline', 'a new session: online');

# --- offline_after shorter than idle_timeout: online, then offline.
reload_and_wait($node, 'presence.idle_timeout' => '10s', 'presence.offline_after' => '1s');
is(next_event(3), 'status ola - offline online', 'straight from online to offline');

# --- A reload applies to users already hidden or waiting.
reload_and_wait($node, 'presence.offline_after' => '0');
is(next_event(), 'status ola - away offline', 'offline_after off: a hidden user is away again');
ok(listen_none($l, 1.5), 'and stays away');
reload_and_wait($node, 'presence.offline_after' => '1s');
is(next_event(3), 'status ola - offline away', 'on again: the away user\'s timer is filed at once');
reload_and_wait($node, 'presence.offline_after' => '1h');
is(next_event(), 'status ola - away offline', 'a longer offline_after: away again');

# --- A restart keeps a hidden user hidden, and announces nothing.
reload_and_wait($node, 'presence.idle_timeout' => '1s', 'presence.offline_after' => '2s');
is(next_event(4), 'status ola - offline away', 'offline with the new settings');
listen_stop($l);
ok(wait_for($node, q{SELECT status = 'offline' FROM presence.users WHERE user_id = 'ola'}),
	'written offline');
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted');
$l = listen_start($node);
is(sql($node, q{SELECT presence.status('ola') || ' ' || (SELECT count(*) FROM presence.sessions('ola'))}),
	'offline 1', 'after a restart ola is still shown offline, her session back');
ok(listen_none($l, 1), 'nothing announced');
sql($node, q{SELECT presence.heartbeat('ola')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id} $n->{status} $n->{previous}", 'ola online offline', 'activity brings her back');

# --- A session opened without activity during the reconnect grace: the
# user's timer goes on (it once stopped there, leaving them online for good).
reload_and_wait($node, 'presence.reconnect_grace' => '5s', 'presence.offline_after' => '0');
undef $seq;
sql($node, q{SELECT presence.connect('pia')});
is(next_event(), 'status pia - online offline', 'pia online');
sql($node, q{SELECT presence.disconnect('pia'), presence.heartbeat('pia', 'other', false)});
my $event = 'none';
for (1 .. 4)
{
	$event = next_event(4);
	last if $event =~ /^status pia/ || $event eq 'none';    # ola's away may come first
}
is($event, 'status pia - away online', 'away after the idle timeout all the same');

$node->stop;
done_testing();
