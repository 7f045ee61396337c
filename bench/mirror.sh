#!/bin/sh
# Mirrors: the seed's users table kept in step by the flusher.
#
#   bench/mirror.sh [seconds per run] [rounds]
#
# An application table of 1,000,000 rows (id bigint primary key, name,
# "isOnline", "lastActive", status; a second index, on "lastActive"), owned
# by an ordinary role, as an ORM makes it.
#
#  1. A login storm: 100,000 users connect, from 8 pgbench clients, with
#     presence.flush_interval long enough that one fold takes all of it
#     (a reload then starts the fold at once); the fold is timed
#     (stats().last_flush_ms) without a mirror, then with one (100,000 other
#     users, once the first ones have logged out).  The mirror's first sync
#     (1,000,000 rows looked at, the first 100,000 users written) is timed
#     too.
#  2. heartbeat() with the mirror configured against heartbeat() without
#     one, alternating within each round (the mirror's sync between them is
#     not timed), pgbench -n -M prepared -c 8 -j 2 on the 100,000 users
#     online, as bench/heartbeat.sh does.
#  3. The seed's design: UPDATE users SET "isOnline" = true, "lastActive" =
#     now() WHERE id = :id per heartbeat, against heartbeat() with the
#     mirror, in the same rounds, on the same table: tps, and WAL bytes per
#     heartbeat (pg_current_wal_lsn() before and after each run, divided by
#     the transactions pgbench made: the flusher's writes included).
#
# The medians of each figure, and of the ratios within rounds, are reported.
# ROWS and USERS may be set in the environment for a short trial run.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
SECONDS_PER_RUN=${1:-15}
ROUNDS=${2:-3}
ROWS=${ROWS:-1000000}
USERS=${USERS:-100000}
W=/tmp/presence-bench-mirror

cluster_start $W "synchronous_commit = off" "shared_buffers = '1GB'" \
	"max_wal_size = '4GB'" \
	"presence.max_sessions = $((USERS * 2 + 1000))" "presence.session_timeout = '1h'" \
	"presence.idle_timeout = '1h'" "presence.reconnect_grace = 0" \
	"presence.flush_interval = '1h'"

psql_b <<SQL >/dev/null
CREATE ROLE app;
CREATE SCHEMA app AUTHORIZATION app;
GRANT EXECUTE ON FUNCTION presence.mirror(regclass, name, name, name, name),
  presence.unmirror(regclass) TO app;
SET ROLE app;
CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL,
  "isOnline" boolean NOT NULL DEFAULT false, "lastActive" timestamptz, status text);
INSERT INTO app.users (id, name) SELECT i, 'user ' || i FROM generate_series(1, $ROWS) i;
CREATE INDEX ON app.users ("lastActive");
RESET ROLE;
VACUUM ANALYZE app.users;
CREATE SEQUENCE ids;
SQL

# The flusher folds at once after a reload (and then every
# presence.flush_interval, FLUSH); waits until it has folded the journal,
# and prints how long that took.
FLUSH=1h
fold_now()
{
	f0=$(psql_b -Atc "SELECT flushes FROM presence.stats()")
	empty=$(psql_b -Atc "SELECT count(*) = 0 FROM presence.journal")
	psql_b -c "ALTER SYSTEM SET presence.flush_interval = '$FLUSH'" -c "SELECT pg_reload_conf()" >/dev/null
	if [ "$empty" = t ]; then echo 0; return; fi
	while [ "$(psql_b -Atc "SELECT flushes FROM presence.stats()")" = "$f0" ]; do sleep 0.1; done
	psql_b -Atc "SELECT round(last_flush_ms) FROM presence.stats()"
}

# Configures the mirror and waits for its sync; prints how long it took.
mirror_on()
{
	f0=$(psql_b -Atc "SELECT flushes FROM presence.stats()")
	psql_b -c "SET ROLE app" -c "SELECT presence.mirror('app.users', 'id', 'isOnline', 'lastActive', 'status')" >/dev/null
	until [ "$(psql_b -Atc "SELECT count(*) > 0 AND (SELECT flushes > $f0 FROM presence.stats()) FROM presence.mirror_state")" = t ]; do
		sleep 0.1
	done
	psql_b -Atc "SELECT round(last_flush_ms) FROM presence.stats()"
}
mirror_off() { psql_b -c "SET ROLE app" -c "SELECT presence.unmirror('app.users')" >/dev/null; }

# Waits until the worker has announced n more changes than it had.
announced()
{
	psql_b -At <<SQL >/dev/null
DO \$\$
BEGIN
  WHILE (SELECT notifications FROM presence.stats()) < $1 LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END \$\$;
SQL
}

notifications() { psql_b -Atc "SELECT notifications FROM presence.stats()"; }

# A storm of USERS connects with ids from the sequence; then one fold.
storm()
{
	n0=$(notifications)
	printf "SELECT presence.connect(nextval('ids')::text);\n" >$W/connect.sql
	chmod a+r $W/connect.sql
	pgbench_b -n -M prepared -c 8 -j 2 -t $((USERS / 8)) -f $W/connect.sql >$W/storm.out 2>&1
	announced $((n0 + USERS))
	fold_now
}

# 1. The login storm, without a mirror, then with one.
fold_now >/dev/null
no_mirror_fold=$(storm)
n0=$(notifications)
psql_b -c "SELECT count(presence.disconnect(i::text)) FROM generate_series(1, $USERS) i" >/dev/null
announced $((n0 + USERS))
fold_now >/dev/null
sync_ms=$(mirror_on)
mirror_fold=$(storm)
written=$(psql_b -Atc "SELECT count(*) FROM app.users WHERE \"isOnline\"")

# 2 and 3: heartbeats on the users online (ids USERS+1 .. 2*USERS), with
# the default flush interval: the last activity of users who stay online
# is written once a minute each, to presence.users and the mirror.
FLUSH=10s
fold_now >/dev/null
printf '\\set id random(%d, %d)\nSELECT presence.heartbeat(:id::text);\n' $((USERS + 1)) $((USERS * 2)) >$W/heartbeat.sql
printf '\\set id random(%d, %d)\nUPDATE app.users SET "isOnline" = true, "lastActive" = now() WHERE id = :id;\n' $((USERS + 1)) $((USERS * 2)) >$W/update.sql
chmod a+r $W/*.sql

# Prints "tps wal_bytes_per_transaction" for one run of a script.
run()
{
	lsn0=$(psql_b -Atc "SELECT pg_current_wal_lsn()")
	pgbench_b -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -f "$W/$1.sql" >$W/run.out 2>&1
	# What the flusher wrote for the run is part of its cost.
	fold_now >/dev/null
	lsn1=$(psql_b -Atc "SELECT pg_current_wal_lsn()")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' $W/run.out)
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' $W/run.out)
	bytes=$(psql_b -Atc "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
	echo "$tps $(awk -v b="$bytes" -v n="$n" 'BEGIN { printf "%.0f", b / n }')"
}

rm -f $W/results
for r in $(seq "$ROUNDS"); do
	with=$(run heartbeat)
	mirror_off
	without=$(run heartbeat)
	mirror_on >/dev/null
	naive=$(run update)
	echo "$with $without $naive" >>$W/results
done

awk -v rounds="$ROUNDS" -v secs="$SECONDS_PER_RUN" -v rows="$ROWS" -v users="$USERS" \
	-v nomirror="$no_mirror_fold" -v mirror="$mirror_fold" -v sync="$sync_ms" -v written="$written" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ w[NR] = $1; ww[NR] = $2; o[NR] = $3; ow[NR] = $4; u[NR] = $5; uw[NR] = $6
  r1[NR] = $1 / $3; r2[NR] = $1 / $5 }
END {
	printf "%d-row table with two indexes, %d users; pgbench -n -M prepared -c 8 -j 2 -T %d, %d rounds; medians:\n\n", rows, users, secs, rounds
	print "| login storm of " users " users | one fold |"
	print "| --- | ---: |"
	printf "| without a mirror | %d ms |\n", nomirror
	printf "| with the mirror (%d rows set online) | %d ms |\n", written, mirror
	printf "| the mirror'"'"'s first sync | %d ms |\n\n", sync
	print "| workload | tps | WAL bytes per transaction |"
	print "| --- | ---: | ---: |"
	printf "| `heartbeat()` with the mirror | %.0f | %.0f |\n", median(w, NR), median(ww, NR)
	printf "| `heartbeat()` without a mirror | %.0f | %.0f |\n", median(o, NR), median(ow, NR)
	printf "| naive `UPDATE users SET \"isOnline\", \"lastActive\"` | %.0f | %.0f |\n", median(u, NR), median(uw, NR)
	printf "\nheartbeat with / without the mirror, median of rounds: %.2f\n", median(r1, NR)
	printf "heartbeat with the mirror / naive UPDATE, median of rounds: %.2f\n", median(r2, NR)
}' $W/results
