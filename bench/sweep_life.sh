#!/bin/sh
# The sweep as it runs in life: the tick in which 1% of the sessions expire,
# while the other 99% are heartbeated in batches (heartbeat_many of 10,000,
# round robin, at the rate of a heartbeat every 20 s each unless told
# otherwise) and the flusher folds the journal every presence.flush_interval
# (its default, 10 s), with synchronous_commit as it ships (on) and a LISTEN
# client taking every notification.  Prints the parts of that tick
# (presence.tick_parts()), of the slowest tick of the run, and of a typical
# one, and when the last offline notification arrived after the deadline.
#
#   bench/sweep_life.sh [sessions] [timeout seconds] [batches a second]
#
# Defaults: 1,000,000 sessions, a 60 s session timeout, sessions / 10,000 /
# 20 batches a second (0: as fast as 2 clients go).  reconnect_grace is 0,
# so the expired users go offline (and are announced) in the same tick.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
SESSIONS=${1:-1000000}
TIMEOUT=${2:-60}
BATCH=10000
EXPIRING=$((SESSIONS / 100))
STAYING=$((SESSIONS - EXPIRING))
NB=$(((STAYING + BATCH - 1) / BATCH))
RATE=${3:-$(((NB + 19) / 20))}
W=/tmp/presence-bench-sweep-life
LISTEN=$(cd .. && pwd)/test/tools/listen
[ -x "$LISTEN" ] || { echo "build test/tools/listen first (make)" >&2; exit 1; }

cluster_start $W "shared_buffers = '1GB'" "max_wal_size = '4GB'" \
	"work_mem = '64MB'" \
	"presence.max_sessions = $((SESSIONS + SESSIONS / 10))" \
	"presence.session_timeout = '${TIMEOUT}s'" \
	"presence.idle_timeout = '1h'" "presence.reconnect_grace = 0" \
	"presence.sweep_interval = '1s'"

# Ready-made batches: the staying sessions in NB arrays, the expiring ones
# in one.
psql_b <<SQL
CREATE TABLE hb_batches (b int PRIMARY KEY, users text[] NOT NULL, sessions text[] NOT NULL);
ALTER TABLE hb_batches ALTER users SET STORAGE EXTERNAL, ALTER sessions SET STORAGE EXTERNAL;
INSERT INTO hb_batches
  SELECT (i - 1) / $BATCH + 1, array_agg('staying-' || i ORDER BY i), array_agg('c' || i ORDER BY i)
  FROM generate_series(1, $STAYING) i GROUP BY (i - 1) / $BATCH;
INSERT INTO hb_batches
  SELECT 0, array_agg('expiring-' || i), array_agg('c' || i) FROM generate_series(1, $EXPIRING) i;
CREATE SEQUENCE hb_next;
VACUUM ANALYZE hb_batches;
SQL
chmod a+rwx $W
$RUNAS "$LISTEN" -t $((TIMEOUT * 4 + 120)) -c presence "host=$CDIR dbname=postgres" >$W/notifications 2>$W/listen.err &
LPID=$!
stop_with $LPID
while ! grep -q '^listening' $W/notifications 2>/dev/null; do sleep 0.05; done

# The staying sessions first, then, a third of the timeout later, the
# expiring ones: their deadline is when they were opened plus the timeout.
# (The staying sessions' first timers, all filed within seconds, come due
# a third of the timeout before the deadline, and are filed again then: the
# timing wheel's worst case, which bench/sweep.sh measures on its own.  In
# life, sessions' timers are spread.)
psql_b -c "SELECT sum(presence.heartbeat_many(users, sessions)) FROM hb_batches WHERE b > 0" >/dev/null
sleep $((TIMEOUT / 3))
psql_b -Atc "SELECT presence.heartbeat_many(users, sessions), extract(epoch FROM clock_timestamp()) FROM hb_batches WHERE b = 0" >$W/expiring
deadline=$(awk -F'|' -v t=$TIMEOUT '{ printf "%.6f", $2 + t }' $W/expiring)
echo "$SESSIONS sessions, $EXPIRING expiring at $(date -d @"${deadline%.*}" +%T), $RATE batches of $BATCH a second" >&2

# Heartbeats until a few seconds after the deadline, round robin over the
# batches, so that every staying session gets one well within the timeout.
# (nextval in a subquery: once a call, not once a row.)
printf 'SELECT presence.heartbeat_many(users, sessions) FROM hb_batches WHERE b = (SELECT nextval(%s) %% %d + 1);\n' \
	"'hb_next'" $NB >$W/hb.sql
chmod a+r $W/hb.sql
now=$(date +%s.%N)
run_for=$(awk -v d=$deadline -v n=$now 'BEGIN { printf "%d", d - n + 8 }')
if [ "$RATE" -gt 0 ]; then rate="-R $RATE"; else rate=""; fi
pgbench_b -n -c 2 -j 2 $rate -T "$run_for" -f $W/hb.sql >$W/pgbench.out 2>&1 &
BPID=$!

# Sample the last tick's parts from 3 s before the deadline until the
# tick that announced the expired users and a few after it.
psql_b -At <<SQL >$W/ticks
SELECT pg_sleep(greatest(0, $deadline - 3 - extract(epoch FROM clock_timestamp())));
CREATE TEMP TABLE t AS SELECT * FROM presence.tick_parts() WHERE false;
DO \$\$
DECLARE
  seen timestamptz;
  after int := 0;
BEGIN
  FOR i IN 1..20000 LOOP
    INSERT INTO t SELECT * FROM presence.tick_parts() p
      WHERE p.tick = 'last' AND p.started_at IS DISTINCT FROM (SELECT max(started_at) FROM t);
    IF seen IS NULL THEN
      SELECT started_at INTO seen FROM t WHERE notifications >= $EXPIRING LIMIT 1;
    ELSE
      SELECT count(*) INTO after FROM t WHERE started_at > seen;
      EXIT WHEN after >= 5 AND clock_timestamp() > seen + interval '3 s';
    END IF;
    PERFORM pg_sleep(0.002);
  END LOOP;
END \$\$;
SELECT 'expiry', t.* FROM t WHERE notifications >= $EXPIRING ORDER BY started_at LIMIT 1;
SELECT 'slowest', t.* FROM t ORDER BY total_ms DESC LIMIT 1;
SELECT 'typical', t.* FROM t ORDER BY total_ms OFFSET (SELECT count(*) / 2 FROM t) LIMIT 1;
SELECT 'sampled', count(*), sum(active_users_examined) FROM t;
SQL
wait $BPID || true
ended=$(date +%s.%N)
kill "$LPID" 2>/dev/null || true

# When the last offline of an expiring user arrived, after the deadline.
last=$(grep '"user_id":"expiring-' $W/notifications | grep '"status":"offline"' |
	awk '{ n++; if ($1 > m) m = $1 } END { printf "%d %.0f", n, m }')
offline_n=${last% *}
offline_at=${last#* }
lag=$(awk -v a=$offline_at -v d=$deadline 'BEGIN { printf "%.3f", a / 1e6 - d }')
grep -E '^(tps|number of failed)' $W/pgbench.out | sed 's/^/heartbeat batches: /' >&2
psql_b -Atc "SELECT 'batches called: ' || last_value FROM hb_next" >&2

echo
echo "| tick | total | sweep | collect (of which activity: users looked at) | lock waits | journal (rows) | notify (notifications) | commit (of which queue and record) | other |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
awk -F'|' '
$1 == "expiry" || $1 == "slowest" || $1 == "typical" {
	# label, tick, started_at, total, sweep, collect, activity, lock_wait,
	# journal, notify, commit, queue, notifications, rows, active users
	# examined, other
	printf "| %s | %.1f ms | %.1f | %.1f (%.1f: %d users) | %.2f | %.1f (%d) | %.1f (%d) | %.1f (%.1f) | %.1f |\n",
		$1, $4, $5, $6, $7, $15, $8, $9, $14, $10, $13, $11, $12, $16
}
$1 == "sampled" { sampled = $2; act = $3 }
END { printf "\n%d ticks sampled from 3 s before the deadline to 3 s after; they looked at the last activity of %d active users\n", sampled, act }' $W/ticks
lost=$(grep '"user_id":"staying-' $W/notifications | grep -c '"status":"offline"' || true)
echo "offline notifications of expiring users: $offline_n of $EXPIRING; the last $lag s after the deadline"
echo "staying users announced offline while heartbeated: $lost (0 expected)"
