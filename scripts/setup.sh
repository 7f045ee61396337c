#!/bin/sh
# Installs what building, testing and the demo need on Debian 12 / Ubuntu.
# Idempotent: packages already present are left alone. Needs root or sudo.
set -eu

PKGS="build-essential pkg-config postgresql-15 postgresql-client-15 postgresql-server-dev-15
libpq-dev libwebsockets-dev libjwt-dev libssl-dev libipc-run-perl
chromium curl ca-certificates clang valgrind
pgbouncer nginx-light redis-server iproute2 systemd"
# Node.js may come from Debian or from NodeSource (whose nodejs conflicts with
# Debian's npm), so ask for it only when there is none.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
