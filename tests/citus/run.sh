#!/usr/bin/env bash
# The citus layer (issue 17): a coordinator and two workers of Citus (built by scripts/citus_build.sh
# from CITUS_SOURCE, default ../shared/citus) on a private copy of this machine's PostgreSQL with the
# extension installed, then tests/citus/*.sql against the coordinator, one TAP line per check. Without
# a Citus source the layer says so in one line and is skipped (exit 0, no test counted).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/../harness/cluster.sh"
source "$here/cluster.sh"
status=0; stage=$("$repo/scripts/citus_build.sh") || status=$?
if [ "$status" = 3 ]; then echo "citus: skipped (no Citus source; see docs/TESTING.md)"; exit 0; fi
[ "$status" = 0 ] || exit "$status"
citus_cluster_start "$stage"
# Each file prints TAP lines (ok N - …, not ok N - …); a failed statement fails the file.
failed=0
for test in "$here"/*.sql; do
  out=$(cluster_psql coordinator -qAt -d postgres -v worker1="${CLUSTER_PORT[worker1]}" -v worker2="${CLUSTER_PORT[worker2]}" \
        -f "$test" 2>&1) || { echo "$out"; echo "not ok - $(basename "$test") stopped on an error"; failed=1; continue; }
  echo "$out"
  ! grep -q '^not ok' <<<"$out" || failed=1
done

# TAP from bash: tap N PASSED(0|1) WHAT.
tap() { if [ "$2" = 1 ]; then echo "ok $1 - citus: $3"; else echo "not ok $1 - citus: $3"; failed=1; fi; }
q() { cluster_psql coordinator -qAt -d postgres "$@"; }
a=00000000-0000-4000-8000-0000000000a1
widget=00000000-0000-4000-8000-0000000000a2
gadget=00000000-0000-4000-8000-0000000000a3
aisle=00000000-0000-4000-8000-0000000000a4
bay=00000000-0000-4000-8000-0000000000a5
drifted="SELECT count(*) FROM (SELECT org_id, item_id, location_id, coalesce(lot_id, '00000000-0000-0000-0000-000000000000') AS lot, sum(qty) AS qty
                              FROM inventory.ledger GROUP BY 1, 2, 3, 4) l
          FULL JOIN (SELECT org_id, item_id, location_id, coalesce(lot_id, '00000000-0000-0000-0000-000000000000') AS lot, sum(qty) AS qty
                       FROM inventory.balances GROUP BY 1, 2, 3, 4) b USING (org_id, item_id, location_id, lot)
         WHERE l.qty IS DISTINCT FROM b.qty"

# 4 clients of postings through the coordinator as the application role (20_builtin.sql made the role,
# the tenant and its stock): the widget only receives, the gadget (negative stock allowed) goes both ways.
if [ "$failed" = 0 ]; then
  cat >"$WORK/postings.sql" <<SQL
\\set n random(1, 5)
\\set item random(1, 2)
BEGIN;
SELECT inventory.set_org('$a');
SELECT inventory.post(CASE :item WHEN 1 THEN '$widget'::uuid ELSE '$gadget'::uuid END,
                      CASE :item WHEN 1 THEN '$aisle'::uuid ELSE '$bay'::uuid END,
                      CASE :item WHEN 1 THEN :n ELSE 3 - 2 * :n END);
END;
SQL
  chmod 644 "$WORK/postings.sql"
  before=$(q -c "SELECT count(*) FROM inventory.ledger")
  bench=$(PGHOST=$(cluster_dir coordinator) PGPORT=${CLUSTER_PORT[coordinator]} \
          "$PG_BIN/pgbench" -n -U citus_shop -d postgres -c 4 -j 2 -t 250 -f "$WORK/postings.sql" 2>&1) || true
  after=$(q -c "SELECT count(*) FROM inventory.ledger")
  ok=0; grep -q "number of failed transactions: 0 " <<<"$bench" && [ $((after - before)) = 1000 ] && ok=1
  [ "$ok" = 1 ] || echo "$bench" | tail -15
  tap 201 "$ok" "pgbench, 4 clients x 250 postings through the coordinator as the application role: 1000 entries, no failure"
  ok=0; [ "$(q -c "$drifted")" = 0 ] && ok=1
  tap 202 "$ok" "after the pgbench run every balance equals its ledger sum"
fi

# A tenant moved in: export_org on a single server, import_org into the cluster.
cluster_start single
cluster_psql single -qAt -d postgres >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name, subdomain) VALUES ('00000000-0000-4000-8000-0000000000c1', 'Moved', 'moved');
BEGIN;
SET LOCAL app.org_id = '00000000-0000-4000-8000-0000000000c1';
INSERT INTO inventory.items (id, sku, name) VALUES ('00000000-0000-4000-8000-0000000000c2', 'M-1', 'Moved item');
INSERT INTO inventory.locations (id, code, name) VALUES ('00000000-0000-4000-8000-0000000000c3', 'M', 'Moved shelf');
INSERT INTO inventory.lots (id, item_id, code) VALUES ('00000000-0000-4000-8000-0000000000c4', '00000000-0000-4000-8000-0000000000c2', 'L1');
INSERT INTO inventory.ledger (item_id, location_id, lot_id, qty)
SELECT '00000000-0000-4000-8000-0000000000c2', '00000000-0000-4000-8000-0000000000c3',
       CASE WHEN g % 2 = 0 THEN '00000000-0000-4000-8000-0000000000c4'::uuid END, g
  FROM generate_series(1, 200) g;
COMMIT;
SQL
cluster_psql single -qAt -d postgres -c "COPY (SELECT inventory.export_org('00000000-0000-4000-8000-0000000000c1')) TO STDOUT" >"$WORK/moved.json"
# COPY's text format escapes backslashes; the document has none (checked), so the line is the JSON.
ok=0
if ! grep -q '\\' "$WORK/moved.json" && q -v doc="$(cat "$WORK/moved.json")" <<<"SELECT inventory.import_org(:'doc'::jsonb)" >/dev/null; then
  [ "$(q -c "SELECT count(*) || ':' || sum(qty) FROM inventory.ledger WHERE org_id = '00000000-0000-4000-8000-0000000000c1'")" = "200:20100" ] \
    && [ "$(q -c "$drifted")" = 0 ] && ok=1
fi
tap 203 "$ok" "export_org on a single server, import_org into the cluster: 200 entries, balances rebuilt exact"
ok=0
# on_hand alone in its statement: in one with a distributed table Citus would push the call to a shard,
# where its own query would be a distributed query from a shard (docs/SCALE_OUT.md).
[ "$(q <<'SQL' | tr '\n' ' '
BEGIN;
SET LOCAL ROLE citus_shop;
SET LOCAL app.org_id = '00000000-0000-4000-8000-0000000000c1';
SELECT inventory.on_hand('00000000-0000-4000-8000-0000000000c2');
SELECT count(*) FROM inventory.balances;
COMMIT;
SQL
)" = "20100 2 " ] && ok=1
tap 204 "$ok" "the moved tenant reads its stock through the coordinator as the application role"

# docs/SCALE_OUT.md, every SQL block in order, as the page says (tests/e2e/docs/sql_blocks.py).
python3 "$repo/tests/e2e/docs/sql_blocks.py" --tap "$repo/docs/SCALE_OUT.md" >"$WORK/scale_out.sql"
chmod 644 "$WORK/scale_out.sql"
if ! cluster_psql coordinator -q -d postgres -f "$WORK/scale_out.sql" >"$WORK/scale_out.out" 2>&1; then
  failed=1
  block=$(grep -oE '^-- block at .*:[0-9]+$' "$WORK/scale_out.out" | tail -1 | grep -oE '[0-9]+$' || echo "?")
  tail -15 "$WORK/scale_out.out"
  echo "not ok - docs/SCALE_OUT.md: the block at line $block did not do what the page says"
fi
grep -E '^(not )?ok [0-9]+ - ' "$WORK/scale_out.out" || true
exit $failed
