#!/usr/bin/env bash
# Moving a tenant between servers with the commands of docs/DISASTER_RECOVERY.md: export_org on one
# cluster (a tenant with 100,000 ledger rows), import_org on another that has tenants of its own; every
# key's on_hand is identical, the ledger's rows and sums are, reconcile is clean; a second import fails
# with 23505 and changes nothing. Prints the document's size.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
work=$WORK
org=f0000000-0000-4000-8000-00000000000f

seed() {  # cluster, org id, ledger rows
  cluster_psql "$1" -q -d postgres >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS inventory_ext;
INSERT INTO inventory.organizations (id, name, subdomain) VALUES ('$2', 'Tenant $2', 't-' || left('$2', 8));
SET app.org_id = '$2';
INSERT INTO inventory.items (sku, name, allow_negative) SELECT 'SKU-' || i, 'Item ' || i, i % 10 = 0 FROM generate_series(1, 200) i;
INSERT INTO inventory.locations (code, name) SELECT 'L' || i, 'Location ' || i FROM generate_series(1, 10) i;
INSERT INTO inventory.lots (item_id, code, expires_on) SELECT id, 'LOT-1', DATE '2027-01-01' FROM inventory.items WHERE org_id = '$2';
INSERT INTO inventory.ledger (item_id, location_id, lot_id, qty, reason, reference)
SELECT i.id, l.id, CASE WHEN g % 4 = 0 THEN lot.id END,
       CASE WHEN g % 10 = 9 THEN -0.25 ELSE round((g % 13) + 0.125, 3) END, 'load', 'R-' || g
  FROM generate_series(1, $3) g
  JOIN (SELECT id, row_number() OVER (ORDER BY substr(sku, 5)::int) AS n FROM inventory.items WHERE org_id = '$2') i ON i.n = g % 200 + 1
  JOIN (SELECT id, row_number() OVER (ORDER BY code) AS n FROM inventory.locations WHERE org_id = '$2') l ON l.n = g / 200 % 10 + 1
  JOIN inventory.lots lot ON lot.item_id = i.id;
SQL
}
# Every key's on_hand, the ledger's count and sum, as one digest line.
census="SELECT md5(string_agg(concat_ws(',', i.sku, l.code, lot.code, trim_scale(b.qty)), ';' ORDER BY i.sku, l.code, lot.code NULLS FIRST))
               || ' ' || (SELECT count(*) || ' rows, sum ' || sum(qty) FROM inventory.ledger WHERE org_id = '$org')
          FROM inventory.balances b JOIN inventory.items i ON (i.org_id, i.id) = (b.org_id, b.item_id)
          JOIN inventory.locations l ON (l.org_id, l.id) = (b.org_id, b.location_id)
          LEFT JOIN inventory.lots lot ON (lot.org_id, lot.id) = (b.org_id, b.lot_id)
         WHERE b.org_id = '$org'"

cluster_start source
seed source "$org" 100000
seed source a0000000-0000-4000-8000-00000000000a 1000
before=$(cluster_psql source -qAt -d postgres -c "$census")

eval "$(cluster_env source)"
cd "$work"
# --- the commands of docs/DISASTER_RECOVERY.md ("Moving one tenant")
psql --no-psqlrc --tuples-only --no-align --dbname=postgres \
     --command="SELECT inventory.export_org('$org')" --output=tenant.json
# ---
size=$(stat -c %s tenant.json)
rows=$(python3 -c "import json,sys; d=json.load(open('tenant.json')); print(len(d['ledger']))")
[ "$rows" = 100000 ] || fail "the document has $rows ledger rows"
echo "tenant_move: exported $rows ledger rows in $((size / 1024)) KiB ($((size / rows)) bytes a ledger row)"

cluster_start target
seed target b0000000-0000-4000-8000-00000000000b 1000
eval "$(cluster_env target)"
start=$(date +%s.%N)
# --- the commands of docs/DISASTER_RECOVERY.md ("Moving one tenant"), on the new server
psql --no-psqlrc --set=ON_ERROR_STOP=1 --dbname=postgres <<'SQL'
\set doc `cat tenant.json`
SELECT inventory.import_org(:'doc');
SQL
# ---
took=$(python3 -c "import time; print(round(time.time() - $start, 1))")
after=$(cluster_psql target -qAt -d postgres -c "$census")
echo "tenant_move: imported in ${took} s; source: $before; target: $after"
[ "$before" = "$after" ] || fail "on_hand or the ledger differ after the move"
findings=$(cluster_psql target -qAt -d postgres -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "reconcile found $findings differences after the import"
others=$(cluster_psql target -qAt -d postgres -c "SELECT count(DISTINCT org_id) FROM inventory.ledger")
[ "$others" = 2 ] || fail "the target has the ledgers of $others tenants, expected 2"

# A second import fails cleanly: 23505, nothing written.
if err=$(printf '%s\n' '\set doc `cat tenant.json`' "SELECT inventory.import_org(:'doc');" |
         psql --no-psqlrc --set=ON_ERROR_STOP=1 --set=VERBOSITY=verbose --dbname=postgres 2>&1); then
  fail "a second import succeeded"
fi
echo "$err" | grep -q "ERROR:  23505: import_org: organization.id $org already exists" || fail "unexpected error: $err"
again=$(cluster_psql target -qAt -d postgres -c "$census")
[ "$again" = "$after" ] || fail "the failed import changed the tenant"
echo "tenant_move: a second import fails with 23505 and changes nothing"
