-- The tenant policy evaluates current_org_id() once per query (an InitPlan), and the planner uses an
-- index on the org column for it: on 100,000 rows over 50 tenants, a tenant's query is an index scan.
BEGIN;
CREATE TABLE plan_items (id bigint PRIMARY KEY, sku text NOT NULL);
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation('plan_items');
INSERT INTO inventory.organizations (id, name)
SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'Tenant ' || i FROM generate_series(1, 50) i;
INSERT INTO plan_items (org_id, id, sku)
SELECT ('00000000-0000-4000-9000-' || lpad((i % 50 + 1)::text, 12, '0'))::uuid, i, 'sku-' || i
  FROM generate_series(1, 100000) i;
ANALYZE plan_items;
GRANT SELECT ON plan_items TO app_user;
SET LOCAL track_functions = 'all';
SET LOCAL ROLE app_user;
SET LOCAL app.org_id = '00000000-0000-4000-9000-000000000007';
EXPLAIN (COSTS OFF) SELECT id, sku FROM plan_items WHERE sku LIKE 'sku-1%';
EXPLAIN (COSTS OFF) SELECT count(*) FROM plan_items;
SELECT count(*) AS rows_of_tenant_7 FROM plan_items;
RESET ROLE;
-- The count above called current_org_id() once, not once per row (100,000 rows were candidates).
SELECT calls FROM pg_stat_xact_user_functions WHERE schemaname = 'inventory' AND funcname = 'current_org_id';
ROLLBACK;
