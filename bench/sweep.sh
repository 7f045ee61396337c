#!/bin/sh
# The sweep with 1,000,000 live sessions: the worker tick in which 1% of them
# time out (table writes and NOTIFYs included), ticks in which nothing
# expires, and the naive UPDATE ... WHERE last_active < ... for comparison.
#
#   bench/sweep.sh
#
# reconnect_grace is 0, so the users whose session expires go offline (and
# are announced) in the same tick.  flush_interval is long so that folding
# the journal into the tables does not land in the measured ticks; it is
# measured on its own at the end.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
W=/tmp/presence-bench-sweep
TIMEOUT=60
GAP=20	# seconds between the expiring sessions and the staying ones
EXPIRING=10000
STAYING=990000

cluster_start $W "synchronous_commit = off" "shared_buffers = '1GB'" \
	"max_wal_size = '4GB'" "work_mem = '64MB'" \
	"presence.max_sessions = 1100000" "presence.session_timeout = '${TIMEOUT}s'" \
	"presence.idle_timeout = '1h'" "presence.reconnect_grace = 0" \
	"presence.sweep_interval = '1s'" "presence.flush_interval = '1h'"

t0=$(date +%s)
psql_b -c "SELECT count(presence.connect('expiring-' || i)) FROM generate_series(1, $EXPIRING) i" >/dev/null
sleep $GAP
half=$((STAYING / 2))
psql_b -c "SELECT count(presence.connect('staying-' || i)) FROM generate_series(1, $half) i" >/dev/null &
psql_b -c "SELECT count(presence.connect('staying-' || i)) FROM generate_series($half + 1, $STAYING) i" >/dev/null
wait
t1=$(date +%s)
psql_b -At <<SQL >$W/initial
DO \$\$
BEGIN
  WHILE (SELECT notifications FROM presence.stats()) < $EXPIRING + $STAYING LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END \$\$;
SQL
t2=$(date +%s)
echo "connected $((EXPIRING + STAYING)) sessions in $((t1 - t0 - GAP)) s; all announced online $((t2 - t1)) s later" >&2
[ $((t2 - t0)) -lt $((TIMEOUT - 10)) ] || { echo "announcing took too long for a ${TIMEOUT}s timeout" >&2; exit 1; }

# Sample stats() every 5 ms, in one session, until the expiring sessions are
# gone and a few idle ticks have followed.
psql_b -At <<SQL >$W/result
SELECT pg_sleep(greatest(0, $t0 + $TIMEOUT - 3 - extract(epoch FROM now())));
CREATE TEMP TABLE s AS SELECT clock_timestamp() AS at, * FROM presence.stats();
DO \$\$
BEGIN
  FOR i IN 1..3000 LOOP
    INSERT INTO s SELECT clock_timestamp(), * FROM presence.stats();
    EXIT WHEN (SELECT max(sweeps) - min(sweeps) FILTER (WHERE sessions = $STAYING) FROM s) >= 6;
    PERFORM pg_sleep(0.005);
  END LOOP;
END \$\$;
-- The tick that announced the expiring users.
SELECT 'expiry ' || last_sweep_ms || ' ' || notifications - (SELECT min(notifications) FROM s)
  FROM s WHERE notifications - (SELECT min(notifications) FROM s) >= $EXPIRING
  ORDER BY at LIMIT 1;
-- The ticks after it, in which nothing expired.
SELECT 'idle ' || max(last_sweep_ms) || ' ' || count(DISTINCT sweeps)
  FROM s WHERE sweeps > (SELECT min(sweeps) FROM s WHERE notifications - (SELECT min(notifications) FROM s) >= $EXPIRING);
SQL
cat $W/result | grep -v '^$' >&2

# Every staying session heartbeats once, long before its deadline: when
# their timers come due (all within the 2 s they were created in), the
# sweep files each of them again.  Nothing expires.
psql_b -c "SELECT count(presence.heartbeat('staying-' || i)) FROM generate_series(1, $STAYING) i" >/dev/null
psql_b -At <<SQL >$W/refile
SELECT pg_sleep(greatest(0, $t0 + $GAP + $TIMEOUT - 2 - extract(epoch FROM now())));
CREATE TEMP TABLE s AS SELECT clock_timestamp() AS at, * FROM presence.stats();
DO \$\$
BEGIN
  WHILE (SELECT max(sweeps) - min(sweeps) FROM s) < 8 LOOP
    INSERT INTO s SELECT clock_timestamp(), * FROM presence.stats();
    PERFORM pg_sleep(0.005);
  END LOOP;
END \$\$;
SELECT 'refile ' || max(last_sweep_ms) || ' ' || max(notifications) - min(notifications) || ' ' || min(sessions)
  FROM s WHERE sweeps > (SELECT min(sweeps) FROM s);
SQL
cat $W/refile | grep -v '^$' >&2

# Folding the journal (a million users and sessions, and the ten thousand
# that left) into the tables: the flush, off the tick's path.
psql_b -At <<SQL >$W/flush
ALTER SYSTEM SET presence.flush_interval = '100ms';
SELECT pg_reload_conf();
DO \$\$
DECLARE
  f bigint := (SELECT flushes FROM presence.stats());
BEGIN
  WHILE (SELECT flushes FROM presence.stats()) = f LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END \$\$;
SELECT 'flush ' || last_flush_ms || ' ' || (SELECT count(*) FROM presence.sessions) FROM presence.stats();
SQL

# The naive design: one table, an index on last_active, 1% stale.
psql_b <<SQL >/dev/null
CREATE TABLE naive (id int PRIMARY KEY, is_online boolean, last_active timestamptz);
INSERT INTO naive SELECT i, true, now() - CASE WHEN i <= $EXPIRING THEN interval '1 hour' ELSE interval '0' END
  FROM generate_series(1, $EXPIRING + $STAYING) i;
CREATE INDEX ON naive (last_active);
VACUUM ANALYZE naive;
SQL
naive=$(psql_b -c '\timing on' -c "UPDATE naive SET is_online = false WHERE is_online AND last_active < now() - interval '${TIMEOUT} s'" |
	sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')

expiry=$(sed -n 's/^expiry \([0-9.]*\) .*/\1/p' $W/result)
announced=$(sed -n 's/^expiry [0-9.]* \(.*\)/\1/p' $W/result)
idle=$(sed -n 's/^idle \([0-9.]*\) .*/\1/p' $W/result)
idle_n=$(sed -n 's/^idle [0-9.]* \(.*\)/\1/p' $W/result)
refile=$(sed -n 's/^refile \([0-9.]*\) .*/\1/p' $W/refile)
flush=$(sed -n 's/^flush \([0-9.]*\) .*/\1/p' $W/flush)
flushed=$(sed -n 's/^flush [0-9.]* \(.*\)/\1/p' $W/flush)
echo "| tick | duration |"
echo "| --- | ---: |"
echo "| $EXPIRING of $((EXPIRING + STAYING)) sessions expire: $announced users announced offline, rows written | $expiry ms |"
echo "| nothing expires (slowest of $idle_n ticks) | $idle ms |"
echo "| nothing expires, but the timers of all $STAYING staying sessions (heartbeated since) come due and are filed again: slowest of 8 ticks | $refile ms |"
echo "| (separately, every presence.flush_interval) folding the journal into the tables: $flushed sessions and their users | $flush ms |"
echo "| naive \`UPDATE naive SET is_online = false WHERE is_online AND last_active < now() - interval '${TIMEOUT} s'\` (notifies nobody) | $naive ms |"
