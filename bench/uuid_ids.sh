#!/usr/bin/env bash
# Benchmark (not a test), issue 18: the built-in schema's ids on PostgreSQL 18, uuidv7() (what the
# extension's items, locations and lots default to there: src/pg_compat.rs) against gen_random_uuid()
# (their default on 15, and what they would be without the change). Two tables, both
# `LIKE inventory.lots INCLUDING ALL` (its columns, defaults, primary key (org_id, id), unique key
# (org_id, item_id, code)), that differ only in the id's default: `v7` keeps the extension's, `v4` gets
# gen_random_uuid(). No row-level security or trigger on either (the same for both, so left out).
# Each round loads ROWS lots into each table, emptied first, as receiving does: statements of 1,000 rows,
# each its own transaction, over 10 tenants, after a CHECKPOINT (both start with the same full-page
# writes ahead); the order of the two alternates from round to round. Per table: the load's time, the WAL
# it wrote, the primary key's size afterwards; then, once loaded, 20,000 primary-key lookups of random
# existing ids (one statement, from a cold shared_buffers of 16MB) as a check that reading is no worse.
# Medians over the rounds, with each round's figures printed (the spread).
# Usage: PG_VERSION=18 bench/uuid_ids.sh [rows per table per round, default 2000000] [rounds, default 3]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${1:-2000000}
rounds=${2:-3}
if [ "${PG_VERSION:-15}" != 18 ]; then
  echo "bench/uuid_ids: uuidv7() is PostgreSQL 18's; run it with PG_VERSION=18" >&2
  exit 2
fi
source "$here/common.sh"
build=$(bench_build)
stamp=$(bench_so_stamp)
echo "uuid ids benchmark: $build"
# The defaults but a larger WAL allowance (no checkpoint forced by WAL volume in the middle of a load).
cluster_start ids "max_wal_size = '8GB'" "checkpoint_timeout = '30min'"
psql_q() { cluster_psql ids -d postgres -X -qAt "$@"; }
psql_q >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE SCHEMA bench;
CREATE TABLE bench.v7 (LIKE inventory.lots INCLUDING ALL);
CREATE TABLE bench.v4 (LIKE inventory.lots INCLUDING ALL);
ALTER TABLE bench.v4 ALTER COLUMN id SET DEFAULT gen_random_uuid();
SQL
defaults=$(psql_q -c "SELECT string_agg(attrelid::regclass || ' ' || pg_get_expr(adbin, adrelid), ', ' ORDER BY 1)
  FROM pg_attribute JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid IN ('bench.v4'::regclass, 'bench.v7'::regclass, 'inventory.lots'::regclass) AND attname = 'id'")
echo "id defaults: $defaults"
[[ $defaults == *"inventory.lots uuidv7()"* && $defaults == *"bench.v7 uuidv7()"* ]] \
  || { echo "bench/uuid_ids: inventory.lots' id does not default to uuidv7(): not what ships on 18" >&2; exit 1; }

# The load: ROWS/1000 statements of 1,000 lots each (autocommit), tenant and item spread as receiving does.
load_sql() {  # table
  python3 - "$1" "$((rows / 1000))" <<'PY'
import sys
table, statements = sys.argv[1], int(sys.argv[2])
for b in range(statements):
    print(f"INSERT INTO bench.{table} (org_id, item_id, code)"
          f" SELECT ('0d000000-0000-4000-8000-00000000000' || (g % 10))::uuid,"
          f" ('0e000000-0000-4000-8000-' || lpad((g % 500)::text, 12, '0'))::uuid, 'LOT-' || g"
          f" FROM generate_series({b * 1000}, {b * 1000 + 999}) g;")
PY
}
load_sql v4 >"$WORK/load_v4.sql"
load_sql v7 >"$WORK/load_v7.sql"
head -c 300 "$WORK/load_v7.sql"; echo " …"
lookups_sql() {  # table
  echo "SET enable_seqscan = off; SET enable_bitmapscan = off;
SELECT count(*) FROM (SELECT id, org_id FROM bench.$1 TABLESAMPLE BERNOULLI (2) REPEATABLE (7) LIMIT 20000) s
  JOIN LATERAL (SELECT 1 FROM bench.$1 t WHERE t.org_id = s.org_id AND t.id = s.id) x ON true;"
}

declare -A ms wal pk look
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(v4 v7); else order=(v7 v4); fi
  for t in "${order[@]}"; do
    psql_q -c "TRUNCATE bench.$t" -c "CHECKPOINT" >/dev/null
    lsn=$(psql_q -c "SELECT pg_current_wal_lsn()")
    start=$(date +%s%N)
    psql_q -v ON_ERROR_STOP=1 -f "$WORK/load_$t.sql" >/dev/null
    took=$((($(date +%s%N) - start) / 1000000))
    bytes=$(psql_q -c "SELECT pg_current_wal_lsn() - '$lsn'::pg_lsn")
    size=$(psql_q -c "SELECT pg_relation_size('bench.${t}_pkey')")
    psql_q -c "VACUUM (ANALYZE) bench.$t" >/dev/null
    cluster_restart ids  # lookups from a cold shared_buffers
    lstart=$(date +%s%N)
    psql_q -c "$(lookups_sql "$t")" >/dev/null
    lookup=$((($(date +%s%N) - lstart) / 1000000))
    echo "  round $r $t: load $took ms, WAL $((bytes / 1048576)) MB, primary key $((size / 1048576)) MB, 20,000 lookups $lookup ms"
    ms[$t]+="$took " wal[$t]+="$bytes " pk[$t]+="$size " look[$t]+="$lookup "
  done
done
python3 - "$rows" "${ms[v4]}" "${ms[v7]}" "${wal[v4]}" "${wal[v7]}" "${pk[v4]}" "${pk[v7]}" "${look[v4]}" "${look[v7]}" <<'PY'
import sys, statistics as st
rows = int(sys.argv[1])
v = [list(map(float, a.split())) for a in sys.argv[2:]]
def line(name, a, b, unit, scale):
    ma, mb = st.median(a), st.median(b)
    spread = lambda x: f"{min(x)/scale:,.0f}-{max(x)/scale:,.0f}"
    print(f"{name:<22} v4 {ma/scale:>9,.0f} {unit} ({spread(a)})   v7 {mb/scale:>9,.0f} {unit} ({spread(b)})   v7 / v4 = {mb/ma:.2f}")
print(f"{rows:,} lots per table per round, medians of {len(v[0])} rounds (range in brackets):")
line("load", v[0], v[1], "ms", 1)
line("WAL written", v[2], v[3], "MB", 1048576)
line("primary key size", v[4], v[5], "MB", 1048576)
line("20,000 PK lookups", v[6], v[7], "ms", 1)
PY
bench_so_check "$stamp"
