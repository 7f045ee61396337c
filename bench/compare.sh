#!/bin/sh
# A benchmark of this tree against an older revision, in one session: the
# two take turns, so that both meet the same machine (a VM's neighbours, its
# turbo, its page cache) rather than one the morning and one the evening.
#
#   sudo bench/compare.sh REV TURNS BENCHMARK [ARGS...]
#   sudo bench/compare.sh 3cb8d3e 2 heartbeat.sh 6 8       # the extension
#   sudo bench/compare.sh 3cb8d3e 2 relay/run.sh 10000:100  # the relay
#
# REV is built in a scratch worktree: its extension is installed into a
# private copy of PostgreSQL's installation (so the server's own stays this
# tree's), and its relay is handed to relay benchmarks as RELAY_BIN. Then
# BENCHMARK runs TURNS times for each, alternating (REV first). Each run's
# output goes to bench/results/compare-<bench>-<rev|this>-<turn>.txt and to
# the terminal. As root (the benchmarks run their servers as postgres).
set -eu
[ $# -ge 3 ] || { sed -n '2,16p' "$0"; exit 2; }
rev=$1
turns=$2
bench=$3
shift 3
cd "$(dirname "$0")/.."
top=$(pwd)
[ "$(id -u)" -eq 0 ] || { echo "compare.sh: run me as root" >&2; exit 2; }

scratch=/tmp/presence-compare-$(git rev-parse --short "$rev")
major=$(basename "$(dirname "$(pg_config --bindir)")")
sharedir=$(pg_config --sharedir)
cleanup() { git -C "$top" worktree remove --force "$scratch/src" 2>/dev/null || true; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

# REV's tree and a PostgreSQL installation of its own (relocatable: the
# binaries find share/ and lib/ relative to themselves)
rm -rf "$scratch"
mkdir -p "$scratch/pg/lib/postgresql" "$scratch/pg/share/postgresql" "$scratch/pg/include"
git -C "$top" worktree add -q --detach "$scratch/src" "$rev"
cp -a "$(dirname "$(pg_config --bindir)")" "$scratch/pg/lib/postgresql/$major"
cp -a "$sharedir" "$scratch/pg/share/postgresql/$major"
ln -s "$(dirname "$(pg_config --includedir)")/postgresql" "$scratch/pg/include/postgresql" 2>/dev/null ||
	ln -s /usr/include/postgresql "$scratch/pg/include/postgresql"
rm -f "$scratch/pg/share/postgresql/$major/extension/presence"*
old_path="$scratch/pg/lib/postgresql/$major/bin:$PATH"
(cd "$scratch/src" && PATH="$old_path" make -s >/dev/null && PATH="$old_path" make -s install >/dev/null)
chmod -R a+rX "$scratch"

# this tree, installed as the server's own
make -s >/dev/null
make -s install >/dev/null

mkdir -p bench/results
chown postgres bench/results	# the relay benchmark writes there as postgres
name=$(echo "$bench" | tr / -)
for t in $(seq "$turns"); do
	for who in "$rev" this; do
		out="bench/results/compare-${name%.sh}-$who-$t.txt"
		if [ "$who" = this ]; then
			control=$sharedir/extension/presence.control
		else
			control=$scratch/pg/share/postgresql/$major/extension/presence.control
		fi
		echo "=== $bench $* ($who, turn $t; $(grep default_version "$control"))" | tee "$out"
		if [ "$who" = this ]; then
			env RELAY_BIN="$top/src/relay/presence-relay" "bench/$bench" "$@" 2>&1 | tee -a "$out"
		else
			env PATH="$old_path" RELAY_BIN="$scratch/src/src/relay/presence-relay" "bench/$bench" "$@" 2>&1 | tee -a "$out"
		fi
	done
done
