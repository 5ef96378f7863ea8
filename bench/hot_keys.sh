#!/usr/bin/env bash
# Benchmark (not a test): one hot key with and without slots (issue 14's performance section), every
# design on one cluster in the same run, single-row autocommit receipts through pgbench -M prepared:
#   bare     bench.bare: inventory.ledger's columns, indexes, defaults and foreign keys, no balances
#   one      inventory.ledger with one balance row per key (set_balance_slots 1, the default)
#   spread   inventory.ledger with 16 slots per key (set_balance_slots 16: about twice the writers)
# each with one hot key (item 1 at location 1) and with random keys over 1,000 (bench/fixture.sql), at 4
# and 8 clients. Rounds are interleaved (each round runs every design once, in an order rotated from round
# to round; the slot count is set before each run of ours), ratios are taken within a round, and the summary
# prints the median of the per-round ratios with their spread (min–max).
#
# Usage: bench/hot_keys.sh [seconds per pgbench run, default 15] [rounds, default 3]
#   quick: bench/hot_keys.sh 5 2   (about 4 minutes; the default run takes about 20)
# BENCH_INSTALL=0 measures the extension as installed instead of building it (bench/common.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-15}
rounds=${2:-3}
source "$here/common.sh"
build=$(bench_build)
stamp=$(bench_so_stamp)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "hot-key benchmark: $build"
echo "  $rounds rounds, pgbench runs of $seconds s (-M prepared), 4 and 8 clients, 1 hot key or 1,000 random keys"
cluster_start bench "shared_buffers = '1GB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
eval "$(cluster_env bench)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cluster_stop_all' EXIT
psql_q() { cluster_psql bench -d postgres -qAt "$@"; }
results=$tmp/results  # lines: clients mode design round tps

psql_q >/dev/null -f "$here/fixture.sql"
psql_q >/dev/null -c "SELECT bench.ledger_like('bare')"

rotate() {  # round, designs…
  local r=$1; shift
  local n=$# i
  local all=("$@")
  for ((i = 0; i < n; i++)); do echo "${all[$(((r - 1 + i) % n))]}"; done
}

tps() {  # design, random|hot, clients → tps of single-row autocommit receipts
  local table=inventory.ledger
  case $1 in
    bare) table=bench.bare ;;
    one) psql_q -c "SELECT inventory.set_balance_slots('inventory.ledger', 1)" >/dev/null ;;
    spread) psql_q -c "SELECT inventory.set_balance_slots('inventory.ledger', 16)" >/dev/null ;;
  esac
  psql_q -c "CHECKPOINT" >/dev/null
  if [ "$2" = hot ]; then printf '\\set i 1\n\\set l 1\n'; else printf '\\set i random(1, 100)\n\\set l random(1, 10)\n'; fi >"$tmp/post.sql"
  echo "INSERT INTO $table (item_id, location_id, qty) VALUES (('00000000-0000-4000-a000-' || lpad(:i::text, 12, '0'))::uuid," \
       "('00000000-0000-4000-b000-' || lpad(:l::text, 12, '0'))::uuid, 1);" >>"$tmp/post.sql"
  "$PG_BIN/pgbench" -n -M prepared -c "$3" -j 2 -T "$seconds" -f "$tmp/post.sql" postgres 2>"$tmp/pgbench.err" \
    | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | grep . || { cat "$tmp/pgbench.err" >&2; return 1; }
}

echo "single-row autocommit receipts, $seconds s each (tps):"
for r in $(seq "$rounds"); do
  for clients in 4 8; do
    for mode in hot random; do
      for d in $(rotate "$r" bare one spread); do
        v=$(tps "$d" "$mode" "$clients"); echo "$clients $mode $d $r $v" >>"$results"
        printf '  round %s %s clients %-6s %-7s %8.0f tps\n' "$r" "$clients" "$mode" "$d" "$v"
      done
    done
  done
done

# Totals equal the ledger's sums, and the hot key spread over slots.
check=$(psql_q -c "SELECT count(*) FROM (SELECT org_id, item_id, location_id, lot_id, sum(qty) q FROM inventory.ledger GROUP BY 1, 2, 3, 4) l
    FULL JOIN inventory.stock s ON (s.org_id, s.item_id, s.location_id) = (l.org_id, l.item_id, l.location_id)
     AND s.lot_id IS NOT DISTINCT FROM l.lot_id WHERE s.qty IS DISTINCT FROM l.q")
psql_q -c "SELECT inventory.set_balance_slots('inventory.ledger', 16)" >/dev/null
printf '\\set i 1\n\\set l 1\nINSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (%s, %s, 1);\n' \
  "'00000000-0000-4000-a000-000000000001'" "'00000000-0000-4000-b000-000000000001'" >"$tmp/post.sql"
"$PG_BIN/pgbench" -n -M prepared -c 8 -j 2 -T 3 -f "$tmp/post.sql" postgres >/dev/null 2>&1
hot_rows=$(psql_q -c "SELECT count(*) FROM inventory.balances WHERE item_id = '00000000-0000-4000-a000-000000000001'
                        AND location_id = '00000000-0000-4000-b000-000000000001'")

python3 - "$results" "$rounds" "$check" "$hot_rows" "$build" "$(bench_so_check "$stamp")" \
  "load average (1, 5, 15 min) at the start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs" <<'PY'
import sys, statistics
path, rounds, check, hot_rows, build, reinstalled, load = sys.argv[1:]
runs = {}
for line in open(path):
    clients, mode, design, r, v = line.split()
    runs.setdefault((clients, mode, design), {})[int(r)] = float(v)

def ratio(clients, num, den):
    a, b = runs[(clients,) + num], runs[(clients,) + den]
    rs = [a[r] / b[r] for r in sorted(a) if r in b]
    return statistics.median(rs), min(rs), max(rs)

def fmt(t):
    return f"{t[0]:.2f} ({t[1]:.2f}-{t[2]:.2f})"

def med(clients, mode, design):
    return statistics.median(runs[(clients, mode, design)].values())

print()
print(f"summary: {build}")
print(f"  {rounds} interleaved rounds; medians of the rounds, ratios as median (min-max) of the per-round ratios")
print(f"  {load}")
print(f"  keys whose total (inventory.stock) differs from the ledger's sum: {check}; rows of the hot key after 8 clients with 16 slots: {hot_rows}")
print()
print(f"{'tps':14} {'bare hot':>9} {'one hot':>9} {'spread hot':>10} {'bare rnd':>9} {'one rnd':>9} {'spread rnd':>10}")
for c in ("4", "8"):
    print(f"  {c} clients   {med(c, 'hot', 'bare'):9.0f} {med(c, 'hot', 'one'):9.0f} {med(c, 'hot', 'spread'):10.0f}"
          f" {med(c, 'random', 'bare'):9.0f} {med(c, 'random', 'one'):9.0f} {med(c, 'random', 'spread'):10.0f}")
print()
rows = [
    ("spread hot / spread random", ("hot", "spread"), ("random", "spread"), 0.90),
    ("spread hot / bare hot", ("hot", "spread"), ("hot", "bare"), 0.75),
    ("spread random / one random", ("random", "spread"), ("random", "one"), 0.90),
    ("one hot / bare hot (no slots)", ("hot", "one"), ("hot", "bare"), None),
]
print(f"{'ratio':32} {'4 clients':>18} {'8 clients':>18}   target")
for label, num, den, target in rows:
    cells = [ratio(c, num, den) for c in ("4", "8")]
    verdict = "" if target is None else (f">= {target:.2f}: " + ("met" if all(x[0] >= target for x in cells) else "NOT met"))
    print(f"  {label:30} {fmt(cells[0]):>18} {fmt(cells[1]):>18}   {verdict}")
print("  (spread random / one random: 'no slower than one slot, within noise' — this machine's noise is about ±10%)")
if reinstalled:
    print(reinstalled)
PY
