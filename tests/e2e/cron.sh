#!/usr/bin/env bash
# End to end with Debian's pg_cron: schedule_reconcile in pg_cron's database (and a second call that
# updates the same job), a job for another database through cron.schedule_in_database (as docs/DBA.md
# shows), then wait for pg_cron to run both (up to 150 s: its finest schedule is one minute) and check
# cron.job_run_details and inventory.reconcile_runs: the small drift corrected, the large one flagged;
# in the other database, with inventory.default_org_id set (mid-migration), every tenant covered.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
# Jobs run in background workers: this cluster has no TCP listener for pg_cron to connect to.
cluster_start cron "cron.use_background_workers = on" "max_worker_processes = 16"
q() { cluster_psql cron -X -qAt -v ON_ERROR_STOP=1 "$@"; }

q -d postgres >/dev/null <<'SQL'
CREATE EXTENSION pg_cron;
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('c0000000-0000-4000-8000-00000000000c', 'Cron');
SET app.org_id = 'c0000000-0000-4000-8000-00000000000c';
INSERT INTO inventory.items (id, sku, name) VALUES
    ('c0000000-0000-4000-a000-000000000001', 'SMALL', 'Small drift'), ('c0000000-0000-4000-a000-000000000002', 'LARGE', 'Large drift');
INSERT INTO inventory.locations (id, code, name) VALUES ('c0000000-0000-4000-b000-000000000001', 'L', 'Shelf');
SELECT inventory.post(id, 'c0000000-0000-4000-b000-000000000001', 10) FROM inventory.items;
RESET app.org_id;
UPDATE inventory.balances SET qty = qty + 0.004 WHERE item_id = 'c0000000-0000-4000-a000-000000000001';
UPDATE inventory.balances SET qty = qty + 3 WHERE item_id = 'c0000000-0000-4000-a000-000000000002';
SQL

first=$(q -d postgres -c "SELECT inventory.schedule_reconcile('0 3 * * *')")
second=$(q -d postgres -c "SELECT inventory.schedule_reconcile('* * * * *')")
[ "$first" = "$second" ] || fail "a second schedule_reconcile made a new job ($first, then $second)"
jobs=$(q -d postgres -c "SELECT count(*) || ' ' || min(schedule) || ' ' || min(command) FROM cron.job WHERE jobname = 'inventory-reconcile'")
[ "$jobs" = "1 * * * * * SELECT inventory.reconcile_run()" ] || fail "cron.job holds: $jobs"
echo "cron: job $first scheduled every minute (the second call updated it)"

# A database that is not pg_cron's: schedule_reconcile there says where pg_cron is and what to run.
q -d postgres -c "CREATE DATABASE shop" >/dev/null
q -d shop >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('5b000000-0000-4000-8000-00000000005b', 'Shop');
SET app.org_id = '5b000000-0000-4000-8000-00000000005b';
INSERT INTO inventory.items (id, sku, name) VALUES ('5b000000-0000-4000-a000-000000000001', 'S', 'Shop item');
INSERT INTO inventory.locations (id, code, name) VALUES ('5b000000-0000-4000-b000-000000000001', 'L', 'Shelf');
SELECT inventory.post('5b000000-0000-4000-a000-000000000001', '5b000000-0000-4000-b000-000000000001', 4);
-- A second tenant, whose balance drifts; the database is mid-migration (docs/MIGRATION_GUIDE.md): the
-- fallback tenant is set, and the scheduled run (a superuser's) must still cover every tenant.
INSERT INTO inventory.organizations (id, name) VALUES ('5c000000-0000-4000-8000-00000000005c', 'Shop two');
SET app.org_id = '5c000000-0000-4000-8000-00000000005c';
INSERT INTO inventory.items (id, sku, name) VALUES ('5c000000-0000-4000-a000-000000000001', 'S2', 'Second shop item');
INSERT INTO inventory.locations (id, code, name) VALUES ('5c000000-0000-4000-b000-000000000001', 'L', 'Shelf');
SELECT inventory.post('5c000000-0000-4000-a000-000000000001', '5c000000-0000-4000-b000-000000000001', 4);
RESET app.org_id;
UPDATE inventory.balances SET qty = qty + 2 WHERE org_id = '5c000000-0000-4000-8000-00000000005c';
ALTER DATABASE shop SET inventory.default_org_id = '5b000000-0000-4000-8000-00000000005b';
SQL
if err=$(q -d shop -c "SELECT inventory.schedule_reconcile()" 2>&1); then fail "schedule_reconcile worked without pg_cron"; fi
echo "$err" | grep -q "pg_cron is not installed in database shop" || fail "unclear error: $err"
q -d postgres -c "SELECT cron.schedule_in_database('shop-reconcile', '* * * * *', 'SELECT inventory.reconcile_run()', 'shop')" >/dev/null

echo "cron: waiting for pg_cron to run both jobs (at most 150 s)"
deadline=$((SECONDS + 150))
until [ "$(q -d postgres -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE status = 'succeeded'")" = 2 ] \
   && [ "$(q -d postgres -c "SELECT count(*) > 0 FROM inventory.reconcile_runs")" = t ] \
   && [ "$(q -d shop -c "SELECT count(*) > 0 FROM inventory.reconcile_runs")" = t ]; do
  [ $SECONDS -lt $deadline ] || { q -d postgres -c "SELECT jobid, status, return_message FROM cron.job_run_details"; fail "pg_cron did not run both jobs in time"; }
  sleep 5
done
q -d postgres -c "SELECT jobid, database, username, status, return_message FROM cron.job_run_details ORDER BY runid" | sed 's/^/cron: run /'

run=$(q -d postgres -c "SELECT run_by || ' ' || ledgers || ' ' || findings || ' ' || corrected || ' ' || flagged || ' ' || status
                          FROM inventory.reconcile_runs ORDER BY id LIMIT 1")
[ "$run" = "postgres 1 2 1 1 flagged" ] || fail "first scheduled run: $run"
balances=$(q -d postgres -c "SELECT string_agg(i.sku || '=' || b.qty, ' ' ORDER BY i.sku) FROM inventory.balances b JOIN inventory.items i ON i.id = b.item_id")
[ "$balances" = "LARGE=13 SMALL=10.000" ] || fail "balances after the run: $balances"
shop=$(q -d shop -c "SELECT status || ' ' || keys_checked || ' ' || coalesce(org_id::text, 'all tenants') FROM inventory.reconcile_runs ORDER BY id LIMIT 1")
[ "$shop" = "flagged 2 all tenants" ] || fail "shop's run (default_org_id set) did not cover every tenant: $shop"
echo "cron: postgres run: $run; balances $balances; shop run: $shop"

[ "$(q -d postgres -c "SELECT inventory.unschedule_reconcile()")" = t ] || fail "unschedule_reconcile did not remove the job"
[ "$(q -d postgres -c "SELECT inventory.unschedule_reconcile()")" = f ] || fail "a second unschedule_reconcile did not return false"
[ "$(q -d postgres -c "SELECT count(*) FROM cron.job WHERE jobname = 'inventory-reconcile'")" = 0 ] || fail "the job is still there"
echo "cron: unscheduled"
