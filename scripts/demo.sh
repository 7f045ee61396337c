#!/bin/bash
# The demo: installs what is missing, builds and installs presence, then
# starts a throwaway PostgreSQL cluster with the extension preloaded and
# presence-relay serving the demo page, and prints its address.  Ctrl-C
# stops everything it started (by PID) and removes its temporary
# directory; so does any failure.
#
#   sudo ./scripts/demo.sh                 on a fresh Debian 12 / Ubuntu
#   ./scripts/demo.sh --port 9000          another port (default 8080)
#   ./scripts/demo.sh --token-ttl 30       demo tokens valid 30 s (default 600;
#                                          the page sends fresh ones before expiry)
#   ./scripts/demo.sh --no-setup           skip setup, build and install
#
# As root, the cluster and the relay run as the user postgres (initdb
# refuses root); otherwise as the calling user, with sudo for installing.
# Everything listens on loopback only: PostgreSQL on a unix socket in the
# temporary directory, the relay on 127.0.0.1.  The relay runs with --demo,
# which hands out a token for any name and is refused on other addresses;
# every browser tab and simulated person comes from 127.0.0.1, hence a
# higher --max-connections-per-ip than the default.
#
# Environment: RELAY_BIN, the relay to run (default: the one installed).
set -euo pipefail

usage() {
	echo "usage: demo.sh [--port N] [--token-ttl S] [--no-setup]" >&2
	exit 2
}

port=8080
token_ttl=600
setup=1
while [ $# -gt 0 ]; do
	case $1 in
	--port) [ $# -ge 2 ] || usage; port=$2; shift 2 ;;
	--token-ttl) [ $# -ge 2 ] || usage; token_ttl=$2; shift 2 ;;
	--no-setup) setup=0; shift ;;
	-h | --help) usage ;;
	*) echo "demo.sh: unknown argument $1" >&2; usage ;;
	esac
done
case $port in '' | *[!0-9]*) echo "demo.sh: bad --port $port" >&2; exit 2 ;; esac
case $token_ttl in '' | *[!0-9]*) echo "demo.sh: bad --token-ttl $token_ttl" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
top=$(pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ $setup -eq 1 ]; then
	./scripts/setup.sh
	make -s
	$SUDO make -s install
fi

relay_bin=${RELAY_BIN:-/usr/local/bin/presence-relay}
bindir=$(pg_config --bindir)
[ -x "$relay_bin" ] || { echo "demo.sh: no $relay_bin (run without --no-setup)" >&2; exit 1; }

# Who runs the servers, and how: exec'd in place (setpriv does not fork),
# so that $! is the server's own PID; in a session of their own (setsid),
# so that a Ctrl-C in the terminal reaches only this script, which stops
# them in order.
if [ "$(id -u)" -eq 0 ]; then
	runas=postgres
	as_user=(setpriv --reuid="$runas" --regid="$runas" --init-groups --reset-env)
else
	runas=$(id -un)
	as_user=()
fi

tmp=""
pg_pid=""
relay_pid=""

# Stops whatever was started, newest first, and removes the temp dir.
cleanup() {
	local status=$?
	trap - EXIT INT TERM HUP
	# Whoever reads our output (a pipe to tee, say) may be gone already:
	# stopping must not die of a failed write.
	trap '' PIPE
	set +e
	if [ -n "$relay_pid" ] || [ -n "$pg_pid" ] || [ -n "$tmp" ]; then
		echo
		echo "demo: stopping"
	fi
	# the relay first: its clients are closed with 1001 and their sessions end
	stop_pid "$relay_pid" TERM 10 relay
	stop_pid "$pg_pid" INT 30 postgres
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
		echo "demo: removed $tmp"
	fi
	exit "$status"
}

# stop_pid PID SIGNAL SECONDS NAME: signal, wait, then SIGKILL.
stop_pid() {
	local pid=$1 sig=$2 secs=$3 name=$4 i
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "demo: $name (pid $pid) did not stop, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	echo "demo: $name (pid $pid) stopped"
}

# A signal is a request to stop, not a failure.
trap cleanup EXIT
trap 'exit 0' INT TERM HUP

fail() {
	echo "demo: $*" >&2
	exit 1
}

# wait_for SECONDS PID WHAT CMD...: until CMD succeeds, while PID lives.
wait_for() {
	local secs=$1 pid=$2 what=$3 i
	shift 3
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	echo "demo: $what did not start in ${secs}s" >&2
	return 1
}

tmp=$(mktemp -d /tmp/presence-demo.XXXXXX)
chmod 700 "$tmp"
cp -r "$top/src/relay/www" "$tmp/www"
chown -R "$runas" "$tmp"
cd "$tmp"

# A cluster on a unix socket only, in the temp dir: nobody else can reach it.
"${as_user[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
	>"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; fail "initdb failed"; }
cat >>"$tmp/data/postgresql.conf" <<EOF

# scripts/demo.sh: throwaway, loopback only, short timeouts to watch
listen_addresses = ''
unix_socket_directories = '$tmp'
port = 5432
fsync = off
shared_preload_libraries = 'presence'
presence.database = 'postgres'
presence.idle_timeout = '20s'
presence.reconnect_grace = '3s'
presence.session_timeout = '15s'
presence.sweep_interval = '250ms'
presence.flush_interval = '5s'
EOF
setsid "${as_user[@]}" "$bindir/postgres" -D "$tmp/data" </dev/null >"$tmp/postgres.log" 2>&1 &
pg_pid=$!
wait_for 30 "$pg_pid" PostgreSQL "$bindir/pg_isready" -q -h "$tmp" -p 5432 ||
	{ cat "$tmp/postgres.log" >&2; fail "PostgreSQL did not start"; }
"${as_user[@]}" "$bindir/psql" -X -q -h "$tmp" -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 \
	-c 'CREATE EXTENSION presence' || fail "CREATE EXTENSION presence failed"

# A fresh secret for this run's tokens, which only /demo/token hands out.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/jwt.secret"
chown "$runas" "$tmp/jwt.secret"
chmod 600 "$tmp/jwt.secret"
setsid "${as_user[@]}" "$relay_bin" --db "host=$tmp port=5432 user=postgres dbname=postgres" \
	--bind 127.0.0.1 --port "$port" --jwt-secret-file "$tmp/jwt.secret" \
	--demo --demo-token-ttl "$token_ttl" --static "$tmp/www" \
	--max-connections-per-ip 1000 </dev/null >"$tmp/relay.log" 2>&1 &
relay_pid=$!
wait_for 30 "$relay_pid" presence-relay curl -sf "http://127.0.0.1:$port/healthz" ||
	{ cat "$tmp/relay.log" >&2; fail "presence-relay did not start (is port $port taken? try --port)"; }

cat <<EOF

  presence demo: open  http://127.0.0.1:$port/

  PostgreSQL (pid $pg_pid):  psql -h $tmp -U postgres
  presence-relay (pid $relay_pid), logs in $tmp
  idle after 20 s without input, offline 3 s after the last tab closes.
  From another machine: ssh -L $port:127.0.0.1:$port <this host>

  Ctrl-C stops both and removes $tmp.

EOF

# Until Ctrl-C, or until one of them dies.
status=0
wait -n "$pg_pid" "$relay_pid" || status=$?
if ! kill -0 "$pg_pid" 2>/dev/null; then
	pg_pid=""
	tail -20 "$tmp/postgres.log" >&2
	fail "PostgreSQL exited (status $status)"
fi
relay_pid=""
tail -20 "$tmp/relay.log" >&2
fail "presence-relay exited (status $status)"
