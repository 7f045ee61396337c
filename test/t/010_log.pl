# What presence refuses or recovers from reaches the server log, with its
# SQLSTATE, at most one line a minute of each kind, counting the times in
# between: sessions refused (a full registry, one user's share), a failed
# tick and the resync after it, a failed fold, a load that did not fit.  A
# failed tick or fold no longer ends the process.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use Time::Local qw(timegm);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

# Sessions outlive the minute this test waits.
my $node = presence_node('log',
	'presence.max_sessions' => '10',
	'presence.session_timeout' => '10min');

# presence's LOG lines so far, as [seconds since the epoch, text].
sub lines
{
	my ($pattern) = @_;
	my @found;
	for (split /\n/, slurp_file($node->logfile))
	{
		next unless /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+(?:\.\d+)?) UTC \[\d+\] LOG:  (presence.*)$/;
		my ($text, $at) = ($7, timegm(0, $5, $4, $3, $2 - 1, $1) + $6);
		push @found, [ $at, $text ] if $text =~ $pattern;
	}
	return @found;
}

# Waits for the n-th line matching, for at most $seconds.
sub wait_line
{
	my ($pattern, $n, $seconds) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		my @found = lines($pattern);
		return $found[ $n - 1 ] if @found >= $n;
		usleep(100_000);
	}
	return undef;
}

sub refuse
{
	my ($query) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $query);
	return $err;
}

# Holds a lock on a table until the returned session ends it, makes a
# change for the worker to write, and cancels the process of that type
# once it waits for the lock.
sub cancel_while_waiting
{
	my ($table, $backend_type, $change) = @_;
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN');
	$locker->query_safe("LOCK TABLE $table IN ACCESS EXCLUSIVE MODE");
	sql($node, $change);
	ok( wait_for($node,
			qq{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE backend_type = '$backend_type'}),
		"the $backend_type waits for $table");
	sql($node,
		qq{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = '$backend_type'});
	$locker->query_safe('COMMIT');
	$locker->quit;
}

my $full = qr/^presence: refused calls, .*SQLSTATE 53400: presence registry is full/;
my $tick = qr/^presence worker: a tick failed, /;
my $resync = qr/^presence worker: wrote the tables again from the registry/;
my $fold = qr/^presence flusher: a fold failed, /;

# --- A full registry: one line, then the others are counted.
sql($node, q{SELECT count(presence.connect('u' || i)) FROM generate_series(1, 10) i});
like(refuse(q{SELECT presence.connect('u11')}), qr/presence registry is full/, 'the 11th session is refused');
my $first = wait_line($full, 1, 10);
ok($first, 'the server log says so');
like($first && $first->[1],
	qr/^presence: refused calls, once since the last report: SQLSTATE 53400: presence registry is full \(presence.max_sessions\)$/,
	'once, with the SQLSTATE');
refuse(qq{SELECT presence.connect('x$_')}) for 1 .. 5;

# --- One user's share, changed by a reload.
sql($node, q{ALTER SYSTEM SET presence.max_sessions_per_user = 1});
sql($node, q{SELECT pg_reload_conf()});
ok(wait_for($node, q{SELECT current_setting('presence.max_sessions_per_user') = '1'}),
	'presence.max_sessions_per_user reloaded');
like(refuse(q{SELECT presence.connect('u1', 'second')}),
	qr/too many presence sessions for user "u1"/, 'a second session of u1 is refused');
ok( wait_line(
		qr/^presence: refused calls, once since the last report: SQLSTATE 53400: a user had presence.max_sessions_per_user live sessions$/,
		1, 10),
	'the server log says so');

# --- A failed tick, and the resync after it: the worker carries on.
my $worker = sql($node, 'SELECT worker_pid FROM presence.stats()');
cancel_while_waiting('presence.journal', 'presence worker', q{SELECT presence.disconnect('u10')});
my $tick_line = wait_line($tick, 1, 10);
like($tick_line && $tick_line->[1],
	qr/^presence worker: a tick failed, once since the last report: SQLSTATE 57014: canceling statement due to user request$/,
	'a failed tick is logged with its SQLSTATE and message');
my $resync_line = wait_line($resync, 1, 10);
like($resync_line && $resync_line->[1],
	qr/^presence worker: wrote the tables again from the registry, after a failed tick, once since the last report: SQLSTATE 57014: canceling statement due to user request$/,
	'so is the resync, with the cause');
is(sql($node, 'SELECT worker_pid FROM presence.stats()'), $worker, 'the same worker goes on');
ok(wait_for($node, q{SELECT count(*) = 9 FROM presence.sessions}), 'and the tables are right');

# A second one within the minute is counted, not logged.
cancel_while_waiting('presence.journal', 'presence worker', q{SELECT presence.disconnect('u9')});
ok(wait_for($node, q{SELECT count(*) = 8 FROM presence.sessions}), 'recovered again');

# --- A failed fold: the flusher carries on, and the journal keeps the rows.
my $flusher = sql($node, q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'presence flusher'});
cancel_while_waiting('presence.users', 'presence flusher', q{SELECT presence.disconnect('u8')});
my $fold_line = wait_line($fold, 1, 10);
like($fold_line && $fold_line->[1],
	qr/^presence flusher: a fold failed, once since the last report: SQLSTATE 57014: canceling statement due to user request$/,
	'a failed fold is logged with its SQLSTATE');
ok(wait_for($node, q{SELECT count(*) = 7 FROM presence.sessions}), 'the next fold took the change in');
is(sql($node, q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'presence flusher'}),
	$flusher, 'the same flusher goes on');

# --- A minute after the first lines, the counts of what was left out.
my $second = wait_line($full, 2, 90);
like($second && $second->[1],
	qr/^presence: refused calls, 5 times since the last report: SQLSTATE 53400: presence registry is full/,
	'the five refusals that followed, in one line');
ok($second && $second->[0] - $first->[0] >= 59.9,
	sprintf('a minute after the first (%.1f s)', $second ? $second->[0] - $first->[0] : -1));
my $tick2 = wait_line($tick, 2, 30);
ok($tick2 && $tick2->[0] - $tick_line->[0] >= 59.9 && $tick2->[1] =~ /, once since the last report: SQLSTATE 57014/,
	'the second failed tick, a minute after the first');
is(scalar(lines($tick)), 2, 'two lines for two failed ticks, a minute apart');
ok(!$node->log_contains(qr/presence (worker|flusher)".*exited/), 'neither process exited');

# --- A load that did not fit: the tables hold more than a smaller registry.
sql($node, q{ALTER SYSTEM SET presence.max_sessions_per_user = 50});
sql($node, q{ALTER SYSTEM SET presence.max_sessions = 30});
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted with room for 30');
sql($node, q{SELECT count(presence.connect('v' || i)) FROM generate_series(1, 20) i});
ok(wait_for($node, q{SELECT count(*) = 27 FROM presence.sessions}), '27 sessions written');
sql($node, q{ALTER SYSTEM SET presence.max_sessions = 10});
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted with room for 10');
ok( wait_line(
		qr/^presence worker: loaded only part of the tables into the registry, once since the last report: SQLSTATE 53400: presence registry is too small/,
		1, 10),
	'the load that did not fit is logged');
is(sql($node, 'SELECT sessions FROM presence.stats()'), '10', 'the registry holds what fits');

$node->stop;
done_testing();
