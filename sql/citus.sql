-- Scale-out on Citus (SPEC §9, issue 17; docs/SCALE_OUT.md). inventory.distribute() makes the built-in
-- schema distributed: organizations and the API key table reference tables, the tenant tables distributed
-- by org_id and co-located. It is a list of named steps, each idempotent, run on the coordinator by a
-- superuser; a second call finds every step done and changes nothing.
--
-- Why the steps are these (each is a fact measured on Citus 13.2.2, SPEC §9):
--  1. plain policies: Citus refuses a sub-select in a policy of a distributed or reference table;
--  2. the tables leave the extension: Citus creates a distributed table on the workers only when it is
--     not an extension's (it assumes the extension made it there), and each worker's CREATE EXTENSION made
--     its own local copies, which are in the way: inventory.release_builtin_tables drops them there;
--  3. foreign keys off while the tables change kind (Citus refuses a key between a local table and a
--     distributed one), back on after: every one includes org_id or points at a reference table;
--  4. reference and distributed tables, co-located, with the triggers (citus.enable_unsafe_triggers: the
--     balance triggers fire on the shards and write only the co-located balance shard, src/citus.rs);
--  5. the registry on every node: the triggers on a worker look their ledger up there.
-- (SET LOCAL app.org_id reaches the shards without a setting: the library's utility hook switches
-- citus.propagate_set_commands to 'local' for the transaction of every such statement, src/citus.rs.)

-- 55000 unless Citus is installed in this database: what only makes sense on Citus refuses to run elsewhere.
CREATE FUNCTION inventory.require_citus() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in database %', current_database()
            USING ERRCODE = '55000', HINT = 'This is for a Citus coordinator and its workers (docs/SCALE_OUT.md).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION inventory.require_citus() FROM PUBLIC;

-- The built-in tables Citus holds, in the order they are made distributed (referenced ones first).
CREATE FUNCTION inventory.builtin_tenant_tables() RETURNS TABLE (tbl regclass, org_column name, reference boolean)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('inventory.organizations'::text::regclass, 'id'::name, true),
           ('inventory.organization_api_keys'::text::regclass, 'org_id'::name, true),
           ('inventory.items'::text::regclass, 'org_id'::name, false),
           ('inventory.locations'::text::regclass, 'org_id'::name, false),
           ('inventory.lots'::text::regclass, 'org_id'::name, false),
           ('inventory.ledger'::text::regclass, 'org_id'::name, false),
           ('inventory.balances'::text::regclass, 'org_id'::name, false)
$$;
REVOKE ALL ON FUNCTION inventory.builtin_tenant_tables() FROM PUBLIC;

-- Step 2, on the node it runs on: the built-in tables stop being the extension's (and, with
-- drop_local_copies on a worker, its local copies and the view over them go). Idempotent.
CREATE FUNCTION inventory.release_builtin_tables(drop_local_copies boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ext oid := (SELECT oid FROM pg_extension WHERE extname = 'inventory_ext');
    -- Referenced tables first; the ledger after its balance table (dropped in the reverse order: the
    -- ledger, which takes its registry row along, before the balance table the row protects).
    names text[] := ARRAY['organizations', 'organization_api_keys', 'items', 'locations', 'lots', 'balances', 'ledger',
                          'ledger_id_seq'];
    member record;
    copies regclass[] := '{}';
    propagation text;
BEGIN
    PERFORM inventory.require_citus();
    propagation := current_setting('citus.enable_ddl_propagation');
    -- This node's own change: Citus must not send it on to the other nodes (and sends the caller's
    -- next DDL again once this returns).
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    IF drop_local_copies THEN
        IF EXISTS (SELECT FROM pg_depend WHERE refobjid = ext AND deptype = 'e' AND objid = to_regclass('inventory.stock')) THEN
            ALTER EXTENSION inventory_ext DROP VIEW inventory.stock;
            DROP VIEW inventory.stock;
        END IF;
    END IF;
    -- Only what is still the extension's: a table Citus has made (a shell on a worker) is never touched.
    FOR member IN
        SELECT c.oid::regclass AS rel, c.relkind
          FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
         WHERE d.refobjid = ext AND d.deptype = 'e'
           AND c.relnamespace = 'inventory'::regnamespace AND c.relname = ANY (names)
    LOOP
        IF member.relkind = 'S' THEN
            EXECUTE format('ALTER EXTENSION inventory_ext DROP SEQUENCE %s', member.rel);
        ELSE
            EXECUTE format('ALTER EXTENSION inventory_ext DROP TABLE %s', member.rel);
            copies := copies || member.rel;
        END IF;
    END LOOP;
    -- Referencing tables before the tables they reference (names is in the other order).
    IF drop_local_copies THEN
        FOR member IN SELECT c.oid::regclass AS rel FROM unnest(names) WITH ORDINALITY AS n(name, place)
                        JOIN pg_class c ON c.relnamespace = 'inventory'::regnamespace AND c.relname = n.name
                       WHERE c.oid::regclass = ANY (copies) ORDER BY n.place DESC
        LOOP
            EXECUTE format('DROP TABLE %s', member.rel);
        END LOOP;
    END IF;
    PERFORM set_config('citus.enable_ddl_propagation', propagation, true);
END
$$;
REVOKE ALL ON FUNCTION inventory.release_builtin_tables(boolean) FROM PUBLIC;

-- Step 5 on a worker (and after track_balances or untrack_balances of a distributed ledger): the
-- coordinator's registry rows for distributed tables, by table name (OIDs differ from node to node), in
-- place of every row this node had for a distributed table (or for a table that is gone).
CREATE FUNCTION inventory.replace_registry(ledgers jsonb, tenant_tables jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory.require_citus();
    DELETE FROM inventory.tracked_ledgers t
     WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.ledger)
        OR t.ledger IN (SELECT logicalrelid FROM pg_dist_partition)
        OR t.ledger::text IN (SELECT l->>'ledger' FROM jsonb_array_elements(ledgers) l);
    -- A table the coordinator made in a transaction that has not committed yet is not here yet.
    PERFORM FROM jsonb_array_elements(ledgers) l
      WHERE to_regclass(l->>'ledger') IS NULL OR to_regclass(l->>'balance_table') IS NULL;
    IF FOUND THEN
        RAISE EXCEPTION 'a tracked ledger or its balance table is not on this node yet'
            USING ERRCODE = '55000',
                  HINT = 'Create and distribute both tables, commit, then call track_balances (docs/SCALE_OUT.md).';
    END IF;
    INSERT INTO inventory.tracked_ledgers (ledger, balance_table, key_columns, qty_column, id_column, org_column,
                                           builtin, negative_rule, slots)
    SELECT (l->>'ledger')::regclass, (l->>'balance_table')::regclass,
           ARRAY(SELECT jsonb_array_elements_text(l->'key_columns'))::name[], l->>'qty_column', l->>'id_column',
           l->>'org_column', (l->>'builtin')::boolean, l->>'negative_rule', (l->>'slots')::integer
      FROM jsonb_array_elements(ledgers) l;
    DELETE FROM inventory.tenant_tables t
     WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid)
        OR t.relid IN (SELECT logicalrelid FROM pg_dist_partition)
        OR t.relid::text IN (SELECT x->>'relid' FROM jsonb_array_elements(tenant_tables) x);
    INSERT INTO inventory.tenant_tables (relid, org_column, builtin)
    SELECT (x->>'relid')::regclass, x->>'org_column', (x->>'builtin')::boolean
      FROM jsonb_array_elements(tenant_tables) x;
END
$$;
REVOKE ALL ON FUNCTION inventory.replace_registry(jsonb, jsonb) FROM PUBLIC;

-- Step 5 on the coordinator: sends the registry rows of distributed tables to every worker. Returns the
-- number of workers that took them; a worker that fails raises the error.
CREATE FUNCTION inventory.sync_registry_to_workers() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ledgers jsonb;
    tables jsonb;
    outcome record;
    took integer := 0;
BEGIN
    PERFORM inventory.require_citus();
    SELECT coalesce(jsonb_agg(jsonb_build_object('ledger', t.ledger::text, 'balance_table', t.balance_table::text,
               'key_columns', to_jsonb(t.key_columns::text[]), 'qty_column', t.qty_column, 'id_column', t.id_column,
               'org_column', t.org_column, 'builtin', t.builtin, 'negative_rule', t.negative_rule, 'slots', t.slots)), '[]')
      INTO ledgers
      FROM inventory.tracked_ledgers t JOIN pg_dist_partition p ON p.logicalrelid = t.ledger;
    SELECT coalesce(jsonb_agg(jsonb_build_object('relid', t.relid::text, 'org_column', t.org_column, 'builtin', t.builtin)), '[]')
      INTO tables
      FROM inventory.tenant_tables t JOIN pg_dist_partition p ON p.logicalrelid = t.relid;
    FOR outcome IN
        SELECT * FROM run_command_on_workers(format('SELECT inventory.replace_registry(%L::jsonb, %L::jsonb)', ledgers, tables))
    LOOP
        IF NOT outcome.success THEN
            RAISE EXCEPTION 'the registry could not be copied to worker %:%: %', outcome.nodename, outcome.nodeport, outcome.result
                USING ERRCODE = '55000';
        END IF;
        took := took + 1;
    END LOOP;
    RETURN took;
END
$$;
REVOKE ALL ON FUNCTION inventory.sync_registry_to_workers() FROM PUBLIC;

CREATE FUNCTION inventory.distribute_tables() RETURNS TABLE (step text, done text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    fk record;
    keys jsonb := '[]';
    outcome record;
BEGIN
    PERFORM inventory.require_citus();
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'inventory.distribute runs on the coordinator' USING ERRCODE = '55000';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_user AND rolsuper) THEN
        RAISE EXCEPTION 'inventory.distribute needs a superuser' USING ERRCODE = '42501';
    END IF;

    -- 1. Plain tenant policies (a sub-select is refused on Citus).
    step := 'plain tenant policies'; done := '';
    FOR t IN SELECT b.*, p.qual FROM inventory.builtin_tenant_tables() b
               JOIN pg_policies p ON p.schemaname = 'inventory' AND p.tablename = (SELECT relname FROM pg_class WHERE oid = b.tbl)
                                 AND p.policyname = 'tenant_isolation'
              WHERE p.qual LIKE '%SELECT%'
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %s', t.tbl);
        EXECUTE format('CREATE POLICY tenant_isolation ON %s USING (%I = inventory.current_org_id()) WITH CHECK (%I = inventory.current_org_id())',
                       t.tbl, t.org_column, t.org_column);
        done := done || t.tbl::text || ' ';
    END LOOP;
    RETURN NEXT;

    IF (SELECT count(*) FROM pg_dist_partition p JOIN inventory.builtin_tenant_tables() b ON b.tbl = p.logicalrelid) < 7 THEN
        -- 2. The tables leave the extension here; the workers' local copies go.
        step := 'the workers'' local copies of the built-in tables dropped'; done := '';
        FOR outcome IN SELECT * FROM run_command_on_workers('SELECT inventory.release_builtin_tables(true)') LOOP
            IF NOT outcome.success THEN
                RAISE EXCEPTION 'worker %:% could not drop its local copies: %', outcome.nodename, outcome.nodeport, outcome.result
                    USING ERRCODE = '55000';
            END IF;
            done := done || outcome.nodename || ':' || outcome.nodeport || ' ';
        END LOOP;
        PERFORM inventory.release_builtin_tables(false);
        RETURN NEXT;

        -- 3. Foreign keys between the built-in tables, kept aside.
        FOR fk IN SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def
                    FROM pg_constraint c
                   WHERE c.contype = 'f' AND c.conrelid IN (SELECT b.tbl FROM inventory.builtin_tenant_tables() b)
        LOOP
            keys := keys || jsonb_build_object('rel', fk.rel::text, 'name', fk.conname, 'def', fk.def);
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.rel, fk.conname);
        END LOOP;

        -- 4. Reference and distributed tables, co-located by org_id.
        step := 'reference and co-located distributed tables'; done := '';
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
        -- Keys to reference tables come back in this transaction: Citus needs one connection per node.
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
        FOR t IN SELECT b.* FROM inventory.builtin_tenant_tables() b
                  WHERE NOT EXISTS (SELECT FROM pg_dist_partition p WHERE p.logicalrelid = b.tbl)
        LOOP
            IF t.reference THEN
                PERFORM create_reference_table(t.tbl);
            ELSE
                PERFORM create_distributed_table(t.tbl, t.org_column::text,
                    colocate_with => CASE WHEN t.tbl = 'inventory.items'::regclass THEN 'none' ELSE 'inventory.items' END);
            END IF;
            done := done || t.tbl::text || ' ';
        END LOOP;
        RETURN NEXT;

        step := 'foreign keys back'; done := '';
        FOR fk IN SELECT (k->>'rel')::regclass AS rel, k->>'name' AS name, k->>'def' AS def FROM jsonb_array_elements(keys) k LOOP
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.name, fk.def);
            done := done || fk.name || ' ';
        END LOOP;
        RETURN NEXT;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION inventory.distribute_tables() FROM PUBLIC;

-- The one call: steps 1-4, committed, then step 5, which needs them committed (the workers take
-- the registry over connections of their own, which see committed tables only). No SET clause (it
-- commits): SECURITY INVOKER, every name qualified. Run it outside a transaction block; it says what
-- each step did in a NOTICE. Called again, it finds the steps done (and copies the registry again).
CREATE PROCEDURE inventory.distribute()
LANGUAGE plpgsql
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM inventory.distribute_tables() LOOP
        RAISE NOTICE 'distribute: %: %', r.step, CASE WHEN r.done OPERATOR(pg_catalog.=) '' THEN 'nothing to do' ELSE r.done END;
    END LOOP;
    COMMIT;
    RAISE NOTICE 'distribute: registry on the workers: % workers', inventory.sync_registry_to_workers();
END
$$;
REVOKE ALL ON PROCEDURE inventory.distribute() FROM PUBLIC;
COMMENT ON PROCEDURE inventory.distribute() IS
    'Citus: makes the built-in schema distributed by org_id (organizations and API keys as reference tables); idempotent.';
