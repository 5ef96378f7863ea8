-- A pg_dump of the 0.1.0 database (fixture_0.1.0.sql) restored into a server with this version:
-- CREATE EXTENSION made the current version and the built-in ledger's triggers; the application's
-- ledger came back with 0.1.0's trigger, which refuses postings (55000, saying what to run) until a
-- superuser runs inventory.update_balance_triggers(); then everything is exact and works.
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned
SELECT upgrade_fixture.expect('version', extversion, '0.2.0') FROM pg_extension WHERE extname = 'inventory_ext';
SELECT upgrade_fixture.expect('restored exact', upgrade_fixture.drift()::text, '0');
SELECT upgrade_fixture.expect('the restored registration', format('%s %s %s', ledger, coalesce(negative_rule, '<NULL>'), builtin), '"InventoryLedger" <NULL> f')
  FROM inventory.tracked_ledgers WHERE ledger = 'public."InventoryLedger"'::regclass;
SELECT set_config('app.org_id', (SELECT org_id::text FROM upgrade_fixture.keys WHERE tenant = 'acme'), false) IS NOT NULL;
SELECT upgrade_fixture.expect('a posting through 0.1.0''s trigger',
       upgrade_fixture.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', 1)$$),
       '55000: the balance trigger of public."InventoryLedger" is inventory_ext 0.1.0''s');
SELECT upgrade_fixture.expect('the built-in ledger works at once',
       upgrade_fixture.try($$SELECT inventory.post(i.id, l.id, 2) FROM inventory.items i, inventory.locations l
                             WHERE i.sku = 'A-NUT' AND l.code = 'BACK'$$), 'ok');
RESET app.org_id;
-- Every ledger but "Inherited" and the two sharing a balance table (each with a WARNING); the
-- dropped ledger's registration goes.
SELECT upgrade_fixture.expect('update_balance_triggers', string_agg(l::text, ','), '"Adjustment","InventoryLedger","Odd","Suspended"')
  FROM inventory.update_balance_triggers() l;
SELECT upgrade_fixture.expect('registrations', string_agg(ledger::text, ',' ORDER BY ledger::text),
       '"Adjustment","Inherited","InventoryLedger","Odd","SharedA","SharedB","Suspended",inventory.ledger') FROM inventory.tracked_ledgers;
SELECT upgrade_fixture.expect('a second run finds nothing to do', count(*)::text, '0') FROM inventory.update_balance_triggers();
SELECT upgrade_fixture.expect('the rule from 0.1.0''s trigger', negative_rule, 'refuse')
  FROM inventory.tracked_ledgers WHERE ledger = 'public."InventoryLedger"'::regclass;
SELECT set_config('app.org_id', (SELECT org_id::text FROM upgrade_fixture.keys WHERE tenant = 'acme'), false) IS NOT NULL;
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', 1), ('acme-2', 'loc-5', 4);
SELECT upgrade_fixture.expect('negative stock refused',
       upgrade_fixture.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-2', 'loc-5', -5)$$), '23514');
RESET app.org_id;
SELECT upgrade_fixture.expect('exact after postings', upgrade_fixture.drift()::text, '0');
SELECT upgrade_fixture.expect('reconcile history restored', string_agg(status, ',' ORDER BY id), 'corrected,clean')
  FROM inventory.reconcile_runs;
SELECT upgrade_fixture.expect('a reconcile finds nothing', count(*)::text, '0') FROM inventory.reconcile();
SELECT upgrade_fixture.expect('the pg_cron job restored', string_agg(command, ';'), 'SELECT inventory.reconcile_run()')
  FROM cron.job WHERE jobname = 'inventory-reconcile';
