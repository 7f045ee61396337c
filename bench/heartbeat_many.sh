#!/bin/sh
# Batched heartbeats: presence.heartbeat_many() of BATCH sessions a call,
# against the same heartbeats one call each, SELECT
# count(presence.heartbeat(u, s)) FROM unnest(...), and against Redis ZADD
# on a sorted set of the same members, pipelined 16 deep; in the same run,
# round after round.  The arrays are read ready-made from a table, so that
# building them is not what is measured, and stored uncompressed (STORAGE
# EXTERNAL) as they arrive in a call's parameters; reading them alone (and
# unnesting them alone) is measured too: the floor under each form.
#
#   bench/heartbeat_many.sh [seconds per run] [rounds] [sessions] [clients]
#
# Defaults: 10 s, 5 rounds, 1,000,000 sessions (a user with one session
# each, as a relay names them), 2 clients (pgbench -c 2 -j 2 and
# redis-benchmark -c 2: one per core).  Prints heartbeats a second (ids a
# second for the floors), the median of each over the rounds, and the ratio
# heartbeat_many / unnest in each round.  Redis is Debian's redis-server,
# started here on 127.0.0.1 as the unprivileged postgres user, without
# persistence, and stopped by its PID.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-5}
SESSIONS=${3:-1000000}
CLIENTS=${4:-2}
BATCH=10000
W=/tmp/presence-bench-heartbeat-many
NB=$((SESSIONS / BATCH))
[ "$NB" -ge 1 ] || { echo "need at least $BATCH sessions" >&2; exit 1; }

cluster_start $W "synchronous_commit = off" "shared_buffers = '1GB'" \
	"max_wal_size = '4GB'" \
	"presence.max_sessions = $((SESSIONS + SESSIONS / 10))" \
	"presence.session_timeout = '1h'" "presence.idle_timeout = '1h'"

# Redis, on loopback, as postgres; stopped by PID with the cluster.
RPORT=""
for p in $(seq 16379 16399); do
	ss -ltnH "sport = :$p" | grep -q . || { RPORT=$p; break; }
done
[ -n "$RPORT" ] || { echo "no free port for redis" >&2; exit 1; }
chown postgres $W 2>/dev/null || true
$RUNAS redis-server --bind 127.0.0.1 --port "$RPORT" --save '' --appendonly no \
	--daemonize yes --pidfile $W/redis.pid --logfile $W/redis.log --dir $W
for i in $(seq 100); do [ -s $W/redis.pid ] && break; sleep 0.05; done
stop_with "$(cat $W/redis.pid)"
redis() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }

# The sessions: user u<i>, session c<i>.  Batches of BATCH random members,
# each member in one batch; the same members in Redis.
psql_b <<SQL
CREATE TABLE hb_batches (b int PRIMARY KEY, users text[] NOT NULL, sessions text[] NOT NULL);
-- Stored as they come in a call's parameters: not compressed.
ALTER TABLE hb_batches ALTER users SET STORAGE EXTERNAL, ALTER sessions SET STORAGE EXTERNAL;
INSERT INTO hb_batches
  SELECT (n - 1) / $BATCH + 1, array_agg('u' || i ORDER BY n), array_agg('c' || i ORDER BY n)
  FROM (SELECT i, row_number() OVER (ORDER BY random()) AS n
        FROM generate_series(1, $SESSIONS) i) m
  GROUP BY (n - 1) / $BATCH;
VACUUM ANALYZE hb_batches;
SELECT sum(presence.heartbeat_many(users, sessions)) AS were_live FROM hb_batches;
DO \$\$
BEGIN
  WHILE (SELECT notifications FROM presence.stats()) < $SESSIONS LOOP
    PERFORM pg_sleep(0.1);
  END LOOP;
END \$\$;
SQL
redis EVAL "for i = 1, tonumber(ARGV[1]) do redis.call('ZADD', 'presence', 0, 'm:' .. string.format('%012d', i - 1)) end return redis.call('ZCARD', 'presence')" 0 "$SESSIONS" >/dev/null

printf '\\set b random(1, %d)\nSELECT cardinality(users) + cardinality(sessions) FROM hb_batches WHERE b = :b;\n' $NB >$W/read.sql
printf '\\set b random(1, %d)\nSELECT count(s) FROM hb_batches, unnest(users, sessions) AS x(u, s) WHERE b = :b;\n' $NB >$W/unnest_read.sql
printf '\\set b random(1, %d)\nSELECT count(presence.heartbeat(u, s)) FROM hb_batches, unnest(users, sessions) AS x(u, s) WHERE b = :b;\n' $NB >$W/unnest.sql
printf '\\set b random(1, %d)\nSELECT presence.heartbeat_many(users, sessions) FROM hb_batches WHERE b = :b;\n' $NB >$W/many.sql
chmod a+r $W/*.sql

# Heartbeats (or ids) a second of one workload.
run()
{
	pgbench_b -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" -f "$W/$1.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | awk -v b=$BATCH '{ printf "%.0f", $1 * b }'
}
run_redis()
{
	redis-benchmark -h 127.0.0.1 -p "$RPORT" -c "$CLIENTS" -P 16 -r "$SESSIONS" \
		-n $((SECONDS_PER_RUN * 1000000)) --csv \
		ZADD presence __rand_int__ m:__rand_int__ 2>/dev/null &
	bpid=$!
	# At most SECONDS_PER_RUN seconds: it prints what it did when stopped.
	( sleep "$SECONDS_PER_RUN"; kill -INT $bpid 2>/dev/null ) &
	wait $bpid || true
}

rm -f $W/results
for r in $(seq "$ROUNDS"); do
	rd=$(run read)
	ur=$(run unnest_read)
	u=$(run unnest)
	m=$(run many)
	z=$(run_redis 2>&1 | tr -d '"' | awk -F, '/ZADD/ { printf "%.0f", $2 }')
	echo "$rd $ur $u $m ${z:-0}" >>$W/results
	echo "round $r: read $rd, unnest alone $ur, unnest+heartbeat $u, heartbeat_many $m, redis ZADD ${z:-?} a second" >&2
done

awk -v rounds="$ROUNDS" -v secs="$SECONDS_PER_RUN" -v clients="$CLIENTS" -v n="$SESSIONS" -v batch="$BATCH" '
function median(a, k,   i, j, t) {
	for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
{ rd[NR] = $1; ur[NR] = $2; u[NR] = $3; m[NR] = $4; z[NR] = $5; mu[NR] = $4 / $3; rr[NR] = $4 / $3
  mz[NR] = $5 > 0 ? $4 / $5 : 0; uz[NR] = $5 > 0 ? $3 / $5 : 0 }
END {
	printf "%d sessions, batches of %d, %d clients, %d rounds of %d s each; medians:\n\n", n, batch, clients, rounds, secs
	print "| workload | a second |"
	print "| --- | ---: |"
	printf "| reading the arrays alone (`cardinality(users) + cardinality(sessions)`), ids | %.0f |\n", median(rd, NR)
	printf "| reading and unnesting them (`count(s) FROM unnest(users, sessions)`), ids | %.0f |\n", median(ur, NR)
	printf "| `count(presence.heartbeat(u, s)) FROM unnest(users, sessions)`, heartbeats | %.0f |\n", median(u, NR)
	printf "| `presence.heartbeat_many(users, sessions)`, heartbeats | %.0f |\n", median(m, NR)
	printf "| Redis `ZADD presence score member`, 16 deep, members of the same number | %.0f |\n", median(z, NR)
	printf "\nheartbeat_many / unnest, median: %.2f; by round:", median(mu, NR)
	for (i = 1; i <= NR; i++) printf " %.2f", rr[i]
	printf "\nheartbeat_many / Redis: %.2f; unnest / Redis: %.2f\n", median(mz, NR), median(uz, NR)
}' $W/results
psql_b -Atc "SELECT 'registry: ' || users || ' users, ' || sessions || ' sessions' FROM presence.stats()"
