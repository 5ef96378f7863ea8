#!/usr/bin/env bash
# Benchmark (not a test), issue 18: would PostgreSQL 18's uuidv7() serve the built-in schema's ids
# better than gen_random_uuid(), their default on every version (SPEC §5; src/pg_compat.rs says why it
# stays)? Two tables, both `LIKE inventory.lots INCLUDING ALL` (its columns, defaults, primary key
# (org_id, id), unique key (org_id, item_id, code)), that differ only in the id's default: `v4` keeps the
# extension's, gen_random_uuid(); `v7` gets uuidv7(). No row-level security or trigger on either (the
# same for both, so left out).
# Each round loads ROWS lots into each table, emptied first, as receiving does: statements of 1,000
# rows, each its own transaction, from TENANTS tenants (default 10) whose rows interleave, after a
# CHECKPOINT (both start with the same full-page writes ahead); the two alternate in order from round to
# round. Per table: the load's time, the WAL it wrote, the primary key's size afterwards; then 20,000
# primary-key lookups of existing ids (one statement, after a restart: an empty shared_buffers, the
# operating system's cache as it is). Medians over the rounds, each round's figures printed (the spread).
# The server's settings are the defaults (shared_buffers 128MB: the primary keys outgrow it) but a WAL
# allowance that no load reaches (no checkpoint in the middle of one).
# Usage: PG_VERSION=18 bench/uuid_ids.sh [rows per table per round, default 2000000] [rounds, default 3]
#        [tenants, default 10]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${1:-2000000}
rounds=${2:-3}
tenants=${3:-10}
if [ "${PG_VERSION:-15}" != 18 ]; then
  echo "bench/uuid_ids: uuidv7() is PostgreSQL 18's; run it with PG_VERSION=18" >&2
  exit 2
fi
source "$here/common.sh"
build=$(bench_build)
stamp=$(bench_so_stamp)
echo "uuid ids benchmark: $build"
harness_workdir
cluster_start ids "max_wal_size = '8GB'" "checkpoint_timeout = '30min'"
psql_q() { cluster_psql ids -d postgres -X -qAt "$@"; }
psql_q >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE SCHEMA bench;
CREATE TABLE bench.v7 (LIKE inventory.lots INCLUDING ALL);
CREATE TABLE bench.v4 (LIKE inventory.lots INCLUDING ALL);
ALTER TABLE bench.v7 ALTER COLUMN id SET DEFAULT uuidv7();
SQL
defaults=$(psql_q -c "SELECT string_agg(attrelid::regclass || ' ' || pg_get_expr(adbin, adrelid), ', ' ORDER BY attrelid::regclass::text)
  FROM pg_attribute JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid IN ('bench.v4'::regclass, 'bench.v7'::regclass, 'inventory.lots'::regclass) AND attname = 'id'")
echo "id defaults: $defaults"
[ "$defaults" = "bench.v4 gen_random_uuid(), bench.v7 uuidv7(), inventory.lots gen_random_uuid()" ] \
  || { echo "bench/uuid_ids: not the defaults this benchmark compares" >&2; exit 1; }

# The load: ROWS/1000 statements of 1,000 lots each (autocommit), tenant and item spread as receiving does.
load_sql() {  # table
  python3 - "$1" "$((rows / 1000))" "$tenants" <<'PY'
import sys
table, statements, tenants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for b in range(statements):
    print(f"INSERT INTO bench.{table} (org_id, item_id, code)"
          f" SELECT ('0d000000-0000-4000-8000-' || lpad((g % {tenants})::text, 12, '0'))::uuid,"
          f" ('0e000000-0000-4000-8000-' || lpad((g % 500)::text, 12, '0'))::uuid, 'LOT-' || g"
          f" FROM generate_series({b * 1000}, {b * 1000 + 999}) g;")
PY
}
load_sql v4 >"$WORK/load_v4.sql"
load_sql v7 >"$WORK/load_v7.sql"
head -c 300 "$WORK/load_v7.sql"; echo " …"
# The ids to look up: 20,000 of the table's, chosen and put in a random order (md5 of the id) before the
# restart, so that the lookups' order favours neither design (v7's ids in heap order would be in key order).
probes_sql() {  # table
  echo "DROP TABLE IF EXISTS bench.probes_$1;
CREATE TABLE bench.probes_$1 AS SELECT org_id, id FROM bench.$1 TABLESAMPLE BERNOULLI (2) REPEATABLE (7)
 ORDER BY md5(id::text) LIMIT 20000;"
}
lookups_sql() {  # table
  echo "SET enable_seqscan = off; SET enable_bitmapscan = off;
SELECT count(*) FROM bench.probes_$1 p JOIN LATERAL (SELECT 1 FROM bench.$1 t WHERE t.org_id = p.org_id AND t.id = p.id) x ON true;"
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
    psql_q -c "VACUUM (ANALYZE) bench.$t" -c "$(probes_sql "$t")" >/dev/null
    cluster_restart ids  # lookups from a cold shared_buffers
    lstart=$(date +%s%N)
    psql_q -c "$(lookups_sql "$t")" >/dev/null
    lookup=$((($(date +%s%N) - lstart) / 1000000))
    echo "  round $r $t: load $took ms, WAL $((bytes / 1048576)) MB, primary key $((size / 1048576)) MB, 20,000 lookups $lookup ms"
    ms[$t]+="$took " wal[$t]+="$bytes " pk[$t]+="$size " look[$t]+="$lookup "
  done
done
python3 - "$rows" "$tenants" "${ms[v4]}" "${ms[v7]}" "${wal[v4]}" "${wal[v7]}" "${pk[v4]}" "${pk[v7]}" "${look[v4]}" "${look[v7]}" <<'PY'
import sys, statistics as st
rows, tenants = int(sys.argv[1]), int(sys.argv[2])
v = [list(map(float, a.split())) for a in sys.argv[3:]]
def line(name, a, b, unit, scale):
    ma, mb = st.median(a), st.median(b)
    spread = lambda x: f"{min(x)/scale:,.0f}-{max(x)/scale:,.0f}"
    print(f"{name:<22} v4 {ma/scale:>9,.0f} {unit} ({spread(a)})   v7 {mb/scale:>9,.0f} {unit} ({spread(b)})   v7 / v4 = {mb/ma:.2f}")
print(f"{rows:,} lots per table per round over {tenants} tenants, medians of {len(v[0])} rounds (range in brackets):")
line("load", v[0], v[1], "ms", 1)
line("WAL written", v[2], v[3], "MB", 1048576)
line("primary key size", v[4], v[5], "MB", 1048576)
line("20,000 PK lookups", v[6], v[7], "ms", 1)
PY
bench_so_check "$stamp"
