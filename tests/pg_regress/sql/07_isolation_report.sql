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
CREATE POLICY tenant_write ON hist.runs FOR INSERT WITH CHECK (org_id = (SELECT inventory.current_org_id()));
SELECT severity, object, problem FROM inventory.isolation_report(ARRAY['hist']) WHERE object LIKE '%hist.runs%' ORDER BY 1, 2;
ROLLBACK;
