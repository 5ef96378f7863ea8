-- The database docs/DBA.md describes: the extension, a legacy organization, and Prisma-style tables.
CREATE EXTENSION inventory_ext;
CREATE EXTENSION pg_cron;
CREATE DATABASE warehouse;
INSERT INTO inventory.organizations (id, name, subdomain)
    VALUES ('00000000-0000-4000-8000-00000000000a', 'Legacy', 'legacy');
CREATE TABLE public."Item" (id text PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE public."Location" (id text PRIMARY KEY, code text NOT NULL UNIQUE);
CREATE TABLE public."InventoryLedger" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "itemId" text NOT NULL REFERENCES public."Item" (id),
    "locationId" text NOT NULL REFERENCES public."Location" (id),
    "qtyCanonical" numeric(65, 30) NOT NULL
);
INSERT INTO public."Item" VALUES ('i1', 'BOLT-8', 'Bolt'), ('i2', 'NUT-8', 'Nut');
INSERT INTO public."Location" VALUES ('l1', 'A1');
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('i1', 'l1', 10), ('i2', 'l1', 5);
