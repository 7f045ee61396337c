# On a hot standby the worker idles and the functions refuse politely; the
# tables replicate; after promotion the worker takes over by itself.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $primary = presence_node('primary',
	init => { allows_streaming => 1 },
	'presence.session_timeout' => '60s');
sql($primary, q{SELECT presence.connect('pia', 'web', '{"x": 1}')});
sql($primary, q{SELECT presence.set_visible('quin', false), presence.connect('quin')});
ok(wait_for($primary, q{SELECT count(*) = 2 FROM presence.sessions}), 'primary wrote its sessions');

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# The worker idles on the standby, visibly.
ok( wait_for($standby,
		q{SELECT query = 'waiting for promotion' FROM pg_stat_activity WHERE backend_type = 'presence worker'}),
	'the standby\'s worker waits for promotion');

my ($rc, $out, $err) = $standby->psql('postgres', q{SELECT presence.connect('x')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  25006: cannot track presence during recovery/,
	'write functions refuse on a standby');
($rc, $out, $err) = $standby->psql('postgres', q{SELECT presence.status('pia')});
like($err, qr/the presence registry is not available during recovery/,
	'read functions too');
like($err, qr/HINT:  Read the presence.users table/, 'and say where to look instead');
is( sql($standby, q{SELECT string_agg(user_id || ':' || status, ',' ORDER BY user_id) FROM presence.users}),
	'pia:online,quin:offline', 'the replicated table is readable (quin invisible)');
is(sql($standby, q{SELECT ready FROM presence.stats()}), 'f', 'the registry is not loaded there');

# Changes on the primary keep replicating.
sql($primary, q{SELECT presence.connect('rae')});
ok(wait_for($primary, q{SELECT count(*) = 3 FROM presence.sessions}), 'rae written');
$primary->wait_for_catchup($standby);
is(sql($standby, q{SELECT count(*) FROM presence.sessions}), '3', 'rae replicated');

# Failover: the primary goes away, the standby is promoted.
$primary->stop('immediate');
$standby->promote;
ok(wait_for($standby, q{SELECT ready FROM presence.stats()}),
	'after promotion the worker loads the registry');
is( sql($standby, q{SELECT string_agg(user_id || ':' || sessions, ',' ORDER BY user_id) FROM presence.online_users()}),
	'pia:1,rae:1', 'sessions taken over (quin still invisible)');
is(sql($standby, q{SELECT meta->>'x' FROM presence.sessions('pia')}), '1', 'with their meta');
my $l = listen_start($standby);
sql($standby, q{SELECT presence.connect('sid')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'sid:online', 'the promoted server announces changes');
listen_stop($l);

$standby->stop;
done_testing();
