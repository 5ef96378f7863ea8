-- inventory_ext finalize: runs last in CREATE EXTENSION, after the Rust functions exist.

-- Row-level security on the extension's own tables, forced so that the table owner is held to it too
-- (superusers and BYPASSRLS roles still pass: that is PostgreSQL's rule, see docs/SECURITY.md).
ALTER TABLE inventory.organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE inventory.organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inventory.organizations
    USING (id = (SELECT inventory.current_org_id()))
    WITH CHECK (id = (SELECT inventory.current_org_id()));

ALTER TABLE inventory.organization_api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE inventory.organization_api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inventory.organization_api_keys
    USING (org_id = (SELECT inventory.current_org_id()))
    WITH CHECK (org_id = (SELECT inventory.current_org_id()));

-- What an application role needs, and nothing more. The extension creates no roles; an administrator
-- calls this once per application role. regrole's text form is already a quoted identifier.
CREATE FUNCTION inventory.grant_app_access(role regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22023',
            HINT = 'Pass the application role, e.g. inventory.grant_app_access(''app'').';
    END IF;
    -- A regrole can outlive its role (an OID kept from before DROP ROLE): its text is then a number.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = role) THEN
        RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = '42704',
            HINT = 'Pass an existing role.';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA inventory TO %s', role);
    EXECUTE format('GRANT SELECT ON inventory.organizations TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        inventory.current_org_id(), inventory.require_org_id(),
        inventory.set_org(uuid), inventory.set_org_by_subdomain(text), inventory.set_org_by_api_key(text),
        inventory.resolve_org(uuid, text, text),
        inventory.post(uuid, uuid, numeric, uuid, text, text), inventory.transfer(uuid, uuid, uuid, numeric, uuid, text),
        inventory.on_hand(uuid, uuid),
        inventory.reconcile(regclass, uuid, numeric, boolean), inventory.reconcile_run(regclass, uuid, numeric, boolean) TO %s', role);
    -- The built-in schema: items, locations and lots are the application's to maintain; balances are
    -- read-only (the balance trigger writes them). The ledger is append-only: UPDATE and DELETE are
    -- granted only so that an attempt meets the guard's 55000 and its advice (post a reversing entry)
    -- rather than a bare permission error; the guard refuses every one.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON inventory.items, inventory.locations, inventory.lots TO %s', role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON inventory.ledger TO %s', role);
    EXECUTE format('GRANT SELECT ON inventory.balances, inventory.stock TO %s', role);
    -- Reconciliation of the role's own tenant, and its history.
    EXECUTE format('GRANT SELECT ON inventory.reconcile_runs, inventory.reconcile_findings TO %s', role);
END
$$;
COMMENT ON FUNCTION inventory.grant_app_access(regrole) IS
    'Grants a role what an application needs on the inventory schema and API, and nothing more.';

-- Descriptions for \df+ and GUI tools.
COMMENT ON FUNCTION inventory.current_org_id() IS
    'The tenant of this transaction (app.org_id, else inventory.default_org_id), or NULL.';
COMMENT ON FUNCTION inventory.require_org_id() IS
    'The tenant of this transaction, or error 42501 when none is set.';
COMMENT ON FUNCTION inventory.set_org(uuid) IS
    'Makes an active organization the tenant of the current transaction (else 28000).';
COMMENT ON FUNCTION inventory.set_org_by_subdomain(text) IS
    'Like set_org, found by subdomain.';
COMMENT ON FUNCTION inventory.set_org_by_api_key(text) IS
    'Like set_org, found by API key.';
COMMENT ON FUNCTION inventory.resolve_org(uuid, text, text) IS
    'Request resolution: explicit id, then the Host header''s subdomain, then the API key, then inventory.default_org_id.';
COMMENT ON FUNCTION inventory.create_organization(text, text) IS
    'Administrators: creates an organization; returns its id and its API key, shown only this once.';
COMMENT ON FUNCTION inventory.rotate_api_key(uuid) IS
    'Administrators: replaces an organization''s API key; the old key stops working at once.';
COMMENT ON FUNCTION inventory.set_organization_active(uuid, boolean) IS
    'Administrators: activates or deactivates an organization.';

-- What CREATE EXTENSION changed outside this database, so that DROP EXTENSION undoes just that
-- (src/cluster_changes.rs). Not dumped: a restore's CREATE EXTENSION decides afresh.
CREATE TABLE inventory.cluster_changes (
    change     text PRIMARY KEY,
    made_as    text NOT NULL,
    made_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE inventory.cluster_changes IS
    'Cluster-wide changes this database''s CREATE EXTENSION made (e.g. the SET grant on app.org_id), undone by DROP EXTENSION.';

-- Choosing a tenant: app.org_id is a SUSET setting, so setting it takes the SET privilege on it. Every
-- role has it by default, given here the first time the extension is created in this cluster;
-- inventory.revoke_tenant_switch takes it away (docs/SECURITY.md). Parameter privileges belong to the
-- cluster: an entry for app.org_id means someone decided already (the default, or the hardened
-- context, which revoke_tenant_switch keeps recorded), so a later CREATE EXTENSION (another database,
-- a restore) leaves it as it is.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_parameter_acl WHERE parname = 'app.org_id') THEN
        GRANT SET ON PARAMETER app.org_id TO PUBLIC;
        INSERT INTO inventory.cluster_changes (change, made_as)
        SELECT 'GRANT SET ON PARAMETER app.org_id TO PUBLIC', paracl::text
          FROM pg_catalog.pg_parameter_acl WHERE parname = 'app.org_id';
    END IF;
END
$$;

-- Undoes what CREATE EXTENSION changed outside this database; the event trigger below calls it at the
-- start of DROP EXTENSION inventory_ext. The PUBLIC grant goes only when this database's CREATE
-- EXTENSION made it and nobody changed it since (a hardened or hand-tuned cluster keeps its setting);
-- pg_cron jobs of this database that call inventory.reconcile_run go (they could only fail afterwards).
CREATE FUNCTION inventory.undo_cluster_changes() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobs integer := 0;
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        -- Planned only when it runs, so the function exists without pg_cron.
        SELECT count(cron.unschedule(j.jobid)) INTO jobs FROM cron.job j
         WHERE j.database = current_database() AND j.command ~ 'inventory\.reconcile_run\(';
        IF jobs > 0 THEN
            RAISE NOTICE 'unscheduled % pg_cron job(s) that ran inventory.reconcile_run in this database', jobs;
        END IF;
    END IF;
    IF EXISTS (SELECT FROM inventory.cluster_changes c JOIN pg_parameter_acl a ON a.parname = 'app.org_id'
                WHERE c.change = 'GRANT SET ON PARAMETER app.org_id TO PUBLIC' AND a.paracl::text = c.made_as) THEN
        REVOKE SET ON PARAMETER app.org_id FROM PUBLIC;
        RAISE NOTICE 'revoked the SET privilege on app.org_id from PUBLIC that CREATE EXTENSION granted'
            USING HINT = 'If another database of this cluster still uses inventory_ext, run SELECT inventory.grant_tenant_switch(''public'') there.';
    END IF;
END
$$;
CREATE EVENT TRIGGER inventory_drop_extension ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION inventory.on_ddl_command_start();
-- DDL that would make a tracked ledger's balances drift is refused (src/balances/ddl.rs). Every
-- command: what it touched is known from the relcache invalidations it sent, whatever its form.
CREATE EVENT TRIGGER inventory_tracked_ddl_begin ON ddl_command_start
    EXECUTE FUNCTION inventory.on_ddl_begin();
CREATE EVENT TRIGGER inventory_tracked_ddl ON ddl_command_end
    EXECUTE FUNCTION inventory.on_ddl_command_end();
COMMENT ON FUNCTION inventory.revoke_tenant_switch(regrole) IS
    'Hardened context: the role may no longer choose its tenant (SET app.org_id, set_org, …), only enter one with an API key.';
COMMENT ON FUNCTION inventory.revoke_tenant_switch(text) IS
    'The same, by name; revoke_tenant_switch(''public'') hardens every role without its own grant.';
COMMENT ON FUNCTION inventory.grant_tenant_switch(regrole) IS
    'Gives a role back the right to choose its tenant.';
COMMENT ON FUNCTION inventory.grant_tenant_switch(text) IS
    'The same, by name; grant_tenant_switch(''public'') undoes revoke_tenant_switch(''public'').';

-- Nothing is executable by PUBLIC unless listed here. The readers stay public because row-level
-- security policies call current_org_id() with the privileges of whoever queries a tenant table.
REVOKE ALL ON ALL ROUTINES IN SCHEMA inventory FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.current_org_id(), inventory.require_org_id() TO PUBLIC;
