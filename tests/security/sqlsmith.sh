#!/usr/bin/env bash
# Random SQL against the extension: Debian's sqlsmith sends SQLSMITH_QUERIES (default 3000) generated
# queries, with a fixed seed, as an unprivileged application role with a tenant, to a database that has
# the extension and data of two tenants. Errors are expected (random SQL); a backend crash is not: the
# test fails if the server log shows a process terminated by a signal, or the server restarted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
queries=${SQLSMITH_QUERIES:-3000}
harness_workdir
cluster_start smith
cluster_psql smith -q -d postgres >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE ROLE smith LOGIN;
SELECT inventory.grant_app_access('smith');
INSERT INTO inventory.organizations (id, name, subdomain) VALUES
    ('5a000000-0000-4000-8000-00000000005a', 'Smith A', 'smith-a'), ('5b000000-0000-4000-8000-00000000005b', 'Smith B', 'smith-b');
DO $$
DECLARE o uuid;
BEGIN
  FOR o IN SELECT id FROM inventory.organizations LOOP
    PERFORM set_config('app.org_id', o::text, true);
    INSERT INTO inventory.items (sku, name, allow_negative) SELECT 'S-' || i, 'Item ' || i, i % 3 = 0 FROM generate_series(1, 10) i;
    INSERT INTO inventory.locations (code, name) SELECT 'L' || i, 'Loc ' || i FROM generate_series(1, 3) i;
    INSERT INTO inventory.ledger (item_id, location_id, qty)
    SELECT i.id, l.id, g % 5 + 1 FROM inventory.items i, inventory.locations l, generate_series(1, 5) g
     WHERE i.org_id = o AND l.org_id = o;
  END LOOP;
END $$;
SELECT count(*) FROM inventory.reconcile();
-- The application role's sessions act for tenant A; no query may run long.
ALTER ROLE smith SET app.org_id = '5a000000-0000-4000-8000-00000000005a';
ALTER ROLE smith SET statement_timeout = '2s';
SQL
started=$(cluster_psql smith -qAt -d postgres -c "SELECT pg_postmaster_start_time()")
dir=$(cluster_dir smith)
set +e
timeout 600 runuser -u postgres -- sqlsmith --target="host=$dir port=${CLUSTER_PORT[smith]} dbname=postgres user=smith" \
  --seed=20261129 --max-queries="$queries" --verbose >"$WORK/sqlsmith.out" 2>"$WORK/sqlsmith.err"
rc=$?
set -e
tail -c 2000 "$WORK/sqlsmith.err" | tr '\r' '\n' | grep -E "queries|error|Error" | tail -5 || true
if grep -E "terminated by signal|was terminated|server process .* exited|PANIC|reinitializing" "$dir/server.log"; then
  fail "a backend crashed under sqlsmith (server log above)"
fi
now=$(cluster_psql smith -qAt -d postgres -c "SELECT pg_postmaster_start_time()")
[ "$now" = "$started" ] || fail "the server restarted under sqlsmith"
[ "$rc" = 0 ] || fail "sqlsmith exited with $rc"
findings=$(cluster_psql smith -qAt -d postgres -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "after sqlsmith, reconcile found $findings differences"
echo "sqlsmith: $queries random queries as an application role; no backend crashed; balances still exact"
