#!/bin/sh
# The network suite: presence-relay seen from another host.  The tests run
# in a user and network namespace of their own (unshare), where they may
# create more namespaces and veth pairs (test/lib/netns.js) without root and
# without touching the machine's network; all of it goes away with them.
# Run from the repository root, as an unprivileged user; scripts/test.sh
# does that.
#
#   test/netns/run.sh                            every file
#   test/netns/run.sh test/netns/bind.test.js    one
set -eu
top=$(pwd)
[ -f "$top/src/relay/Makefile" ] || { echo "run.sh: run me from the repository root" >&2; exit 2; }
export ARTIFACTS_DIR="$top/artifacts/netns"
mkdir -p "$ARTIFACTS_DIR"
make -s -C src/relay presence-relay
files=${*:-test/netns/*.test.js}

userns="unshare --user --map-user=$(id -u) --map-group=$(id -g) --keep-caps --net"
if ! $userns true; then
	echo "netns: cannot create a user and network namespace: unprivileged user" >&2
	echo "namespaces must be allowed (sysctl user.max_user_namespaces > 0," >&2
	echo "kernel.unprivileged_userns_clone = 1 where it exists)" >&2
	exit 1
fi
echo "--- network namespace tests"
# shellcheck disable=SC2086
exec $userns -- sh -c 'ip link set lo up && exec node --test --test-concurrency=1 --test-timeout=120000 "$@"' \
	netns $files
