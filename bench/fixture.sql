-- The data the ledger benchmarks share: one organization (also the database's default tenant), 100 items
-- and 10 locations with fixed ids (1,000 keys), and bench.ledger_like(name), which makes a table of
-- inventory.ledger's columns, indexes, defaults and foreign keys without any of its triggers, and
-- bench.balances_like(name), the same for inventory.balances (a balance table that no trigger writes).
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('00000000-0000-4000-8000-0000000000be', 'Bench');
ALTER DATABASE postgres SET app.org_id = '00000000-0000-4000-8000-0000000000be';
SET app.org_id = '00000000-0000-4000-8000-0000000000be';
INSERT INTO inventory.items (id, sku, name)
SELECT ('00000000-0000-4000-a000-' || lpad(i::text, 12, '0'))::uuid, 'SKU-' || i, 'Item ' || i FROM generate_series(1, 100) i;
INSERT INTO inventory.locations (id, code, name)
SELECT ('00000000-0000-4000-b000-' || lpad(i::text, 12, '0'))::uuid, 'L' || i, 'Location ' || i FROM generate_series(1, 10) i;
CREATE SCHEMA bench;
CREATE FUNCTION bench.ledger_like(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE bench.%I (LIKE inventory.ledger INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)', name);
    EXECUTE format('ALTER TABLE bench.%I ADD FOREIGN KEY (org_id) REFERENCES inventory.organizations (id),
        ADD FOREIGN KEY (org_id, item_id) REFERENCES inventory.items (org_id, id),
        ADD FOREIGN KEY (org_id, location_id) REFERENCES inventory.locations (org_id, id),
        ADD FOREIGN KEY (org_id, lot_id) REFERENCES inventory.lots (org_id, id)', name);
END $$;
CREATE FUNCTION bench.balances_like(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE bench.%I (LIKE inventory.balances INCLUDING DEFAULTS INCLUDING INDEXES)', name);
    EXECUTE format('ALTER TABLE bench.%I ADD FOREIGN KEY (org_id) REFERENCES inventory.organizations (id)', name);
END $$;
-- The trigger-free limit of issue 13: a bare ledger and a balance table of inventory.balances' shape,
-- both written by one statement (a writable CTE, see bench/balances.sh and bench/instructions.sh).
SELECT bench.ledger_like('limit_ledger');
SELECT bench.balances_like('limit_balances');
