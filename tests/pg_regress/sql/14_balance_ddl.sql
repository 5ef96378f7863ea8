-- Issue 13, point 1: ALTER TABLE on a tracked ledger or on its balance table (SPEC §6, "DDL"). Either
-- the balances stay exact, or the DDL is refused (55000) and both tables stay as they were, with
-- postings still working. Every section runs in the session that has already posted to the ledger (so
-- whatever the balance upkeep keeps per session is there) and posts again inside its own transaction
-- before the DDL. Errors show their SQLSTATE only; psql rolls a failed statement back to an implicit
-- savepoint so that the section can look at the tables after it.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
\set i1 'a0000000-0000-4000-8000-000000000001'
\set i2 'a0000000-0000-4000-8000-000000000002'
-- A Prisma-style ledger: camelCase columns, text keys that hold uuids, NULL lots, integer quantities,
-- a column before the keys and two after them.
CREATE TABLE public."StockMove" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "legacyCode" text,
    "itemId" text NOT NULL,
    "locationId" text NOT NULL,
    "lotId" text,
    "qty" integer NOT NULL,
    "note" text,
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public."StockMove" ("legacyCode", "itemId", "locationId", "lotId", "qty") VALUES
    ('L-1', :'i1', 'loc-1', NULL, 10), ('L-2', :'i1', 'loc-1', 'lot-1', 4), ('L-3', :'i2', 'loc-2', NULL, 7);
SELECT inventory.track_balances('public."StockMove"', 'public."StockBalance"',
                                ARRAY['itemId', 'locationId', 'lotId'], 'qty');
-- The checks every section uses: both tables' columns and the registration, and the keys whose balance
-- differs from the ledger's sum. Dynamic SQL, so that nothing of the check depends on the columns it
-- reads (a view would block ALTER COLUMN TYPE); keys compare as text whatever their type.
CREATE FUNCTION regress.stock_shape() RETURNS TABLE (relation text, columns text) LANGUAGE sql AS $$
    SELECT c.oid::regclass::text, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.oid IN ('public."StockMove"'::regclass, 'public."StockBalance"'::regclass)
     GROUP BY c.oid
    UNION ALL
    SELECT 'registered', array_to_string(key_columns, ', ') || '; qty ' || qty_column
      FROM inventory.tracked_ledgers WHERE ledger = 'public."StockMove"'::regclass
     ORDER BY 1 DESC
$$;
CREATE FUNCTION regress.stock_mismatches() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE $q$
        SELECT count(*) FROM (
            SELECT "itemId"::text AS i, "locationId"::text AS l, "lotId"::text AS t, sum("qty") AS q
              FROM public."StockMove" GROUP BY 1, 2, 3) s
        FULL JOIN (
            SELECT "itemId"::text AS i, "locationId"::text AS l, "lotId"::text AS t, qty AS q
              FROM public."StockBalance") b
          ON b.i = s.i AND b.l = s.l AND b.t IS NOT DISTINCT FROM s.t
         WHERE s.q IS DISTINCT FROM b.q$q$ INTO n;
    RETURN n;
END
$$;
-- Postings in this session: a single row and a multi-row statement.
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES
    (:'i1', 'loc-1', 'lot-1', 2), (:'i2', 'loc-2', NULL, -3), (:'i2', 'loc-1', NULL, 5);
SELECT "itemId", "locationId", "lotId", qty FROM public."StockBalance" ORDER BY 1, 2, 3 NULLS FIRST;
SELECT * FROM regress.stock_shape();
SELECT regress.stock_mismatches() AS mismatches;

-- ALTER COLUMN "qty" TYPE numeric (integer before): fractional postings land exactly.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" ALTER COLUMN "qty" TYPE numeric;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 0.5);
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES
    (:'i1', 'loc-1', NULL, 0.25), (:'i1', 'loc-1', 'lot-1', 1.125), (:'i2', 'loc-2', NULL, -0.5);
SELECT "itemId", "locationId", "lotId", qty FROM public."StockBalance" ORDER BY 1, 2, 3 NULLS FIRST;
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;

-- ADD COLUMN on the ledger (one nullable, one NOT NULL with a default), then on the balance table.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" ADD COLUMN "batchNo" integer, ADD COLUMN "source" text NOT NULL DEFAULT 'app';
INSERT INTO public."StockMove" ("itemId", "locationId", "qty", "batchNo") VALUES (:'i1', 'loc-1', 2, 7);
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty", "source") VALUES
    (:'i1', 'loc-1', 'lot-1', 3, 'import'), (:'i2', 'loc-2', NULL, 4, 'import');
SELECT regress.stock_mismatches() AS mismatches;
ALTER TABLE public."StockBalance" ADD COLUMN "checkedBy" text, ADD COLUMN "checkedAt" timestamptz DEFAULT now();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 5);
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES
    (:'i2', 'loc-9', 'lot-9', 6), (:'i2', 'loc-2', NULL, -1);
SELECT "itemId", "locationId", "lotId", qty FROM public."StockBalance" ORDER BY 1, 2, 3 NULLS FIRST;
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;

-- DROP COLUMN of columns the balances do not use: one before the key columns, one after; then a new
-- column takes the next attribute number.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" DROP COLUMN "legacyCode";
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
ALTER TABLE public."StockMove" DROP COLUMN "note", ADD COLUMN "memo" text DEFAULT 'm';
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES
    (:'i1', 'loc-1', 'lot-1', 3), (:'i2', 'loc-2', NULL, 4);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i2', 'loc-1', -5);
SELECT "itemId", "locationId", "lotId", qty FROM public."StockBalance" ORDER BY 1, 2, 3 NULLS FIRST;
SELECT * FROM regress.stock_shape();
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;

-- Refused with 55000, each in its own transaction: the tables and the registration stay as they were,
-- and postings go on exactly.
-- A key column's type on the ledger only: the balance table's "itemId" would no longer be its type.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" ALTER COLUMN "itemId" TYPE uuid USING "itemId"::uuid;
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 3), (:'i2', 'loc-2', 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- The same change on the balance table only.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockBalance" ALTER COLUMN "itemId" TYPE uuid USING "itemId"::uuid;
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 3), (:'i2', 'loc-2', 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- RENAME of a key column of the ledger.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" RENAME COLUMN "itemId" TO "productId";
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 3), (:'i2', 'loc-2', 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- RENAME of the ledger's qty column.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" RENAME COLUMN "qty" TO "quantity";
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 3), (:'i2', 'loc-2', 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- RENAME of a key column of the balance table.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockBalance" RENAME COLUMN "locationId" TO "whereId";
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 3), (:'i2', 'loc-2', 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- DROP COLUMN of a key column: of the ledger, of the balance table; and of the ledger's qty column.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" DROP COLUMN "lotId";
ALTER TABLE public."StockBalance" DROP COLUMN "lotId";
ALTER TABLE public."StockMove" DROP COLUMN "qty";
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES (:'i1', 'loc-1', 'lot-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES (:'i1', 'loc-1', 'lot-1', 3), (:'i2', 'loc-2', NULL, 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- One ALTER TABLE with an allowed and a refused subcommand: all of it is refused.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockMove" ADD COLUMN "extra" integer, DROP COLUMN "locationId";
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;
-- The balance table's qty column to integer: balances of fractional postings could not be held.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
ALTER TABLE public."StockBalance" ALTER COLUMN qty TYPE integer;
SELECT * FROM regress.stock_shape();
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 3), (:'i2', 'loc-2', 4);
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;

-- The documented way to change a key column's type: untrack, alter both tables, track again.
BEGIN;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
SELECT inventory.untrack_balances('public."StockMove"');
ALTER TABLE public."StockMove" ALTER COLUMN "itemId" TYPE uuid USING "itemId"::uuid;
ALTER TABLE public."StockBalance" ALTER COLUMN "itemId" TYPE uuid USING "itemId"::uuid;
SELECT inventory.track_balances('public."StockMove"', 'public."StockBalance"',
                                ARRAY['itemId', 'locationId', 'lotId'], 'qty');
SELECT * FROM regress.stock_shape();
SELECT regress.stock_mismatches() AS mismatches;
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 2);
INSERT INTO public."StockMove" ("itemId", "locationId", "lotId", "qty") VALUES
    (:'i1', 'loc-1', 'lot-1', 3), (:'i2', 'loc-2', NULL, 4), (gen_random_uuid(), 'loc-3', NULL, 1);
SELECT count(*) AS balance_rows FROM public."StockBalance";
SELECT regress.stock_mismatches() AS mismatches;
ROLLBACK;

-- After all of it, in this session: the tables as they were, and still exact.
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1);
INSERT INTO public."StockMove" ("itemId", "locationId", "qty") VALUES (:'i1', 'loc-1', 1), (:'i2', 'loc-2', 1);
SELECT "itemId", "locationId", "lotId", qty FROM public."StockBalance" ORDER BY 1, 2, 3 NULLS FIRST;
SELECT * FROM regress.stock_shape();
SELECT regress.stock_mismatches() AS mismatches;
SELECT inventory.untrack_balances('public."StockMove"');
DROP TABLE public."StockMove", public."StockBalance";
DROP FUNCTION regress.stock_shape(), regress.stock_mismatches();
