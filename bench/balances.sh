#!/usr/bin/env bash
# Benchmark (not a test): the cost of keeping balances (issue 13's performance section), on one cluster,
# every design measured side by side in the same run:
#   bare     bench.bare, a ledger with inventory.ledger's columns, indexes, defaults and foreign keys and
#            no balance maintenance at all (no trigger)
#   limit    the trigger-free upsert: the same insert into a bare ledger (bench.limit_ledger) plus its
#            balance upsert into a table of inventory.balances' shape (bench.limit_balances), in one
#            statement, a writable CTE: WITH l AS (INSERT … RETURNING …) INSERT … ON CONFLICT DO UPDATE
#   ours     inventory.ledger with the extension's balance upkeep
#   per-row  the original app's design, a PL/pgSQL AFTER INSERT row trigger upserting one balance per
#            row (bulk INSERT … SELECT only, once: it takes minutes at 1,000,000 rows)
# 1,000 keys (100 items x 10 locations, bench/fixture.sql).
#
# Single-row autocommit posts: pgbench, 4 clients, -M prepared, random keys and one hot key; bulk: one
# INSERT … SELECT and one COPY (from a file the server wrote once with the same rows) of $rows rows.
# Runs are interleaved: every round runs each design once, in an order that rotates from round to round,
# and every ratio is taken within a round (so the machine's drift cancels); the summary prints the median
# of the per-round ratios and their spread (min–max). Single-row ratios are of tps (higher is better for
# the numerator), bulk ratios of seconds (lower is better for the numerator).
#
# Usage: bench/balances.sh [bulk rows, default 1000000] [seconds per pgbench run, default 15] [rounds, default 3]
#   quick: bench/balances.sh 100000 5 2   (a couple of minutes; the default run takes about 15)
# BENCH_INSTALL=0 measures the extension as installed instead of building it (bench/common.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${1:-1000000}
seconds=${2:-15}
rounds=${3:-3}
source "$here/common.sh"
build=$(bench_build)
stamp=$(bench_so_stamp)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "balances benchmark: $build"
echo "  $rows bulk rows, $rounds rounds, pgbench runs of $seconds s (4 clients, -M prepared), 1,000 keys"
cluster_start bench "shared_buffers = '1GB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
eval "$(cluster_env bench)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cluster_stop_all' EXIT
psql_q() { cluster_psql bench -d postgres -qAt "$@"; }
results=$tmp/results  # lines: kind mode design round value

psql_q >/dev/null -f "$here/fixture.sql"
psql_q >/dev/null <<'SQL'
SELECT bench.ledger_like('bare');
SELECT bench.ledger_like('perrow');
SELECT bench.balances_like('perrow_balances');
CREATE FUNCTION bench.perrow_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench.perrow_balances AS b (org_id, item_id, location_id, lot_id, qty, last_ledger_id, updated_at)
    VALUES (NEW.org_id, NEW.item_id, NEW.location_id, NEW.lot_id, NEW.qty, NEW.id, now())
    ON CONFLICT (org_id, item_id, location_id, lot_id) DO UPDATE
       SET qty = b.qty + excluded.qty, last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id),
           updated_at = excluded.updated_at;
    RETURN NULL;
END $$;
CREATE TRIGGER perrow AFTER INSERT ON bench.perrow FOR EACH ROW EXECUTE FUNCTION bench.perrow_upsert();
SQL

# The same order of designs, rotated by the round: round 1 a b c, round 2 b c a, round 3 c a b, …
rotate() {  # round, designs…
  local r=$1; shift
  local n=$# i
  local all=("$@")
  for ((i = 0; i < n; i++)); do echo "${all[$(((r - 1 + i) % n))]}"; done
}
ms() { sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -1; }

# --- bulk -----------------------------------------------------------------------------------------
keys_sql="('00000000-0000-4000-a000-' || lpad((i % 100 + 1)::text, 12, '0'))::uuid,
       ('00000000-0000-4000-b000-' || lpad((i / 100 % 10 + 1)::text, 12, '0'))::uuid, 1
  FROM generate_series(1, $rows) i"
copy_file=$(cluster_dir bench)/bulk_rows.copy  # written and read by the server (the postgres user)
psql_q -c "COPY (SELECT $keys_sql) TO '$copy_file'" >/dev/null

table_of() { case $1 in bare) echo bench.bare ;; ours) echo inventory.ledger ;; perrow) echo bench.perrow ;; esac; }
bulk() {  # insert|copy, design → milliseconds for one statement of $rows rows over the 1,000 keys
  local t; t=$(table_of "$2")
  psql_q -c "CHECKPOINT" >/dev/null
  if [ "$1" = insert ]; then
    psql_q -c '\timing on' -c "INSERT INTO $t (item_id, location_id, qty) SELECT $keys_sql" | ms
  else
    psql_q -c '\timing on' -c "COPY $t (item_id, location_id, qty) FROM '$copy_file'" | ms
  fi
}
echo "bulk, $rows rows (ms):"
for r in $(seq "$rounds"); do
  for how in insert copy; do
    for d in $(rotate "$r" bare ours); do
      v=$(bulk "$how" "$d"); echo "bulk $how $d $r $v" >>"$results"
      printf '  round %s %-6s %-7s %10.0f ms\n' "$r" "$how" "$d" "$v"
    done
    if [ "$r" = 1 ] && [ "$how" = insert ]; then
      v=$(bulk insert perrow); echo "bulk insert perrow 1 $v" >>"$results"
      printf '  round %s %-6s %-7s %10.0f ms\n' 1 insert per-row "$v"
    fi
  done
done

# The bulk rows' autovacuum and analyze would otherwise land on whichever single-row run comes next.
psql_q -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null

# --- single-row autocommit posts ------------------------------------------------------------------
post_sql() {  # design → the pgbench statement (keys :i, :l)
  local item="('00000000-0000-4000-a000-' || lpad(:i::text, 12, '0'))::uuid"
  local loc="('00000000-0000-4000-b000-' || lpad(:l::text, 12, '0'))::uuid"
  case $1 in
    bare) echo "INSERT INTO bench.bare (item_id, location_id, qty) VALUES ($item, $loc, 1);" ;;
    ours) echo "INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES ($item, $loc, 1);" ;;
    # The balance upsert as the extension writes it (qty added, the greatest ledger id, the time).
    limit) echo "WITH l AS (INSERT INTO bench.limit_ledger (item_id, location_id, qty) VALUES ($item, $loc, 1)" \
                "RETURNING org_id, item_id, location_id, lot_id, qty, id)" \
                "INSERT INTO bench.limit_balances AS b (org_id, item_id, location_id, lot_id, qty, last_ledger_id, updated_at)" \
                "SELECT org_id, item_id, location_id, lot_id, qty, id, now() FROM l" \
                "ON CONFLICT (org_id, item_id, location_id, lot_id) DO UPDATE SET qty = b.qty + excluded.qty," \
                "last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id), updated_at = excluded.updated_at;" ;;
  esac
}
tps() {  # design, random|hot → tps of single-row autocommit posts, 4 clients, prepared
  if [ "$2" = hot ]; then printf '\\set i 1\n\\set l 1\n'; else printf '\\set i random(1, 100)\n\\set l random(1, 10)\n'; fi >"$tmp/post.sql"
  post_sql "$1" >>"$tmp/post.sql"
  "$PG_BIN/pgbench" -n -M prepared -c 4 -j 2 -T "$seconds" -f "$tmp/post.sql" postgres 2>"$tmp/pgbench.err" \
    | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | grep . || { cat "$tmp/pgbench.err" >&2; return 1; }
}
echo "single-row autocommit posts, 4 clients, $seconds s each (tps):"
for r in $(seq "$rounds"); do
  for mode in random hot; do
    for d in $(rotate "$r" bare limit ours); do
      v=$(tps "$d" "$mode"); echo "single $mode $d $r $v" >>"$results"
      printf '  round %s %-6s %-7s %10.0f tps\n' "$r" "$mode" "$d" "$v"
    done
  done
done

# --- every balance equals its ledger's sum --------------------------------------------------------
differ() {  # ledger, balance table → keys whose balance differs from the ledger's sum
  psql_q -c "SELECT count(*) FROM (SELECT org_id, item_id, location_id, lot_id, sum(qty) q FROM $1 GROUP BY 1, 2, 3, 4) l
    FULL JOIN $2 b ON (b.org_id, b.item_id, b.location_id) = (l.org_id, l.item_id, l.location_id)
     AND b.lot_id IS NOT DISTINCT FROM l.lot_id WHERE b.qty IS DISTINCT FROM l.q"
}
check="ours $(differ inventory.ledger inventory.balances), limit $(differ bench.limit_ledger bench.limit_balances), per-row $(differ bench.perrow bench.perrow_balances)"

python3 - "$results" "$rows" "$rounds" "$check" "$build" "$(bench_so_check "$stamp")" \
  "load average (1, 5, 15 min) at the start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs" <<'PY'
import sys, statistics
path, rows, rounds, check, build, reinstalled, load = sys.argv[1:]
runs = {}  # (kind, mode, design) -> {round: value}
for line in open(path):
    kind, mode, design, r, v = line.split()
    runs.setdefault((kind, mode, design), {})[int(r)] = float(v)

def ratio(kind, mode, num, den):
    a, b = runs[(kind, mode, num)], runs[(kind, mode, den)]
    rs = [a[r] / b[r] for r in sorted(a) if r in b]
    return statistics.median(rs), min(rs), max(rs)

def fmt(t):
    return f"{t[0]:.2f} ({t[1]:.2f}-{t[2]:.2f})"

def med(kind, mode, design):
    return statistics.median(runs[(kind, mode, design)].values())

def verdict(value, ok):
    return "met" if ok(value) else "NOT met"

print()
print(f"summary: {build}")
print(f"  {int(rows):,} bulk rows, {rounds} interleaved rounds; medians of the rounds, ratios as median (min-max) of the per-round ratios")
print(f"  {load}")
print(f"balances that differ from their ledger's sum: {check}")
print()
print(f"{'single-row posts, tps':24} {'bare':>7} {'limit':>7} {'ours':>7}   {'ours/limit':>16}  {'ours/bare':>16}  {'limit/bare':>16}   target ours/limit >= 0.97")
for mode, label in (("random", "random keys"), ("hot", "one hot key")):
    ol = ratio("single", mode, "ours", "limit")
    print(f"  {label:22} {med('single', mode, 'bare'):7.0f} {med('single', mode, 'limit'):7.0f} {med('single', mode, 'ours'):7.0f}"
          f"   {fmt(ol):>16}  {fmt(ratio('single', mode, 'ours', 'bare')):>16}  {fmt(ratio('single', mode, 'limit', 'bare')):>16}"
          f"   {verdict(ol[0], lambda x: x >= 0.97)}")
print()
print(f"{'bulk, seconds':24} {'bare':>7} {'ours':>7} {'per-row':>7}   {'ours/bare':>16}  {'per-row/ours':>16}   targets ours/bare <= 1.10, per-row/ours >= 6")
for mode, label in (("insert", "INSERT ... SELECT"), ("copy", "COPY")):
    ob = ratio("bulk", mode, "ours", "bare")
    line = f"  {label:22} {med('bulk', mode, 'bare') / 1000:7.2f} {med('bulk', mode, 'ours') / 1000:7.2f}"
    if ("bulk", mode, "perrow") in runs:
        pr = med("bulk", mode, "perrow") / med("bulk", mode, "ours")
        line += f" {med('bulk', mode, 'perrow') / 1000:7.2f}   {fmt(ob):>16}  {pr:16.1f}   {verdict(ob[0], lambda x: x <= 1.10)}, {verdict(pr, lambda x: x >= 6)}"
    else:
        line += f" {'-':>7}   {fmt(ob):>16}  {'-':>16}   {verdict(ob[0], lambda x: x <= 1.10)}"
    print(line)
print("  (per-row: one run, against the median of ours)")
if reinstalled:
    print(reinstalled)
PY
