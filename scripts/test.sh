#!/bin/sh
# Runs every test suite, the way CI does: installs what is missing, builds,
# installs, then runs the suites as an unprivileged user (initdb refuses root)
# on throwaway clusters.
#
#   ./scripts/test.sh              all suites
#   ./scripts/test.sh relay tap    only some: regress isolation tap relay deploy netns browser systemd
#
# Logs and artifacts (regression diffs, TAP logs, screenshots) end up in
# ./artifacts/.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
suites=${*:-"regress isolation tap relay deploy netns browser systemd"}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

./scripts/setup.sh
make -s
$SUDO make -s install
case " $suites " in
*" relay "* | *" deploy "* | *" netns "* | *" browser "*)
	(cd test && npm ci --no-audit --no-fund --loglevel=error) ;;
esac

# Suites write results and clusters beside the sources, so as root they run
# in a scratch copy owned by the unprivileged user.
if [ "$(id -u)" -eq 0 ]; then
	runas=postgres
	work=$(mktemp -d /tmp/presence-test.XXXXXX)
	# Leftovers of earlier runs in the source tree would mix with this one's.
	tar -C "$top" --warning=no-file-changed --exclude=./src/relay/fuzz --exclude=./results --exclude=./output_iso --exclude=./log \
		--exclude=./tmp_check --exclude=./tmp_check_iso --exclude=./artifacts \
		--exclude='./regression.*' -cf - . | tar -C "$work" -xf -
	chown -R "$runas" "$work"
	run() { runuser -u "$runas" -- env PATH="$PATH" "$@"; }
else
	work=$top
	run() { "$@"; }
fi

rm -rf "$top/artifacts"
mkdir -p "$top/artifacts"
status=0
for s in $suites; do
	echo "=== $s"
	case $s in
	regress) (cd "$work" && run make -s installcheck ISOLATION= TAP_TESTS=) || status=1 ;;
	isolation) (cd "$work" && run make -s installcheck REGRESS= TAP_TESTS=) || status=1 ;;
	tap) (cd "$work" && run make -s installcheck REGRESS= ISOLATION=) || status=1 ;;
	relay | deploy | netns | browser | systemd)
		if [ -x "$work/test/$s/run.sh" ]; then
			(cd "$work" && run "test/$s/run.sh") || status=1
		else
			echo "no $s suite yet"
		fi ;;
	*) echo "unknown suite: $s"; status=1 ;;
	esac
done

# Keep what a failure needs to be understood.
for f in regression.diffs output_iso/regression.diffs; do
	[ -f "$work/$f" ] && cp "$work/$f" "$top/artifacts/$(echo "$f" | tr / _)"
done
[ -d "$work/results" ] && cp -r "$work/results" "$top/artifacts/regress-results"
[ -d "$work/output_iso/results" ] && cp -r "$work/output_iso/results" "$top/artifacts/isolation-results"
[ -d "$work/tmp_check/log" ] && cp -r "$work/tmp_check/log" "$top/artifacts/tap-logs"
[ -d "$work/artifacts" ] && [ "$work" != "$top" ] && cp -r "$work/artifacts/." "$top/artifacts/"
[ "$work" != "$top" ] && rm -rf "$work"

if [ $status -eq 0 ]; then echo "ALL TESTS PASSED"; else echo "SOME TESTS FAILED (see artifacts/)"; fi
exit $status
