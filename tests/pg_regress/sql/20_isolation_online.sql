-- enable_tenant_isolation_online (SPEC §4): the same end state as the one-call function, however many of
-- its pieces of work ran before it was stopped; idempotent; refuses a transaction block; the background
-- worker that builds indexes runs nothing else, and as the caller's role. It commits, so this file does
-- not run in a rolled-back transaction: it drops what it made at the end.
INSERT INTO inventory.organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000021', 'Online legacy');

-- The same Prisma-style tables in any schema: global unique keys (a constraint one foreign key depends
-- on, a plain index, a partial expression index, a deferrable one), plain foreign keys, an org column
-- already there with NULLs in it, and a partitioned table.
CREATE PROCEDURE pg_temp.fixture(s text) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($f$
        CREATE SCHEMA %1$I;
        CREATE TABLE %1$I."Item" (id text PRIMARY KEY, sku text NOT NULL UNIQUE, name text);
        CREATE UNIQUE INDEX "Item_lower_name" ON %1$I."Item" (lower(name)) WHERE name IS NOT NULL;
        CREATE TABLE %1$I."Location" (id text PRIMARY KEY, code text NOT NULL CONSTRAINT "Location_code" UNIQUE);
        CREATE TABLE %1$I."Ledger" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                    "itemId" text NOT NULL REFERENCES %1$I."Item" (id) ON DELETE CASCADE,
                                    "locationCode" text REFERENCES %1$I."Location" (code),
                                    qty numeric NOT NULL, "orgId" uuid,
                                    CONSTRAINT "Ledger_qty_id" UNIQUE (qty, id) DEFERRABLE INITIALLY DEFERRED);
        CREATE UNIQUE INDEX "Ledger_qty_item" ON %1$I."Ledger" ("itemId", qty);
        CREATE TABLE %1$I."Event" (id bigint, at date, kind text, PRIMARY KEY (id, at), UNIQUE (kind, at))
            PARTITION BY RANGE (at);
        CREATE TABLE %1$I."Event_2026" PARTITION OF %1$I."Event" FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO %1$I."Item" SELECT 'i' || g, 'SKU-' || g, 'item ' || g FROM generate_series(1, 20) g;
        INSERT INTO %1$I."Location" VALUES ('l1', 'A1'), ('l2', 'A2');
        INSERT INTO %1$I."Ledger" ("itemId", "locationCode", qty, "orgId")
        SELECT 'i' || (g %% 20 + 1), CASE WHEN g %% 2 = 0 THEN 'A1' END, g,
               CASE WHEN g %% 3 = 0 THEN '00000000-0000-4000-8000-000000000021'::uuid END
          FROM generate_series(1, 300) g;
        INSERT INTO %1$I."Event" VALUES (1, '2026-05-01', 'open');
        SELECT inventory.enable_tenant_isolation('%1$I."Item"', 'orgId', '00000000-0000-4000-8000-000000000021');
    $f$, s);
END
$$;

-- A table's shape with its schema's name taken out: columns, constraints (and whether validated),
-- indexes, row-level security, policies, registration.
CREATE FUNCTION pg_temp.shape(s text) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT replace(line, quote_ident(s) || '.', 'S.') FROM (
        SELECT format('column %s.%s %s%s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                      CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, pg_get_expr(d.adbin, d.adrelid))
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE c.relnamespace = s::regnamespace AND c.relkind IN ('r', 'p')
        UNION ALL
        SELECT format('constraint %s.%s %s%s', c.relname, con.conname, pg_get_constraintdef(con.oid),
                      CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END)
          FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid WHERE c.relnamespace = s::regnamespace
           AND con.contype <> 'n'  -- NOT NULL: the column lines say it (PostgreSQL 18 lists them here too)
        UNION ALL
        SELECT format('index %s %s', i.indexrelid::regclass, pg_get_indexdef(i.indexrelid))
               || CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = s::regnamespace
        UNION ALL
        SELECT format('security %s %s %s', relname, relrowsecurity, relforcerowsecurity)
          FROM pg_class WHERE relnamespace = s::regnamespace AND relkind IN ('r', 'p')
        UNION ALL
        SELECT format('policy %s.%s %s %s %s', c.relname, p.polname, p.polcmd,
                      pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = s::regnamespace
        UNION ALL
        SELECT format('registered %s %s', t.relid::regclass, t.org_column)
          FROM inventory.tenant_tables t JOIN pg_class c ON c.oid = t.relid WHERE c.relnamespace = s::regnamespace
    ) lines(line) ORDER BY 1
$$;

-- The one-call function on schema online_a: the reference.
CALL pg_temp.fixture('online_a');
SELECT count(*) AS changes FROM inventory.enable_tenant_isolation('online_a."Ledger"', 'orgId', '00000000-0000-4000-8000-000000000021');
SELECT count(*) AS changes FROM inventory.enable_tenant_isolation('online_a."Location"', 'orgId', '00000000-0000-4000-8000-000000000021');
SELECT count(*) AS changes FROM inventory.enable_tenant_isolation('online_a."Event"', 'orgId', '00000000-0000-4000-8000-000000000021');

-- The online procedure on schema online_b: its NOTICEs say what it does, step by step.
CALL pg_temp.fixture('online_b');
CALL inventory.enable_tenant_isolation_online('online_b."Ledger"', 'orgId', '00000000-0000-4000-8000-000000000021');
CALL inventory.enable_tenant_isolation_online('online_b."Location"', 'orgId', '00000000-0000-4000-8000-000000000021');
CALL inventory.enable_tenant_isolation_online('online_b."Event"', 'orgId', '00000000-0000-4000-8000-000000000021');
-- The same end state (no line of one missing from the other), and the reference itself.
SELECT * FROM pg_temp.shape('online_a') EXCEPT ALL SELECT * FROM pg_temp.shape('online_b');
SELECT * FROM pg_temp.shape('online_b') EXCEPT ALL SELECT * FROM pg_temp.shape('online_a');
SELECT * FROM pg_temp.shape('online_a');
-- A second call has nothing to do: no NOTICE.
CALL inventory.enable_tenant_isolation_online('online_b."Ledger"', 'orgId', '00000000-0000-4000-8000-000000000021');
SELECT count(*) AS rows, count(*) FILTER (WHERE "orgId" = '00000000-0000-4000-8000-000000000021') AS legacy
  FROM online_b."Ledger";

-- Stopped after any number of its pieces of work (as a failure or a cancel would stop it), then called
-- again: the same end state every time.
SET client_min_messages = warning;
DO $$
DECLARE
    mismatches bigint;
    finished integer;
    all_finished_at integer;
    tbl text;
BEGIN
    FOR k IN 1..20 LOOP
        CALL pg_temp.fixture('online_k');
        finished := 0;
        FOREACH tbl IN ARRAY ARRAY['online_k."Ledger"', 'online_k."Location"', 'online_k."Event"'] LOOP
            CALL inventory.enable_tenant_isolation_online(tbl::regclass, 'orgId', '00000000-0000-4000-8000-000000000021', stop_after => k);
            -- The last step registers the table: whether all of its pieces fitted in k.
            finished := finished + (SELECT count(*) FROM inventory.tenant_tables WHERE relid = tbl::regclass)::integer;
            CALL inventory.enable_tenant_isolation_online(tbl::regclass, 'orgId', '00000000-0000-4000-8000-000000000021');
        END LOOP;
        IF finished = 3 AND all_finished_at IS NULL THEN
            all_finished_at := k;
        END IF;
        SELECT count(*) INTO mismatches FROM (
            (SELECT * FROM pg_temp.shape('online_a') EXCEPT ALL SELECT * FROM pg_temp.shape('online_k'))
            UNION ALL
            (SELECT * FROM pg_temp.shape('online_k') EXCEPT ALL SELECT * FROM pg_temp.shape('online_a'))) m;
        IF mismatches > 0 THEN
            RAISE WARNING 'stopped after % pieces, then resumed: % lines differ from the one-call end state', k, mismatches;
        END IF;
        DELETE FROM inventory.tenant_tables t USING pg_class c WHERE c.oid = t.relid AND c.relnamespace = 'online_k'::regnamespace;
        DROP SCHEMA online_k CASCADE;
        COMMIT;
    END LOOP;
    -- Every place it can stop was tried: the last k let all three finish before being called again.
    RAISE WARNING 'all three tables finished within % pieces', all_finished_at;
END
$$;
RESET client_min_messages;

-- An index build that failed (left INVALID, as a cancelled CREATE INDEX CONCURRENTLY leaves it) is
-- dropped and built again.
CALL pg_temp.fixture('online_c');
SET client_min_messages = warning;
CALL inventory.enable_tenant_isolation_online('online_c."Ledger"', 'orgId', '00000000-0000-4000-8000-000000000021', stop_after => 6);
RESET client_min_messages;
SELECT indexrelid::regclass AS built_not_attached FROM pg_index
 WHERE indrelid = 'online_c."Ledger"'::regclass AND NOT EXISTS (SELECT FROM pg_constraint WHERE conindid = indexrelid)
   AND indexrelid::regclass::text LIKE '%orgId%';
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'online_c."Ledger_orgId_id_key"'::regclass;
CALL inventory.enable_tenant_isolation_online('online_c."Ledger"', 'orgId', '00000000-0000-4000-8000-000000000021');
SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indexrelid = 'online_c."Ledger_orgId_id_key"'::regclass;

-- Not in a transaction block (25001, as CREATE INDEX CONCURRENTLY); bad arguments as the one-call
-- function answers them (22023); an open policy refused before anything changes (55000).
BEGIN;
CALL inventory.enable_tenant_isolation_online('online_c."Location"', 'orgId', '00000000-0000-4000-8000-000000000021');
ROLLBACK;
CALL inventory.enable_tenant_isolation_online(NULL);
CALL inventory.enable_tenant_isolation_online('online_c."Location"', 'orgId', lock_wait => '0');
CALL inventory.enable_tenant_isolation_online('online_c."Location"', 'orgId', '00000000-0000-4000-8000-0000000000ff');
CREATE POLICY everyone ON online_c."Location" USING (true);
CALL inventory.enable_tenant_isolation_online('online_c."Location"', 'orgId', '00000000-0000-4000-8000-000000000021');
SELECT count(*) AS org_columns FROM pg_attribute WHERE attrelid = 'online_c."Location"'::regclass AND attname = 'orgId';
DROP POLICY everyone ON online_c."Location";

-- The background worker runs CREATE/DROP INDEX CONCURRENTLY and nothing else, as the caller's current
-- role: a role that may start it cannot use it to do what it could not do itself.
-- (A procedure that commits between polls, as the online one does: a build waits for older snapshots.)
CREATE PROCEDURE pg_temp.in_background(statement text, INOUT answer text DEFAULT NULL) LANGUAGE plpgsql AS $$
DECLARE
    request bigint := inventory.concurrent_index_start(statement);
    result record;
BEGIN
    LOOP
        COMMIT;
        SELECT * INTO result FROM inventory.background_result(request);
        EXIT WHEN result.finished;
        PERFORM pg_sleep(0.01);
    END LOOP;
    answer := coalesce(result.sqlstate || ': ' || result.message, 'done');
END
$$;
CALL pg_temp.in_background('DROP TABLE online_c."Location"');
CALL pg_temp.in_background('CREATE INDEX online_c_plain ON online_c."Location" (code)');
CALL pg_temp.in_background('CREATE INDEX CONCURRENTLY online_c_1 ON online_c."Location" (code); DROP TABLE online_c."Item"');
CALL pg_temp.in_background('CREATE INDEX CONCURRENTLY online_c_code ON online_c."Location" (code)');
CALL pg_temp.in_background('DROP INDEX CONCURRENTLY online_c.online_c_code');
CREATE ROLE online_someone;
GRANT USAGE ON SCHEMA inventory, online_c TO online_someone;
GRANT EXECUTE ON FUNCTION inventory.concurrent_index_start(text), inventory.background_result(bigint) TO online_someone;
SET ROLE online_someone;
CALL pg_temp.in_background('CREATE INDEX CONCURRENTLY online_c_code2 ON online_c."Item" (sku)');
RESET ROLE;
SELECT * FROM inventory.background_result(12345);
SELECT count(*) AS indexes_on_sku FROM pg_index WHERE indrelid = 'online_c."Item"'::regclass AND indkey[0] = 2;

-- A table owner's code never runs with the caller's rights: filling the org column fires the owner's
-- UPDATE trigger, and both paths run that UPDATE as the owner (a security-restricted operation), so a
-- trigger that would make its owner superuser when a superuser runs it does nothing of the kind.
CREATE ROLE online_owner;
GRANT USAGE, CREATE ON SCHEMA online_c TO online_owner;
SET ROLE online_owner;
CREATE TABLE online_c.trap_a (id int PRIMARY KEY, org_id uuid);
CREATE TABLE online_c.trap_b (id int PRIMARY KEY, org_id uuid);
CREATE TABLE online_c.trap_log (ran_as name, superuser boolean);
INSERT INTO online_c.trap_a SELECT g, NULL FROM generate_series(1, 3) g;
INSERT INTO online_c.trap_b SELECT g, NULL FROM generate_series(1, 3) g;
CREATE FUNCTION online_c.trap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO online_c.trap_log VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE online_owner SUPERUSER';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER trap BEFORE UPDATE ON online_c.trap_a FOR EACH ROW EXECUTE FUNCTION online_c.trap();
-- A rule on UPDATE too: the backfill is a plain UPDATE (one in WITH would refuse a table with rules).
CREATE RULE trap_rule AS ON UPDATE TO online_c.trap_a DO ALSO INSERT INTO online_c.trap_log VALUES ('rule', NULL);
CREATE TRIGGER trap BEFORE UPDATE ON online_c.trap_b FOR EACH ROW EXECUTE FUNCTION online_c.trap();
RESET ROLE;
SET client_min_messages = warning;
CALL inventory.enable_tenant_isolation_online('online_c.trap_a', 'org_id', '00000000-0000-4000-8000-000000000021');
SELECT count(*) AS changes FROM inventory.enable_tenant_isolation('online_c.trap_b', 'org_id', '00000000-0000-4000-8000-000000000021');
RESET client_min_messages;
SELECT ran_as, superuser, count(*) FROM online_c.trap_log GROUP BY 1, 2;
SELECT rolsuper AS owner_became_superuser FROM pg_roles WHERE rolname = 'online_owner';

-- Clean up.
SET client_min_messages = warning;
DELETE FROM inventory.tenant_tables t USING pg_class c
 WHERE c.oid = t.relid AND c.relnamespace IN ('online_a'::regnamespace, 'online_b'::regnamespace, 'online_c'::regnamespace);
DROP SCHEMA online_a, online_b, online_c CASCADE;
DROP OWNED BY online_someone;
DROP ROLE online_someone;
DROP OWNED BY online_owner;
DROP ROLE online_owner;
DELETE FROM inventory.organizations WHERE id = '00000000-0000-4000-8000-000000000021';
RESET client_min_messages;
