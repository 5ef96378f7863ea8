-- The built-in ledger (SPEC §5): post, transfer, on_hand, the balances the trigger keeps, the
-- negative-stock guard, the append-only guard, and each error with its SQLSTATE.
INSERT INTO inventory.organizations (id, name, subdomain) VALUES
    ('11111111-0000-4000-8000-000000000001', 'Ledger A', 'ledger-a'),
    ('22222222-0000-4000-8000-000000000002', 'Ledger B', 'ledger-b');
SET ROLE app_user;
BEGIN;
SELECT inventory.set_org('11111111-0000-4000-8000-000000000001') IS NOT NULL AS tenant_a;
INSERT INTO inventory.items (id, sku, name) VALUES
    ('a1000000-0000-4000-8000-000000000001', 'BOLT', 'Bolt'),
    ('a1000000-0000-4000-8000-000000000002', 'NUT', 'Nut');
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES
    ('a1000000-0000-4000-8000-000000000003', 'CONSIGNED', 'Consigned stock', true);
INSERT INTO inventory.locations (id, code, name) VALUES
    ('a2000000-0000-4000-8000-000000000001', 'A1', 'Aisle 1'),
    ('a2000000-0000-4000-8000-000000000002', 'B1', 'Bay 1');
INSERT INTO inventory.lots (id, item_id, code, expires_on) VALUES
    ('a3000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000001', 'L-2026', '2027-01-31');
\set bolt '''a1000000-0000-4000-8000-000000000001'''
\set nut '''a1000000-0000-4000-8000-000000000002'''
\set consigned '''a1000000-0000-4000-8000-000000000003'''
\set a1 '''a2000000-0000-4000-8000-000000000001'''
\set b1 '''a2000000-0000-4000-8000-000000000002'''
\set lot '''a3000000-0000-4000-8000-000000000001'''
-- Nothing posted yet: on_hand is 0, not NULL.
SELECT inventory.on_hand(:bolt) AS nothing_posted;
-- post returns the ledger id; the balance follows in the same transaction.
SELECT inventory.post(:bolt, :a1, 10, reason => 'receipt', reference => 'PO-1') > 0 AS posted;
SELECT inventory.post(:bolt, :a1, 2.5) > 0 AS posted_fraction;
SELECT inventory.post(:bolt, :a1, 4, :lot) > 0 AS posted_lot;
SELECT inventory.on_hand(:bolt) AS all_locations, inventory.on_hand(:bolt, :a1) AS at_a1, inventory.on_hand(:bolt, :b1) AS at_b1;
-- NULL lots are one balance row (NULLS NOT DISTINCT), the lot its own.
SELECT location_id = :a1 AS at_a1, lot_id, qty, last_ledger_id = (SELECT max(id) FROM inventory.ledger l
       WHERE l.item_id = b.item_id AND l.location_id = b.location_id AND l.lot_id IS NOT DISTINCT FROM b.lot_id) AS last_id_ok
  FROM inventory.balances b WHERE item_id = :bolt ORDER BY lot_id NULLS FIRST;
-- transfer: two entries, both or neither; the ids of both come back.
SELECT cardinality(inventory.transfer(:bolt, :a1, :b1, 3)) AS entries;
SELECT inventory.on_hand(:bolt, :a1) AS at_a1, inventory.on_hand(:bolt, :b1) AS at_b1, inventory.on_hand(:bolt) AS total;
SELECT qty, reason FROM inventory.ledger WHERE reason LIKE 'transfer%' ORDER BY id;
-- Bad input: 22023, and nothing is posted.
SELECT regress.try(format('SELECT inventory.post(%L, %L, 0)', :bolt, :a1));
SELECT regress.try(format('SELECT inventory.post(%L, %L, NULL)', :bolt, :a1));
-- numeric has NaN and ±Infinity: one such row would poison its balance for good.
SELECT regress.try(format('SELECT inventory.post(%L, %L, %L)', :bolt, :a1, q)) FROM unnest(ARRAY['NaN', 'Infinity', '-Infinity']) q;
SELECT regress.try(format('SELECT inventory.transfer(%L, %L, %L, 0)', :bolt, :a1, :b1));
SELECT regress.try(format('SELECT inventory.transfer(%L, %L, %L, -1)', :bolt, :a1, :b1));
SELECT regress.try(format('SELECT inventory.transfer(%L, %L, %L, 1)', :bolt, :a1, :a1));
SELECT regress.try(format('INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (%L, %L, 0)', :bolt, :a1));
SELECT regress.try(format('INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (%L, %L, 1), (%L, %L, 0)', :bolt, :a1, :nut, :a1));
-- A direct INSERT of NULL meets the column's NOT NULL first (PostgreSQL's 23502).
SELECT regress.try(format('INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (%L, %L, NULL)', :bolt, :a1));
-- Unknown item or location: the composite foreign keys refuse it (23503).
SELECT regress.try(format('SELECT inventory.post(gen_random_uuid(), %L, 1)', :a1));
-- Negative stock: refused with 23514 unless the item allows it, also for direct INSERTs and for
-- transfers (both entries or neither).
SELECT regress.try(format('SELECT inventory.post(%L, %L, -100)', :bolt, :a1));
SELECT regress.try(format('INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (%L, %L, -100)', :nut, :b1));
SELECT regress.try(format('SELECT inventory.transfer(%L, %L, %L, 100)', :bolt, :b1, :a1));
SELECT inventory.on_hand(:bolt, :a1) AS at_a1, inventory.on_hand(:bolt, :b1) AS at_b1;
SELECT inventory.post(:consigned, :a1, -5) > 0 AS negative_allowed;
SELECT inventory.on_hand(:consigned) AS consigned;
-- Taking exactly what is there is fine.
SELECT inventory.post(:bolt, :b1, -3) > 0 AS emptied;
SELECT inventory.on_hand(:bolt, :b1) AS at_b1;
-- A multi-row INSERT is one statement: one grouped upsert, every key exact.
INSERT INTO inventory.ledger (item_id, location_id, qty)
SELECT CASE WHEN i % 2 = 0 THEN :bolt ELSE :nut END::uuid, :a1, 1 FROM generate_series(1, 1000) i;
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1, inventory.on_hand(:nut, :a1) AS nut_a1;
-- Balances equal the ledger's sums for every key.
SELECT count(*) AS keys_that_differ FROM (
    SELECT item_id, location_id, lot_id, sum(qty) AS qty FROM inventory.ledger GROUP BY 1, 2, 3) l
    FULL JOIN inventory.balances b
      ON b.item_id = l.item_id AND b.location_id = l.location_id AND b.lot_id IS NOT DISTINCT FROM l.lot_id
 WHERE l.qty IS DISTINCT FROM b.qty;
-- Append-only: UPDATE and DELETE meet the guard (55000), for the application role too.
SELECT regress.try('UPDATE inventory.ledger SET qty = qty * 2');
SELECT regress.try('DELETE FROM inventory.ledger');
-- Balances are read-only for applications.
SELECT regress.try('UPDATE inventory.balances SET qty = 1000');
SELECT regress.try(format('INSERT INTO inventory.balances (item_id, location_id, qty, last_ledger_id, updated_at) VALUES (%L, %L, 1, 1, now())', :nut, :b1));
COMMIT;

-- Another tenant sees none of it, and its postings are its own.
BEGIN;
SELECT inventory.set_org('22222222-0000-4000-8000-000000000002') IS NOT NULL AS tenant_b;
SELECT count(*) AS ledger_rows, (SELECT count(*) FROM inventory.balances) AS balances FROM inventory.ledger;
SELECT inventory.on_hand(:bolt) AS a_bolt_seen_from_b;
SELECT regress.try(format('SELECT inventory.post(%L, %L, 1)', :bolt, :a1));
ROLLBACK;
RESET ROLE;

-- The guard holds for the owner and superusers: UPDATE, DELETE and TRUNCATE fail with 55000.
SELECT regress.try('UPDATE inventory.ledger SET qty = qty * 2');
SELECT regress.try('DELETE FROM inventory.ledger');
SELECT regress.try('TRUNCATE inventory.ledger');
\set VERBOSITY default
DELETE FROM inventory.ledger WHERE qty < 0;
-- A correction is a reversing entry.
BEGIN;
SET LOCAL app.org_id = '11111111-0000-4000-8000-000000000001';
SELECT inventory.post(:bolt, :a1, -2.5, reason => 'reverses the 2.5 posted by mistake') > 0 AS reversed;
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1;
COMMIT;

-- rebuild_balances: idempotent, all tenants or one; returns the balance rows written.
SELECT inventory.rebuild_balances() AS rebuilt_all;
SELECT inventory.rebuild_balances('inventory.ledger', '11111111-0000-4000-8000-000000000001') AS rebuilt_a;
SELECT inventory.rebuild_balances() AS rebuilt_again;
SELECT count(*) AS keys_that_differ, (SELECT count(*) FROM inventory.balances) AS balance_rows FROM (
    SELECT org_id, item_id, location_id, lot_id, sum(qty) AS qty FROM inventory.ledger GROUP BY 1, 2, 3, 4) l
    FULL JOIN inventory.balances b
      ON b.org_id = l.org_id AND b.item_id = l.item_id AND b.location_id = l.location_id
     AND b.lot_id IS NOT DISTINCT FROM l.lot_id
 WHERE l.qty IS DISTINCT FROM b.qty;
SELECT regress.try($$SELECT inventory.rebuild_balances('inventory.items')$$);
SELECT regress.try($$SELECT inventory.rebuild_balances(NULL)$$);
SELECT ledger, balance_table, key_columns, qty_column, id_column, org_column, builtin
  FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass;
