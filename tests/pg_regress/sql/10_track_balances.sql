-- track_balances / untrack_balances / rebuild_balances on an application's own ledger (SPEC §6):
-- a Prisma-style ledger with camelCase columns, text keys and NULL lots, tracked with rows already in it.
BEGIN;
CREATE TABLE public."InventoryLedger" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "itemId" text NOT NULL,
    "locationId" text NOT NULL,
    "lotId" text,
    "qtyCanonical" numeric(65, 30) NOT NULL,
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "lotId", "qtyCanonical") VALUES
    ('item-1', 'loc-1', NULL, 10), ('item-1', 'loc-1', NULL, -4), ('item-1', 'loc-1', 'lot-9', 2),
    ('item-2', 'loc-1', NULL, 7.125);
CREATE ROLE ledger_reader NOLOGIN;
GRANT SELECT ON public."InventoryLedger" TO ledger_reader;
SELECT inventory.track_balances('public."InventoryLedger"', 'public."InventoryBalance"',
                                ARRAY['itemId', 'locationId', 'lotId'], 'qtyCanonical');
-- The balance table it made, filled from the rows already there.
SELECT column_name, data_type, is_nullable FROM information_schema.columns
 WHERE table_name = 'InventoryBalance' ORDER BY ordinal_position;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public."InventoryBalance"'::regclass AND contype <> 'n';
SELECT "itemId", "locationId", "lotId", qty, last_ledger_id FROM public."InventoryBalance" ORDER BY 1, 2, 3 NULLS FIRST;
-- Whoever may read the ledger may read the balances.
SELECT has_table_privilege('ledger_reader', 'public."InventoryBalance"', 'SELECT') AS reader_can_read;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'public."InventoryLedger"'::regclass ORDER BY 1;
SELECT ledger, balance_table, key_columns, qty_column, id_column, org_column, builtin
  FROM inventory.tracked_ledgers WHERE ledger = 'public."InventoryLedger"'::regclass;
-- New postings are maintained: NULL lots stay one row; a COPY-sized insert is one upsert.
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('item-1', 'loc-1', 1), ('item-3', 'loc-2', 5);
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical")
SELECT 'item-' || (i % 3 + 1), 'loc-' || (i % 2 + 1), 0.5 FROM generate_series(1, 3000) i;
SELECT "itemId", "locationId", "lotId", qty FROM public."InventoryBalance" ORDER BY 1, 2, 3 NULLS FIRST;
SELECT count(*) AS keys_that_differ FROM (
    SELECT "itemId", "locationId", "lotId", sum("qtyCanonical") AS qty FROM public."InventoryLedger" GROUP BY 1, 2, 3) l
    FULL JOIN public."InventoryBalance" b
      ON b."itemId" = l."itemId" AND b."locationId" = l."locationId" AND b."lotId" IS NOT DISTINCT FROM l."lotId"
 WHERE l.qty IS DISTINCT FROM b.qty;
-- The guards: zero quantities, and the ledger is append-only.
SELECT regress.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('item-1', 'loc-1', 0)$$);
SELECT regress.try($$UPDATE public."InventoryLedger" SET "qtyCanonical" = 0$$);
SELECT regress.try($$DELETE FROM public."InventoryLedger"$$);
SELECT regress.try($$TRUNCATE public."InventoryLedger"$$);
-- An application ledger allows negative balances unless tracked with allow_negative => false.
SELECT regress.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('item-3', 'loc-2', -1000)$$);
SELECT inventory.track_balances('public."InventoryLedger"', 'public."InventoryBalance"',
                                ARRAY['itemId', 'locationId', 'lotId'], 'qtyCanonical', allow_negative => false);
SELECT regress.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('item-3', 'loc-2', -1000)$$);
-- rebuild_balances: the same balances again.
SELECT inventory.rebuild_balances('public."InventoryLedger"') AS rebuilt;
SELECT "itemId", "locationId", "lotId", qty FROM public."InventoryBalance" ORDER BY 1, 2, 3 NULLS FIRST;
-- untrack: the triggers and the registration go, both tables stay.
SELECT inventory.untrack_balances('public."InventoryLedger"');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'public."InventoryLedger"'::regclass;
SELECT count(*) AS registered FROM inventory.tracked_ledgers WHERE ledger = 'public."InventoryLedger"'::regclass;
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('item-1', 'loc-1', 100);
SELECT qty AS untracked_balance_unchanged FROM public."InventoryBalance" WHERE "itemId" = 'item-1' AND "locationId" = 'loc-1' AND "lotId" IS NULL;
-- Bad input.
SELECT regress.try($$SELECT inventory.track_balances('public."InventoryLedger"', 'public.b2', ARRAY['itemid'], 'qtyCanonical')$$);
SELECT regress.try($$SELECT inventory.track_balances('public."InventoryLedger"', 'public.b2', ARRAY['itemId'], 'nope')$$);
SELECT regress.try($$SELECT inventory.track_balances('public."InventoryLedger"', 'public.b2', ARRAY[]::name[], 'qtyCanonical')$$);
SELECT regress.try($$SELECT inventory.track_balances('public."InventoryLedger"', NULL, ARRAY['itemId'], 'qtyCanonical')$$);
SELECT regress.try($$SELECT inventory.track_balances('public.no_such_ledger', 'public.b2', ARRAY['itemId'], 'qtyCanonical')$$);
CREATE TABLE public.float_ledger (id bigint PRIMARY KEY, item text, qty double precision);
SELECT regress.try($$SELECT inventory.track_balances('public.float_ledger', 'public.b3', ARRAY['item'], 'qty')$$);
SELECT regress.try($$SELECT inventory.untrack_balances(NULL)$$);
SELECT regress.try($$SELECT inventory.track_balances('public."InventoryLedger"', 'a.b.c', ARRAY['itemId'], 'qtyCanonical')$$);
SELECT regress.try($$SELECT inventory.track_balances('public."InventoryLedger"', 'no good', ARRAY['itemId'], 'qtyCanonical')$$);
-- An unqualified balance table is made beside the ledger.
CREATE SCHEMA stock;
CREATE TABLE stock.simple_ledger (id bigint PRIMARY KEY, item text NOT NULL, qty integer NOT NULL);
INSERT INTO stock.simple_ledger VALUES (1, 'a', 3), (2, 'a', 4);
SELECT inventory.track_balances('stock.simple_ledger', 'simple_balances', ARRAY['item'], 'qty');
SELECT item, qty, last_ledger_id FROM stock.simple_balances;
ROLLBACK;

-- A tenant-scoped application ledger: its balance table is made tenant-scoped the same way, keyed by
-- the tenant first, and each tenant reads only its own balances.
INSERT INTO inventory.organizations (id, name) VALUES
    ('33333333-0000-4000-8000-000000000003', 'Track C'), ('44444444-0000-4000-8000-000000000004', 'Track D');
BEGIN;
CREATE TABLE public.moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, qty numeric NOT NULL);
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation('public.moves', 'orgId');
GRANT SELECT, INSERT ON public.moves TO app_user;
SELECT inventory.track_balances('public.moves', 'public.move_balances', ARRAY['itemId'], 'qty');
SELECT key_columns, org_column FROM inventory.tracked_ledgers WHERE ledger = 'public.moves'::regclass;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.move_balances'::regclass;
SET LOCAL ROLE app_user;
SET LOCAL app.org_id = '33333333-0000-4000-8000-000000000003';
INSERT INTO public.moves ("itemId", qty) VALUES ('x', 5), ('y', 1);
SET LOCAL app.org_id = '44444444-0000-4000-8000-000000000004';
INSERT INTO public.moves ("itemId", qty) VALUES ('x', 2);
SELECT "itemId", qty FROM public.move_balances ORDER BY 1;
SELECT regress.try($$UPDATE public.move_balances SET qty = 0$$);
RESET ROLE;
SELECT "orgId", "itemId", qty FROM public.move_balances ORDER BY 1, 2;
ROLLBACK;
