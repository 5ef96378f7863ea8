-- Organizations, API keys and the administrators' functions (SPEC §3).
SELECT id AS acme_id, api_key AS acme_key FROM regress.orgs WHERE name = 'acme' \gset
SELECT id AS globex_id FROM regress.orgs WHERE name = 'globex' \gset

-- The table as SPEC §3 describes it.
SELECT column_name, data_type, is_nullable, column_default
  FROM information_schema.columns
 WHERE table_schema = 'inventory' AND table_name = 'organizations'
 ORDER BY ordinal_position;
SELECT name, subdomain, active FROM inventory.organizations ORDER BY name;

-- Keys are stored as a SHA-256 hash and a non-secret prefix, never in clear text.
SELECT k.key_prefix = left(o.api_key, 12) AS prefix_is_first_12,
       k.key_hash = sha256(convert_to(o.api_key, 'UTF8')) AS hash_is_sha256,
       octet_length(k.key_hash) AS hash_bytes
  FROM inventory.organization_api_keys k JOIN regress.orgs o ON o.id = k.org_id
 ORDER BY o.name;
SELECT count(*) AS keys_stored_in_clear
  FROM inventory.organization_api_keys k JOIN regress.orgs o ON o.id = k.org_id
 WHERE strpos(k.key_hash::text, o.api_key) > 0 OR strpos(k.key_prefix, o.api_key) > 0;

-- create_organization: bad input gets 22023, a taken subdomain 23505; nothing is created.
BEGIN;
SELECT count(*) AS orgs_before FROM inventory.organizations;
SELECT regress.try($$SELECT inventory.create_organization(NULL)$$);
SELECT regress.try($$SELECT inventory.create_organization('   ')$$);
SELECT regress.try($$SELECT inventory.create_organization(repeat('x', 201))$$);
SELECT regress.try($$SELECT inventory.create_organization('Bad', 'no spaces')$$);
SELECT regress.try($$SELECT inventory.create_organization('Bad', '-dash')$$);
SELECT regress.try($$SELECT inventory.create_organization('Bad', '')$$);
SELECT regress.try($$SELECT inventory.create_organization('Bad', repeat('a', 64))$$);
SELECT regress.try($$SELECT inventory.create_organization('Bad', 'x''; DROP TABLE inventory.organizations; --')$$);
SELECT regress.try($$SELECT inventory.create_organization('Copycat', 'ACME')$$);
SELECT count(*) AS orgs_after FROM inventory.organizations;
-- Subdomains are stored lower-case; names are trimmed.
SELECT org_id AS hooli_id FROM inventory.create_organization('  Hooli  ', ' Hooli-EU ') \gset
SELECT name, subdomain FROM inventory.organizations WHERE id = :'hooli_id';
ROLLBACK;

-- rotate_api_key: the new key works, the old one stops at once.
BEGIN;
SELECT inventory.rotate_api_key(:'acme_id') AS new_key \gset
SELECT :'new_key' ~ '^inv_[0-9a-f]{64}$' AS new_key_shape, :'new_key' <> :'acme_key' AS key_changed;
SELECT regress.try(format('SELECT inventory.set_org_by_api_key(%L)', :'acme_key')) AS old_key;
SELECT inventory.set_org_by_api_key(:'new_key') = :'acme_id' AS new_key_works;
SELECT regress.try('SELECT inventory.rotate_api_key(gen_random_uuid())') AS unknown_org;
SELECT regress.try('SELECT inventory.rotate_api_key(NULL)') AS null_org;
ROLLBACK;

-- set_organization_active: an inactive organization cannot be entered, and can be reactivated.
BEGIN;
SELECT inventory.set_organization_active(:'acme_id', false);
SELECT active FROM inventory.organizations WHERE id = :'acme_id';
SELECT regress.try(format('SELECT inventory.set_org(%L)', :'acme_id')) AS enter_inactive;
SELECT inventory.set_organization_active(:'acme_id', true);
SELECT inventory.set_org(:'acme_id') = :'acme_id' AS enter_reactivated;
SELECT regress.try('SELECT inventory.set_organization_active(gen_random_uuid(), false)') AS unknown_org;
SELECT regress.try(format('SELECT inventory.set_organization_active(%L, NULL)', :'acme_id')) AS null_active;
ROLLBACK;

-- Row-level security: an application role sees its own organization's row only, never a key hash.
BEGIN;
SET LOCAL ROLE app_user;
SELECT count(*) AS rows_without_tenant FROM inventory.organizations;
SELECT inventory.set_org(:'acme_id') IS NOT NULL AS entered;
SELECT name, subdomain, active FROM inventory.organizations;
SELECT count(*) AS globex_visible FROM inventory.organizations WHERE id = :'globex_id';
SELECT regress.try('SELECT key_hash FROM inventory.organization_api_keys');
SELECT regress.try('SELECT count(*) FROM inventory.organization_api_keys');
SELECT regress.try($$UPDATE inventory.organizations SET name = 'Mine now'$$);
SELECT regress.try($$INSERT INTO inventory.organizations (name) VALUES ('Sneaky')$$);
SELECT regress.try('DELETE FROM inventory.organizations');
ROLLBACK;

-- The administrators' functions are not executable by PUBLIC, nor granted by grant_app_access.
BEGIN;
SET LOCAL ROLE app_user;
SELECT regress.try($$SELECT inventory.create_organization('Mine')$$);
SELECT regress.try(format('SELECT inventory.rotate_api_key(%L)', :'acme_id'));
SELECT regress.try(format('SELECT inventory.set_organization_active(%L, false)', :'acme_id'));
ROLLBACK;

-- An application role that holds them can manage only its current tenant's organization.
BEGIN;
SET LOCAL ROLE app_admin;
SELECT regress.try(format('SELECT inventory.rotate_api_key(%L)', :'acme_id')) AS no_tenant;
SELECT inventory.set_org(:'acme_id') IS NOT NULL AS entered_acme;
SELECT regress.try(format('SELECT inventory.rotate_api_key(%L)', :'globex_id')) AS other_tenant;
SELECT regress.try(format('SELECT inventory.set_organization_active(%L, false)', :'globex_id')) AS other_tenant;
SELECT inventory.rotate_api_key(:'acme_id') ~ '^inv_' AS own_tenant_rotated;
SELECT inventory.set_organization_active(:'acme_id', false);
RESET ROLE;
SELECT name, active FROM inventory.organizations ORDER BY name;
ROLLBACK;
