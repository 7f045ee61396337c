# pg_dump keeps the tables; restoring them into another server's tracked
# database gives back the sessions, the invisible users and seq.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $source = presence_node('source', 'presence.session_timeout' => '60s');
my $l = listen_start($source);
sql($source, q{SELECT presence.connect('uma', 'web', '{"lang": "fr"}')});
sql($source, q{SELECT presence.connect('vic'), presence.disconnect('vic')});
sql($source, q{SELECT presence.set_visible('wes', false), presence.connect('wes', 'app')});
sql($source, q{SELECT presence.join('room:1', 'uma', 'web', '{"typing": false}')});
sql($source, q{SELECT presence.join('room:1', 'uma', 'tab'), presence.join('room:2', 'wes', 'app')});
my $seq;
while (my $n = listen_next($l, 2)) { $seq = $n->{seq}; }
ok(defined $seq, "source announced up to seq $seq");
listen_stop($l);
ok( wait_for($source,
		q{SELECT (SELECT count(*) = 3 FROM presence.sessions)
		     AND (SELECT count(*) = 3 FROM presence.memberships)
		     AND (SELECT NOT visible FROM presence.users WHERE user_id = 'wes')}),
	'sessions, memberships and wes\'s choice written');

my $dump = $source->basedir . '/presence.dump';
$source->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $source->connstr('postgres') ],
	'pg_dump');
$source->stop;

# Restore into the tracked database of a fresh, preloaded server.
my $target = presence_node('target', 'presence.session_timeout' => '60s', extension => 0);
$target->command_ok([ 'pg_restore', '--clean', '--if-exists', '-d', $target->connstr('postgres'), $dump ],
	'pg_restore');
is( sql($target, q{SELECT string_agg(user_id || ':' || status || ':' || visible, ',' ORDER BY user_id) FROM presence.users}),
	'uma:online:true,vic:offline:true,wes:offline:false', 'users restored');
ok(wait_for($target, q{SELECT count(*) = 1 FROM presence.online_users()}),
	'the worker took the restored rows into the registry');
is( sql($target, q{SELECT user_id || ':' || sessions FROM presence.online_users()}),
	'uma:2', 'uma online with her sessions');
is(sql($target, q{SELECT meta->>'lang' FROM presence.sessions('uma') WHERE session_id = 'web'}), 'fr',
	'with its meta');
is( sql($target, q{SELECT string_agg(channel || ':' || user_id || ':' || session_id, ',' ORDER BY channel, session_id)
                     FROM presence.memberships}),
	'room:1:uma:tab,room:1:uma:web,room:2:wes:app', 'memberships restored');
ok( wait_for($target,
		q{SELECT sessions = 2 AND metas = '[{"typing": false}, null]' FROM presence.members('room:1')}),
	'the worker took them into the registry, in join order, with their meta');
is(sql($target, q{SELECT presence.occupancy('room:1') || ' ' || presence.occupancy('room:2')}), '1 0',
	'invisible wes is in no channel for others');
is(sql($target, q{SELECT string_agg(channel, ',') FROM presence.channels('wes')}), 'room:2',
	'though still a member of room:2');
sql($target, q{SELECT presence.connect('wes', 'other')});
is(sql($target, q{SELECT presence.status('wes')}), 'offline', 'wes is still invisible');
is(sql($target, q{SELECT presence.last_active('vic') IS NOT NULL}), 't',
	'vic\'s last activity restored');

$l = listen_start($target);
sql($target, q{SELECT presence.connect('xan')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'xan:online', 'changes announced after the restore');
is($n && $n->{seq}, $seq + 1, 'seq carries on from the dump');
listen_stop($l);

$target->stop;
done_testing();
