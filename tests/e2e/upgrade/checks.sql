-- After ALTER EXTENSION inventory_ext UPDATE of the database fixture_0.1.0.sql made: the version,
-- registrations, every balance equal to its ledger's sum, isolation (the application role, the hardened
-- one), postings and the negative-stock rules on both ledgers, reconcile history and a new run, the
-- pg_cron job, and 0.2.0's features on the updated data. Each check raises when it fails.
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned
SELECT upgrade_fixture.expect('version', extversion, '0.2.0') FROM pg_extension WHERE extname = 'inventory_ext';

-- Registrations: the rule came from 0.1.0's trigger arguments; the application's ledger stays in dumps.
SELECT upgrade_fixture.expect('registrations', string_agg(format('%s %s %s %s', ledger, coalesce(negative_rule, '<NULL>'), builtin, slots), '; ' ORDER BY ledger::text),
       '"Adjustment" <NULL> f 1; "Inherited" <NULL> f 1; "InventoryLedger" refuse f 1; "Odd" refuse f 1; "SharedA" <NULL> f 1; "SharedB" <NULL> f 1; "Suspended" <NULL> f 1; inventory.ledger items.allow_negative t 1')
  FROM inventory.tracked_ledgers;
SELECT upgrade_fixture.expect('the balance table the update made tenant-scoped is the application''s',
       string_agg(format('%s %s', relid, builtin), ','), '"AdjustmentBalance" f')
  FROM inventory.tenant_tables WHERE relid = 'public."AdjustmentBalance"'::regclass;
SELECT upgrade_fixture.expect('a suspended ledger stays suspended', string_agg(tgname || ' ' || tgenabled::text, ',' ORDER BY tgname),
       'inventory_append_only O,inventory_append_only_truncate O,inventory_balances D,inventory_balances_flush D')
  FROM pg_trigger WHERE tgrelid = 'public."Suspended"'::regclass AND NOT tgisinternal;
-- "Inherited" is refused by 0.2.0 (a ledger in an inheritance tree): the update warned and left its
-- 0.1.0 trigger, which refuses postings; fixed, it is updated by update_balance_triggers().
SELECT upgrade_fixture.expect('a ledger the update could not track',
       upgrade_fixture.try($$INSERT INTO public."Inherited" ("itemId", qty) VALUES ('x', 1)$$),
       '55000: the balance trigger of public."Inherited" is inventory_ext 0.1.0''s');
SELECT upgrade_fixture.expect('its append-only guard stays',
       upgrade_fixture.try('DROP TRIGGER inventory_append_only ON public."Inherited"'), '0A000');
-- The two ledgers that share a balance table were left as they were, rows and all.
SELECT upgrade_fixture.expect('a shared balance table left alone', string_agg("itemId" || ' ' || qty, ',' ORDER BY "itemId"), 'a 3,b 4')
  FROM public."SharedBalance";
SELECT upgrade_fixture.expect('its ledgers'' postings refused', upgrade_fixture.try($$INSERT INTO public."SharedA" ("itemId", qty) VALUES ('a', 1)$$),
       '55000: the balance trigger of public."SharedA" is inventory_ext 0.1.0''s');
ALTER TABLE public."Inherited" NO INHERIT public."LedgerParent";
SELECT upgrade_fixture.expect('fixed, then updated', string_agg(l::text, ','), '"Inherited"') FROM inventory.update_balance_triggers() l;
INSERT INTO public."Inherited" ("itemId", qty) VALUES ('x', 1);
SELECT upgrade_fixture.expect('and its postings kept', string_agg(qty::text, ','), '2') FROM public."InheritedBalance";
SELECT upgrade_fixture.expect('balance table owner', relowner::regrole::text, 'upg_owner')
  FROM pg_class WHERE oid = 'public."InventoryBalance"'::regclass;
-- The update ran track_balances inside ALTER EXTENSION, where whatever is created becomes the
-- extension's: none of the application's objects may have become a member (DROP EXTENSION would drop it).
SELECT upgrade_fixture.expect('members of the extension outside its schema', coalesce(string_agg(m.what, ', '), 'none'), 'none')
  FROM (SELECT pg_describe_object(d.classid, d.objid, 0) AS what FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
         WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'inventory_ext' AND d.deptype = 'e') m
 WHERE m.what !~ '(^| )inventory\.' AND m.what !~ '^event trigger inventory_';
SELECT upgrade_fixture.expect('triggers of the Prisma ledger', string_agg(tgname, ',' ORDER BY tgname),
       'inventory_append_only,inventory_append_only_truncate,inventory_balances,inventory_balances_flush')
  FROM pg_trigger WHERE tgrelid = 'public."InventoryLedger"'::regclass AND NOT tgisinternal;

-- Every balance equals its ledger's sum (upgrade_fixture.drift counts the keys where it does not).
SELECT upgrade_fixture.expect('keys whose balance is not the ledger sum', upgrade_fixture.drift()::text, '0');
SELECT upgrade_fixture.expect('balance rows', (SELECT count(*) FROM inventory.balances) || ' ' || (SELECT count(*) FROM public."InventoryBalance"), '5 7');

-- Reconcile history is kept; a run now finds nothing and records its new columns.
SELECT upgrade_fixture.expect('reconcile history', string_agg(status, ',' ORDER BY id), 'corrected,clean')
  FROM inventory.reconcile_runs;
SELECT upgrade_fixture.expect('findings kept', count(*)::text, '1') FROM inventory.reconcile_findings;
SELECT upgrade_fixture.expect('a reconcile after the update', count(*)::text, '0') FROM inventory.reconcile();
-- (The two ledgers that share a balance table cannot be reconciled: the run says so, the others pass.)
SELECT upgrade_fixture.expect('its run', status || ': ' || coalesce(detail, 'no detail'),
       'failed: could not reconcile public."SharedA": public."SharedBalance" keeps the balances of ledger public."SharedB" already; public."SharedB": public."SharedBalance" keeps the balances of ledger public."SharedA" already')
  FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;

-- The pg_cron job is there and what it runs works.
SELECT upgrade_fixture.expect('the pg_cron job', string_agg(schedule || ' ' || command, ';'), '0 3 * * * SELECT inventory.reconcile_run()')
  FROM cron.job WHERE jobname = 'inventory-reconcile';
SELECT upgrade_fixture.expect('the job''s command', upgrade_fixture.try('SELECT inventory.reconcile_run()'), 'ok');

-- Isolation, as the application role.
SET ROLE upg_app;
SELECT upgrade_fixture.expect('no tenant, no rows', ((SELECT count(*) FROM inventory.items) + (SELECT count(*) FROM public."Item")
       + (SELECT count(*) FROM public."InventoryBalance") + (SELECT count(*) FROM inventory.stock))::text, '0');
SELECT upgrade_fixture.expect('no tenant, no posting',
       upgrade_fixture.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', 1)$$), '42501');
BEGIN;
SELECT inventory.set_org((SELECT org_id FROM upgrade_fixture.keys WHERE tenant = 'globex')) IS NOT NULL;
SELECT upgrade_fixture.expect('globex sees its own', (SELECT count(*) FROM inventory.items) || ' ' || (SELECT count(*) FROM public."Item")
       || ' ' || (SELECT count(*) FROM public."InventoryBalance") || ' ' || (SELECT count(*) FROM inventory.stock), '1 1 1 1');
SELECT upgrade_fixture.expect('globex cannot post to acme''s item',
       upgrade_fixture.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', 1)$$), '23503');
COMMIT;

-- Postings after the update keep both ledgers exact; the negative-stock rules hold.
BEGIN;
SELECT inventory.set_org((SELECT org_id FROM upgrade_fixture.keys WHERE tenant = 'acme')) IS NOT NULL;
SELECT inventory.post(i.id, l.id, 5) IS NOT NULL FROM inventory.items i, inventory.locations l WHERE i.sku = 'A-BOLT' AND l.code = 'BACK';
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical")
SELECT 'acme-' || (g % 2 + 1), 'loc-' || (g % 4), 2 FROM generate_series(1, 20) g;
SELECT upgrade_fixture.expect('on hand after a posting', inventory.on_hand(i.id, l.id)::text, '35')
  FROM inventory.items i, inventory.locations l WHERE i.sku = 'A-BOLT' AND l.code = 'BACK';
SELECT upgrade_fixture.expect('the Prisma ledger refuses negative stock',
       upgrade_fixture.try($$INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-2', 'loc-3', -1000)$$), '23514');
SELECT upgrade_fixture.expect('the built-in ledger too, for an item that does not allow it',
       upgrade_fixture.try($$SELECT inventory.post(i.id, l.id, -1000) FROM inventory.items i, inventory.locations l
                             WHERE i.sku = 'A-BOLT' AND l.code = 'MAIN'$$), '23514');
COMMIT;
RESET ROLE;
SELECT upgrade_fixture.expect('still exact after postings', upgrade_fixture.drift()::text, '0');

-- The hardened role: an API key is its only way into a tenant.
SELECT api_key AS globex_key FROM upgrade_fixture.keys WHERE tenant = 'globex' \gset
SET ROLE upg_hardened;
SELECT upgrade_fixture.expect('the hardened role cannot choose a tenant',
       upgrade_fixture.try($$SET app.org_id = '00000000-0000-4000-8000-000000000000'$$), '42501');
SELECT upgrade_fixture.expect('nor through set_org',
       upgrade_fixture.try($$SELECT inventory.set_org((SELECT org_id FROM upgrade_fixture.keys WHERE tenant = 'acme'))$$), '42501');
BEGIN;
SELECT inventory.set_org_by_api_key(:'globex_key') IS NOT NULL;
SELECT upgrade_fixture.expect('the hardened role enters globex by its key', string_agg(sku, ','), 'G-GEAR') FROM inventory.items;
COMMIT;
RESET ROLE;

-- 0.2.0's features on the updated data: slots on the Prisma ledger, and back.
SELECT inventory.set_balance_slots('public."InventoryLedger"', 4);
SET ROLE upg_app;
BEGIN;
SELECT inventory.set_org((SELECT org_id FROM upgrade_fixture.keys WHERE tenant = 'acme')) IS NOT NULL;
INSERT INTO public."InventoryLedger" ("itemId", "locationId", "qtyCanonical") VALUES ('acme-1', 'loc-0', 3);
SELECT upgrade_fixture.expect('totals over slots', sum(qty)::text, (SELECT sum("qtyCanonical")::text FROM public."InventoryLedger"))
  FROM public."InventoryBalance_totals";
COMMIT;
RESET ROLE;
SELECT inventory.set_balance_slots('public."InventoryLedger"', 1);
SELECT upgrade_fixture.expect('exact after slots and back', upgrade_fixture.drift()::text, '0');
