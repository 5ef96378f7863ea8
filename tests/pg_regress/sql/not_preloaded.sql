-- Without shared_preload_libraries = 'inventory_ext' the library loads on first use, and the tenant
-- context is still checked: a bad value set before the library loaded fails with 22P02 when used,
-- and a non-superuser cannot smuggle in inventory.default_org_id.
SELECT 'inventory_ext' <> ALL (string_to_array(current_setting('shared_preload_libraries'), ',')) AS not_preloaded;
CREATE EXTENSION inventory_ext;
CREATE ROLE lazy_app NOLOGIN;
SELECT inventory.grant_app_access('lazy_app');
SELECT org_id AS acme_id FROM inventory.create_organization('Acme Corp', 'acme') \gset

-- A new session: the library is not loaded yet, so app.org_id is a placeholder PostgreSQL does not check.
\c
SET app.org_id = 'not-a-uuid';
\set VERBOSITY sqlstate
SELECT inventory.current_org_id();
\set VERBOSITY default
SELECT inventory.current_org_id();
RESET app.org_id;
-- Once loaded, the check applies at SET time, as with preloading.
SELECT inventory.current_org_id() IS NULL AS no_tenant;
SET app.org_id = 'still-not-a-uuid';

-- A new session: set_org and SET LOCAL work as with preloading, and end with the transaction.
\c
SET ROLE lazy_app;
BEGIN;
SET LOCAL app.org_id = :'acme_id';
SELECT inventory.current_org_id() = :'acme_id' AS set_local_before_load;
COMMIT;
SELECT inventory.current_org_id() IS NULL AS nothing_after_commit;
BEGIN;
SELECT inventory.set_org(:'acme_id') = :'acme_id' AS set_org;
SELECT inventory.require_org_id() = :'acme_id' AS required;
ROLLBACK;
SELECT inventory.current_org_id() IS NULL AS nothing_after_rollback;

-- A new session: a non-superuser's inventory.default_org_id set before the library loaded is dropped
-- (with a WARNING) when it loads, because only a superuser may set it.
\c
SET ROLE lazy_app;
SET inventory.default_org_id = :'acme_id';
SELECT inventory.current_org_id() IS NULL AS default_not_taken;
SHOW inventory.default_org_id;

-- The hardened context needs the library preloaded: without it, its functions say so (55000).
RESET ROLE;
\set VERBOSITY default
SELECT inventory.revoke_tenant_switch('public');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory.grant_tenant_switch('lazy_app'::regrole);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
-- A non-superuser sets app.org_id before the library loads: the placeholder keeps who set it, and the
-- value survives the load because PUBLIC holds SET on the parameter (the default).
\c
SET ROLE lazy_app;
SET app.org_id = :'acme_id';
SELECT inventory.current_org_id() = :'acme_id' AS kept_after_load;
