# Sourced by the benchmarks: a throwaway cluster on a unix socket, run by an
# unprivileged user, stopped (by its postmaster's PID) when the script exits.
#   cluster_start DIR "setting = value" ...
#   psql_b ARGS...        psql on it;   pgbench_b ARGS...   pgbench on it
#   stop_with PID         another process the benchmark started, stopped
#                         (by its PID) before the cluster

BIN=$(pg_config --bindir)
RUNAS=""
if [ "$(id -u)" -eq 0 ]; then RUNAS="runuser -u postgres --"; fi

cluster_start()
{
	CDIR=$1
	shift
	rm -rf "$CDIR"
	mkdir -p "$CDIR"
	[ -n "$RUNAS" ] && chown postgres "$CDIR"
	$RUNAS "$BIN/initdb" -D "$CDIR/data" -A trust --no-sync >/dev/null
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$CDIR'"
		echo "shared_preload_libraries = 'presence'"
		for s in "$@"; do echo "$s"; done
	} >>"$CDIR/data/postgresql.conf"
	$RUNAS "$BIN/pg_ctl" -D "$CDIR/data" -l "$CDIR/log" -w start >/dev/null
	CPID=$(head -1 "$CDIR/data/postmaster.pid")
	trap cluster_stop EXIT INT TERM
	psql_b -c 'CREATE EXTENSION presence' >/dev/null
}

STOP_PIDS=""
stop_with() { STOP_PIDS="$STOP_PIDS $1"; }

cluster_stop()
{
	for p in $STOP_PIDS; do kill "$p" 2>/dev/null || true; done
	STOP_PIDS=""
	[ -n "${CPID:-}" ] && kill -INT "$CPID" 2>/dev/null
	while [ -n "${CPID:-}" ] && kill -0 "$CPID" 2>/dev/null; do sleep 0.1; done
	CPID=""
}

psql_b() { $RUNAS "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CDIR" -d postgres "$@"; }
pgbench_b() { $RUNAS "$BIN/pgbench" -h "$CDIR" "$@" postgres; }
