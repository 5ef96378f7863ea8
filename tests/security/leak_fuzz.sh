#!/usr/bin/env bash
# Differential leak fuzzing: random SQL that no one wrote by hand, run as tenant A's application role
# against a database where tenant B's rows carry marker values in every column type (text, uuid,
# numeric, date, timestamptz, jsonb; B's organization id is itself a marker). No result row, notice,
# error message (with its DETAIL, HINT and CONTEXT) or notification that A's session receives may ever
# contain one of B's markers.
#
#   1. Fixture, as a superuser: tenants A and B in the built-in schema (items, locations, lots, ledger,
#      balances through the trigger, reconcile runs and findings, drift included), Prisma-style camelCase
#      tables made tenant-scoped with inventory.enable_tenant_isolation and a tracked ledger
#      (inventory.track_balances), extended statistics, security_invoker views over tenant tables and
#      over the extension's set-returning functions (reconcile, isolation_report) and export_org.
#      Checks that no marker is in any DDL or role setting (pg_dump --schema-only, pg_dumpall
#      --globals-only: a marker may only come out of B's rows), and a control: as the application
#      role, tenant B's session sees every kind of marker in every relation, tenant A's sees none.
#   2. sqlsmith (fixed seeds) --dry-run, connected as the application role so that it builds queries
#      from what that role can see: LEAK_FUZZ_QUERIES (default 10,000), half with the system catalogs
#      and half without them (--exclude-catalog), so that most queries reach the tenant tables.
#      Afterwards the fixture's camelCase identifiers are quoted and TABLESAMPLE clauses dropped.
#      sqlsmith writes no literal but small integers, booleans and typed NULLs; a query whose text
#      holds a marker anyway is excluded from the verdict and counted.
#   3. psql as the application role, tenant A set for the session (SET app.org_id), statement_timeout
#      1s, each query in its own transaction that is rolled back (as sqlsmith does: the fixture stays
#      as it was, every query can be replayed alone), errors reported verbosely, LISTEN on
#      inventory_reconcile. Beside it, tenant B's application keeps working (another role): posts,
#      Prisma ledger rows and flagged reconcile runs, committed every half second.
#   4. Every line of A's output is searched for every marker. Any hit fails the test, printing the
#      query and the line. Also fails when fewer queries ran than were generated (timeout, crash).
#
# LEAK_FUZZ_QUERIES (default 10000), LEAK_FUZZ_SEED (default 20261201), LEAK_FUZZ_TIMEOUT (seconds for
# running the queries, default 900), LEAK_FUZZ_KEEP (a directory to copy the generated queries and every
# output into), LEAK_FUZZ_LISTEN=0 (A's session does not LISTEN), LEAK_FUZZ_EXTRA_SQL (a file run as
# the superuser after the fixture: to check that the test catches a leak you plant, e.g. a view without
# security_invoker granted to tenant_app).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
queries=${LEAK_FUZZ_QUERIES:-10000}
seed=${LEAK_FUZZ_SEED:-20261201}
run_timeout=${LEAK_FUZZ_TIMEOUT:-900}
listen=${LEAK_FUZZ_LISTEN:-1}
started=$SECONDS
harness_workdir
if [ -n "${LEAK_FUZZ_KEEP:-}" ]; then  # keep the work files (queries, outputs) for a look afterwards
  trap 'mkdir -p "$LEAK_FUZZ_KEEP" && cp -r "$WORK"/. "$LEAK_FUZZ_KEEP"/; cluster_stop_all' EXIT
fi
cluster_start leak
dir=$(cluster_dir leak)
port=${CLUSTER_PORT[leak]}
app_psql() {  # role, psql args...
  local role=$1; shift
  PGHOST=$dir PGPORT=$port PGUSER=$role "$PG_BIN/psql" -X -d postgres "$@"
}

A=a0a0a0a0-0000-4a0a-8a0a-00000000000a
B=b1ea4b1e-0000-4b1e-8b1e-00000000000b
# What marks tenant B, as extended regular expressions (grep -i): the text marker (also as the hex of a
# bytea), B's uuids (with or without dashes), numerics, the date and the timestamp.
cat >"$WORK/markers.re" <<'RE'
zqxb[_-]mark
(5a515842|7a717862)(5f|2d)(4d41524b|6d61726b)
b1ea4b1e-?[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-?4b1e
7777777\.1234
1901-02-03
1902-03-04
RE

# One tenant's rows: uuids "<u>-KIND-…-N", texts "<t>WHAT_N", numerics <n> + N/1e6, a date, a timestamp.
tenant_rows() {  # org, uuid prefix (8 hex), uuid middle (4b1e / 4a0a …), text prefix, numeric base, date, timestamptz
  local org=$1 u=$2 m=$3 t=$4 n=$5 d=$6 ts=$7
  local uid="'$u-' || KIND || '-$m-8${m:1}-' || lpad(N::text, 12, '0')"
  id() { local s=${uid//KIND/\'$1\'}; echo "(${s//N/$2})::uuid"; }
  cat <<SQL
BEGIN;
SELECT set_config('app.org_id', '$org', true);
INSERT INTO inventory.items (id, sku, name, uom, allow_negative, created_at)
SELECT $(id 0001 i), '${t}sku_' || i, '${t}item_' || i, '${t}uom', i = 5, '$ts' FROM generate_series(1, 5) i;
INSERT INTO inventory.locations (id, code, name, created_at)
SELECT $(id 0002 i), '${t}loc_' || i, '${t}location_' || i, '$ts' FROM generate_series(1, 3) i;
INSERT INTO inventory.lots (id, item_id, code, expires_on, created_at)
SELECT $(id 0003 i), $(id 0001 i), '${t}lot_' || i, '$d', '$ts' FROM generate_series(1, 5) i;
INSERT INTO inventory.ledger (item_id, location_id, lot_id, qty, reason, reference, occurred_at, created_at, created_by)
SELECT $(id 0001 i), $(id 0002 l), CASE WHEN l = 1 THEN $(id 0003 i) END, $n + (i * 10 + l) / 1000000.0,
       '${t}reason', '${t}ref_' || i || '_' || l, '$ts', '$ts', '${t}creator'
  FROM generate_series(1, 5) i, generate_series(1, 3) l;
INSERT INTO public."Item" (id, sku, name, "externalId", "unitCost", "launchedOn", attributes, "createdAt")
SELECT '${t}itm_' || i, '${t}SKU_' || i, '${t}Item_' || i, $(id 0004 i), $n + i / 1000000.0, '$d',
       jsonb_build_object('label', '${t}JSON_' || i, 'ref', $(id 0004 i), 'cost', $n + i / 1000000.0, 'since', '$d'::date),
       '$ts' FROM generate_series(1, 5) i;
INSERT INTO public."Location" (id, code, name, "siteId", "openedOn", "createdAt")
SELECT '${t}whs_' || i, '${t}WH_' || i, '${t}Warehouse_' || i, $(id 0005 i), '$d', '$ts' FROM generate_series(1, 3) i;
INSERT INTO public."InventoryLedger" (id, "itemId", "locationId", "lotId", "qtyCanonical", reason, "correlationId", "postedOn", payload, "createdAt")
SELECT '${t}led_' || i || '_' || l, '${t}itm_' || i, '${t}whs_' || l, CASE WHEN l = 1 THEN '${t}LOT_' || i END,
       $n + (i * 10 + l) / 1000000.0, '${t}receipt', $(id 0006 "(i * 10 + l)"), '$d',
       jsonb_build_object('note', '${t}JSON_led_' || i, 'at', '$ts'::timestamptz), '$ts'
  FROM generate_series(1, 5) i, generate_series(1, 3) l;
COMMIT;
SQL
}

# The fixture. Markers come only from tenant_rows B: nothing in DDL, defaults, policies, comments or settings.
{
  cat <<SQL
CREATE EXTENSION inventory_ext;
CREATE ROLE tenant_app LOGIN;    -- the application, acting for tenant A: runs the random SQL
CREATE ROLE tenant_app_b LOGIN;  -- tenant B's application, working beside it
CREATE ROLE prisma NOLOGIN;      -- owns the Prisma-style tables, as in tests/fixtures/prisma_legacy.sql
GRANT CREATE, USAGE ON SCHEMA public TO prisma;
SET ROLE prisma;
CREATE TABLE "Item" (
    id           text PRIMARY KEY,
    sku          text NOT NULL,
    name         text NOT NULL,
    "externalId" uuid,
    "unitCost"   numeric(65, 30),
    "launchedOn" date,
    attributes   jsonb,
    "createdAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX "Item_sku_key" ON "Item" (sku);
CREATE TABLE "Location" (
    id          text PRIMARY KEY,
    code        text NOT NULL,
    name        text NOT NULL,
    "siteId"    uuid,
    "openedOn"  date,
    "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX "Location_code_key" ON "Location" (code);
CREATE TABLE "InventoryLedger" (
    id              text PRIMARY KEY,
    "itemId"        text NOT NULL REFERENCES "Item" (id) ON UPDATE CASCADE ON DELETE RESTRICT,
    "locationId"    text NOT NULL REFERENCES "Location" (id) ON UPDATE CASCADE ON DELETE RESTRICT,
    "lotId"         text,
    "qtyCanonical"  numeric(65, 30) NOT NULL,
    reason          text,
    "correlationId" uuid,
    "postedOn"      date,
    payload         jsonb,
    "createdAt"     timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX "InventoryLedger_itemId_locationId_idx" ON "InventoryLedger" ("itemId", "locationId");
RESET ROLE;
SELECT inventory.enable_tenant_isolation('public."Item"', 'orgId');
SELECT inventory.enable_tenant_isolation('public."Location"', 'orgId');
SELECT inventory.enable_tenant_isolation('public."InventoryLedger"', 'orgId');
SELECT inventory.track_balances('public."InventoryLedger"', 'public."InventoryBalance"',
                                ARRAY['itemId', 'locationId', 'lotId'], 'qtyCanonical');
CREATE STATISTICS "Item_sku_name_stats" (ndistinct, dependencies, mcv) ON sku, name FROM "Item";

-- Views for the application: security_invoker, so row-level security applies to whoever reads them;
-- others over the extension's functions: sqlsmith calls no set-returning function, and seldom picks one
-- function with arguments out of the thousands in the catalog.
CREATE VIEW public.stock_overview WITH (security_invoker = true) AS
SELECT o.name AS organization, o.subdomain, i.sku, i.name AS item, l.code AS location, t.code AS lot,
       t.expires_on, b.qty, b.updated_at, b.org_id, b.item_id, b.location_id, b.lot_id
  FROM inventory.balances b
  JOIN inventory.organizations o ON o.id = b.org_id
  JOIN inventory.items i ON i.org_id = b.org_id AND i.id = b.item_id
  JOIN inventory.locations l ON l.org_id = b.org_id AND l.id = b.location_id
  LEFT JOIN inventory.lots t ON t.org_id = b.org_id AND t.id = b.lot_id;
CREATE VIEW public."ItemStock" WITH (security_invoker = true) AS
SELECT i.id, i.sku, i."externalId", i."unitCost", i."launchedOn", i.attributes, b."locationId", b."lotId", b.qty, i."orgId"
  FROM public."Item" i JOIN public."InventoryBalance" b ON b."orgId" = i."orgId" AND b."itemId" = i.id;
CREATE VIEW public.reconcile_check WITH (security_invoker = true) AS
SELECT * FROM inventory.reconcile(NULL, NULL, 0, false);
CREATE VIEW public.isolation_findings WITH (security_invoker = true) AS
SELECT * FROM inventory.isolation_report(NULL);
CREATE VIEW public.tenant_export WITH (security_invoker = true) AS
SELECT o.id, inventory.export_org(o.id) AS doc FROM inventory.organizations o;
CREATE VIEW public.item_on_hand WITH (security_invoker = true) AS
SELECT i.id AS item_id, l.id AS location_id, inventory.on_hand(i.id) AS total, inventory.on_hand(i.id, l.id) AS here
  FROM inventory.items i CROSS JOIN inventory.locations l;

-- The tables' owner too, as docs/MIGRATION_GUIDE.md does (the balance upkeep runs as the owner).
SELECT inventory.grant_app_access(r) FROM unnest(ARRAY['tenant_app', 'tenant_app_b', 'prisma']::regrole[]) r;
-- export_org is not granted by grant_app_access; a role it applies to exports its own tenant only.
GRANT EXECUTE ON FUNCTION inventory.export_org(uuid), inventory.isolation_report(name[]) TO tenant_app, tenant_app_b;
GRANT SELECT, INSERT, UPDATE, DELETE ON public."Item", public."Location", public."InventoryLedger" TO tenant_app, tenant_app_b;
GRANT SELECT ON public."InventoryBalance", public.stock_overview, public."ItemStock", public.reconcile_check,
                public.isolation_findings, public.tenant_export, public.item_on_hand TO tenant_app, tenant_app_b;

INSERT INTO inventory.organizations (id, name, subdomain, created_at, updated_at) VALUES
    ('$A', 'Tenant A', 'tenant-a', '2024-05-06 07:08:09+00', '2024-05-06 07:08:09+00'),
    ('$B', 'ZQXB_MARK_organization', 'zqxb-mark', '1902-03-04 05:06:07.891234+00', '1902-03-04 05:06:07.891234+00');
SELECT inventory.rotate_api_key(id) IS NOT NULL FROM inventory.organizations;
SQL
  tenant_rows "$A" a0a0a0a0 4a0a A_ 10 2024-05-06 '2024-05-06 07:08:09+00'
  tenant_rows "$B" b1ea4b1e 4b1e ZQXB_MARK_ 7777777.1234 1901-02-03 '1902-03-04 05:06:07.891234+00'
  cat <<SQL
-- Drift behind the trigger's back in one balance of each tenant, and a flagged run for each: their runs
-- and findings (keys, expected quantities) are tenant rows too. It stays: reconcile_check and B's
-- workload flag it again.
SET session_replication_role = replica;
UPDATE inventory.balances SET qty = qty + 5 WHERE item_id IN ('a0a0a0a0-0001-4a0a-8a0a-000000000001', 'b1ea4b1e-0001-4b1e-8b1e-000000000001') AND lot_id IS NOT NULL;
UPDATE public."InventoryBalance" SET qty = qty + 5 WHERE "itemId" IN ('A_itm_2', 'ZQXB_MARK_itm_2') AND "lotId" IS NOT NULL;
RESET session_replication_role;
SELECT count(*) FROM inventory.reconcile(NULL, '$A', 0, false);
SELECT count(*) FROM inventory.reconcile(NULL, '$B', 0, false);
SELECT count(*) FROM inventory.reconcile(NULL, NULL, 0, false);
ANALYZE;
SQL
} >"$WORK/fixture.sql"
cluster_psql leak -q -d postgres -f "$WORK/fixture.sql" >"$WORK/fixture.out" 2>&1 \
  || { cat "$WORK/fixture.out" >&2; fail "the fixture failed"; }
if [ -n "${LEAK_FUZZ_EXTRA_SQL:-}" ]; then
  cluster_psql leak -q -d postgres -f "$LEAK_FUZZ_EXTRA_SQL" >/dev/null
  echo "leak_fuzz: ran $LEAK_FUZZ_EXTRA_SQL after the fixture"
fi

# No marker outside B's rows: not in the schema (defaults, policies, views, functions, statistics
# objects, comments) nor in roles and their settings.
eval "$(cluster_env leak)"
"$PG_BIN/pg_dump" -d postgres --schema-only >"$WORK/schema.sql"
"$PG_BIN/pg_dumpall" --globals-only >>"$WORK/schema.sql"
if grep -n -i -E -f "$WORK/markers.re" "$WORK/schema.sql"; then
  fail "a marker is in the schema or the roles (above): it must come only from tenant B's rows"
fi

# The control: as the application role, B sees its markers of every type in every relation, A none.
relations=(inventory.organizations inventory.items inventory.locations inventory.lots inventory.ledger
  inventory.balances inventory.reconcile_runs inventory.reconcile_findings 'public."Item"'
  'public."Location"' 'public."InventoryLedger"' 'public."InventoryBalance"' public.stock_overview
  'public."ItemStock"' public.reconcile_check public.tenant_export public.item_on_hand)
control() {  # org, output file
  {
    echo "SET TimeZone = 'UTC'; SET app.org_id = '$1'; BEGIN;"
    local r
    for r in "${relations[@]}"; do
      echo "SELECT '$r' AS relation, count(*) > 0 AS n FROM $r \\gset"
      echo "\\if :n \\else \\echo EMPTY :relation \\endif"
      echo "SELECT * FROM $r;"
    done
    echo "ROLLBACK;"
  } | app_psql tenant_app -v ON_ERROR_STOP=1 -q -A >"$2" 2>&1 || { cat "$2" >&2; fail "the control query failed"; }
  ! grep '^EMPTY' "$2" || fail "tenant $1 sees no row in the relations above: the fixture is incomplete"
}
control "$B" "$WORK/control_b.out"
for m in ZQXB_MARK_ zqxb-mark ZQXB_MARK_JSON_ "$B" b1ea4b1e-0001- b1ea4b1e-0006- 7777777.123411 \
  7777777.123401000000000000000000000000 1901-02-03 '1902-03-04 05:06:07.891234+00'; do
  grep -q -F -- "$m" "$WORK/control_b.out" || fail "tenant B's own session does not see the marker $m"
done
control "$A" "$WORK/control_a.out"
if grep -n -i -E -f "$WORK/markers.re" "$WORK/control_a.out"; then
  fail "tenant A sees tenant B's markers in a plain SELECT (above)"
fi

# The random queries, generated from what the application role sees.
half=$((queries / 2))
gen_start=$SECONDS
gen() {  # seed, count, sqlsmith options...
  local s=$1 n=$2; shift 2
  timeout 600 sqlsmith --target="host=$dir port=$port dbname=postgres user=tenant_app" \
    --seed="$s" --max-queries="$n" --dry-run "$@" 2>>"$WORK/sqlsmith.err" \
    || fail "sqlsmith failed: $(tail -3 "$WORK/sqlsmith.err")"
}
# sqlsmith does not quote identifiers: quote the camelCase ones of the fixture (no catalog name has one).
# It also samples almost every table it reads (TABLESAMPLE SYSTEM or BERNOULLI, a few percent), which on
# tables of a page or two returns nothing most of the time: read them whole.
camel='Item|Location|InventoryLedger|InventoryBalance|ItemStock|orgId|externalId|unitCost|launchedOn|createdAt|siteId|openedOn|itemId|locationId|lotId|qtyCanonical|correlationId|postedOn'
gen "$seed" "$half" >"$WORK/generated_1.sql" &
gen_1=$!
gen "$((seed + 1))" "$((queries - half))" --exclude-catalog >"$WORK/generated_2.sql" &
wait $gen_1 || exit 1
wait $! || exit 1
cat "$WORK/generated_1.sql" "$WORK/generated_2.sql" | sed -E -e "s/\\b($camel)\\b/\"\\1\"/g" \
  -e 's/ tablesample (system|bernoulli) \([0-9.]+\)//g' >"$WORK/generated.sql"
gen_seconds=$((SECONDS - gen_start))

# One query a block: a line ending in ';' ends a query (sqlsmith writes no string literal). A query whose
# text holds a marker is set aside.
awk -v re_file="$WORK/markers.re" -v excluded="$WORK/excluded.sql" -v queries="$WORK/queries.sql" '
  BEGIN { while ((getline l < re_file) > 0) res[++nre] = l }
  { buf = buf $0 "\n" }
  /;[ \t]*$/ {
    n++; low = tolower(buf); hit = 0
    for (i = 1; i <= nre; i++) if (low ~ res[i]) hit = 1
    if (hit) { x++; printf "-- query %d\n%s", n, buf > excluded }
    else printf "-- @@Q %d\n%s", n, buf > queries
    buf = ""
  }
  END { print n + 0, x + 0 }' "$WORK/generated.sql" >"$WORK/split.txt"
read -r generated excluded <"$WORK/split.txt"
[ "$generated" -eq "$queries" ] || fail "sqlsmith generated $generated queries, not $queries"
to_run=$((generated - excluded))

# Tenant B's application, beside the random queries: postings, Prisma ledger rows, and reconcile runs
# that flag B's drift (each sends NOTIFY inventory_reconcile), committed every half second.
b_workload() {
  local i=0
  while [ ! -e "$WORK/stop" ]; do
    i=$((i + 1))
    cat <<SQL
BEGIN;
SET LOCAL app.org_id = '$B';
SELECT inventory.post('b1ea4b1e-0001-4b1e-8b1e-000000000002', 'b1ea4b1e-0002-4b1e-8b1e-000000000002', 7777777.123499, NULL, 'ZQXB_MARK_live', 'ZQXB_MARK_live_$i');
INSERT INTO public."InventoryLedger" (id, "itemId", "locationId", "qtyCanonical", reason, "correlationId", "postedOn", payload)
VALUES ('ZQXB_MARK_live_$i', 'ZQXB_MARK_itm_3', 'ZQXB_MARK_whs_2', 7777777.123498, 'ZQXB_MARK_live', 'b1ea4b1e-0007-4b1e-8b1e-$(printf %012d $i)', '1901-02-03', '{"live": "ZQXB_MARK_JSON_live"}');
SELECT count(*) AS flagged FROM inventory.reconcile(NULL, NULL, 0, false);
COMMIT;
\echo b-iteration
SQL
    sleep 0.5
  done
}
b_workload | app_psql tenant_app_b -q -v ON_ERROR_STOP=0 -c "SET statement_timeout = '5s'" -f - \
  >"$WORK/b.out" 2>&1 &
b_pid=$!

# Tenant A's session runs every query, each in a transaction rolled back.
{
  cat <<SQL
\\set VERBOSITY verbose
\\set SHOW_CONTEXT always
\\pset format unaligned
\\pset pager off
SET TimeZone = 'UTC';
SET statement_timeout = '1s';
SET app.org_id = '$A';
SQL
  [ "$listen" = 0 ] || echo "LISTEN inventory_reconcile;"
  awk '/^-- @@Q /{ print "\\echo @@Q " $3; print "BEGIN;"; next } { print } /;[ \t]*$/ { print "ROLLBACK;" }' "$WORK/queries.sql"
} >"$WORK/run.sql"
run_start=$SECONDS
set +e
timeout "$run_timeout" "$PG_BIN/psql" -X -d postgres -U tenant_app -h "$dir" -p "$port" -v ON_ERROR_STOP=0 \
  -f "$WORK/run.sql" >"$WORK/a.out" 2>&1
rc=$?
set -e
run_seconds=$((SECONDS - run_start))
touch "$WORK/stop"
wait "$b_pid" || { tail -20 "$WORK/b.out" >&2; fail "tenant B's workload failed"; }
b_iterations=$(grep -c '^b-iteration' "$WORK/b.out" || true)
b_errors=$(grep -c 'ERROR' "$WORK/b.out" || true)
notifications=$(grep -c '^Asynchronous notification' "$WORK/a.out" || true)

# Per query: ran, failed (an ERROR), timed out; which ones name a tenant table or a view over one.
awk -v queries="$WORK/queries.sql" '
  BEGIN {
    while ((getline l < queries) > 0) {
      if (l ~ /^-- @@Q /) { split(l, f, " "); q = f[3]; continue }
      if (l ~ /inventory\.(items|locations|lots|ledger|balances|organizations|reconcile_runs|reconcile_findings)([ .(]|$)/ ||
          l ~ /"(Item|Location|InventoryLedger|InventoryBalance|ItemStock)"|stock_overview|reconcile_check|tenant_export|item_on_hand/) tenant[q] = 1
    }
  }
  /^@@Q / { q = $2; ran++; next }
  /a0a0a0a0-|A_[a-zA-Z]+_[0-9]/ { if (!(q in own)) { own[q] = 1; owns++ } }
  /^(psql:[^ ]* )?ERROR: / { if (!(q in err)) { err[q] = 1; errors++ } }
  /canceling statement due to statement timeout/ { if (!(q in to)) { to[q] = 1; timeouts++ } }
  END {
    for (t in tenant) { nt++; if (!(t in err)) ok++ }
    print ran + 0, errors + 0, timeouts + 0, nt + 0, ok + 0, owns + 0
  }' "$WORK/a.out" >"$WORK/counts.txt"
read -r executed errors timeouts tenant_queries tenant_ok own_rows <"$WORK/counts.txt"

# The verdict: any marker in anything A's session received. Notifications (another session's NOTIFY,
# delivered to A's LISTEN) are told apart from what a query returned or raised.
leaks=0
grep -n -i -E -f "$WORK/markers.re" "$WORK/a.out" >"$WORK/hits.txt" || true
if [ -s "$WORK/hits.txt" ]; then
  leaks=$(wc -l <"$WORK/hits.txt")
  notified=$(grep -c '^[0-9]*:Asynchronous notification' "$WORK/hits.txt" || true)
  echo "leak_fuzz: tenant B's markers in $leaks lines of tenant A's output, $notified of them notifications" >&2
  grep '^[0-9]*:Asynchronous notification' "$WORK/hits.txt" | head -3 | cut -d: -f2- | cut -c1-600 >&2 || true
  # Each query with a hit (the first 5), its text and its first 3 lines with a marker.
  grep -v '^[0-9]*:Asynchronous notification' "$WORK/hits.txt" | cut -d: -f1 >"$WORK/hit_lines.txt" || true
  awk 'NR == FNR { hit[$1] = 1; next } /^@@Q /{ q = $2 } FNR in hit { print q + 0, FNR }' \
    "$WORK/hit_lines.txt" "$WORK/a.out" >"$WORK/hit_queries.txt"
  for q in $(cut -d' ' -f1 "$WORK/hit_queries.txt" | uniq | head -5); do
    echo "--- query $q, run as tenant A:" >&2
    awk -v q="$q" '/^-- @@Q /{ on = ($3 == q); next } on' "$WORK/queries.sql" | sed 's/^/    /' >&2
    echo "--- its output (lines with a marker):" >&2
    awk -v q="$q" '$1 == q { print $2 }' "$WORK/hit_queries.txt" | head -3 | while read -r line; do
      sed -n "${line}p" "$WORK/a.out" | cut -c1-600 | sed 's/^/    /' >&2
    done
  done
fi

summary="leak_fuzz: $generated queries generated ($excluded excluded: a marker in the query text), $executed executed ($errors errors, $timeouts timeouts; $tenant_queries name a tenant table or view, $tenant_ok of them ran without error, $own_rows returned tenant A's own values); tenant B ran $b_iterations transactions beside them ($b_errors errors), A received $notifications notifications; $leaks lines with B's markers; ${run_seconds} s to run, $((SECONDS - started)) s in all (generation ${gen_seconds} s)"
echo "$summary"
[ "$leaks" -eq 0 ] || fail "tenant B's data reached tenant A (above; LEAK_FUZZ_KEEP=DIR keeps the queries and outputs)"
[ "$rc" -ne 124 ] || fail "the queries did not finish within ${run_timeout} s (LEAK_FUZZ_TIMEOUT)"
[ "$executed" -eq "$to_run" ] || { tail -5 "$WORK/a.out" >&2; fail "psql ran $executed of $to_run queries (exit $rc)"; }
[ "$b_iterations" -gt "$b_errors" ] || { tail -5 "$WORK/b.out" >&2; fail "tenant B's workload did not work"; }
