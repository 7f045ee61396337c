#!/bin/sh
# The relay suite: node:test files against throwaway clusters, the relay
# reaching them over a unix socket; the main scenarios again over TCP; then
# the quick files with the relay built with AddressSanitizer (leaks
# included).  Run from the repository root, as an unprivileged user (initdb
# refuses root); scripts/test.sh does that.
#
#   test/relay/run.sh                   everything
#   RELAY_WRAPPER="valgrind --leak-check=full --error-exitcode=99" \
#     test/relay/run.sh test/relay/feed.test.js     one file, under valgrind
#   RELAY_ASAN=0 test/relay/run.sh      skip the AddressSanitizer pass
set -eu
top=$(pwd)
[ -f "$top/src/relay/Makefile" ] || { echo "run.sh: run me from the repository root" >&2; exit 2; }
export ARTIFACTS_DIR="$top/artifacts/relay"
mkdir -p "$ARTIFACTS_DIR"

# a thousand clients, each a socket on both ends
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 8192 ]; then ulimit -n 8192; else ulimit -n "$hard"; fi

make -s -C src/relay presence-relay event-check
files=${*:-test/relay/*.test.js}
status=0

echo "--- relay tests"
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-timeout=300000 $files || status=1

if [ $# -eq 0 ]; then
	echo "--- the main scenarios again, the relay reaching PostgreSQL over TCP"
	PRESENCE_TEST_DB=tcp ARTIFACTS_DIR="$ARTIFACTS_DIR/tcp-run" \
		node --test --test-concurrency=1 --test-timeout=300000 \
			test/relay/auth.test.js test/relay/feed.test.js test/relay/resilience.test.js \
			test/relay/channels.test.js || status=1
fi

if [ "${RELAY_ASAN:-1}" != 0 ] && [ $# -eq 0 ]; then
	echo "--- relay tests again, relay built with AddressSanitizer + UBSan"
	make -s -C src/relay asan
	# LeakSanitizer reports at exit: a leak makes the relay exit non-zero,
	# which every test checks when it stops a relay.
	ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$ARTIFACTS_DIR/asan" \
	RELAY_BIN="$top/src/relay/presence-relay-asan" \
	ARTIFACTS_DIR="$ARTIFACTS_DIR/asan-run" \
		node --test --test-concurrency=1 --test-timeout=300000 \
			test/relay/auth.test.js test/relay/feed.test.js test/relay/resilience.test.js \
			test/relay/failover.test.js test/relay/listen.test.js test/relay/pooler.test.js \
			test/relay/docs.test.js test/relay/nginx.test.js \
			test/relay/forged.test.js test/relay/abuse.test.js test/relay/tokens.test.js \
			test/relay/http.test.js test/relay/event.test.js test/relay/channels.test.js \
			test/relay/leak.test.js test/relay/status.test.js test/relay/lagging.test.js || status=1
	if ls "$ARTIFACTS_DIR"/asan.* >/dev/null 2>&1; then
		echo "AddressSanitizer reports:"; cat "$ARTIFACTS_DIR"/asan.*; status=1
	fi
fi
exit $status
