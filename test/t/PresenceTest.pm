# Helpers for presence's TAP tests: throwaway preloaded clusters, and a real
# LISTEN client (test/tools/listen) whose notifications the tests read.
package PresenceTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(presence_node listen_start listen_next listen_none
  listen_stop wait_for sql listen_next_in_order reload_and_wait);

# A started cluster with presence preloaded, CREATE EXTENSION done, short
# timeouts.  %conf overrides or adds settings; init => {...} goes to init().
sub presence_node
{
	my ($name, %conf) = @_;
	my $init = delete $conf{init} // {};
	my $extension = delete $conf{extension} // 1;
	my %settings = (
		shared_preload_libraries => 'presence',
		'presence.sweep_interval' => '50ms',
		'presence.flush_interval' => '200ms',
		'presence.reconnect_grace' => '0',
		# PostgreSQL::Test::Cluster turns it off; a crash test needs it.
		restart_after_crash => 'on',
		%conf);
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%$init);
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = '$settings{$_}'\n" } sort keys %settings));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION presence') if $extension;
	return $node;
}

sub sql
{
	my ($node, $query) = @_;
	return $node->safe_psql('postgres', $query);
}

# Polls a query until it returns 't', for at most $seconds (default 30).
sub wait_for
{
	my ($node, $query, $seconds) = @_;
	my $deadline = time + ($seconds // 30);
	while (time < $deadline)
	{
		my ($rc, $out) = $node->psql('postgres', $query);
		return 1 if $rc == 0 && $out eq 't';
		usleep(20_000);
	}
	return 0;
}

# Starts a LISTEN client on the node; returns once it is listening.
sub listen_start
{
	my ($node, $channel) = @_;
	my $out = '';
	my $err = '';
	my @cmd = ("$ENV{TESTDIR}/test/tools/listen", '-t', '300',
		'-c', $channel // 'presence', $node->connstr('postgres'));
	my $h = IPC::Run::start(\@cmd, '>', \$out, '2>', \$err);
	my $timer = IPC::Run::timer(30);
	$timer->start;
	$h->pump until $out =~ /^listening\n/ || $timer->is_expired;
	die "listen did not start: $err" unless $out =~ /^listening\n/;
	$out =~ s/^listening\n//;
	return { h => $h, out => \$out, err => \$err };
}

# The next notification, as a hash with 'received' (microseconds since the
# epoch) added, or undef if none arrives within $seconds.
sub listen_next
{
	my ($l, $seconds) = @_;
	my $deadline = time + ($seconds // 30);
	while (${ $l->{out} } !~ /\n/)
	{
		return undef if time >= $deadline || !$l->{h}->pumpable;
		$l->{h}->pump_nb;
		usleep(5_000);
	}
	${ $l->{out} } =~ s/^(\d+) (.*)\n//;
	my $n = decode_json($2);
	$n->{received} = $1;
	return $n;
}

# True if no notification arrives within $seconds.
sub listen_none
{
	my ($l, $seconds) = @_;
	my $n = listen_next($l, $seconds);
	diag('unexpected notification: ' . encode_json($n)) if defined $n;
	return !defined $n;
}

# The next notification, as listen_next, checking that its seq is one
# more than $$seq when that is defined; $$seq then holds it.
sub listen_next_in_order
{
	my ($l, $seq, $seconds) = @_;
	my $n = listen_next($l, $seconds);
	return undef unless defined $n;
	is($n->{seq}, $$seq + 1, 'seq grows by one') if defined $$seq;
	$$seq = $n->{seq};
	return $n;
}

# Sets presence settings with ALTER SYSTEM and a reload; returns once the
# worker has finished two ticks since (the first may have begun before).
sub reload_and_wait
{
	my ($node, %settings) = @_;
	sql($node, "ALTER SYSTEM SET $_ = '$settings{$_}'") for sort keys %settings;
	sql($node, 'SELECT pg_reload_conf()');
	my $ticks = sql($node, 'SELECT sweeps FROM presence.stats()');
	wait_for($node, "SELECT sweeps >= $ticks + 2 FROM presence.stats()");
}

sub listen_stop
{
	my ($l) = @_;
	$l->{h}->kill_kill;
}

1;
