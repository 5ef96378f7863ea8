#!/usr/bin/env bash
# pg_dump → pg_restore into a fresh cluster, with the commands of docs/BACKUP_RECOVERY.md: every
# organization (its API key still works), item, lot, ledger row, balance, tracked application ledger,
# registration and reconcile run comes back with identical counts and sums; the balances are not in the
# dump and are rebuilt once by the balance trigger as the ledger is loaded (never added twice); row-level
# security stays forced; a new posting updates the restored balance and ledger ids continue; reconcile
# finds nothing. Also: a dump by a role without BYPASSRLS fails, and with --enable-row-security it
# silently misses every tenant row.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
work=$WORK

cluster_start source
cluster_psql source -q -d postgres -c "CREATE DATABASE shop"
cluster_psql source -q -d shop >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE ROLE shop_app LOGIN;
SELECT inventory.grant_app_access('shop_app');
CREATE TABLE public.test_keys AS
SELECT 'acme' AS name, * FROM inventory.create_organization('Acme', 'acme')
UNION ALL SELECT 'globex', * FROM inventory.create_organization('Globex', 'globex');
-- Each tenant: 20 items, 4 locations, a lot per item, 500 postings with and without lots, transfers.
DO $$
DECLARE o uuid;
BEGIN
  FOR o IN SELECT org_id FROM public.test_keys LOOP
    PERFORM set_config('app.org_id', o::text, true);
    INSERT INTO inventory.items (sku, name, allow_negative) SELECT 'SKU-' || i, 'Item ' || i, i % 5 = 0 FROM generate_series(1, 20) i;
    INSERT INTO inventory.locations (code, name) SELECT 'L' || i, 'Location ' || i FROM generate_series(1, 4) i;
    INSERT INTO inventory.lots (item_id, code) SELECT id, 'LOT-' || sku FROM inventory.items WHERE org_id = o;
    INSERT INTO inventory.ledger (item_id, location_id, lot_id, qty)
    SELECT i.id, l.id, CASE WHEN g % 3 = 0 THEN lot.id END, (g % 7) + 1.5
      FROM generate_series(1, 500) g
      JOIN (SELECT id, row_number() OVER (ORDER BY sku) AS n FROM inventory.items WHERE org_id = o) i ON i.n = g % 20 + 1
      JOIN (SELECT id, row_number() OVER (ORDER BY code) AS n FROM inventory.locations WHERE org_id = o) l ON l.n = g % 4 + 1
      JOIN inventory.lots lot ON lot.item_id = i.id;
    PERFORM inventory.transfer(i.id, l1.id, l2.id, 1)
       FROM inventory.items i, inventory.locations l1, inventory.locations l2
      WHERE i.org_id = o AND l1.org_id = o AND l2.org_id = o
        AND l1.code = 'L1' AND l2.code = 'L2' AND i.sku IN ('SKU-1', 'SKU-5');
  END LOOP;
END $$;
-- An application's own Prisma-style ledger, tenant-scoped and tracked.
CREATE TABLE public."StockMove" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL,
                                 "qtyCanonical" numeric NOT NULL);
SELECT count(*) FROM inventory.enable_tenant_isolation('public."StockMove"', 'orgId');
SELECT inventory.track_balances('public."StockMove"', 'public."StockLevel"', ARRAY['itemId'], 'qtyCanonical');
INSERT INTO public."StockMove" ("orgId", "itemId", "qtyCanonical") SELECT org_id, 'p-' || g % 5, g FROM public.test_keys, generate_series(1, 50) g;
GRANT SELECT, INSERT ON public."StockMove" TO shop_app;
-- Its balances spread over slots (issue 14): the slot column, the key, the view and the count come back.
SELECT inventory.set_balance_slots('public."StockMove"', 4);
-- Reconcile history: one run that corrected a finding.
UPDATE inventory.balances SET qty = qty + 0.001 WHERE ctid = (SELECT min(ctid) FROM inventory.balances);
SELECT count(*) FROM inventory.reconcile();
-- The role docs/BACKUP_RECOVERY.md runs pg_dump as, and one it warns about.
CREATE ROLE backup LOGIN BYPASSRLS;
GRANT pg_read_all_data TO backup;
CREATE ROLE reader LOGIN;
GRANT pg_read_all_data TO reader;
SQL
acme_key=$(cluster_psql source -qAt -d shop -c "SELECT api_key FROM public.test_keys WHERE name = 'acme'")
cluster_psql source -q -d shop -c "DROP TABLE public.test_keys"

# What must come back: counts, sums and a digest of every balance, the registrations and the history.
census="SELECT concat_ws(' | ',
  (SELECT count(*) FROM inventory.organizations), (SELECT count(*) FROM inventory.organization_api_keys),
  (SELECT count(*) FROM inventory.items), (SELECT count(*) FROM inventory.locations), (SELECT count(*) FROM inventory.lots),
  (SELECT count(*) || ' rows, sum ' || sum(qty) || ', max id ' || max(id) FROM inventory.ledger),
  (SELECT count(*) || ' balances, sum ' || trim_scale(sum(qty)) || ', ' || md5(string_agg(concat_ws(',', org_id, item_id, location_id, lot_id, trim_scale(qty)), ';'
          ORDER BY org_id, item_id, location_id, lot_id NULLS FIRST)) FROM inventory.balances),
  (SELECT count(*) || ' moves, sum ' || sum(\"qtyCanonical\") FROM public.\"StockMove\"),
  (SELECT count(*) || ' levels, sum ' || sum(qty) FROM public.\"StockLevel\"),
  (SELECT string_agg(ledger::text || ' slots ' || slots, ',' ORDER BY ledger::text) FROM inventory.tracked_ledgers),
  (SELECT count(*) || ' totals, sum ' || sum(qty) FROM public.\"StockLevel_totals\"),
  (SELECT string_agg(relid::text, ',' ORDER BY relid::text) FROM inventory.tenant_tables),
  (SELECT count(*) || ' runs, ' || sum(findings) || ' findings' FROM inventory.reconcile_runs),
  (SELECT count(*) FROM inventory.reconcile_findings))"
before=$(cluster_psql source -qAt -d shop -c "$census")
echo "dump_restore: source: $before"

eval "$(cluster_env source)"
cd "$work"
# --- the commands of docs/BACKUP_RECOVERY.md ("Logical backup")
pg_dumpall --roles-only --file=roles.sql
pg_dump --username=backup --format=custom --dbname=shop --file=shop.dump
# ---
# (The listing goes to a file first: grep -q stops at its first match, and pg_restore, still writing,
# would then fail with SIGPIPE under pipefail.)
pg_restore --list shop.dump >"$work/shop.list"
grep -q "TABLE DATA inventory ledger" "$work/shop.list" || fail "the ledger is not in the dump"
if grep -q "TABLE DATA inventory balances" "$work/shop.list"; then fail "the balances are in the dump"; fi

# A role without BYPASSRLS: pg_dump refuses; with --enable-row-security it dumps no tenant row at all.
if pg_dump --username=reader --dbname=shop --file=/dev/null 2>"$work/reader.err"; then fail "a dump without BYPASSRLS succeeded"; fi
grep -q "row-level security" "$work/reader.err" || fail "unexpected error: $(cat "$work/reader.err")"
pg_dump --username=reader --enable-row-security --dbname=shop --file=reader.sql
missing=$(awk '/^COPY inventory.ledger /{on=1; next} /^\\\.$/{on=0} on' reader.sql | wc -l)
[ "$missing" = 0 ] || fail "a dump under row-level security had $missing ledger rows"
echo "dump_restore: pg_dump without BYPASSRLS fails; with --enable-row-security it dumps 0 ledger rows"

cluster_start target
eval "$(cluster_env target)"
# --- the commands of docs/BACKUP_RECOVERY.md ("Restoring")
psql --quiet --dbname=postgres --file=roles.sql 2>&1 | grep -v 'role "postgres" already exists' || true
createdb shop
pg_restore --dbname=shop shop.dump
# ---
after=$(cluster_psql target -qAt -d shop -c "$census")
echo "dump_restore: target: $after"
[ "$before" = "$after" ] || fail "the restored database differs"

# Row-level security is forced on every tenant table, and holds for the application role.
unforced=$(cluster_psql target -qAt -d shop -c "SELECT count(*) FROM inventory.tenant_tables t JOIN pg_class c ON c.oid = t.relid
                                                WHERE NOT (c.relrowsecurity AND c.relforcerowsecurity)")
[ "$unforced" = 0 ] || fail "$unforced tenant tables lost forced row-level security"
cluster_psql target -qAt -d shop -U shop_app >"$work/app.out" <<SQL
SELECT count(*) FROM inventory.ledger;
BEGIN;
SELECT inventory.set_org_by_api_key('$acme_key') IS NOT NULL;
SELECT count(DISTINCT org_id) FROM inventory.ledger;
SELECT inventory.on_hand(i.id, l.id) FROM inventory.items i, inventory.locations l WHERE i.sku = 'SKU-1' AND l.code = 'L1';
SELECT inventory.post(i.id, l.id, 5) IS NOT NULL FROM inventory.items i, inventory.locations l WHERE i.sku = 'SKU-1' AND l.code = 'L1';
SELECT inventory.on_hand(i.id, l.id) FROM inventory.items i, inventory.locations l WHERE i.sku = 'SKU-1' AND l.code = 'L1';
INSERT INTO public."StockMove" ("itemId", "qtyCanonical") VALUES ('p-1', 7);
COMMIT;
SQL
mapfile -t app <"$work/app.out"
[ "${app[0]}" = 0 ] || fail "without a tenant the application role sees ${app[0]} ledger rows"
[ "${app[1]}" = t ] && [ "${app[2]}" = 1 ] || fail "the restored API key does not enter its one tenant: ${app[*]}"
[ "${app[4]}" = t ] && awk "BEGIN { exit !(${app[5]} - ${app[3]} == 5) }" || fail "a new posting moved the restored balance from ${app[3]} to ${app[5]}"
new_id=$(cluster_psql target -qAt -d shop -c "SELECT max(id) FROM inventory.ledger")
old_max=$(echo "$before" | sed -nE 's/.*max id ([0-9]+).*/\1/p')
[ "$new_id" -gt "$old_max" ] || fail "ledger ids did not continue after $old_max (got $new_id)"
findings=$(cluster_psql target -qAt -d shop -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "reconcile found $findings differences after the restore"
echo "dump_restore: restored; RLS forced; the API key works; a posting moved on_hand ${app[3]} → ${app[5]}; ledger ids go on after $old_max; reconcile clean"

# Restoring one tenant from the dump (docs/BACKUP_RECOVERY.md, "Restoring one tenant"): restore into a
# scratch database, export the tenant there, remove it from the live database, import it back.
acme=$(cluster_psql target -qAt -d shop -c "SELECT id FROM inventory.organizations WHERE subdomain = 'acme'")
tenant_census="SELECT md5(string_agg(concat_ws(',', item_id, location_id, lot_id, trim_scale(qty)), ';'
                 ORDER BY item_id, location_id, lot_id NULLS FIRST)) FROM inventory.balances WHERE org_id = '$acme'"
expected=$(cluster_psql source -qAt -d shop -c "$tenant_census")
cluster_psql target -q -d shop -c "SET app.org_id = '$acme'" \
  -c "SELECT inventory.post(id, (SELECT id FROM inventory.locations WHERE org_id = '$acme' LIMIT 1), 1000, reason => 'a mistake')
        FROM inventory.items WHERE org_id = '$acme'" >/dev/null
org=$acme
# --- the commands of docs/BACKUP_RECOVERY.md ("Restoring one tenant")
createdb scratch
pg_restore --dbname=scratch shop.dump
psql --no-psqlrc --tuples-only --no-align --dbname=scratch \
     --command="SELECT inventory.export_org('$org')" --output=tenant.json
dropdb scratch
# ---
cluster_psql target -q -d shop -v org="$org" >/dev/null <<'SQL'
-- docs/BACKUP_RECOVERY.md, "Removing a tenant"
BEGIN;
SET LOCAL session_replication_role = replica;
CREATE TEMP TABLE removed_org ON COMMIT DROP AS SELECT :'org'::uuid AS id;
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT relid, org_column FROM inventory.tenant_tables LOOP
        EXECUTE format('DELETE FROM %s WHERE %I = (SELECT id FROM removed_org)', t.relid, t.org_column);
    END LOOP;
END $$;
DELETE FROM inventory.organizations WHERE id = (SELECT id FROM removed_org);
COMMIT;
SQL
# --- the commands of docs/BACKUP_RECOVERY.md ("Restoring one tenant"), into the live database
psql --no-psqlrc --set=ON_ERROR_STOP=1 --dbname=shop <<'SQL'
\set doc `cat tenant.json`
SELECT inventory.import_org(:'doc');
SQL
# ---
got=$(cluster_psql target -qAt -d shop -c "$tenant_census")
[ "$got" = "$expected" ] || fail "the tenant restored from the dump differs from the source"
findings=$(cluster_psql target -qAt -d shop -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "reconcile found $findings differences after restoring one tenant"
echo "dump_restore: one tenant restored from the dump through a scratch database; its balances are the source's"
