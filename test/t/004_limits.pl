# Limits and abuse: a full registry, ids and meta filling its memory, many
# connections hammering the same users at once, a server without the
# preload.  Each gets a clear error, and the registry stays consistent.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

# --- A full registry: presence.max_sessions = 10.
my $node = presence_node('full', 'presence.max_sessions' => '10');
sql($node, q{SELECT count(presence.connect('u' || i)) FROM generate_series(1, 10) i});
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT presence.connect('u11')});
like($err, qr/presence registry is full/, 'the 11th session is refused');
like($err, qr/presence\.max_sessions = 10/, 'the message names the setting');
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT presence.connect('u11')}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  53400/, 'SQLSTATE 53400 (configuration_limit_exceeded)');
($rc, $out, $err) = $node->psql('postgres', q{SELECT presence.heartbeat('u12')});
like($err, qr/presence registry is full/, 'so is a heartbeat that would open one');
is(sql($node, q{SELECT presence.status('u11') || ' ' || sessions FROM presence.stats()}),
	'offline 10', 'nothing changed');
sql($node, q{SELECT presence.heartbeat('u1'), presence.connect('u2', meta => '{"still": "works"}')});
pass('existing sessions still work');
sql($node, q{SELECT presence.disconnect('u1')});
is(sql($node, q{SELECT presence.connect('u11')}), 'default', 'room again after a disconnect');
$node->stop;

# --- Ids and meta fill the string memory before the entries run out.
$node = presence_node('memory', 'presence.max_sessions' => '20000');
my $filled = 0;
($rc, $out, $err) = $node->psql('postgres', q{
	DO $$
	BEGIN
	  FOR i IN 1..20000 LOOP
	    PERFORM presence.connect(repeat('u', 250) || i, repeat('s', 250),
	                             jsonb_build_object('pad', repeat('m', 1000)));
	  END LOOP;
	END $$});
like($err, qr/presence registry is out of memory for ids and meta/,
	'big ids and meta exhaust the string memory');
my $sessions = sql($node, 'SELECT sessions FROM presence.stats()');
ok($sessions > 1000 && $sessions < 20000, "$sessions sessions fit before that");
# The DO block failed, but calls are not transactional: the sessions stay.
is(sql($node, 'SELECT count(*) FROM presence.sessions()'), $sessions,
	'every counted session is listed, none half-made');
sql($node, q{SELECT count(presence.disconnect(user_id, session_id)) FROM presence.sessions()});
ok(wait_for($node, 'SELECT users = 0 AND sessions = 0 FROM presence.stats()'),
	'all gone once disconnected');
sql($node, q{
	DO $$
	BEGIN
	  FOR i IN 1..1000 LOOP
	    PERFORM presence.connect(repeat('u', 250) || i, repeat('s', 250),
	                             jsonb_build_object('pad', repeat('m', 1000)));
	  END LOOP;
	END $$});
is(sql($node, 'SELECT sessions FROM presence.stats()'), '1000', 'the memory is reused');
$node->stop;

# --- Eight connections at once on the same 20 users.
$node = presence_node('stress',
	'presence.max_sessions' => '1000',
	'presence.reconnect_grace' => '100ms',
	'presence.idle_timeout' => '300ms',
	'presence.session_timeout' => '1s',
	'presence.max_sessions_per_user' => '5');
my $script = $node->basedir . '/stress.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set u random(1, 20)
\set s random(1, 3)
\set op random(1, 6)
SELECT CASE :op
  WHEN 1 THEN presence.connect('u' || :u, 's' || :s, '{"n": 1}', :s = 1)::text
  WHEN 2 THEN presence.disconnect('u' || :u, 's' || :s)::text
  WHEN 3 THEN presence.heartbeat('u' || :u, 's' || :s, :s <> 2)::text
  WHEN 4 THEN presence.set_visible('u' || :u, :s <> 3)::text
  WHEN 5 THEN presence.status('u' || :u)
  ELSE (SELECT count(*) FROM presence.online_users())::text
END;
});
my $l = listen_start($node);
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-T', '5', '-f', $script, '-d', $node->connstr('postgres') ],
	'pgbench: 8 clients, 5 s of connect, disconnect, heartbeat, set_visible and reads');
sql($node, q{SELECT presence.set_visible('u' || i, true) FROM generate_series(1, 20) i});
is( sql($node, q{SELECT sessions FROM presence.stats()}),
	sql($node, q{SELECT count(*) FROM presence.sessions()}),
	'with everyone visible, sessions() lists every counted session');
is( sql($node, q{SELECT coalesce(sum(sessions), 0) FROM presence.online_users()}),
	sql($node, q{SELECT count(*) FROM presence.sessions()}),
	'online_users() counts the same sessions');

# Eight connections open and end twenty sessions of one user, who may have
# five: a refused connect changes nothing, and the user never has more.
sql($node, q{
	CREATE TABLE hog_refused (n int);
	CREATE FUNCTION hog_connect(s text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
	  RETURN presence.connect('hog', s);
	EXCEPTION WHEN configuration_limit_exceeded THEN
	  INSERT INTO hog_refused VALUES (1);
	  RETURN 'refused';
	END $$;
	CREATE FUNCTION hog_check() RETURNS text LANGUAGE plpgsql AS $$
	DECLARE
	  n int := (SELECT count(*) FROM presence.sessions('hog'));
	BEGIN
	  IF n > 5 THEN
	    RAISE EXCEPTION 'hog has % live sessions', n;
	  END IF;
	  RETURN n::text;
	END $$;
});
my $hog = $node->basedir . '/hog.sql';
PostgreSQL::Test::Utils::append_to_file($hog, q{
\set s random(1, 20)
\set op random(1, 4)
SELECT CASE :op
  WHEN 1 THEN presence.disconnect('hog', 's' || :s)::text
  WHEN 2 THEN hog_check()
  ELSE hog_connect('s' || :s)
END;
});
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-T', '3', '-f', $hog, '-d', $node->connstr('postgres') ],
	'pgbench: 8 clients open and end sessions of one user, never more than 5 live');
ok(sql($node, q{SELECT count(*) FROM hog_refused}) > 0, 'the limit was reached, and refused');
is(sql($node, q{SELECT hog_check()::int <= 5}), 't', 'at most 5 sessions at the end');
is( sql($node, q{SELECT sessions FROM presence.stats()}),
	sql($node, q{SELECT count(*) FROM presence.sessions()}),
	'the refusals left no session behind');

# Left alone, every session times out, every user goes offline, and the
# last thing announced for each user is 'offline'.
ok(wait_for($node, q{SELECT users = 0 AND sessions = 0 FROM presence.stats()}, 30),
	'every user and session gone after the timeouts');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.sessions}), 'table of sessions empty');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.users WHERE status <> 'offline' OR NOT visible}),
	'table of users: all offline and visible');
my (%last, $prev_seq, $gaps);
$gaps = 0;
while (my $n = listen_next($l, 1))
{
	$gaps++ if defined $prev_seq && $n->{seq} != $prev_seq + 1;
	$prev_seq = $n->{seq};
	$last{ $n->{user_id} } = $n->{status};
}
is($gaps, 0, 'seq has no gaps');
ok(!grep({ $_ ne 'offline' } values %last), 'the last word on every user is offline');
ok(!$node->log_contains(qr/TRAP|PANIC|terminated by signal/), 'no crash in the server log');
listen_stop($l);
$node->stop;

# --- A server without shared_preload_libraries = 'presence'.
$node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->start;
sql($node, 'CREATE EXTENSION presence');
pass('CREATE EXTENSION works without the preload (a restore needs that)');
($rc, $out, $err) = $node->psql('postgres', q{SELECT presence.connect('x')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  55000: presence must be loaded via shared_preload_libraries/,
	'connect says the preload is missing');
like($err, qr/HINT:  Add presence to shared_preload_libraries/, 'and how to fix it');
($rc, $out, $err) = $node->psql('postgres', q{SELECT * FROM presence.online_users()});
like($err, qr/must be loaded via shared_preload_libraries/, 'so do the read functions');
($rc, $out, $err) = $node->psql('postgres', q{SELECT * FROM presence.stats()});
like($err, qr/must be loaded via shared_preload_libraries/, 'and stats()');
$node->stop;

done_testing();
