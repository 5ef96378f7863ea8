-- Between installing the new library and ALTER EXTENSION … UPDATE (the database's SQL still 0.1.0's,
-- the server restarted onto the new library): reading and choosing tenants work, isolation holds,
-- every posting and maintenance call is refused with 55000 saying to update, and nothing changes.
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned
SELECT upgrade_fixture.expect('version before the update', extversion, '0.1.0') FROM pg_extension WHERE extname = 'inventory_ext';
CREATE TEMP TABLE before AS
SELECT (SELECT count(*) FROM inventory.ledger) AS ledger, (SELECT sum(qty) FROM inventory.balances) AS balances,
       (SELECT count(*) FROM public."InventoryLedger") AS app_ledger, (SELECT sum(qty) FROM public."InventoryBalance") AS app_balances,
       (SELECT count(*) FROM inventory.reconcile_runs) AS runs;
GRANT SELECT ON before TO PUBLIC;

SET ROLE upg_app;
BEGIN;
SELECT inventory.set_org((SELECT org_id FROM upgrade_fixture.keys WHERE tenant = 'acme')) IS NOT NULL;
SELECT upgrade_fixture.expect('acme items', count(*)::text, '2') FROM inventory.items;
SELECT upgrade_fixture.expect('acme Prisma items', count(*)::text, '2') FROM public."Item";
SELECT upgrade_fixture.expect('only acme balances', count(DISTINCT org_id)::text, '1') FROM public."InventoryBalance";
SELECT upgrade_fixture.expect('a posting to the built-in ledger',
       upgrade_fixture.try($$SELECT inventory.post(i.id, l.id, 1) FROM inventory.items i, inventory.locations l
                             WHERE i.sku = 'A-BOLT' AND l.code = 'MAIN'$$),
       '55000: this database''s inventory_ext is still version 0.1.0');
SELECT upgrade_fixture.expect('a posting to the Prisma ledger',
       upgrade_fixture.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', 1)$$),
       '55000: this database''s inventory_ext is still version 0.1.0');
SELECT upgrade_fixture.expect('the append-only guard', upgrade_fixture.try('UPDATE inventory.ledger SET qty = 0'), '55000');
COMMIT;
SELECT upgrade_fixture.expect('no tenant, no rows', count(*)::text, '0') FROM inventory.items;
RESET ROLE;

SELECT api_key AS acme_key FROM upgrade_fixture.keys WHERE tenant = 'acme' \gset
SET ROLE upg_hardened;
SELECT upgrade_fixture.expect('the hardened role cannot choose a tenant',
       upgrade_fixture.try($$SET app.org_id = '00000000-0000-4000-8000-000000000000'$$), '42501');
BEGIN;
SELECT inventory.set_org_by_api_key(:'acme_key') IS NOT NULL;
SELECT upgrade_fixture.expect('the hardened role enters acme by its key', count(*)::text, '2') FROM inventory.items;
COMMIT;
RESET ROLE;

SELECT upgrade_fixture.expect('reconcile', upgrade_fixture.try('SELECT inventory.reconcile()'),
       '55000: inventory.reconcile_run needs inventory_ext 0.2.0 in this database, which is still at 0.1.0');
SELECT upgrade_fixture.expect('rebuild', upgrade_fixture.try('SELECT inventory.rebuild_balances()'), '55000');
SELECT upgrade_fixture.expect('an export', upgrade_fixture.try(
       $$SELECT inventory.export_org((SELECT org_id FROM upgrade_fixture.keys WHERE tenant = 'globex'))$$), 'ok');
SELECT upgrade_fixture.expect('nothing changed', row(b.*)::text,
       row((SELECT count(*) FROM inventory.ledger), (SELECT sum(qty) FROM inventory.balances),
           (SELECT count(*) FROM public."InventoryLedger"), (SELECT sum(qty) FROM public."InventoryBalance"),
           (SELECT count(*) FROM inventory.reconcile_runs))::text)
  FROM before b;
