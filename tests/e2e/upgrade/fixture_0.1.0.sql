-- A database in use under inventory_ext 0.1.0, written against 0.1.0's API only: every feature holds
-- data (tests/e2e/upgrade.sh runs it before ALTER EXTENSION … UPDATE, then upgrade/checks.sql).
-- Two tenants, Acme and Globex; an application role, a hardened one (API keys only) and the owner of
-- a Prisma-style schema (camelCase tables, text ids) made tenant-scoped, with a tracked ledger that
-- refuses negative stock; the built-in ledger with NULL and non-NULL lots and a transfer; reconcile
-- history with a corrected drift; a pg_cron job. The keys go into upgrade_fixture.keys for the checks.
\set ON_ERROR_STOP 1
CREATE EXTENSION pg_cron;
CREATE EXTENSION inventory_ext;

CREATE ROLE upg_app LOGIN;           -- the application
CREATE ROLE upg_hardened LOGIN;      -- an application role that may only enter a tenant by API key
CREATE ROLE upg_owner LOGIN;         -- owns the application's own (Prisma) tables
SELECT inventory.grant_app_access('upg_app');
SELECT inventory.grant_app_access('upg_hardened');
-- The hardened context (cluster-wide): only roles given the switch back choose their tenant.
SELECT inventory.revoke_tenant_switch('public');
SELECT inventory.grant_tenant_switch('upg_app');

CREATE SCHEMA upgrade_fixture;
CREATE TABLE upgrade_fixture.keys (tenant text PRIMARY KEY, org_id uuid NOT NULL, api_key text NOT NULL);
-- The roles read the ids (not the keys) of the tenants they enter.
GRANT USAGE ON SCHEMA upgrade_fixture TO PUBLIC;
GRANT SELECT (tenant, org_id) ON upgrade_fixture.keys TO PUBLIC;
-- upgrade_fixture.try(sql): 'ok', or the error's SQLSTATE and message, for the checks.
CREATE FUNCTION upgrade_fixture.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- upgrade_fixture.expect(what, got, want): raises unless got is want (a prefix, for errors).
CREATE FUNCTION upgrade_fixture.expect(what text, got text, want text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF got IS NULL OR NOT starts_with(got, want) THEN
        RAISE EXCEPTION 'check failed: %: got %, want %', what, coalesce(got, 'NULL'), want;
    END IF;
    RETURN 'ok: ' || what;
END
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA upgrade_fixture TO PUBLIC;
INSERT INTO upgrade_fixture.keys SELECT 'acme', org_id, api_key FROM inventory.create_organization('Acme Corp', 'acme');
INSERT INTO upgrade_fixture.keys SELECT 'globex', org_id, api_key FROM inventory.create_organization('Globex', 'globex');

-- The built-in schema, each tenant in its own transaction as the application.
SET ROLE upg_app;
SELECT set_config('app.org_id', (SELECT org_id::text FROM upgrade_fixture.keys WHERE tenant = 'acme'), false);
INSERT INTO inventory.items (sku, name, allow_negative) VALUES ('A-BOLT', 'Bolt', false), ('A-NUT', 'Nut', true);
INSERT INTO inventory.locations (code, name) VALUES ('MAIN', 'Main store'), ('BACK', 'Back room');
INSERT INTO inventory.lots (item_id, code) SELECT id, 'L1' FROM inventory.items WHERE sku = 'A-BOLT';
SELECT inventory.post(i.id, l.id, 100) FROM inventory.items i, inventory.locations l WHERE i.sku = 'A-BOLT' AND l.code = 'MAIN';
SELECT inventory.post(i.id, l.id, 40, lot.id) FROM inventory.items i, inventory.locations l, inventory.lots lot
 WHERE i.sku = 'A-BOLT' AND l.code = 'MAIN' AND lot.code = 'L1';
SELECT inventory.post(i.id, l.id, -5) FROM inventory.items i, inventory.locations l WHERE i.sku = 'A-NUT' AND l.code = 'BACK';
SELECT inventory.transfer(i.id, m.id, b.id, 30) FROM inventory.items i, inventory.locations m, inventory.locations b
 WHERE i.sku = 'A-BOLT' AND m.code = 'MAIN' AND b.code = 'BACK';
SELECT set_config('app.org_id', (SELECT org_id::text FROM upgrade_fixture.keys WHERE tenant = 'globex'), false);
INSERT INTO inventory.items (sku, name) VALUES ('G-GEAR', 'Gear');
INSERT INTO inventory.locations (code, name) VALUES ('MAIN', 'Globex main');
SELECT inventory.post(i.id, l.id, 7) FROM inventory.items i, inventory.locations l WHERE i.sku = 'G-GEAR';
RESET app.org_id;
RESET ROLE;

-- The application's own schema, as Prisma made it, owned by its own role.
GRANT CREATE ON SCHEMA public TO upg_owner;
SET ROLE upg_owner;
CREATE TABLE public."Item" (id text PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE public."InventoryLedger" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "itemId" text NOT NULL REFERENCES public."Item" (id),
    "locationId" text NOT NULL,
    "qtyCanonical" numeric NOT NULL,
    "createdAt" timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON public."Item", public."InventoryLedger" TO upg_app, upg_hardened;
RESET ROLE;
SELECT count(*) FROM inventory.enable_tenant_isolation('public."Item"');
SELECT count(*) FROM inventory.enable_tenant_isolation('public."InventoryLedger"');
SELECT inventory.track_balances('public."InventoryLedger"', 'public."InventoryBalance"',
                                ARRAY['itemId', 'locationId'], 'qtyCanonical', allow_negative => false);
GRANT SELECT ON public."InventoryBalance" TO upg_app, upg_hardened;

SET ROLE upg_app;
SELECT set_config('app.org_id', (SELECT org_id::text FROM upgrade_fixture.keys WHERE tenant = 'acme'), false);
INSERT INTO public."Item" (id, sku, name) VALUES ('acme-1', 'P-100', 'Widget'), ('acme-2', 'P-200', 'Gadget');
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical")
SELECT 'acme-' || (g % 2 + 1), 'loc-' || (g % 3), g FROM generate_series(1, 60) g;
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', -10);
SELECT set_config('app.org_id', (SELECT org_id::text FROM upgrade_fixture.keys WHERE tenant = 'globex'), false);
INSERT INTO public."Item" (id, sku, name) VALUES ('globex-1', 'P-100', 'Globex widget');
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('globex-1', 'loc-0', 12);
RESET app.org_id;
RESET ROLE;

-- Reconcile history: one balance drifts by a cent and is corrected; a clean run follows.
UPDATE inventory.balances SET qty = qty + 0.004
 WHERE item_id = (SELECT id FROM inventory.items WHERE sku = 'G-GEAR');
SELECT count(*) FROM inventory.reconcile();
SELECT count(*) FROM inventory.reconcile();
-- A scheduled job (this database is pg_cron's: cron.database_name).
SELECT inventory.schedule_reconcile('0 3 * * *') > 0 AS scheduled;

-- Ledgers a careless DBA left in shapes the update must handle, each tracked under 0.1.0 (their
-- tables the superuser's):
-- "Adjustment", tracked with its org column as a key and made tenant-scoped afterwards, so that the
-- update's track_balances registers its balance table as a tenant table (an application's, not builtin);
CREATE TABLE public."Adjustment" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id uuid NOT NULL,
                                  "itemId" text NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public."Adjustment"', 'public."AdjustmentBalance"', ARRAY['org_id', 'itemId'], 'qty');
SELECT count(*) FROM inventory.enable_tenant_isolation('public."Adjustment"');
INSERT INTO public."Adjustment" (org_id, "itemId", qty) SELECT org_id, 'x', 2 FROM upgrade_fixture.keys;
-- "Suspended", whose balance trigger was disabled (its upkeep suspended; it stays so);
CREATE TABLE public."Suspended" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public."Suspended"', 'public."SuspendedBalance"', ARRAY['itemId'], 'qty');
INSERT INTO public."Suspended" ("itemId", qty) VALUES ('x', 1);
ALTER TABLE public."Suspended" DISABLE TRIGGER inventory_balances;
-- "Inherited", made a child of another table after it was tracked, which 0.2.0 refuses to track (the
-- update warns and goes on; its postings are refused until it is fixed);
CREATE TABLE public."LedgerParent" ();
CREATE TABLE public."Inherited" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public."Inherited"', 'public."InheritedBalance"', ARRAY['itemId'], 'qty');
INSERT INTO public."Inherited" ("itemId", qty) VALUES ('x', 1);
ALTER TABLE public."Inherited" INHERIT public."LedgerParent";
-- "Odd", whose quantity column's name looks like 0.1.0's argument separator as escaped text, tracked
-- refusing negative stock (the rule is read from the trigger's arguments as bytes);
CREATE TABLE public."Odd" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, "q\000" numeric NOT NULL);
SELECT inventory.track_balances('public."Odd"', 'public."OddBalance"', ARRAY['itemId'], 'q\000', allow_negative => false);
-- "SharedA" and "SharedB", both tracked into one balance table (0.1.0 let them; this version refuses a
-- second ledger into a tracked balance table), which the update must leave as it is;
CREATE TABLE public."SharedA" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, qty numeric NOT NULL);
CREATE TABLE public."SharedB" (LIKE public."SharedA" INCLUDING ALL);
SELECT inventory.track_balances('public."SharedA"', 'public."SharedBalance"', ARRAY['itemId'], 'qty');
SELECT inventory.track_balances('public."SharedB"', 'public."SharedBalance"', ARRAY['itemId'], 'qty');
INSERT INTO public."SharedA" ("itemId", qty) VALUES ('a', 3);
INSERT INTO public."SharedB" ("itemId", qty) VALUES ('b', 4);
-- "Dropped", dropped while tracked (0.1.0 kept its registration).
CREATE TABLE public."Dropped" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public."Dropped"', 'public."DroppedBalance"', ARRAY['itemId'], 'qty');
DROP TABLE public."Dropped";


-- upgrade_fixture.drift(): how many keys' balance is not their ledger's sum, on both ledgers (the
-- application's summed over its slots, once it has more than one; EXCEPT rather than a join: a NULL
-- lot is a key like any other).
CREATE FUNCTION upgrade_fixture.drift() RETURNS bigint LANGUAGE sql AS $$
WITH ledger AS (SELECT org_id, item_id, location_id, lot_id, sum(qty) AS qty FROM inventory.ledger GROUP BY 1, 2, 3, 4),
     balances AS (SELECT org_id, item_id, location_id, lot_id, qty FROM inventory.balances),
     app_ledger AS (SELECT org_id, "itemId", "locationId", sum("qtyCanonical") AS qty FROM public."InventoryLedger" GROUP BY 1, 2, 3),
     app_balances AS (SELECT org_id, "itemId", "locationId", sum(qty) AS qty FROM public."InventoryBalance" GROUP BY 1, 2, 3)
SELECT (SELECT count(*) FROM ((TABLE ledger EXCEPT TABLE balances) UNION ALL (TABLE balances EXCEPT TABLE ledger)) d)
     + (SELECT count(*) FROM ((TABLE app_ledger EXCEPT TABLE app_balances) UNION ALL (TABLE app_balances EXCEPT TABLE app_ledger)) d)
$$;
