#!/usr/bin/env bash
# Benchmark (not a test), the noise-free companion of bench/balances.sh (issue 13): CPU instructions per
# single-row posting, counted by valgrind's callgrind in a single-user backend. The count repeats to well
# under 1 % from run to run, where pgbench throughput on these 2-core machines moves ±10 %.
# Each design is PREPARE once + EXECUTE per posting (what pgbench -M prepared does), 1,000 keys in turn:
#   none   an empty statement with the same two parameters (what a statement costs by itself)
#   bare   bench.bare: inventory.ledger's columns, indexes, defaults and foreign keys, no trigger
#   limit  the same insert into a bare ledger plus its balance upsert in one statement (writable CTE),
#          into a table of inventory.balances' shape: no trigger machinery
#   ours   inventory.ledger with the extension's balance upkeep
# (tables from bench/fixture.sql, statements as in bench/balances.sh). Every key has a balance before the
# count starts, so every counted posting updates one. Each design runs twice from the same copy of the
# data directory, with N and with 2N postings; the difference, divided by N, is one posting in steady
# state (start-up, first plans and caches cancel out). The empty statement's count is subtracted from
# the others. CPU only: the commit's wait for its WAL flush is not counted, so pair it with
# bench/balances.sh for throughput.
# inventory_ext is preloaded (shared_preload_libraries), as in production, for every design.
#
# Uses the extension as installed in Debian's PostgreSQL 15 (build it first with
# INVENTORY_RELEASE=1 scripts/install.sh: a dev build counts far more instructions than what ships), or
# in the PostgreSQL whose binaries PG_BIN names, e.g. a relocated copy of Debian's (cp -a
# /usr/lib/postgresql/15 and /usr/share/postgresql/15 under one new prefix, then cargo pgrx install
# --release --pg-config PREFIX/usr/lib/postgresql/15/bin/pg_config): two builds side by side, and the
# shared installation left alone.
# Needs root (the backend runs as the postgres user) and valgrind (installed if missing).
# Usage: [INSTRUCTIONS_SLOTS=n] bench/instructions.sh [--annotate] [postings N, default 1000]
#   --annotate  also prints the 40 functions of "ours" with the most inclusive instructions per posting:
#               callgrind_annotate --inclusive=yes of its N and 2N runs, differenced and divided by N
#               (steady state, like the counts); PostgreSQL's own static functions show as addresses
#               (Debian's binary has no symbols for them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
annotate=0
if [ "${1:-}" = --annotate ]; then annotate=1; shift; fi
N=${1:-1000}
if ! [ -x /usr/bin/valgrind ]; then
  echo "instructions: installing valgrind"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
BENCH_INSTALL=0
source "$here/common.sh"
build=$(bench_build)
stamp=$(bench_so_stamp)

cluster_start icount
dir=$(cluster_dir icount)
cluster_psql icount -d postgres -qAt -f "$here/fixture.sql" >/dev/null
# One posting per key in every design, so the counted postings update existing balances.
cluster_psql icount -d postgres -qAt >/dev/null <<'SQL'
SELECT bench.ledger_like('bare');
CREATE TEMP VIEW keys AS
SELECT ('00000000-0000-4000-a000-' || lpad((k % 100 + 1)::text, 12, '0'))::uuid AS item_id,
       ('00000000-0000-4000-b000-' || lpad((k / 100 % 10 + 1)::text, 12, '0'))::uuid AS location_id
  FROM generate_series(0, 999) k;
INSERT INTO bench.bare (item_id, location_id, qty) SELECT item_id, location_id, 1 FROM keys;
INSERT INTO inventory.ledger (item_id, location_id, qty) SELECT item_id, location_id, 1 FROM keys;
WITH l AS (INSERT INTO bench.limit_ledger (item_id, location_id, qty) SELECT item_id, location_id, 1 FROM keys
           RETURNING org_id, item_id, location_id, lot_id, qty, id)
INSERT INTO bench.limit_balances (org_id, item_id, location_id, lot_id, qty, last_ledger_id, updated_at)
SELECT org_id, item_id, location_id, lot_id, qty, id, now() FROM l;
VACUUM ANALYZE;
CHECKPOINT;
SQL
# INSTRUCTIONS_SLOTS=16 counts "ours" with the built-in ledger's balances spread over 16 slots (issue 14:
# a quiet key keeps one row, so this is what slots cost a posting to a key nobody else is writing).
if [ -n "${INSTRUCTIONS_SLOTS:-}" ]; then
  cluster_psql icount -d postgres -qAt -c "SELECT inventory.set_balance_slots('inventory.ledger', $INSTRUCTIONS_SLOTS)" \
    -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
fi
_as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
_as_postgres cp -a "$dir/data" "$dir/template"

limit_sql='WITH l AS (INSERT INTO bench.limit_ledger (item_id, location_id, qty) VALUES ($1, $2, 1)
  RETURNING org_id, item_id, location_id, lot_id, qty, id)
INSERT INTO bench.limit_balances AS b (org_id, item_id, location_id, lot_id, qty, last_ledger_id, updated_at)
SELECT org_id, item_id, location_id, lot_id, qty, id, now() FROM l
ON CONFLICT (org_id, item_id, location_id, lot_id) DO UPDATE SET qty = b.qty + excluded.qty,
  last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id), updated_at = excluded.updated_at'
# A single-user backend does not apply the database's settings (fixture.sql's app.org_id).
org="SET app.org_id = '00000000-0000-4000-8000-0000000000be';"
declare -A stmt=(
  [none]='SELECT WHERE $1 IS NULL AND $2 IS NULL'
  [bare]='INSERT INTO bench.bare (item_id, location_id, qty) VALUES ($1, $2, 1)'
  [limit]=$limit_sql
  [ours]='INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES ($1, $2, 1)'
)
input() {  # design, postings → the single-user backend's input (one statement per line)
  echo "$org"
  echo "PREPARE p(uuid, uuid) AS ${stmt[$1]//$'\n'/ };"
  awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) { k = i % 1000
    printf "EXECUTE p(%c00000000-0000-4000-a000-%012d%c, %c00000000-0000-4000-b000-%012d%c);\n", 39, k % 100 + 1, 39, 39, int(k / 100) % 10 + 1, 39 } }'
}
count() {  # design, postings → instructions of the whole run (callgrind's total)
  local out=$dir/cg.$1.$2
  _as_postgres rm -rf "$dir/data"
  _as_postgres cp -a "$dir/template" "$dir/data"
  input "$1" "$2" >"$dir/in.sql"
  (cd / && runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$PG_BIN/postgres" --single -D "$dir/data" -c shared_preload_libraries=inventory_ext postgres \
    <"$dir/in.sql" >"$dir/out.$1.$2" 2>"$dir/err.$1.$2") || { cat "$dir/err.$1.$2" >&2; return 1; }
  if grep -q ERROR "$dir/out.$1.$2" "$dir/err.$1.$2"; then grep -h -m3 ERROR "$dir/out.$1.$2" "$dir/err.$1.$2" >&2; return 1; fi
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"
}
# After a run: did every counted posting reach its ledger, and its balance where one is kept?
check() {  # design, postings → "ok" or what differs
  local q
  case $1 in
    none) echo ok; return ;;
    bare) q="SELECT count(*) = 1000 + $2 AS ok FROM bench.bare" ;;
    limit) q="SELECT (SELECT count(*) FROM bench.limit_ledger) = 1000 + $2
              AND (SELECT sum(qty) FROM bench.limit_ledger) = (SELECT sum(qty) FROM bench.limit_balances) AS ok" ;;
    ours) q="SELECT (SELECT count(*) FROM inventory.ledger) = 1000 + $2
             AND (SELECT sum(qty) FROM inventory.ledger) = (SELECT sum(qty) FROM inventory.balances) AS ok" ;;
  esac
  local out
  out=$(printf '%s\n' "$org" "${q//$'\n'/ }" | (cd / && runuser -u postgres -- "$PG_BIN/postgres" --single -D "$dir/data" \
    -c shared_preload_libraries=inventory_ext postgres 2>&1))
  if [[ $out == *'ok = "t"'* ]]; then echo "checked: ledger rows$([ "$1" = bare ] || echo ' and balances')"; else echo "WRONG: ledger rows or balances differ"; fi
}
declare -A per checked
for v in none bare limit ours; do
  a=$(count "$v" "$N"); b=$(count "$v" $((2 * N)))
  per[$v]=$(((b - a) / N))
  checked[$v]=$(check "$v" $((2 * N)))
done
echo "instructions per posting: $build"
echo "  callgrind, single-user backend, prepared, $N postings (difference of $N and $((2 * N))), 1,000 keys, every posting updates a balance"
[ -z "${INSTRUCTIONS_SLOTS:-}" ] || echo "  ours: the built-in ledger with set_balance_slots(…, $INSTRUCTIONS_SLOTS)"
printf '  none  %9d   (an empty statement: subtracted from the others)\n' "${per[none]}"
for v in bare limit ours; do printf '  %-5s %9d   (%s)\n' "$v" $((per[$v] - per[none])) "${checked[$v]}"; done
awk -v b=$((per[bare] - per[none])) -v l=$((per[limit] - per[none])) -v o=$((per[ours] - per[none])) \
  'BEGIN { printf "  ours/limit %.3f (target <= 1.05), ours/bare %.3f, limit/bare %.3f\n", o / l, o / b, l / b }'
bench_so_check "$stamp"

if [ "$annotate" = 1 ]; then
  echo
  echo "ours: the 40 functions with the most inclusive instructions per posting ((2N run - N run) / N):"
  for n in "$N" $((2 * N)); do
    callgrind_annotate --inclusive=yes --threshold=100 "$dir/cg.ours.$n" 2>/dev/null >"$dir/annotate.$n"
  done
  python3 - "$dir/annotate.$N" "$dir/annotate.$((2 * N))" "$N" <<'PY'
import re, sys
def read(path):
    counts = {}
    for line in open(path):
        m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$", line)
        if m and ":" in m.group(2):
            counts[m.group(2)] = counts.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return counts
a, b, n = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
per = sorted(((b[f] - a.get(f, 0)) / n, f) for f in b)
for v, f in reversed(per[-40:]):
    print(f"{v:12,.0f}  {f}")
PY
fi
