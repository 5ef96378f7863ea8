# Scratch PostgreSQL clusters for tests and the demo. Source this file, then:
#
#   cluster_start NAME [postgresql.conf line ...]   # initdb + start, as the postgres OS user
#   cluster_psql NAME [psql args ...]                # psql as the postgres superuser
#   cluster_env NAME                                 # prints PGHOST/PGPORT/PGUSER exports
#   cluster_stop NAME                                # fast shutdown and removal
#   cluster_start_from NAME BACKUP [--recover] [conf] # a cluster from a base backup (PITR)
#   cluster_kill9 NAME / cluster_start_again NAME    # crash the postmaster; restart (crash recovery)
#
# Every cluster started here is stopped and removed when the sourcing shell exits, also on failure
# (an EXIT trap). Clusters listen on a private Unix socket only; their files live in a fresh temporary
# directory the postgres user owns, never in the repository (a clone may sit where postgres cannot reach).
# By default they preload pg_cron and inventory_ext, as production does (HARNESS_PRELOAD says otherwise:
# the pg18 layer's PostgreSQL 18 has no pg_cron). PG_BIN chooses the server's
# binaries (default Debian's), HARNESS_BASE_PORT the first port (default 54320), HARNESS_LOG_DIR where
# server logs are kept after their cluster is removed (default: nowhere).

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
HARNESS_ROOT=${HARNESS_ROOT:-}
declare -gA CLUSTER_PORT=()
_harness_next_port=${HARNESS_BASE_PORT:-54320}

# From /: the postgres user may not be able to enter the current directory (a clone under /root, say).
_as_postgres() { (cd / && runuser -u postgres -- "$@"); }

_harness_init() {
  if [ -z "$HARNESS_ROOT" ]; then
    # Only root (the scripts) and postgres (the servers) may enter: nothing in it, its server logs,
    # data and $WORK's files included, is readable by other users.
    HARNESS_ROOT=$(mktemp -d /tmp/inventory_ext.XXXXXX)
    chown postgres "$HARNESS_ROOT"
    chmod 700 "$HARNESS_ROOT"
    trap 'cluster_stop_all' EXIT
  fi
}

cluster_dir() { echo "$HARNESS_ROOT/$1"; }

# For end-to-end scripts: $WORK, a directory for the script's files that the postgres user can read,
# removed with the clusters; and fail, which says what went wrong (prefixed with the script's name) and
# exits non-zero.
harness_workdir() {
  _harness_init
  WORK=$HARNESS_ROOT/work
  mkdir -p "$WORK"
  chmod 755 "$WORK"
}
fail() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }

# For tests that install versions of the extension (the upgrade test, its benchmark): a private copy of
# Debian's PostgreSQL 15 in $WORK/pg, which finds its files relative to its binaries, so versions are
# installed and replaced there as a package would, and the system's installation stays as it is. Sets
# PG_BIN to the copy's; harness_install FILES puts a scripts/build_release.sh directory's files in place
# of the installed version's.
harness_private_postgres() {
  harness_workdir
  HARNESS_PG=$WORK/pg
  mkdir -p "$HARNESS_PG/usr/lib/postgresql" "$HARNESS_PG/usr/share/postgresql"
  cp -a "/usr/lib/postgresql/$PG_MAJOR" "$HARNESS_PG/usr/lib/postgresql/"
  cp -a "/usr/share/postgresql/$PG_MAJOR" "$HARNESS_PG/usr/share/postgresql/"
  PG_BIN=$HARNESS_PG/usr/lib/postgresql/$PG_MAJOR/bin
}
harness_install() {
  rm -f "$HARNESS_PG/usr/lib/postgresql/$PG_MAJOR/lib/inventory_ext.so" \
    "$HARNESS_PG/usr/share/postgresql/$PG_MAJOR/extension/"inventory_ext[.-]*
  cp -a "$1/usr/." "$HARNESS_PG/usr/"
}
# Restarts a cluster (fast shutdown, then start): a new library in shared_preload_libraries.
cluster_restart() {
  _as_postgres "$PG_BIN/pg_ctl" -D "$(cluster_dir "$1")/data" -m fast -w stop >/dev/null
  cluster_start_again "$1"
}

# A new cluster's directory and port; prints nothing.
_harness_new() {
  local name=$1
  _harness_init
  local dir; dir=$(cluster_dir "$name")
  mkdir -p "$dir"
  chown postgres "$dir"
  CLUSTER_PORT[$name]=$_harness_next_port
  _harness_next_port=$((_harness_next_port + 1))
}

# The harness's settings, then the caller's, at the end of postgresql.conf (later lines win).
_harness_configure() {
  local name=$1; shift
  local dir; dir=$(cluster_dir "$name")
  {
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$dir'"
    echo "port = ${CLUSTER_PORT[$name]}"
    echo "shared_preload_libraries = '${HARNESS_PRELOAD:-pg_cron,inventory_ext}'"
    echo "cron.database_name = 'postgres'"
    echo "max_connections = 100"
    echo "log_min_messages = warning"
    local line
    for line in "$@"; do echo "$line"; done
  } >>"$dir/data/postgresql.conf"
}

# Starts (or restarts) a cluster and waits until it accepts connections.
cluster_start_again() {
  local name=$1 dir; dir=$(cluster_dir "$1")
  # RUST_BACKTRACE in the server's environment would put Rust backtraces into error details.
  _as_postgres env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE \
    "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
}

cluster_start() {
  local name=$1; shift
  _harness_new "$name"
  local dir; dir=$(cluster_dir "$name")
  _as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  _harness_configure "$name" "$@"
  cluster_start_again "$name"
}

# A cluster started from a copy of a base backup (a plain-format pg_basebackup directory), with the
# harness's socket and port and the caller's settings (restore_command, recovery targets, …). Put a
# recovery.signal into the copy first (cluster_start_from NAME DIR --recover) for archive recovery.
cluster_start_from() {
  local name=$1 backup=$2; shift 2
  local signal=
  if [ "${1:-}" = --recover ]; then signal=1; shift; fi
  _harness_new "$name"
  local dir; dir=$(cluster_dir "$name")
  _as_postgres cp -a "$backup" "$dir/data"
  chmod 700 "$dir/data"
  rm -f "$dir/data/postmaster.pid"
  [ -z "$signal" ] || _as_postgres touch "$dir/data/recovery.signal"
  _harness_configure "$name" "$@"
  cluster_start_again "$name"
}

# Power-cut style: SIGKILL to the postmaster, then to whatever of its children is still there once
# they have had a moment to notice. The data directory stays; cluster_start_again runs crash recovery.
cluster_kill9() {
  local name=$1 dir pm children; dir=$(cluster_dir "$1")
  pm=$(head -1 "$dir/data/postmaster.pid")
  children=$(pgrep -P "$pm" || true)
  kill -9 "$pm"
  local i
  for i in $(seq 50); do
    # shellcheck disable=SC2086
    kill -0 $children 2>/dev/null || break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  [ -z "$children" ] || kill -9 $children 2>/dev/null || true
  while kill -0 "$pm" 2>/dev/null; do sleep 0.1; done
}

cluster_env() {
  local name=$1
  echo "export PGHOST='$(cluster_dir "$name")' PGPORT=${CLUSTER_PORT[$name]} PGUSER=postgres"
}

cluster_psql() {
  local name=$1; shift
  PGHOST=$(cluster_dir "$name") PGPORT=${CLUSTER_PORT[$name]} PGUSER=postgres \
    "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 "$@"
}

cluster_log() { cat "$(cluster_dir "$1")/server.log"; }

cluster_stop() {
  local name=$1 dir; dir=$(cluster_dir "$name")
  if [ -f "$dir/data/postmaster.pid" ]; then
    _as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 \
      || _as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  # HARNESS_LOG_DIR keeps each cluster's server log (appended to NAME.server.log) after the cluster is gone.
  if [ -n "${HARNESS_LOG_DIR:-}" ] && [ -f "$dir/server.log" ]; then
    mkdir -p "$HARNESS_LOG_DIR" && cat "$dir/server.log" >>"$HARNESS_LOG_DIR/$name.server.log" || true
  fi
  unset "CLUSTER_PORT[$name]"
  rm -rf "$dir"
}

cluster_stop_all() {
  local name
  for name in "${!CLUSTER_PORT[@]}"; do cluster_stop "$name"; done
  [ -n "$HARNESS_ROOT" ] && rm -rf "$HARNESS_ROOT"
  HARNESS_ROOT=
}
