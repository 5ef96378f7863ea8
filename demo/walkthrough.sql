-- inventory_ext walkthrough: tenant context, organizations, stock, reconciliation, backups and the
-- hardened tenant context (README's "A 5-minute tour", each step with its real output).
-- Run by scripts/demo.sh against a scratch database, in a scratch cluster that preloads inventory_ext and
-- pg_cron and is removed afterwards: the last step changes a cluster-wide privilege.
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
\set acme_key '(SELECT api_key FROM pg_temp.demo_keys WHERE tenant = ''acme'')'
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

\echo '== 9. Stock: Acme receives bolts and nuts, moves some, and on_hand reads the balances kept in the same transaction'
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
INSERT INTO inventory.items (sku, name) VALUES ('BOLT-M8', 'Bolt M8') RETURNING id AS bolt \gset
INSERT INTO inventory.items (sku, name) VALUES ('NUT-M8', 'Nut M8') RETURNING id AS nut \gset
INSERT INTO inventory.locations (code, name) VALUES ('A1', 'Aisle 1') RETURNING id AS a1 \gset
INSERT INTO inventory.locations (code, name) VALUES ('B1', 'Bay 1') RETURNING id AS b1 \gset
INSERT INTO inventory.locations (code, name) VALUES ('C1', 'Cage 1') RETURNING id AS c1 \gset
SELECT inventory.post(:'bolt', :'a1', 100, reason => 'receipt', reference => 'PO-1') AS ledger_id;
SELECT inventory.transfer(:'bolt', :'a1', :'b1', 30, reference => 'MOVE-1') AS ledger_ids;
SELECT inventory.post(:'nut', :'a1', 500, reason => 'receipt', reference => 'PO-2') AS ledger_id;
SELECT inventory.transfer(:'nut', :'a1', :'c1', 120, reference => 'MOVE-2') AS ledger_ids;
SELECT inventory.post(:'bolt', :'c1', 40, reason => 'receipt', reference => 'PO-3') AS ledger_id;
SELECT inventory.on_hand(:'bolt') AS bolts_everywhere, inventory.on_hand(:'bolt', :'a1') AS bolts_at_a1,
       inventory.on_hand(:'nut') AS nuts_everywhere;
SELECT i.sku, l.code, b.qty, b.last_ledger_id
  FROM inventory.balances b JOIN inventory.items i ON i.id = b.item_id JOIN inventory.locations l ON l.id = b.location_id
 ORDER BY i.sku, l.code;
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
UPDATE inventory.balances SET qty = qty + 0.004 WHERE item_id = :'bolt' AND location_id = :'a1';
UPDATE inventory.balances SET qty = qty - 5 WHERE item_id = :'bolt' AND location_id = :'b1';
SELECT i.sku, l.code, r.expected, r.actual, r.variance, r.kind, r.action
  FROM inventory.reconcile() r JOIN inventory.items i ON i.id = (r.key->>'item_id')::uuid
  JOIN inventory.locations l ON l.id = (r.key->>'location_id')::uuid ORDER BY i.sku, l.code;
SELECT ledgers, keys_checked, findings, corrected, flagged, status FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;
\echo 'The flagged one is for a person to look at; once understood, rebuild and check again:'
SELECT inventory.rebuild_balances() AS balance_rows_rebuilt;
SELECT count(*) AS findings FROM inventory.reconcile();

\echo '== 16. A flash sale: each key''s balance may spread over up to 8 rows, so that checkouts stop queueing behind one row'
\echo '   (a posting takes a row no other transaction holds; one session alone never needs a second row, so the'
\echo '   nuts keep one here: tests/isolation''s hot_key_slots shows sessions spreading; read the totals in inventory.stock)'
SELECT inventory.set_balance_slots('inventory.ledger', 8);
BEGIN;
SELECT inventory.set_org_by_subdomain('acme') = :'acme_id' AS as_acme;
SELECT inventory.post(:'nut', :'a1', -25, reason => 'flash sale', reference => 'SO-1') AS ledger_id;
SELECT i.sku, l.code, b.slot, b.qty
  FROM inventory.balances b JOIN inventory.items i ON i.id = b.item_id JOIN inventory.locations l ON l.id = b.location_id
 WHERE i.sku = 'NUT-M8' ORDER BY l.code, b.slot;
SELECT i.sku, l.code, s.qty
  FROM inventory.stock s JOIN inventory.items i ON i.id = s.item_id JOIN inventory.locations l ON l.id = s.location_id
 ORDER BY i.sku, l.code;
COMMIT;
\echo 'After the sale, back to one row per key:'
SELECT inventory.set_balance_slots('inventory.ledger', 1);

\echo '== 17. Nightly, with pg_cron: one call schedules it (a second call updates the same job)'
SELECT inventory.schedule_reconcile('0 2 * * *') AS job_id;
SELECT inventory.schedule_reconcile('30 1 * * *') AS same_job_id;
SELECT jobname, schedule, command FROM cron.job;
SELECT inventory.unschedule_reconcile() AS unscheduled;

\echo '== 18. Is WAL archiving working? This scratch cluster archives nothing, and backup_status says so'
\echo '   (docs/BACKUP_RECOVERY.md sets archiving up; healthy then says whether a segment was archived in the last 25 hours, with no failure since)'
SELECT archiving, healthy, detail FROM inventory.backup_status();

\echo '== 19. One tenant as a versioned JSON document, for import_org on another server: its parts, not its text'
\echo '   (no API key material; balances are not in it: import_org rebuilds them from the ledger)'
SELECT key AS part,
       CASE jsonb_typeof(value)
         WHEN 'array' THEN jsonb_array_length(value) || ' rows'
         WHEN 'object' THEN 'fields ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(value) k)
         ELSE value #>> '{}' END AS holds
  FROM jsonb_each(inventory.export_org(:'acme_id')) ORDER BY key;

\echo '== 20. The hardened tenant context: from now on only an API key enters a tenant'
\echo '   (the SET privilege on app.org_id belongs to the cluster: this hardens every database of this scratch'
\echo '   cluster, which the demo then removes; inventory.grant_tenant_switch(''public'') undoes it)'
SELECT inventory.revoke_tenant_switch('public');
SET ROLE demo_app;
SET app.org_id = :'acme_id';
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
SELECT inventory.set_org(:'acme_id');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
BEGIN;
SELECT inventory.set_org_by_api_key(:acme_key) = :'acme_id' AS as_acme_by_api_key;
SELECT note FROM stock_notes ORDER BY id;
COMMIT;
RESET ROLE;
