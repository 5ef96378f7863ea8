-- Issue 13, point 4: balances stay exact through savepoints, errors and nested statements (SPEC §6,
-- "Balance maintenance"): ROLLBACK TO SAVEPOINT, a plpgsql block that catches an error after posting,
-- a statement that fails part-way, a trigger on another table that posts, a trigger on the ledger that
-- posts into the same ledger, a writable CTE with two INSERTs into one ledger, INSERT … ON CONFLICT DO
-- NOTHING, and COPY. After each, every balance of the built-in ledger and of an application ledger
-- equals its ledger sum. (PREPARE TRANSACTION: 18_balance_prepared.sql, which needs
-- max_prepared_transactions.) Errors show their SQLSTATE only.
\set VERBOSITY sqlstate
\set org '''77777777-0000-4000-8000-000000000007'''
\set i1 '''a9000000-0000-4000-8000-000000000001'''
\set i2 '''a9000000-0000-4000-8000-000000000002'''
\set loc '''aa000000-0000-4000-8000-000000000001'''
INSERT INTO inventory.organizations (id, name) VALUES (:org, 'Transactions');
SELECT set_config('app.org_id', :org, false) IS NOT NULL AS tenant_set;
INSERT INTO inventory.items (id, sku, name) VALUES (:i1, 'TXI', 'Item I'), (:i2, 'TXJ', 'Item J');
INSERT INTO inventory.locations (id, code, name) VALUES (:loc, 'TXL', 'Location');
-- An application ledger with a foreign key, an idempotency key and a flag for the mirror triggers below.
CREATE TABLE public.tx_items (sku text PRIMARY KEY);
INSERT INTO public.tx_items VALUES ('x'), ('y'), ('z');
CREATE TABLE public.tx_moves (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item text NOT NULL REFERENCES public.tx_items (sku),
    qty numeric NOT NULL,
    "idempotencyKey" text UNIQUE,
    mirror text
);
SELECT inventory.track_balances('public.tx_moves', 'public.tx_balances', ARRAY['item'], 'qty');
-- Each section's check: the balances of both ledgers (this tenant's for the built-in one) and how many
-- keys differ from their ledger sums.
CREATE FUNCTION regress.tx_state() RETURNS TABLE (app text, app_mismatches bigint, builtin text, builtin_mismatches bigint)
LANGUAGE sql AS $$
    SELECT (SELECT string_agg(item || '=' || qty, ' ' ORDER BY item) FROM public.tx_balances),
           (SELECT count(*) FROM (SELECT item, sum(qty) AS q FROM public.tx_moves GROUP BY 1) s
              FULL JOIN public.tx_balances b USING (item) WHERE s.q IS DISTINCT FROM b.qty),
           (SELECT string_agg(i.sku || '=' || b.qty, ' ' ORDER BY i.sku) FROM inventory.balances b
              JOIN inventory.items i ON i.org_id = b.org_id AND i.id = b.item_id
             WHERE b.org_id = '77777777-0000-4000-8000-000000000007'),
           (SELECT count(*) FROM (
                SELECT org_id, item_id, location_id, lot_id, sum(qty) AS q FROM inventory.ledger
                 WHERE org_id = '77777777-0000-4000-8000-000000000007' GROUP BY 1, 2, 3, 4) s
              FULL JOIN (SELECT * FROM inventory.balances WHERE org_id = '77777777-0000-4000-8000-000000000007') b
                ON b.org_id = s.org_id AND b.item_id = s.item_id AND b.location_id = s.location_id
               AND b.lot_id IS NOT DISTINCT FROM s.lot_id
             WHERE s.q IS DISTINCT FROM b.qty)
$$;
SELECT * FROM regress.tx_state();

-- Savepoints: postings undone by ROLLBACK TO SAVEPOINT (a new key's balance row too), nested
-- savepoints released into one that is rolled back, postings after each.
BEGIN;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 5);
SELECT inventory.post(:i1, :loc, 10) > 0 AS posted;
SAVEPOINT s1;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 2), ('y', 3);
SELECT inventory.post(:i1, :loc, -4) > 0 AS posted;
SELECT * FROM regress.tx_state();
ROLLBACK TO SAVEPOINT s1;
SELECT * FROM regress.tx_state();
INSERT INTO public.tx_moves (item, qty) VALUES ('y', 1);
SAVEPOINT s2;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1);
SAVEPOINT s3;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 10), ('z', 1);
SELECT inventory.post(:i1, :loc, 1) > 0 AS posted;
RELEASE SAVEPOINT s3;
ROLLBACK TO SAVEPOINT s2;
SELECT * FROM regress.tx_state();
SAVEPOINT s4;
INSERT INTO public.tx_moves (item, qty) VALUES ('z', 2);
SELECT inventory.post(:i2, :loc, 3) > 0 AS posted;
RELEASE SAVEPOINT s4;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1), ('z', 1);
SELECT * FROM regress.tx_state();
ROLLBACK;

-- A plpgsql block that posts, then fails in a later statement and catches it; a block whose posting
-- itself fails; postings in a loop after both.
BEGIN;
\set VERBOSITY terse
DO $$
BEGIN
    INSERT INTO public.tx_moves (item, qty) VALUES ('x', 5);
    BEGIN
        INSERT INTO public.tx_moves (item, qty) VALUES ('x', 100), ('y', 100);
        PERFORM inventory.post('a9000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000001', 100);
        RAISE EXCEPTION 'a later statement fails';
    EXCEPTION WHEN others THEN
        RAISE NOTICE 'caught %', SQLSTATE;
    END;
    INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1);
    PERFORM inventory.post('a9000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000001', 2);
    BEGIN
        INSERT INTO public.tx_moves (item, qty) VALUES ('z', 7);
        PERFORM inventory.post('a9000000-0000-4000-8000-000000000001', 'aa000000-0000-4000-8000-000000000001', -1000);
    EXCEPTION WHEN check_violation THEN
        RAISE NOTICE 'caught %', SQLSTATE;
    END;
    FOR n IN 1..10 LOOP
        INSERT INTO public.tx_moves (item, qty) VALUES ('y', 1);
        PERFORM inventory.post('a9000000-0000-4000-8000-000000000002', 'aa000000-0000-4000-8000-000000000001', 1);
    END LOOP;
END
$$;
\set VERBOSITY sqlstate
SELECT * FROM regress.tx_state();
ROLLBACK;

-- Statements that fail part-way, each inside a savepoint: a foreign key on the third row (built-in and
-- application ledger), NOT NULL on the third row, a zero quantity on the third row, negative stock on
-- the second, a COPY whose third line is bad. Then postings go on.
BEGIN;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 5);
SELECT inventory.post(:i1, :loc, 10) > 0 AS posted;
SAVEPOINT a;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:i1, :loc, 1), (:i2, :loc, 1), (gen_random_uuid(), :loc, 1);
ROLLBACK TO SAVEPOINT a;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1), ('y', 1), ('nope', 1);
ROLLBACK TO SAVEPOINT a;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1), ('y', 1), ('z', NULL);
ROLLBACK TO SAVEPOINT a;
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1), ('y', 1), ('z', 0);
ROLLBACK TO SAVEPOINT a;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:i1, :loc, 1), (:i2, :loc, -5);
ROLLBACK TO SAVEPOINT a;
COPY public.tx_moves (item, qty) FROM STDIN;
x	1
y	1
z	not a number
x	1
\.
ROLLBACK TO SAVEPOINT a;
SELECT * FROM regress.tx_state();
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 2), ('y', 3);
INSERT INTO public.tx_moves (item, qty) VALUES ('z', 4);
SELECT inventory.post(:i1, :loc, 1) > 0 AS posted;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:i1, :loc, 1), (:i2, :loc, 1);
SELECT * FROM regress.tx_state();
ROLLBACK;

-- Nested statements: an AFTER INSERT trigger on another table posts to both ledgers, for a
-- multi-row INSERT and for a writable CTE whose first INSERT is into the ledger itself.
BEGIN;
CREATE TABLE public.tx_orders (id serial PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL, builtin_item uuid);
CREATE FUNCTION public.tx_order_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.tx_moves (item, qty) VALUES (NEW.item, -NEW.qty);
    IF NEW.builtin_item IS NOT NULL THEN
        PERFORM inventory.post(NEW.builtin_item, 'aa000000-0000-4000-8000-000000000001', -NEW.qty);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tx_order_posts AFTER INSERT ON public.tx_orders FOR EACH ROW EXECUTE FUNCTION public.tx_order_posts();
INSERT INTO public.tx_moves (item, qty) VALUES ('x', 10), ('y', 10);
SELECT inventory.post(:i1, :loc, 10) > 0 AS posted;
INSERT INTO public.tx_orders (item, qty, builtin_item) VALUES ('x', 1, :i1), ('x', 2, :i1), ('y', 3, NULL);
SELECT * FROM regress.tx_state();
WITH m AS (INSERT INTO public.tx_moves (item, qty) VALUES ('z', 5), ('x', 1) RETURNING item)
INSERT INTO public.tx_orders (item, qty) SELECT item, 1 FROM m;
SELECT * FROM regress.tx_state();
ROLLBACK;

-- Nested statements: AFTER ROW triggers on the application ledger itself insert a mirror row into the
-- same ledger for flagged rows, one named to fire before other triggers and one after.
BEGIN;
CREATE FUNCTION public.tx_mirror() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.tx_moves (item, qty) VALUES (NEW.item, NEW.qty);
    RETURN NULL;
END
$$;
CREATE TRIGGER a_mirror_early AFTER INSERT ON public.tx_moves FOR EACH ROW WHEN (NEW.mirror = 'early') EXECUTE FUNCTION public.tx_mirror();
CREATE TRIGGER zz_mirror_late AFTER INSERT ON public.tx_moves FOR EACH ROW WHEN (NEW.mirror = 'late') EXECUTE FUNCTION public.tx_mirror();
INSERT INTO public.tx_moves (item, qty, mirror) VALUES ('x', 1, 'early'), ('x', 2, NULL), ('y', 4, 'late'), ('x', 8, 'late');
SELECT * FROM regress.tx_state();
INSERT INTO public.tx_moves (item, qty, mirror) VALUES ('z', 3, 'early');
INSERT INTO public.tx_moves (item, qty, mirror) VALUES ('z', 5, 'late');
INSERT INTO public.tx_moves (item, qty) VALUES ('z', 1);
SELECT count(*) AS ledger_rows FROM public.tx_moves;
SELECT * FROM regress.tx_state();
ROLLBACK;

-- A writable CTE with two INSERTs into the same ledger (built-in and application), and one whose
-- second INSERT reads the first's RETURNING.
BEGIN;
SELECT inventory.post(:i1, :loc, 10) > 0 AS posted;
WITH a AS (INSERT INTO public.tx_moves (item, qty) VALUES ('x', 1), ('y', 2) RETURNING id),
     b AS (INSERT INTO public.tx_moves (item, qty) VALUES ('x', 4) RETURNING id)
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) AS inserted;
WITH a AS (INSERT INTO public.tx_moves (item, qty) VALUES ('z', 5) RETURNING item, qty)
INSERT INTO public.tx_moves (item, qty) SELECT item, 1 - qty FROM a;
WITH a AS (INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:i1, :loc, -3), (:i2, :loc, 2) RETURNING id),
     b AS (INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:i1, :loc, 5) RETURNING id)
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) AS inserted;
SELECT * FROM regress.tx_state();
ROLLBACK;

-- INSERT … ON CONFLICT DO NOTHING on the idempotency key: skipped rows (conflicting with earlier
-- rows, or with a row of the same statement) count for nothing.
BEGIN;
INSERT INTO public.tx_moves (item, qty, "idempotencyKey") VALUES ('x', 1, 'k1'), ('y', 2, 'k2');
INSERT INTO public.tx_moves (item, qty, "idempotencyKey") VALUES
    ('x', 10, 'k1'), ('x', 3, 'k3'), ('y', 20, 'k2'), ('y', 4, 'k4'), ('x', 100, 'k3')
ON CONFLICT DO NOTHING;
INSERT INTO public.tx_moves (item, qty, "idempotencyKey") VALUES ('x', 50, 'k1') ON CONFLICT ("idempotencyKey") DO NOTHING;
INSERT INTO public.tx_moves (item, qty, "idempotencyKey") VALUES ('z', 50, 'k1'), ('z', 6, 'k5') ON CONFLICT ("idempotencyKey") DO NOTHING;
SELECT count(*) AS ledger_rows FROM public.tx_moves;
SELECT * FROM regress.tx_state();
ROLLBACK;

-- COPY … FROM STDIN into both ledgers.
BEGIN;
COPY public.tx_moves (item, qty) FROM STDIN;
x	1
y	2
x	3
z	-4
\.
COPY inventory.ledger (item_id, location_id, qty) FROM STDIN;
a9000000-0000-4000-8000-000000000001	aa000000-0000-4000-8000-000000000001	5
a9000000-0000-4000-8000-000000000002	aa000000-0000-4000-8000-000000000001	7
a9000000-0000-4000-8000-000000000001	aa000000-0000-4000-8000-000000000001	-2
\.
SELECT * FROM regress.tx_state();
ROLLBACK;

-- After all of it nothing was kept; clean up.
SELECT * FROM regress.tx_state();
SELECT inventory.untrack_balances('public.tx_moves');
DROP TABLE public.tx_moves, public.tx_balances, public.tx_items;
DROP FUNCTION regress.tx_state();
DELETE FROM inventory.locations WHERE id = :loc;
DELETE FROM inventory.items WHERE org_id = :org;
DELETE FROM inventory.organizations WHERE id = :org;
RESET app.org_id;
