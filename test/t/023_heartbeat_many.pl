# heartbeat_many under concurrency, and against heartbeat() one by one.
#
# Eight connections race batches, heartbeats, connects and disconnects on
# the same 20 users, each of whom may have 3 sessions: batches that a limit
# refuses change nothing (no user ever has more than 3, no session is left
# half made), and the registry, the tables and a LISTEN client agree at the
# end.  Then two worlds of users live the same story, one heartbeat() at a
# time and in batches, with presence.idle_timeout and
# presence.offline_after going by: they see the same statuses at each step
# and announce the same events.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

# --- Eight connections at once on the same 20 users.
my $node = presence_node('batches',
	'presence.max_sessions' => '1000',
	'presence.reconnect_grace' => '100ms',
	'presence.idle_timeout' => '300ms',
	'presence.session_timeout' => '1s',
	'presence.max_sessions_per_user' => '3');
sql($node, q{
	CREATE TABLE outcomes (what text);
	-- A batch of 10 random pairs from 20 users and 4 sessions each, so that
	-- some would open a 4th session; a refused one must change nothing of
	-- what it named.
	CREATE FUNCTION batch(active boolean) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
	  u text[];
	  s text[];
	  before text;
	  after text;
	BEGIN
	  SELECT array_agg('u' || (1 + floor(random() * 20))::int),
	         array_agg('s' || floor(random() * 4)::int)
	    INTO u, s FROM generate_series(1, 10);
	  BEGIN
	    PERFORM presence.heartbeat_many(u, s, active);
	    INSERT INTO outcomes VALUES ('applied');
	  EXCEPTION WHEN configuration_limit_exceeded THEN
	    INSERT INTO outcomes VALUES ('refused');
	  END;
	END $$;
	CREATE FUNCTION guarded_heartbeat(u text, s text) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	  PERFORM presence.heartbeat(u, s);
	EXCEPTION WHEN configuration_limit_exceeded THEN
	  NULL;
	END $$;
	-- Users over their share, counting every session the registry holds.
	CREATE FUNCTION over_share() RETURNS bigint LANGUAGE sql AS $$
	  SELECT count(*) FROM (SELECT user_id FROM presence.sessions()
	                        GROUP BY user_id HAVING count(*) > 3) o $$;
	CREATE TABLE share_checks (over bigint);
	CREATE FUNCTION check_share() RETURNS text LANGUAGE sql AS $$
	  INSERT INTO share_checks SELECT over_share(); SELECT 'checked' $$;
});
my $script = $node->basedir . '/batches.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set u random(1, 20)
\set s random(0, 3)
\set op random(1, 10)
SELECT CASE
  WHEN :op <= 4 THEN (SELECT batch(true))::text
  WHEN :op = 5 THEN (SELECT batch(false))::text
  WHEN :op = 6 THEN (SELECT guarded_heartbeat('u' || :u, 's' || :s))::text
  WHEN :op = 7 THEN presence.disconnect('u' || :u, 's' || :s)::text
  WHEN :op = 8 THEN (SELECT count(*) FROM presence.online_users())::text
  ELSE check_share()
END;
});
my $l = listen_start($node);
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-T', '5', '-f', $script, '-d', $node->connstr('postgres') ],
	'pgbench: 8 clients, 5 s of batches, heartbeats, disconnects and reads on 20 users');
my ($applied, $refused) = split /\|/, sql($node,
	q{SELECT count(*) FILTER (WHERE what = 'applied'), count(*) FILTER (WHERE what = 'refused') FROM outcomes});
ok($applied > 100, "$applied batches applied");
ok($refused > 10, "$refused batches refused by presence.max_sessions_per_user");
is(sql($node, q{SELECT count(*) FROM share_checks WHERE over > 0}), '0',
	'no user was ever seen with more than 3 sessions');
is(sql($node, q{SELECT over_share()}), '0', 'nor at the end');
is( sql($node, q{SELECT sessions FROM presence.stats()}),
	sql($node, q{SELECT count(*) FROM presence.sessions()}),
	'every counted session is listed, none half made');
is( sql($node, q{SELECT coalesce(sum(sessions), 0) FROM presence.online_users()}),
	sql($node, q{SELECT count(*) FROM presence.sessions()}),
	'online_users() counts the same sessions');

# Left alone, everything times out; the last event of each user is offline.
ok(wait_for($node, q{SELECT users = 0 AND sessions = 0 FROM presence.stats()}, 30),
	'every user and session gone after the timeouts');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.sessions}), 'table of sessions empty');
my (%last, $prev_seq);
my $gaps = 0;
while (my $n = listen_next($l, 1))
{
	$gaps++ if defined $prev_seq && $n->{seq} != $prev_seq + 1;
	$prev_seq = $n->{seq};
	$last{ $n->{user_id} } = $n->{status};
}
is($gaps, 0, 'seq has no gaps');
ok(keys %last >= 15, scalar(keys %last) . ' users were announced');
is(join(',', grep { $last{$_} ne 'offline' } sort keys %last), '',
	'the last thing announced of every user is offline');
listen_stop($l);
$node->stop;

# --- The same story, one by one (users a:*) and in batches (users b:*).
$node = presence_node('same',
	'presence.session_timeout' => '60s',
	'presence.idle_timeout' => '2s',
	'presence.offline_after' => '4s');
$l = listen_start($node);
sql($node, q{
	CREATE FUNCTION one_by_one(u text[], s text[], active boolean) RETURNS void
	  LANGUAGE sql AS $$
	  SELECT count(presence.heartbeat('a:' || x.u, x.s, active))
	    FROM unnest(u, s) WITH ORDINALITY AS x(u, s, n) $$;
	CREATE FUNCTION batched(u text[], s text[], active boolean) RETURNS int
	  LANGUAGE sql AS $$
	  SELECT presence.heartbeat_many(
	    (SELECT array_agg('b:' || x ORDER BY n) FROM unnest(u) WITH ORDINALITY AS t(x, n)),
	    s, active) $$;
	CREATE FUNCTION step(u text[], s text[], active boolean) RETURNS int
	  LANGUAGE sql AS $$ SELECT one_by_one(u, s, active); SELECT batched(u, s, active) $$;
	-- What others see of each user of a world, and its sessions.
	CREATE FUNCTION world(prefix text) RETURNS text LANGUAGE sql AS $$
	  SELECT string_agg(u || '=' || presence.status(prefix || u) || '/' ||
	           (SELECT count(*) FROM presence.sessions(prefix || u)), ' ' ORDER BY u)
	    FROM unnest(ARRAY['ann', 'bob', 'cid', 'dan', 'eve']) u $$;
});
# Both worlds show what is expected, as "user=status/sessions": waits for
# it (the batches run a moment after the calls one by one, so a timeout
# reaches them a moment later), then compares.
sub same_world
{
	my ($name, $expected) = @_;
	wait_for($node, "SELECT world('a:') = '$expected' AND world('b:') = '$expected'", 10);
	is(sql($node, q{SELECT world('a:')}), $expected, "$name, one by one");
	is(sql($node, q{SELECT world('b:')}), $expected, "$name, in batches");
}

# Opened by heartbeats, with and without activity (an opened session is
# activity enough for an offline user).
is(sql($node, q{SELECT step(ARRAY['ann', 'bob', 'ann', 'cid'], ARRAY['t1', 't1', 't2', 't1'], true)}),
	'0', 'none was live');
is(sql($node, q{SELECT step(ARRAY['dan', 'ann', 'ann'], ARRAY['t1', 't3', 't1'], false)}),
	'1', 'one was live');
same_world('opened', 'ann=online/3 bob=online/1 cid=online/1 dan=online/1 eve=offline/0');
same_world('away after presence.idle_timeout',
	'ann=away/3 bob=away/1 cid=away/1 dan=away/1 eve=offline/0');
same_world('offline after presence.offline_after',
	'ann=offline/3 bob=offline/1 cid=offline/1 dan=offline/1 eve=offline/0');
# Heartbeats without activity keep them alive and hidden; a new session
# opened without activity does not bring its user back either.
is(sql($node, q{SELECT step(ARRAY['ann', 'bob', 'cid', 'cid'], ARRAY['t1', 't1', 't1', 't9'], false)}),
	'3', 'three were live');
same_world('kept alive without activity',
	'ann=offline/3 bob=offline/1 cid=offline/2 dan=offline/1 eve=offline/0');
# Activity brings them back, in a batch as one by one.
sql($node, q{SELECT step(ARRAY['ann', 'dan', 'eve'], ARRAY['t2', 't1', 't1'], true)});
same_world('active again', 'ann=online/3 bob=offline/1 cid=offline/2 dan=online/1 eve=online/1');
sql($node, q{SELECT presence.disconnect(p || 'bob', 't1') FROM unnest(ARRAY['a:', 'b:']) p});
same_world('bob logged out', 'ann=online/3 bob=offline/0 cid=offline/2 dan=online/1 eve=online/1');

# Both worlds announced the same events, in the same order.
sql($node, q{SELECT count(presence.disconnect(user_id, session_id)) FROM presence.sessions()});
ok(wait_for($node, q{SELECT users = 0 FROM presence.stats()}), 'all gone');
my %events;
while (my $n = listen_next($l, 1))
{
	my ($world, $user) = $n->{user_id} =~ /^(.):(.*)$/;
	push @{ $events{$world}{$user} }, "$n->{status} (was $n->{previous})";
}
for my $user (qw(ann bob cid dan eve))
{
	my $a = join(', ', @{ $events{a}{$user} // [] });
	is(join(', ', @{ $events{b}{$user} // [] }), $a, "$user: the same events in both worlds: $a");
}
listen_stop($l);
$node->stop;

done_testing();
