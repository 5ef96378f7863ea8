-- Issue 13, point 4: PREPARE TRANSACTION after postings, then COMMIT PREPARED or ROLLBACK PREPARED:
-- balances stay exact (nothing of a statement's balance upkeep may outlive the statement, or need the
-- session that prepared it).
-- Needs max_prepared_transactions > 0. The suite's clusters use PostgreSQL's default, 0, so this file is
-- not in the schedule yet: to run it, add "max_prepared_transactions = 4" to the main schedule's
-- cluster in tests/pg_regress/run.sh (run_schedule regress schedule "max_prepared_transactions = 4")
-- and "test: 18_balance_prepared" to tests/pg_regress/schedule. Errors show their SQLSTATE only.
\set VERBOSITY sqlstate
\set org '''88888888-0000-4000-8000-000000000008'''
\set i1 '''ab000000-0000-4000-8000-000000000001'''
\set loc '''ac000000-0000-4000-8000-000000000001'''
SELECT current_setting('max_prepared_transactions')::int > 0 AS prepared_transactions_enabled;
INSERT INTO inventory.organizations (id, name) VALUES (:org, 'Prepared');
SELECT set_config('app.org_id', :org, false) IS NOT NULL AS tenant_set;
INSERT INTO inventory.items (id, sku, name) VALUES (:i1, 'PREP', 'Prepared item');
INSERT INTO inventory.locations (id, code, name) VALUES (:loc, 'PREPL', 'Location');
CREATE TABLE public.prep_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public.prep_moves', 'public.prep_balances', ARRAY['item'], 'qty');
CREATE FUNCTION regress.prep_state() RETURNS TABLE (app text, app_mismatches bigint, builtin text, builtin_mismatches bigint)
LANGUAGE sql AS $$
    SELECT (SELECT string_agg(item || '=' || qty, ' ' ORDER BY item) FROM public.prep_balances),
           (SELECT count(*) FROM (SELECT item, sum(qty) AS q FROM public.prep_moves GROUP BY 1) s
              FULL JOIN public.prep_balances b USING (item) WHERE s.q IS DISTINCT FROM b.qty),
           (SELECT string_agg(i.sku || '=' || b.qty, ' ' ORDER BY i.sku) FROM inventory.balances b
              JOIN inventory.items i ON i.org_id = b.org_id AND i.id = b.item_id
             WHERE b.org_id = '88888888-0000-4000-8000-000000000008'),
           (SELECT count(*) FROM (
                SELECT org_id, item_id, location_id, lot_id, sum(qty) AS q FROM inventory.ledger
                 WHERE org_id = '88888888-0000-4000-8000-000000000008' GROUP BY 1, 2, 3, 4) s
              FULL JOIN (SELECT * FROM inventory.balances WHERE org_id = '88888888-0000-4000-8000-000000000008') b
                ON b.org_id = s.org_id AND b.item_id = s.item_id AND b.location_id = s.location_id
               AND b.lot_id IS NOT DISTINCT FROM s.lot_id
             WHERE s.q IS DISTINCT FROM b.qty)
$$;

-- Postings (a rolled-back savepoint among them), prepared: nothing visible until COMMIT PREPARED.
BEGIN;
INSERT INTO public.prep_moves (item, qty) VALUES ('x', 5), ('y', 2);
SELECT inventory.post(:i1, :loc, 10) > 0 AS posted;
SAVEPOINT s;
INSERT INTO public.prep_moves (item, qty) VALUES ('x', 100);
SELECT inventory.post(:i1, :loc, 100) > 0 AS posted;
ROLLBACK TO SAVEPOINT s;
INSERT INTO public.prep_moves (item, qty) VALUES ('x', 1);
COPY public.prep_moves (item, qty) FROM STDIN;
y	3
z	4
\.
PREPARE TRANSACTION 'inventory_issue13_a';
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'inventory\_issue13\_%';
SELECT * FROM regress.prep_state();
COMMIT PREPARED 'inventory_issue13_a';
SELECT * FROM regress.prep_state();

-- Prepared, then rolled back: nothing of it stays.
BEGIN;
INSERT INTO public.prep_moves (item, qty) VALUES ('x', -6), ('w', 1);
SELECT inventory.post(:i1, :loc, -10) > 0 AS posted;
PREPARE TRANSACTION 'inventory_issue13_b';
ROLLBACK PREPARED 'inventory_issue13_b';
SELECT * FROM regress.prep_state();

-- Postings go on, and another prepared transaction commits.
INSERT INTO public.prep_moves (item, qty) VALUES ('x', 1);
BEGIN;
INSERT INTO public.prep_moves (item, qty) VALUES ('x', 1), ('y', -1);
SELECT inventory.post(:i1, :loc, -3) > 0 AS posted;
PREPARE TRANSACTION 'inventory_issue13_c';
COMMIT PREPARED 'inventory_issue13_c';
SELECT inventory.post(:i1, :loc, 1) > 0 AS posted;
SELECT * FROM regress.prep_state();

-- Clean up: this tenant's built-in ledger rows go with the guards off, as the isolation specs do.
SELECT inventory.untrack_balances('public.prep_moves');
DROP TABLE public.prep_moves, public.prep_balances;
DROP FUNCTION regress.prep_state();
SET session_replication_role = replica;
DELETE FROM inventory.ledger WHERE org_id = :org;
DELETE FROM inventory.balances WHERE org_id = :org;
RESET session_replication_role;
DELETE FROM inventory.locations WHERE id = :loc;
DELETE FROM inventory.items WHERE org_id = :org;
DELETE FROM inventory.organizations WHERE id = :org;
RESET app.org_id;
