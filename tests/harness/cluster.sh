# Scratch PostgreSQL clusters for tests and the demo. Source this file, then:
#
#   cluster_start NAME [postgresql.conf line ...]   # initdb + start, as the postgres OS user
#   cluster_psql NAME [psql args ...]                # psql as the postgres superuser
#   cluster_env NAME                                 # prints PGHOST/PGPORT/PGUSER exports
#   cluster_stop NAME                                # fast shutdown and removal
#
# Every cluster started here is stopped and removed when the sourcing shell exits, also on failure
# (an EXIT trap). Clusters listen on a private Unix socket only; their files live in a fresh temporary
# directory the postgres user owns, never in the repository (a clone may sit where postgres cannot reach).
# By default they preload pg_cron and inventory_ext, as production does.

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
HARNESS_ROOT=${HARNESS_ROOT:-}
declare -gA CLUSTER_PORT=()
_harness_next_port=${HARNESS_BASE_PORT:-54320}

# From /: the postgres user may not be able to enter the current directory (a clone under /root, say).
_as_postgres() { (cd / && runuser -u postgres -- "$@"); }

_harness_init() {
  if [ -z "$HARNESS_ROOT" ]; then
    HARNESS_ROOT=$(mktemp -d /tmp/inventory_ext.XXXXXX)
    chown postgres "$HARNESS_ROOT"
    chmod 711 "$HARNESS_ROOT"
    trap 'cluster_stop_all' EXIT
  fi
}

cluster_dir() { echo "$HARNESS_ROOT/$1"; }

cluster_start() {
  local name=$1; shift
  _harness_init
  local dir; dir=$(cluster_dir "$name")
  local port=$_harness_next_port
  _harness_next_port=$((_harness_next_port + 1))
  mkdir -p "$dir"
  chown postgres "$dir"
  _as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  {
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$dir'"
    echo "port = $port"
    echo "shared_preload_libraries = 'pg_cron,inventory_ext'"
    echo "cron.database_name = 'postgres'"
    echo "max_connections = 100"
    echo "log_min_messages = warning"
    local line
    for line in "$@"; do echo "$line"; done
  } >>"$dir/data/postgresql.conf"
  # RUST_BACKTRACE in the server's environment would put Rust backtraces into error details.
  _as_postgres env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE \
    "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  CLUSTER_PORT[$name]=$port
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
  unset "CLUSTER_PORT[$name]"
  rm -rf "$dir"
}

cluster_stop_all() {
  local name
  for name in "${!CLUSTER_PORT[@]}"; do cluster_stop "$name"; done
  [ -n "$HARNESS_ROOT" ] && rm -rf "$HARNESS_ROOT"
  HARNESS_ROOT=
}
