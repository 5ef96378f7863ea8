#!/usr/bin/env bash
# End-to-end load: pgbench with 8 clients posting for a bounded time (LOAD_SECONDS, default 20) as an
# application role, to random keys and to one hot key, single rows and multi-row transfers. Then every
# balance must equal its ledger sum, and no transaction may have failed. Meanwhile a superuser runs
# inventory.reconcile() over and over, as pg_cron would: under load it must never report a finding
# (no open posting may look like drift).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
seconds=${LOAD_SECONDS:-20}
cluster_start load "max_connections = 50"
eval "$(cluster_env load)"
cluster_psql load -q -d postgres >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE ROLE load_app LOGIN;
SELECT inventory.grant_app_access('load_app');
INSERT INTO inventory.organizations (id, name) VALUES
    ('10000000-0000-4000-8000-000000000001', 'Load 1'), ('20000000-0000-4000-8000-000000000002', 'Load 2');
-- Per tenant: 50 items (allow_negative, so random issues never fail) and 5 locations, with fixed ids.
INSERT INTO inventory.items (org_id, id, sku, name, allow_negative)
SELECT o, ('00000000-0000-4000-a000-' || lpad((t * 1000 + i)::text, 12, '0'))::uuid, 'SKU-' || i, 'Item ' || i, true
  FROM (VALUES (1, '10000000-0000-4000-8000-000000000001'::uuid), (2, '20000000-0000-4000-8000-000000000002'::uuid)) AS org(t, o),
       generate_series(1, 50) i;
INSERT INTO inventory.locations (org_id, id, code, name)
SELECT o, ('00000000-0000-4000-b000-' || lpad((t * 1000 + i)::text, 12, '0'))::uuid, 'L' || i, 'Location ' || i
  FROM (VALUES (1, '10000000-0000-4000-8000-000000000001'::uuid), (2, '20000000-0000-4000-8000-000000000002'::uuid)) AS org(t, o),
       generate_series(1, 5) i;
SQL
script=$(mktemp)
trap 'rm -f "$script"; cluster_stop_all' EXIT
cat >"$script" <<'SQL'
\set t random(1, 2)
\set i random(1, 50)
\set l random(1, 5)
\set hot random(1, 10)
\set q random(-5, 10)
\set kind random(1, 10)
BEGIN;
SELECT set_config('app.org_id', CASE :t WHEN 1 THEN '10000000-0000-4000-8000-000000000001' ELSE '20000000-0000-4000-8000-000000000002' END, true);
-- 30 % of postings go to one hot key per tenant, the rest spread out; one in ten is a transfer.
SELECT CASE WHEN :kind = 1
            THEN cardinality(inventory.transfer(('00000000-0000-4000-a000-' || lpad((:t * 1000 + :i)::text, 12, '0'))::uuid,
                      ('00000000-0000-4000-b000-' || lpad((:t * 1000 + :l)::text, 12, '0'))::uuid,
                      ('00000000-0000-4000-b000-' || lpad((:t * 1000 + (:l % 5) + 1)::text, 12, '0'))::uuid, 1))
            ELSE inventory.post(('00000000-0000-4000-a000-' || lpad((:t * 1000 + CASE WHEN :hot <= 3 THEN 1 ELSE :i END)::text, 12, '0'))::uuid,
                      ('00000000-0000-4000-b000-' || lpad((:t * 1000 + CASE WHEN :hot <= 3 THEN 1 ELSE :l END)::text, 12, '0'))::uuid,
                      CASE WHEN :q = 0 THEN 1 ELSE :q END)
       END;
COMMIT;
SQL
log=$(mktemp)
(
  end=$((SECONDS + seconds))
  while [ $SECONDS -lt "$end" ]; do
    cluster_psql load -d postgres -qAt -c "SELECT count(*) FROM inventory.reconcile()" >/dev/null || exit 1
    sleep 0.5
  done
) &
reconciler=$!
pgbench -n -U load_app -c 8 -j 2 -T "$seconds" -f "$script" postgres >"$log" 2>&1 || { cat "$log"; echo "load: pgbench failed"; exit 1; }
grep -E "^(number of (transactions actually processed|failed transactions)|tps)" "$log" || true
processed=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$log")
failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$log")
rm -f "$log"
wait "$reconciler" || { echo "load: a reconcile beside the load failed"; exit 1; }
read -r runs findings < <(cluster_psql load -d postgres -At -F ' ' -c "SELECT count(*), coalesce(sum(findings), 0) FROM inventory.reconcile_runs")
echo "load: $runs reconcile runs beside the load, $findings findings"
[ "$runs" -gt 0 ] && [ "$findings" = 0 ] || { echo "load: reconcile reported drift under load"; exit 1; }
[ "${failed:-0}" = 0 ] || { echo "load: $failed transactions failed"; exit 1; }
[ "${processed:-0}" -gt 0 ] || { echo "load: no transaction ran"; exit 1; }
result=$(cluster_psql load -d postgres -At <<'SQL'
SELECT count(*) FROM (
    SELECT org_id, item_id, location_id, lot_id, sum(qty) AS qty FROM inventory.ledger GROUP BY 1, 2, 3, 4) l
    FULL JOIN inventory.balances b
      ON b.org_id = l.org_id AND b.item_id = l.item_id AND b.location_id = l.location_id
     AND b.lot_id IS NOT DISTINCT FROM l.lot_id
 WHERE l.qty IS DISTINCT FROM b.qty;
SQL
)
rows=$(cluster_psql load -d postgres -At -c "SELECT count(*) || ' ledger rows, ' || (SELECT count(*) FROM inventory.balances) || ' balances' FROM inventory.ledger")
echo "load: $processed transactions, $rows, $result keys whose balance differs from the ledger"
[ "$result" = 0 ]
