#!/bin/sh
# A connect storm: 100,000 connect calls from 8 pgbench clients, each a new
# user, and a LISTEN client counting the notifications.  Reports the calls'
# rate and the time from the first call until the last notification has
# been delivered.
#
#   bench/storm.sh
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
W=/tmp/presence-bench-storm
CALLS=100000
CLIENTS=8
LISTEN=../test/tools/listen
[ -x $LISTEN ] || make -C .. test/tools/listen >/dev/null

cluster_start $W "synchronous_commit = off" "shared_buffers = '512MB'" \
	"presence.max_sessions = 200000" "presence.session_timeout = '1h'" \
	"presence.idle_timeout = '1h'"

# Every call connects a new user.
per=$((CALLS / CLIENTS))
psql_b -c "CREATE SEQUENCE ids" >/dev/null
cat >$W/connect.sql <<'SQL'
SELECT presence.connect(nextval('ids')::text);
SQL
chmod a+r $W/connect.sql

$RUNAS $LISTEN -q -n $CALLS -t 120 "host=$W dbname=postgres" >$W/listen.out &
lpid=$!
while ! psql_b -Atc "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'" | grep -q 1; do sleep 0.1; done

start=$(date +%s%6N)
pgbench_b -n -M prepared -c $CLIENTS -j 2 -t $per -f $W/connect.sql >$W/pgbench.out 2>&1
end=$(date +%s%6N)
wait $lpid || true
tail -1 $W/listen.out >$W/listen.last
read -r got first last <$W/listen.last
tps=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' $W/pgbench.out)
echo "| connect storm | |"
echo "| --- | ---: |"
echo "| $CALLS \`SELECT presence.connect(nextval('ids')::text)\` from $CLIENTS clients | $(( (end - start) / 1000 )) ms ($tps calls/s) |"
echo "| notifications received by one LISTEN client | $got |"
echo "| first call to last notification delivered | $(( (last - start) / 1000 )) ms |"
lag=$(( (last - end) / 1000 ))
if [ $lag -ge 0 ]; then
	echo "| last call to last notification delivered | $lag ms |"
else
	echo "| last notification delivered, before pgbench had exited | $(( -lag )) ms before |"
fi
psql_b -Atc "SELECT 'registry: ' || users || ' users, ' || sessions || ' sessions, ' || notifications || ' notifications sent' FROM presence.stats()"
