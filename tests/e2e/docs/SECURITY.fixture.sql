-- The database docs/SECURITY.md's SQL blocks run in (as a superuser, in a preloaded cluster): one
-- tenant with items, the application role web_app, and billing_worker, a role trusted to choose.
CREATE EXTENSION inventory_ext;
DO $$ BEGIN CREATE ROLE web_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE billing_worker NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
SELECT inventory.grant_app_access('web_app');
INSERT INTO inventory.organizations (id, name, subdomain) VALUES ('00000000-0000-4000-8000-0000000000ac', 'Acme', 'acme-sec');
SET app.org_id = '00000000-0000-4000-8000-0000000000ac';
INSERT INTO inventory.items (sku, name) VALUES ('S-1', 'one'), ('S-2', 'two');
RESET app.org_id;
