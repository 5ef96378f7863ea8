-- Entering a tenant: set_org, set_org_by_subdomain, set_org_by_api_key and resolve_org (SPEC §2).
-- Run as the application role, as an application would.
SELECT id AS acme_id, api_key AS acme_key FROM regress.orgs WHERE name = 'acme' \gset
SELECT id AS globex_id, api_key AS globex_key FROM regress.orgs WHERE name = 'globex' \gset
SELECT id AS initech_id, api_key AS initech_key FROM regress.orgs WHERE name = 'initech' \gset
SET ROLE app_user;

-- Each returns the tenant and sets it for the transaction.
BEGIN;
SELECT inventory.set_org(:'acme_id') = :'acme_id' AS set_org;
SELECT inventory.current_org_id() = :'acme_id' AS context_is_acme;
SELECT inventory.set_org_by_subdomain('globex') = :'globex_id' AS by_subdomain;
SELECT inventory.current_org_id() = :'globex_id' AS context_is_globex;
SELECT inventory.set_org_by_subdomain('  GLOBEX ') = :'globex_id' AS by_subdomain_any_case;
SELECT inventory.set_org_by_api_key(:'initech_key') = :'initech_id' AS by_api_key;
SELECT inventory.current_org_id() = :'initech_id' AS context_is_initech;
COMMIT;

-- One error, 28000, with one message, for an unknown or inactive organization, a wrong key and an unknown
-- subdomain: the error tells nothing about which exists. The context is left as it was.
BEGIN;
SELECT inventory.set_org(:'acme_id') IS NOT NULL AS entered_acme;
SELECT regress.try('SELECT inventory.set_org(gen_random_uuid())') AS unknown_id;
SELECT regress.try('SELECT inventory.set_org(NULL)') AS null_id;
SELECT regress.try($$SELECT inventory.set_org_by_subdomain('nobody')$$) AS unknown_subdomain;
SELECT regress.try($$SELECT inventory.set_org_by_subdomain('not a label')$$) AS malformed_subdomain;
SELECT regress.try($$SELECT inventory.set_org_by_subdomain(NULL)$$) AS null_subdomain;
SELECT regress.try(format('SELECT inventory.set_org_by_api_key(%L)', 'inv_' || repeat('0', 64))) AS wrong_key;
SELECT regress.try(format('SELECT inventory.set_org_by_api_key(%L)', left(:'acme_key', 67) || 'x')) AS corrupt_key;
SELECT regress.try($$SELECT inventory.set_org_by_api_key('')$$) AS empty_key;
SELECT regress.try($$SELECT inventory.set_org_by_api_key($q$' OR '1'='1$q$)$$) AS injection_key;
SELECT regress.try(format('SELECT inventory.set_org_by_api_key(%L)', repeat('x', 100000))) AS huge_key;
SELECT inventory.current_org_id() = :'acme_id' AS still_acme;
ROLLBACK;
RESET ROLE;
BEGIN;
SELECT inventory.set_organization_active(:'globex_id', false);
SET LOCAL ROLE app_user;
SELECT regress.try(format('SELECT inventory.set_org(%L)', :'globex_id')) AS inactive_id;
SELECT regress.try($$SELECT inventory.set_org_by_subdomain('globex')$$) AS inactive_subdomain;
SELECT regress.try(format('SELECT inventory.set_org_by_api_key(%L)', :'globex_key')) AS inactive_key;
ROLLBACK;
SET ROLE app_user;

-- resolve_org: explicit id, then the host's subdomain, then the API key, then inventory.default_org_id.
BEGIN;
SELECT inventory.resolve_org(:'acme_id', 'globex.example.com', :'initech_key') = :'acme_id' AS id_first;
SELECT inventory.resolve_org(NULL, 'globex.example.com', :'initech_key') = :'globex_id' AS host_second;
SELECT inventory.resolve_org(host => 'Globex.Example.com:8443') = :'globex_id' AS host_case_and_port;
SELECT inventory.resolve_org(host => 'globex.example.com.') = :'globex_id' AS host_trailing_dot;
SELECT inventory.resolve_org(NULL, 'example.com', :'initech_key') = :'initech_id' AS two_labels_no_subdomain;
SELECT inventory.resolve_org(NULL, 'localhost:3000', :'initech_key') = :'initech_id' AS localhost_no_subdomain;
SELECT inventory.resolve_org(NULL, '10.0.0.7:443', :'initech_key') = :'initech_id' AS ipv4_no_subdomain;
SELECT inventory.resolve_org(NULL, '[::1]:443', :'initech_key') = :'initech_id' AS ipv6_no_subdomain;
SELECT inventory.resolve_org(NULL, 'www.example.com', :'initech_key') = :'initech_id' AS unknown_subdomain_falls_through;
SELECT inventory.resolve_org(api_key => :'acme_key') = :'acme_id' AS key_third;
SELECT inventory.current_org_id() = :'acme_id' AS context_set;
COMMIT;
BEGIN;
-- A credential that is given must be valid: no fall-back past a bad id or key.
SELECT regress.try(format('SELECT inventory.resolve_org(gen_random_uuid(), %L, %L)', 'acme.example.com', :'acme_key')) AS bad_id;
SELECT regress.try(format('SELECT inventory.resolve_org(NULL, NULL, %L)', 'inv_' || repeat('1', 64))) AS bad_key;
SELECT regress.try($$SELECT inventory.resolve_org(NULL, 'www.example.com', NULL)$$) AS nothing_found;
SELECT regress.try('SELECT inventory.resolve_org()') AS nothing_given;
-- A malformed host is an error of its own (22023), whatever else is given.
SELECT regress.try(format('SELECT inventory.resolve_org(NULL, %L, %L)', 'acme.example.com:http', :'acme_key')) AS bad_port;
SELECT regress.try($$SELECT inventory.resolve_org(host => 'acme example.com')$$) AS bad_label;
SELECT regress.try($$SELECT inventory.resolve_org(host => 'acme.example.com/x; DROP TABLE t')$$) AS injection_host;
SELECT regress.try(format('SELECT inventory.resolve_org(host => %L)', repeat('a.', 200) || 'com')) AS too_long;
SELECT inventory.current_org_id() IS NULL AS still_no_tenant;
ROLLBACK;
RESET ROLE;

-- An inactive organization's subdomain is refused rather than passed over: its users must not land in
-- another tenant.
BEGIN;
SELECT inventory.set_organization_active(:'globex_id', false);
SELECT regress.try(format('SELECT inventory.resolve_org(NULL, %L, %L)', 'globex.example.com', :'acme_key')) AS inactive_subdomain;
ROLLBACK;

-- inventory.default_org_id is resolve_org's last resort, validated like the others.
BEGIN;
SET LOCAL inventory.default_org_id = :'initech_id';
SELECT inventory.resolve_org() = :'initech_id' AS default_last;
SELECT inventory.resolve_org(NULL, 'www.example.com') = :'initech_id' AS default_after_unknown_host;
SELECT inventory.resolve_org(api_key => :'acme_key') = :'acme_id' AS key_before_default;
SET LOCAL inventory.default_org_id = '0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c';
SELECT regress.try('SELECT inventory.resolve_org()') AS default_unknown_org;
ROLLBACK;
