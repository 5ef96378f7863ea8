#!/usr/bin/env bash
# The migration of docs/MIGRATION_GUIDE.md, end to end, on the original Prisma schema with 120,000 ledger
# rows (tests/fixtures/prisma_legacy.sql). A legacy writer — a new connection for every round, as the
# application's role, no tenant set — inserts ledger rows, items and audit entries and reads them back
# while the guide's SQL runs; after step 7 it sets the tenant itself, as the deployed application would.
# It must never see an error. Then: every row carries the legacy tenant; every balance equals its ledger
# sum; the isolation report has no errors; with the default removed a new tenant reuses a SKU and a
# location code, cannot reference the legacy tenant's rows, and a session with no tenant sees nothing.
# Finally the whole guide runs again and changes nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
guide=$repo/docs/MIGRATION_GUIDE.md
legacy=8c1f3e2a-5b7d-4c9e-a1f0-3d2e4b6a8c10
cluster_start migration
cluster_psql migration -q -d postgres -c "CREATE DATABASE shop"
cluster_psql migration -q -d shop -v ledger_rows=120000 -f "$repo/tests/fixtures/prisma_legacy.sql" >/dev/null
as_app() { cluster_psql migration -X -qAt -d shop -U prisma "$@"; }
run_guide() {  # [--from HEADING] [--until HEADING]
  python3 "$here/docs/sql_blocks.py" "$guide" "$@" | cluster_psql migration -d shop -f - >>"$WORK/guide.log" 2>&1 \
    || { tail -30 "$WORK/guide.log"; fail "a block of the guide failed"; }
}

# The legacy writer. Each round is a new connection, so ALTER DATABASE … SET reaches it as it would a
# recycled pool. In "tenant" mode (after the deploy of step 7) it sets the tenant per transaction.
writer() {
  local n=0 mode
  while [ ! -f "$WORK/stop" ]; do
    n=$((n + 1))
    mode=legacy; [ -f "$WORK/deployed" ] && mode=tenant
    local set_tenant=""
    [ $mode = tenant ] && set_tenant="SELECT set_config('app.org_id', '$legacy', true);"
    if as_app >/dev/null 2>>"$WORK/writer.err" <<SQL
BEGIN;
$set_tenant
INSERT INTO "InventoryLedger" (id, "itemId", "locationId", "lotId", "qtyCanonical", reason)
VALUES ('w_$n', 'itm_' || ($n % 500 + 1), 'loc_' || ($n % 8 + 1), CASE WHEN $n % 2 = 0 THEN NULL ELSE 'LOT-1' END, 1.5, 'writer');
INSERT INTO "Item" (id, sku, name) VALUES ('witm_$n', 'W-$n', 'writer item');
INSERT INTO "AuditLog" (id, action, entity, "entityId") VALUES ('waud_$n', 'ledger.create', 'InventoryLedger', 'w_$n');
SELECT count(*) FROM "InventoryLedger" WHERE "itemId" = 'itm_' || ($n % 500 + 1);
SELECT sku FROM "Item" WHERE id = 'witm_$n';
COMMIT;
SQL
    then echo "$mode" >>"$WORK/writer.ok"
    else echo "round $n ($mode) failed" >>"$WORK/writer.err"; fi
  done
}
writer & writer_pid=$!
trap 'touch "$WORK/stop"; wait '"$writer_pid"' 2>/dev/null || true; cluster_stop_all' EXIT
sleep 1

start=$SECONDS
run_guide --until "7. The application"
echo "migration: steps 0-6 of the guide ran in $((SECONDS - start)) s beside the legacy writer ($(grep -c 'gave way' "$WORK/guide.log" || true) times a step gave way to it)"
touch "$WORK/deployed"
sleep 1
run_guide --from "7. The application"
sleep 1
touch "$WORK/stop"; wait "$writer_pid"
trap 'cluster_stop_all' EXIT
legacy_rounds=$(grep -c '^legacy$' "$WORK/writer.ok" || true)
tenant_rounds=$(grep -c '^tenant$' "$WORK/writer.ok" || true)
echo "migration: the legacy writer did $legacy_rounds rounds without a tenant and $tenant_rounds setting it"
if [ -s "$WORK/writer.err" ]; then head -20 "$WORK/writer.err"; fail "the legacy writer saw errors"; fi
[ "$legacy_rounds" -gt 0 ] && [ "$tenant_rounds" -gt 0 ] || fail "the writer did not run in both modes"

q() { cluster_psql migration -X -qAt -d shop "$@"; }
# Every row of every table carries the legacy tenant.
stray=$(q -c "SELECT string_agg(t || ' ' || n, ', ') FROM (
  SELECT 'User' t, count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') n FROM \"User\" UNION ALL
  SELECT 'Item', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"Item\" UNION ALL
  SELECT 'Location', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"Location\" UNION ALL
  SELECT 'InventoryLedger', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"InventoryLedger\" UNION ALL
  SELECT 'CountSheet', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"CountSheet\" UNION ALL
  SELECT 'CountLine', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"CountLine\" UNION ALL
  SELECT 'AuditLog', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"AuditLog\" UNION ALL
  SELECT 'FeatureFlag', count(*) FILTER (WHERE \"orgId\" IS DISTINCT FROM '$legacy') FROM \"FeatureFlag\") c WHERE n > 0")
[ -z "$stray" ] || fail "rows without the legacy tenant: $stray"
differ=$(q -c "SELECT count(*) FROM (SELECT \"orgId\", \"itemId\", \"locationId\", \"lotId\", sum(\"qtyCanonical\") AS qty
                  FROM \"InventoryLedger\" GROUP BY 1, 2, 3, 4) l
               FULL JOIN \"InventoryBalance\" b ON (b.\"orgId\", b.\"itemId\", b.\"locationId\") = (l.\"orgId\", l.\"itemId\", l.\"locationId\")
                AND b.\"lotId\" IS NOT DISTINCT FROM l.\"lotId\"
              WHERE b.qty IS DISTINCT FROM l.qty")
[ "$differ" = 0 ] || fail "$differ balances differ from their ledger sums"
errors=$(q -c "SELECT count(*) FROM inventory.isolation_report() WHERE severity = 'error'")
[ "$errors" = 0 ] || { q -c "SELECT object, problem FROM inventory.isolation_report() WHERE severity = 'error'"; fail "the isolation report has errors"; }
read -r rows keys < <(q -F ' ' -c "SELECT (SELECT count(*) FROM \"InventoryLedger\"), (SELECT count(*) FROM \"InventoryBalance\")")
echo "migration: every row carries the legacy tenant; $keys balances equal the sums of $rows ledger rows; isolation report: no errors"

# After the default is gone: a second tenant, through the application's role.
newco=$(q -c "SELECT org_id FROM inventory.create_organization('Globex', 'globex')")
nothing=$(as_app -c "SELECT (SELECT count(*) FROM \"Item\") + (SELECT count(*) FROM \"InventoryLedger\") + (SELECT count(*) FROM \"User\")")
[ "$nothing" = 0 ] || fail "a session without a tenant sees $nothing rows"
if as_app -c "INSERT INTO \"Item\" (id, sku, name) VALUES ('x', 'X', 'x')" 2>"$WORK/nt.err"; then fail "a session without a tenant could insert"; fi
grep -q "no tenant context" "$WORK/nt.err" || fail "unexpected error without a tenant: $(cat "$WORK/nt.err")"
as_app >/dev/null <<SQL
BEGIN;
SELECT inventory.set_org('$newco');
INSERT INTO "Item" (id, sku, name) VALUES ('g_itm_1', 'SKU-00001', 'a SKU the legacy tenant has too');
INSERT INTO "Location" (id, code, name) VALUES ('g_loc_1', 'WH-1', 'a code the legacy tenant has too');
INSERT INTO "InventoryLedger" (id, "itemId", "locationId", "qtyCanonical") VALUES ('g_led_1', 'g_itm_1', 'g_loc_1', 3);
COMMIT;
SQL
if as_app >/dev/null 2>"$WORK/fk.err" <<SQL
BEGIN;
SELECT inventory.set_org('$newco');
INSERT INTO "InventoryLedger" (id, "itemId", "locationId", "qtyCanonical") VALUES ('g_led_2', 'itm_1', 'g_loc_1', 1);
COMMIT;
SQL
then
  fail "the new tenant referenced the legacy tenant's item"
fi
grep -q "violates foreign key constraint" "$WORK/fk.err" || fail "unexpected error referencing the legacy item: $(cat "$WORK/fk.err")"
seen=$(as_app -c "BEGIN" -c "SELECT inventory.set_org('$newco')" -c "SELECT count(*) FROM \"Item\"" -c "COMMIT" | sed -n 2p)
[ "$seen" = 1 ] || fail "the new tenant sees $seen items, expected its 1"
echo "migration: a new tenant reuses SKU-00001 and WH-1, cannot reference the legacy item (23503), sees only its row; no tenant, nothing"

# The same migration again changes nothing: catalog and data as they were.
snapshot() {
  q -c "SELECT md5(string_agg(x, E'\n' ORDER BY x)) FROM (
    SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS x FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT indexrelid::regclass || ' ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid::regclass::text LIKE '\"%'
    UNION ALL SELECT tablename || ' ' || policyname || ' ' || qual || ' ' || with_check FROM pg_policies WHERE schemaname = 'public'
    UNION ALL SELECT tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT attrelid::regclass || ' ' || attname || ' ' || attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
      FROM pg_attribute a LEFT JOIN pg_attrdef d ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum)
     WHERE attrelid::regclass::text LIKE '\"%' AND attnum > 0 AND NOT attisdropped
    UNION ALL SELECT c.oid::regclass || ' ' || c.relrowsecurity || c.relforcerowsecurity FROM pg_class c WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT 'ledger ' || count(*) || ' ' || sum(\"qtyCanonical\") FROM \"InventoryLedger\"
    UNION ALL SELECT 'balances ' || md5(string_agg(concat_ws(',', \"orgId\", \"itemId\", \"locationId\", \"lotId\", qty), ';' ORDER BY \"orgId\", \"itemId\", \"locationId\", \"lotId\")) FROM \"InventoryBalance\"
    UNION ALL SELECT 'items ' || count(*) FROM \"Item\"
    UNION ALL SELECT 'organizations ' || count(*) FROM inventory.organizations
    UNION ALL SELECT 'registrations ' || string_agg(relid::text, ',' ORDER BY relid::text) FROM inventory.tenant_tables) s"
}
before=$(snapshot)
run_guide
after=$(snapshot)
[ "$before" = "$after" ] || fail "running the guide a second time changed the schema or the data"
echo "migration: the whole guide run a second time changes nothing"
