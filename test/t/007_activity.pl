# Last activity: exact in the registry, written to presence.users at every
# status change, and for users who stay online at most once a minute.  A
# restart keeps away users away, and gives online ones a full idle timeout.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('activity',
	'presence.session_timeout' => '60s',
	'presence.idle_timeout' => '2s');
my $l = listen_start($node);

# oli stays active: the registry follows, the table keeps the first value.
sql($node, q{SELECT presence.connect('oli')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'oli:online', 'oli online');
ok(wait_for($node, q{SELECT count(*) = 1 FROM presence.users WHERE user_id = 'oli'}),
	'oli written');
my $written = sql($node, q{SELECT last_active FROM presence.users WHERE user_id = 'oli'});
for (1 .. 6)
{
	usleep(250_000);
	sql($node, q{SELECT presence.heartbeat('oli')});
}
usleep(500_000);    # two flushes
ok( sql($node, q{SELECT presence.last_active('oli') > last_active FROM presence.users WHERE user_id = 'oli'}) eq 't',
	'last_active() follows activity');
is(sql($node, q{SELECT last_active FROM presence.users WHERE user_id = 'oli'}),
	$written, 'presence.users is not rewritten for every heartbeat');

# A status change writes the last activity at once.
sql($node, q{SELECT presence.disconnect('oli')});
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'oli:offline', 'oli offline');
ok( wait_for($node,
		q{SELECT last_active = presence.last_active('oli') AND last_active > '}
		  . $written . q{' FROM presence.users WHERE user_id = 'oli'}),
	'going offline wrote the last activity');

# ava goes away and stays away across a restart, with nothing announced.
sql($node, q{SELECT presence.connect('ava')});
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'ava:online', 'ava online');
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'ava:away', 'ava away after 2 s without activity');
listen_stop($l);
ok(wait_for($node, q{SELECT status = 'away' FROM presence.users WHERE user_id = 'ava'}),
	'written as away');
sql($node, q{SELECT presence.connect('cal')});
ok(wait_for($node, q{SELECT status = 'online' FROM presence.users WHERE user_id = 'cal'}),
	'cal written as online');
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted');
$l = listen_start($node);
is(sql($node, q{SELECT presence.status('ava')}), 'away', 'ava is still away');
is(sql($node, q{SELECT presence.status('cal')}), 'online',
	'cal, online before, is online after the restart');
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}:$n->{previous}", 'cal:away:online',
	'cal goes away a full idle timeout after the restart');
ok(listen_none($l, 1), 'and nothing else is announced');
listen_stop($l);

# A change of visibility reaches the tables at once, whatever the flush
# interval: pg_dump and standbys read the tables.
sql($node, "ALTER SYSTEM SET presence.flush_interval = '1h'");
sql($node, 'SELECT pg_reload_conf()');
usleep(300_000);
sql($node, q{SELECT presence.connect('ivy'), presence.set_visible('ivy', false)});
ok(wait_for($node, q{SELECT NOT visible FROM presence.users WHERE user_id = 'ivy'}, 3),
	'a choice of invisibility is in presence.users within seconds, with a one-hour flush interval');

$node->stop;
done_testing();
