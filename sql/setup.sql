--
-- Installing the extension, its settings, and who may call what.
--
CREATE EXTENSION presence;

SELECT extversion, extrelocatable, extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'presence';

-- Settings: defaults, except where test/presence.conf shortens them.
SELECT name, setting, unit, context
  FROM pg_settings WHERE name LIKE 'presence.%' ORDER BY name;

-- The SQL interface, and whether PUBLIC may execute each function.
SELECT p.proname,
       oidvectortypes(p.proargtypes) AS arguments,
       CASE WHEN p.proretset THEN 'setof ' ELSE '' END ||
         p.prorettype::regtype AS returns,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute,
       p.prosecdef AS security_definer, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'presence'::regnamespace
 ORDER BY p.proname;

-- The durable mirror; PUBLIC may not read it.
SELECT c.relname, c.relkind,
       has_table_privilege('public', c.oid, 'SELECT') AS public_may_select
  FROM pg_class c
 WHERE c.relnamespace = 'presence'::regnamespace AND c.relkind IN ('r', 'S')
 ORDER BY c.relname;
\d presence.users
\d presence.sessions
\d presence.memberships

-- Used by the other tests: waits until a query returns true (at most 10 s).
CREATE FUNCTION wait_until(query text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  ok boolean;
BEGIN
  FOR i IN 1..1000 LOOP
    EXECUTE query INTO ok;
    IF ok THEN RETURN true; END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN false;
END $$;

-- Used by the other tests: runs a statement, returns its SQLSTATE and message.
CREATE FUNCTION try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
