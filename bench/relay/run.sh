#!/bin/sh
# presence-relay benchmark: delay from a SQL presence.connect() to the last
# of W WebSocket watchers receiving the change (p50, p99), at W = 1,000 and
# 10,000; the client's own floor (the same client against a trivial
# fan-out); the relay's CPU per change and memory per idle connection.
# Results are printed as tables and kept in bench/results/relay.json.
# Channels: a join in one of C channels to its subscribers, and a storm in
# one big channel (bench/results/relay-channels.json, relay-storm.json).
#
#   bench/relay/run.sh                      both sizes
#   bench/relay/run.sh 1000:200             W:rounds
#   BENCH_PROCS=2 bench/relay/run.sh        watchers split over 2 processes
#   bench/relay/run.sh channels             10,000 watchers in 1,000 channels of 10
#   bench/relay/run.sh channels 1000:100:50 W:C:rounds
#   bench/relay/run.sh storm                10,000 watchers of one channel, 1,000
#                                           members a second joining and leaving, 30 s
#   bench/relay/run.sh storm 1000:500:5     W:rate:seconds
#
# Runs as an unprivileged user (initdb refuses root): as root, it raises
# the open-files limit and runs itself as "postgres", who must be able to
# read the repository.
set -eu
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -eq 0 ]; then
	make -s -C src/relay presence-relay
	make -s -C bench/relay watchers
	# every watcher is a socket in the client and one in the relay
	ulimit -Hn 65536 2>/dev/null || true
	exec runuser -u postgres -- "$0" "$@"
fi
ulimit -n "$(ulimit -Hn)"
make -s -C src/relay presence-relay
make -s -C bench/relay watchers
node bench/relay/bench.js "$@"
