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

run_schedule() {  # cluster, schedule, [postgresql.conf lines]
  local name=$1 schedule=$2; shift 2
  cluster_start "$name" "$@"
  mkdir -p "$out/$name"
  if ! "$PG_REGRESS" --inputdir="$here" --outputdir="$out/$name" --bindir="$PG_BIN" \
      --host="$(cluster_dir "$name")" --port="${CLUSTER_PORT[$name]}" --user=postgres \
      --dbname=inventory_regress --schedule="$here/$schedule"; then
    cat "$out/$name/regression.diffs" || true
    status=1
  fi
  cluster_stop "$name"
}

run_schedule regress schedule "max_prepared_transactions = 4"
run_schedule regress_not_preloaded schedule_not_preloaded "shared_preload_libraries = 'pg_cron'"
[ -n "${REGRESS_OUT:-}" ] || rm -rf "$out"
exit $status
