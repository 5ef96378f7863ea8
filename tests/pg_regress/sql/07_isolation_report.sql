-- isolation_report (SPEC §4): each finding, on a schema built to leak in every way the report knows,
-- and a clean bill for the extension's own schema and for tables made tenant-scoped by the helper.
BEGIN;
CREATE SCHEMA leaky;
-- Row-level security off, then not forced.
CREATE TABLE leaky.rls_off (org_id uuid NOT NULL, id int, PRIMARY KEY (org_id, id));
CREATE TABLE leaky.not_forced (org_id uuid NOT NULL, id int, PRIMARY KEY (org_id, id));
ALTER TABLE leaky.not_forced ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON leaky.not_forced USING (org_id = inventory.current_org_id())
    WITH CHECK (org_id = inventory.current_org_id());
-- Row-level security with no policy (also on a table that is not a tenant table).
CREATE TABLE leaky.no_policy (org_id uuid NOT NULL, id int, PRIMARY KEY (org_id, id));
ALTER TABLE leaky.no_policy ENABLE ROW LEVEL SECURITY;
ALTER TABLE leaky.no_policy FORCE ROW LEVEL SECURITY;
CREATE TABLE leaky.settings (key text PRIMARY KEY);
ALTER TABLE leaky.settings ENABLE ROW LEVEL SECURITY;
-- Policies without WITH CHECK: for all commands (USING applies) and for INSERT (nothing applies).
CREATE TABLE leaky.no_check (org_id uuid NOT NULL, id int, PRIMARY KEY (org_id, id));
ALTER TABLE leaky.no_check ENABLE ROW LEVEL SECURITY;
ALTER TABLE leaky.no_check FORCE ROW LEVEL SECURITY;
CREATE POLICY all_cmds ON leaky.no_check USING (org_id = inventory.current_org_id());
CREATE POLICY ins ON leaky.no_check FOR INSERT;
CREATE POLICY ins2 ON leaky.no_check AS RESTRICTIVE FOR UPDATE USING (true);
-- A nullable org column, a global UNIQUE, a primary key without the org column, and a table whose
-- org column is not called org_id (known from the helper's registry).
CREATE TABLE leaky.items (org_id uuid, id int PRIMARY KEY, sku text UNIQUE);
CREATE UNIQUE INDEX items_lower_sku ON leaky.items (lower(sku));
ALTER TABLE leaky.items ENABLE ROW LEVEL SECURITY;
ALTER TABLE leaky.items FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON leaky.items USING (org_id = inventory.current_org_id()) WITH CHECK (org_id = inventory.current_org_id());
-- A foreign key between tenant tables without the org columns.
CREATE TABLE leaky.moves (org_id uuid NOT NULL, id int, item_id int REFERENCES leaky.items (id), PRIMARY KEY (org_id, id));
ALTER TABLE leaky.moves ENABLE ROW LEVEL SECURITY;
ALTER TABLE leaky.moves FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON leaky.moves USING (org_id = inventory.current_org_id()) WITH CHECK (org_id = inventory.current_org_id());
-- Views: a definer's view, a view over it, an invoker's view (fine), and a materialized view.
CREATE VIEW leaky.items_view AS SELECT * FROM leaky.items;
CREATE VIEW leaky.items_view_view AS SELECT id FROM leaky.items_view;
CREATE VIEW leaky.items_invoker WITH (security_invoker = true) AS SELECT * FROM leaky.items;
CREATE MATERIALIZED VIEW leaky.items_mv AS SELECT * FROM leaky.items;
-- SECURITY DEFINER functions with and without a fixed search_path.
CREATE FUNCTION leaky.count_items() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM leaky.items';
CREATE FUNCTION leaky.count_items_pinned() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM leaky.items';
-- A role that logs in and bypasses row-level security.
CREATE ROLE leaky_bypass LOGIN BYPASSRLS;
-- A permissive policy beside the tenant policy: permissive policies are OR-ed, so it opens every row.
CREATE TABLE leaky.open_notes (org_id uuid NOT NULL, id int, PRIMARY KEY (org_id, id));
ALTER TABLE leaky.open_notes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON leaky.open_notes USING (org_id = inventory.current_org_id()) WITH CHECK (org_id = inventory.current_org_id());
CREATE POLICY peek ON leaky.open_notes FOR SELECT TO leaky_bypass, app_user USING (true);

SELECT * FROM inventory.isolation_report(ARRAY['leaky']);

-- After the helper, the tables it fixed report at most the primary-key warning.
SELECT t AS fixed, count(*) AS changes
  FROM unnest(ARRAY['leaky.rls_off', 'leaky.not_forced', 'leaky.no_policy']::regclass[]) t,
       inventory.enable_tenant_isolation(t)
 GROUP BY t ORDER BY t::text;
SELECT severity, object, problem FROM inventory.isolation_report(ARRAY['leaky'])
 WHERE object ~ '(rls_off|not_forced|no_policy)' ;
ROLLBACK;

-- The extension's own schema is clean: no errors (and no warnings but the roles').
SELECT severity, object, problem FROM inventory.isolation_report(ARRAY['inventory']) WHERE object !~ '^role ';
-- A Prisma-style schema made tenant-scoped by the helper reports nothing but primary-key warnings.
BEGIN;
CREATE SCHEMA app;
CREATE TABLE app."Item" (id text PRIMARY KEY, sku text UNIQUE);
CREATE TABLE app."Ledger" (id bigint PRIMARY KEY, "itemId" text REFERENCES app."Item" (id));
SELECT count(*) > 0 AS changed FROM inventory.enable_tenant_isolation('app."Item"', 'orgId');
SELECT count(*) > 0 AS changed FROM inventory.enable_tenant_isolation('app."Ledger"', 'orgId');
SELECT severity, object, problem FROM inventory.isolation_report(ARRAY['app']);
-- The whole database (default: every schema but the system ones) has no errors.
SELECT count(*) AS errors FROM inventory.isolation_report() WHERE severity = 'error';
ROLLBACK;
-- Only administrators run it.
SET ROLE app_user;
SELECT regress.try('SELECT * FROM inventory.isolation_report()');
RESET ROLE;
-- A history table that tenants can only read (forced row-level security, SELECT policies only) may
-- hold rows of no tenant, as inventory.reconcile_runs does; once any policy lets tenants write, the
-- table is held to every rule again.
BEGIN;
CREATE SCHEMA hist;
CREATE TABLE hist.runs (id bigint PRIMARY KEY, org_id uuid);
ALTER TABLE hist.runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON hist.runs FOR SELECT USING (org_id = (SELECT inventory.current_org_id()));
SELECT count(*) AS read_only_findings FROM inventory.isolation_report(ARRAY['hist']) WHERE object LIKE '%hist.runs%';
-- But a permissive policy that lets a tenant read more than its own rows is an error there too.
CREATE POLICY everyone_reads ON hist.runs FOR SELECT USING (true);
SELECT severity, object, problem, fix FROM inventory.isolation_report(ARRAY['hist']) WHERE object LIKE '%hist.runs%' ORDER BY 1, 2;
DROP POLICY everyone_reads ON hist.runs;
CREATE POLICY tenant_write ON hist.runs FOR INSERT WITH CHECK (org_id = (SELECT inventory.current_org_id()));
SELECT severity, object, problem FROM inventory.isolation_report(ARRAY['hist']) WHERE object LIKE '%hist.runs%' ORDER BY 1, 2;
ROLLBACK;

-- Permissive policies that appear after the helper: on a tenant table, on a partition (a query can name
-- it directly; its org column "orgId" is known from the partitioned table's registration), and the
-- tenant policy itself altered to let everything through. Each is an error with the SQL that closes
-- it; the helper, called again, refuses the table with a foreign policy and replaces its own.
BEGIN;
CREATE SCHEMA later;
CREATE TABLE later.events (id bigint, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE later.events_2026 PARTITION OF later.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE later.notes (id int PRIMARY KEY);
SELECT count(*) > 0 AS changed FROM inventory.enable_tenant_isolation('later.events', 'orgId');
SELECT count(*) > 0 AS changed FROM inventory.enable_tenant_isolation('later.notes');
SELECT count(*) AS errors FROM inventory.isolation_report(ARRAY['later']) WHERE severity = 'error';
CREATE POLICY audit ON later.events_2026 FOR SELECT TO app_user USING (true);
CREATE POLICY support ON later.notes USING (org_id IS NOT NULL);
ALTER POLICY tenant_isolation ON later.notes USING (true);
SELECT * FROM inventory.isolation_report(ARRAY['later']) WHERE severity = 'error';
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('later.events', 'orgId')$$);
DROP POLICY support ON later.notes;
SELECT inventory.enable_tenant_isolation('later.notes');
SELECT object FROM inventory.isolation_report(ARRAY['later']) WHERE severity = 'error';
ROLLBACK;
