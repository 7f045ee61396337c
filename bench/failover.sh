#!/bin/sh
# What a failover (or a crash) costs the registry at scale: N live sessions,
# each a member of one of N/100 channels, folded into the tables; then the
# server is stopped with -m immediate, as a dying primary is, and started
# again, which takes the path of a promotion (the worker loads the registry
# from the tables and the journal, docs/operations.md). Timed: until the
# server accepts connections, until the registry is loaded (stats().ready),
# and the relays' re-registration of every open socket's session that
# follows: presence.connect(u, s, NULL, true) over unnest(), the relays' own
# query, from two connections (two relays) of N/2 sessions each, the arrays
# read ready-made from a table.
#
#   sudo bench/failover.sh [sessions]        1,000,000 by default
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
W=/tmp/presence-bench-failover
N=${1:-1000000}
CAP=$((N + N / 10 + 100))

cluster_start $W "synchronous_commit = off" "shared_buffers = '1GB'" \
	"max_wal_size = '4GB'" "work_mem = '64MB'" \
	"presence.max_sessions = $CAP" "presence.max_memberships = $CAP" \
	"presence.session_timeout = '10min'" "presence.idle_timeout = '1h'" \
	"presence.flush_interval = '2s'"

ms() { date +%s%3N; }

half=$((N / 2))
load() { psql_b -c "SELECT count(presence.join('room-' || (i % $((N / 100 + 1))), 'u' || i, 's' || i)) FROM generate_series($1, $2) i" >/dev/null; }
t0=$(ms)
load 1 $half &
load $((half + 1)) $N
wait
t1=$(ms)
echo "joined $N sessions to $((N / 100 + 1)) channels in $((t1 - t0)) ms" >&2

# the sessions the relays hold, as they would send them
psql_b <<SQL >/dev/null
CREATE TABLE relay_batch (relay int, users text[], sessions text[]);
ALTER TABLE relay_batch ALTER users SET STORAGE EXTERNAL, ALTER sessions SET STORAGE EXTERNAL;
INSERT INTO relay_batch
  SELECT i % 2, array_agg('u' || i), array_agg('s' || i) FROM generate_series(1, $N) i GROUP BY i % 2;
SQL

# both tables hold every session once a fold has run after the joins
psql_b -At <<SQL >/dev/null
DO \$\$
BEGIN
  WHILE (SELECT count(*) FROM presence.memberships) < $N
     OR (SELECT count(*) FROM presence.sessions) < $N LOOP
    PERFORM pg_sleep(0.2);
  END LOOP;
END \$\$;
SQL
sessions_mb=$(psql_b -At -c "SELECT pg_total_relation_size('presence.sessions') / 1048576")
users_mb=$(psql_b -At -c "SELECT pg_total_relation_size('presence.users') / 1048576")
members_mb=$(psql_b -At -c "SELECT pg_total_relation_size('presence.memberships') / 1048576")

t2=$(ms)
$RUNAS "$BIN/pg_ctl" -D "$W/data" -m immediate -w stop >/dev/null
t3=$(ms)
$RUNAS "$BIN/pg_ctl" -D "$W/data" -l "$W/log" -w start >/dev/null
CPID=$(head -1 "$W/data/postmaster.pid")
t4=$(ms)
until [ "$(psql_b -At -c 'SELECT ready FROM presence.stats()' 2>/dev/null)" = t ]; do sleep 0.05; done
t5=$(ms)
loaded=$(psql_b -At -c "SELECT sessions || ' sessions, ' || memberships || ' memberships' FROM presence.stats()")

connect() {
	psql_b -At -c "SELECT count(presence.connect(u, s, NULL, true))
	  FROM relay_batch, ROWS FROM (unnest(users), unnest(sessions)) AS t(u, s) WHERE relay = $1" >/dev/null
}
t6=$(ms)
connect 0 &
connect 1
wait
t7=$(ms)

cat >&2 <<EOF
tables: presence.sessions $sessions_mb MB, presence.users $users_mb MB, presence.memberships $members_mb MB
| step | ms |
| --- | ---: |
| pg_ctl stop -m immediate | $((t3 - t2)) |
| pg_ctl start until it accepts connections (crash recovery) | $((t4 - t3)) |
| then until stats().ready (the registry loaded: $loaded) | $((t5 - t4)) |
| two relays' re-registration of $N sessions (connect ... bound) | $((t7 - t6)) |
EOF
