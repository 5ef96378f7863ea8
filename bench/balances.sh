#!/usr/bin/env bash
# Benchmark (not a test): the cost of keeping balances, three designs side by side on one cluster.
#   bare       a ledger with the same columns and foreign keys, no balance maintenance
#   per-row    the original app's design: a PL/pgSQL row trigger that upserts one balance per row
#   statement  inventory_ext: the Rust statement-level trigger on inventory.ledger (one grouped upsert)
# 1,000 keys (100 items x 10 locations). Prints times, tps and the ratios the issue sets targets for.
# Usage: bench/balances.sh [bulk rows, default 1000000] [seconds per pgbench run, default 15]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${1:-1000000}
seconds=${2:-15}
source "$here/common.sh"
cluster_start bench "shared_buffers = '1GB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
eval "$(cluster_env bench)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cluster_stop_all' EXIT
psql_q() { cluster_psql bench -d postgres -qAt "$@"; }

psql_q >/dev/null -f "$here/fixture.sql"
psql_q >/dev/null <<'SQL'
SELECT bench.ledger_like('bare');
SELECT bench.ledger_like('perrow');
CREATE TABLE bench.perrow_balances (LIKE inventory.balances INCLUDING DEFAULTS);
ALTER TABLE bench.perrow_balances ADD UNIQUE NULLS NOT DISTINCT (org_id, item_id, location_id, lot_id);
CREATE FUNCTION bench.perrow_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench.perrow_balances (org_id, item_id, location_id, lot_id, qty, last_ledger_id, updated_at)
    VALUES (NEW.org_id, NEW.item_id, NEW.location_id, NEW.lot_id, NEW.qty, NEW.id, now())
    ON CONFLICT (org_id, item_id, location_id, lot_id) DO UPDATE
       SET qty = bench.perrow_balances.qty + excluded.qty, last_ledger_id = excluded.last_ledger_id, updated_at = now();
    RETURN NULL;
END $$;
CREATE TRIGGER perrow AFTER INSERT ON bench.perrow FOR EACH ROW EXECUTE FUNCTION bench.perrow_upsert();
SQL

bulk() {  # table → seconds for one INSERT … SELECT of $rows rows over the 1,000 keys
  psql_q -c "CHECKPOINT" >/dev/null
  psql_q <<SQL | tail -1
SET app.org_id = '00000000-0000-4000-8000-0000000000be';
\timing on
INSERT INTO $1 (item_id, location_id, qty)
SELECT ('00000000-0000-4000-a000-' || lpad((i % 100 + 1)::text, 12, '0'))::uuid,
       ('00000000-0000-4000-b000-' || lpad((i / 100 % 10 + 1)::text, 12, '0'))::uuid, 1
  FROM generate_series(1, $rows) i;
SQL
}
ms() { sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'; }

echo "bulk INSERT … SELECT of $rows rows (the per-row design once: it takes minutes):"
declare -A bulk_ms
for t in bench.bare inventory.ledger bench.perrow bench.bare inventory.ledger; do
  m=$(bulk "$t" | ms)
  echo "  $t: $m ms"
  bulk_ms[$t]="${bulk_ms[$t]:-} $m"
done

tps() {  # table, hot? → tps of single-row autocommit inserts, 4 clients
  local key='\set i random(1, 100)
\set l random(1, 10)'
  [ "$2" = hot ] && key='\set i 1
\set l 1'
  cat >"$tmp/post.sql" <<SQL
$key
INSERT INTO $1 (item_id, location_id, qty) VALUES (('00000000-0000-4000-a000-' || lpad(:i::text, 12, '0'))::uuid, ('00000000-0000-4000-b000-' || lpad(:l::text, 12, '0'))::uuid, 1);
SQL
  pgbench -n -M prepared -c 4 -j 2 -T "$seconds" -f "$tmp/post.sql" postgres 2>/dev/null | sed -nE 's/^tps = ([0-9.]+) .*/\1/p'
}
echo "single-row autocommit posts, 4 clients, $seconds s each:"
declare -A tps_of
for mode in spread hot; do
  for t in bench.bare bench.perrow inventory.ledger bench.bare bench.perrow inventory.ledger; do
    v=$(tps "$t" "$mode")
    echo "  $mode $t: $v tps"
    tps_of[$mode,$t]="${tps_of[$mode,$t]:-} $v"
  done
done
check=$(psql_q -c "SELECT count(*) FROM (SELECT org_id, item_id, location_id, lot_id, sum(qty) q FROM inventory.ledger GROUP BY 1,2,3,4) l
  FULL JOIN inventory.balances b ON (b.org_id, b.item_id, b.location_id) = (l.org_id, l.item_id, l.location_id)
   AND b.lot_id IS NOT DISTINCT FROM l.lot_id WHERE b.qty IS DISTINCT FROM l.q")

python3 - "$rows" "$check" "${bulk_ms[bench.bare]}" "${bulk_ms[bench.perrow]}" "${bulk_ms[inventory.ledger]}" \
  "${tps_of[spread,bench.bare]}" "${tps_of[spread,bench.perrow]}" "${tps_of[spread,inventory.ledger]}" \
  "${tps_of[hot,bench.bare]}" "${tps_of[hot,bench.perrow]}" "${tps_of[hot,inventory.ledger]}" <<'PY'
import sys
rows, check = sys.argv[1], sys.argv[2]
avg = lambda s: sum(map(float, s.split())) / len(s.split())
bare, perrow, stmt, sb, sp, ss, hb, hp, hs = map(avg, sys.argv[3:12])
print()
print(f"results (means of 2 runs; bulk per-row: 1 run), {rows} rows / 1,000 keys; balances that differ from the ledger: {check}")
print(f"  bulk:      bare {bare/1000:7.2f} s  per-row {perrow/1000:7.2f} s  statement {stmt/1000:7.2f} s")
print(f"             statement / bare = {stmt/bare:5.2f}   (target <= 1.10)")
print(f"             per-row / bare   = {perrow/bare:5.2f}")
print(f"             per-row / statement = {perrow/stmt:5.2f}   (target >= 6)")
print(f"  single-row: bare {sb:8.0f} tps  per-row {sp:8.0f}  statement {ss:8.0f}")
print(f"             statement / bare = {ss/sb:5.2f}   (target >= 0.90); per-row / bare = {sp/sb:5.2f}")
print(f"  hot key:   bare {hb:8.0f} tps  per-row {hp:8.0f}  statement {hs:8.0f}")
print(f"             statement / bare = {hs/hb:5.2f}   (target >= 0.60); per-row / bare = {hp/hb:5.2f}")
PY
