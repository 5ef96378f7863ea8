-- inventory_ext walkthrough: tenant context, organizations, stock and reconciliation.
-- Run by scripts/demo.sh against a scratch database that has pg_cron and inventory_ext installed.
\pset footer off
\set SHOW_CONTEXT never

\echo '== 1. The extensions'
SELECT extname, extversion FROM pg_extension WHERE extname IN ('pg_cron', 'inventory_ext') ORDER BY 1;

\echo '== 2. Two tenants. Each API key is returned once, to the caller; only its SHA-256 hash is stored.'
\echo '   (This walkthrough keeps the two keys in a temporary table, so that no key is ever printed:'
\echo '   "(SELECT api_key FROM pg_temp.demo_keys …)" below stands for the key a client sends.)'
CREATE TEMP TABLE demo_keys AS
SELECT 'acme' AS tenant, * FROM inventory.create_organization('Acme Corp', 'acme')
UNION ALL
SELECT 'globex', * FROM inventory.create_organization('Globex', 'globex');
SELECT org_id AS acme_id FROM demo_keys WHERE tenant = 'acme' \gset
SELECT org_id AS globex_id FROM demo_keys WHERE tenant = 'globex' \gset
\set globex_key '(SELECT api_key FROM pg_temp.demo_keys WHERE tenant = ''globex'')'
SELECT name, subdomain, active, id FROM inventory.organizations ORDER BY name;
SELECT tenant, left(api_key, 12) || '…' AS key_starts FROM demo_keys ORDER BY tenant;

\echo '== 3. An application role, and a table of the application''s made tenant-scoped by one call'
CREATE ROLE demo_app NOLOGIN;
SELECT inventory.grant_app_access('demo_app');
CREATE TABLE public.stock_notes (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    note text NOT NULL
);
SELECT * FROM inventory.enable_tenant_isolation('public.stock_notes');
GRANT SELECT, INSERT ON public.stock_notes TO demo_app;
GRANT SELECT ON pg_temp.demo_keys TO demo_app;  -- the walkthrough's stand-in for a client's key

\echo '== 4. The application, as demo_app, resolves each request''s tenant per transaction'
SET ROLE demo_app;
BEGIN;
SELECT inventory.resolve_org(host => 'acme.example.com:443') = :'acme_id' AS acme_by_subdomain;
INSERT INTO stock_notes (note) VALUES ('acme: 12 pallets of bolts'), ('acme: cycle count on aisle 4');
COMMIT;
BEGIN;
SELECT inventory.resolve_org(host => 'api.example.com', api_key => :globex_key) = :'globex_id' AS globex_by_api_key;
INSERT INTO stock_notes (note) VALUES ('globex: 3 crates of widgets');
COMMIT;

\echo '== 5. Each tenant sees only its own rows'
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
SELECT note FROM stock_notes ORDER BY id;
COMMIT;
BEGIN;
SELECT inventory.set_org_by_api_key(:globex_key) = :'globex_id' AS as_globex;
SELECT note FROM stock_notes ORDER BY id;
COMMIT;

\echo '== 6. Without a tenant: nothing is visible, and writing fails (42501)'
SELECT count(*) AS visible_without_tenant FROM stock_notes;
INSERT INTO stock_notes (note) VALUES ('whose is this?');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE

\echo '== 7. A wrong API key and an unknown subdomain: one error (28000), one message'
SELECT inventory.set_org_by_api_key('inv_0000000000000000000000000000000000000000000000000000000000000000');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
SELECT inventory.set_org_by_subdomain('initech');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE

\echo '== 8. A tenant cannot write another tenant''s row (42501), and a bad app.org_id is refused (22P02)'
BEGIN;
SELECT inventory.set_org(:'acme_id') = :'acme_id' AS as_acme;
INSERT INTO stock_notes (org_id, note) VALUES (:'globex_id', 'acme writes into globex');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('app.org_id', 'globex', true);
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE

\echo '== 9. Stock: Acme receives bolts, moves some, and on_hand reads the balances kept in the same transaction'
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
INSERT INTO inventory.items (sku, name) VALUES ('BOLT-M8', 'Bolt M8') RETURNING id AS bolt \gset
INSERT INTO inventory.locations (code, name) VALUES ('A1', 'Aisle 1') RETURNING id AS a1 \gset
INSERT INTO inventory.locations (code, name) VALUES ('B1', 'Bay 1') RETURNING id AS b1 \gset
SELECT inventory.post(:'bolt', :'a1', 100, reason => 'receipt', reference => 'PO-1') AS ledger_id;
SELECT inventory.transfer(:'bolt', :'a1', :'b1', 30, reference => 'MOVE-1') AS ledger_ids;
SELECT inventory.on_hand(:'bolt') AS everywhere, inventory.on_hand(:'bolt', :'a1') AS at_a1,
       inventory.on_hand(:'bolt', :'b1') AS at_b1;
SELECT l.code, b.qty, b.last_ledger_id FROM inventory.balances b JOIN inventory.locations l ON l.id = b.location_id ORDER BY l.code;
COMMIT;

\echo '== 10. Not enough stock (23514), and the ledger is append-only (55000): corrections are reversing entries'
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
SELECT inventory.post(:'bolt', :'b1', -31);
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
UPDATE inventory.ledger SET qty = 90 WHERE reference = 'PO-1';
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
SELECT inventory.post(:'bolt', :'a1', -10, reason => 'reverses 10 of PO-1 counted twice', reference => 'PO-1') AS ledger_id;
SELECT inventory.on_hand(:'bolt', :'a1') AS at_a1;
COMMIT;

\echo '== 11. Globex sees none of Acme''s stock'
BEGIN;
SELECT inventory.set_org_by_api_key(:globex_key) = :'globex_id' AS as_globex;
SELECT count(*) AS ledger_rows, (SELECT count(*) FROM inventory.balances) AS balance_rows FROM inventory.ledger;
COMMIT;

\echo '== 12. The tenant ends with the transaction'
BEGIN;
SELECT inventory.set_org(:'globex_id') = :'globex_id' AS as_globex;
COMMIT;
SELECT inventory.current_org_id() IS NULL AS no_tenant_after_commit;

\echo '== 13. The isolation report, as the administrator: no errors; the warnings say what is left and why'
RESET ROLE;
SELECT severity, object, problem FROM inventory.isolation_report();

\echo '== 14. An administrator rotates Globex''s key: the old key stops working at once'
SELECT left(inventory.rotate_api_key(:'globex_id'), 12) || '…' AS new_globex_key_starts;
SET ROLE demo_app;
SELECT inventory.set_org_by_api_key(:globex_key);
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
RESET ROLE;

\echo '== 15. Reconciliation: balances edited behind the trigger''s back are found; a small drift is corrected, a large one flagged'
UPDATE inventory.balances SET qty = qty + 0.004 WHERE location_id = :'a1';
UPDATE inventory.balances SET qty = qty - 5 WHERE location_id = :'b1';
SELECT l.code, r.expected, r.actual, r.variance, r.kind, r.action
  FROM inventory.reconcile() r JOIN inventory.locations l ON l.id = (r.key->>'location_id')::uuid ORDER BY l.code;
SELECT ledgers, keys_checked, findings, corrected, flagged, status FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;
\echo 'The flagged one is for a person to look at; once understood, rebuild and check again:'
SELECT inventory.rebuild_balances() AS balance_rows_rebuilt;
SELECT count(*) AS findings FROM inventory.reconcile();

\echo '== 16. Nightly, with pg_cron: one call schedules it (a second call updates the same job)'
SELECT inventory.schedule_reconcile('0 2 * * *') AS job_id;
SELECT inventory.schedule_reconcile('30 1 * * *') AS same_job_id;
SELECT jobname, schedule, command FROM cron.job;
SELECT inventory.unschedule_reconcile() AS unscheduled;
