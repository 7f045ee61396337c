# Bound sessions end when the database connection that opened them closes,
# however it closes, so a crashed relay leaves no ghosts.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('bound', 'presence.session_timeout' => '60s');
my $l = listen_start($node);

sub next_is
{
	my ($expected, $name) = @_;
	my $n = listen_next($l, 10);
	is($n && "$n->{user_id}:$n->{status}", $expected, $name);
}

# Closing the connection ends its bound sessions, and only those.
my $relay = $node->background_psql('postgres');
$relay->query_safe(q{SELECT presence.connect('bea', 'ws-1', NULL, true)});
$relay->query_safe(q{SELECT presence.connect('cal', 'ws-2')});
next_is('bea:online', 'bea online');
next_is('cal:online', 'cal online');
$relay->quit;
next_is('bea:offline', 'closing the connection ended bea\'s bound session');
is(sql($node, q{SELECT presence.status('cal')}), 'online', 'cal was not bound: still online');

# A connection ended by pg_terminate_backend.
$relay = $node->background_psql('postgres');
$relay->query_safe(q{SELECT presence.connect('dan', 'ws', NULL, true)});
next_is('dan:online', 'dan online');
my $pid = $relay->query_safe('SELECT pg_backend_pid()');
sql($node, "SELECT pg_terminate_backend($pid)");
next_is('dan:offline', 'a terminated connection ends its bound sessions');
eval { $relay->quit };

# A session bound again by another connection belongs to that one.
my $first = $node->background_psql('postgres');
my $second = $node->background_psql('postgres');
$first->query_safe(q{SELECT presence.connect('eli', 'ws', NULL, true)});
next_is('eli:online', 'eli online');
$second->query_safe(q{SELECT presence.connect('eli', 'ws', NULL, true)});
$first->quit;
ok(listen_none($l, 0.5), 'the first connection no longer owns eli\'s session');
is(sql($node, q{SELECT presence.status('eli')}), 'online', 'eli online');
$second->quit;
next_is('eli:offline', 'the owner closing ends it');

# Connecting it unbound releases it.
$first = $node->background_psql('postgres');
$first->query_safe(q{SELECT presence.connect('fay', 'ws', NULL, true)});
next_is('fay:online', 'fay online');
sql($node, q{SELECT presence.connect('fay', 'ws', NULL, false)});
$first->quit;
ok(listen_none($l, 0.5), 'an unbound session outlives the connection');
sql($node, q{SELECT presence.disconnect('fay', 'ws')});
next_is('fay:offline', 'fay offline when disconnected');

# Disconnected before the connection closes: nothing more happens.
$first = $node->background_psql('postgres');
$first->query_safe(q{SELECT presence.connect('gus', 'ws', NULL, true)});
next_is('gus:online', 'gus online');
$first->query_safe(q{SELECT presence.disconnect('gus', 'ws')});
next_is('gus:offline', 'gus offline');
$first->query_safe(q{SELECT presence.connect('gus', 'other')});
next_is('gus:online', 'gus online again, unbound');
$first->quit;
ok(listen_none($l, 0.5), 'closing did not touch the unbound session');

# A relay with a thousand sockets crashes: every user goes offline.
$first = $node->background_psql('postgres');
$first->query_safe(
	q{SELECT count(presence.connect('crowd' || i, 'ws', NULL, true)) FROM generate_series(1, 1000) i});
my %seen;
for (1 .. 1000)
{
	my $n = listen_next($l, 10) or last;
	$seen{"$n->{user_id}:$n->{status}"}++;
}
is(scalar(grep { /:online$/ } keys %seen), 1000, '1000 users online');
$first->quit;
%seen = ();
for (1 .. 1000)
{
	my $n = listen_next($l, 10) or last;
	$seen{"$n->{user_id}:$n->{status}"}++;
}
is(scalar(grep { /:offline$/ } keys %seen), 1000, 'all 1000 offline when the connection closed');
is(sql($node, q{SELECT count(*) FROM presence.online_users() WHERE user_id LIKE 'crowd%'}),
	'0', 'no ghost left');

listen_stop($l);
$node->stop;
done_testing();
