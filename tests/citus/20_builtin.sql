-- The built-in schema on Citus (issue 17): inventory.distribute(), then two tenants over the coordinator
-- as an application role: isolation (the savepoint case too), postings of one and many rows, transfers,
-- on_hand, 23514 and 55000, reconcile finding and correcting planted drift, rebuild_balances. One TAP
-- line per check (numbered from 101); the pgbench run and the imported tenant are in run.sh.
\ir helpers.psql

\set a '00000000-0000-4000-8000-0000000000a1'
\set b '00000000-0000-4000-8000-0000000000b1'
\set widget '00000000-0000-4000-8000-0000000000a2'
\set gadget '00000000-0000-4000-8000-0000000000a3'
\set aisle '00000000-0000-4000-8000-0000000000a4'
\set bay '00000000-0000-4000-8000-0000000000a5'
\set beta_item '00000000-0000-4000-8000-0000000000b2'
\set beta_loc '00000000-0000-4000-8000-0000000000b3'

SET client_min_messages = warning;
CALL inventory.distribute();
RESET client_min_messages;
SELECT pg_temp.tap(101,
       (SELECT count(*) FILTER (WHERE partmethod = 'n') = 2 AND count(*) FILTER (WHERE partmethod = 'h') = 5
               AND count(DISTINCT colocationid) FILTER (WHERE partmethod = 'h') = 1
          FROM pg_dist_partition p JOIN inventory.builtin_tenant_tables() b ON b.tbl = p.logicalrelid),
       'distribute(): organizations and API keys reference tables, five tenant tables distributed by org_id, co-located');
SET client_min_messages = warning;
CALL inventory.distribute();
RESET client_min_messages;
SELECT pg_temp.tap(102,
       (SELECT count(*) FROM pg_dist_partition) = 7
       AND (SELECT bool_and(qual NOT LIKE '%SELECT%') FROM pg_policies WHERE schemaname = 'inventory'
               AND tablename IN ('organizations', 'organization_api_keys', 'items', 'locations', 'lots', 'ledger', 'balances'))
       AND (SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'inventory.ledger'::regclass) = 4,
       'distribute() again changes nothing: plain tenant policies, the ledger''s four foreign keys back');
SELECT pg_temp.tap(103,
       (SELECT array_agg(result ORDER BY nodeport) FROM run_command_on_workers(
            $$SELECT count(*) FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass
                AND balance_table = 'inventory.balances'::regclass AND negative_rule = 'items.allow_negative'$$)) = '{1,1}',
       'the tracked-ledger registry is on both workers, by name');

INSERT INTO inventory.organizations (id, name, subdomain) VALUES (:'a', 'Acme', 'acme'), (:'b', 'Beta', 'beta');
SELECT inventory.rotate_api_key(:'b') AS beta_key \gset
CREATE ROLE citus_shop LOGIN;
SELECT inventory.grant_app_access('citus_shop') \g /dev/null
SET ROLE citus_shop;

BEGIN;
SELECT pg_temp.tap(104, inventory.set_org(:'a') = :'a', 'set_org as the application role');
INSERT INTO inventory.items (id, sku, name) VALUES (:'widget', 'W-1', 'Widget'), (:'gadget', 'G-1', 'Gadget');
UPDATE inventory.items SET allow_negative = true WHERE id = :'gadget';
INSERT INTO inventory.locations (id, code, name) VALUES (:'aisle', 'A', 'Aisle'), (:'bay', 'B', 'Bay');
SELECT pg_temp.tap(105, inventory.post(:'widget', :'aisle', 10) > 0, 'a single-row posting through the coordinator');
SELECT pg_temp.tap(106, cardinality(inventory.transfer(:'widget', :'aisle', :'bay', 3)) = 2, 'a transfer: two entries in one statement');
-- Many rows in one INSERT … VALUES (an INSERT … SELECT by a role under row-level security becomes a COPY,
-- which Citus refuses: checked below, and docs/SCALE_OUT.md says so).
INSERT INTO inventory.ledger (item_id, location_id, qty, reason)
VALUES (:'gadget', :'bay', 1, 'bulk'), (:'widget', :'bay', 2, 'bulk'), (:'gadget', :'aisle', 3, 'bulk'),
       (:'widget', :'bay', 4, 'bulk'), (:'gadget', :'bay', 5, 'bulk'), (:'widget', :'aisle', 6, 'bulk');
SELECT pg_temp.tap(107, inventory.on_hand(:'widget') = 22 AND inventory.on_hand(:'widget', :'aisle') = 13
                        AND inventory.on_hand(:'gadget') = 9 AND inventory.on_hand(:'gadget', :'aisle') = 3,
       'a multi-row INSERT into the ledger; on_hand by item and by location');
SELECT pg_temp.tap(128, pg_temp.sqlstate_of(format(
           'INSERT INTO inventory.ledger (item_id, location_id, qty) SELECT %L, %L, g FROM generate_series(1, 3) g', :'widget', :'aisle')) <> '00000'
           AND inventory.on_hand(:'widget') = 22,
       'an INSERT … SELECT into the ledger as the application role is refused (Citus makes it a COPY) and changes nothing');
SELECT pg_temp.tap(108, (SELECT count(*) FROM inventory.balances) = 4 AND (SELECT bool_and(org_id = :'a') FROM inventory.balances),
       'the tenant reads its four balances, only its own');
COMMIT;

BEGIN;
SELECT inventory.set_org_by_api_key(:'beta_key') \g /dev/null
INSERT INTO inventory.items (id, sku, name) VALUES (:'beta_item', 'W-1', 'Beta widget');
INSERT INTO inventory.locations (id, code, name) VALUES (:'beta_loc', 'A', 'Beta aisle');
SELECT inventory.post(:'beta_item', :'beta_loc', 7) \g /dev/null
SELECT pg_temp.tap(109, (SELECT count(*) FROM inventory.ledger) = 1 AND (SELECT count(*) FROM inventory.items) = 1
                        AND inventory.on_hand(:'widget') = 0 AND inventory.on_hand(:'beta_item') = 7,
       'set_org_by_api_key reaches the shards: the second tenant sees its one entry and none of the first''s stock');
SELECT pg_temp.tap(110, pg_temp.sqlstate_of(format('SELECT inventory.post(%L, %L, 1)', :'widget', :'aisle')) = '23503',
       'the second tenant cannot post against the first''s item (23503: no such item in its tenant)');
COMMIT;

-- A tenant switch inside a subtransaction is refused (Citus would keep the old tenant on the shards).
BEGIN;
SELECT inventory.set_org(:'a') \g /dev/null
SELECT count(*) AS before FROM inventory.ledger \gset
SAVEPOINT inner_work;
SELECT pg_temp.tap(111, pg_temp.sqlstate_of(format('SELECT inventory.set_org(%L)', :'b')) = '0A000',
       'set_org to another tenant inside a savepoint: 0A000');
SELECT pg_temp.tap(112, pg_temp.sqlstate_of(format('SET LOCAL app.org_id = %L', :'b')) = '0A000',
       'SET LOCAL app.org_id to another tenant inside a savepoint: 0A000');
SELECT pg_temp.tap(129, pg_temp.sqlstate_of(format('SELECT set_config(%L, %L, true)', 'app.org_id', :'b')) = '0A000',
       'set_config(''app.org_id'', …) inside a savepoint: 0A000');
SELECT pg_temp.tap(113, pg_temp.sqlstate_of(format('SELECT inventory.set_org(%L)', :'a')) = '00000',
       'the same tenant again inside a savepoint is allowed');
RELEASE SAVEPOINT inner_work;
SELECT pg_temp.tap(114, inventory.current_org_id() = :'a' AND (SELECT count(*) FROM inventory.ledger) = :before
                        AND (SELECT bool_and(org_id = :'a') FROM inventory.ledger),
       'after the savepoint is released the coordinator and the shards still agree on the first tenant');
COMMIT;
BEGIN;
SET LOCAL app.org_id = :'b';
SAVEPOINT s;
SELECT pg_temp.tap(115, pg_temp.sqlstate_of('RESET app.org_id') = '0A000', 'RESET app.org_id inside a savepoint: 0A000');
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.tap(116, (SELECT count(*) FROM inventory.ledger) = 1, 'the second tenant still reads its one entry');
COMMIT;

-- set_config and a session-level SET would change the coordinator only: refused even at the top level.
BEGIN;
SET LOCAL app.org_id = :'a';
SELECT count(*) AS a_rows FROM inventory.ledger \gset
SELECT pg_temp.tap(130, pg_temp.sqlstate_of(format('SELECT set_config(%L, %L, true)', 'app.org_id', :'b')) = '0A000'
                        AND pg_temp.sqlstate_of(format('SET app.org_id = %L', :'b')) = '0A000',
       'set_config(''app.org_id'', …) and a session-level SET app.org_id are refused on Citus (0A000): the shards would not follow');
COMMIT;
BEGIN;
SET LOCAL app.org_id = :'a';
SET LOCAL app.org_id = :'b';
SELECT pg_temp.tap(131, (SELECT count(*) FROM inventory.ledger) = 1 AND :a_rows > 1,
       'SET LOCAL to another tenant at the top level: the shards follow (the second tenant''s one entry)');
RESET app.org_id;
SELECT pg_temp.tap(132, (SELECT count(*) FROM inventory.ledger) = 0, 'RESET app.org_id at the top level: the shards follow (nothing)');
COMMIT;

BEGIN;
SELECT pg_temp.tap(117, (SELECT count(*) FROM inventory.ledger) + (SELECT count(*) FROM inventory.balances) = 0
                        AND pg_temp.sqlstate_of(format('SELECT inventory.post(%L, %L, 1)', :'widget', :'aisle')) = '42501',
       'without a tenant: nothing to read, and a posting is refused with 42501');
COMMIT;

BEGIN;
SELECT inventory.set_org(:'a') \g /dev/null
SELECT pg_temp.tap(118, pg_temp.sqlstate_of(format('SELECT inventory.post(%L, %L, -100)', :'widget', :'aisle')) = '23514',
       'taking more than is on hand: 23514 (not XX000)');
SELECT pg_temp.tap(119, pg_temp.sqlstate_of(format('SELECT inventory.post(%L, %L, -100)', :'gadget', :'aisle')) = '00000'
                        AND inventory.on_hand(:'gadget', :'aisle') = -97,
       'an item that allows negative stock goes below zero');
SELECT pg_temp.tap(120, pg_temp.sqlstate_of('UPDATE inventory.ledger SET qty = 1') = '55000'
                        AND pg_temp.sqlstate_of('DELETE FROM inventory.ledger') = '55000',
       'UPDATE and DELETE on the ledger: 55000 (append-only, on every shard)');
SELECT pg_temp.tap(121, pg_temp.drifted() = 0, 'the tenant''s balances equal its ledger sums');
COMMIT;
RESET ROLE;

-- Reconcile: drift planted by hand (as a superuser, straight into the balances).
SELECT pg_temp.tap(122, pg_temp.drifted() = 0, 'every tenant''s balances equal the ledger sums');
UPDATE inventory.balances SET qty = qty + 0.004 WHERE org_id = :'a' AND item_id = :'widget' AND location_id = :'aisle';
UPDATE inventory.balances SET qty = qty + 5 WHERE org_id = :'a' AND item_id = :'widget' AND location_id = :'bay';
DELETE FROM inventory.balances WHERE org_id = :'b';
CREATE TEMP TABLE found ON COMMIT PRESERVE ROWS AS SELECT * FROM inventory.reconcile();
SELECT pg_temp.tap(123,
       (SELECT array_agg(kind || ':' || action || ':' || variance ORDER BY variance) FROM found)
       = '{missing:flagged:-7,drift:corrected:0.004,drift:flagged:5}',
       'reconcile finds the three planted differences and corrects the one within tolerance');
SELECT pg_temp.tap(124,
       (SELECT status = 'flagged' AND findings = 3 AND corrected = 1 FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1)
       AND pg_temp.drifted() = 2,
       'the run is recorded; two differences are left for a person to look at');
SELECT pg_temp.tap(125, (SELECT count(*) FROM inventory.reconcile(tolerance => 10)) = 2 AND pg_temp.drifted() = 0,
       'a run with a wider tolerance corrects the rest (a missing balance row is made again)');
UPDATE inventory.balances SET qty = 0 WHERE org_id = :'b';
SELECT pg_temp.tap(126, inventory.rebuild_balances('inventory.ledger', :'b') = 1 AND pg_temp.drifted() = 0,
       'rebuild_balances of one tenant');
SELECT pg_temp.tap(127, inventory.rebuild_balances() = 5 AND pg_temp.drifted() = 0, 'rebuild_balances of every tenant');

-- Hot keys over slots are not supported on Citus (reconcile could not fold a spread key on a shard).
SELECT pg_temp.tap(133, pg_temp.sqlstate_of($$SELECT inventory.set_balance_slots('inventory.ledger', 4)$$) = '0A000'
                        AND (SELECT slots FROM inventory.tracked_ledgers WHERE ledger = 'inventory.ledger'::regclass) = 1,
       'set_balance_slots on a distributed ledger: 0A000, nothing changed');
