# A hostile role with CREATE on public plants functions, operators, types
# and a collation named like every one the extension's queries use, and
# puts public first on every search_path that reaches the worker, the
# flusher and the callers.  The worker's load, fold, resync (after a failed
# tick), merge and notifications run, and every SQL function is called:
# none of the planted objects ever runs, and the role never becomes a
# superuser.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use PresenceTest;

my $node = presence_node('hostile', 'presence.session_timeout' => '60s');
my $super = sql($node, 'SELECT current_user');

# The test's own queries must not run the planted objects either.
sub safe
{
	my ($query) = @_;
	return sql($node, "SET search_path = pg_catalog, pg_temp;\n$query");
}

sub safe_wait
{
	my ($query, $seconds) = @_;
	return wait_for($node, "SET search_path = pg_catalog, pg_temp;\n$query",
		$seconds);
}

sub as_role
{
	my ($role, $query) = @_;
	return $node->safe_psql('postgres', $query, extra_params => [ '-U', $role ]);
}

# Written before the hostile objects exist, so the first load has rows.
sql($node, q{SELECT presence.connect('Ann', 'web', '{"n": 1}'), presence.connect('ann')});
sql($node, q{SELECT presence.set_visible('ivy', false), presence.connect('ivy')});
sql($node, q{SELECT presence.connect('old'), presence.disconnect('old')});
ok( safe_wait(q{SELECT count(*) = 3 FROM presence.sessions}),
	'sessions written before the attack');

# The roles: mallory may create in public (the default of databases created
# before PostgreSQL 15), app has the GRANTs docs/sql.md shows.
sql($node, q{
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON SCHEMA public TO PUBLIC;
	CREATE ROLE app LOGIN;
	GRANT EXECUTE ON FUNCTION
	  presence.connect(text, text, jsonb, boolean),
	  presence.heartbeat(text, text, boolean),
	  presence.disconnect(text, text),
	  presence.set_visible(text, boolean),
	  presence.sessions(text),
	  presence.stats()
	  TO app;
});

# Every planted object calls hijacked(), which counts itself in a sequence
# (a rollback does not undo that), writes HIJACKED to the server log and
# tries to make mallory a superuser; then it does what the real one does,
# so nothing else would give it away.
as_role('mallory', q{
	SET search_path = public, pg_catalog;
	CREATE SEQUENCE public.hijack_runs;
	GRANT USAGE, UPDATE ON SEQUENCE public.hijack_runs TO PUBLIC;
	CREATE FUNCTION public.hijacked(what pg_catalog.text) RETURNS boolean
	LANGUAGE plpgsql AS $$
	BEGIN
	  PERFORM pg_catalog.nextval('public.hijack_runs'::pg_catalog.regclass);
	  RAISE LOG 'HIJACKED: % ran as %', what, current_user;
	  BEGIN
	    EXECUTE 'ALTER ROLE mallory SUPERUSER';
	  EXCEPTION WHEN OTHERS THEN NULL;
	  END;
	  RETURN true;
	END $$;

	-- Functions: unnest of each array type the queries unnest, max,
	-- setval, and the advisory lock 1.0 used.  (GREATEST and COALESCE are
	-- syntax, not functions.)
	CREATE FUNCTION public.unnest(a pg_catalog.text[]) RETURNS SETOF pg_catalog.text
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('unnest(text[])');
	  RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
	CREATE FUNCTION public.unnest(a pg_catalog.timestamptz[]) RETURNS SETOF pg_catalog.timestamptz
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('unnest(timestamptz[])');
	  RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
	CREATE FUNCTION public.unnest(a boolean[]) RETURNS SETOF boolean
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('unnest(boolean[])');
	  RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
	CREATE FUNCTION public.unnest(a anyarray) RETURNS SETOF anyelement
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('unnest(anyarray)');
	  RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
	CREATE FUNCTION public.max_step(s bigint, v bigint) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('max(bigint)');
	  RETURN GREATEST(s, v); END $$;
	CREATE AGGREGATE public.max(bigint) (SFUNC = public.max_step, STYPE = bigint);
	CREATE FUNCTION public.setval(s pg_catalog.regclass, v bigint, c boolean) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('setval(regclass)');
	  RETURN pg_catalog.setval(s, v, c); END $$;
	CREATE FUNCTION public.setval(s pg_catalog.text, v bigint, c boolean) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('setval(text)');
	  RETURN pg_catalog.setval(s::pg_catalog.regclass, v, c); END $$;
	CREATE FUNCTION public.pg_advisory_xact_lock(a integer, b integer) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('pg_advisory_xact_lock');
	  PERFORM pg_catalog.pg_advisory_xact_lock(a, b); END $$;

	-- Operators: each one the queries use, with the operand types they use.
	CREATE FUNCTION public.op_text_eq(a pg_catalog.text, b pg_catalog.text) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('=(text,text)');
	  RETURN a OPERATOR(pg_catalog.=) b; END $$;
	CREATE OPERATOR public.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text,
	  FUNCTION = public.op_text_eq);
	CREATE FUNCTION public.op_text_ne(a pg_catalog.text, b pg_catalog.text) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('<>(text,text)');
	  RETURN a OPERATOR(pg_catalog.<>) b; END $$;
	CREATE OPERATOR public.<> (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text,
	  FUNCTION = public.op_text_ne);
	CREATE FUNCTION public.op_text_cat(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.text
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('||(text,text)');
	  RETURN a OPERATOR(pg_catalog.||) b; END $$;
	CREATE OPERATOR public.|| (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text,
	  FUNCTION = public.op_text_cat);
	CREATE FUNCTION public.op_int8_le(a bigint, b bigint) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('<=(bigint,bigint)');
	  RETURN a OPERATOR(pg_catalog.<=) b; END $$;
	CREATE OPERATOR public.<= (LEFTARG = bigint, RIGHTARG = bigint,
	  FUNCTION = public.op_int8_le);
	CREATE FUNCTION public.op_int8_eq(a bigint, b bigint) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('=(bigint,bigint)');
	  RETURN a OPERATOR(pg_catalog.=) b; END $$;
	CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint,
	  FUNCTION = public.op_int8_eq);
	CREATE FUNCTION public.op_int84_pl(a bigint, b integer) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('+(bigint,integer)');
	  RETURN a OPERATOR(pg_catalog.+) b; END $$;
	CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = integer,
	  FUNCTION = public.op_int84_pl);
	CREATE FUNCTION public.op_int84_mi(a bigint, b integer) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('-(bigint,integer)');
	  RETURN a OPERATOR(pg_catalog.-) b; END $$;
	CREATE OPERATOR public.- (LEFTARG = bigint, RIGHTARG = integer,
	  FUNCTION = public.op_int84_mi);
	CREATE FUNCTION public.op_bool_eq(a boolean, b boolean) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hijacked('=(boolean,boolean)');
	  RETURN a OPERATOR(pg_catalog.=) b; END $$;
	CREATE OPERATOR public.= (LEFTARG = boolean, RIGHTARG = boolean,
	  FUNCTION = public.op_bool_eq);

	-- A collation "C" that folds case: if a fold's DISTINCT ON used it,
	-- Ann and ann would be one row.
	CREATE COLLATION public."C" (provider = icu, locale = 'und-u-ks-level2',
	  deterministic = false);

	-- Types the queries cast to, last: from here on, text in public is this.
	CREATE DOMAIN public.jsonb AS pg_catalog.jsonb CHECK (public.hijacked('jsonb'));
	CREATE DOMAIN public.text AS pg_catalog.text CHECK (public.hijacked('text'));
	CREATE DOMAIN public.regclass AS pg_catalog.regclass CHECK (public.hijacked('regclass'));
});

sub hijacks
{
	return safe(q{SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.hijack_runs});
}

# Keep the test honest: each planted object runs when a query names it the
# way 1.0's queries did, with public first on the path.
my @probes = (
	[ 'unnest(text[])', q{SELECT count(*) FROM unnest(ARRAY['a']::pg_catalog.text[])} ],
	[ 'unnest(timestamptz[])', q{SELECT count(*) FROM unnest(ARRAY[now()])} ],
	[ 'unnest(boolean[])', q{SELECT count(*) FROM unnest(ARRAY[true])} ],
	[ 'unnest(anyarray)', q{SELECT count(*) FROM unnest(ARRAY[1])} ],
	[ 'max(bigint)', q{SELECT max(x) FROM (VALUES (1::bigint)) v(x)} ],
	[ 'setval', q{CREATE TEMP SEQUENCE probe; SELECT setval('probe', 5, true)} ],
	[ 'pg_advisory_xact_lock', q{SELECT pg_advisory_xact_lock(1, 2)} ],
	[ '=(text,text)', q{SELECT 'a'::pg_catalog.text = 'a'} ],
	[ '<>(text,text)', q{SELECT 'a'::pg_catalog.text <> 'offline'} ],
	[ '||(text,text)', q{SELECT 'a'::pg_catalog.text || 'b'} ],
	[ '<=(bigint,bigint)', q{SELECT 1::bigint <= 2::bigint} ],
	[ '=(bigint,bigint)', q{SELECT 1::bigint = 2::bigint} ],
	[ '+(bigint,integer)', q{SELECT 1::bigint + 2} ],
	[ '-(bigint,integer)', q{SELECT 1::bigint - 2} ],
	[ '=(boolean,boolean)', q{SELECT true = false} ],
	[ '::jsonb', q{SELECT '{}'::jsonb} ],
	[ '::text', q{SELECT 1::text} ],
	[ '::regclass', q{SELECT 'pg_class'::regclass} ]);
for my $probe (@probes)
{
	my ($name, $query) = @$probe;
	my $before = hijacks();
	as_role('mallory', "SET search_path = public, pg_catalog;\n$query");
	ok(hijacks() > $before, "the planted $name runs when a query names it unqualified");
}
is( as_role('mallory', q{SET search_path = public, pg_catalog;
		SELECT count(DISTINCT x COLLATE "C") FROM (VALUES ('Ann'::pg_catalog.text), ('ann')) v(x)}),
	'1', 'the planted collation "C" folds case');
safe(q{SELECT setval('public.hijack_runs', 1, false)});
is(hijacks(), '0', 'counter reset');
is(safe(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'mallory is no superuser after the probes');
my $log_offset = -s $node->logfile;

# public first, everywhere a search_path can come from.
sql($node, qq{
	ALTER SYSTEM SET search_path = public, pg_catalog;
	ALTER DATABASE postgres SET search_path = public, pg_catalog;
	ALTER ROLE "$super" SET search_path = public, pg_catalog;
	ALTER ROLE app SET search_path = public, pg_catalog;
	ALTER ROLE mallory SET search_path = public, pg_catalog;
});

# The load: a restart (the worker folds at SIGTERM, the new one loads).
$node->restart;
ok(safe_wait('SELECT ready FROM presence.stats()'), 'loaded after a restart');
is(sql($node, 'SHOW search_path'), 'public, pg_catalog', 'a new connection has public first');
is( as_role('app', q{SELECT string_agg(format('%s:%s', user_id, sessions), ',' ORDER BY user_id COLLATE pg_catalog."C") FROM presence.online_users()}),
	'Ann:1,ann:1', 'both sessions loaded (ivy is invisible)');

# The fold, with ids that only differ in case, and a meta cast to jsonb.
as_role('app', q{SELECT presence.connect('Cat', 'web', '{"room": 1}'), presence.connect('cat')});
ok( safe_wait(q{SELECT count(*) = 2 FROM presence.users WHERE lower(user_id) = 'cat'}),
	'the flusher folded Cat and cat into two rows');
is( safe(q{SELECT meta->>'room' FROM presence.sessions WHERE user_id = 'Cat'}),
	'1', 'with Cat\'s meta');

# A failed tick, and the resync after it: a lock the tick needs is held,
# the worker is cancelled while it waits, and the lock is let go.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE presence.journal IN ACCESS EXCLUSIVE MODE');
as_role('app', q{SELECT presence.connect('dan')});
ok( safe_wait(q{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE backend_type = 'presence worker'}),
	'the worker waits for the journal');
safe(q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'presence worker'});
$locker->query_safe('COMMIT');
$locker->quit;
ok( safe_wait(q{SELECT count(*) = 1 FROM presence.sessions WHERE user_id = 'dan'}),
	'after the failed tick the tables were written again');

# The merge of rows someone else inserts (a restore).
safe(q{
	BEGIN;
	INSERT INTO presence.users VALUES ('rex', true, 'online', now(), true);
	INSERT INTO presence.sessions VALUES ('rex', 'restored', now(), '{"r": 1}', false);
	COMMIT;
});
ok(safe_wait(q{SELECT presence.status('rex') = 'online'}), 'inserted rows merged');

# Every SQL function, as the application role and as the superuser, both
# with public first on their paths.
for my $role ('app', $super)
{
	my $out = as_role($role, q{
		SELECT presence.connect('eve', 'tab', '{"x": 1}', true);
		SELECT presence.heartbeat('eve', 'tab');
		SELECT presence.heartbeat('eve', 'new-tab', false);
		SELECT presence.set_visible('eve', false);
		SELECT presence.status('eve'), presence.is_online('eve');
		SELECT presence.set_visible('eve', true);
		SELECT presence.last_active('eve') IS NOT NULL;
		SELECT presence.last_active('old') IS NOT NULL;
		SELECT presence.last_active('nobody') IS NULL;
		SELECT count(*) FROM presence.online_users();
		SELECT count(*) FROM presence.sessions();
		SELECT session_id FROM presence.sessions('eve') ORDER BY 1;
		SELECT users > 0 FROM presence.stats();
		SELECT presence.disconnect('eve', 'tab'), presence.disconnect('eve', 'new-tab');
	});
	is( $out,
		join("\n", 'tab', '', '', '', 'offline|f', '', 't', 't', 't', '7', '8',
			'new-tab', 'tab', 't', 't|t'),
		"every function works for $role");
}

# Notifications take seq numbers: setval and arithmetic in the worker.
my $l = listen_start($node);
as_role('app', q{SELECT presence.connect('fay')});
my $n = listen_next($l, 10);
is($n && "$n->{user_id}:$n->{status}", 'fay:online', 'fay announced');
listen_stop($l);

# Loaded again, now from rows written under the hostile path.
$node->restart;
ok(safe_wait('SELECT ready FROM presence.stats()'), 'loaded after a second restart');
is( as_role('app', q{SELECT string_agg(user_id, ',' ORDER BY user_id COLLATE pg_catalog."C") FROM presence.online_users()}),
	'Ann,Cat,ann,cat,dan,fay,rex', 'everyone is back');

# Dropped and created again: the install script and the reset.
sql($node, 'DROP EXTENSION presence');
sql($node, 'CREATE EXTENSION presence');
safe('GRANT EXECUTE ON FUNCTION presence.connect(text, text, jsonb, boolean) TO app');
as_role('app', q{SELECT presence.connect('gus')});
is(as_role('app', q{SELECT presence.status('gus')}), 'online', 'works after re-create');

is(hijacks(), '0', 'no planted object ever ran');
ok(!$node->log_contains(qr/HIJACKED/, $log_offset), 'the server log says so too');
is(safe(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'mallory is not a superuser');

$node->stop;
done_testing();
