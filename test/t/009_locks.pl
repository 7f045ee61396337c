# A role with no privilege at all holds every advisory lock in the
# extension's key space (1.0 folded under pg_advisory_xact_lock(1886545267,
# 0), which anyone could take): folds still happen, and a failed tick still
# recovers.  The lock that guards folding is one no SQL can take.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('locks', 'presence.session_timeout' => '60s');
my $ext = sql($node, q{SELECT oid FROM pg_extension WHERE extname = 'presence'});
my $db = sql($node, q{SELECT oid FROM pg_database WHERE datname = 'postgres'});
sql($node, 'CREATE ROLE mallory LOGIN');

# Both forms (two int4 keys, one int8 key), around 1.0's key and the other
# numbers a lock of the extension's might use: its pg_extension oid, the
# database's, pg_extension's own.
my $mallory = $node->background_psql('postgres', extra_params => [ '-U', 'mallory' ]);
my $held = $mallory->query_safe(qq{
	WITH k(key) AS (VALUES (1886545267), ($ext), ($db), (3079), (0), (1))
	SELECT count(*) FROM (
	  SELECT pg_advisory_lock(k.key, j) FROM k, generate_series(-2, 16) j
	  UNION ALL
	  SELECT pg_advisory_lock(j, k.key) FROM k, generate_series(-2, 16) j
	  UNION ALL
	  SELECT pg_advisory_lock((k.key::bigint << 32) + j) FROM k, generate_series(-2, 16) j
	  UNION ALL
	  SELECT pg_advisory_lock(k.key::bigint + j) FROM k, generate_series(-2, 16) j) l});
is($held, 6 * 19 * 4, "mallory took $held advisory locks");
my ($granted, $waiting) = split /\|/, sql($node, q{
	SELECT count(*) FILTER (WHERE l.granted), count(*) FILTER (WHERE NOT l.granted)
	  FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	 WHERE a.usename = 'mallory' AND l.locktype = 'advisory'});
is($waiting, 0, "$granted distinct keys (some coincide), all granted");

# Folds go on.
sql($node, q{SELECT presence.connect('ada')});
ok(wait_for($node, q{SELECT count(*) = 1 FROM presence.sessions WHERE user_id = 'ada'}, 10),
	'the flusher folds ada\'s session');

# A failed tick: the worker waits for a lock it needs and is cancelled.
# Meanwhile the flusher, which waits for the same table, holds the fold
# lock: an object lock on the extension with sub-id 1.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE presence.journal IN ACCESS EXCLUSIVE MODE');
sql($node, q{SELECT presence.connect('bo')});
ok( wait_for($node,
		q{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE backend_type = 'presence worker'}),
	'the worker waits for the journal');
ok( wait_for($node,
		qq{SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		  WHERE a.backend_type = 'presence flusher' AND l.granted
		    AND l.locktype = 'object' AND l.classid = 'pg_extension'::regclass
		    AND l.objid = $ext AND l.objsubid = 1 AND l.mode = 'ExclusiveLock')}),
	'the flusher holds the fold lock, an object lock on the extension');
sql($node, q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'presence worker'});
$locker->query_safe('COMMIT');
$locker->quit;
ok(wait_for($node, q{SELECT count(*) = 1 FROM presence.sessions WHERE user_id = 'bo'}),
	'the tables are written again after the failed tick');

my $l = listen_start($node);
sql($node, q{SELECT presence.connect('cy')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'cy:online', 'changes are announced as before');
listen_stop($l);
ok(wait_for($node, q{SELECT count(*) = 3 FROM presence.sessions}), 'and folded');

is( $mallory->query_safe(q{SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'}),
	$granted, 'mallory held every lock throughout');
$mallory->quit;

$node->stop;
done_testing();
