# Sourced after tests/harness/cluster.sh by the citus layer and bench/citus.sh:
#
#   stage=$(scripts/citus_build.sh)        # Citus built once (exit 3: no Citus source)
#   citus_cluster_start STAGE [extra postgresql.conf line ...]
#
# Puts the Citus build in STAGE into a private copy of this machine's PostgreSQL (with the extension as
# installed there), and starts a coordinator and two workers on loopback (Citus's nodes talk over TCP), the workers added, the
# extension created on the coordinator (which creates it on the workers). Stopped when the shell exits.
citus_cluster_start() {
  local stage=$1; shift
  harness_private_postgres
  cp -a "$stage/usr/." "$HARNESS_PG/usr/"
  local settings=("listen_addresses = '127.0.0.1'" "shared_preload_libraries = 'citus,inventory_ext'"
                  "citus.node_conninfo = 'sslmode=disable'" "max_worker_processes = 16" "log_min_messages = warning" "$@")
  local node
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
}
