-- The database docs/APP_DEVELOPER.md describes: acme with a fixed id, globex, and an application role.
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name, subdomain)
    VALUES ('3f2504e0-4f89-41d3-9a0c-0305e82c3301', 'Acme Corp', 'acme');
SELECT inventory.rotate_api_key('3f2504e0-4f89-41d3-9a0c-0305e82c3301') IS NOT NULL AS acme_has_a_key;
SELECT org_id IS NOT NULL AS globex_created FROM inventory.create_organization('Globex', 'globex');
CREATE ROLE docs_app NOLOGIN;
SELECT inventory.grant_app_access('docs_app');
SET app.org_id = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
INSERT INTO inventory.items (id, sku, name) VALUES ('b0000000-0000-4000-8000-000000000001', 'BOLT-8', 'Bolt M8');
INSERT INTO inventory.locations (id, code, name) VALUES
    ('10000000-0000-4000-8000-0000000000a1', 'A1', 'Aisle 1'), ('10000000-0000-4000-8000-0000000000b1', 'B1', 'Bay 1');
RESET app.org_id;
