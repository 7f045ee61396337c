# A database still at 1.0 works with this library, and ALTER EXTENSION
# presence UPDATE takes it to 1.1 in place: the live sessions stay, a
# LISTEN client hears nothing that did not change, stats() is no longer for
# PUBLIC, the result is what a fresh 1.1 install gives, and pg_dump of the
# upgraded database restores.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('upgrade', 'presence.session_timeout' => '60s', extension => 0);
sql($node, q{CREATE EXTENSION presence VERSION '1.0'});
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'presence'}), '1.0',
	'installed at 1.0');
is(sql($node, q{SELECT has_function_privilege('public', 'presence.stats()', 'EXECUTE')}),
	't', '1.0: stats() is for PUBLIC');

# Live sessions, written with this library into 1.0's tables.
my $l = listen_start($node);
sql($node, q{SELECT presence.connect('ada', 'web', '{"room": "lobby"}')});
sql($node, q{SELECT presence.connect('bo', 'laptop'), presence.connect('bo', 'phone')});
sql($node, q{SELECT presence.set_visible('cy', false), presence.connect('cy')});
my $relay = $node->background_psql('postgres');
$relay->query_safe(q{SELECT presence.connect('dee', 'ws', NULL, true)});
my %seen;
for (1 .. 3)
{
	my $n = listen_next($l, 10) or last;
	$seen{ $n->{user_id} } = $n;
}
is(join(',', map { "$_:$seen{$_}{status}" } sort keys %seen),
	'ada:online,bo:online,dee:online', 'announced at 1.0 (cy is invisible)');
my $seq = (sort { $a <=> $b } map { $_->{seq} } values %seen)[-1];
ok(wait_for($node, q{SELECT count(*) = 5 FROM presence.sessions}), 'folded into 1.0\'s tables');

my $online = q{SELECT string_agg(user_id || ':' || status || ':' || sessions, ',' ORDER BY user_id)
	FROM presence.online_users()};
my $sessions = q{SELECT string_agg(user_id || '/' || session_id || '/' || coalesce(meta::text, '-'), ',' ORDER BY user_id, session_id)
	FROM presence.sessions()};
my $online_before = sql($node, $online);
my $sessions_before = sql($node, $sessions);
my $worker = sql($node, 'SELECT worker_pid FROM presence.stats()');

# The upgrade, in place.
sql($node, 'ALTER EXTENSION presence UPDATE');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'presence'}), '1.1',
	'updated to 1.1');
ok(listen_none($l, 1.5), 'the update announced nothing');
is(sql($node, $online), $online_before, 'the same users online');
is(sql($node, $sessions), $sessions_before, 'the same sessions, with their meta');
is(sql($node, q{SELECT presence.status('cy')}), 'offline', 'cy is still invisible');
is(sql($node, 'SELECT worker_pid FROM presence.stats()'), $worker, 'the same worker, no reload');
is(sql($node, q{SELECT has_function_privilege('public', 'presence.stats()', 'EXECUTE')}),
	'f', '1.1: stats() is not for PUBLIC');

# Everything goes on: a bound session ends with its connection, changes
# are announced with the next seq.
$relay->quit;
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'dee:offline', 'dee\'s bound session ended with its connection');
is($n && $n->{seq}, $seq + 1, 'seq carries on');
sql($node, q{SELECT presence.connect('eve')});
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'eve:online', 'eve announced after the update');

# 1.1's status messages and mirrors work at once on the updated database.
sql($node, q{SELECT presence.set_status_message('ada', 'Updated')});
$n = listen_next($l, 10);
is($n && "$n->{event} $n->{user_id} $n->{status_message}", 'status_message ada Updated',
	'a status message, announced');
is(sql($node, q{SELECT status_message FROM presence.online_users() WHERE user_id = 'ada'}),
	'Updated', 'online_users() has the column');
sql($node, q{CREATE TABLE app_users (id text PRIMARY KEY, online boolean, seen timestamptz);
	INSERT INTO app_users VALUES ('ada', false, NULL), ('bo', false, NULL), ('zed', true, NULL);
	SELECT presence.mirror('app_users', 'id', 'online', 'seen')});
ok( wait_for($node,
		q{SELECT string_agg(id || ':' || online || ':' || (seen IS NOT NULL), ',' ORDER BY id)
		           = 'ada:true:true,bo:true:true,zed:false:false' FROM app_users}),
	'a mirror syncs its table');
sql($node, q{DROP TABLE app_users});
is(sql($node, q{SELECT count(*) FROM presence.mirrors}), '0', 'and goes with it');
listen_stop($l);
ok(wait_for($node, q{SELECT count(*) = 5 FROM presence.sessions}), 'and folded');

# The same extension as a fresh 1.1 install: functions, their privileges
# and settings, the tables' privileges, and what pg_dump sees.
my $fresh = presence_node('fresh', extension => 1);
my $catalog = q{
	SELECT string_agg(format('%s(%s) acl=%s config=%s definer=%s', p.proname,
	         pg_get_function_identity_arguments(p.oid), p.proacl, p.proconfig, p.prosecdef),
	       E'\n' ORDER BY p.proname)
	  FROM pg_proc p WHERE p.pronamespace = 'presence'::regnamespace
	UNION ALL
	SELECT string_agg(format('%s acl=%s', c.relname, c.relacl), E'\n' ORDER BY c.relname)
	  FROM pg_class c WHERE c.relnamespace = 'presence'::regnamespace};
is(sql($node, $catalog), sql($fresh, $catalog), 'the same objects and privileges as a fresh 1.1');
my @schema = ('pg_dump', '--schema-only', '--no-comments');
my ($upgraded_schema, $fresh_schema);
IPC::Run::run([ @schema, '-d', $node->connstr('postgres') ], '>', \$upgraded_schema)
  or die 'pg_dump failed';
IPC::Run::run([ @schema, '-d', $fresh->connstr('postgres') ], '>', \$fresh_schema)
  or die 'pg_dump failed';
# (Less the random key of pg_dump's \restrict line.)
s/^\\(un)?restrict .*$//mg for $upgraded_schema, $fresh_schema;
is($upgraded_schema, $fresh_schema, 'pg_dump sees the same schema');
$fresh->stop;

# pg_dump of the upgraded database restores into another server.
my $dump = $node->basedir . '/upgraded.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
$node->stop;
my $target = presence_node('target', 'presence.session_timeout' => '60s', extension => 0);
$target->command_ok([ 'pg_restore', '--exit-on-error', '-d', $target->connstr('postgres'), $dump ],
	'pg_restore');
is(sql($target, q{SELECT extversion FROM pg_extension WHERE extname = 'presence'}), '1.1',
	'restored at 1.1');
is(sql($target, q{SELECT has_function_privilege('public', 'presence.stats()', 'EXECUTE')}),
	'f', 'with 1.1\'s privileges');
ok(wait_for($target, q{SELECT count(*) = 3 FROM presence.online_users()}),
	'the worker took the restored rows in');
is( sql($target, $online),
	'ada:online:1,bo:online:2,eve:online:1', 'the sessions are back (cy invisible, dee gone)');
is(sql($target, q{SELECT presence.status('cy')}), 'offline', 'cy is still invisible');
is(sql($target, q{SELECT presence.status_message('ada')}), 'Updated', 'ada\'s status message is back');
$target->stop;

done_testing();
