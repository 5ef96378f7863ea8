-- Trust boundaries of the balance upkeep (SPEC §6 "Who the upkeep runs as"; docs/SECURITY.md).
-- adv_owner owns the schema adv and the tracked ledger adv.moves (fixture.sql). Every attack here tries
-- to make the extension run adv_owner's code with more rights than adv_owner has: the evidence table
-- records who ran the code, and adv_owner must never become a superuser. All in one transaction that is
-- rolled back.
\set A '''aaaaaaaa-0000-4000-8000-000000000001'''
\set B '''bbbbbbbb-0000-4000-8000-000000000002'''
\set a_item '''a0000000-0000-4000-8000-00000000000a'''
\set b_item '''b0000000-0000-4000-8000-00000000000a'''
BEGIN;
SELECT plan(39);

-- What adv_owner plants: code that tries to make it a superuser, and records who ran it.
SET LOCAL ROLE adv_owner;
CREATE TABLE adv.evidence (who name, was_superuser boolean, security_restricted boolean);
CREATE FUNCTION adv.escalate() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    restricted boolean := false;
BEGIN
    -- LISTEN is refused inside a security-restricted operation.
    BEGIN
        LISTEN sro_probe;
        UNLISTEN sro_probe;
    EXCEPTION WHEN insufficient_privilege THEN
        restricted := true;
    END;
    INSERT INTO adv.evidence SELECT current_user, rolsuper, restricted FROM pg_catalog.pg_roles WHERE rolname = current_user;
    BEGIN
        ALTER ROLE adv_owner SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN true;
END
$$;
CREATE FUNCTION adv.escalate_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM adv.escalate();
    RETURN NULL;
END
$$;
GRANT INSERT ON adv.evidence TO PUBLIC;
RESET ROLE;

-- 1. The owner of a tenant-scoped ledger puts a trigger on its balance table. The upkeep writes that
-- table's rows of every tenant with forced row-level security lifted for the owner, so none of the
-- owner's code may run there: the owner broke its own table, and the upkeep refuses it.
SELECT is((SELECT relowner::regrole::text FROM pg_class WHERE oid = 'adv.move_balances'::regclass), 'adv_owner',
          'track_balances gave the balance table to the ledger''s owner');
-- (Before track_balances did that itself, a DBA would hand it over like this; a no-op now.)
ALTER TABLE adv.move_balances OWNER TO adv_owner;
SET LOCAL ROLE adv_owner;
CREATE TRIGGER escalate AFTER INSERT OR UPDATE OR DELETE ON adv.move_balances
    FOR EACH ROW EXECUTE FUNCTION adv.escalate_trigger();
RESET ROLE;
SET LOCAL ROLE adv_app;
SELECT set_config('app.org_id', :A, true);
SELECT throws_ok(format('INSERT INTO adv.moves (item_id, qty) VALUES (%L, 1)', :a_item), '42501', NULL,
                 'a posting is refused while the owner''s code sits on a tenant-scoped balance table');
RESET ROLE;
SELECT set_config('app.org_id', '', true);
SELECT is((SELECT count(*) FROM adv.evidence), 0::bigint, 'and none of the owner''s code ran');
SELECT throws_ok('SELECT inventory.rebuild_balances(''adv.moves'')', '42501', NULL, 'rebuild_balances refuses it too');
SELECT inventory.reconcile_run() AS refused_run \gset
SELECT is((SELECT status || ' ' || (detail LIKE '%adv.moves%adv.escalate_trigger()%')::text FROM inventory.reconcile_runs WHERE id = :refused_run),
          'failed true', 'an administrator''s reconcile records the ledger as failed, naming the owner''s code');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'adv_owner'), false, 'the owner did not become a superuser');
SET LOCAL ROLE adv_owner;
DROP TRIGGER escalate ON adv.move_balances;
RESET ROLE;
-- Without its code, a superuser's statement over two tenants updates both (B had a drift of +1).
INSERT INTO adv.moves (org_id, item_id, qty) VALUES (:A, :a_item, 1), (:B, :b_item, 1), (:B, :b_item, 2);
SELECT is((SELECT string_agg(org_id || '=' || qty, ',' ORDER BY org_id) FROM adv.move_balances),
          'aaaaaaaa-0000-4000-8000-000000000001=6,bbbbbbbb-0000-4000-8000-000000000002=13',
          'without the owner''s code the upkeep writes every tenant''s balances again');

-- 2. A ledger of the owner's that is not tenant-scoped: its code may run, as the owner, inside a
-- security-restricted operation, with the session's tenant and nothing more.
SET LOCAL ROLE adv_owner;
CREATE TABLE adv.plain_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
RESET ROLE;
SELECT inventory.track_balances('adv.plain_moves', 'adv.plain_balances', ARRAY['item'], 'qty');
GRANT INSERT ON adv.plain_moves TO adv_app;
SET LOCAL ROLE adv_owner;
CREATE TABLE adv.seen (tenant text, items_seen bigint, owner_counts bigint);
GRANT INSERT ON adv.seen TO PUBLIC;
-- Reads a table it does not own (inventory.items), calls its own SECURITY DEFINER function over its
-- tenant table (adv.count_all_items, fixture.sql), and tries to enter tenant B.
CREATE FUNCTION adv.peek() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM inventory.set_org('bbbbbbbb-0000-4000-8000-000000000002');
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    INSERT INTO adv.seen SELECT current_setting('app.org_id', true), (SELECT count(*) FROM inventory.items), adv.count_all_items();
    PERFORM adv.escalate();
    RETURN NULL;
END
$$;
CREATE TRIGGER peek AFTER INSERT OR UPDATE OR DELETE ON adv.plain_balances FOR EACH STATEMENT EXECUTE FUNCTION adv.peek();
RESET ROLE;
INSERT INTO inventory.items (org_id, sku, name) VALUES (:B, 'B-BUILTIN', 'tenant B''s own');
-- The hardened context (rolled back with the rest): the owner may not choose a tenant itself.
SELECT inventory.revoke_tenant_switch('public');
SELECT set_config('app.org_id', :A, true);
SET LOCAL ROLE adv_app;
SELECT lives_ok($$INSERT INTO adv.plain_moves (item, qty) VALUES ('x', 1)$$, 'a posting by the application goes through');
RESET ROLE;
SELECT set_config('app.org_id', '', true);
SELECT is((SELECT string_agg(DISTINCT coalesce(tenant, '') || '/' || items_seen || '/' || owner_counts, ',') FROM adv.seen),
          'aaaaaaaa-0000-4000-8000-000000000001/0/2',
          'the owner''s code saw the session''s tenant A: none of A''s built-in items here, its own 2 items of A, nothing of B');
SELECT is((SELECT array_agg(DISTINCT who::text) || array_agg(DISTINCT security_restricted::text) FROM adv.evidence),
          ARRAY['adv_owner', 'true'], 'it ran as the owner, inside a security-restricted operation');
DELETE FROM adv.seen;
DELETE FROM adv.evidence;
-- An administrator's reconcile (no tenant, the nightly job) runs the owner's code on a correction: the
-- owner cannot use the superuser's session to enter tenant B.
-- (The drift is planted with triggers off: a superuser's own UPDATE would run the owner's trigger with
-- the superuser's rights, PostgreSQL's rule for any table, which is not the upkeep's doing.)
SET LOCAL session_replication_role = replica;
UPDATE adv.plain_balances SET qty = qty + 0.001;
SET LOCAL session_replication_role = origin;
SELECT is((SELECT count(*) FROM inventory.reconcile('adv.plain_moves') WHERE action = 'corrected'), 1::bigint,
          'an administrator''s reconcile corrects the drift');
SELECT is((SELECT string_agg(DISTINCT coalesce(tenant, '') || '/' || items_seen || '/' || owner_counts, ',') FROM adv.seen),
          '/0/0', 'the owner''s code had no tenant and could not enter tenant B through set_org');
SELECT is((SELECT array_agg(DISTINCT who::text) FROM adv.evidence), ARRAY['adv_owner'],
          'the correction ran the owner''s code as the owner');
DELETE FROM adv.evidence;
SELECT is(inventory.rebuild_balances('adv.plain_moves'), 1::bigint, 'rebuild_balances writes the balance');
SELECT is((SELECT array_agg(DISTINCT who::text) FROM adv.evidence), ARRAY['adv_owner'],
          'and runs the owner''s code as the owner');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'adv_owner'), false, 'still no superuser');
-- Slots (issue 14): a superuser spreads the owner's balances over slots; the slotted postings (the SQL
-- statements: the owner's trigger keeps the direct write away) and the fold back to one slot run the
-- owner's code as the owner, never as the superuser who called set_balance_slots.
DELETE FROM adv.evidence;
SELECT lives_ok($$SELECT inventory.set_balance_slots('adv.plain_moves', 4)$$, 'a superuser spreads the owner''s balances over 4 slots');
SELECT set_config('app.org_id', :A, true);
SET LOCAL ROLE adv_app;
SELECT lives_ok($$INSERT INTO adv.plain_moves (item, qty) VALUES ('x', 2), ('y', 1)$$, 'a slotted posting by the application goes through');
RESET ROLE;
SELECT set_config('app.org_id', '', true);
SELECT lives_ok($$SELECT inventory.set_balance_slots('adv.plain_moves', 1)$$, 'and folds them back into one row per key');
SELECT is((SELECT array_agg(DISTINCT who::text) || array_agg(DISTINCT security_restricted::text) FROM adv.evidence),
          ARRAY['adv_owner', 'true'], 'the owner''s code ran as the owner, inside a security-restricted operation');
SELECT is((SELECT string_agg(item || '=' || qty, ',' ORDER BY item) FROM adv.plain_balances), 'x=3,y=1',
          'the balances are the ledger''s sums (x had 1)');
SELECT inventory.grant_tenant_switch('public');

-- 3. The schema's owner drops the balance table and puts its own in its place: the DDL check refuses
-- the DROP; behind it (a superuser in replica mode, where event triggers do not fire) the upkeep still
-- refuses the replacement.
SET LOCAL ROLE adv_owner;
SELECT throws_ok('DROP TABLE adv.move_balances', '55000', NULL, 'the balance table of a tracked ledger cannot be dropped');
RESET ROLE;
SET LOCAL session_replication_role = replica;
DROP TABLE adv.move_balances;
SET LOCAL session_replication_role = origin;
SET LOCAL ROLE adv_owner;
CREATE TABLE adv.move_balances (org_id uuid, item_id uuid, qty numeric NOT NULL, last_ledger_id bigint NOT NULL,
                                updated_at timestamptz NOT NULL, UNIQUE NULLS NOT DISTINCT (org_id, item_id));
CREATE TRIGGER escalate AFTER INSERT OR UPDATE ON adv.move_balances FOR EACH ROW EXECUTE FUNCTION adv.escalate_trigger();
RESET ROLE;
SELECT throws_ok(format('INSERT INTO adv.moves (org_id, item_id, qty) VALUES (%L, %L, 1)', :A, :a_item), '42P01', NULL,
                 'a posting refuses the replaced balance table (the registry names the dropped one)');
SELECT throws_ok('SELECT inventory.rebuild_balances(''adv.moves'')', '42P01', NULL, 'so does rebuild_balances');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'adv_owner'), false, 'still no superuser');
-- An administrator's reconcile of every ledger reports the broken one and reconciles the others.
SELECT inventory.reconcile_run() AS broken_run \gset
SELECT is((SELECT status || ' ' || ledgers || ' ' || (detail LIKE 'could not reconcile adv.moves: %')::text
             FROM inventory.reconcile_runs WHERE id = :broken_run),
          'failed 2 true', 'reconcile_run records the broken ledger as failed and reconciles the two others');

-- 4. The trigger function attached by hand, with arguments naming the built-in balances (a DBA granted
-- EXECUTE on it so that owners could call track_balances themselves).
GRANT EXECUTE ON FUNCTION inventory.balance_maintenance() TO adv_owner;
SET LOCAL ROLE adv_owner;
CREATE TABLE adv.fake_ledger (org_id uuid, item_id uuid, location_id uuid, lot_id uuid, qty numeric);
CREATE TRIGGER inventory_balances AFTER INSERT ON adv.fake_ledger REFERENCING NEW TABLE AS inventory_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory.balance_maintenance('inventory.balances', 'qty', '', '',
                                                                       'org_id', 'item_id', 'location_id', 'lot_id');
SELECT throws_ok(format('INSERT INTO adv.fake_ledger VALUES (%L, %L, %L, NULL, -1000)', :B, :b_item, :b_item), '55000', NULL,
                 'the trigger refuses a table that is not a registered ledger, whatever its arguments say');
RESET ROLE;
SELECT is((SELECT count(*) FROM inventory.balances), 0::bigint, 'nothing reached the built-in balances');

-- 5. A superuser's tables with a type an untrusted role owns: its domain check would run as the
-- extension's owner inside the upkeep.
SET LOCAL ROLE adv_owner;
CREATE DOMAIN adv.code AS text CHECK (adv.escalate());
RESET ROLE;
CREATE TABLE public.coded_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code adv.code, qty numeric NOT NULL);
GRANT INSERT ON public.coded_ledger TO adv_app;
DELETE FROM adv.evidence;
SELECT throws_ok($$SELECT inventory.track_balances('public.coded_ledger', 'public.coded_balances', ARRAY['code'], 'qty')$$,
                 '42501', NULL, 'tracking a trusted ledger whose key type belongs to an untrusted role is refused');
SET LOCAL ROLE adv_app;
SELECT lives_ok($$INSERT INTO public.coded_ledger (code, qty) VALUES ('x', 1)$$, 'the ledger itself still takes rows');
RESET ROLE;
SELECT is((SELECT count(*) FROM adv.evidence WHERE was_superuser), 0::bigint,
          'the domain''s check never ran with a superuser''s rights');

-- 5b. The same through an operator of the untrusted role in a superuser's CHECK constraint (the check
-- follows operators to their functions), and through a domain over that domain.
SET LOCAL ROLE adv_owner;
CREATE FUNCTION adv.differs(numeric, numeric) RETURNS boolean LANGUAGE sql AS 'SELECT $1 <> $2';
CREATE OPERATOR adv.<<>> (FUNCTION = adv.differs, LEFTARG = numeric, RIGHTARG = numeric);
RESET ROLE;
CREATE TABLE public.op_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
CREATE TABLE public.op_balances (item text, qty numeric NOT NULL CHECK (qty OPERATOR(adv.<<>>) -1),
                                 last_ledger_id bigint NOT NULL, updated_at timestamptz NOT NULL, UNIQUE NULLS NOT DISTINCT (item));
SELECT throws_ok($$SELECT inventory.track_balances('public.op_ledger', 'public.op_balances', ARRAY['item'], 'qty')$$,
                 '42501', NULL, 'a superuser''s balance table whose CHECK uses an untrusted role''s operator is refused');
CREATE DOMAIN public.outer_code AS adv.code;
CREATE TABLE public.outer_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code public.outer_code, qty numeric NOT NULL);
SELECT throws_ok($$SELECT inventory.track_balances('public.outer_ledger', 'public.outer_balances', ARRAY['code'], 'qty')$$,
                 '42501', NULL, 'a domain over the untrusted role''s domain is refused too');

-- 5c. A superuser's tables in a schema an untrusted role owns: the schema's owner could rename the
-- schema and put its own table under the name the upkeep spells.
CREATE TABLE adv.super_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
SELECT throws_ok($$SELECT inventory.track_balances('adv.super_ledger', 'adv.super_balances', ARRAY['item'], 'qty')$$,
                 '42501', NULL, 'a superuser''s ledger in a schema owned by an untrusted role is refused');

-- 5d. DDL of the owner on its tracked ledger answers no internal error: retyping the id the balances
-- record is refused, and postings stay exact.
SET LOCAL ROLE adv_owner;
CREATE TABLE adv.int_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
RESET ROLE;
SELECT inventory.track_balances('adv.int_ledger', 'adv.int_balances', ARRAY['item'], 'qty');
SET LOCAL ROLE adv_owner;
SELECT throws_ok('ALTER TABLE adv.int_ledger ALTER COLUMN id TYPE integer', '55000', NULL,
                 'the owner cannot retype the id its balances record');
SELECT lives_ok($$INSERT INTO adv.int_ledger (item, qty) VALUES ('a', 1), ('b', 2)$$,
                'a multi-row posting after the refused DDL');
RESET ROLE;
SELECT is((SELECT string_agg(item || '=' || qty || '@' || last_ledger_id, ',' ORDER BY item) FROM adv.int_balances), 'a=1@1,b=2@2',
          'and its balances are exact');

-- 6. The other direction: a balance table whose owner differs from the ledger's is refused.
CREATE TABLE adv.other_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
ALTER TABLE adv.other_ledger OWNER TO adv_owner;
CREATE TABLE adv.other_balances (item text, qty numeric NOT NULL, last_ledger_id bigint NOT NULL,
                                 updated_at timestamptz NOT NULL, UNIQUE NULLS NOT DISTINCT (item));
SELECT throws_ok($$SELECT inventory.track_balances('adv.other_ledger', 'adv.other_balances', ARRAY['item'], 'qty')$$,
                 '42501', NULL, 'a superuser''s balance table for an owner''s ledger is refused (one owner for both)');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'adv_owner'), false, 'and adv_owner is no superuser at the end');
SELECT * FROM finish();
ROLLBACK;
