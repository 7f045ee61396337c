# The status model over time, seen by an outside LISTEN client: session
# timeout, away and back, the reconnect grace, several sessions of one user,
# seq, and settings changed by a reload.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use utf8;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('status',
	'presence.session_timeout' => '1s',
	'presence.idle_timeout' => '10s');
my $l = listen_start($node);
my $seq;

# Checks the next notification's fields, and that seq grows by one.
sub expect
{
	my ($user, $status, $previous, $within) = @_;
	my $n = listen_next($l, $within // 10);
	if (!defined $n)
	{
		fail("$user: $previous -> $status notified");
		return undef;
	}
	is("$n->{user_id} $n->{previous} -> $n->{status}",
		"$user $previous -> $status", "$user: $previous -> $status notified");
	is($n->{seq}, $seq + 1, 'seq grows by one') if defined $seq;
	$seq = $n->{seq};
	return $n;
}

# --- Session timeout: a session nobody heartbeats ends.
my $t0 = time;
sql($node, "SELECT presence.connect('tim')");
my $n = expect('tim', 'online', 'offline');
ok($n->{received} / 1e6 - $t0 < 1, 'online announced within a second of connect');
like($n->{last_active}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, 'last_active is an ISO timestamp');
is_deeply([ sort keys %$n ],
	[qw(last_active previous received seq status user_id)],
	'payload fields');
$n = expect('tim', 'offline', 'online');
my $after = $n->{received} / 1e6 - $t0;
ok($after >= 0.9 && $after < 3, "offline after the 1s session timeout ($after s)");
is(sql($node, "SELECT presence.status('tim')"), 'offline', 'status() agrees');

# Heartbeats keep a session alive past the timeout.
sql($node, "SELECT presence.connect('hal')");
expect('hal', 'online', 'offline');
for (1 .. 8)
{
	usleep(300_000);
	sql($node, "SELECT presence.heartbeat('hal')");
}
ok(listen_none($l, 0.1), 'heartbeats announce nothing and keep hal online');
is(sql($node, "SELECT presence.status('hal')"), 'online', 'hal online after 2.4 s');
expect('hal', 'offline', 'online');

# --- Away and back: heartbeats without activity keep the session, not the status.
sql($node, "ALTER SYSTEM SET presence.idle_timeout = '1s'");
sql($node, "ALTER SYSTEM SET presence.session_timeout = '10s'");
sql($node, "SELECT pg_reload_conf()");
usleep(300_000);
$t0 = time;
sql($node, "SELECT presence.connect('amy')");
my $online = expect('amy', 'online', 'offline');
for (1 .. 5)
{
	usleep(300_000);
	sql($node, "SELECT presence.heartbeat('amy', active => false)");
}
$n = expect('amy', 'away', 'online');
$after = $n->{received} / 1e6 - $t0;
ok($after >= 0.9 && $after < 3, "away after the 1s idle timeout ($after s)");
is($n->{last_active}, $online->{last_active},
	'away keeps the time of the last activity');
is(sql($node, "SELECT presence.status('amy') || ' ' || presence.is_online('amy')"),
	'away true', 'away users are still online (is_online)');
$t0 = time;
sql($node, "SELECT presence.heartbeat('amy', active => true)");
$n = expect('amy', 'online', 'away');
ok($n->{received} / 1e6 - $t0 < 1, 'back online within a second of activity');
sql($node, "SELECT presence.disconnect('amy')");
expect('amy', 'offline', 'online');

# Activity keeps a user online past the idle timeout, also once a heartbeat
# only writes the session (the user's other state settled).
sql($node, "SELECT presence.connect('ivy')");
expect('ivy', 'online', 'offline');
for (1 .. 8)
{
	usleep(300_000);
	sql($node, "SELECT presence.heartbeat('ivy')");
}
ok(listen_none($l, 0.1), 'activity past the idle timeout announces nothing');
is(sql($node, "SELECT presence.status('ivy')"), 'online',
	'ivy online after 2.4 s of activity, with a 1 s idle timeout');
my $last = sql($node, "SELECT presence.last_active('ivy')");
$n = expect('ivy', 'away', 'online');
is( sql($node,
		"SELECT '$n->{last_active}'::timestamptz = '$last'::timestamptz"
		  . " AND presence.last_active('ivy') = '$last'::timestamptz"),
	't',
	'away announced with the last heartbeat\'s activity');
sql($node, "SELECT presence.disconnect('ivy')");
expect('ivy', 'offline', 'away');

# --- Several sessions of one user: one status, until the last one ends.
sql($node, "ALTER SYSTEM SET presence.idle_timeout = '10s'");
sql($node, "SELECT pg_reload_conf()");
usleep(300_000);
sql($node, "SELECT presence.connect('sam', 'laptop'), presence.connect('sam', 'phone')");
expect('sam', 'online', 'offline');
sql($node, "SELECT presence.disconnect('sam', 'laptop')");
ok(listen_none($l, 0.5), 'ending one of two sessions announces nothing');
is( sql($node, "SELECT status || ' ' || sessions FROM presence.online_users() WHERE user_id = 'sam'"),
	'online 1', 'one session left');
sql($node, "SELECT presence.disconnect('sam', 'phone')");
expect('sam', 'offline', 'online');

# --- Reconnect grace: a page reload announces nothing.
sql($node, "ALTER SYSTEM SET presence.reconnect_grace = '1s'");
sql($node, "SELECT pg_reload_conf()");
usleep(300_000);
sql($node, "SELECT presence.connect('rita', 'tab')");
expect('rita', 'online', 'offline');
for (1 .. 3)
{
	sql($node, "SELECT presence.disconnect('rita', 'tab')");
	usleep(200_000);
	is(sql($node, "SELECT presence.status('rita')"), 'online',
		'during the grace rita still reads as online');
	sql($node, "SELECT presence.connect('rita', 'tab')");
}
ok(listen_none($l, 1.5), 'three reloads: no notification at all');
$t0 = time;
sql($node, "SELECT presence.disconnect('rita', 'tab')");
$n = expect('rita', 'offline', 'online');
$after = $n->{received} / 1e6 - $t0;
ok($after >= 0.9 && $after < 3, "offline once the 1s grace ran out ($after s)");

# A session that times out gets the grace too.
sql($node, "ALTER SYSTEM SET presence.session_timeout = '1s'");
sql($node, "SELECT pg_reload_conf()");
usleep(300_000);
$t0 = time;
sql($node, "SELECT presence.connect('tess')");
expect('tess', 'online', 'offline');
$n = expect('tess', 'offline', 'online');
$after = $n->{received} / 1e6 - $t0;
ok($after >= 1.9 && $after < 4, "timeout plus grace ($after s)");

# --- Ids JSON must escape arrive intact: quotes, backslashes, control
# characters, non-ASCII, at the 256-byte limit.
my $odd = qq{a "quoted" \\ back\nslash \x01 \x{e9}t\x{e9} \x{1F600}};
my $long = "\x01" x 256;
sql($node, "ALTER SYSTEM SET presence.reconnect_grace = '0'");
sql($node, "SELECT pg_reload_conf()");
usleep(300_000);
for my $id ($odd, $long)
{
	my $quoted = $id;
	$quoted =~ s/'/''/g;
	sql($node, "SELECT presence.connect(convert_from(decode('"
		  . unpack('H*', do { my $b = $id; utf8::encode($b); $b })
		  . "', 'hex'), 'UTF8'))");
	$n = listen_next($l, 10);
	is($n && $n->{user_id}, $id, 'an id with ' . length($id) . ' characters round-trips through the JSON payload');
	is($n && $n->{seq}, $seq + 1, 'seq grows by one');
	$seq = $n->{seq} if $n;
}
sql($node, "SELECT presence.disconnect(user_id, session_id) FROM presence.sessions()");
listen_next($l, 10) for 1 .. 2;
$seq += 2;

# --- presence.channel: notifications move to the new channel on reload.
sql($node, "ALTER SYSTEM SET presence.channel = 'lobby'");
sql($node, "SELECT pg_reload_conf()");
usleep(300_000);
my $lobby = listen_start($node, 'lobby');
sql($node, "SELECT presence.connect('lou')");
$n = listen_next($lobby, 10);
is($n && "$n->{user_id} $n->{status}", 'lou online', 'notified on channel lobby');
is($n && $n->{seq}, $seq + 1, 'seq carries on across channels');
ok(listen_none($l, 0.3), 'nothing on the old channel');
listen_stop($lobby);
listen_stop($l);

my $stats = sql($node, 'SELECT notifications, sweeps > 0, ready FROM presence.stats()');
is($stats, ($seq + 1) . '|t|t', 'stats counts every notification sent');

$node->stop;
done_testing();
