#!/bin/sh
# The browser suite: scripts/demo.sh started as a user would start it (but
# without setup), driven in Debian's headless Chromium by playwright-core,
# then stopped with SIGINT.  Run from the repository root, as an
# unprivileged user (initdb refuses root); scripts/test.sh does that after
# installing the extension.  Screenshots and logs go to artifacts/browser/.
#
#   test/browser/run.sh
#   CHROMIUM=/path/to/chrome test/browser/run.sh
set -eu
top=$(pwd)
[ -f "$top/src/relay/Makefile" ] || { echo "run.sh: run me from the repository root" >&2; exit 2; }
export ARTIFACTS_DIR="$top/artifacts/browser"
mkdir -p "$ARTIFACTS_DIR"

# the relay of this tree, not whichever is installed
make -s -C src/relay presence-relay
export RELAY_BIN="$top/src/relay/presence-relay"

echo "--- browser tests"
node --test --test-concurrency=1 --test-timeout=300000 test/browser/*.test.js
