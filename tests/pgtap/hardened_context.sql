-- The hardened tenant context (SPEC §2): after revoke_tenant_switch('public'), the application role
-- cannot choose its tenant by any route PostgreSQL offers, can still enter one with its API key, and
-- cannot trade that key's tenant for another within the transaction. All in one transaction that is
-- rolled back, so the cluster-wide parameter privilege is as it was afterwards.
\set A '''aaaaaaaa-0000-4000-8000-000000000001'''
\set B '''bbbbbbbb-0000-4000-8000-000000000002'''
BEGIN;
SELECT plan(36);
SELECT inventory.revoke_tenant_switch('public');
SELECT inventory.rotate_api_key(:A) AS a_key \gset
SELECT inventory.rotate_api_key(:B) AS b_key \gset
-- A schema of its own, so that CREATE FUNCTION fails on the SET clause and not on a missing privilege.
CREATE SCHEMA evil AUTHORIZATION adv_app;
-- An inactive organization with a subdomain, for the subdomain oracle.
INSERT INTO inventory.organizations (id, name, subdomain, active)
VALUES ('cccccccc-0000-4000-8000-000000000003', 'Tenant C', 'tenant-c', false);
-- A function someone privileged created with a SET clause, executable by the application.
CREATE FUNCTION public.as_tenant_a() RETURNS text LANGUAGE sql SET app.org_id = 'aaaaaaaa-0000-4000-8000-000000000001'
    AS $$ SELECT current_setting('app.org_id') $$;
GRANT EXECUTE ON FUNCTION public.as_tenant_a() TO adv_app;
SET LOCAL ROLE adv_app;

SELECT throws_ok(format('SET app.org_id = %L', :A), '42501', NULL, 'SET is refused');
SELECT throws_ok(format('SET LOCAL app.org_id = %L', :A), '42501', NULL, 'SET LOCAL is refused');
SELECT throws_ok(format('SELECT set_config(%L, %L, true)', 'app.org_id', :A), '42501', NULL, 'set_config(…, true) is refused');
SELECT throws_ok(format('SELECT set_config(%L, %L, false)', 'app.org_id', :A), '42501', NULL, 'set_config(…, false) is refused');
SELECT throws_ok('RESET app.org_id', '42501', NULL, 'RESET is refused');
SELECT throws_ok(format('SET app.org_id TO DEFAULT'), '42501', NULL, 'SET … TO DEFAULT is refused');
SELECT throws_ok(format('ALTER ROLE adv_app SET app.org_id = %L', :A), '42501', NULL, 'ALTER ROLE … SET on itself is refused');
SELECT throws_ok(format('CREATE FUNCTION evil.f() RETURNS int LANGUAGE sql SET app.org_id = %L AS %L', :A, 'SELECT 1'),
                 '42501', NULL, 'a function it creates with a SET clause is refused');
SELECT throws_ok('SELECT public.as_tenant_a()', '42501', NULL, 'a SET clause of someone else''s function does not set it either');
SELECT throws_ok(format('SELECT inventory.set_org(%L)', :A), '42501', NULL, 'set_org is refused');
SELECT throws_ok($$SELECT inventory.set_org_by_subdomain('tenant-a')$$, '42501', NULL, 'set_org_by_subdomain is refused');
SELECT throws_ok(format('SELECT inventory.resolve_org(%L)', :A), '42501', NULL, 'resolve_org by id is refused');
SELECT throws_ok($$SELECT inventory.resolve_org(host => 'tenant-a.example.com')$$, '42501', NULL, 'resolve_org by host is refused');
-- No oracle: an active, an inactive and an unknown subdomain give one SQLSTATE and one message.
\set refused '\'this role may not choose its tenant (inventory.revoke_tenant_switch)\''
SELECT throws_ok($$SELECT inventory.resolve_org(host => 'tenant-a.example.com')$$, '42501', :refused,
                 'resolve_org: an active subdomain');
SELECT throws_ok($$SELECT inventory.resolve_org(host => 'tenant-c.example.com')$$, '42501', :refused,
                 'resolve_org: an inactive subdomain, the same answer');
SELECT throws_ok($$SELECT inventory.resolve_org(host => 'nobody.example.com')$$, '42501', :refused,
                 'resolve_org: an unknown subdomain, the same answer');
SELECT throws_ok($$SELECT inventory.set_org_by_subdomain('tenant-c')$$, '42501', :refused,
                 'set_org_by_subdomain: an inactive subdomain, the same answer');
SELECT throws_ok($$SELECT inventory.set_org_by_subdomain('nobody')$$, '42501', :refused,
                 'set_org_by_subdomain: an unknown subdomain, the same answer');
SELECT is(inventory.current_org_id(), NULL, 'after every refused attempt there is still no tenant');
SELECT is((SELECT count(*) FROM adv.items), 0::bigint, 'and nothing is visible');

-- The API key still works, once per transaction; resolve_org with a host and the key is the key's.
SELECT is(inventory.resolve_org(host => 'tenant-b.example.com', api_key => :'a_key'), :A::uuid,
          'resolve_org(host, api_key): a role that may not choose is identified by its key alone');
SELECT is(inventory.set_org_by_api_key(:'a_key'), :A::uuid, 'set_org_by_api_key enters its tenant');
SELECT is((SELECT count(*) FROM adv.items), 2::bigint, 'and sees that tenant''s rows');
SELECT throws_ok(format('SELECT inventory.set_org_by_api_key(%L)', :'b_key'), '42501', NULL,
                 'another tenant''s key does not switch tenants within the transaction');
SELECT is(inventory.set_org_by_api_key(:'a_key'), :A::uuid, 'the same key again is fine');
SELECT throws_ok(format('SELECT inventory.resolve_org(api_key => %L)', :'b_key'), '42501', NULL,
                 'nor does resolve_org with the other key');
SELECT throws_ok(format('SET LOCAL app.org_id = %L', :B), '42501', NULL, 'and SET LOCAL cannot switch either');
SELECT is(inventory.current_org_id(), :A::uuid, 'the tenant is still the key''s');

-- Whatever empties the setting, the transaction stays bound to the key's tenant.
RESET ALL;
SELECT is(inventory.current_org_id(), NULL, 'RESET ALL empties app.org_id (PostgreSQL resets every setting)');
SELECT throws_ok(format('SELECT inventory.set_org_by_api_key(%L)', :'b_key'), '42501', NULL,
                 'after RESET ALL another tenant''s key still does not switch tenants');
SELECT throws_ok(format('SELECT inventory.resolve_org(api_key => %L)', :'b_key'), '42501', NULL,
                 'nor does resolve_org with it');
SELECT is(inventory.set_org_by_api_key(:'a_key'), :A::uuid, 'the transaction''s own key enters its tenant again');
SAVEPOINT inner_work;
RESET ALL;
RELEASE SAVEPOINT inner_work;
SELECT throws_ok(format('SELECT inventory.set_org_by_api_key(%L)', :'b_key'), '42501', NULL,
                 'a RESET ALL inside a released savepoint changes nothing');
SELECT is(inventory.set_org_by_api_key(:'a_key'), :A::uuid, 'the tenant is the key''s to the end of the transaction');

-- Granting it back to this role lets it choose again; the functions are for superusers only.
RESET ROLE;
SELECT inventory.grant_tenant_switch('adv_app'::regrole);
SET LOCAL ROLE adv_app;
SELECT lives_ok(format('SET LOCAL app.org_id = %L', :B), 'after grant_tenant_switch the role chooses its tenant again');
SELECT throws_ok($$SELECT inventory.revoke_tenant_switch('public')$$, '42501', NULL,
                 'an application role cannot call revoke_tenant_switch');
SELECT * FROM finish();
ROLLBACK;
