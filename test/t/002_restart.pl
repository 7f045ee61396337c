# Sessions survive restarts: a fast restart flushes and reloads them, a crash
# of the worker (kill -9, so the server reinitializes shared memory) reloads
# them from the tables, and seq is never reused.  Dropping the extension
# forgets everything.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('restart', 'presence.session_timeout' => '60s');

my $l = listen_start($node);
sql($node, q{SELECT presence.connect('ada', 'web', '{"room": "lobby"}')});
sql($node, q{SELECT presence.connect('bo', 'laptop'), presence.connect('bo', 'phone')});
sql($node, q{SELECT presence.set_visible('cy', false), presence.connect('cy')});
my @n = grep { defined } map { listen_next($l, 10) } 1 .. 2;
is(join(',', map { "$_->{user_id}:$_->{status}" } @n), 'ada:online,bo:online',
	'ada and bo announced; invisible cy is not');
sql($node, q{SELECT presence.connect('gone')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'gone:online', 'gone online');
sql($node, q{SELECT presence.disconnect('gone')});
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'gone:offline', 'gone offline');
my $seq = $n->{seq};
listen_stop($l);

# A change the worker has not written yet: with a one-hour sweep interval,
# a new session of an online user waits for the next tick...
sql($node, "ALTER SYSTEM SET presence.sweep_interval = '1h'");
sql($node, 'SELECT pg_reload_conf()');
usleep(300_000);
sql($node, q{SELECT presence.connect('bo', 'tablet')});
is(sql($node, q{SELECT count(*) FROM presence.sessions WHERE session_id = 'tablet'}),
	'0', 'the tablet session is not in the table yet');

# ...and the worker writes it when SIGTERM stops it.
$node->restart;    # fast mode
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'registry reloaded after restart');
is( sql($node, q{SELECT string_agg(user_id || ':' || status || ':' || sessions, ',' ORDER BY user_id) FROM presence.online_users()}),
	'ada:online:1,bo:online:3', 'sessions kept across a fast restart, tablet too');
is(sql($node, q{SELECT meta->>'room' FROM presence.sessions('ada')}), 'lobby', 'meta kept');
is(sql($node, q{SELECT presence.status('cy') || ' ' || (presence.last_active('cy') IS NULL)}),
	'offline true', 'cy is still invisible');
is(sql($node, q{SELECT presence.status('gone')}), 'offline', 'no ghost of gone');

# From here on the flush interval is long, so that dee's session is only in
# the journal when the crash comes.
sql($node, "ALTER SYSTEM SET presence.sweep_interval = '50ms'");
sql($node, "ALTER SYSTEM SET presence.flush_interval = '1h'");
sql($node, 'SELECT pg_reload_conf()');
usleep(300_000);
$l = listen_start($node);
ok(listen_none($l, 1), 'the restart announced nothing: nobody changed status');
sql($node, q{SELECT presence.connect('dee')});
$n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'dee:online', 'dee announced after the restart');
is($n && $n->{seq}, $seq + 1, 'seq carries on after a restart');
$seq = $n->{seq} if $n;
listen_stop($l);
ok( wait_for($node,
		q{SELECT count(*) = 1 FROM presence.journal, unnest(session_ids) WHERE 'dee' = ANY(session_users)}),
	'dee\'s session is in the journal');
is(sql($node, q{SELECT count(*) FROM presence.sessions WHERE user_id = 'dee'}), '0',
	'and not yet in presence.sessions');

# --- kill -9 of the worker: the server reinitializes shared memory, and the
# worker reloads the registry from the tables and the journal.
my $pid = sql($node, 'SELECT worker_pid FROM presence.stats()');
ok($pid > 0, "worker pid $pid");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', 'SELECT ready FROM presence.stats()'),
	'server back after the crash, registry ready');
ok($node->log_contains("presence worker.*was terminated by signal 9"),
	'the postmaster saw the worker die');
isnt(sql($node, 'SELECT worker_pid FROM presence.stats()'), $pid, 'a new worker');
is( sql($node, q{SELECT string_agg(user_id || ':' || sessions, ',' ORDER BY user_id) FROM presence.online_users()}),
	'ada:1,bo:3,dee:1', 'sessions recovered from the tables and the journal');
is(sql($node, q{SELECT presence.status('cy')}), 'offline', 'cy still invisible after the crash');

# Nobody heartbeats the recovered sessions: they time out normally.
$l = listen_start($node);
sql($node, "ALTER SYSTEM SET presence.session_timeout = '2s'");
sql($node, "ALTER SYSTEM SET presence.flush_interval = '200ms'");
sql($node, 'SELECT pg_reload_conf()');
my %offline;
for (1 .. 3)
{
	my $m = listen_next($l, 10) or last;
	$offline{ $m->{user_id} } = $m;
}
is(join(',', sort map { "$_:$offline{$_}{status}" } keys %offline),
	'ada:offline,bo:offline,dee:offline', 'recovered sessions time out');
ok(!grep({ $_->{seq} <= $seq } values %offline), 'seq not reused after a crash');
ok(listen_none($l, 0.5), 'cy, invisible, is never announced');
listen_stop($l);
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.sessions}),
	'every recovered session ended, the invisible user\'s too');
is(sql($node, q{SELECT visible FROM presence.users WHERE user_id = 'cy'}), 'f',
	'cy\'s choice is kept');

# --- Dropping the extension forgets everything; creating it starts afresh.
sql($node, 'DROP EXTENSION presence');
sql($node, 'CREATE EXTENSION presence');
is(sql($node, q{SELECT count(*) FROM presence.online_users()}), '0', 'empty after re-create');
is(sql($node, q{SELECT presence.status('cy') || ' ' || users FROM presence.stats()}),
	'offline 0', 'no user left from before');
sql($node, q{SELECT presence.connect('eve')});
is(sql($node, q{SELECT presence.status('eve')}), 'online', 'works after re-create');

$node->stop;
done_testing();
