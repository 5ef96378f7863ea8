-- The database the adversarial suite attacks, built by a superuser: two tenants, tables owned by a
-- non-superuser (adv_owner) and made tenant-scoped by the helper, an application role (adv_app), and
-- the objects an owner might add: a view and a SECURITY DEFINER function.
\set ON_ERROR_STOP 1
CREATE EXTENSION inventory_ext;
CREATE EXTENSION pgtap;
INSERT INTO inventory.organizations (id, name, subdomain) VALUES
    ('aaaaaaaa-0000-4000-8000-000000000001', 'Tenant A', 'tenant-a'),
    ('bbbbbbbb-0000-4000-8000-000000000002', 'Tenant B', 'tenant-b');
CREATE ROLE adv_owner NOLOGIN;
CREATE ROLE adv_app NOLOGIN;
SELECT inventory.grant_app_access('adv_owner');
SELECT inventory.grant_app_access('adv_app');
CREATE SCHEMA adv AUTHORIZATION adv_owner;
GRANT USAGE ON SCHEMA adv TO adv_app;

CREATE TABLE adv.items (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), sku text NOT NULL UNIQUE, name text);
CREATE TABLE adv.moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        item_id uuid NOT NULL REFERENCES adv.items (id), qty numeric NOT NULL);
CREATE TABLE adv.stock (id bigint, year int, item_id uuid, qty numeric, PRIMARY KEY (id, year)) PARTITION BY LIST (year);
CREATE TABLE adv.stock_2026 PARTITION OF adv.stock FOR VALUES IN (2026);
CREATE TABLE adv.stock_2027 PARTITION OF adv.stock FOR VALUES IN (2027);
ALTER TABLE adv.items OWNER TO adv_owner;
ALTER TABLE adv.moves OWNER TO adv_owner;
ALTER TABLE adv.stock OWNER TO adv_owner;
ALTER TABLE adv.stock_2026 OWNER TO adv_owner;
ALTER TABLE adv.stock_2027 OWNER TO adv_owner;
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation('adv.items');
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation('adv.moves');
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation('adv.stock');
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA adv TO adv_app;

INSERT INTO adv.items (org_id, id, sku, name) VALUES
    ('aaaaaaaa-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000a', 'A-1', 'bolt'),
    ('aaaaaaaa-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000b', 'A-2', 'nut'),
    ('bbbbbbbb-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-00000000000a', 'B-SECRET', 'secret');
INSERT INTO adv.moves (org_id, item_id, qty) VALUES
    ('aaaaaaaa-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000a', 5),
    ('bbbbbbbb-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-00000000000a', 9);
INSERT INTO adv.stock (org_id, id, year, item_id, qty) VALUES
    ('aaaaaaaa-0000-4000-8000-000000000001', 1, 2026, 'a0000000-0000-4000-8000-00000000000a', 5),
    ('bbbbbbbb-0000-4000-8000-000000000002', 2, 2026, 'b0000000-0000-4000-8000-00000000000a', 9),
    ('bbbbbbbb-0000-4000-8000-000000000002', 3, 2027, 'b0000000-0000-4000-8000-00000000000a', 1);

-- adv.moves is a tracked ledger; tenant B's balance drifts, and an administrator's run over all tenants
-- records it (a run and a finding that tenant A must never see).
SELECT inventory.track_balances('adv.moves', 'adv.move_balances', ARRAY['item_id'], 'qty');
UPDATE adv.move_balances SET qty = qty + 1 WHERE org_id = 'bbbbbbbb-0000-4000-8000-000000000002';
SELECT inventory.reconcile_run(auto_correct => false) > 0 AS recorded;

-- What an owner may add: a view (it runs with the owner's privileges) and a SECURITY DEFINER function.
SET ROLE adv_owner;
CREATE VIEW adv.all_items AS SELECT org_id, sku FROM adv.items;
CREATE FUNCTION adv.count_all_items() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM adv.items';
GRANT SELECT ON adv.all_items TO adv_app;
RESET ROLE;
