# Mirrors: an application's users tables of 100,000 rows each (bigint ids,
# uuid ids, text ids, camelCase columns), owned by an ordinary role, kept in
# step by the flusher through logins, idling, presence.offline_after,
# invisibility and logouts, each change in the fold that writes it to
# presence.users (the first or second after the call), through a restart;
# written as the tables' owner; a row the table refuses and a row locked by
# another transaction hold back nothing else, and are told to the server
# log; a dropped table's mirror goes; pg_dump keeps the configuration.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $rows = 100_000;
my $node = presence_node('mirror',
	'presence.session_timeout' => '60s',
	'presence.idle_timeout' => '1s',
	'presence.offline_after' => '5s',
	'presence.flush_interval' => '300ms',
	'presence.max_sessions' => '10000');

# --- The application: its role, its tables, stale flags from its old code.
sql($node, q{
CREATE ROLE app_owner;
CREATE SCHEMA app AUTHORIZATION app_owner;
GRANT EXECUTE ON FUNCTION presence.mirror(regclass, name, name, name, name),
  presence.unmirror(regclass) TO app_owner;
SET ROLE app_owner;
CREATE TABLE app.users_bigint (id bigint PRIMARY KEY, name text,
  is_online boolean NOT NULL DEFAULT false, last_active timestamptz, status text);
CREATE TABLE app.users_uuid (id uuid PRIMARY KEY, name text,
  is_online boolean NOT NULL DEFAULT false, last_active timestamptz, status text);
CREATE TABLE app.users_text (id text PRIMARY KEY, name text,
  is_online boolean NOT NULL DEFAULT false, last_active timestamptz, status text);
CREATE TABLE app.users_camel (id bigint PRIMARY KEY, name text,
  "isOnline" boolean NOT NULL DEFAULT false, "lastActive" timestamptz,
  "userStatus" varchar(16));
} . join('', map { "
INSERT INTO app.users_$_->[0] (id, name) SELECT $_->[1], 'user ' || i FROM generate_series(1, $rows) i;
CREATE INDEX ON app.users_$_->[0] ($_->[2]);
" } ([ 'bigint', 'i', 'last_active' ], [ 'uuid', 'md5(i::text)::uuid', 'last_active' ],
	 [ 'text', 'i::text', 'last_active' ], [ 'camel', 'i', '"lastActive"' ])) . q{
UPDATE app.users_bigint SET is_online = true, status = 'online' WHERE id <= 500;
UPDATE app.users_camel SET "isOnline" = true, "userStatus" = 'online' WHERE id <= 500;
-- Who writes: a statement trigger that counts the rows.
CREATE TABLE app.writes (who name, superuser boolean, n bigint);
CREATE FUNCTION app.count_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.writes SELECT current_user, r.rolsuper, (SELECT count(*) FROM changed)
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
  RETURN NULL;
END $$;
CREATE TRIGGER count_writes AFTER UPDATE ON app.users_camel
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION app.count_writes();
VACUUM ANALYZE;
SELECT presence.mirror('app.users_bigint', 'id', 'is_online', 'last_active', 'status');
SELECT presence.mirror('app.users_uuid', 'id', 'is_online', 'last_active', 'status');
SELECT presence.mirror('app.users_text', 'id', 'is_online', 'last_active', 'status');
SELECT presence.mirror('app.users_camel', 'id', 'isOnline', 'lastActive', 'userStatus');
});

# Each table against presence.users, in one snapshot: a row whose user is
# in presence.users shows its status as others see it (and a visible
# user's last activity); any other row shows offline.  The flusher writes
# both in one transaction, so this holds whenever the mirrors are synced.
my %tables = (
	bigint => [ 'app.users_bigint', 't.id::text', 'is_online', 'last_active', 'status' ],
	uuid => [ 'app.users_uuid', 't.id::text', 'is_online', 'last_active', 'status' ],
	text => [ 'app.users_text', 't.id', 'is_online', 'last_active', 'status' ],
	camel => [ 'app.users_camel', 't.id::text', '"isOnline"', '"lastActive"', '"userStatus"' ]);
my @names = ('bigint', 'uuid', 'text', 'camel');

sub differing
{
	my ($name) = @_;
	my ($table, $id, $online, $last, $status) = @{ $tables{$name} };
	return qq{(SELECT count(*) FROM $table t LEFT JOIN presence.users u ON u.user_id = $id
	  WHERE CASE WHEN u.user_id IS NULL THEN t.$online OR t.$status IS DISTINCT FROM 'offline'
	        ELSE t.$online IS DISTINCT FROM u.is_online OR t.$status IS DISTINCT FROM u.status
	          OR (u.visible AND u.last_active IS NOT NULL AND t.$last IS DISTINCT FROM u.last_active) END)};
}

# presence.users' counts by status, each table's online and away rows, and
# the rows that differ from presence.users.
sub state_of
{
	my ($n, @only) = @_;
	@only = @names unless @only;
	return sql($n // $node,
		q{SELECT 'users ' || (SELECT COALESCE(string_agg(status || '=' || c, ' ' ORDER BY status), '')
		    FROM (SELECT status, count(*) AS c FROM presence.users GROUP BY status) s)}
		  . join('', map {
			  my ($table, $id, $online, $last, $status) = @{ $tables{$_} };
			  qq{ || '; $_ ' || (SELECT count(*) FILTER (WHERE $online AND $status = 'online')
			     || '/' || count(*) FILTER (WHERE $online AND $status = 'away') FROM $table t)
			     || ' differ ' || } . differing($_)
		  } @only));
}

sub wait_state
{
	my ($expected, $during, @only) = @_;
	my $deadline = time + 60;
	my $got;
	while (time < $deadline)
	{
		$during->() if $during;
		$got = state_of(undef, @only);
		return $got if $got eq $expected;
		usleep(50_000);
	}
	return $got;
}

sub flushes { sql($node, 'SELECT flushes FROM presence.stats()') }

sub numeric { my ($from, $to) = @_; "SELECT i::text AS id FROM generate_series($from, $to) i" }
sub uuids { my ($from, $to) = @_; "SELECT md5(i::text)::uuid::text AS id FROM generate_series($from, $to) i" }

sub call_all
{
	my ($call, @sets) = @_;
	sql($node, "SELECT count($call) FROM ($_) u") for @sets;
}

# --- The mirrors sync: the stale flags go, every row says offline.
is( wait_state('users ; bigint 0/0 differ 0; uuid 0/0 differ 0; text 0/0 differ 0; camel 0/0 differ 0'),
	'users ; bigint 0/0 differ 0; uuid 0/0 differ 0; text 0/0 differ 0; camel 0/0 differ 0',
	'the mirrors synced the tables: nobody online');
is(sql($node, q{SELECT count(*) FROM presence.mirror_state}), '4', 'four mirrors synced');

# --- Logins: 1000 numeric users and 1000 uuid users.
my $before = flushes();
call_all(q{presence.connect(u.id)}, numeric(1, 1000), uuids(1, 1000));
is( wait_state('users online=2000; bigint 1000/0 differ 0; uuid 1000/0 differ 0; text 1000/0 differ 0; camel 1000/0 differ 0'),
	'users online=2000; bigint 1000/0 differ 0; uuid 1000/0 differ 0; text 1000/0 differ 0; camel 1000/0 differ 0',
	'logins: online in every table');
ok(flushes() - $before <= 2, 'written by the first or second fold after the calls');
is( sql($node, q{SELECT count(*) FROM app.users_bigint t
                  WHERE t.id <= 1000 AND t.last_active = presence.last_active(t.id::text)}),
	'1000', 'with the last activity of the login');

# --- Idling: users 1 to 200 of each kind stay active, the others go away,
# then offline after presence.offline_after.
my @active = ([ 1, 200 ]);
my $keep_active = sub {
	call_all(q{presence.heartbeat(u.id)}, map { (numeric(@$_), uuids(@$_)) } @active);
};
is( wait_state('users away=1600 online=400; bigint 200/800 differ 0; uuid 200/800 differ 0; text 200/800 differ 0; camel 200/800 differ 0', $keep_active),
	'users away=1600 online=400; bigint 200/800 differ 0; uuid 200/800 differ 0; text 200/800 differ 0; camel 200/800 differ 0',
	'idle users are away in every table, active ones online');
my $last_seen = sql($node, q{SELECT string_agg(last_active::text, ',' ORDER BY id) FROM app.users_bigint WHERE id BETWEEN 201 AND 210});
is( wait_state('users offline=1600 online=400; bigint 200/0 differ 0; uuid 200/0 differ 0; text 200/0 differ 0; camel 200/0 differ 0', $keep_active),
	'users offline=1600 online=400; bigint 200/0 differ 0; uuid 200/0 differ 0; text 200/0 differ 0; camel 200/0 differ 0',
	'after presence.offline_after they are offline, their sessions still live');
is(sql($node, q{SELECT sessions FROM presence.stats()}), '2000', 'every session lives');
is(sql($node, q{SELECT string_agg(last_active::text, ',' ORDER BY id) FROM app.users_bigint WHERE id BETWEEN 201 AND 210}),
	$last_seen, 'their last activity is still the login\'s');

# --- Activity brings users 201 to 300 back.
$before = flushes();
call_all(q{presence.heartbeat(u.id)}, numeric(201, 300), uuids(201, 300));
@active = ([ 1, 300 ]);
is( wait_state('users offline=1400 online=600; bigint 300/0 differ 0; uuid 300/0 differ 0; text 300/0 differ 0; camel 300/0 differ 0', $keep_active),
	'users offline=1400 online=600; bigint 300/0 differ 0; uuid 300/0 differ 0; text 300/0 differ 0; camel 300/0 differ 0',
	'activity: online again in every table');

# --- Invisibility: users 1 to 50 hide; their last activity is kept.
my $hidden_before = sql($node, q{SELECT string_agg(last_active::text, ',' ORDER BY id) FROM app.users_bigint WHERE id <= 50});
$before = flushes();
call_all(q{presence.set_visible(u.id, false)}, numeric(1, 50));
is( wait_state('users offline=1450 online=550; bigint 250/0 differ 0; uuid 300/0 differ 0; text 250/0 differ 0; camel 250/0 differ 0', $keep_active),
	'users offline=1450 online=550; bigint 250/0 differ 0; uuid 300/0 differ 0; text 250/0 differ 0; camel 250/0 differ 0',
	'invisible users are offline in every table');
ok(flushes() - $before <= 2, 'written by the first or second fold after the calls');
is(sql($node, q{SELECT string_agg(last_active::text, ',' ORDER BY id) FROM app.users_bigint WHERE id <= 50}),
	$hidden_before, 'their last activity is not written while they hide');

# --- Logouts: users 51 to 100 of each kind.
$before = flushes();
@active = ([ 1, 50 ], [ 101, 300 ]);
call_all(q{presence.disconnect(u.id)}, numeric(51, 100), uuids(51, 100));
is( wait_state('users offline=1550 online=450; bigint 200/0 differ 0; uuid 250/0 differ 0; text 200/0 differ 0; camel 200/0 differ 0', $keep_active),
	'users offline=1550 online=450; bigint 200/0 differ 0; uuid 250/0 differ 0; text 200/0 differ 0; camel 200/0 differ 0',
	'logouts: offline in every table');
ok(flushes() - $before <= 2, 'written by the first or second fold after the calls');

# --- The writes were the owner's, never the superuser's.
is(sql($node, q{SELECT string_agg(DISTINCT who || ':' || superuser, ',') || ' ' || (sum(n) > 2000) FROM app.writes}),
	'app_owner:false true', 'the trigger saw the table\'s owner, not a superuser');

# --- A restart: the configuration stays, the tables keep following.
$node->restart;
ok(wait_for($node, 'SELECT ready FROM presence.stats()'), 'restarted');
is(sql($node, q{SELECT count(*) FROM presence.mirrors}), '4', 'the four mirrors are configured');
@active = ([ 1, 50 ], [ 101, 200 ], [ 5001, 5100 ]);
call_all(q{presence.connect(u.id)}, numeric(5001, 5100), uuids(5001, 5100));
call_all(q{presence.disconnect(u.id)}, numeric(201, 1000), uuids(201, 1000));
call_all(q{presence.set_visible(u.id, true)}, numeric(1, 50));
is( wait_state('users offline=1700 online=500; bigint 250/0 differ 0; uuid 250/0 differ 0; text 250/0 differ 0; camel 250/0 differ 0', $keep_active),
	'users offline=1700 online=500; bigint 250/0 differ 0; uuid 250/0 differ 0; text 250/0 differ 0; camel 250/0 differ 0',
	'after the restart: logins, logouts and visibility reach every table');

# --- A row the table refuses is skipped, the rest written, the log told.
sql($node, q{
SET ROLE app_owner;
CREATE FUNCTION app.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = '77' AND NEW.is_online THEN RAISE EXCEPTION 'user 77 may not be online'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE UPDATE ON app.users_text FOR EACH ROW EXECUTE FUNCTION app.refuse();
});
sql($node, q{SELECT presence.connect('77'), presence.connect('78')});
ok( wait_for($node, q{SELECT bool_and(t.is_online) FROM app.users_bigint t WHERE t.id IN (77, 78)}),
	'77 and 78 online in app.users_bigint');
is(sql($node, q{SELECT string_agg(id || ':' || is_online, ',' ORDER BY id) FROM app.users_text WHERE id IN ('77', '78')}),
	'77:false,78:true', 'app.users_text refused 77 alone');
ok( $node->wait_for_log(qr/presence flusher: a mirror skipped rows that its table refused, once since the last report: SQLSTATE P0001: app\.users_text refused the row of user 77: user 77 may not be online/),
	'the server log says which table refused which row, and why');
sql($node, q{SELECT presence.disconnect('77')});
ok(wait_for($node, q{SELECT NOT is_online FROM app.users_text WHERE id = '77'}), 'offline is written');

# --- A row locked by an application transaction: that mirror waits a flush
# interval, gives up for this fold, and writes its users at a later one.
my $app = $node->background_psql('postgres');
$app->query_safe('BEGIN');
$app->query_safe('SELECT 1 FROM app.users_bigint WHERE id = 79 FOR UPDATE');
sql($node, q{SELECT presence.connect('79'), presence.connect('80')});
ok(wait_for($node, q{SELECT bool_and("isOnline") FROM app.users_camel WHERE id IN (79, 80)}),
	'the other mirrors are written');
ok( $node->wait_for_log(qr/presence flusher: a mirror was not written, .*SQLSTATE 55P03: app\.users_bigint: canceling statement due to lock timeout/),
	'the server log says why app.users_bigint was not');
is( sql($node, q{SELECT pending @> '{79,80}' FROM presence.mirror_state WHERE target = 'app.users_bigint'::regclass}),
	't', 'its users wait in presence.mirror_state');
is(sql($node, q{SELECT count(*) FROM app.users_bigint WHERE id IN (79, 80) AND is_online}), '0',
	'not written meanwhile');
$app->query_safe('COMMIT');
$app->quit;
ok(wait_for($node, q{SELECT bool_and(is_online) FROM app.users_bigint WHERE id IN (79, 80)}),
	'written once the row is free');
is(sql($node, q{SELECT cardinality(pending) FROM presence.mirror_state WHERE target = 'app.users_bigint'::regclass}),
	'0', 'nothing left pending');
is(state_of(undef, 'bigint') =~ s/.*differ //r, '0', 'app.users_bigint is in step again');

# --- A dropped table's mirror goes with it.
sql($node, q{SET ROLE app_owner; DROP TABLE app.users_camel});
is(sql($node, q{SELECT string_agg(target::text, ',' ORDER BY target::text) FROM presence.mirrors}),
	'app.users_bigint,app.users_text,app.users_uuid', 'three mirrors left');

# --- pg_dump keeps the configuration; a restored mirror is synced again.
my $dump = $node->basedir . '/mirror.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
my $target = presence_node('restored', extension => 0,
	'presence.session_timeout' => '60s',
	'presence.max_sessions' => '10000');
sql($target, 'CREATE ROLE app_owner');
$target->command_ok([ 'pg_restore', '--exit-on-error', '-d', $target->connstr('postgres'), $dump ],
	'pg_restore');
is(sql($target, q{SELECT string_agg(target || ' ' || id_column || ' ' || status_column || ' ' || created_by, ',' ORDER BY target::text) FROM presence.mirrors}),
	'app.users_bigint id status app_owner,app.users_text id status app_owner,app.users_uuid id status app_owner',
	'the configuration is restored');
ok(wait_for($target, q{SELECT count(*) = 3 FROM presence.mirror_state}), 'and synced by the new server\'s flusher');
sql($target, q{SELECT presence.connect('90')});
ok(wait_for($target, q{SELECT is_online FROM app.users_bigint WHERE id = 90}), 'which follows changes');
ok( wait_for($target, 'SELECT ' . join(' + ', map { differing($_) } 'bigint', 'uuid', 'text') . ' = 0'),
	'the restored tables are in step with the restored presence.users');
$target->stop;

$node->stop;
done_testing();
