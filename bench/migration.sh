#!/usr/bin/env bash
# Benchmark (not a test): how long each step of docs/MIGRATION_GUIDE.md takes on the original Prisma
# schema with a big ledger (default 10,000,000 rows; tests/fixtures/prisma_legacy.sql), run exactly as
# the guide's SQL blocks are, one block after another, without other load. Prints each block's time.
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
echo "loaded in $((SECONDS - load_start)) s; running the guide"
{ echo '\timing on'; python3 "$repo/tests/e2e/docs/sql_blocks.py" "$repo/docs/MIGRATION_GUIDE.md"; } \
  | cluster_psql migbench -d shop -f - >"$WORK/guide.out" 2>&1 || { tail -20 "$WORK/guide.out"; exit 1; }
python3 - "$WORK/guide.out" "$repo/docs/MIGRATION_GUIDE.md" "$rows" <<'PY'
import re, sys
out, guide, rows = open(sys.argv[1]).read(), open(sys.argv[2]).read().splitlines(), int(sys.argv[3])
def label(line):  # the step heading above a block, and the block's first comment
    heading = next(l for l in reversed(guide[:line]) if l.startswith("## "))[3:]
    first = guide[line] if line < len(guide) else ""
    return heading + (" — " + first[3:].split(".")[0] + "." if first.startswith("-- ") else "")
print(f"docs/MIGRATION_GUIDE.md on a {rows:,}-row ledger, block by block:")
for part in re.split(r"^-- block at ", out, flags=re.M)[1:]:
    where = int(part.split("\n", 1)[0].rsplit(":", 1)[1])
    ms = sum(float(t) for t in re.findall(r"^Time: ([0-9.]+) ms", part, flags=re.M))
    print(f"  {label(where):70.70} {ms / 1000:9.2f} s")
PY
