#!/usr/bin/env bash
# Benchmark (not a test): inventory.reconcile() over a large built-in ledger, against a bare GROUP BY of
# the same ledger (the least any reconciliation must do: read every row once and sum per key).
# 2 tenants x 100 items x 50 locations (10,000 keys). The ledger is loaded with the triggers off and its
# balances rebuilt once (loading 10 million rows through the trigger would only slow the set-up), then
# vacuumed so that both queries read the same all-visible pages. Runs alternate, 3 of each.
# Usage: bench/reconcile.sh [ledger rows, default 10000000]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${1:-10000000}
source "$here/common.sh"
cluster_start reconbench "shared_buffers = '2GB'" "max_wal_size = '8GB'" "work_mem = '64MB'"
psql_q() { cluster_psql reconbench -d postgres -X -qAt "$@"; }

echo "loading $rows ledger rows over 10,000 keys…"
psql_q >/dev/null <<SQL
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES
    ('00000000-0000-4000-8000-000000000001', 'Bench 1'), ('00000000-0000-4000-8000-000000000002', 'Bench 2');
INSERT INTO inventory.items (org_id, id, sku, name)
SELECT ('00000000-0000-4000-8000-00000000000' || t)::uuid, ('00000000-0000-4000-a00' || t || '-' || lpad(i::text, 12, '0'))::uuid, 'SKU-' || i, 'Item'
  FROM generate_series(1, 2) t, generate_series(1, 100) i;
INSERT INTO inventory.locations (org_id, id, code, name)
SELECT ('00000000-0000-4000-8000-00000000000' || t)::uuid, ('00000000-0000-4000-b00' || t || '-' || lpad(i::text, 12, '0'))::uuid, 'L' || i, 'Loc'
  FROM generate_series(1, 2) t, generate_series(1, 50) i;
SET session_replication_role = replica;
INSERT INTO inventory.ledger (org_id, item_id, location_id, qty)
SELECT ('00000000-0000-4000-8000-00000000000' || t)::uuid,
       ('00000000-0000-4000-a00' || t || '-' || lpad((g / 2 % 100 + 1)::text, 12, '0'))::uuid,
       ('00000000-0000-4000-b00' || t || '-' || lpad((g / 200 % 50 + 1)::text, 12, '0'))::uuid,
       (g % 7) + 1
  FROM (SELECT g, g % 2 + 1 AS t FROM generate_series(1, $rows) g) s;
RESET session_replication_role;
SELECT inventory.rebuild_balances();
VACUUM (ANALYZE) inventory.ledger;
VACUUM (ANALYZE) inventory.balances;
SQL

bare_sql="SELECT sum(s) FROM (SELECT org_id, item_id, location_id, lot_id, sum(qty) AS s FROM inventory.ledger GROUP BY 1, 2, 3, 4) g"
reconcile_sql="SELECT count(*) FROM inventory.reconcile()"
ms() { psql_q -c '\timing on' -c "$1" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'; }
bare=() recon=()
for i in 1 2 3; do
  b=$(ms "$bare_sql"); r=$(ms "$reconcile_sql")
  echo "  round $i: bare GROUP BY $b ms, reconcile $r ms"
  bare+=("$b"); recon+=("$r")
done
findings=$(psql_q -c "SELECT sum(findings) || ' findings over ' || max(keys_checked) || ' keys' FROM inventory.reconcile_runs")
echo "  reconcile runs: $findings"
python3 - "${bare[*]}" "${recon[*]}" "$rows" <<'PY'
import sys, statistics
bare = statistics.median(map(float, sys.argv[1].split()))
recon = statistics.median(map(float, sys.argv[2].split()))
print(f"{int(sys.argv[3]):,} ledger rows: bare GROUP BY {bare/1000:.2f} s, reconcile {recon/1000:.2f} s (medians of 3)")
print(f"reconcile / bare GROUP BY = {recon/bare:.2f}   (target <= 1.5)")
PY
