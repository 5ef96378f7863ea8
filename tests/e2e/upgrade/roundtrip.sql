-- The updated database (after checks.sql) dumped and restored, as docs/BACKUP_RECOVERY.md does: the
-- DBA's grants come back (a GRANT inside the update script would have made them "initial" privileges,
-- which pg_dump leaves out), and so do the application's registrations and tenant tables.
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned
SELECT upgrade_fixture.expect('the application role''s grants',
       format('%s %s %s %s', has_schema_privilege('upg_app', 'inventory', 'USAGE'),
              has_function_privilege('upg_app', 'inventory.set_org(uuid)', 'EXECUTE'),
              has_function_privilege('upg_app', 'inventory.post(uuid,uuid,numeric,uuid,text,text)', 'EXECUTE'),
              has_table_privilege('upg_app', 'inventory.stock', 'SELECT')), 't t t t');
SELECT upgrade_fixture.expect('the hardened role''s way in',
       format('%s %s', has_schema_privilege('upg_hardened', 'inventory', 'USAGE'),
              has_function_privilege('upg_hardened', 'inventory.set_org_by_api_key(text)', 'EXECUTE')), 't t');
SELECT upgrade_fixture.expect('the ledger owner''s schema USAGE', has_schema_privilege('upg_owner', 'inventory', 'USAGE')::text, 'true');
SELECT upgrade_fixture.expect('registrations', string_agg(format('%s %s', ledger, builtin), ',' ORDER BY ledger::text),
       '"Adjustment" f,"Inherited" f,"InventoryLedger" f,"Odd" f,"SharedA" f,"SharedB" f,"Suspended" f,inventory.ledger t') FROM inventory.tracked_ledgers;
SELECT upgrade_fixture.expect('the application''s tenant tables', count(*)::text, '5')
  FROM inventory.tenant_tables WHERE NOT builtin;
SELECT upgrade_fixture.expect('exact', upgrade_fixture.drift()::text, '0');
SELECT api_key AS globex_key FROM upgrade_fixture.keys WHERE tenant = 'globex' \gset
SET ROLE upg_hardened;
BEGIN;
SELECT inventory.set_org_by_api_key(:'globex_key') IS NOT NULL;
SELECT upgrade_fixture.expect('the hardened role enters globex by its key', string_agg(sku, ','), 'G-GEAR') FROM inventory.items;
COMMIT;
RESET ROLE;
