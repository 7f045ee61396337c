# Channels over time, seen by an outside LISTEN client: the reconnect grace
# per channel, invisible users, bound connections closing with their
# memberships (a thousand at once), the limits, and memberships kept through
# a fast restart, a kill -9 of the worker and a kill -9 of a backend.
use strict;
use warnings FATAL => 'all';

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('channels',
	'presence.session_timeout' => '60s',
	'presence.max_memberships' => '3000');
my $l = listen_start($node);
my $seq;

# The next notification as "event user channel status meta", checking that
# seq grows by one.
sub next_event
{
	my ($within) = @_;
	my $n = listen_next($l, $within // 10);
	return 'none' unless defined $n;
	is($n->{seq}, $seq + 1, 'seq grows by one') if defined $seq;
	$seq = $n->{seq};
	my $meta = exists $n->{meta}
	  ? (defined $n->{meta} ? JSON::PP->new->canonical->encode($n->{meta}) : 'null')
	  : '-';
	return join(' ', $n->{event} // 'status', $n->{user_id}, $n->{channel} // '-',
		$n->{status} // '-', $meta);
}

sub reload_with
{
	my (%settings) = @_;
	sql($node, "ALTER SYSTEM SET $_ = '$settings{$_}'") for sort keys %settings;
	sql($node, 'SELECT pg_reload_conf()');
	# The worker applies a reload at its next tick; two ticks make sure.
	my $ticks = sql($node, 'SELECT sweeps FROM presence.stats()');
	wait_for($node, "SELECT sweeps >= $ticks + 2 FROM presence.stats()");
}

# --- The reconnect grace, per channel.
reload_with('presence.reconnect_grace' => '1s');
sql($node, q{SELECT presence.join('room:1', 'rita', 'tab', '{"page": "/"}')});
is(next_event(), 'status rita - online -', 'rita online');
is(next_event(), 'join rita room:1 online {"page":"/"}', 'rita joins room:1 with her meta');
for (1 .. 3)
{
	sql($node, q{SELECT presence.leave('room:1', 'rita', 'tab')});
	usleep(200_000);
	is( sql($node, q{SELECT user_id || ' ' || sessions || ' ' || metas FROM presence.members('room:1')}),
		'rita 0 []', 'during the grace members() lists rita with no session');
	is(sql($node, q{SELECT presence.occupancy('room:1')}), '1', 'and occupancy counts her');
	sql($node, q{SELECT presence.join('room:1', 'rita', 'tab', '{"page": "/"}')});
}
ok(listen_none($l, 1.5), 'three reloads of the room: no notification at all');
my $t0 = time;
sql($node, q{SELECT presence.leave('room:1', 'rita', 'tab')});
is(next_event(3), 'leave rita room:1 - -', 'a real leave, once the grace ran out');
my $after = time - $t0;
ok($after >= 0.9 && $after < 3, "leave after the 1s grace ($after s)");
is(sql($node, q{SELECT count(*) FROM presence.members('room:1')}), '0', 'no member left');
is(sql($node, q{SELECT presence.status('rita')}), 'online', 'rita is still online: her session lives');

# The grace is per channel: leaving one room does not touch another.
sql($node, q{SELECT presence.join('room:1', 'rita', 'tab'), presence.join('room:2', 'rita', 'tab')});
is(next_event(), 'join rita room:1 online null', 'rita joins room:1');
is(next_event(), 'join rita room:2 online null', 'and room:2');
sql($node, q{SELECT presence.leave('room:2', 'rita', 'tab')});
is(next_event(3), 'leave rita room:2 - -', 'leaves room:2 after the grace');
ok(listen_none($l, 0.5), 'room:1 untouched');

# A page reload ends the session: its channels and the user's status get the
# same grace, and a new session rejoining within it shows nothing.
sql($node, q{SELECT presence.disconnect('rita', 'tab')});
usleep(300_000);
sql($node, q{SELECT presence.join('room:1', 'rita', 'tab2')});
ok(listen_none($l, 1.5), 'a reload that rejoins shows nothing');
is(sql($node, q{SELECT sessions FROM presence.members('room:1')}), '1', 'rita in room:1 with the new session');

# Leaving for good: the channel's leave, then the user's offline.
$t0 = time;
sql($node, q{SELECT presence.disconnect('rita', 'tab2')});
is(next_event(3), 'leave rita room:1 - -', 'rita leaves room:1');
is(next_event(3), 'status rita - offline -', 'then goes offline');
$after = time - $t0;
ok($after >= 0.9 && $after < 3, "both once the grace ran out ($after s)");

# --- Invisible users: in no channel for anyone, one offline, no leaves.
reload_with('presence.reconnect_grace' => '0');
sql($node, q{SELECT presence.join('room:1', 'ivy', 'tab'), presence.join('room:2', 'ivy', 'tab', '{"n": 2}')});
is(next_event(), 'status ivy - online -', 'ivy online');
is(next_event(), 'join ivy room:1 online null', 'joins room:1');
is(next_event(), 'join ivy room:2 online {"n":2}', 'and room:2');
sql($node, q{SELECT presence.set_visible('ivy', false)});
is(next_event(), 'status ivy - offline -', 'invisible: one offline');
ok(listen_none($l, 0.5), 'no per-channel leave');
is(sql($node, q{SELECT presence.occupancy('room:1') + presence.occupancy('room:2')}), '0',
	'occupancy does not count her');
is(sql($node, q{SELECT count(*) FROM presence.members('room:2')}), '0', 'members() does not list her');
sql($node, q{SELECT presence.join('room:3', 'ivy', 'tab'), presence.update('room:2', 'ivy', 'tab', '{"n": 3}')});
sql($node, q{SELECT presence.leave('room:1', 'ivy', 'tab')});
ok(listen_none($l, 0.5), 'joins, updates and leaves while invisible: nothing');
is(sql($node, q{SELECT string_agg(channel, ',' ORDER BY channel) FROM presence.channels('ivy') WHERE sessions > 0}),
	'room:2,room:3', 'channels() answers for her as the registry holds it');
sql($node, q{SELECT presence.set_visible('ivy', true)});
is(next_event(), 'status ivy - online -', 'visible again: her status');
is(next_event(), 'join ivy room:2 online {"n":3}', 'then a join per channel she is in, with the meta she has');
is(next_event(), 'join ivy room:3 online null', 'room:3 too');
ok(listen_none($l, 0.5), 'nothing for room:1, which she left');
sql($node, q{SELECT presence.disconnect('ivy', 'tab')});
is(next_event(), 'leave ivy room:2 - -', 'disconnect: leaves room:2');
is(next_event(), 'leave ivy room:3 - -', 'and room:3');
is(next_event(), 'status ivy - offline -', 'then offline');

# --- A relay's connection with a thousand bound sockets in channels closes.
my $relay = $node->background_psql('postgres');
$relay->query_safe(q{
	SELECT count(presence.connect('crowd' || i, 'ws', NULL, true)),
	       count(presence.join('room:crowd', 'crowd' || i, 'ws', jsonb_build_object('i', i))),
	       count(presence.join('me:' || i, 'crowd' || i, 'ws'))
	  FROM generate_series(1, 1000) i});
my %count;
for (1 .. 3000)
{
	my $n = listen_next($l, 10) or last;
	$count{ ($n->{event} // 'status') . ':' . ($n->{status} // '') }++;
	$seq = $n->{seq};
}
is_deeply(\%count, { 'status:online' => 1000, 'join:online' => 2000 },
	'1000 users online, 2000 joins');
is(sql($node, q{SELECT presence.occupancy('room:crowd')}), '1000', 'room:crowd holds 1000');
is(sql($node, q{SELECT count(*) FROM presence.members('room:crowd')}), '1000', 'members() lists them');
$relay->quit;
%count = ();
my %order;
for (1 .. 3000)
{
	my $n = listen_next($l, 10) or last;
	my $what = ($n->{event} // 'status') . ':' . ($n->{status} // '');
	$count{$what}++;
	# A user's leaves come before its offline.
	$order{ $n->{user_id} } .= $what eq 'status:offline' ? 'o' : 'l';
	$seq = $n->{seq};
}
is_deeply(\%count, { 'status:offline' => 1000, 'leave:' => 2000 },
	'closing the connection: 2000 leaves, 1000 offline');
is(scalar(grep { $_ ne 'llo' } values %order), 0, 'each user left both channels, then went offline');
is( sql($node, q{SELECT presence.occupancy('room:crowd') || ' ' || count(*) FROM presence.members('room:crowd')}),
	'0 0', 'no ghost in room:crowd');
ok(wait_for($node, q{SELECT memberships = 0 AND channels = 0 FROM presence.stats()}),
	'every membership and channel freed');
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.memberships}), 'and the table emptied');

# --- Limits: presence.max_channels_per_session follows a reload.
reload_with('presence.max_channels_per_session' => '2');
sql($node, q{SELECT presence.join('a', 'lim'), presence.join('b', 'lim')});
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT presence.join('c', 'lim')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  54000: the session is in too many channels/, 'a third channel: 54000');
like($err, qr/presence\.max_channels_per_session is 2/, 'naming the setting');
reload_with('presence.max_channels_per_session' => '3');
sql($node, q{SELECT presence.join('c', 'lim')});
is(sql($node, q{SELECT count(*) FROM presence.channels('lim')}), '3', 'after a reload, three');
sql($node, q{SELECT presence.disconnect('lim')});

# A full table (presence.max_memberships = 3000): 53400 naming the setting,
# nothing half-made, and room again once memberships end.
sql($node, q{SELECT count(presence.join('fill:' || (i % 3), 'f' || (i / 3))) FROM generate_series(0, 2999) i});
($rc, $out, $err) = $node->psql('postgres', q{SELECT presence.join('fill:0', 'late')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  53400: presence registry has no room for more channel memberships/, 'full: 53400');
like($err, qr/presence\.max_memberships = 3000/, 'naming the setting');
is(sql($node, q{SELECT presence.status('late') || ' ' || memberships FROM presence.stats()}),
	'offline 3000', 'no session opened, nothing added');
sql($node, q{SELECT presence.disconnect('f0')});
sql($node, q{SELECT presence.join('fill:0', 'late')});
is(sql($node, q{SELECT sessions FROM presence.members('fill:0') WHERE user_id = 'late'}), '1',
	'room again after a disconnect');
sql($node, q{SELECT count(presence.disconnect(user_id, session_id)) FROM presence.sessions()});
ok(wait_for($node, q{SELECT memberships = 0 AND channels = 0 AND users = 0 FROM presence.stats()}),
	'all gone');
while (my $n = listen_next($l, 1)) { $seq = $n->{seq}; }

# --- Restart and crashes keep memberships, with their meta, in join order.
reload_with('presence.session_timeout' => '60s');
sql($node, q{SELECT presence.join('room:k', 'kim', 'laptop', '{"page": "/a"}')});
sql($node, q{SELECT presence.join('room:k', 'kim', 'phone', '{"page": "/b"}')});
sql($node, q{SELECT presence.join('room:k', 'lou'), presence.join('doc:9', 'lou', NULL, '{"cursor": [3, 14]}')});
while (my $n = listen_next($l, 1)) { $seq = $n->{seq}; }
my $members = q{SELECT string_agg(user_id || ':' || sessions || ':' || metas, ' ' ORDER BY user_id)
                  FROM presence.members('room:k')};
my $expected = 'kim:2:[{"page": "/a"}, {"page": "/b"}] lou:1:[null]';
is(sql($node, $members), $expected, 'room:k before the restart');

# A membership changed just before a fast restart is kept: the flusher
# folds the journal on its way out.  From the restart on, the flusher folds
# only at a shutdown or a load (a restart sets it for every process at once).
sql($node, q{SELECT presence.update('doc:9', 'lou', NULL, '{"cursor": [4, 1]}')});
is(next_event(), 'update lou doc:9 - {"cursor":[4,1]}', 'lou\'s update announced');
listen_stop($l);
sql($node, "ALTER SYSTEM SET presence.flush_interval = '1h'");
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'registry reloaded after a restart');
is(sql($node, $members), $expected, 'room:k after the restart: members, sessions, metas in join order');
is(sql($node, q{SELECT metas FROM presence.members('doc:9')}), '[{"cursor": [4, 1]}]',
	'the last update kept');
is(sql($node, q{SELECT meta FROM presence.memberships WHERE channel = 'doc:9'}), '{"cursor": [4, 1]}',
	'and in presence.memberships');
is(sql($node, q{SELECT presence.occupancy('room:k') || ' ' || presence.occupancy('doc:9')}), '2 1',
	'occupancy counted again');

# kill -9 of the worker: shared memory is rebuilt and reloaded from the
# tables and the journal, where the flusher has not folded yet.
$l = listen_start($node);
ok(listen_none($l, 0.5), 'the restart announced nothing: nobody changed');
sql($node, q{SELECT presence.join('room:k', 'max', NULL, '{"new": true}')});
is(next_event(), 'status max - online -', 'max online');
is(next_event(), 'join max room:k online {"new":true}', 'max joins, seq carrying on');
ok( wait_for($node,
		q{SELECT count(*) = 1 FROM presence.journal, unnest(member_users) u WHERE u = 'max'}),
	'max\'s membership is in the journal');
is(sql($node, q{SELECT count(*) FROM presence.memberships WHERE user_id = 'max'}), '0',
	'and not yet in presence.memberships');
listen_stop($l);
my $pid = sql($node, 'SELECT worker_pid FROM presence.stats()');
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', 'SELECT ready AND worker_pid <> ' . $pid . ' FROM presence.stats()'),
	'server back after the worker\'s crash, registry ready');
$expected = 'kim:2:[{"page": "/a"}, {"page": "/b"}] lou:1:[null] max:1:[{"new": true}]';
is(sql($node, $members), $expected, 'room:k recovered from the tables and the journal');

# kill -9 of a backend: the same crash recovery.
my $victim = $node->background_psql('postgres');
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $victim_pid;
eval { $victim->quit };
ok($node->poll_query_until('postgres', 'SELECT ready FROM presence.stats()'),
	'server back after a backend\'s crash');
ok($node->log_contains("server process \\(PID $victim_pid\\) was terminated by signal 9"),
	'the postmaster saw the backend die');
is(sql($node, $members), $expected, 'room:k recovered again');
is(sql($node, q{SELECT metas FROM presence.members('doc:9')}), '[{"cursor": [4, 1]}]', 'doc:9 too');

# Nobody heartbeats the recovered sessions: they time out, and their
# members leave, each before its user's offline.
$l = listen_start($node);
reload_with('presence.session_timeout' => '1s', 'presence.flush_interval' => '200ms');
my @events;
while (my $n = listen_next($l, 5))
{
	push @events, ($n->{event} // 'status') . ":$n->{user_id}:" . ($n->{channel} // $n->{status});
	last if @events == 7;
}
is(join(' ', sort @events),
	'leave:kim:room:k leave:lou:doc:9 leave:lou:room:k leave:max:room:k status:kim:offline status:lou:offline status:max:offline',
	'recovered sessions time out: their leaves, their users\' offline');
for my $u (qw(kim lou max))
{
	my @mine = grep { /:$u:/ } @events;
	is($mine[-1], "status:$u:offline", "$u\'s offline comes after its leaves");
}
ok(wait_for($node, q{SELECT count(*) = 0 FROM presence.memberships}), 'presence.memberships emptied');
listen_stop($l);
ok(!$node->log_contains(qr/TRAP|PANIC/), 'no assertion failure in the server log');

$node->stop;
done_testing();
