#!/bin/sh
# heartbeat vs SELECT 1 vs the naive UPDATE, with pgbench on one cluster.
#
#   bench/heartbeat.sh [seconds per run] [rounds]
#
# 100,000 users, 8 clients, -M prepared, synchronous_commit = off (which
# favours the naive UPDATE).  The three workloads alternate for the given
# rounds; the median tps of each is reported with the ratios.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
SECONDS_PER_RUN=${1:-15}
ROUNDS=${2:-3}
USERS=100000
W=/tmp/presence-bench-heartbeat

cluster_start $W "synchronous_commit = off" "shared_buffers = '512MB'" \
	"presence.max_sessions = 200000" "presence.session_timeout = '1h'" \
	"presence.idle_timeout = '1h'"

psql_b <<SQL
SELECT count(presence.connect(i::text)) FROM generate_series(1, $USERS) i;
CREATE TABLE users (id int PRIMARY KEY, is_online boolean, last_active timestamptz);
INSERT INTO users SELECT i, false, now() FROM generate_series(1, $USERS) i;
CREATE INDEX ON users (last_active);
VACUUM ANALYZE users;
SQL

printf 'SELECT 1;\n' >$W/select1.sql
printf '\\set id random(1, %d)\nSELECT presence.heartbeat(:id::text);\n' $USERS >$W/heartbeat.sql
printf '\\set id random(1, %d)\nUPDATE users SET is_online = true, last_active = now() WHERE id = :id;\n' $USERS >$W/update.sql
chmod a+r $W/*.sql

run()
{
	pgbench_b -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -f "$W/$1.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

for r in $(seq "$ROUNDS"); do
	for w in select1 heartbeat update; do
		echo "$w $(run $w)" >>$W/results
	done
done

median() { grep "^$1 " $W/results | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
s=$(median select1)
h=$(median heartbeat)
u=$(median update)
echo "pgbench -n -M prepared -c 8 -j 2 -T $SECONDS_PER_RUN, $ROUNDS rounds, median tps:"
printf '| workload | tps | vs SELECT 1 | vs naive UPDATE |\n| --- | ---: | ---: | ---: |\n'
awk -v s="$s" -v h="$h" -v u="$u" 'BEGIN {
	printf "| `SELECT 1` | %.0f | 1.00 | %.2f |\n", s, s / u
	printf "| `SELECT presence.heartbeat(:id::text)` | %.0f | %.2f | %.2f |\n", h, h / s, h / u
	printf "| naive `UPDATE users SET is_online = true, last_active = now() WHERE id = :id` | %.0f | %.2f | 1.00 |\n", u, u / s
}'
psql_b -Atc "SELECT 'registry: ' || users || ' users, ' || sessions || ' sessions, flushes ' || flushes FROM presence.stats()"
