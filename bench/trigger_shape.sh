#!/usr/bin/env bash
# Benchmark (not a test): what the trigger *shape* SPEC §6 and issue 4 require costs by itself, before
# any balance is written. Single-row autocommit INSERTs, 4 clients, into five ledgers that share
# inventory.ledger's columns, indexes and foreign keys:
#   bare          no trigger
#   stmt          AFTER INSERT … FOR EACH STATEMENT trigger that does nothing (PL/pgSQL RETURN NULL)
#   stmt+newtab   the same trigger with REFERENCING NEW TABLE (a transition table), still doing nothing
#   before-row    BEFORE INSERT … FOR EACH ROW trigger that does nothing but RETURN NEW
#   shipped       inventory.ledger with the Rust balance trigger (writes the balance)
# Runs are interleaved (round-robin, several rounds) because this 2-core machine drifts ±10 % or more
# over minutes. Prints median tps and each variant's ratio to bare.
# Usage: bench/trigger_shape.sh [rounds, default 5] [seconds per run, default 8]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-5}
seconds=${2:-8}
source "$here/common.sh"
cluster_start shape "shared_buffers = '1GB'" "max_wal_size = '4GB'"
eval "$(cluster_env shape)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cluster_stop_all' EXIT
psql_q() { cluster_psql shape -d postgres -qAt "$@"; }

psql_q >/dev/null -f "$here/fixture.sql"
psql_q >/dev/null <<'SQL'
SELECT bench.ledger_like(t) FROM unnest(ARRAY['bare', 'stmt', 'stmt_newtab', 'before_row']) t;
CREATE FUNCTION bench.nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION bench.pass() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t AFTER INSERT ON bench.stmt FOR EACH STATEMENT EXECUTE FUNCTION bench.nothing();
CREATE TRIGGER t AFTER INSERT ON bench.stmt_newtab REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION bench.nothing();
CREATE TRIGGER t BEFORE INSERT ON bench.before_row FOR EACH ROW EXECUTE FUNCTION bench.pass();
SQL

tps() {  # table → tps of single-row autocommit inserts over 1,000 keys, 4 clients
  cat >"$tmp/post.sql" <<SQL
\set i random(1, 100)
\set l random(1, 10)
INSERT INTO $1 (item_id, location_id, qty) VALUES (('00000000-0000-4000-a000-' || lpad(:i::text, 12, '0'))::uuid, ('00000000-0000-4000-b000-' || lpad(:l::text, 12, '0'))::uuid, 1);
SQL
  "$PG_BIN/pgbench" -n -M prepared -c 4 -j 2 -T "$seconds" -f "$tmp/post.sql" postgres 2>/dev/null | sed -nE 's/^tps = ([0-9.]+) .*/\1/p'
}

variants=(bench.bare bench.stmt bench.stmt_newtab bench.before_row inventory.ledger)
declare -A runs
for r in $(seq "$rounds"); do
  for t in "${variants[@]}"; do
    v=$(tps "$t"); runs[$t]="${runs[$t]:-} $v"
    echo "  round $r $t: $v tps"
  done
done
python3 - "${runs[bench.bare]}" "${runs[bench.stmt]}" "${runs[bench.stmt_newtab]}" "${runs[bench.before_row]}" "${runs[inventory.ledger]}" <<'PY'
import sys, statistics
names = ["bare", "stmt (no-op)", "stmt+newtab (no-op)", "before-row (no-op)", "shipped"]
runs = [list(map(float, a.split())) for a in sys.argv[1:]]
bare = statistics.median(runs[0])
# Each round's ratio to that round's bare run, so slow drift cancels out.
print(f"{'variant':22} {'median tps':>10}  {'ratio (median of per-round ratios)':>34}  range")
for name, r in zip(names, runs):
    ratios = [x / b for x, b in zip(r, runs[0])]
    print(f"{name:22} {statistics.median(r):10.0f}  {statistics.median(ratios):34.2f}  {min(ratios):.2f}-{max(ratios):.2f}")
PY
