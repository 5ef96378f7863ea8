#!/usr/bin/env bash
# Benchmark (not a test), issue 17: the built-in schema on Citus (a coordinator and two workers on this
# machine, inventory.distribute) against the same schema on a single server, same build, same data.
#   1. A one-tenant read of the balances as the application role, through the tenant policy alone and
#      with org_id = '<tenant>' added: the shards each touches (EXPLAIN's task count) and tps.
#   2. Single-row postings (BEGIN; set_org; post; COMMIT) through the coordinator and on the single
#      server, one client: tps and the ratio.
# Rounds are interleaved (single, Citus, single, Citus, ...) and the medians reported with their spread.
# Usage: bench/citus.sh [seconds per run, default 5] [rounds, default 5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-5}
rounds=${2:-5}
if [ "${PG_VERSION:-15}" != 15 ]; then
  # Citus 13.2 (../shared/citus) supports PostgreSQL 15 to 17; the only other version here is 18.
  echo "bench/citus: Citus 13.2 does not support PostgreSQL $PG_VERSION; it runs on 15" >&2
  exit 2
fi
source "$here/common.sh"
source "$repo/tests/citus/cluster.sh"
stage=$("$repo/scripts/citus_build.sh") || { echo "bench/citus: no Citus source (CITUS_SOURCE); nothing measured" >&2; exit 1; }
build=$(bench_build)
citus_cluster_start "$stage"
cluster_start single "listen_addresses = '127.0.0.1'" "shared_preload_libraries = 'inventory_ext'"
cluster_psql single -qAt -d postgres -c "CREATE EXTENSION inventory_ext" >/dev/null
PGOPTIONS="-c client_min_messages=warning" cluster_psql coordinator -qAt -d postgres -c "CALL inventory.distribute()" >/dev/null

# 100 tenants, each 20 items at 5 locations with 5 postings a key: 10,000 balances, 50,000 entries.
fixture=$(cat <<'SQL'
CREATE ROLE bench_app LOGIN;
SELECT inventory.grant_app_access('bench_app');
INSERT INTO inventory.organizations (id, name)
SELECT ('00000000-0000-4000-9000-' || lpad(t::text, 12, '0'))::uuid, 'Tenant ' || t FROM generate_series(1, 100) t;
INSERT INTO inventory.items (org_id, id, sku, name)
SELECT ('00000000-0000-4000-9000-' || lpad(t::text, 12, '0'))::uuid,
       ('00000000-0000-4000-a' || lpad(t::text, 3, '0') || '-' || lpad(i::text, 12, '0'))::uuid, 'sku-' || i, 'item ' || i
  FROM generate_series(1, 100) t, generate_series(1, 20) i;
INSERT INTO inventory.locations (org_id, id, code, name)
SELECT ('00000000-0000-4000-9000-' || lpad(t::text, 12, '0'))::uuid,
       ('00000000-0000-4000-b' || lpad(t::text, 3, '0') || '-' || lpad(l::text, 12, '0'))::uuid, 'loc-' || l, 'location ' || l
  FROM generate_series(1, 100) t, generate_series(1, 5) l;
INSERT INTO inventory.ledger (org_id, item_id, location_id, qty)
SELECT ('00000000-0000-4000-9000-' || lpad(t::text, 12, '0'))::uuid,
       ('00000000-0000-4000-a' || lpad(t::text, 3, '0') || '-' || lpad(i::text, 12, '0'))::uuid,
       ('00000000-0000-4000-b' || lpad(t::text, 3, '0') || '-' || lpad(l::text, 12, '0'))::uuid, 1000 + n
  FROM generate_series(1, 100) t, generate_series(1, 20) i, generate_series(1, 5) l, generate_series(1, 5) n;
ANALYZE;
SQL
)
cluster_psql single -qAt -d postgres >/dev/null <<<"$fixture"
cluster_psql coordinator -qAt -d postgres >/dev/null <<<"$fixture"

tmp=$WORK/bench-citus
mkdir -p "$tmp"
tenant="'00000000-0000-4000-9000-' || lpad(:t::text, 12, '0')"
cat >"$tmp/policy.sql" <<SQL
\set t random(1, 100)
BEGIN;
SELECT inventory.set_org(($tenant)::uuid);
SELECT count(*), sum(qty) FROM inventory.balances;
COMMIT;
SQL
cat >"$tmp/literal.sql" <<SQL
\set t random(1, 100)
BEGIN;
SELECT inventory.set_org(($tenant)::uuid);
SELECT count(*), sum(qty) FROM inventory.balances WHERE org_id = ($tenant)::uuid;
COMMIT;
SQL
cat >"$tmp/post.sql" <<SQL
\set t random(1, 100)
\set i random(1, 20)
\set l random(1, 5)
BEGIN;
SELECT inventory.set_org(($tenant)::uuid);
SELECT inventory.post(('00000000-0000-4000-a' || lpad(:t::text, 3, '0') || '-' || lpad(:i::text, 12, '0'))::uuid,
                      ('00000000-0000-4000-b' || lpad(:t::text, 3, '0') || '-' || lpad(:l::text, 12, '0'))::uuid, 1);
COMMIT;
SQL
chmod 644 "$tmp"/*.sql

tps() {  # node script
  PGHOST=$(cluster_dir "$1") PGPORT=${CLUSTER_PORT[$1]} \
    "$PG_BIN/pgbench" -n -U bench_app -d postgres -c 1 -j 1 -T "$seconds" -f "$tmp/$2.sql" 2>/dev/null \
    | sed -nE 's/^tps = ([0-9.]+) .*/\1/p'
}
tasks() {  # predicate: EXPLAIN's task count for one tenant's read through the coordinator
  cluster_psql coordinator -qAt -d postgres <<SQL | sed -nE 's/.*Task Count: ([0-9]+).*/\1/p' | head -1
BEGIN;
SET LOCAL ROLE bench_app;
SELECT inventory.set_org('00000000-0000-4000-9000-000000000007') \g /dev/null
EXPLAIN SELECT count(*), sum(qty) FROM inventory.balances $1;
COMMIT;
SQL
}
policy_tasks=$(tasks "")
literal_tasks=$(tasks "WHERE org_id = '00000000-0000-4000-9000-000000000007'")
total_shards=$(cluster_psql coordinator -qAt -d postgres -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'inventory.balances'::regclass")

tps single post >/dev/null; tps coordinator post >/dev/null   # warm-up
results=()
for round in $(seq "$rounds"); do
  for case in "single post" "coordinator post" "coordinator policy" "coordinator literal"; do
    results+=("$case $(tps $case)")
  done
done
balances_ok=$(cluster_psql coordinator -qAt -d postgres -c "
  SELECT count(*) = 0 FROM (SELECT org_id, item_id, location_id, sum(qty) AS qty FROM inventory.ledger GROUP BY 1, 2, 3) l
  FULL JOIN (SELECT org_id, item_id, location_id, qty FROM inventory.balances) b USING (org_id, item_id, location_id)
  WHERE l.qty IS DISTINCT FROM b.qty")

printf '%s\n' "${results[@]}" >"$tmp/results"
python3 - "$seconds" "$rounds" "$policy_tasks" "$literal_tasks" "$total_shards" "$build" "$balances_ok" "$tmp/results" <<'PY'
import statistics, sys
seconds, rounds, policy_tasks, literal_tasks, shards, build, exact, results = sys.argv[1:9]
runs = {}
for line in open(results):
    node, script, tps = line.split()
    runs.setdefault((node, script), []).append(float(tps))
def show(label, key):
    v = runs[key]
    m = statistics.median(v)
    print(f"  {label:<52} {m:9.1f} tps  (median of {len(v)}; spread {min(v):.1f} to {max(v):.1f}, {100 * (max(v) - min(v)) / m:.0f}%)")
    return m
print(f"inventory_ext on Citus 13.2.2 (coordinator + 2 workers, one machine) vs a single server; {rounds} interleaved rounds x {seconds} s, 1 client")
print(f"  build: {build}")
print(f"  100 tenants, 10,000 balances, 50,000 ledger entries before the runs")
print(f"one tenant's balances (count, sum) as the application role, through the coordinator:")
print(f"  shards read: through the policy alone {policy_tasks} of {shards}; with org_id = '<tenant>' added {literal_tasks} of {shards}")
p = show("policy alone", ("coordinator", "policy"))
l = show("policy + org_id = '<tenant>'", ("coordinator", "literal"))
print(f"  ratio literal / policy alone: {l / p:.2f}")
print("single-row postings (BEGIN; set_org; post; COMMIT):")
s = show("single server", ("single", "post"))
c = show("Citus, through the coordinator", ("coordinator", "post"))
print(f"  ratio Citus / single server: {c / s:.2f}")
print(f"balances equal to the ledger sums on Citus after the runs: {exact}")
PY
