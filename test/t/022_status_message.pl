# Status messages seen by a LISTEN client: announced with an event of their
# own when they change, cleared by the sweep when they expire, never shown
# for a user others do not see (offline, invisible, inactive) and announced
# after the status when the user is shown again; kept across a restart and
# by pg_dump; a notification under NOTIFY's limit whatever the ids and text.
use strict;
use warnings FATAL => 'all';

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('status_message',
	'presence.session_timeout' => '60s');
my $l = listen_start($node);
my $seq;

# The next notification as "event user channel status message expires",
# checking that seq grows by one.
sub next_event
{
	my ($within) = @_;
	my $n = listen_next_in_order($l, \$seq, $within // 10);
	return 'none' unless defined $n;
	return join(' ', $n->{event} // 'status', $n->{user_id}, $n->{channel} // '-',
		$n->{status} // '-',
		exists $n->{status_message} ? $n->{status_message} // 'null' : '-',
		exists $n->{expires_at} ? (defined $n->{expires_at} ? 'expires' : 'never') : '-');
}

# --- Set, announced with its own event and its expiry; set again, nothing.
sql($node, q{SELECT presence.join('room:1', 'mia')});
is(next_event(), 'status mia - online - -', 'mia online');
is(next_event(), 'join mia room:1 online - -', 'mia joins room:1');
my $expires = sql($node, q{SELECT now() + interval '1.5 s'});
my $t0 = time;
sql($node, qq{SELECT presence.set_status_message('mia', 'In a meeting', '$expires')});
my $n = listen_next($l, 10);
$seq = $n->{seq};
is(join(' ', sort keys %$n), 'event expires_at received seq status_message user_id',
	'the notification: seq, event, user_id, status_message, expires_at');
is("$n->{event} $n->{user_id} $n->{status_message}", 'status_message mia In a meeting',
	'event status_message, with the text');
is(sql($node, qq{SELECT '$n->{expires_at}'::timestamptz = '$expires'}), 't',
	'expires_at is when it expires');
sql($node, qq{SELECT presence.set_status_message('mia', 'In a meeting', '$expires')});
ok(listen_none($l, 0.3), 'the same message again: nothing');

# --- Cleared by the sweep when it expires.
is(next_event(4), 'status_message mia - - null never', 'expired: announced as cleared');
my $took = time - $t0;
ok($took >= 1.4 && $took < 4, "about 1.5 s after it was set ($took s)");
ok(wait_for($node, q{SELECT status_message IS NULL FROM presence.users WHERE user_id = 'mia'}),
	'and cleared in presence.users');

# --- Invisible: hidden with the user, announced again after the status.
sql($node, q{SELECT presence.set_status_message('mia', 'Focusing')});
is(next_event(), 'status_message mia - - Focusing never', 'a message that does not expire');
sql($node, q{SELECT presence.set_visible('mia', false)});
is(next_event(), 'status mia - offline - -', 'invisible: one offline, no event for the message');
sql($node, q{SELECT presence.set_status_message('mia', 'Hidden work')});
ok(listen_none($l, 0.5), 'a change while invisible is not announced');
is(sql($node, q{SELECT presence.status_message('mia') IS NULL}), 't', 'nor shown');
sql($node, q{SELECT presence.set_visible('mia', true)});
is(next_event(), 'status mia - online - -', 'visible: the status first');
is(next_event(), 'status_message mia - - Hidden work never', 'then the message');
is(next_event(), 'join mia room:1 online - -', 'then the channels');

# --- Offline: kept, not shown, announced when the user comes.
sql($node, q{SELECT presence.set_status_message('noa', 'On vacation')});
ok(listen_none($l, 0.5), 'an offline user\'s message is not announced');
is(sql($node, q{SELECT presence.status_message('noa') IS NULL}), 't', 'nor shown');
sql($node, q{SELECT presence.connect('noa')});
is(next_event(), 'status noa - online - -', 'noa online');
is(next_event(), 'status_message noa - - On vacation never', 'with her message');

# --- Hidden by presence.offline_after too.
reload_and_wait($node, 'presence.idle_timeout' => '300ms', 'presence.offline_after' => '600ms');
# Away, then offline (or offline at once, for whoever was idle long enough).
my %offline;
my @events;
while (keys %offline < 2)
{
	my $e = next_event(3);
	push @events, $e;
	last if $e eq 'none';
	$offline{$1} = 1 if $e =~ /^status (\w+) - offline/;
}
is(join(', ', grep { !/^status (mia|noa) - (away|offline) - -$/ } @events), '',
	'both go offline, with no event for their messages');
sql($node, q{SELECT presence.heartbeat('mia')});
is(next_event(), 'status mia - online - -', 'mia active again');
is(next_event(), 'status_message mia - - Hidden work never', 'her message');
is(next_event(), 'join mia room:1 online - -', 'her channel');
reload_and_wait($node, 'presence.idle_timeout' => '5min', 'presence.offline_after' => '0');
is(next_event(), 'status noa - away - -', 'offline_after off: noa away again');
is(next_event(), 'status_message noa - - On vacation never', 'with her message');

# --- Kept across a restart, with nothing announced; an expiry that
# passed while the server was down is announced after it.
sql($node, q{SELECT presence.disconnect('noa')});
is(next_event(), 'status noa - offline - -', 'noa logs out, her message kept');
my $until = sql($node, q{SELECT extract(epoch FROM now() + interval '1 s')});
sql($node, q{SELECT presence.set_status_message('mia', 'Back soon', now() + interval '1 s')});
is(next_event(), 'status_message mia - - Back soon expires', 'mia: a message for a second');
listen_stop($l);
ok( wait_for($node,
		q{SELECT string_agg(user_id || ':' || status_message, ',' ORDER BY user_id) = 'mia:Back soon,noa:On vacation'
		    FROM presence.users}),
	'both in presence.users');
my $last_seq = $seq;
$node->stop;
# The message expires while the server is down.
usleep(50_000) while time < $until + 0.1;
$node->start;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted');
$l = listen_start($node);
ok(wait_for($node, q{SELECT status_message IS NULL FROM presence.users WHERE user_id = 'mia'}),
	'the expired message is cleared from presence.users');
is(sql($node, q{SELECT presence.status_message('mia') IS NULL}), 't', 'and not shown');
sql($node, q{SELECT presence.set_status_message('mia', 'Reviewing')});
undef $seq;
is(next_event(), 'status_message mia - - Reviewing never', 'mia sets another');
is($seq, $last_seq + 2,
	'one notification went out between, before this listener came: the clearing');
is(sql($node, q{SELECT presence.status_message('noa') IS NULL}), 't', 'noa is offline: hidden');
sql($node, q{SELECT presence.connect('noa')});
is(next_event(), 'status noa - online - -', 'noa comes back');
is(next_event(), 'status_message noa - - On vacation never', 'her message survived the restart');

# --- Ids and text that JSON must escape: the largest payload stays under
# NOTIFY's 8000 bytes and reads back exactly.
my $id = '"\\' x 128;
my $text = join('', map { chr(1 + $_ % 30) } 1 .. 140);
sql($node, q{SELECT presence.connect(repeat('"\', 128))});
is(next_event(), "status $id - online - -", 'a 256-byte id that JSON must escape');
sql($node, q{SELECT presence.set_status_message(repeat('"\', 128),
	(SELECT string_agg(chr(1 + i % 30), '' ORDER BY i) FROM generate_series(1, 140) i),
	'9999-12-31 23:59:59.999999+00')});
$n = listen_next($l, 10);
$seq = $n->{seq};
is($n->{status_message}, $text, '140 control characters come back as they were');
is($n->{user_id}, $id, 'and the id');
my $payload = JSON::PP->new->canonical->encode({ map { $_ => $n->{$_} } grep { $_ ne 'received' } keys %$n });
ok(length($payload) < 8000, 'encoded as JSON, it is under 8000 bytes (' . length($payload) . ')');

# --- pg_dump keeps the messages.
ok(wait_for($node, q{SELECT status_message = 'Reviewing' FROM presence.users WHERE user_id = 'mia'}),
	'written');
listen_stop($l);
my $dump = $node->basedir . '/messages.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
$node->stop;
my $target = presence_node('target', extension => 0, 'presence.session_timeout' => '60s');
$target->command_ok([ 'pg_restore', '--exit-on-error', '-d', $target->connstr('postgres'), $dump ],
	'pg_restore');
ok(wait_for($target, q{SELECT presence.status_message('mia') = 'Reviewing'}),
	'mia\'s message is back with her session');
ok(wait_for($target, q{SELECT presence.status_message('noa') = 'On vacation'}), 'and noa\'s');
$target->stop;

done_testing();
