-- Issue 13, point 2: partitions and inheritance (SPEC §6, "DDL"). A partitioned ledger cannot be
-- tracked yet, so a tracked ledger or balance table never enters a partition tree or an inheritance
-- tree: track_balances refuses such tables, and ATTACH PARTITION, CREATE TABLE … INHERITS and
-- ALTER TABLE … INHERIT that would put a tracked table in one are refused (0A000), for an
-- application's ledger and for the built-in one alike. After each refusal nothing is linked (no path
-- for rows into or out of the ledger around its balance upkeep) and postings stay exact.
-- Errors show their SQLSTATE only; psql rolls a failed statement back to an implicit savepoint.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
\set org '''55555555-0000-4000-8000-000000000005'''
\set item '''a5000000-0000-4000-8000-000000000001'''
\set loc '''a6000000-0000-4000-8000-000000000001'''
INSERT INTO inventory.organizations (id, name) VALUES (:org, 'Partitions');
SELECT set_config('app.org_id', :org, false) IS NOT NULL AS tenant_set;
INSERT INTO inventory.items (id, sku, name) VALUES (:item, 'P-ITEM', 'Partition test item');
INSERT INTO inventory.locations (id, code, name) VALUES (:loc, 'P-LOC', 'Partition test location');
-- A tracked application ledger.
CREATE TABLE public.part_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
INSERT INTO public.part_moves (item, qty) VALUES ('a', 5), ('b', 3);
SELECT inventory.track_balances('public.part_moves', 'public.part_balances', ARRAY['item'], 'qty');
-- What every section checks: no inheritance or partition link touches the tracked tables here, and
-- each ledger's balances equal its sums (the built-in one for this file's tenant).
CREATE FUNCTION regress.part_check() RETURNS TABLE (links bigint, app_mismatches bigint, builtin_mismatches bigint)
LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM pg_inherits i, (VALUES ('public.part_moves'::regclass), ('public.part_balances'),
                                                         ('inventory.ledger'), ('inventory.balances')) t(rel)
             WHERE t.rel IN (i.inhrelid, i.inhparent)),
           (SELECT count(*) FROM (SELECT item, sum(qty) AS q FROM ONLY public.part_moves GROUP BY 1) s
              FULL JOIN ONLY public.part_balances b USING (item) WHERE s.q IS DISTINCT FROM b.qty),
           (SELECT count(*) FROM (
                SELECT org_id, item_id, location_id, lot_id, sum(qty) AS q FROM ONLY inventory.ledger
                 WHERE org_id = '55555555-0000-4000-8000-000000000005' GROUP BY 1, 2, 3, 4) s
              FULL JOIN (SELECT * FROM ONLY inventory.balances WHERE org_id = '55555555-0000-4000-8000-000000000005') b
                ON b.org_id = s.org_id AND b.item_id = s.item_id AND b.location_id = s.location_id
               AND b.lot_id IS NOT DISTINCT FROM s.lot_id
             WHERE s.q IS DISTINCT FROM b.qty)
$$;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1), ('b', 2);
SELECT * FROM regress.part_check();

-- track_balances on a partitioned table, on a partition, on an inheritance parent and child: 0A000,
-- and nothing is registered or installed.
BEGIN;
CREATE TABLE public.part_root (id bigint NOT NULL, item text NOT NULL, qty numeric NOT NULL) PARTITION BY LIST (item);
CREATE TABLE public.part_leaf PARTITION OF public.part_root FOR VALUES IN ('a');
CREATE TABLE public.inh_parent (id bigint PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
CREATE TABLE public.inh_child () INHERITS (public.inh_parent);
SELECT inventory.track_balances('public.part_root', 'public.part_root_balances', ARRAY['item'], 'qty');
SELECT inventory.track_balances('public.part_leaf', 'public.part_leaf_balances', ARRAY['item'], 'qty');
SELECT inventory.track_balances('public.inh_parent', 'public.inh_parent_balances', ARRAY['item'], 'qty');
SELECT inventory.track_balances('public.inh_child', 'public.inh_child_balances', ARRAY['item'], 'qty');
SELECT count(*) AS registered FROM inventory.tracked_ledgers
 WHERE ledger IN ('public.part_root'::regclass, 'public.part_leaf'::regclass, 'public.inh_parent'::regclass, 'public.inh_child'::regclass);
SELECT count(*) AS triggers FROM pg_trigger
 WHERE tgrelid IN ('public.part_root'::regclass, 'public.part_leaf'::regclass, 'public.inh_parent'::regclass, 'public.inh_child'::regclass);
SELECT count(*) AS balance_tables FROM pg_class WHERE relname LIKE '%\_balances' AND relname <> 'part_balances' AND relnamespace = 'public'::regnamespace;
ROLLBACK;

-- The tracked application ledger attached as a partition: refused. The partitioned table has no
-- partition, so a row sent through it goes nowhere (23514, no partition for the row).
BEGIN;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1);
CREATE TABLE public.move_root (LIKE public.part_moves) PARTITION BY LIST (item);
ALTER TABLE public.move_root ATTACH PARTITION public.part_moves DEFAULT;
INSERT INTO public.move_root (id, item, qty) VALUES (1000, 'a', 100);
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1), ('b', 2);
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
SELECT * FROM regress.part_check();
ROLLBACK;
-- The same with a ledger that has no identity column. PostgreSQL 18 refuses to attach a table with an
-- identity column as a partition by itself (55000, before the extension's DDL check runs: the
-- alternative expected file 15_balance_partitions_1.out), so on every version this one reaches the
-- extension's own refusal (0A000).
BEGIN;
CREATE TABLE public.plain_moves (item text NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public.plain_moves', 'public.plain_balances', ARRAY['item'], 'qty') IS NULL AS tracked;
INSERT INTO public.plain_moves (item, qty) VALUES ('a', 1);
CREATE TABLE public.plain_root (LIKE public.plain_moves) PARTITION BY LIST (item);
ALTER TABLE public.plain_root ATTACH PARTITION public.plain_moves DEFAULT;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'public.plain_root'::regclass;
SELECT item, qty FROM public.plain_balances;
ROLLBACK;
-- A child table of the tracked ledger: refused; there is no child to insert into.
BEGIN;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1);
CREATE TABLE public.move_child () INHERITS (public.part_moves);
INSERT INTO public.move_child (id, item, qty) VALUES (1000, 'a', 100);
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1), ('b', 2);
SELECT sum(qty) AS ledger_total_with_children FROM public.part_moves;
SELECT * FROM regress.part_check();
ROLLBACK;
-- An existing table made a child of the tracked ledger: refused; its rows stay its own.
BEGIN;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1);
CREATE TABLE public.move_other (LIKE public.part_moves);
ALTER TABLE public.move_other INHERIT public.part_moves;
INSERT INTO public.move_other (id, item, qty) VALUES (1000, 'a', 100);
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1), ('b', 2);
SELECT sum(qty) AS ledger_total_with_children FROM public.part_moves;
SELECT * FROM regress.part_check();
ROLLBACK;
-- The tracked ledger made a child of another table: refused.
BEGIN;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1);
CREATE TABLE public.move_parent (LIKE public.part_moves);
ALTER TABLE public.part_moves INHERIT public.move_parent;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1), ('b', 2);
SELECT * FROM regress.part_check();
ROLLBACK;
-- A child table of the application's balance table: refused.
BEGIN;
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1);
CREATE TABLE public.balance_child () INHERITS (public.part_balances);
INSERT INTO public.part_moves (item, qty) VALUES ('a', 1), ('b', 2);
SELECT * FROM regress.part_check();
ROLLBACK;

-- The same for the built-in ledger, as a superuser.
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.ledger_root (LIKE inventory.ledger INCLUDING DEFAULTS) PARTITION BY LIST (org_id);
ALTER TABLE public.ledger_root ATTACH PARTITION inventory.ledger DEFAULT;
INSERT INTO public.ledger_root (id, item_id, location_id, qty) VALUES (1000000, :item, :loc, 100);
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
INSERT INTO inventory.ledger (item_id, location_id, qty) VALUES (:item, :loc, 3), (:item, :loc, -1);
SELECT * FROM regress.part_check();
ROLLBACK;
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.ledger_child () INHERITS (inventory.ledger);
INSERT INTO public.ledger_child (id, item_id, location_id, qty) VALUES (1000000, :item, :loc, 100);
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT * FROM regress.part_check();
ROLLBACK;
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.ledger_other (LIKE inventory.ledger INCLUDING DEFAULTS);
ALTER TABLE public.ledger_other INHERIT inventory.ledger;
INSERT INTO public.ledger_other (id, item_id, location_id, qty) VALUES (1000000, :item, :loc, 100);
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT sum(qty) AS tenant_total_with_children FROM inventory.ledger WHERE org_id = :org;
SELECT * FROM regress.part_check();
ROLLBACK;
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.ledger_parent (LIKE inventory.ledger);
ALTER TABLE inventory.ledger INHERIT public.ledger_parent;
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT * FROM regress.part_check();
ROLLBACK;

-- And for the built-in balance table: attached as a partition, given a child, made a child.
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.balances_root (LIKE inventory.balances) PARTITION BY LIST (org_id);
ALTER TABLE public.balances_root ATTACH PARTITION inventory.balances DEFAULT;
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT * FROM regress.part_check();
ROLLBACK;
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.balances_child () INHERITS (inventory.balances);
INSERT INTO public.balances_child (org_id, item_id, location_id, qty, last_ledger_id, updated_at)
VALUES (:org, :item, :loc, 100, 1, now());
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT inventory.on_hand(:item) AS on_hand;
SELECT * FROM regress.part_check();
ROLLBACK;
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.balances_other (LIKE inventory.balances);
ALTER TABLE public.balances_other INHERIT inventory.balances;
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT * FROM regress.part_check();
ROLLBACK;
BEGIN;
SELECT inventory.post(:item, :loc, 1) > 0 AS posted;
CREATE TABLE public.balances_parent (LIKE inventory.balances);
ALTER TABLE inventory.balances INHERIT public.balances_parent;
SELECT inventory.post(:item, :loc, 2) > 0 AS posted;
SELECT * FROM regress.part_check();
ROLLBACK;

-- After all of it: nothing linked, both ledgers exact; then clean up (the built-in ledger kept none of
-- this file's rows: every posting above was rolled back).
SELECT inventory.on_hand(:item) AS on_hand;
SELECT * FROM regress.part_check();
SELECT inventory.untrack_balances('public.part_moves');
DROP TABLE public.part_moves, public.part_balances;
DROP FUNCTION regress.part_check();
DELETE FROM inventory.locations WHERE id = :loc;
DELETE FROM inventory.items WHERE id = :item;
DELETE FROM inventory.organizations WHERE id = :org;
RESET app.org_id;
