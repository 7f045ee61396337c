#!/bin/sh
# Channels: join, update and leave against SELECT 1 through pgbench on one
# cluster; members() of a 10,000-member channel and occupancy(); shared
# memory per membership.
#
#   bench/channels.sh [seconds per run] [rounds]
#
# 100,000 users with a session each, each a member of one of 1,000 rooms;
# pgbench -n -M prepared -c 8 -j 2, synchronous_commit = off.  In each round:
#   SELECT 1                                  one statement
#   SELECT 'room:' || :ch, :id::text          the calls' parameters, no function
#   update(room, user, NULL, meta)            on a member of that room; half of
#                                             the calls change the meta, and
#                                             are announced (NOTIFY)
#   SELECT 1; SELECT 1                        two statements
#   join(room, user); leave(room, user)       two statements: a new membership,
#                                             then its end, both announced
# each run after the journal of the one before is folded and a 10 s warm-up
# of its own (see run() below); the medians of each tps and of the ratios
# within rounds are reported,
# with pgbench's latency of join and of leave within their script.  Then, in
# one backend, members('big') of 10,000 members with a meta each, and
# occupancy('big'), timed over many calls; and the shared memory per
# membership, from postgres -C shared_memory_size for two settings of
# presence.max_memberships (powers of two, so that the hash tables' bucket
# arrays, rounded up to one, grow in step).
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
SECONDS_PER_RUN=${1:-15}
ROUNDS=${2:-3}
WARMUP=10
USERS=100000
ROOMS=1000
BIG=10000
W=/tmp/presence-bench-channels

HUGE=off
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -gt 400 ] && HUGE=on
cluster_start $W "synchronous_commit = off" "shared_buffers = '512MB'" \
	"huge_pages = $HUGE" \
	"presence.max_sessions = 200000" "presence.max_memberships = 262144" \
	"presence.session_timeout = '1h'" "presence.idle_timeout = '1h'" \
	"presence.reconnect_grace = '0'"

# Users 1..USERS each in room (id % ROOMS); BIG more in 'big', with a meta.
psql_b <<SQL
SELECT count(presence.join('room:' || (i % $ROOMS), i::text, NULL, '{"page": "/inbox"}'))
  FROM generate_series(1, $USERS) i;
SELECT count(presence.join('big', 'big' || i, NULL,
                           jsonb_build_object('page', '/doc/' || i, 'typing', false)))
  FROM generate_series(1, $BIG) i;
SQL

printf 'SELECT 1;\n' >$W/select1.sql
printf 'SELECT 1;\nSELECT 1;\n' >$W/select1x2.sql
printf '\\set id random(1, %d)\nSELECT '"'"'room:'"'"' || (:id %% %d), :id::text;\n' $USERS $ROOMS >$W/param.sql
cat >$W/update.sql <<EOF
\\set id random(1, $USERS)
\\set t random(0, 1)
SELECT presence.update('room:' || (:id % $ROOMS), :id::text, NULL,
  CASE WHEN :t = 1 THEN '{"typing": true}'::jsonb ELSE '{"typing": false}'::jsonb END);
EOF
cat >$W/join_leave.sql <<EOF
\\set id random(1, $USERS)
\\set ch random(1, $ROOMS)
SELECT presence.join('lobby:' || :ch, :id::text);
SELECT presence.leave('lobby:' || :ch, :id::text);
EOF
chmod a+r $W/*.sql

# The flusher folds the journal every presence.flush_interval (10 s), at a
# lower priority: a fold of one workload's channel events must not land in
# another's run (the update run's folds made the next runs' ratios go from
# 0.47 to 0.87 by round).  So each run starts once the journal left by the
# one before is folded, on an idle machine, and after a warm-up of the same
# workload as long as the flush interval: the folds that land in the
# measured run are of its own events, as they would be in a steady state.
quiesce()
{
	until [ "$(psql_b -Atc 'SELECT count(*) FROM presence.journal')" -eq 0 ]; do
		sleep 0.2
	done
}

# CPU time so far (clock ticks) of the runs' backends (the postmaster's
# children it has reaped: a run's backends once they have exited), of the
# worker and of the flusher; after the last run's backends are gone.
cpu_ticks()
{
	until [ "$(psql_b -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")" -eq 1 ]; do
		sleep 0.1
	done
	awk '{ printf "%d ", $16 + $17 }' /proc/$CPID/stat
	for t in 'presence worker' 'presence flusher'; do
		p=$(psql_b -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = '$t'")
		awk '{ printf "%d ", $14 + $15 }' /proc/$p/stat
	done
}

# tps, and for join_leave the two statements' average latencies (ms); the
# run's CPU per transaction (µs) in its backends, the worker and the
# flusher go to $W/cpu.
run()
{
	quiesce
	pgbench_b -n -M prepared -c 8 -j 2 -T "$WARMUP" -f "$W/$1.sql" >/dev/null 2>&1
	before=$(cpu_ticks)
	pgbench_b -n -M prepared -c 8 -j 2 -r -T "$SECONDS_PER_RUN" -f "$W/$1.sql" >$W/out 2>&1
	after=$(cpu_ticks)
	awk '/^number of transactions actually processed/ { print $NF }' $W/out |
		awk -v w="$1" -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" '{
			split(b, x, " "); split(a, y, " ")
			printf "%s %.2f %.2f %.2f\n", w, (y[1] - x[1]) * 1e6 / hz / $1,
				(y[2] - x[2]) * 1e6 / hz / $1, (y[3] - x[3]) * 1e6 / hz / $1 }' >>$W/cpu
	awk '/^tps = / { tps = $3 }
	     /presence.join\(/ { join = $1 }
	     /presence.leave\(/ { leave = $1 }
	     END { printf "%s %s %s", tps, (join ? join : "-"), (leave ? leave : "-") }' $W/out
}

rm -f $W/results $W/folds $W/cpu
for r in $(seq "$ROUNDS"); do
	s1=$(run select1 | cut -d' ' -f1)
	p=$(run param | cut -d' ' -f1)
	u=$(run update | cut -d' ' -f1)
	s2=$(run select1x2 | cut -d' ' -f1)
	jl=$(run join_leave)
	echo "$s1 $p $u $s2 $jl" >>$W/results
	psql_b -Atc "SELECT last_flush_ms FROM presence.stats()" >>$W/folds
done

awk -v rounds="$ROUNDS" -v secs="$SECONDS_PER_RUN" -v huge="$HUGE" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ s1[NR] = $1; p[NR] = $2; u[NR] = $3; s2[NR] = $4; jl[NR] = $5; jlat[NR] = $6; llat[NR] = $7
  us[NR] = $3 / $1; ps[NR] = $2 / $1; up[NR] = $3 / $2; jls[NR] = $5 / $4; ur[NR] = $3 / $1; jr[NR] = $5 / $4 }
END {
	printf "pgbench -n -M prepared -c 8 -j 2 -T %d, %d rounds, huge_pages = %s; medians:\n\n", secs, rounds, huge
	print "| workload | tps | vs SELECT 1 (same number of statements) |"
	print "| --- | ---: | ---: |"
	printf "| `SELECT 1` | %.0f | 1.00 |\n", median(s1, NR)
	printf "| `SELECT '"'"'room:'"'"' \\|\\| :ch, :id::text` (parameters, no function) | %.0f | %.2f |\n", median(p, NR), median(ps, NR)
	printf "| `SELECT presence.update(room, user, NULL, meta)` | %.0f | **%.2f** |\n", median(u, NR), median(us, NR)
	printf "| `SELECT 1; SELECT 1` | %.0f | 1.00 |\n", median(s2, NR)
	printf "| `SELECT presence.join(room, user); SELECT presence.leave(room, user)` | %.0f | **%.2f** |\n", median(jl, NR), median(jls, NR)
	printf "\njoin and leave within their script, average latency: %.3f ms and %.3f ms\n", median(jlat, NR), median(llat, NR)
	printf "update / SELECT 1 by round:"; for (i = 1; i <= NR; i++) printf " %.2f", ur[i]; print ""
	printf "join+leave / SELECT 1 x 2 by round:"; for (i = 1; i <= NR; i++) printf " %.2f", jr[i]; print ""
}' $W/results

# Where a transaction's CPU goes: medians over the rounds, in µs.
echo
echo "| workload | CPU per transaction: backends | the worker | the flusher (at nice +10) |"
echo "| --- | ---: | ---: | ---: |"
for w in select1 param update select1x2 join_leave; do
	awk -v w=$w '$1 == w { b[++n] = $2; k[n] = $3; f[n] = $4 }
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END { printf "| %s | %.2f µs | %.2f µs | %.2f µs |\n", w, median(b, n), median(k, n), median(f, n) }' $W/cpu
done

# members() and occupancy(), in one backend, timed around many calls.
psql_b -At <<SQL
DO \$\$
DECLARE
  t0 timestamptz;
  n int;
BEGIN
  PERFORM count(*) FROM presence.members('big');
  t0 := clock_timestamp();
  FOR i IN 1..50 LOOP
    SELECT count(*) INTO n FROM presence.members('big');
  END LOOP;
  RAISE NOTICE 'members(''big''), % rows: % ms a call', n,
    round(extract(epoch FROM clock_timestamp() - t0) * 1000 / 50, 2);
  t0 := clock_timestamp();
  FOR i IN 1..100000 LOOP
    PERFORM presence.occupancy('big');
  END LOOP;
  RAISE NOTICE 'occupancy(''big'') = %: % ms a call', presence.occupancy('big'),
    round(extract(epoch FROM clock_timestamp() - t0) * 1000 / 100000, 5);
  t0 := clock_timestamp();
  FOR i IN 1..100000 LOOP
    PERFORM 1;
  END LOOP;
  RAISE NOTICE '(the loop itself: % ms an iteration)',
    round(extract(epoch FROM clock_timestamp() - t0) * 1000 / 100000, 5);
END \$\$;
SQL
psql_b -Atc "SELECT 'registry: ' || users || ' users, ' || sessions || ' sessions, ' || memberships || ' memberships in ' || channels || ' channels' FROM presence.stats()"

# The flusher keeps up with the channel events, or the journal grows: its
# last fold's duration after each round, and the fast shutdown, whose fold
# writes what is left.
echo "the flusher's last fold after each round (ms): $(tr '\n' ' ' <$W/folds)"
t0=$(date +%s%3N)
cluster_stop
echo "fast shutdown, with its last fold: $(($(date +%s%3N) - t0)) ms"

# Shared memory per membership and per session: the postmaster's
# computation for other settings (nothing is allocated; it needs the
# cluster stopped).
shm()
{
	$RUNAS "$BIN/postgres" -D "$CDIR/data" "$@" -C shared_memory_size
}
m1=$(shm -c presence.max_memberships=131072)
m2=$(shm -c presence.max_memberships=1048576)
s1=$(shm -c presence.max_sessions=131072)
s2=$(shm -c presence.max_sessions=1048576)
base=$(shm -c presence.max_sessions=10 -c presence.max_memberships=10)
echo "shared_memory_size (MB): max_memberships 131072: $m1, 1048576: $m2; max_sessions 131072: $s1, 1048576: $s2; both 10: $base"
awk -v m1="$m1" -v m2="$m2" -v s1="$s1" -v s2="$s2" 'BEGIN {
	printf "shared memory per membership: %.0f bytes; per session: %.0f bytes (MB resolution: +-1.2 bytes)\n",
		(m2 - m1) * 1048576 / (1048576 - 131072), (s2 - s1) * 1048576 / (1048576 - 131072)
}'
