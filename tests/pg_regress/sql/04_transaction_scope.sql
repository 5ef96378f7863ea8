-- The tenant is transaction-local: nothing survives COMMIT, ROLLBACK, an aborted transaction or
-- DISCARD ALL, so a pooled connection (PgBouncer in transaction mode) never hands a tenant on.
SELECT id AS acme_id FROM regress.orgs WHERE name = 'acme' \gset
SET ROLE app_user;

BEGIN;
SELECT inventory.set_org(:'acme_id') = :'acme_id' AS entered;
COMMIT;
SELECT inventory.current_org_id() IS NULL AS nothing_after_commit;

BEGIN;
SET LOCAL app.org_id = :'acme_id';
SELECT inventory.current_org_id() = :'acme_id' AS entered;
ROLLBACK;
SELECT inventory.current_org_id() IS NULL AS nothing_after_rollback;

BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS entered;
SELECT 1 / 0;
COMMIT;
SELECT inventory.current_org_id() IS NULL AS nothing_after_abort;

BEGIN;
SELECT set_config('app.org_id', :'acme_id', true) IS NOT NULL AS entered;
SAVEPOINT before_error;
SELECT inventory.set_org(gen_random_uuid());
ROLLBACK TO SAVEPOINT before_error;
SELECT inventory.current_org_id() = :'acme_id' AS kept_after_failed_switch;
COMMIT;

-- Outside a transaction block, set_org lasts for its own statement only.
SELECT inventory.set_org(:'acme_id') = :'acme_id' AS entered_in_autocommit;
SELECT inventory.current_org_id() IS NULL AS nothing_in_next_statement;
-- With a statement's own transaction it covers that statement.
SELECT inventory.set_org(:'acme_id') IS NOT NULL AND inventory.current_org_id() = :'acme_id' AS same_statement;

-- A plain session-level SET is the application's own choice: it does outlive a transaction, which is
-- why the docs tell applications to use SET LOCAL or set_org. DISCARD ALL (PgBouncer's
-- server_reset_query) clears it.
SET app.org_id = :'acme_id';
SELECT inventory.current_org_id() = :'acme_id' AS session_set_persists;
DISCARD ALL;
SELECT inventory.current_org_id() IS NULL AS nothing_after_discard_all;
SELECT current_user AS role_after_discard_all;
