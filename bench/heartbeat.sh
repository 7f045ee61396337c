#!/bin/sh
# heartbeat vs SELECT 1 vs the naive UPDATE, with pgbench on one cluster;
# also SELECT :id::text, the heartbeat's round trip with its parameter but
# no function, to tell the extension's cost from the parameter's.
#
#   bench/heartbeat.sh [seconds per run] [rounds]
#
# 100,000 users, 8 clients, -M prepared, synchronous_commit = off (which
# favours the naive UPDATE).  The three workloads run one after the other in
# each round; a round's ratios compare runs minutes apart at most, and the
# median of each (and of each tps) over the rounds is reported.  With huge
# pages reserved (sysctl vm.nr_hugepages), the cluster uses them: the
# registry sized for 200,000 sessions is about 150 MB, and random lookups in
# it otherwise pay a TLB miss each.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
SECONDS_PER_RUN=${1:-15}
ROUNDS=${2:-3}
USERS=100000
W=/tmp/presence-bench-heartbeat

HUGE=off
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -gt 400 ] && HUGE=on
cluster_start $W "synchronous_commit = off" "shared_buffers = '512MB'" \
	"huge_pages = $HUGE" \
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
printf '\\set id random(1, %d)\nSELECT :id::text;\n' $USERS >$W/param.sql
printf '\\set id random(1, %d)\nSELECT presence.heartbeat(:id::text);\n' $USERS >$W/heartbeat.sql
printf '\\set id random(1, %d)\nUPDATE users SET is_online = true, last_active = now() WHERE id = :id;\n' $USERS >$W/update.sql
chmod a+r $W/*.sql

run()
{
	pgbench_b -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -f "$W/$1.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

rm -f $W/results
for r in $(seq "$ROUNDS"); do
	s1=$(run select1)
	p=$(run param)
	echo "$s1 $(run heartbeat) $(run update) $p" >>$W/results
done

# Medians of each column and of the ratios within rounds.
awk -v rounds="$ROUNDS" -v secs="$SECONDS_PER_RUN" -v huge="$HUGE" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ s[NR] = $1; h[NR] = $2; u[NR] = $3; hs[NR] = $2 / $1; hu[NR] = $2 / $3; us[NR] = $3 / $1; su[NR] = $1 / $3; ratio[NR] = $2 / $1
  p[NR] = $4; ps[NR] = $4 / $1; pu[NR] = $4 / $3; hp[NR] = $2 / $4 }
END {
	n_rounds = NR
	printf "pgbench -n -M prepared -c 8 -j 2 -T %d, %d rounds, huge_pages = %s; medians:\n\n", secs, rounds, huge
	print "| workload | tps | vs SELECT 1 | vs naive UPDATE |"
	print "| --- | ---: | ---: | ---: |"
	printf "| `SELECT 1` | %.0f | 1.00 | %.2f |\n", median(s, NR), median(su, NR)
	printf "| `SELECT :id::text` | %.0f | %.2f | %.2f |\n", median(p, NR), median(ps, NR), median(pu, NR)
	printf "| `SELECT presence.heartbeat(:id::text)` | %.0f | %.2f | %.2f |\n", median(h, NR), median(hs, NR), median(hu, NR)
	printf "| naive `UPDATE users SET is_online = true, last_active = now() WHERE id = :id` | %.0f | %.2f | 1.00 |\n", median(u, NR), median(us, NR)
	printf "\nheartbeat / SELECT :id::text, median: %.2f\n", median(hp, NR)
	printf "heartbeat / SELECT 1 by round:"
	for (i = 1; i <= n_rounds; i++) printf " %.2f", ratio[i]
	print ""
}' $W/results
psql_b -Atc "SELECT 'registry: ' || users || ' users, ' || sessions || ' sessions, ' || flushes || ' flushes of the journal' FROM presence.stats()"
