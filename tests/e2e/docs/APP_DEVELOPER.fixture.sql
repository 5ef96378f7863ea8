-- The database docs/APP_DEVELOPER.md describes: acme with a fixed id, globex, and an application role.
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name, subdomain)
    VALUES ('3f2504e0-4f89-41d3-9a0c-0305e82c3301', 'Acme Corp', 'acme');
SELECT inventory.rotate_api_key('3f2504e0-4f89-41d3-9a0c-0305e82c3301') IS NOT NULL AS acme_has_a_key;
SELECT org_id IS NOT NULL AS globex_created FROM inventory.create_organization('Globex', 'globex');
CREATE ROLE docs_app NOLOGIN;
SELECT inventory.grant_app_access('docs_app');
