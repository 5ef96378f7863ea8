-- reconcile (SPEC §7): each kind (drift, missing, orphan) and action (corrected, flagged), tolerance
-- boundaries, the run record and its NOTIFY payload, a camelCase ledger, who covers which tenants,
-- retention, and the errors with their SQLSTATEs. Drift is made by hand, as a superuser, behind the
-- balance trigger's back; the ids are fixed so the output can show them.
BEGIN;
INSERT INTO inventory.organizations (id, name) VALUES
    ('c1000000-0000-4000-8000-000000000001', 'Recon A'),
    ('c2000000-0000-4000-8000-000000000002', 'Recon B');
SET LOCAL app.org_id = 'c1000000-0000-4000-8000-000000000001';
INSERT INTO inventory.items (id, sku, name) VALUES
    ('c1000000-0000-4000-a000-000000000001', 'R-1', 'one'), ('c1000000-0000-4000-a000-000000000002', 'R-2', 'two'),
    ('c1000000-0000-4000-a000-000000000003', 'R-3', 'three'), ('c1000000-0000-4000-a000-000000000004', 'R-4', 'four'),
    ('c1000000-0000-4000-a000-000000000005', 'R-5', 'five');
INSERT INTO inventory.locations (id, code, name) VALUES ('c1000000-0000-4000-b000-000000000001', 'RL', 'Recon shelf');
SELECT count(inventory.post(i.id, 'c1000000-0000-4000-b000-000000000001', q)) AS posted
  FROM (VALUES ('c1000000-0000-4000-a000-000000000001'::uuid, 10), ('c1000000-0000-4000-a000-000000000002', 5),
               ('c1000000-0000-4000-a000-000000000003', 7), ('c1000000-0000-4000-a000-000000000004', 2)) AS i(id, q);
SET LOCAL app.org_id = 'c2000000-0000-4000-8000-000000000002';
INSERT INTO inventory.items (id, sku, name) VALUES ('c2000000-0000-4000-a000-000000000001', 'G-1', 'other tenant');
INSERT INTO inventory.locations (id, code, name) VALUES ('c2000000-0000-4000-b000-000000000001', 'GL', 'Other shelf');
SELECT inventory.post('c2000000-0000-4000-a000-000000000001', 'c2000000-0000-4000-b000-000000000001', 3) > 0 AS posted;
SET LOCAL app.org_id = '';

-- Nothing wrong yet: no findings, a clean run.
SELECT count(*) AS findings FROM inventory.reconcile(only_org => 'c1000000-0000-4000-8000-000000000001');
SELECT ledgers, keys_checked, findings, corrected, flagged, status, notification, org_id, tolerance, auto_correct, run_by
  FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;

-- Break it: R-1 off by exactly the tolerance, R-2 by just more, R-3's balance row gone, a balance row
-- for R-5 that no ledger row explains, and R-4's item deleted with the foreign keys off.
UPDATE inventory.balances SET qty = qty + 0.01 WHERE item_id = 'c1000000-0000-4000-a000-000000000001';
UPDATE inventory.balances SET qty = qty - 0.011 WHERE item_id = 'c1000000-0000-4000-a000-000000000002';
DELETE FROM inventory.balances WHERE item_id = 'c1000000-0000-4000-a000-000000000003';
INSERT INTO inventory.balances (org_id, item_id, location_id, lot_id, qty, last_ledger_id, updated_at)
VALUES ('c1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-a000-000000000005',
        'c1000000-0000-4000-b000-000000000001', NULL, 0.004, 0, now());
SET LOCAL session_replication_role = replica;
DELETE FROM inventory.items WHERE id = 'c1000000-0000-4000-a000-000000000004';
SET LOCAL session_replication_role = origin;
-- The other tenant drifts too; a run for tenant A must leave it alone.
UPDATE inventory.balances SET qty = qty + 1 WHERE item_id = 'c2000000-0000-4000-a000-000000000001';

CREATE TEMP VIEW sku AS SELECT id, sku FROM inventory.items;
GRANT SELECT ON sku TO app_user;
SELECT coalesce(s.sku, 'deleted item') AS item, r.ledger, r.org_id, r.key ? 'lot_id' AS key_has_lot,
       r.expected, r.actual, r.variance, r.kind, r.action
  FROM inventory.reconcile(only_org => 'c1000000-0000-4000-8000-000000000001') r
  LEFT JOIN sku s ON s.id = (r.key->>'item_id')::uuid
 ORDER BY item;
-- R-1 is corrected by the difference, R-5's stray row is gone; the rest is as it was.
SELECT s.sku, b.qty FROM inventory.balances b LEFT JOIN sku s ON s.id = b.item_id
 WHERE b.org_id = 'c1000000-0000-4000-8000-000000000001' ORDER BY 1;
SELECT ledgers, keys_checked, findings, corrected, flagged, status,
       notification - 'run_id' AS notification, (notification->>'run_id')::bigint = id AS payload_names_run
  FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;
SELECT count(*) AS recorded_findings FROM inventory.reconcile_findings
 WHERE run_id = (SELECT max(id) FROM inventory.reconcile_runs);

-- A wider tolerance corrects R-2 by the difference and recreates R-3's row; the orphan whose item is
-- gone is never corrected (deleting it is an operator's decision).
SELECT coalesce(s.sku, 'deleted item') AS item, r.expected, r.actual, r.variance, r.kind, r.action
  FROM inventory.reconcile(only_org => 'c1000000-0000-4000-8000-000000000001', tolerance => 10) r
  LEFT JOIN sku s ON s.id = (r.key->>'item_id')::uuid ORDER BY item;
SELECT s.sku, b.qty, b.last_ledger_id > 0 AS has_last_ledger_id FROM inventory.balances b LEFT JOIN sku s ON s.id = b.item_id
 WHERE b.org_id = 'c1000000-0000-4000-8000-000000000001' ORDER BY 1;
-- auto_correct => false flags everything, whatever the tolerance.
UPDATE inventory.balances SET qty = qty + 0.001 WHERE item_id = 'c1000000-0000-4000-a000-000000000001';
SELECT coalesce(s.sku, 'deleted item') AS item, r.variance, r.kind, r.action
  FROM inventory.reconcile(only_org => 'c1000000-0000-4000-8000-000000000001', auto_correct => false) r
  LEFT JOIN sku s ON s.id = (r.key->>'item_id')::uuid ORDER BY item;
-- Tolerance 0 corrects nothing but exact zeros; the default 0.01 then takes the 0.001.
SELECT r.kind, r.action FROM inventory.reconcile(only_org => 'c1000000-0000-4000-8000-000000000001', tolerance => 0) r
 WHERE r.key->>'item_id' = 'c1000000-0000-4000-a000-000000000001';
SELECT r.kind, r.action FROM inventory.reconcile(only_org => 'c1000000-0000-4000-8000-000000000001') r
 WHERE r.key->>'item_id' = 'c1000000-0000-4000-a000-000000000001';
-- Tenant B was never touched by tenant A's runs.
SELECT qty AS tenant_b_balance FROM inventory.balances WHERE item_id = 'c2000000-0000-4000-a000-000000000001';

-- An application role covers its own tenant only, and sees only its own tenant's runs: not this
-- administrator's run over all tenants, nor its findings in tenant B.
SELECT count(*) AS all_tenant_findings, count(DISTINCT org_id) AS tenants FROM inventory.reconcile(auto_correct => false);
SET LOCAL ROLE app_user;
SELECT regress.try($$SELECT inventory.reconcile()$$) AS without_tenant;
SET LOCAL app.org_id = 'c1000000-0000-4000-8000-000000000001';
SELECT regress.try($$SELECT inventory.reconcile(only_org => 'c2000000-0000-4000-8000-000000000002')$$) AS other_tenant;
SELECT coalesce(s.sku, 'deleted item') AS item, r.kind, r.action
  FROM inventory.reconcile() r LEFT JOIN sku s ON s.id = (r.key->>'item_id')::uuid;
SELECT count(*) AS visible_runs, count(*) FILTER (WHERE org_id IS DISTINCT FROM 'c1000000-0000-4000-8000-000000000001') AS other_runs
  FROM inventory.reconcile_runs;
SELECT count(*) FILTER (WHERE org_id <> 'c1000000-0000-4000-8000-000000000001') AS other_findings FROM inventory.reconcile_findings;
RESET ROLE;
SET LOCAL app.org_id = '';
-- The migration fallback inventory.default_org_id never narrows an administrator's run (a pg_cron job
-- during a migration): it still covers every tenant, and the run says so (org_id NULL).
SET LOCAL inventory.default_org_id = 'c1000000-0000-4000-8000-000000000001';
SELECT count(DISTINCT org_id) AS tenants_covered_with_fallback FROM inventory.reconcile(auto_correct => false);
SELECT org_id IS NULL AS run_covers_all_tenants FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;
-- An application role under the fallback acts as that tenant, and covers that tenant only.
SET LOCAL ROLE app_user;
SELECT count(DISTINCT org_id) AS app_tenants_with_fallback, min(org_id::text) AS app_tenant
  FROM inventory.reconcile(auto_correct => false);
RESET ROLE;
SET LOCAL inventory.default_org_id = '';
-- The administrator, with no tenant context, covers every tenant: tenant B's drift is flagged now.
SELECT r.org_id, r.variance, r.kind, r.action FROM inventory.reconcile(tolerance => 0.5) r
 WHERE r.org_id = 'c2000000-0000-4000-8000-000000000002';
ROLLBACK;

-- An application's own camelCase ledger, tracked: findings name its own columns.
BEGIN;
CREATE TABLE public."StockMove" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "itemId" text NOT NULL,
    "lotCode" text,
    "qtyCanonical" numeric NOT NULL
);
SELECT inventory.track_balances('public."StockMove"', 'public."StockLevel"', ARRAY['itemId', 'lotCode'], 'qtyCanonical');
INSERT INTO public."StockMove" ("itemId", "lotCode", "qtyCanonical") VALUES ('sku-1', NULL, 4), ('sku-1', 'L1', 1), ('sku-2', NULL, 2);
UPDATE public."StockLevel" SET qty = qty - 0.005 WHERE "itemId" = 'sku-1' AND "lotCode" IS NULL;
DELETE FROM public."StockLevel" WHERE "itemId" = 'sku-2';
SELECT ledger, org_id, key, expected, actual, variance, kind, action
  FROM inventory.reconcile('public."StockMove"', tolerance => 2) ORDER BY key->>'itemId';
SELECT "itemId", "lotCode", qty FROM public."StockLevel" ORDER BY 1, 2 NULLS FIRST;
SELECT count(*) AS findings_after FROM inventory.reconcile('public."StockMove"');
-- A ledger without tenants cannot be reconciled for one tenant.
SELECT regress.try($$SELECT inventory.reconcile('public."StockMove"', only_org => 'c1000000-0000-4000-8000-000000000001')$$) AS one_tenant;
ROLLBACK;

-- Retention: runs older than the given age go, with their findings.
BEGIN;
SELECT count(*) FROM inventory.reconcile();
UPDATE inventory.reconcile_runs SET started_at = now() - interval '100 days'
 WHERE id = (SELECT max(id) FROM inventory.reconcile_runs);
SELECT count(*) FROM inventory.reconcile();
SELECT inventory.prune_reconcile_runs() AS pruned, inventory.prune_reconcile_runs('90 days') AS pruned_again;
SELECT count(*) FILTER (WHERE started_at < now() - interval '90 days') AS old_runs_left FROM inventory.reconcile_runs;
ROLLBACK;

-- Errors, each with its SQLSTATE.
SELECT regress.try($$SELECT inventory.reconcile(tolerance => -0.01)$$) AS negative_tolerance;
SELECT regress.try($$SELECT inventory.reconcile(tolerance => NULL)$$) AS null_tolerance;
SELECT regress.try(format('SELECT inventory.reconcile(tolerance => %L)', t)) AS non_finite_tolerance FROM unnest(ARRAY['NaN', 'Infinity']) t;
SELECT regress.try($$SELECT inventory.reconcile(auto_correct => NULL)$$) AS null_auto_correct;
SELECT regress.try($$SELECT inventory.reconcile('pg_class')$$) AS untracked_table;
SELECT regress.try($$SELECT inventory.prune_reconcile_runs('-1 day')$$) AS negative_age;
SET ROLE stranger;
SELECT regress.try($$SELECT inventory.reconcile()$$) AS stranger;
SELECT regress.try($$SELECT inventory.schedule_reconcile()$$) AS stranger_schedules;
RESET ROLE;
-- pg_cron lives in another database here (cron.database_name = postgres): a clear error names it.
SELECT regress.try($$SELECT inventory.schedule_reconcile()$$) AS schedule_without_pg_cron;
SELECT regress.try($$SELECT inventory.unschedule_reconcile()$$) AS unschedule_without_pg_cron;
