#!/bin/sh
# The soak: a throwaway cluster and two relays under a large site's load for
# 30 minutes (1,000,000 sessions heartbeated every 20 s, 10,000 WebSocket
# clients, 500 logins and 500 logouts a second, a LISTEN client checking
# seq), and whether the memory of every process stays flat, seq has no gap,
# no client is dropped, presence.users agrees with the registry, and the
# fan-out delay of the last minute is that of the first.  Not in CI: run it
# on a quiet machine.  See bench/soak/soak.js; results in bench/results/soak.json.
#
#   sudo bench/soak.sh                       the full run (30 minutes)
#   sudo bench/soak.sh --short               3 minutes, 100,000 sessions, 1,000 clients, 20 logins/s
#   sudo bench/soak.sh --minutes 10 --clients 5000 --logins 100 --sessions 500000
#
# Runs as an unprivileged user (initdb refuses root): as root, it raises the
# open-files limit and runs itself as "postgres", who must be able to read
# the repository and write bench/results.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
	make -s -C src/relay presence-relay
	make -s -C bench/relay watchers
	[ -d test/node_modules ] || (cd test && npm ci --no-audit --no-fund --loglevel=error)
	mkdir -p bench/results
	chown postgres bench/results
	# every client is a socket in the client and one in a relay
	ulimit -Hn 65536 2>/dev/null || true
	exec runuser -u postgres -- env PATH="$PATH" "$0" "$@"
fi
ulimit -n "$(ulimit -Hn)"
make -s -C src/relay presence-relay
make -s -C bench/relay watchers
exec node bench/soak/soak.js "$@"
