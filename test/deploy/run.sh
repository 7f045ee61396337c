#!/bin/sh
# The deploy suite: the system as docs/operations.md deploys it (a primary
# and a streaming standby, two relays behind Debian's nginx, pages running
# the demo page's client) through a relay killed, a failover and a rolling
# restart.  node:test files, one scenario a file, each on a system of its
# own.  Run from the repository root, as an unprivileged user (initdb
# refuses root); scripts/test.sh does that.
#
#   test/deploy/run.sh                              everything
#   test/deploy/run.sh test/deploy/crash.test.js    one file
set -eu
top=$(pwd)
[ -f "$top/src/relay/Makefile" ] || { echo "run.sh: run me from the repository root" >&2; exit 2; }
export ARTIFACTS_DIR="$top/artifacts/deploy"
mkdir -p "$ARTIFACTS_DIR"

make -s -C src/relay presence-relay
files=${*:-test/deploy/*.test.js}
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-timeout=180000 $files
