#!/usr/bin/env bash
# Benchmark (not a test): what row-level security costs an indexed tenant query.
# Two copies of one table, 1,000,000 rows over 100 tenants, each with UNIQUE (org_id, sku):
#   plain  no row-level security; the query filters org_id = '<tenant>' itself
#   rls    made tenant-scoped by inventory.enable_tenant_isolation; the query relies on the policy
# Both run the same transaction shape as pgbench -M prepared (BEGIN; SET LOCAL app.org_id; SELECT; COMMIT),
# as a non-superuser role, so the only difference is the policy. Prints tps and the ratio rls/plain.
# Usage: bench/rls_overhead.sh [seconds per run, default 15] [clients, default 2]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-15}
clients=${2:-2}
source "$here/common.sh"
cluster_start bench "shared_buffers = '512MB'"
eval "$(cluster_env bench)"
cluster_psql bench -q -d postgres >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE ROLE bench_app LOGIN;
SELECT inventory.grant_app_access('bench_app');
INSERT INTO inventory.organizations (id, name)
SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'Tenant ' || i FROM generate_series(1, 100) i;
CREATE TABLE bench_plain (org_id uuid NOT NULL, id bigint PRIMARY KEY, sku text NOT NULL, qty numeric NOT NULL,
                          UNIQUE (org_id, sku));
INSERT INTO bench_plain
SELECT ('00000000-0000-4000-9000-' || lpad((i % 100 + 1)::text, 12, '0'))::uuid, i, 'sku-' || (i / 100), i % 17
  FROM generate_series(0, 999999) i;
CREATE TABLE bench_rls (LIKE bench_plain INCLUDING ALL);
INSERT INTO bench_rls SELECT * FROM bench_plain;
SELECT count(*) AS changes FROM inventory.enable_tenant_isolation('bench_rls');
GRANT SELECT ON bench_plain, bench_rls TO bench_app;
VACUUM ANALYZE bench_plain;
VACUUM ANALYZE bench_rls;
SQL
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cluster_stop_all' EXIT
cat >"$tmp/plain.sql" <<'SQL'
\set t random(1, 100)
\set n random(0, 9999)
BEGIN;
SELECT set_config('app.org_id', '00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'), true);
SELECT qty FROM bench_plain WHERE org_id = ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid AND sku = 'sku-' || :n;
COMMIT;
SQL
cat >"$tmp/rls.sql" <<'SQL'
\set t random(1, 100)
\set n random(0, 9999)
BEGIN;
SELECT set_config('app.org_id', '00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'), true);
SELECT qty FROM bench_rls WHERE sku = 'sku-' || :n;
COMMIT;
SQL
tps() {
  "$PG_BIN/pgbench" -n -M prepared -U bench_app -c "$clients" -j "$clients" -T "$seconds" -f "$tmp/$1.sql" postgres 2>/dev/null \
    | sed -nE 's/^tps = ([0-9.]+) .*/\1/p'
}
tps plain >/dev/null   # warm-up
plain=$(tps plain)
rls=$(tps rls)
plain2=$(tps plain)
rls2=$(tps rls)
python3 - "$plain" "$rls" "$plain2" "$rls2" "$seconds" "$clients" <<'PY'
import sys
p1, r1, p2, r2 = map(float, sys.argv[1:5])
plain, rls = (p1 + p2) / 2, (r1 + r2) / 2
print(f"indexed tenant query, {sys.argv[6]} clients, 2 runs x {sys.argv[5]} s each, 1,000,000 rows / 100 tenants")
print(f"  plain (org_id filter in the query): {plain:10.1f} tps  (runs: {p1:.1f}, {p2:.1f})")
print(f"  rls   (tenant policy)             : {rls:10.1f} tps  (runs: {r1:.1f}, {r2:.1f})")
print(f"  ratio rls / plain                 : {rls / plain:10.3f}")
PY
