-- Issue 13, point 3: the negative-stock rule (SPEC §5). A statement that lowers a key's balance below
-- zero fails with 23514 unless the item allows it; a statement that raises a key's balance (a receipt)
-- is never refused, even when the balance stays negative; each key is judged by the statement's net
-- change, so a multi-row statement may dip below zero between its rows. Setting an item's
-- allow_negative to false while one of its balances is negative fails with 23514 and names the item's
-- sku. The same rule for an application's ledger tracked with allow_negative => false, whose history
-- may already be negative when it is tracked. (Two sessions taking the last unit:
-- tests/isolation/specs/last_unit.spec.) Errors show their SQLSTATE only; psql rolls a failed
-- statement back to an implicit savepoint, so each one changes nothing.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
\set org '''66666666-0000-4000-8000-000000000006'''
\set bolt '''a7000000-0000-4000-8000-000000000001'''
\set nut '''a7000000-0000-4000-8000-000000000002'''
\set consigned '''a7000000-0000-4000-8000-000000000003'''
\set a1 '''a8000000-0000-4000-8000-000000000001'''
\set b1 '''a8000000-0000-4000-8000-000000000002'''

-- The built-in ledger.
BEGIN;
INSERT INTO inventory.organizations (id, name) VALUES (:org, 'Negative rule');
SET LOCAL app.org_id = :org;
INSERT INTO inventory.items (id, sku, name) VALUES (:bolt, 'BOLT', 'Bolt'), (:nut, 'NUT', 'Nut');
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES (:consigned, 'CONSIGNED', 'Consigned stock', true);
INSERT INTO inventory.locations (id, code, name) VALUES (:a1, 'A1', 'Aisle 1'), (:b1, 'B1', 'Bay 1');
-- regress.refusal(sql, word): the SQLSTATE of the statement's error and whether its message names word.
CREATE FUNCTION regress.refusal(sql text, word text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || CASE WHEN position(word IN SQLERRM) > 0 THEN ', names ' ELSE ', does not name ' END || word;
END
$$;
-- Lowering a balance below zero: refused, for a single posting and for a multi-row statement (all of
-- it: the other keys' rows go too).
SELECT inventory.post(:bolt, :a1, 3) > 0 AS posted;
SELECT inventory.post(:bolt, :a1, -5) > 0 AS posted;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:bolt, :a1, -2), (:nut, :a1, 4), (:bolt, :b1, -1);
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1, inventory.on_hand(:bolt, :b1) AS bolt_b1, inventory.on_hand(:nut) AS nut;
-- To exactly zero is fine; an item that allows it goes below.
SELECT inventory.post(:bolt, :a1, -3) > 0 AS posted;
SELECT inventory.post(:consigned, :a1, -5) > 0 AS posted;
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1, inventory.on_hand(:consigned, :a1) AS consigned_a1;
-- One statement, one key, rows that issue and receive: the net change decides, whatever the rows' order.
SELECT inventory.post(:bolt, :a1, 4) > 0 AS posted;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:bolt, :a1, -6), (:bolt, :a1, 5);
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1;
INSERT INTO inventory.ledger (item_id, location_id, qty)
SELECT :bolt, :a1, q FROM unnest(ARRAY[-10, 4, 4]) WITH ORDINALITY AS u(q, n) ORDER BY n;
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:bolt, :a1, 5), (:bolt, :a1, -7);
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1;

-- allow_negative = false while one of the item's balances is negative (CONSIGNED at A1, while it has
-- stock at B1): 23514, naming the sku; also when the UPDATE touches the tenant's other items as well.
-- (This file runs as a superuser, beside other tenants' items of the same skus: every UPDATE and
-- listing here names this tenant.)
SELECT inventory.post(:consigned, :b1, 10) > 0 AS posted;
SELECT regress.refusal($$UPDATE inventory.items SET allow_negative = false WHERE id = 'a7000000-0000-4000-8000-000000000003'$$, 'CONSIGNED');
SELECT regress.refusal($$UPDATE inventory.items SET allow_negative = false WHERE org_id = '66666666-0000-4000-8000-000000000006'$$, 'CONSIGNED');
UPDATE inventory.items SET allow_negative = false WHERE id = :consigned;
SELECT sku, allow_negative FROM inventory.items WHERE org_id = :org ORDER BY sku;
-- Once no balance of it is negative (0 at A1, 10 at B1) it works; then the rule applies to it.
SELECT inventory.post(:consigned, :a1, 5) > 0 AS posted;
UPDATE inventory.items SET allow_negative = false WHERE id = :consigned;
SELECT sku, allow_negative FROM inventory.items WHERE org_id = :org ORDER BY sku;
SELECT inventory.post(:consigned, :a1, -1) > 0 AS posted;
-- An item with no balances at all: false → true → false.
UPDATE inventory.items SET allow_negative = true WHERE id = :nut;
UPDATE inventory.items SET allow_negative = false WHERE id = :nut;
SELECT sku, allow_negative FROM inventory.items WHERE org_id = :org ORDER BY sku;

-- Receipts into a negative balance of an item that does not allow one. Such a balance comes from
-- history written before the rule applied: here rows written with the triggers off, and balances
-- rebuilt from the ledger (which never refuses history).
SET LOCAL session_replication_role = replica;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:bolt, :b1, -4);
SET LOCAL session_replication_role = origin;
SELECT inventory.rebuild_balances('inventory.ledger', :org) > 0 AS rebuilt;
SELECT inventory.on_hand(:bolt, :b1) AS bolt_b1;
-- A receipt that leaves it negative: accepted (single row, and a statement whose net is a receipt).
SELECT inventory.post(:bolt, :b1, 1) > 0 AS posted;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:bolt, :b1, 5), (:bolt, :b1, -4);
SELECT inventory.on_hand(:bolt, :b1) AS bolt_b1;
-- A further issue: refused, even though the balance was negative already.
SELECT inventory.post(:bolt, :b1, -1) > 0 AS posted;
-- A transfer into it: A1 goes down to 0 (allowed), B1 goes up and stays negative (a receipt).
SELECT cardinality(inventory.transfer(:bolt, :a1, :b1, 1)) AS entries;
SELECT inventory.on_hand(:bolt, :a1) AS bolt_a1, inventory.on_hand(:bolt, :b1) AS bolt_b1;
SELECT inventory.post(:bolt, :b1, 1) > 0 AS posted;
SELECT inventory.on_hand(:bolt, :b1) AS bolt_b1;
-- Balances equal the ledger's sums.
SELECT count(*) AS mismatches FROM (
    SELECT org_id, item_id, location_id, lot_id, sum(qty) AS q FROM inventory.ledger WHERE org_id = :org GROUP BY 1, 2, 3, 4) s
    FULL JOIN (SELECT * FROM inventory.balances WHERE org_id = :org) b
      ON b.org_id = s.org_id AND b.item_id = s.item_id AND b.location_id = s.location_id AND b.lot_id IS NOT DISTINCT FROM s.lot_id
 WHERE s.q IS DISTINCT FROM b.qty;
ROLLBACK;

-- An application's ledger tracked with allow_negative => false, whose history already nets negative
-- for key 'a' when it is tracked: tracking fills the balances without refusing anything.
BEGIN;
CREATE TABLE public.neg_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
INSERT INTO public.neg_moves (item, qty) VALUES ('a', 5), ('a', -8), ('b', 2);
SELECT inventory.track_balances('public.neg_moves', 'public.neg_balances', ARRAY['item'], 'qty', allow_negative => false);
SELECT item, qty FROM public.neg_balances ORDER BY item;
-- A receipt that leaves 'a' negative: accepted; so is a statement whose net for 'a' is a receipt.
INSERT INTO public.neg_moves (item, qty) VALUES ('a', 1);
INSERT INTO public.neg_moves (item, qty) VALUES ('a', 4), ('a', -3);
SELECT item, qty FROM public.neg_balances ORDER BY item;
-- A further issue: refused.
INSERT INTO public.neg_moves (item, qty) VALUES ('a', -1);
-- A statement that raises 'a' and takes 'b' below zero: refused, all of it.
INSERT INTO public.neg_moves (item, qty) VALUES ('a', 1), ('b', -3);
SELECT item, qty FROM public.neg_balances ORDER BY item;
-- Both to zero: fine; then 'b' dips below zero between two rows of one statement whose net is a receipt.
INSERT INTO public.neg_moves (item, qty) VALUES ('a', 1), ('b', -2);
INSERT INTO public.neg_moves (item, qty) VALUES ('b', -5), ('b', 6);
-- Net issue below zero, even though a row of it is a receipt: refused.
INSERT INTO public.neg_moves (item, qty) VALUES ('a', 2), ('a', -3);
SELECT item, qty FROM public.neg_balances ORDER BY item;
SELECT count(*) AS mismatches FROM (SELECT item, sum(qty) AS q FROM public.neg_moves GROUP BY 1) s
    FULL JOIN public.neg_balances b USING (item) WHERE s.q IS DISTINCT FROM b.qty;
ROLLBACK;
