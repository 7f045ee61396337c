#!/bin/sh
# The flusher's fold of channel events: 100,000 members of 1,000 rooms,
# folded (a restart), then N updates of their meta (N/4 members, four
# updates each: every one a journal entry), folded by a fast shutdown,
# which writes all the journal holds; timed.
#
#   sudo bench/fold_channels.sh [N]          160,000 by default
#
# flush_interval is an hour, so that the one fold timed is the shutdown's.
set -eu
cd "$(dirname "$0")"
. ./cluster.sh
W=/tmp/presence-bench-fold
N=${1:-160000}
cluster_start $W "synchronous_commit = off" "presence.max_sessions = 200000" \
	"presence.max_memberships = 262144" "presence.session_timeout = '1h'" \
	"presence.idle_timeout = '1h'" "presence.flush_interval = '1h'"
psql_b -c "SELECT count(presence.join('room:' || (i % 1000), i::text)) FROM generate_series(1, 100000) i" >/dev/null
cluster_stop
$RUNAS "$BIN/pg_ctl" -D "$CDIR/data" -l "$CDIR/log" -w start >/dev/null
CPID=$(head -1 "$CDIR/data/postmaster.pid")
until [ "$(psql_b -At -c "SELECT ready FROM presence.stats()")" = t ]; do sleep 0.1; done
for k in 1 2 3 4; do
	psql_b -c "SELECT count(presence.update('room:' || (i % 1000), i::text, NULL, jsonb_build_object('typing', $k)))
	           FROM generate_series(1, $N / 4) i" >/dev/null
done
# the worker has journaled every update once its ticks have announced them
until [ "$(psql_b -At -c "SELECT count(*) >= $N FROM presence.journal, unnest(member_users)")" = t ]; do sleep 0.1; done
t0=$(date +%s%3N)
cluster_stop
echo "$N updates of $((N / 4)) members: the fast shutdown, with its fold, took $(($(date +%s%3N) - t0)) ms" >&2
