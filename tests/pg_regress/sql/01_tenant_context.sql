-- app.org_id, current_org_id() and require_org_id() (SPEC §2).
SELECT id AS acme_id FROM regress.orgs WHERE name = 'acme' \gset

-- No tenant: current_org_id() is NULL and require_org_id() refuses with 42501 naming app.org_id.
SELECT inventory.current_org_id() IS NULL AS no_tenant;
SELECT regress.try('SELECT inventory.require_org_id()');
\set VERBOSITY default
SELECT inventory.require_org_id();

BEGIN;
-- '' means no tenant, and never fails.
SET LOCAL app.org_id = '';
SELECT inventory.current_org_id() IS NULL AS empty_is_no_tenant;
SELECT set_config('app.org_id', '', true) = '' AS set_config_empty_ok;
-- A UUID, in any case, reads back in canonical form.
SET LOCAL app.org_id = '0B0C8A2E-6F0E-4B8E-9A51-3A1F4F1A2B3C';
SELECT inventory.current_org_id(), inventory.require_org_id();
SELECT set_config('app.org_id', :'acme_id', true) IS NOT NULL AS set_config_ok;
SELECT inventory.current_org_id() = :'acme_id' AS is_acme;
ROLLBACK;

-- Anything that is not a UUID is refused when it is set, with 22P02; the old value stays.
BEGIN;
SET LOCAL app.org_id = :'acme_id';
SELECT regress.try($$SET LOCAL app.org_id = 'acme'$$);
SELECT regress.try($$SELECT set_config('app.org_id', 'not-a-uuid', true)$$);
SELECT regress.try($$SELECT set_config('app.org_id', '0b0c8a2e6f0e4b8e9a513a1f4f1a2b3c', true)$$);
SELECT regress.try($$SELECT set_config('app.org_id', ' 0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c', true)$$);
SELECT regress.try($$SELECT set_config('app.org_id', $q$' OR '1'='1$q$, true)$$);
SELECT inventory.current_org_id() = :'acme_id' AS still_acme;
ROLLBACK;
\set VERBOSITY sqlstate
SET app.org_id = 'acme';
\set VERBOSITY default
SET app.org_id = 'acme';

-- Other names under inventory. are reserved: a typo is an error, not a silent placeholder.
SELECT regress.try($$SET LOCAL inventory.default_org = ''$$);

-- inventory.default_org_id: the tenant of a session that sets none; app.org_id wins over it.
BEGIN;
SET LOCAL inventory.default_org_id = :'acme_id';
SELECT inventory.current_org_id() = :'acme_id' AS default_applies;
SET LOCAL app.org_id = '0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c';
SELECT inventory.current_org_id() AS app_org_id_wins;
SET LOCAL app.org_id = '';
SELECT inventory.current_org_id() = :'acme_id' AS default_again;
SELECT regress.try($$SET LOCAL inventory.default_org_id = 'acme'$$);
ROLLBACK;
-- Only a superuser may set it.
SET ROLE app_user;
SELECT regress.try(format('SET inventory.default_org_id = %L', :'acme_id'));
SELECT regress.try(format('SELECT set_config(%L, %L, true)', 'inventory.default_org_id', :'acme_id'));
SELECT inventory.current_org_id() IS NULL AS no_tenant_for_app_user;
RESET ROLE;

SET ROLE app_user;
SELECT regress.try(format('ALTER ROLE app_user SET inventory.default_org_id = %L', :'acme_id'));
RESET ROLE;

-- The way an operator sets it: ALTER DATABASE … SET, read by every new session, application roles
-- included; RESET makes everything fail closed again.
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET inventory.default_org_id = :'acme_id';
\c
SELECT inventory.current_org_id() = :'acme_id' AS default_from_alter_database;
SET ROLE app_user;
SELECT inventory.current_org_id() = :'acme_id' AS app_user_gets_default;
SELECT name FROM inventory.organizations;
RESET ROLE;
ALTER DATABASE :"db" RESET inventory.default_org_id;
\c
SELECT inventory.current_org_id() IS NULL AS fails_closed_again;
SET ROLE app_user;
SELECT count(*) AS organizations_visible FROM inventory.organizations;
RESET ROLE;
