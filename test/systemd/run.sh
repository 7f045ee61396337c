#!/bin/sh
# The systemd suite: contrib/presence-relay.service as `make install-systemd`
# installs it, checked by systemd itself.  Run from the repository root, as
# any user (scripts/test.sh runs it as postgres).
#
#   test/systemd/run.sh
#
# 1. `make install-systemd DESTDIR=...` puts the unit and its environment
#    file where Debian expects them, and plain `make install` does not.
# 2. `systemd-analyze verify` accepts the unit (with ExecStart pointing at
#    the relay built here).
# 3. `systemd-analyze security --offline` rates its exposure at most 1.5
#    ("OK"): the hardening the unit promises is in effect.
set -eu
top=$(pwd)
[ -f "$top/contrib/presence-relay.service.in" ] || { echo "run.sh: run me from the repository root" >&2; exit 2; }
tmp=$(mktemp -d /tmp/presence-systemd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; status=1; }

make -s -C src/relay presence-relay
relay_dir="$top/src/relay"

# 1. where the files go
make -s install-systemd DESTDIR="$tmp/root" RELAY_BINDIR="$relay_dir" >/dev/null
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
unit="$tmp/root$unitdir/presence-relay.service"
[ -f "$unit" ] && ok "the unit is installed in $unitdir" || fail "no unit in $tmp/root$unitdir"
[ -f "$tmp/root/etc/default/presence-relay" ] && ok "its environment file is /etc/default/presence-relay" ||
	fail "no /etc/default/presence-relay"
grep -q "^ExecStart=$relay_dir/presence-relay " "$unit" && ok "ExecStart runs RELAY_BINDIR/presence-relay" ||
	fail "ExecStart does not name $relay_dir/presence-relay"
make -s -n install DESTDIR="$tmp/plain" | grep -q 'presence-relay.service' &&
	fail "plain make install would install the unit" || ok "plain make install leaves systemd alone"

# 2. systemd reads it without complaint
if out=$(systemd-analyze verify "$unit" 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify accepts the unit"
else
	fail "systemd-analyze verify: $out"
fi

# 3. and rates it well hardened; the issue's settings are among what it checks
sec=$(systemd-analyze security --offline=true --threshold=15 "$unit" 2>&1) &&
	ok "systemd-analyze security: $(printf '%s\n' "$sec" | grep 'Overall exposure' | sed 's/.*: //')" ||
	fail "exposure above 1.5: $(printf '%s\n' "$sec" | grep -E 'Overall|^✗')"
for want in 'User=/DynamicUser=' 'NoNewPrivileges=' 'ProtectSystem=' 'CapabilityBoundingSet=~CAP_SYS_ADMIN'; do
	printf '%s\n' "$sec" | grep -q "^✓ $want" && ok "in effect: $want" || fail "not in effect: $want"
done
grep -q '^LimitNOFILE=65536$' "$unit" && ok "LimitNOFILE=65536" || fail "no LimitNOFILE=65536"

[ $status -eq 0 ] && echo "systemd suite passed" || echo "systemd suite FAILED"
exit $status
