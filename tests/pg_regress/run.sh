#!/usr/bin/env bash
# The SQL contract suite: pg_regress against scratch clusters, once with the library preloaded (the
# main schedule) and once without (schedule_not_preloaded). Expects the extension installed
# (cargo pgrx install). Prints the diffs and exits non-zero on any difference.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
PG_REGRESS=${PG_REGRESS:-/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/regress/pg_regress}
# REGRESS_OUT keeps the results (results/*.out) for review; by default they go to a temporary folder.
out=${REGRESS_OUT:-$(mktemp -d)}
status=0

# pg_regress with the suite's files; results in $out/NAME; a difference fails the run.
regress() {  # name, schedule, pg_regress arguments (server, database)
  local name=$1 schedule=$2; shift 2
  mkdir -p "$out/$name"
  if ! "$PG_REGRESS" --inputdir="$here" --outputdir="$out/$name" --bindir="$PG_BIN" --user=postgres \
      --schedule="$here/$schedule" "$@"; then
    cat "$out/$name/regression.diffs" || true
    status=1
  fi
}

run_schedule() {  # cluster, schedule, [postgresql.conf lines]
  local name=$1 schedule=$2; shift 2
  cluster_start "$name" "$@"
  regress "$name" "$schedule" --host="$(cluster_dir "$name")" --port="${CLUSTER_PORT[$name]}" --dbname=inventory_regress
  cluster_stop "$name"
}

# --existing HOST PORT: the main schedule only, in that server's database inventory_regress as it is
# (the upgrade test's, updated from an older version); the server must allow prepared transactions.
if [ "${1:-}" = --existing ]; then
  regress existing schedule --host="$2" --port="$3" --use-existing --dbname=inventory_regress
else
  run_schedule regress schedule "max_prepared_transactions = 4"
  # Every preloaded library but this one (pg_cron where there is one).
  others=$(tr ',' '\n' <<<"${HARNESS_PRELOAD:-pg_cron,inventory_ext}" | { grep -v '^inventory_ext$' || true; } | paste -sd, -)
  run_schedule regress_not_preloaded schedule_not_preloaded "shared_preload_libraries = '$others'"
fi
[ -n "${REGRESS_OUT:-}" ] || rm -rf "$out"
exit $status
