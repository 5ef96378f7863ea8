-- The balance engine under attack (issue 13's review): an application role reading another tenant's
-- balances through the negative-stock guard, a key type whose equality is not byte equality, DDL in
-- forms the tables' owner might try (renames through ALTER VIEW, history-rewriting type changes,
-- dropped guards, a nullable qty), a registration broken behind the DDL check never blocking other DDL,
-- and the upkeep suspended by disabling both balance triggers. All in one transaction, rolled back.
\set A '''aaaaaaaa-0000-4000-8000-000000000001'''
\set B '''bbbbbbbb-0000-4000-8000-000000000002'''
BEGIN;
SELECT plan(19);

-- Tenant B has an item whose balance is negative, at a location whose code is secret.
SET LOCAL app.org_id = 'bbbbbbbb-0000-4000-8000-000000000002';
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES ('b1000000-0000-4000-8000-000000000001', 'B-NEG', 'b', true);
INSERT INTO inventory.locations (id, code, name) VALUES ('b2000000-0000-4000-8000-000000000001', 'B-SECRET-LOCATION', 'b');
SELECT inventory.post('b1000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000001', -42.5);
SET LOCAL app.org_id = 'aaaaaaaa-0000-4000-8000-000000000001';
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES ('a1000000-0000-4000-8000-000000000001', 'A-ITEM', 'a', true);
RESET app.org_id;

-- 1. Tenant A points the updated row at B's item: the guard reads A's own item (OLD), and the row-level
--    security check refuses the new row; nothing of B's shows.
SET LOCAL ROLE adv_app;
SET LOCAL app.org_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT throws_ok(
    $$UPDATE inventory.items SET allow_negative = false, org_id = 'bbbbbbbb-0000-4000-8000-000000000002',
                                 id = 'b1000000-0000-4000-8000-000000000001'
       WHERE id = 'a1000000-0000-4000-8000-000000000001'$$,
    '42501', NULL, 'allow_negative''s guard never reads another tenant''s balances');
CREATE TEMP TABLE leak_message (m text);
DO $$ BEGIN
    UPDATE inventory.items SET allow_negative = false, org_id = 'bbbbbbbb-0000-4000-8000-000000000002',
                               id = 'b1000000-0000-4000-8000-000000000001'
     WHERE id = 'a1000000-0000-4000-8000-000000000001';
EXCEPTION WHEN others THEN INSERT INTO leak_message VALUES (SQLERRM);
END $$;
SELECT is((SELECT count(*) FROM leak_message WHERE m LIKE '%SECRET%' OR m LIKE '%42.5%'), 0::bigint,
          'the refusal names nothing of tenant B');
RESET ROLE;
RESET app.org_id;

-- 2. A citext key on a ledger that refuses negative balances: two spellings of one key are one key.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE public.ci_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku citext NOT NULL, qty numeric NOT NULL);
SELECT inventory.track_balances('public.ci_moves', 'public.ci_balances', ARRAY['sku'], 'qty', allow_negative => false);
SELECT throws_ok($$INSERT INTO public.ci_moves (sku, qty) VALUES ('bolt', -10), ('BOLT', 1)$$, '23514', NULL,
                 'a statement that takes a citext key below zero is refused whatever the spelling');
SELECT lives_ok($$INSERT INTO public.ci_moves (sku, qty) VALUES ('bolt', 5), ('BOLT', -3), ('nut', 1)$$,
                'a statement that leaves the key positive passes');
SELECT is((SELECT qty FROM public.ci_balances WHERE sku = 'Bolt'), 2::numeric, 'one balance for both spellings');

-- 3. DDL the tables' owner might try on a tracked ledger (adv.moves, owned by adv_owner).
CREATE FUNCTION public.noop_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
SET LOCAL ROLE adv_owner;
SELECT throws_ok($$CREATE OR REPLACE TRIGGER inventory_balances AFTER INSERT ON adv.moves
                   FOR EACH ROW EXECUTE FUNCTION public.noop_trigger()$$, '55000', NULL,
                 'a balance trigger cannot be replaced by another function (CREATE OR REPLACE TRIGGER)');
SELECT lives_ok($$CREATE TRIGGER audit AFTER INSERT ON adv.moves FOR EACH ROW EXECUTE FUNCTION public.noop_trigger();
                  DROP TRIGGER audit ON adv.moves$$,
                'a trigger of the owner''s own beside the balance triggers');
SELECT throws_ok($$ALTER VIEW adv.moves RENAME COLUMN item_id TO thing_id$$, '55000', NULL,
                 'a key column renamed through ALTER VIEW is refused');
SELECT throws_ok($$ALTER TABLE adv.moves ALTER COLUMN qty TYPE numeric(10, 0)$$, '55000', NULL,
                 'a quantity type change that rounds the history is refused');
SELECT throws_ok($$ALTER TABLE adv.moves ALTER COLUMN qty TYPE numeric USING qty * 2$$, '55000', NULL,
                 'a quantity type change with USING is refused');
SELECT throws_ok($$DROP TRIGGER inventory_append_only ON adv.moves$$, '55000', NULL,
                 'the append-only guard cannot be dropped from a tracked ledger');
SELECT throws_ok($$ALTER TABLE adv.moves DISABLE TRIGGER inventory_balances$$, '55000', NULL,
                 'one balance trigger cannot be disabled alone');
SELECT throws_ok($$ALTER TABLE adv.move_balances ALTER COLUMN qty DROP NOT NULL$$, '55000', NULL,
                 'the balance table''s qty stays NOT NULL');
SELECT lives_ok($$ALTER TABLE adv.moves DISABLE TRIGGER USER; ALTER TABLE adv.moves ENABLE TRIGGER USER$$,
                'all the ledger''s triggers disabled together (the upkeep suspended) and enabled again');
RESET ROLE;

-- 4. A registration broken behind the DDL check (event triggers do not fire in replica mode) refuses
--    postings, and never blocks DDL on other tables.
SET LOCAL session_replication_role = replica;
ALTER TABLE public.ci_moves RENAME COLUMN sku TO code;
SET LOCAL session_replication_role = origin;
SELECT throws_ok($$INSERT INTO public.ci_moves (code, qty) VALUES ('x', 1)$$, '55000', NULL,
                 'postings to a ledger whose registration broke are refused');
SELECT lives_ok($$CREATE TABLE public.unrelated (a int); ALTER TABLE public.unrelated ADD COLUMN b int; CREATE TEMP TABLE t (a int)$$,
                'DDL on other tables goes on');

-- 5. One balance table keeps one ledger's balances: a second ledger tracked into it would rebuild it
--    from its own rows alone.
CREATE TABLE public.ci_moves_2 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku citext NOT NULL, qty numeric NOT NULL);
SELECT throws_ok($$SELECT inventory.track_balances('public.ci_moves_2', 'public.ci_balances', ARRAY['sku'], 'qty')$$,
                 '55000', NULL, 'a balance table another ledger uses cannot be tracked into');

-- 6. Temporary tables cannot be tracked.
CREATE TEMP TABLE temp_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku text NOT NULL, qty numeric NOT NULL);
SELECT throws_ok($$SELECT inventory.track_balances('pg_temp.temp_moves', 'public.temp_balances', ARRAY['sku'], 'qty')$$,
                 '0A000', NULL, 'a temporary ledger is refused');
SELECT throws_ok($$SELECT inventory.track_balances('public.unrelated', 'pg_temp.temp_balances', ARRAY['a'], 'b')$$,
                 '0A000', NULL, 'a temporary balance table is refused');

SELECT * FROM finish();
ROLLBACK;
