#!/usr/bin/env bash
# Benchmark (not a test): how long each step of docs/MIGRATION_GUIDE.md takes on the original Prisma
# schema with a big ledger (default 10,000,000 rows; tests/fixtures/prisma_legacy.sql), run exactly as
# the guide's SQL blocks are, one block after another. Prints each block's time, and what the
# application feels (issue 16's targets): beside steps 0–6 a legacy writer inserts a ledger row, an item
# and an audit entry per round, each round a new connection as the application's role (as tests/e2e/
# migration.sh's writer), and a sampler reads pg_locks every 5 ms: the longest round (connection
# included) and the longest time anyone held ACCESS EXCLUSIVE on the ledger.
# Usage: bench/migration.sh [ledger rows, default 10000000]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${1:-10000000}
source "$here/common.sh"
harness_workdir
cluster_start migbench "shared_buffers = '2GB'" "max_wal_size = '16GB'" "maintenance_work_mem = '512MB'" "checkpoint_timeout = '30min'"
cluster_psql migbench -q -d postgres -c "CREATE DATABASE shop"
echo "loading the Prisma schema with $rows ledger rows…"
load_start=$SECONDS
cluster_psql migbench -q -d shop -v ledger_rows="$rows" -f "$repo/tests/fixtures/prisma_legacy.sql" >/dev/null
cluster_psql migbench -q -d shop -c "VACUUM ANALYZE" >/dev/null
echo "loaded in $((SECONDS - load_start)) s; running the guide beside a legacy writer"

# The legacy writer: one round per new connection, its time in ms on a line of writer.ms.
writer() {
  local n=0 start
  while [ ! -f "$WORK/stop" ]; do
    n=$((n + 1)); start=$(date +%s%N)
    cluster_psql migbench -X -qAt -d shop -U prisma >/dev/null 2>>"$WORK/writer.err" <<SQL || echo "round $n failed" >>"$WORK/writer.err"
BEGIN;
INSERT INTO "InventoryLedger" (id, "itemId", "locationId", "lotId", "qtyCanonical", reason)
VALUES ('w_$n', 'itm_' || ($n % 500 + 1), 'loc_' || ($n % 8 + 1), NULL, 1.5, 'writer');
INSERT INTO "Item" (id, sku, name) VALUES ('witm_$n', 'W-$n', 'writer item');
INSERT INTO "AuditLog" (id, action, entity, "entityId") VALUES ('waud_$n', 'ledger.create', 'InventoryLedger', 'w_$n');
COMMIT;
SQL
    echo $(( ($(date +%s%N) - start) / 1000000 )) >>"$WORK/writer.ms"
  done
}
# The sampler: every 5 ms, whether anyone holds ACCESS EXCLUSIVE on the ledger; the longest such hold.
cluster_psql migbench -q -d shop -c "CREATE TABLE public.bench_done ()" -c "GRANT SELECT ON public.bench_done TO PUBLIC"
ledger_oid=$(cluster_psql migbench -qAt -d shop -c "SELECT '\"InventoryLedger\"'::regclass::oid")
# A procedure that commits every sample: one long transaction would hold back CREATE INDEX CONCURRENTLY,
# which waits for every transaction older than it.
cluster_psql migbench -q -d shop <<SQL
CREATE PROCEDURE public.bench_sampler(INOUT longest_ms double precision DEFAULT 0, INOUT holds integer DEFAULT 0)
LANGUAGE plpgsql AS \$\$
DECLARE
    since timestamptz;
    held boolean;
BEGIN
    WHILE NOT EXISTS (SELECT FROM public.bench_done) LOOP
        held := EXISTS (SELECT FROM pg_locks WHERE relation = $ledger_oid AND mode = 'AccessExclusiveLock' AND granted);
        IF held AND since IS NULL THEN since := clock_timestamp(); END IF;
        IF NOT held AND since IS NOT NULL THEN
            longest_ms := greatest(longest_ms, extract(epoch FROM clock_timestamp() - since) * 1000);
            holds := holds + 1;
            since := NULL;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.005);
    END LOOP;
END
\$\$;
SQL
cluster_psql migbench -qAt -F ' ' -d shop -c "CALL public.bench_sampler()" >"$WORK/sampler.out" 2>&1 &
sampler_pid=$!
writer & writer_pid=$!
sleep 2
{ echo '\timing on'; python3 "$repo/tests/e2e/docs/sql_blocks.py" "$repo/docs/MIGRATION_GUIDE.md" --until "7. The application"; } \
  | cluster_psql migbench -d shop -f - >"$WORK/guide.out" 2>&1 || { tail -20 "$WORK/guide.out"; touch "$WORK/stop"; exit 1; }
sleep 2
touch "$WORK/stop"; wait "$writer_pid"
cluster_psql migbench -q -d shop -c "INSERT INTO public.bench_done DEFAULT VALUES"
wait "$sampler_pid"
read -r longest_hold holds < <(tail -1 "$WORK/sampler.out")
longest_hold=${longest_hold%.*}
rounds=$(wc -l <"$WORK/writer.ms")
longest_round=$(sort -n "$WORK/writer.ms" | tail -1)
median_round=$(sort -n "$WORK/writer.ms" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
[ ! -s "$WORK/writer.err" ] || { echo "the legacy writer saw errors:"; head -5 "$WORK/writer.err"; }
echo "while steps 0-6 ran: the legacy writer did $rounds rounds (median ${median_round} ms, longest ${longest_round} ms, a new connection each);"
echo "  ACCESS EXCLUSIVE on the ledger was held $holds times, the longest for ${longest_hold} ms (sampled every 5 ms)"
python3 - "$WORK/guide.out" "$repo/docs/MIGRATION_GUIDE.md" "$rows" <<'PY'
import re, sys
out, guide, rows = open(sys.argv[1]).read(), open(sys.argv[2]).read().splitlines(), int(sys.argv[3])
def label(line):  # the step heading above a block, and the block's first comment
    heading = next(l for l in reversed(guide[:line]) if l.startswith("## "))[3:]
    first = guide[line] if line < len(guide) else ""
    return heading + (" — " + first[3:].split(".")[0] + "." if first.startswith("-- ") else "")
print(f"docs/MIGRATION_GUIDE.md (steps 0-6) on a {rows:,}-row ledger, block by block, beside the writer:")
for part in re.split(r"^-- block at ", out, flags=re.M)[1:]:
    where = int(part.split("\n", 1)[0].rsplit(":", 1)[1])
    ms = sum(float(t) for t in re.findall(r"^Time: ([0-9.]+) ms", part, flags=re.M))
    print(f"  {label(where):70.70} {ms / 1000:9.2f} s")
PY
