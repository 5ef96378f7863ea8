-- Shared fixtures for the SQL contract suite; later files rely on them.
-- Roles are cluster-wide and the cluster is a scratch one, started for this suite.
-- The upgrade test (tests/e2e/upgrade.sh) runs the suite in a database updated from 0.1.0, where the
-- extension is there already: IF NOT EXISTS, and its notice kept out of the output.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS inventory_ext;
RESET client_min_messages;
CREATE ROLE app_user NOLOGIN;      -- an application role, given grant_app_access
CREATE ROLE app_admin NOLOGIN;     -- an application role that also holds the administrators' functions
CREATE ROLE stranger NOLOGIN;      -- a role nobody granted anything
SELECT inventory.grant_app_access('app_user');
SELECT inventory.grant_app_access('app_admin');
GRANT EXECUTE ON FUNCTION inventory.rotate_api_key(uuid), inventory.set_organization_active(uuid, boolean)
    TO app_admin;

-- regress.try(sql) runs a statement and returns 'ok' or 'SQLSTATE: message', so that the expected
-- output shows each error's code next to its words.
CREATE SCHEMA regress;
GRANT USAGE ON SCHEMA regress TO PUBLIC;
CREATE FUNCTION regress.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Three tenants whose ids and keys later files read from here (they are random, so the expected
-- output never shows them).
CREATE TABLE regress.orgs (name text PRIMARY KEY, id uuid NOT NULL, api_key text NOT NULL);
INSERT INTO regress.orgs SELECT 'acme', org_id, api_key FROM inventory.create_organization('Acme Corp', 'acme');
INSERT INTO regress.orgs SELECT 'globex', org_id, api_key FROM inventory.create_organization('Globex', 'globex');
INSERT INTO regress.orgs SELECT 'initech', org_id, api_key FROM inventory.create_organization('Initech');
GRANT SELECT ON regress.orgs TO PUBLIC;
SELECT name, api_key ~ '^inv_[0-9a-f]{64}$' AS key_shape FROM regress.orgs ORDER BY name;
