#!/usr/bin/env bash
# Isolation through a real connection pooler: Debian's PgBouncer in transaction mode on loopback, in
# front of a scratch cluster, 4 server connections shared by 16 clients of two tenants. Each transaction
# sets its tenant with SET LOCAL or inventory.set_org, or sets none, then pool.check() asserts what it
# sees and may write: only its own tenant's rows (none of the other's), and nothing at all without a
# tenant. Every check is recorded; the test fails on any failed transaction and prints how many
# transactions were checked and on how many server connections they ran.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
seconds=${POOL_SECONDS:-10}
harness_workdir
cluster_start pool
pg_dir=$(cluster_dir pool)
A=a1000000-0000-4000-8000-00000000000a
B=b2000000-0000-4000-8000-00000000000b
cluster_psql pool -q -d postgres >/dev/null <<SQL
CREATE EXTENSION inventory_ext;
CREATE ROLE pool_app LOGIN;
SELECT inventory.grant_app_access('pool_app');
INSERT INTO inventory.organizations (id, name) VALUES ('$A', 'Pool A'), ('$B', 'Pool B');
SET app.org_id = '$A';
INSERT INTO inventory.items (sku, name) SELECT 'A-' || i, 'A item' FROM generate_series(1, 20) i;
SET app.org_id = '$B';
INSERT INTO inventory.items (sku, name) SELECT 'B-' || i, 'B item' FROM generate_series(1, 30) i;
RESET app.org_id;
CREATE SCHEMA pool;
GRANT USAGE ON SCHEMA pool TO pool_app;
CREATE TABLE pool.checks (tenant uuid, mode int, backend int, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON pool.checks TO pool_app;
-- SECURITY INVOKER: it sees and writes exactly what the calling transaction may.
CREATE FUNCTION pool.check(expected uuid, mode int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
    other uuid := CASE WHEN expected = '$A' THEN '$B'::uuid ELSE '$A'::uuid END;
    own_rows bigint := CASE WHEN expected = '$A' THEN 20 ELSE 30 END;
    visible bigint;
    foreign_rows bigint;
BEGIN
    IF inventory.current_org_id() IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'the tenant is %, expected %', inventory.current_org_id(), expected;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE org_id IS DISTINCT FROM expected) INTO visible, foreign_rows FROM inventory.items;
    IF foreign_rows > 0 THEN
        RAISE EXCEPTION 'tenant % saw % rows of another tenant', expected, foreign_rows;
    END IF;
    IF expected IS NULL AND visible > 0 THEN
        RAISE EXCEPTION 'a transaction without a tenant saw % rows', visible;
    END IF;
    IF expected IS NOT NULL AND visible <> own_rows THEN
        RAISE EXCEPTION 'tenant % saw % of its rows', expected, visible;
    END IF;
    BEGIN
        INSERT INTO inventory.items (org_id, sku, name) VALUES (coalesce(other, '$A'), 'X-' || random(), 'intruder');
        RAISE EXCEPTION 'tenant % wrote a row for tenant %', expected, coalesce(other, '$A');
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    INSERT INTO pool.checks (tenant, mode, backend) VALUES (expected, mode, pg_backend_pid());
END
\$\$;
GRANT EXECUTE ON FUNCTION pool.check(uuid, int) TO pool_app;
SQL

port=$((CLUSTER_PORT[pool] + 1000))
cat >"$WORK/pgbouncer.ini" <<INI
[databases]
shop = host=$pg_dir port=${CLUSTER_PORT[pool]} dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 100
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
echo '"pool_app" ""' >"$WORK/userlist.txt"
chown postgres "$WORK" "$WORK"/pgbouncer.ini "$WORK"/userlist.txt
# PgBouncer refuses to run as root.
runuser -u postgres -- pgbouncer -d "$WORK/pgbouncer.ini"
trap 'kill "$(cat "$WORK/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || true; cluster_stop_all' EXIT
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$port" -d shop && break; sleep 0.1; done

cat >"$WORK/tx.sql" <<SQL
\set t random(1, 2)
\set mode random(1, 3)
BEGIN;
\if :mode = 1
\if :t = 1
SET LOCAL app.org_id = '$A';
\else
SET LOCAL app.org_id = '$B';
\endif
\elif :mode = 2
SELECT inventory.set_org(CASE :t WHEN 1 THEN '$A'::uuid ELSE '$B'::uuid END);
\endif
SELECT pool.check(CASE WHEN :mode = 3 THEN NULL WHEN :t = 1 THEN '$A'::uuid ELSE '$B'::uuid END, :mode);
COMMIT;
SQL
log=$WORK/pgbench.log
if ! pgbench -n -M simple -h 127.0.0.1 -p "$port" -U pool_app -c 16 -j 2 -T "$seconds" -f "$WORK/tx.sql" shop >"$log" 2>&1; then
  cat "$log"; fail "pgbench through PgBouncer failed: a transaction saw or wrote another tenant's rows, or errored"
fi
processed=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$log")
read -r checked tenant_a tenant_b none backends < <(cluster_psql pool -qAt -F ' ' -d postgres -c \
  "SELECT count(*), count(*) FILTER (WHERE tenant = '$A'), count(*) FILTER (WHERE tenant = '$B'),
          count(*) FILTER (WHERE tenant IS NULL), count(DISTINCT backend) FROM pool.checks")
echo "pgbouncer: $checked transactions checked through PgBouncer (transaction mode): $tenant_a as tenant A, $tenant_b as B, $none without a tenant; 16 clients on $backends server connections"
[ "$checked" = "$processed" ] && [ "$checked" -gt 0 ] || fail "pgbench processed $processed transactions but $checked were checked"
[ "$backends" -le 4 ] || fail "more server connections ($backends) than the pool has: not pooled"
[ "$none" -gt 0 ] && [ "$tenant_a" -gt 0 ] && [ "$tenant_b" -gt 0 ] || fail "not every kind of transaction ran"
