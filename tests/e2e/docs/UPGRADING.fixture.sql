-- The database docs/UPGRADING.md's SQL blocks run in (as a superuser): the extension at the current
-- version, one tenant with stock, and an application ledger, owned by its own role, tracked with
-- allow_negative => false (the checks list its rule).
CREATE EXTENSION inventory_ext;
DO $$ BEGIN CREATE ROLE upgrading_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
INSERT INTO inventory.organizations (id, name) VALUES ('00000000-0000-4000-8000-0000000000ad', 'Upgrading');
SET app.org_id = '00000000-0000-4000-8000-0000000000ad';
INSERT INTO inventory.items (sku, name) VALUES ('U-1', 'one');
INSERT INTO inventory.locations (code, name) VALUES ('L', 'shelf');
SELECT inventory.post(i.id, l.id, 5) FROM inventory.items i, inventory.locations l;
RESET app.org_id;
CREATE TABLE public."StockMove" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "itemId" text NOT NULL, qty numeric NOT NULL);
ALTER TABLE public."StockMove" OWNER TO upgrading_owner;
SELECT inventory.track_balances('public."StockMove"', 'public."StockBalance"', ARRAY['itemId'], 'qty', allow_negative => false);
INSERT INTO public."StockMove" ("itemId", qty) VALUES ('a', 3), ('b', 4);
