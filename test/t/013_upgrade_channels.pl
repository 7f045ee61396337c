# Upgrading in place: this library serves a database still at 1.0 (the
# worker writes 1.0's rows until the update), ALTER EXTENSION presence
# UPDATE runs while sessions are live and calls keep coming, nothing is
# announced or lost, channels work at once and are kept through a restart
# and a crash, and the upgraded extension is the same as a fresh 1.1.
use strict;
use warnings FATAL => 'all';

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('upgrade', extension => 0,
	'presence.session_timeout' => '60s');
sql($node, q{CREATE EXTENSION presence VERSION '1.0'});
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'presence'}), '1.0',
	'installed at 1.0');

# --- 1.0 with this library: sessions, the journal, the fold, notifications.
my $l = listen_start($node);
sql($node, q{SELECT presence.connect('ada', 'web', '{"lang": "fr"}'), presence.connect('bo')});
sql($node, q{SELECT presence.set_visible('cy', false), presence.connect('cy')});
my @n = grep { defined } map { listen_next($l, 10) } 1 .. 2;
is(join(',', map { "$_->{user_id}:$_->{status}" } @n), 'ada:online,bo:online', 'announced at 1.0');
ok(wait_for($node, q{SELECT count(*) = 3 FROM presence.sessions}), 'the flusher folds 1.0\'s journal');
is(sql($node, q{SELECT users, sessions, ready FROM presence.stats()}), '3|3|t',
	'stats() with 1.0\'s columns');
is(sql($node, q{SELECT count(*) FROM pg_proc WHERE proname = 'join'
                  AND pronamespace = 'presence'::regnamespace}), '0', 'no channels at 1.0');
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'a 1.0 registry reloads after a restart');
is(sql($node, q{SELECT string_agg(user_id || ':' || sessions, ',' ORDER BY user_id) FROM presence.online_users()}),
	'ada:1,bo:1', 'its sessions back');
listen_stop($l);
$l = listen_start($node);

# --- The update, while 4 clients connect, heartbeat and disconnect.
my $script = $node->basedir . '/calls.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set u random(1, 50)
\set op random(1, 3)
SELECT CASE :op
  WHEN 1 THEN presence.connect('p' || :u)
  WHEN 2 THEN presence.heartbeat('p' || :u)::text
  ELSE presence.disconnect('p' || :u)::text
END;
});
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '4', '-f', $script, '-d', $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);
ok(wait_for($node, q{SELECT sessions > 3 FROM presence.stats()}), 'calls under way');
sql($node, 'ALTER EXTENSION presence UPDATE');
is(sql($node, q{SELECT extversion FROM pg_extension WHERE extname = 'presence'}), '1.1', 'now 1.1');
ok($bench->finish, 'pgbench\'s calls all succeeded across the update');
unlike($err, qr/ERROR/, 'no error during the update');

is(sql($node, q{SELECT string_agg(user_id || ':' || session_id, ',' ORDER BY user_id) FROM presence.sessions() WHERE user_id NOT LIKE 'p%'}),
	'ada:web,bo:default', 'the live sessions stayed');
is(sql($node, q{SELECT presence.status('cy')}), 'offline', 'cy still invisible');
is(sql($node, q{SELECT memberships, max_memberships > 0, channels FROM presence.stats()}), '0|t|0',
	'stats() with 1.1\'s columns');
sql($node, q{SELECT count(presence.disconnect(user_id, session_id)) FROM presence.sessions() WHERE user_id LIKE 'p%'});
ok(wait_for($node, q{SELECT NOT EXISTS (SELECT FROM presence.online_users() WHERE user_id LIKE 'p%')}),
	'pgbench\'s users gone');
while (my $n = listen_next($l, 1))
{
	fail("the update announced $n->{user_id} $n->{status}") unless $n->{user_id} =~ /^p\d+$/;
}

# --- Channels work at once, on the sessions that lived through the update.
sql($node, q{SELECT presence.join('room:1', 'ada', 'web', '{"page": "/"}')});
my $n = listen_next($l, 10);
is($n && "$n->{event} $n->{user_id} $n->{channel}", 'join ada room:1', 'a join, announced');
sql($node, q{SELECT presence.join('room:1', 'bo'), presence.join('room:1', 'cy')});
$n = listen_next($l, 10);
is($n && "$n->{event} $n->{user_id}", 'join bo', 'bo joins; invisible cy is not announced');
ok(listen_none($l, 0.5), 'nothing for cy');
ok(wait_for($node, q{SELECT count(*) = 3 FROM presence.memberships}),
	'the flusher folds the members\' journal into presence.memberships');
ok(!$node->log_contains(qr/ERROR/), 'no error in the server log');
listen_stop($l);

# Kept through a restart and a crash of the worker.
my $members = q{SELECT string_agg(user_id || ':' || metas, ' ' ORDER BY user_id) FROM presence.members('room:1')};
is(sql($node, $members), 'ada:[{"page": "/"}] bo:[null]', 'room:1');
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted');
is(sql($node, $members), 'ada:[{"page": "/"}] bo:[null]', 'room:1 after a restart');
my $pid = sql($node, 'SELECT worker_pid FROM presence.stats()');
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', "SELECT ready AND worker_pid <> $pid FROM presence.stats()"),
	'back after a crash of the worker');
is(sql($node, $members), 'ada:[{"page": "/"}] bo:[null]', 'room:1 after the crash');
is(sql($node, q{SELECT string_agg(channel, ',') FROM presence.channels('cy')}), 'room:1',
	'cy\'s membership too');

# --- The upgraded extension is a fresh 1.1: every object, column, default,
# privilege, index, trigger and dumped table.
my $signature = q{
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'function ' || p.proname || '(' || pg_get_function_arguments(p.oid) || ') '
         || pg_get_function_result(p.oid) || ' ' || p.provolatile::text || p.proparallel::text
         || ' secdef=' || p.prosecdef || ' strict=' || p.proisstrict
         || ' rows=' || p.prorows || ' config=' || coalesce(p.proconfig::text, '')
         || ' acl=' || coalesce(p.proacl::text, '') AS x
    FROM pg_proc p WHERE p.pronamespace = 'presence'::regnamespace
  UNION ALL
  SELECT 'relation ' || c.relname || ' ' || c.relkind::text
         || ' acl=' || coalesce(c.relacl::text, '') || ' options=' || coalesce(c.reloptions::text, '')
    FROM pg_class c WHERE c.relnamespace = 'presence'::regnamespace
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' #' || a.attnum || ' '
         || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
         || ' storage=' || a.attstorage::text || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'presence'::regnamespace AND c.relkind = 'r'
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = 'presence'::regnamespace
  UNION ALL
  SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'presence'::regnamespace
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = 'presence'::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'dumped ' || string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
    FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'presence'
  UNION ALL
  SELECT 'members of the extension ' || count(*)
    FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'presence')
  UNION ALL
  SELECT 'schema acl ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'presence'
  UNION ALL
  SELECT 'event trigger ' || evtname || ' on ' || evtevent || ' ' || evtfoid::regproc || ' ' || evtenabled::text
    FROM pg_event_trigger
) objects};
sql($node, 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION presence');
my $upgraded = sql($node, $signature);
my $fresh = $node->safe_psql('fresh', $signature);
like($upgraded, qr/function join\(channel text, user_id text, session_id text DEFAULT NULL::text, meta jsonb DEFAULT NULL::jsonb\)/,
	'the signature lists the channel functions');
like($upgraded, qr/column journal.member_metas #15 jsonb\[\] notnull=true storage=e/,
	'and the journal\'s new columns');
like($upgraded, qr/event trigger presence_mirrors_dropped on sql_drop presence._mirrors_dropped O/,
	'and the mirrors\' event trigger');
like($upgraded, qr/column users.status_message #6 text/, 'and presence.users\' status message');
is($upgraded, $fresh, 'upgraded from 1.0 = installed as 1.1');

$node->stop;
done_testing();
