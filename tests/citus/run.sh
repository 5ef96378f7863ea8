#!/usr/bin/env bash
# The citus layer (issue 17): a coordinator and two workers of Citus (built by scripts/citus_build.sh
# from CITUS_SOURCE, default ../shared/citus) on a private copy of this machine's PostgreSQL with the
# extension installed, then tests/citus/*.sql against the coordinator, one TAP line per check. Without
# a Citus source the layer says so in one line and is skipped (exit 0, no test counted).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/../harness/cluster.sh"
status=0; stage=$("$repo/scripts/citus_build.sh") || status=$?
if [ "$status" = 3 ]; then echo "citus: skipped (no Citus source; see docs/TESTING.md)"; exit 0; fi
[ "$status" = 0 ] || exit "$status"
harness_private_postgres
cp -a "$stage/usr/." "$HARNESS_PG/usr/"
trap 'cluster_stop_all' EXIT
settings=("listen_addresses = '127.0.0.1'" "shared_preload_libraries = 'citus,inventory_ext'"
          "citus.node_conninfo = 'sslmode=disable'" "max_worker_processes = 16" "log_min_messages = warning")
for node in coordinator worker1 worker2; do
  cluster_start "$node" "${settings[@]}"
  cluster_psql "$node" -qAt -d postgres -c "CREATE EXTENSION citus" >/dev/null
done
cluster_psql coordinator -qAt -d postgres >/dev/null <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', ${CLUSTER_PORT[coordinator]});
SELECT citus_add_node('127.0.0.1', ${CLUSTER_PORT[worker1]});
SELECT citus_add_node('127.0.0.1', ${CLUSTER_PORT[worker2]});
CREATE EXTENSION inventory_ext;
SQL
# Each file prints TAP lines (ok N - …, not ok N - …); a failed statement fails the file.
failed=0
for test in "$here"/*.sql; do
  out=$(cluster_psql coordinator -qAt -d postgres -v worker1="${CLUSTER_PORT[worker1]}" -v worker2="${CLUSTER_PORT[worker2]}" \
        -f "$test" 2>&1) || { echo "$out"; echo "not ok - $(basename "$test") stopped on an error"; failed=1; continue; }
  echo "$out"
  ! grep -q '^not ok' <<<"$out" || failed=1
done
exit $failed
