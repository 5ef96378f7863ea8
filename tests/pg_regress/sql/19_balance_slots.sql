-- Issue 14: hot keys spread over slots (SPEC §6). inventory.set_balance_slots(ledger, slots): its
-- arguments and errors; the balance table's shape at 1 slot (SPEC §5's, unchanged) and at more (a slot
-- column in the unique key); the views that sum slots (inventory.stock, <balance>_totals); exact totals
-- from on_hand and the views inside a transaction; the negative-stock rule per slot and on the total
-- (a decrease gathers several slots, a short one is refused with 23514); statements of many keys;
-- the SQL path (a balance table the direct write does not take, and REPEATABLE READ); reconcile
-- folding a quiet key's slots and correcting drift; rebuild; allow_negative turned off with slots;
-- DDL on the slot column refused; back to one slot. (Concurrency: tests/isolation/specs/hot_key_slots.spec;
-- load: tests/e2e/hot_key_load.sh.)
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
\set org '''19191919-0000-4000-8000-000000000019'''
\set hot '''a1900000-0000-4000-8000-000000000001'''
\set cold '''a1900000-0000-4000-8000-000000000002'''
\set loose '''a1900000-0000-4000-8000-000000000003'''
\set a1 '''b1900000-0000-4000-8000-000000000001'''
\set b1 '''b1900000-0000-4000-8000-000000000002'''

-- Arguments.
SELECT inventory.set_balance_slots(NULL, 4);
SELECT inventory.set_balance_slots('inventory.ledger', NULL);
SELECT inventory.set_balance_slots('inventory.ledger', 0);
SELECT inventory.set_balance_slots('inventory.ledger', 65);
SELECT inventory.set_balance_slots('inventory.items', 2);
SELECT slots FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass;

BEGIN;
INSERT INTO inventory.organizations (id, name) VALUES (:org, 'Slots');
SET LOCAL app.org_id = :org;
INSERT INTO inventory.items (id, sku, name) VALUES (:hot, 'HOT', 'Hot item'), (:cold, 'COLD', 'Cold item');
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES (:loose, 'LOOSE', 'Consigned', true);
INSERT INTO inventory.locations (id, code, name) VALUES (:a1, 'A1', 'Aisle 1'), (:b1, 'B1', 'Bay 1');
SELECT inventory.post(:hot, :a1, 10) > 0 AS posted;
-- 1 → 4: a slot column joins the unique key; every existing row is slot 0.
SELECT inventory.set_balance_slots('inventory.ledger', 4);
SELECT slots FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass;
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
 WHERE attrelid = 'inventory.balances'::regclass AND attname = 'slot';
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'inventory.balances'::regclass AND contype = 'u';
SELECT slot, qty FROM inventory.balances WHERE org_id = :org ORDER BY slot;
-- A quiet key keeps one row: one session's postings always find slot 0 free.
SELECT inventory.post(:hot, :a1, 5) > 0 AS posted;
SELECT inventory.post(:hot, :a1, -3) > 0 AS posted;
SELECT slot, qty FROM inventory.balances WHERE org_id = :org ORDER BY slot;
-- Slots as contention leaves them (as a superuser may arrange: the totals stay the ledger's sums).
UPDATE inventory.balances SET qty = 3 WHERE item_id = :hot;
INSERT INTO inventory.balances (item_id, location_id, qty, last_ledger_id, updated_at, slot)
SELECT item_id, location_id, q, last_ledger_id, updated_at, s FROM inventory.balances, (VALUES (1, 4), (2, 5)) AS v(s, q)
 WHERE item_id = :hot;
SELECT slot, qty FROM inventory.balances WHERE item_id = :hot ORDER BY slot;
-- Totals: on_hand, the view and the ledger agree, inside the transaction that posted.
SELECT inventory.on_hand(:hot) AS on_hand, (SELECT qty FROM inventory.stock WHERE item_id = :hot) AS stock,
       (SELECT sum(qty) FROM inventory.ledger WHERE item_id = :hot) AS ledger;
SELECT count(*) AS stock_rows FROM inventory.stock WHERE item_id = :hot;
-- A decrease one free slot covers takes it from that slot alone (which one depends on the backend:
-- each starts from a slot of its own).
CREATE TEMP TABLE slots_before AS SELECT slot, qty FROM inventory.balances WHERE item_id = :hot;
SELECT inventory.post(:hot, :a1, -3) > 0 AS posted;
SELECT count(*) AS slots_changed, sum(b.qty - s.qty) AS change, min(b.qty) >= 0 AS none_below_zero
  FROM inventory.balances b JOIN slots_before s USING (slot) WHERE b.item_id = :hot AND b.qty <> s.qty;
-- One no single slot covers gathers them all and respreads what remains (9 - 7 = 2 over 4 slots).
SELECT inventory.post(:hot, :a1, -7) > 0 AS posted;
SELECT slot, qty FROM inventory.balances WHERE item_id = :hot ORDER BY slot;
-- Short: 23514, nothing changes.
SELECT inventory.post(:hot, :a1, -3) > 0 AS posted;
SELECT inventory.on_hand(:hot) AS on_hand, min(qty) AS lowest_slot FROM inventory.balances WHERE item_id = :hot;
-- An item that may go negative: the total goes below zero in slot 0.
SELECT inventory.post(:loose, :a1, -4) > 0 AS posted;
SELECT slot, qty FROM inventory.balances WHERE item_id = :loose ORDER BY slot;
-- Many keys in one statement: each key written once, with the statement's net change; one short key
-- refuses the whole statement.
INSERT INTO inventory.ledger (item_id, location_id, qty)
VALUES (:hot, :a1, 1), (:cold, :a1, 5), (:hot, :a1, 1), (:cold, :b1, 2), (:hot, :b1, 1);
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:cold, :a1, -1), (:hot, :b1, -2);
SELECT i.sku, l.code, s.qty FROM inventory.stock s JOIN inventory.items i ON i.id = s.item_id
  JOIN inventory.locations l ON l.id = s.location_id WHERE s.org_id = :org ORDER BY 1, 2;
-- allow_negative off for an item with a negative total: 23514; for a total >= 0 with one slot below
-- zero (allowed while it was on), the key's slots are folded and the change goes through.
UPDATE inventory.items SET allow_negative = false WHERE id = :loose;
SELECT inventory.post(:loose, :a1, 10) > 0 AS posted;
UPDATE inventory.balances SET qty = -2 WHERE item_id = :loose AND slot = 0;
INSERT INTO inventory.balances (item_id, location_id, qty, last_ledger_id, updated_at, slot)
SELECT item_id, location_id, 8, last_ledger_id, updated_at, 1 FROM inventory.balances WHERE item_id = :loose;
SELECT slot, qty FROM inventory.balances WHERE item_id = :loose ORDER BY slot;
UPDATE inventory.items SET allow_negative = false WHERE id = :loose;
SELECT slot, qty FROM inventory.balances WHERE item_id = :loose ORDER BY slot;
-- The slot column is registered: dropping or retyping it is refused (55000).
ALTER TABLE inventory.balances DROP COLUMN slot;
ALTER TABLE inventory.balances ALTER COLUMN slot TYPE bigint;
-- REPEATABLE READ: the SQL statements instead of the direct write, same results.
SELECT slot, qty FROM inventory.balances WHERE item_id = :cold AND location_id = :a1 ORDER BY slot;
COMMIT;

BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL app.org_id = :org;
SELECT inventory.post(:cold, :a1, -4) > 0 AS posted;
SELECT inventory.post(:cold, :a1, -1) > 0 AS posted;
SELECT inventory.post(:cold, :b1, 3) > 0 AS posted;
SELECT slot, qty FROM inventory.balances WHERE item_id = :cold ORDER BY location_id, slot;
COMMIT;

-- Reconcile folds a quiet key's rows back into one (quiet: no posting for inventory.slot_fold_after,
-- 10 minutes by default; 0 here), and corrects drift on a spread key.
SET inventory.slot_fold_after = 0;
SET app.org_id = :org;
UPDATE inventory.balances SET qty = qty + 0.005 WHERE item_id = :hot AND location_id = :a1 AND slot = 1;
SELECT i.sku, count(*) AS rows FROM inventory.balances b JOIN inventory.items i ON i.id = b.item_id WHERE b.org_id = :org GROUP BY 1 ORDER BY 1;
RESET app.org_id;
SELECT kind, action, expected, actual FROM inventory.reconcile('inventory.ledger', :org);
SET app.org_id = :org;
SELECT i.sku, l.code, b.slot, b.qty FROM inventory.balances b JOIN inventory.items i ON i.id = b.item_id
  JOIN inventory.locations l ON l.id = b.location_id WHERE b.org_id = :org ORDER BY 1, 2, 3;
RESET app.org_id;
SELECT kind FROM inventory.reconcile('inventory.ledger', :org);
RESET inventory.slot_fold_after;
-- Rebuild writes one row per key (slot 0).
SELECT inventory.rebuild_balances('inventory.ledger', :org);
SELECT count(*) = count(DISTINCT (item_id, location_id, lot_id)) AS one_row_per_key FROM inventory.balances WHERE org_id = :org;

-- An application's ledger: the view beside its balance table; a balance table the direct write does
-- not take (a CHECK constraint) goes through the SQL statements.
CREATE TABLE public."SlotMoves" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, lot text,
                                 "qtyCanonical" numeric NOT NULL);
SELECT inventory.track_balances('public."SlotMoves"', 'public."SlotBalances"', ARRAY['itemId', 'lot'], 'qtyCanonical', allow_negative => false);
ALTER TABLE public."SlotBalances" ADD CONSTRAINT sane CHECK (qty > -1000000);
INSERT INTO public."SlotMoves" ("itemId", lot, "qtyCanonical") VALUES ('a', NULL, 6), ('b', 'x', 2);
SELECT inventory.set_balance_slots('public."SlotMoves"', 3);
SELECT relname, relkind, reloptions FROM pg_class WHERE relname = 'SlotBalances_totals';
INSERT INTO public."SlotMoves" ("itemId", lot, "qtyCanonical") VALUES ('a', NULL, -2), ('b', 'x', 1), ('c', NULL, 4);
INSERT INTO public."SlotMoves" ("itemId", lot, "qtyCanonical") VALUES ('a', NULL, -5);
SELECT "itemId", lot, qty, last_ledger_id FROM public."SlotBalances_totals" ORDER BY 1, 2;
SELECT "itemId", lot, slot, qty FROM public."SlotBalances" ORDER BY 1, 2, 3;
-- A table in the view's place is not replaced (42P07).
DROP VIEW public."SlotBalances_totals";
CREATE TABLE public."SlotBalances_totals" (x int);
SELECT inventory.set_balance_slots('public."SlotMoves"', 2);
DROP TABLE public."SlotBalances_totals";
-- More → 1: slots folded, the slot column gone, the key the ledger's keys again.
SELECT inventory.set_balance_slots('public."SlotMoves"', 1);
SELECT "itemId", lot, qty FROM public."SlotBalances" ORDER BY 1, 2;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public."SlotBalances"'::regclass AND contype = 'u';
SELECT inventory.untrack_balances('public."SlotMoves"');
DROP VIEW public."SlotBalances_totals";
DROP TABLE public."SlotMoves", public."SlotBalances";

-- The built-in ledger back to one slot: SPEC §5's shape again, totals unchanged.
SELECT inventory.set_balance_slots('inventory.ledger', 1);
SELECT count(*) AS slot_columns FROM pg_attribute WHERE attrelid = 'inventory.balances'::regclass AND attname = 'slot' AND NOT attisdropped;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'inventory.balances'::regclass AND contype = 'u';
SELECT slots FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass;
SET app.org_id = :org;
SELECT i.sku, inventory.on_hand(i.id) AS on_hand, (SELECT sum(qty) FROM inventory.ledger l WHERE l.item_id = i.id) AS ledger
  FROM inventory.items i WHERE i.org_id = :org ORDER BY 1;
RESET app.org_id;

-- Clean up (the ledger is append-only: its rows go with the guards off).
SET session_replication_role = replica;
DELETE FROM inventory.ledger WHERE org_id = :org;
DELETE FROM inventory.balances WHERE org_id = :org;
DELETE FROM inventory.locations WHERE org_id = :org;
DELETE FROM inventory.items WHERE org_id = :org;
DELETE FROM inventory.reconcile_findings WHERE org_id = :org;
RESET session_replication_role;
