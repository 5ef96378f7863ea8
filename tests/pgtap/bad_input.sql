-- Bad input through every public function: NULLs, empty and over-long strings, malformed UUIDs and
-- hosts, SQL injection attempts in identifiers and keys, huge and non-finite numerics. Each must fail
-- with its SQLSTATE (or, where the input is merely unusual, work), change nothing, and crash nothing
-- (a crashed backend would end this file early). The last test fails when a function of the extension
-- is missing from the list below.
\set A '''aaaaaaaa-0000-4000-8000-000000000001'''
\set injection '''x''''; DROP TABLE adv.moves; --'''
\set quoted_injection '''x"; DROP TABLE adv.moves; --'''
BEGIN;
SELECT no_plan();
CREATE TEMP TABLE covered (signature text);
GRANT INSERT ON covered TO PUBLIC;
CREATE FUNCTION pg_temp.covers(VARIADIC signatures text[]) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO covered SELECT unnest(signatures) $$;
-- Built-in stock of tenant A for the ledger functions.
SELECT set_config('app.org_id', :A, true);
INSERT INTO inventory.items (id, sku, name) VALUES ('aaaaaaaa-0000-4000-a000-000000000001', 'BAD-1', 'item');
INSERT INTO inventory.locations (id, code, name) VALUES
    ('aaaaaaaa-0000-4000-b000-000000000001', 'B1', 'one'), ('aaaaaaaa-0000-4000-b000-000000000002', 'B2', 'two');
SELECT inventory.post('aaaaaaaa-0000-4000-a000-000000000001', 'aaaaaaaa-0000-4000-b000-000000000001', 10);
\set item '''aaaaaaaa-0000-4000-a000-000000000001'''
\set loc '''aaaaaaaa-0000-4000-b000-000000000001'''
\set loc2 '''aaaaaaaa-0000-4000-b000-000000000002'''
SELECT set_config('app.org_id', '', true);
CREATE TEMP TABLE before AS
SELECT (SELECT count(*) FROM inventory.organizations) AS orgs, (SELECT count(*) FROM adv.items) AS items,
       (SELECT count(*) FROM adv.moves) AS moves, (SELECT count(*) FROM inventory.ledger) AS ledger;

-- Tenant context, as the application role.
SET LOCAL ROLE adv_app;
SELECT pg_temp.covers('inventory.current_org_id()', 'inventory.require_org_id()', 'inventory.set_org(uuid)',
              'inventory.set_org_by_subdomain(text)', 'inventory.set_org_by_api_key(text)', 'inventory.resolve_org(uuid,text,text)');
SELECT is(inventory.current_org_id(), NULL, 'current_org_id without a tenant is NULL');
SELECT throws_ok('SELECT inventory.require_org_id()', '42501', NULL, 'require_org_id without a tenant');
SELECT throws_ok($$SET LOCAL app.org_id = 'not-a-uuid'$$, '22P02', NULL, 'a malformed app.org_id');
SELECT throws_ok(format('SET LOCAL app.org_id = %L', :injection), '22P02', NULL, 'an injection attempt as app.org_id');
SELECT throws_ok('SELECT inventory.set_org(NULL)', '28000', NULL, 'set_org(NULL)');
SELECT throws_ok($$SELECT inventory.set_org('00000000-0000-0000-0000-000000000000')$$, '28000', NULL, 'set_org of the nil UUID');
SELECT throws_ok($$SELECT inventory.set_org('zzz')$$, '22P02', NULL, 'set_org of a malformed UUID');
SELECT throws_ok(format('SELECT inventory.set_org_by_subdomain(%L)', s), '28000', NULL, 'set_org_by_subdomain(' || left(coalesce(replace(s, E'\n', '\n'), 'NULL'), 30) || ')')
  FROM unnest(ARRAY[NULL, '', repeat('a', 100000), :injection, 'ÄCME', E'tenant-\na', 'tenant-a.', '-tenant-a']) s;
SELECT throws_ok(format('SELECT inventory.set_org_by_api_key(%L)', k), '28000', NULL, 'set_org_by_api_key(' || left(coalesce(k, 'NULL'), 30) || ')')
  FROM unnest(ARRAY[NULL, '', repeat('x', 100000), 'inv_' || repeat('0', 64), 'inv_' || repeat('0', 8), :injection,
                    $$' OR '1'='1$$, 'inv_%', 'inv__________']) k;
SELECT throws_ok(format('SELECT inventory.resolve_org(host => %L)', h), '22023', NULL, 'resolve_org(host => ' || left(h, 30) || ')')
  FROM unnest(ARRAY['bad host', repeat('a.', 50000) || 'com', 'acme..example.com', 'acme.example.com:99999', :injection, 'acme.example.com/x']) h;
SELECT throws_ok($$SELECT inventory.resolve_org(api_key => 'nope')$$, '28000', NULL, 'resolve_org with a wrong key');
SELECT throws_ok('SELECT inventory.resolve_org()', '28000', NULL, 'resolve_org with nothing to go on');
SELECT is(inventory.current_org_id(), NULL, 'after all of it there is still no tenant');

-- The ledger, as the application role of tenant A.
SELECT pg_temp.covers('inventory.post(uuid,uuid,numeric,uuid,text,text)', 'inventory.transfer(uuid,uuid,uuid,numeric,uuid,text)',
              'inventory.on_hand(uuid,uuid)', 'inventory.reconcile(regclass,uuid,numeric,boolean)',
              'inventory.reconcile_run(regclass,uuid,numeric,boolean)');
SELECT set_config('app.org_id', :A, true);
SELECT throws_ok(format('SELECT inventory.post(%L, %L, %s)', :item, :loc, q), '22023', NULL, 'post of quantity ' || q)
  FROM unnest(ARRAY['0', 'NULL', '''NaN''', '''Infinity''', '''-Infinity''', '0.0000000000000000000000001 - 0.0000000000000000000000001']) q;
SELECT throws_ok(format('SELECT inventory.post(%L, %L, 1e131072)', :item, :loc), '22003', NULL, 'a quantity beyond numeric');
SELECT throws_ok(format('SELECT inventory.post(%L, %L, -1e1000)', :item, :loc), '23514', NULL, 'a huge negative quantity meets the stock guard');
SELECT throws_ok(format('SELECT inventory.post(NULL, %L, 1)', :loc), '23502', NULL, 'post without an item');
SELECT throws_ok(format('SELECT inventory.post(%L, %L, 1)', 'bbbbbbbb-0000-4000-a000-000000000001', :loc), '23503', NULL, 'post of an unknown item');
SELECT throws_ok(format('SELECT inventory.transfer(%L, %L, %L, %s)', :item, :loc, :loc2, q), '22023', NULL, 'transfer of quantity ' || q)
  FROM unnest(ARRAY['0', '-1', 'NULL', '''NaN''']) q;
SELECT throws_ok(format('SELECT inventory.transfer(%L, %L, %L, 1)', :item, :loc, :loc), '22023', NULL, 'transfer to the same location');
SELECT is(inventory.on_hand(NULL), 0::numeric, 'on_hand(NULL) is 0');
SELECT is(inventory.on_hand(:item), 10::numeric, 'and the stock is as it was');
SELECT throws_ok(format('SELECT inventory.reconcile(tolerance => %L)', t), '22023', NULL, 'reconcile with tolerance ' || coalesce(t, 'NULL'))
  FROM unnest(ARRAY[NULL, '-1', 'NaN', 'Infinity']) t;
SELECT throws_ok($$SELECT inventory.reconcile_run('pg_class')$$, '22023', NULL, 'reconcile_run of an untracked table');
RESET ROLE;
SELECT set_config('app.org_id', '', true);

-- Organizations, as a superuser.
SELECT pg_temp.covers('inventory.create_organization(text,text)', 'inventory.rotate_api_key(uuid)',
              'inventory.set_organization_active(uuid,boolean)', 'inventory.grant_app_access(regrole)');
SELECT throws_ok(format('SELECT inventory.create_organization(%L, %L)', n, s), c, NULL,
                 'create_organization(' || left(coalesce(n, 'NULL'), 20) || ', ' || left(coalesce(s, 'NULL'), 30) || ')')
  FROM (VALUES (NULL, NULL, '22023'), ('', NULL, '22023'), ('   ', NULL, '22023'), (repeat('n', 201), NULL, '22023'),
               ('X', 'Bad_Sub', '22023'), ('X', :injection, '22023'), ('X', repeat('a', 64), '22023'),
               ('X', 'tenant-a', '23505')) AS v(n, s, c);
-- A NULL organization is an unknown one: the one 28000 of every bad credential (SPEC §1).
SELECT throws_ok('SELECT inventory.rotate_api_key(NULL)', '28000', NULL, 'rotate_api_key(NULL)');
SELECT throws_ok($$SELECT inventory.rotate_api_key('cccccccc-0000-4000-8000-000000000003')$$, '28000', NULL, 'rotate_api_key of an unknown organization');
SELECT throws_ok('SELECT inventory.set_organization_active(NULL, true)', '28000', NULL, 'set_organization_active of a NULL organization');
SELECT throws_ok(format('SELECT inventory.set_organization_active(%L, NULL)', :A), '22023', NULL, 'set_organization_active(…, NULL)');
SELECT throws_ok('SELECT inventory.grant_app_access(NULL)', '22023', NULL, 'grant_app_access(NULL)');
SELECT throws_ok(format('SELECT inventory.grant_app_access(%L)', :injection), '42602', NULL, 'grant_app_access of an injection attempt (no such role name)');

-- Isolation helpers: identifiers are quoted, never pasted.
SELECT pg_temp.covers('inventory.enable_tenant_isolation(regclass,name,uuid,boolean)', 'inventory.disable_tenant_isolation(regclass)',
              'inventory.isolation_report(name[])', 'inventory.backfill_org_column(regclass,uuid,name,integer)',
              'inventory.open_policies(regclass,name)', 'inventory.fill_org_column_batch(regclass,uuid,name,bigint,bigint,integer)');
SELECT throws_ok('SELECT inventory.enable_tenant_isolation(NULL)', '22023', NULL, 'enable_tenant_isolation(NULL)');
-- A dangling regclass (the OID of a dropped table): PostgreSQL's own 42P01, not an internal error.
CREATE TABLE adv.dropped (id int PRIMARY KEY);
SELECT 'adv.dropped'::regclass::oid AS dropped \gset
DROP TABLE adv.dropped;
SELECT throws_ok(format('SELECT inventory.enable_tenant_isolation(%s::regclass)', :dropped), '42P01', NULL,
                 'enable_tenant_isolation of a dropped table''s OID');
SELECT throws_ok(format('SELECT inventory.disable_tenant_isolation(%s::regclass)', :dropped), '42P01', NULL,
                 'disable_tenant_isolation of a dropped table''s OID');
SELECT throws_ok(format('CALL inventory.backfill_org_column(%s::regclass, %L)', :dropped, :A), '42P01', NULL,
                 'backfill_org_column of a dropped table''s OID');
SELECT is((SELECT count(*) FROM inventory.open_policies(:dropped::regclass, 'org_id')), 0::bigint,
          'open_policies of a dropped table''s OID lists nothing');
SELECT is((SELECT count(*) FROM inventory.open_policies(NULL, NULL)), 0::bigint, 'open_policies(NULL, NULL) lists nothing');
SELECT is((SELECT count(*) FROM inventory.open_policies('adv.items', :quoted_injection)), 1::bigint,
          'open_policies with an injection attempt as the column: a name like any other (the tenant policy is not on it)');
CREATE TEMP TABLE scratch_tenant (id int);
SELECT throws_ok('SELECT inventory.enable_tenant_isolation(''scratch_tenant'')', '22023', NULL, 'enable_tenant_isolation of a temporary table');
SELECT throws_ok(format('SELECT inventory.enable_tenant_isolation(%L)', :injection), '42602', NULL, 'an injection attempt as the table (no such relation name)');
SELECT throws_ok(format('SELECT inventory.enable_tenant_isolation(%L, %L, %L)', 'adv.moves', 'org_id', 'not-a-uuid'), '22P02', NULL,
                 'enable_tenant_isolation with a malformed backfill organization');
SELECT throws_ok('SELECT inventory.disable_tenant_isolation(NULL)', '22023', NULL, 'disable_tenant_isolation(NULL)');
SELECT is((SELECT count(*) FROM inventory.isolation_report(ARRAY[:injection]) WHERE object NOT LIKE 'role %'), 0::bigint,
          'isolation_report of an injection attempt as a schema finds no such schema (only the cluster''s role warnings)');
SELECT throws_ok('CALL inventory.backfill_org_column(NULL, NULL)', '22023', NULL, 'backfill_org_column(NULL, NULL)');
SELECT throws_ok('SELECT inventory.fill_org_column_batch(NULL, NULL, NULL, NULL, NULL, NULL)', '22023', NULL, 'fill_org_column_batch of NULLs');
SELECT throws_ok(format('SELECT inventory.fill_org_column_batch(%L, %L, %L, 5, 1, NULL)', 'adv.moves', :A, 'org_id'), '22023', NULL,
                 'fill_org_column_batch of a backwards page range');
SELECT throws_ok(format('SELECT inventory.fill_org_column_batch(%L, %L, %L, NULL, NULL, 0)', 'adv.moves', :A, 'org_id'), '22023', NULL,
                 'fill_org_column_batch of no batch size');
SELECT throws_ok(format('SELECT inventory.fill_org_column_batch(%L, %L, %L, NULL, NULL, 10)', 'adv.moves', :A, :quoted_injection), '42703', NULL,
                 'fill_org_column_batch with an injection attempt as the column');
SELECT throws_ok(format('CALL inventory.backfill_org_column(%L, %L, %L)', 'adv.moves', :A, :quoted_injection), '42703', NULL,
                 'backfill_org_column with an injection attempt as the column');

-- The online procedures and their helpers. This file runs in one transaction, where the procedures
-- refuse to start (25001, after their arguments are checked); tests/pg_regress/sql/20_isolation_online.sql
-- and 21_track_online.sql run them outside one.
SELECT pg_temp.covers('inventory.enable_tenant_isolation_online(regclass,name,uuid,boolean,interval,integer)',
              'inventory.tenant_isolation_next_step(regclass,name,uuid,boolean)',
              'inventory.track_balances_online(regclass,text,name[],name)',
              'inventory.balance_fill_start(regclass,text,name[],name)',
              'inventory.concurrent_index_start(text)', 'inventory.background_result(bigint)');
SELECT throws_ok('SELECT * FROM inventory.tenant_isolation_next_step(NULL)', '22023', NULL, 'tenant_isolation_next_step(NULL)');
SELECT throws_ok(format('SELECT * FROM inventory.tenant_isolation_next_step(%s::regclass)', :dropped), '42P01', NULL,
                 'tenant_isolation_next_step of a dropped table''s OID');
SELECT throws_ok(format('SELECT * FROM inventory.tenant_isolation_next_step(%L, %L)', 'adv.moves', :quoted_injection), '22023', NULL,
                 'tenant_isolation_next_step with an injection attempt as the column (rows and no such column)');
SELECT throws_ok(format('SELECT * FROM inventory.tenant_isolation_next_step(%L, %L, %L)', 'adv.moves', :quoted_injection, :A), '25001', NULL,
                 'tenant_isolation_next_step in a transaction block, its arguments good');
SELECT throws_ok('CALL inventory.enable_tenant_isolation_online(NULL)', '22023', NULL, 'enable_tenant_isolation_online(NULL)');
SELECT throws_ok($$CALL inventory.enable_tenant_isolation_online('adv.moves', lock_wait => '-1 s')$$, '22023', NULL,
                 'enable_tenant_isolation_online with a negative lock_wait');
SELECT throws_ok(format('CALL inventory.enable_tenant_isolation_online(%L, %L, %L)', 'adv.moves', :quoted_injection, :A), '25001', NULL,
                 'enable_tenant_isolation_online in a transaction block');
SELECT throws_ok('SELECT inventory.balance_fill_start(NULL, NULL, NULL, NULL)', '22023', NULL, 'balance_fill_start of NULLs');
SELECT throws_ok('CALL inventory.track_balances_online(NULL, NULL, NULL, NULL)', '22023', NULL, 'track_balances_online of NULLs');
SELECT throws_ok(format('CALL inventory.track_balances_online(%L, %L, ARRAY[%L]::name[], %L)', 'adv.moves', 'adv.b', :quoted_injection, 'qty'),
                 '25001', NULL, 'track_balances_online with an injection attempt as a key column: refused before it reads the columns (in a transaction block)');
SELECT throws_ok($$CALL inventory.track_balances_online('adv.moves', 'adv.b', ARRAY['item_id'], 'qty')$$, '25001', NULL,
                 'track_balances_online in a transaction block');
SELECT throws_ok('SELECT * FROM inventory.background_result(-1)', '22023', NULL, 'background_result of no request');
SELECT throws_ok('SELECT * FROM inventory.background_result(9223372036854775807)', '22023', NULL, 'background_result of a huge number');
SELECT is((SELECT count(*) FROM inventory.background_result(NULL)), 0::bigint, 'background_result(NULL) is empty (STRICT)');
SELECT throws_ok(format('SELECT inventory.concurrent_index_start(%L)', repeat('x', 20000)), '22023', NULL,
                 'concurrent_index_start of an over-long statement');

-- Balances: identifiers are quoted, never pasted.
SELECT pg_temp.covers('inventory.track_balances(regclass,text,name[],name,boolean)', 'inventory.untrack_balances(regclass)',
              'inventory.rebuild_balances(regclass,uuid)', 'inventory.balance_maintenance()', 'inventory.balance_rows()',
              'inventory.append_only_guard()', 'inventory.allow_negative_guard()');
SELECT throws_ok('SELECT inventory.track_balances(NULL, NULL, NULL, NULL)', '22023', NULL, 'track_balances of NULLs');
SELECT throws_ok($$SELECT inventory.track_balances('adv.moves', 'adv.b', '{}', 'qty')$$, '22023', NULL, 'track_balances without keys');
SELECT throws_ok(format('SELECT inventory.track_balances(%L, %L, ARRAY[%L]::name[], %L)', 'adv.moves', 'adv.b', :quoted_injection, 'qty'),
                 '42703', NULL, 'track_balances with an injection attempt as a key column');
SELECT throws_ok(format('SELECT inventory.track_balances(%L, %L, ARRAY[%L]::name[], %L)', 'adv.moves', 'adv.b', 'item_id', :quoted_injection),
                 '42703', NULL, 'track_balances with an injection attempt as the qty column');
SELECT throws_ok(format('SELECT inventory.track_balances(%L, %L, ARRAY[%L]::name[], %L)', 'adv.items', 'adv.b', 'id', 'sku'),
                 '22023', NULL, 'track_balances with a text quantity column');
SELECT throws_ok($$SELECT inventory.track_balances('adv.stock', 'adv.stock_balances', ARRAY['item_id'], 'qty')$$, '0A000', NULL,
                 'track_balances of a partitioned table (a row inserted into a partition would bypass the trigger)');
SELECT throws_ok($$SELECT inventory.track_balances('adv.stock_2026', 'adv.stock_balances', ARRAY['item_id'], 'qty')$$, '0A000', NULL,
                 'track_balances of a partition');
SELECT pg_temp.covers('inventory.set_balance_slots(regclass,integer)');
SELECT throws_ok('SELECT inventory.set_balance_slots(NULL, 4)', '22023', NULL, 'set_balance_slots(NULL, 4)');
SELECT throws_ok($$SELECT inventory.set_balance_slots('inventory.ledger', NULL)$$, '22023', NULL, 'set_balance_slots(ledger, NULL)');
SELECT throws_ok($$SELECT inventory.set_balance_slots('inventory.ledger', -1)$$, '22023', NULL, 'set_balance_slots with -1 slots');
SELECT throws_ok($$SELECT inventory.set_balance_slots('inventory.ledger', 2147483647)$$, '22023', NULL, 'set_balance_slots with 2^31-1 slots');
SELECT throws_ok($$SELECT inventory.set_balance_slots('adv.items', 2)$$, '22023', NULL, 'set_balance_slots of an untracked table');
SELECT is((SELECT slots FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass), 1, 'set_balance_slots refusals change nothing');
SELECT throws_ok('SELECT inventory.untrack_balances(NULL)', '22023', NULL, 'untrack_balances(NULL)');
SELECT throws_ok('SELECT inventory.rebuild_balances(NULL)', '22023', NULL, 'rebuild_balances(NULL)');
SELECT throws_ok($$SELECT inventory.rebuild_balances('adv.items')$$, '22023', NULL, 'rebuild_balances of an untracked table');
-- Trigger functions called as functions (only a superuser can): 0A000, as PostgreSQL's own trigger
-- functions answer ("trigger functions can only be called as triggers"); the backend survives.
SELECT throws_ok('SELECT inventory.balance_maintenance()', '0A000', NULL, 'the balance trigger called as a function');
SELECT throws_ok('SELECT inventory.append_only_guard()', '0A000', NULL, 'the append-only guard called as a function');
SELECT throws_ok('SELECT inventory.balance_rows()', '0A000', NULL, 'the row-level balance trigger called as a function');
SELECT throws_ok('SELECT inventory.allow_negative_guard()', '0A000', NULL, 'allow_negative''s guard called as a function');
SELECT throws_ok(format('SELECT inventory.track_balances(%s::regclass, %L, ARRAY[%L]::name[], %L)', :dropped, 'adv.b', 'a', 'qty'),
                 '42P01', NULL, 'track_balances of a dropped table''s OID');
SELECT throws_ok(format('SELECT inventory.untrack_balances(%s::regclass)', :dropped), '42P01', NULL,
                 'untrack_balances of a dropped table''s OID');
SELECT throws_ok(format('SELECT inventory.rebuild_balances(%s::regclass)', :dropped), '22023', NULL,
                 'rebuild_balances of a dropped table''s OID (not a tracked ledger)');
SELECT throws_ok(format('SELECT inventory.reconcile(%s::regclass)', :dropped), '22023', NULL,
                 'reconcile of a dropped table''s OID (not a tracked ledger)');

-- What DROP EXTENSION runs: the event trigger function refuses a direct call (0A000); the undo itself
-- is an administrator's (PUBLIC may not run it) and changes nothing when called by one here (this
-- database's CREATE EXTENSION did not make the grant in this fixture, or it did: both are covered by
-- tests/e2e/drop_extension.sh).
SELECT pg_temp.covers('inventory.on_ddl_command_start()', 'inventory.undo_cluster_changes()', 'inventory.on_ddl_command_end()',
                      'inventory.on_ddl_begin()');
SELECT throws_ok('SELECT inventory.on_ddl_command_start()', '0A000', NULL, 'the event trigger function called as a function');
SELECT throws_ok('SELECT inventory.on_ddl_command_end()', '0A000', NULL, 'the DDL check called as a function');
SELECT throws_ok('SELECT inventory.on_ddl_begin()', '0A000', NULL, 'the DDL check''s start called as a function');
SET LOCAL ROLE adv_app;
SELECT throws_ok('SELECT inventory.undo_cluster_changes()', '42501', NULL, 'an application role cannot run the undo');
RESET ROLE;

-- Upgrades (docs/UPGRADING.md): re-tracking ledgers that carry an older version's trigger is a
-- superuser's (it changes tables' owners and triggers); here no ledger has one, so it does nothing.
SELECT pg_temp.covers('inventory.update_balance_triggers()');
SET LOCAL ROLE adv_app;
SELECT throws_ok('SELECT * FROM inventory.update_balance_triggers()', '42501', NULL, 'an application role cannot update balance triggers');
RESET ROLE;
SET LOCAL ROLE adv_owner;
SELECT throws_ok('SELECT * FROM inventory.update_balance_triggers()', '42501', NULL, 'nor can a table owner');
RESET ROLE;
SELECT is((SELECT count(*) FROM inventory.update_balance_triggers()), 0::bigint, 'update_balance_triggers with nothing to update');

-- Reconciliation, backups, tenant moves, the hardened context.
SELECT pg_temp.covers('inventory.prune_reconcile_runs(interval)', 'inventory.schedule_reconcile(text,text)',
              'inventory.unschedule_reconcile(text)', 'inventory.require_pg_cron()', 'inventory.export_org(uuid)',
              'inventory.import_org(jsonb)', 'inventory.backup_status(interval)',
              'inventory.revoke_tenant_switch(regrole)', 'inventory.revoke_tenant_switch(text)',
              'inventory.grant_tenant_switch(regrole)', 'inventory.grant_tenant_switch(text)');
SELECT throws_ok(format('SELECT inventory.prune_reconcile_runs(%L)', a), '22023', NULL, 'prune_reconcile_runs(' || coalesce(a, 'NULL') || ')')
  FROM unnest(ARRAY[NULL, '-1 day']) a;
SELECT throws_ok($$SELECT inventory.schedule_reconcile('not a schedule')$$, '55000', NULL, 'schedule_reconcile where pg_cron is not installed');
SELECT throws_ok('SELECT inventory.unschedule_reconcile(NULL)', '55000', NULL, 'unschedule_reconcile where pg_cron is not installed');
SELECT throws_ok('SELECT inventory.require_pg_cron()', '55000', NULL, 'require_pg_cron where pg_cron is not installed');
SELECT throws_ok('SELECT inventory.export_org(NULL)', '22023', NULL, 'export_org(NULL)');
SELECT throws_ok($$SELECT inventory.export_org('cccccccc-0000-4000-8000-000000000003')$$, '22023', NULL, 'export_org of an unknown organization');
SELECT throws_ok(format('SELECT inventory.import_org(%L)', d), '22023', NULL, 'import_org(' || left(coalesce(d, 'NULL'), 40) || ')')
  FROM unnest(ARRAY[NULL, 'null', '[]', '"x"', '{}', '{"format": "inventory_ext.org/1", "organization": {}}',
                    '{"format": "inventory_ext.org/1", "organization": ' || repeat('[', 200) || repeat(']', 200) || '}']) d;
-- A well-formed document whose values PostgreSQL's input functions reject: 22023, naming the field.
CREATE TEMP TABLE good_doc AS SELECT jsonb_build_object(
    'format', 'inventory_ext.org/1', 'exported_at', '2026-11-29T10:00:00+00:00',
    'organization', jsonb_build_object('id', 'cccccccc-0000-4000-8000-00000000000c', 'name', 'Bad Input', 'subdomain', 'bad-input',
                                       'active', true, 'created_at', '2026-11-29T10:00:00+00:00', 'updated_at', '2026-11-29T10:00:00+00:00'),
    'items', jsonb_build_array(jsonb_build_object('id', 'cccccccc-0000-4000-a000-00000000000c', 'sku', 'S', 'name', 'n', 'uom', 'each',
                                                  'allow_negative', false, 'created_at', '2026-11-29T10:00:00+00:00')),
    'locations', jsonb_build_array(jsonb_build_object('id', 'cccccccc-0000-4000-b000-00000000000c', 'code', 'L', 'name', 'l',
                                                      'created_at', '2026-11-29T10:00:00+00:00')),
    'lots', jsonb_build_array(jsonb_build_object('id', 'cccccccc-0000-4000-c000-00000000000c', 'item_id', 'cccccccc-0000-4000-a000-00000000000c',
                                                 'code', 'LOT', 'expires_on', '2027-01-31', 'created_at', '2026-11-29T10:00:00+00:00')),
    'ledger', jsonb_build_array(jsonb_build_object('id', 1, 'item_id', 'cccccccc-0000-4000-a000-00000000000c',
                                                   'location_id', 'cccccccc-0000-4000-b000-00000000000c', 'lot_id', NULL, 'qty', '5',
                                                   'reason', NULL, 'reference', NULL, 'occurred_at', '2026-11-29T10:00:00+00:00',
                                                   'created_at', '2026-11-29T10:00:00+00:00', 'created_by', 'x'))) AS d;
SELECT throws_ok(format('SELECT inventory.import_org(%L)', jsonb_set(d, v.path, v.value)), '22023', 'import_org: ' || v.field || ' ' || v.problem,
                 'import_org with ' || v.field || ' = ' || left(v.value::text, 40))
  FROM good_doc, (VALUES
    ('{lots,0,expires_on}'::text[], '"2026-99-99"'::jsonb, 'lots[0].expires_on', 'must be a date string (e.g. "2026-11-29"), not "2026-99-99"'),
    ('{lots,0,expires_on}', '"2026-02-30"', 'lots[0].expires_on', 'must be a date string (e.g. "2026-11-29"), not "2026-02-30"'),
    ('{ledger,0,occurred_at}', '"2026-11-29T25:00:00+00:00"', 'ledger[0].occurred_at',
     'must be a timestamp string (e.g. "2026-11-29T10:00:00+00:00"), not "2026-11-29T25:00:00+00:00"'),
    ('{ledger,0,created_at}', '"2026-11-29T10:00:00+16:00"', 'ledger[0].created_at',
     'must be a timestamp string (e.g. "2026-11-29T10:00:00+00:00"), not "2026-11-29T10:00:00+16:00"'),
    ('{organization,created_at}', '"99999999-01-01T00:00:00+00:00"', 'organization.created_at',
     'must be a timestamp string (e.g. "2026-11-29T10:00:00+00:00"), not "99999999-01-01T00:00:00+00:00"'),
    ('{items,0,id}', '"urn:uuid:cccccccc-0000-4000-a000-00000000000c"', 'items[0].id',
     'must be a UUID string, not "urn:uuid:cccccccc-0000-4000-a000-00000000000c"'),
    ('{ledger,0,item_id}', '" cccccccc-0000-4000-a000-00000000000c"', 'ledger[0].item_id',
     'must be a UUID string, not " cccccccc-0000-4000-a000-00000000000c"'),
    ('{ledger,0,qty}', '"1e131072"', 'ledger[0].qty', 'must be a number written as a string (e.g. "12.5"), not "1e131072"'),
    ('{ledger,0,qty}', '"NaN"', 'ledger[0].qty', 'must be a number written as a string (e.g. "12.5"), not "NaN"'),
    ('{organization,subdomain}', '"BAD INPUT"', 'organization.subdomain',
     'must be a lower-case DNS label (e.g. "acme-eu"), not "BAD INPUT"'),
    ('{organization,name}', to_jsonb(repeat('n', 201)), 'organization.name',
     'must be a non-blank name of at most 200 characters, not ' || to_jsonb(repeat('n', 201))::text)) AS v(path, value, field, problem);
SELECT is((SELECT count(*) FROM inventory.organizations WHERE id = 'cccccccc-0000-4000-8000-00000000000c'), 0::bigint,
          'no document with a rejected value imported anything');
SELECT throws_ok(format('SELECT * FROM inventory.backup_status(%L)', a), '22023', NULL, 'backup_status(' || coalesce(a, 'NULL') || ')')
  FROM unnest(ARRAY[NULL, '-1 hour', '0']) a;
SELECT throws_ok(format('SELECT inventory.revoke_tenant_switch(%L::text)', r), c, NULL, 'revoke_tenant_switch(' || left(coalesce(r, 'NULL'), 30) || ')')
  FROM (VALUES (NULL, '22023'), ('no_such_role', '42704'), (:injection, '42704')) AS v(r, c);
SELECT throws_ok('SELECT inventory.revoke_tenant_switch(NULL::regrole)', '22023', NULL, 'revoke_tenant_switch(NULL::regrole)');
SELECT throws_ok(format('SELECT inventory.grant_tenant_switch(%L::text)', :injection), '42704', NULL, 'grant_tenant_switch of an injection attempt');
SELECT throws_ok('SELECT inventory.grant_tenant_switch(NULL::regrole)', '22023', NULL, 'grant_tenant_switch(NULL::regrole)');
-- A dangling regrole (the OID of a dropped role): 42704, as PostgreSQL answers an unknown role.
CREATE ROLE bad_input_dropped;
SELECT 'bad_input_dropped'::regrole::oid AS dropped_role \gset
DROP ROLE bad_input_dropped;
SELECT throws_ok(format('SELECT inventory.revoke_tenant_switch(%s::regrole)', :dropped_role), '42704', NULL,
                 'revoke_tenant_switch of a dropped role''s OID');
SELECT throws_ok(format('SELECT inventory.grant_tenant_switch(%s::regrole)', :dropped_role), '42704', NULL,
                 'grant_tenant_switch of a dropped role''s OID');
SELECT throws_ok(format('SELECT inventory.grant_app_access(%s::regrole)', :dropped_role), '42704', NULL,
                 'grant_app_access of a dropped role''s OID');

-- Citus's functions (sql/citus.sql) refuse to run where Citus is not installed, whatever they are given.
SELECT throws_ok(statement, '55000', NULL, statement || ' without Citus')
  FROM unnest(ARRAY['SELECT inventory.require_citus()', 'SELECT * FROM inventory.distribute_tables()',
                    'CALL inventory.distribute()', 'SELECT inventory.release_builtin_tables(true)',
                    'SELECT inventory.release_builtin_tables(NULL)', 'SELECT inventory.replace_registry(NULL, NULL)',
                    $$SELECT inventory.replace_registry('[{"ledger": "inventory.ledger"}]', '[]')$$,
                    'SELECT inventory.sync_registry_to_workers()']) AS statement;
SELECT is((SELECT count(*) FROM inventory.builtin_tenant_tables() WHERE tbl IS NOT NULL), 7::bigint,
          'builtin_tenant_tables() names the seven built-in tables (it takes no input)');
SELECT pg_temp.covers('inventory.require_citus()', 'inventory.distribute_tables()', 'inventory.distribute()',
                      'inventory.release_builtin_tables(boolean)', 'inventory.replace_registry(jsonb,jsonb)',
                      'inventory.sync_registry_to_workers()', 'inventory.builtin_tenant_tables()');

-- Nothing changed, nothing was dropped, every function was tried.
SELECT is((SELECT row(orgs, items, moves, ledger)::text FROM before),
          row((SELECT count(*) FROM inventory.organizations), (SELECT count(*) FROM adv.items),
              (SELECT count(*) FROM adv.moves), (SELECT count(*) FROM inventory.ledger))::text,
          'no organization, item, move or ledger row was added or removed');
SELECT has_table('adv', 'moves', 'adv.moves is still there');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text
                  FROM pg_proc p
                  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'inventory_ext'
                EXCEPT SELECT signature FROM covered ORDER BY 1), '{}'::text[],
          'every function of the extension is in this file');
SELECT * FROM finish();
ROLLBACK;
