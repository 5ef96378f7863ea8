-- inventory_ext 0.1.0 → 0.2.0 (CHANGELOG.md). Hand-written: each object 0.2.0's CREATE EXTENSION makes
-- differently from 0.1.0's, in the order its dependencies need; tests/e2e/upgrade.sh checks that a
-- database updated by this script and one created at 0.2.0 describe the same (tests/e2e/upgrade/
-- describe.sql), and that data, balances and isolation survive. Runs in one transaction, as every
-- ALTER EXTENSION … UPDATE does: an error anywhere leaves the database at 0.1.0.
--
-- What takes time: the last step re-tracks every tracked ledger, which recomputes its balances from
-- the ledger while holding a SHARE lock on it (postings wait). docs/UPGRADING.md says how long.

\echo Use "ALTER EXTENSION inventory_ext UPDATE" to load this file. \quit

-- 1. Tables. Columns new since 0.1.0 go last (a fresh 0.2.0 install puts them last too).
ALTER TABLE inventory.tracked_ledgers
    ADD COLUMN negative_rule text CHECK (negative_rule IN ('items.allow_negative', 'refuse')),
    ADD COLUMN slots integer NOT NULL DEFAULT 1 CHECK (slots BETWEEN 1 AND 64),
    ADD COLUMN fill_worker integer;

ALTER TABLE inventory.reconcile_runs ADD COLUMN detail text;
ALTER TABLE inventory.reconcile_runs DROP CONSTRAINT reconcile_runs_status_check,
    ADD CONSTRAINT reconcile_runs_status_check
        CHECK (status IN ('running', 'clean', 'corrected', 'flagged', 'skipped', 'failed'));

-- 0.1.0 did not record which database's CREATE EXTENSION granted SET on app.org_id to PUBLIC, so an
-- updated database records nothing, and its DROP EXTENSION leaves that grant as it is.
CREATE TABLE inventory.cluster_changes (
    change     text PRIMARY KEY,
    made_as    text NOT NULL,
    made_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE inventory.cluster_changes IS
    'Cluster-wide changes this database''s CREATE EXTENSION made (e.g. the SET grant on app.org_id), undone by DROP EXTENSION.';

-- 2. Functions written in SQL, replaced or new (sql/isolation.sql, sql/finalize.sql, sql/ledger.sql).
CREATE OR REPLACE PROCEDURE inventory.backfill_org_column(
    tbl regclass,
    backfill_org uuid,
    org_column name DEFAULT 'org_id',
    batch_size integer DEFAULT 10000
)
LANGUAGE plpgsql
-- No SET search_path here: a procedure with a SET clause cannot COMMIT. It is SECURITY INVOKER and
-- qualifies its names.
AS $$
DECLARE
    filled bigint;
    total bigint := 0;
    pages bigint;
    rows_per_page numeric;
    step bigint;
    first_page bigint := 0;
BEGIN
    IF tbl IS NULL OR backfill_org IS NULL OR org_column IS NULL OR coalesce(batch_size, 0) < 1 THEN
        RAISE EXCEPTION 'backfill_org_column needs a table, an organization, a column and a positive batch size'
            USING ERRCODE = '22023';
    END IF;
    -- A regclass can outlive its table (an OID kept from before a DROP): PostgreSQL's own 42P01.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = tbl) THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid USING ERRCODE = '42P01',
            HINT = 'It was dropped (or the OID is wrong): pass the table by name, e.g. ''public.items''.';
    END IF;
    IF NOT EXISTS (SELECT FROM inventory.organizations WHERE id = backfill_org) THEN
        RAISE EXCEPTION 'backfill_org % names no organization', backfill_org USING ERRCODE = '22023';
    END IF;
    -- Walk the table once, a range of pages at a time (a TID range scan: each batch reads only its
    -- pages, so the whole backfill is one pass however big the table).
    pages := pg_catalog.pg_relation_size(tbl) / pg_catalog.current_setting('block_size')::int;
    SELECT CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 100 END
      INTO rows_per_page FROM pg_catalog.pg_class c WHERE c.oid = tbl;
    step := greatest(1, ceil(batch_size / rows_per_page));
    WHILE first_page < pages LOOP
        -- As the table's owner (fill_org_column_batch): the UPDATE fires the owner's triggers and rules.
        filled := inventory.fill_org_column_batch(tbl, backfill_org, org_column, first_page, first_page + step, NULL);
        total := total + filled;
        first_page := first_page + step;
        COMMIT;
    END LOOP;
    -- Rows still NULL: versions that moved past the walk while it ran (an UPDATE by the application).
    LOOP
        filled := inventory.fill_org_column_batch(tbl, backfill_org, org_column, NULL, NULL, batch_size);
        EXIT WHEN filled = 0;
        total := total + filled;
        COMMIT;
    END LOOP;
    RAISE NOTICE 'filled % rows of %', total, tbl;
END
$$;

CREATE FUNCTION inventory.open_policies(tbl regclass, org_column name)
RETURNS TABLE (policy name, drop_policy text, as_restrictive text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT p.polname,
       format('DROP POLICY %I ON %s;', p.polname, p.polrelid::regclass),
       format('DROP POLICY %I ON %s; CREATE POLICY %I ON %s AS RESTRICTIVE FOR %s TO %s%s%s;',
              p.polname, p.polrelid::regclass, p.polname, p.polrelid::regclass,
              CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                            WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
              CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
                   ELSE (SELECT string_agg(r.oid::regrole::text, ', ' ORDER BY r.oid::regrole::text)
                           FROM unnest(p.polroles) AS r(oid)) END,
              ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
              ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
  FROM pg_policy p,
       LATERAL (SELECT ARRAY[format('(%I = ( SELECT inventory.current_org_id() AS current_org_id))', org_column),
                             format('(%I = inventory.current_org_id())', org_column)] AS forms) tenant
 WHERE p.polrelid = tbl AND p.polpermissive
   AND NOT (coalesce(pg_get_expr(p.polqual, p.polrelid) = ANY (tenant.forms), true)
            AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid) = ANY (tenant.forms), true))
 ORDER BY p.polname
$$;
COMMENT ON FUNCTION inventory.open_policies(regclass, name) IS
    'Permissive policies of a table that let rows through other than by its org column, with the SQL that drops each or makes it restrictive.';

CREATE OR REPLACE FUNCTION inventory.isolation_report(schemas name[] DEFAULT NULL)
RETURNS TABLE (severity text, object text, problem text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH RECURSIVE
scope AS (
    SELECT n.oid AS nsp FROM pg_namespace n
     WHERE CASE WHEN schemas IS NULL
                THEN n.nspname NOT IN ('pg_catalog', 'information_schema')
                     AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
                ELSE n.nspname = ANY (schemas) END
),
-- Every table with an org column, and whether the helper made it (or its partitioned table) tenant-scoped.
scoped AS (
    SELECT c.oid AS relid, c.oid::regclass::text AS tbl, a.attnum AS org_attnum, a.attname AS org_col,
           a.attnotnull, c.relrowsecurity, c.relforcerowsecurity, c.relispartition, t.relid IS NOT NULL AS registered
      FROM pg_class c
      JOIN scope s ON s.nsp = c.relnamespace
      LEFT JOIN LATERAL (SELECT r.relid, r.org_column FROM inventory.tenant_tables r
                          WHERE r.relid = c.oid OR r.relid IN (SELECT anc.relid FROM pg_partition_ancestors(c.oid) anc)
                          LIMIT 1) t ON true
      JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped AND a.attnum > 0
                         AND a.attname = coalesce(t.org_column, 'org_id')
     WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
),
-- Those held to the tenant-table rules: all but the read-only ones.
tenant AS (
    SELECT s.* FROM scoped s
     WHERE NOT (NOT s.registered AND s.relrowsecurity AND s.relforcerowsecurity
                AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = s.relid)
                AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = s.relid AND p.polcmd <> 'r'))
),
-- The root of a partition tree, for fixes that go through the helper.
tenant_root AS (
    SELECT t.*, coalesce((SELECT r.relid::regclass::text FROM pg_partition_ancestors(t.relid) r
                           WHERE NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = r.relid)),
                         t.tbl) AS root
      FROM tenant t
),
-- Views (and views over views) that read a tenant table.
over_tenant (view_oid, base) AS (
    SELECT DISTINCT r.ev_class, t.tbl
      FROM tenant t
      JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.relid
                      AND d.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> t.relid
    UNION
    SELECT DISTINCT r.ev_class, o.base
      FROM over_tenant o
      JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = o.view_oid
                      AND d.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> o.view_oid
),
findings (severity, object, problem, fix) AS (
    SELECT 'error', tbl,
           format('tenant table (org column %I) has row-level security off: every role with access reads all tenants', org_col),
           format('SELECT inventory.enable_tenant_isolation(%L, %L);', root, org_col)
      FROM tenant_root WHERE NOT relrowsecurity
    UNION ALL
    SELECT 'error', tbl,
           'row-level security is not forced: the table owner bypasses it',
           format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', tbl)
      FROM tenant WHERE relrowsecurity AND NOT relforcerowsecurity
    UNION ALL
    SELECT 'warning', c.oid::regclass::text,
           'row-level security is on but there is no policy: only superusers and BYPASSRLS roles see any row',
           CASE WHEN t.relid IS NOT NULL
                THEN format('SELECT inventory.enable_tenant_isolation(%L, %L);', t.root, t.org_col)
                ELSE format('CREATE POLICY … ON %s …;  -- or ALTER TABLE %s DISABLE ROW LEVEL SECURITY;', c.oid::regclass, c.oid::regclass) END
      FROM pg_class c
      JOIN scope s ON s.nsp = c.relnamespace
      LEFT JOIN tenant_root t ON t.relid = c.oid
     WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity
       AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
    UNION ALL
    SELECT 'warning',
           format('policy %I on %s', p.polname, p.polrelid::regclass),
           CASE WHEN p.polcmd = 'a'
                THEN 'INSERT policy without WITH CHECK: it lets no row in (PostgreSQL takes the missing check as false), so it does nothing'
                ELSE 'policy without WITH CHECK: writes are checked only by its USING expression' END,
           CASE WHEN p.polqual IS NOT NULL
                THEN format('ALTER POLICY %I ON %s WITH CHECK (%s);', p.polname, p.polrelid::regclass,
                            pg_get_expr(p.polqual, p.polrelid))
                WHEN p.polcmd = 'a'
                THEN format('DROP POLICY %I ON %s;  -- or give it the check it was meant to have: ALTER POLICY %I ON %s WITH CHECK (…);',
                            p.polname, p.polrelid::regclass, p.polname, p.polrelid::regclass)
                ELSE format('ALTER POLICY %I ON %s WITH CHECK (…);', p.polname, p.polrelid::regclass) END
      FROM pg_policy p
      JOIN pg_class c ON c.oid = p.polrelid
      JOIN scope s ON s.nsp = c.relnamespace
     WHERE p.polcmd IN ('*', 'a', 'w') AND p.polwithcheck IS NULL
    UNION ALL
    SELECT 'error', format('policy %I on %s', o.policy, s.tbl),
           CASE WHEN o.policy = 'tenant_isolation'
                THEN format('the tenant policy does not read %I = current_org_id() any more: every row it lets through is open to every tenant, and to sessions without one',
                            s.org_col)
                ELSE format('permissive policy besides the tenant policy (%I = current_org_id()): permissive policies are OR-ed, so every row it lets through is open to every tenant, and to sessions without one',
                            s.org_col) END,
           CASE WHEN o.policy = 'tenant_isolation' AND t.relid IS NOT NULL
                THEN format('SELECT inventory.enable_tenant_isolation(%L, %L);  -- puts the tenant policy back', t.root, t.org_col)
                ELSE o.drop_policy || '  -- or, to keep it as a further restriction: ' || o.as_restrictive END
      FROM scoped s
     CROSS JOIN LATERAL inventory.open_policies(s.relid, s.org_col) o
      LEFT JOIN tenant_root t ON t.relid = s.relid
    UNION ALL
    SELECT 'error', tbl,
           format('org column %I is nullable: a row without a tenant is visible to no tenant and writable by none', org_col),
           format('SELECT inventory.enable_tenant_isolation(%L, %L, backfill_org => ''<organization id>'');', root, org_col)
      FROM tenant_root WHERE NOT attnotnull
    UNION ALL
    SELECT 'error', format('%s on %s', i.indexrelid::regclass, t.tbl),
           format('unique key (%s) does not include %I: tenants cannot reuse a value, and a duplicate tells one tenant what another has',
                  (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true), ', ')
                     FROM generate_series(1, i.indnkeyatts) k)
                  , t.org_col),
           format('SELECT inventory.enable_tenant_isolation(%L, %L);  -- scope_unique rewrites it', t.root, t.org_col)
      FROM tenant_root t
      JOIN pg_index i ON i.indrelid = t.relid
     WHERE NOT t.relispartition AND i.indisunique AND NOT i.indisprimary
       AND NOT (t.org_attnum = ANY (i.indkey[0:i.indnkeyatts - 1]))
    UNION ALL
    SELECT 'warning', format('primary key of %s', t.tbl),
           format('primary key (%s) does not include %I', pk.cols, t.org_col),
           CASE WHEN pk.org_pk_unique
                THEN 'none needed: UNIQUE (org, primary key) is in place for tenant-safe references; a distributed (Citus) table needs the org column in the primary key itself'
                ELSE format('SELECT inventory.enable_tenant_isolation(%L, %L);  -- adds UNIQUE (org, primary key)', t.root, t.org_col) END
      FROM tenant_root t
      JOIN LATERAL (
           SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.o) AS cols,
                  EXISTS (SELECT FROM pg_index u
                           WHERE u.indrelid = t.relid AND u.indisunique AND u.indpred IS NULL
                             AND u.indnkeyatts = cardinality(con.conkey) + 1
                             AND t.org_attnum = ANY (u.indkey[0:u.indnkeyatts - 1])
                             AND con.conkey <@ u.indkey[0:u.indnkeyatts - 1]::int2[]) AS org_pk_unique
             FROM pg_constraint con, unnest(con.conkey) WITH ORDINALITY k(n, o), pg_attribute a
            WHERE con.conrelid = t.relid AND con.contype = 'p' AND NOT (t.org_attnum = ANY (con.conkey))
              AND a.attrelid = t.relid AND a.attnum = k.n
            GROUP BY con.conkey) pk ON true
     WHERE NOT t.relispartition
    UNION ALL
    SELECT 'error', format('foreign key %I on %s', con.conname, src.tbl),
           format('foreign key to tenant table %s does not include the org columns: a row can reference another tenant''s row', dst.tbl),
           format('SELECT inventory.enable_tenant_isolation(%L, %L);  -- with %s tenant-scoped too', src.root, src.org_col, dst.tbl)
      FROM pg_constraint con
      JOIN tenant_root src ON src.relid = con.conrelid
      JOIN tenant_root dst ON dst.relid = con.confrelid
     WHERE con.contype = 'f' AND con.conparentid = 0
       AND NOT (src.org_attnum = ANY (con.conkey) AND dst.org_attnum = ANY (con.confkey))
    UNION ALL
    SELECT 'error', format('view %s', o.view_oid::regclass),
           format('view over tenant table %s runs with its owner''s privileges (no security_invoker), so it can bypass row-level security', min(o.base)),
           format('ALTER VIEW %s SET (security_invoker = true);', o.view_oid::regclass)
      FROM over_tenant o
      JOIN pg_class v ON v.oid = o.view_oid AND v.relkind = 'v'
      JOIN scope s ON s.nsp = v.relnamespace
     WHERE NOT coalesce((SELECT option_value::boolean FROM pg_options_to_table(v.reloptions)
                          WHERE option_name = 'security_invoker'), false)
     GROUP BY o.view_oid
    UNION ALL
    SELECT 'error', format('materialized view %s', o.view_oid::regclass),
           format('materialized view over tenant table %s stores every tenant''s rows and has no row-level security', min(o.base)),
           format('DROP MATERIALIZED VIEW %s;  -- use a view with security_invoker = true instead', o.view_oid::regclass)
      FROM over_tenant o
      JOIN pg_class v ON v.oid = o.view_oid AND v.relkind = 'm'
      JOIN scope s ON s.nsp = v.relnamespace
     GROUP BY o.view_oid
    UNION ALL
    SELECT 'error', format('function %s', p.oid::regprocedure),
           'SECURITY DEFINER function without a fixed search_path: a caller can put its own objects in front of the ones it means',
           format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::regprocedure)
      FROM pg_proc p
      JOIN scope s ON s.nsp = p.pronamespace
     WHERE p.prosecdef
       AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
    UNION ALL
    SELECT 'warning', format('role %I', r.rolname),
           CASE WHEN r.rolsuper THEN 'can log in and is a superuser: row-level security does not apply to it'
                ELSE 'can log in and has BYPASSRLS: row-level security does not apply to it' END,
           CASE WHEN r.rolsuper THEN 'Keep it for administration only; connect applications as a role without SUPERUSER.'
                ELSE format('ALTER ROLE %I NOBYPASSRLS;', r.rolname) END
      FROM pg_roles r
     WHERE r.rolcanlogin AND (r.rolsuper OR r.rolbypassrls)
)
SELECT severity, object, problem, fix
  FROM findings
 ORDER BY CASE severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END, object, problem
$$;

CREATE OR REPLACE FUNCTION inventory.grant_app_access(role regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22023',
            HINT = 'Pass the application role, e.g. inventory.grant_app_access(''app'').';
    END IF;
    -- A regrole can outlive its role (an OID kept from before DROP ROLE): its text is then a number.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = role) THEN
        RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = '42704',
            HINT = 'Pass an existing role.';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA inventory TO %s', role);
    EXECUTE format('GRANT SELECT ON inventory.organizations TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        inventory.current_org_id(), inventory.require_org_id(),
        inventory.set_org(uuid), inventory.set_org_by_subdomain(text), inventory.set_org_by_api_key(text),
        inventory.resolve_org(uuid, text, text),
        inventory.post(uuid, uuid, numeric, uuid, text, text), inventory.transfer(uuid, uuid, uuid, numeric, uuid, text),
        inventory.on_hand(uuid, uuid),
        inventory.reconcile(regclass, uuid, numeric, boolean), inventory.reconcile_run(regclass, uuid, numeric, boolean) TO %s', role);
    -- The built-in schema: items, locations and lots are the application's to maintain; balances are
    -- read-only (the balance trigger writes them). The ledger is append-only: UPDATE and DELETE are
    -- granted only so that an attempt meets the guard's 55000 and its advice (post a reversing entry)
    -- rather than a bare permission error; the guard refuses every one.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON inventory.items, inventory.locations, inventory.lots TO %s', role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON inventory.ledger TO %s', role);
    EXECUTE format('GRANT SELECT ON inventory.balances, inventory.stock TO %s', role);
    -- Reconciliation of the role's own tenant, and its history.
    EXECUTE format('GRANT SELECT ON inventory.reconcile_runs, inventory.reconcile_findings TO %s', role);
END
$$;

CREATE FUNCTION inventory.undo_cluster_changes() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobs integer := 0;
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        -- Planned only when it runs, so the function exists without pg_cron.
        SELECT count(cron.unschedule(j.jobid)) INTO jobs FROM cron.job j
         WHERE j.database = current_database() AND j.command ~ 'inventory\.reconcile_run\(';
        IF jobs > 0 THEN
            RAISE NOTICE 'unscheduled % pg_cron job(s) that ran inventory.reconcile_run in this database', jobs;
        END IF;
    END IF;
    IF EXISTS (SELECT FROM inventory.cluster_changes c JOIN pg_parameter_acl a ON a.parname = 'app.org_id'
                WHERE c.change = 'GRANT SET ON PARAMETER app.org_id TO PUBLIC' AND a.paracl::text = c.made_as) THEN
        REVOKE SET ON PARAMETER app.org_id FROM PUBLIC;
        RAISE NOTICE 'revoked the SET privilege on app.org_id from PUBLIC that CREATE EXTENSION granted'
            USING HINT = 'If another database of this cluster still uses inventory_ext, run SELECT inventory.grant_tenant_switch(''public'') there.';
    END IF;
END
$$;

-- enable_tenant_isolation's online form (SPEC §4): the same steps (tenant_isolation_next_step plans them
-- from the catalog, src/isolation/plan.rs), each piece of work in a transaction of its own, the catalog
-- read again after each. So it is idempotent (nothing left: nothing done) and resumable (called again
-- after any failure, it goes on from what is there). Pieces of three kinds:
-- - transaction: catalog changes (ACCESS EXCLUSIVE for a moment) or a VALIDATE (SHARE UPDATE EXCLUSIVE:
--   writers go on). Each waits at most lock_wait (default 100 ms) for its locks and then gives way
--   to the application: rolled back, retried after a pause that grows, up to 100 times;
-- - index: CREATE/DROP INDEX CONCURRENTLY, which only a top-level statement can run, so a background
--   worker runs it (concurrent_index_start) while this polls, committing between polls;
-- - backfill: backfill_org_column's committed batches.
-- stop_after stops after that many pieces (what the tests use to show it resumes from any of them).
-- Like backfill_org_column it has no SET clause (a procedure with one cannot COMMIT): it is SECURITY
-- INVOKER, qualifies its names, and the functions it calls pin their search_path.
CREATE PROCEDURE inventory.enable_tenant_isolation_online(
    tbl regclass,
    org_column name DEFAULT 'org_id',
    backfill_org uuid DEFAULT NULL,
    scope_unique boolean DEFAULT true,
    lock_wait interval DEFAULT '100ms',
    stop_after integer DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
DECLARE
    next record;
    previous text;
    request bigint;
    answer record;
    statement text;
    done boolean;
    pieces integer := 0;
    tries constant integer := 100;
BEGIN
    IF lock_wait IS NULL OR lock_wait < '1ms' OR lock_wait > '1min' THEN
        RAISE EXCEPTION 'lock_wait must be between 1 ms and a minute' USING ERRCODE = '22023';
    END IF;
    LOOP
        EXIT WHEN pieces = stop_after;
        pieces := pieces + 1;
        SELECT * INTO next FROM inventory.tenant_isolation_next_step(tbl, org_column, backfill_org, scope_unique);
        EXIT WHEN NOT FOUND;
        -- A piece of work that leaves the catalog as it was would come back for ever.
        IF pg_catalog.concat_ws(' ', next.kind, next.statements::text) = previous THEN
            RAISE EXCEPTION 'enable_tenant_isolation_online: step "%" made no progress', next.step
                USING ERRCODE = '55000', DETAIL = pg_catalog.array_to_string(next.statements, '; '),
                      HINT = 'Something undoes it as it runs (an event trigger, another session''s DDL); call it again when that stops.';
        END IF;
        previous := pg_catalog.concat_ws(' ', next.kind, next.statements::text);
        COMMIT;
        IF next.kind = 'backfill' THEN
            CALL inventory.backfill_org_column(tbl, next.statements[1]::uuid, org_column, 10000);
        ELSIF next.kind = 'index' THEN
            request := inventory.concurrent_index_start(next.statements[1]);
            LOOP
                COMMIT;
                SELECT * INTO answer FROM inventory.background_result(request);
                EXIT WHEN answer.finished;
                COMMIT;
                PERFORM pg_catalog.pg_sleep(0.05);
            END LOOP;
            IF answer.sqlstate IS NOT NULL THEN
                RAISE EXCEPTION '%', answer.message USING ERRCODE = answer.sqlstate,
                    DETAIL = 'while running ' || next.statements[1],
                    HINT = 'Fix the cause and call enable_tenant_isolation_online again: it goes on from here.';
            END IF;
        ELSE
            FOR attempt IN 1..tries LOOP
                PERFORM pg_catalog.set_config('lock_timeout', (extract(epoch FROM lock_wait) * 1000)::bigint::text || 'ms', true);
                BEGIN
                    FOREACH statement IN ARRAY next.statements LOOP
                        EXECUTE statement;
                    END LOOP;
                    done := true;
                EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                    done := false;
                    RAISE NOTICE 'step "%" gave way to the application (attempt %): %', next.step, attempt, SQLERRM;
                    IF attempt = tries THEN
                        RAISE EXCEPTION 'enable_tenant_isolation_online: step "%" did not get its locks in % tries', next.step, tries
                            USING ERRCODE = '55P03', DETAIL = SQLERRM,
                                  HINT = 'Something holds the table for long (see pg_locks); call again later: it goes on from here.';
                    END IF;
                END;
                EXIT WHEN done;
                -- Gave way to the application: try again after a pause that grows (at most a second).
                COMMIT;
                PERFORM pg_catalog.pg_sleep(least(1.0, 0.02 * attempt));
                COMMIT;
            END LOOP;
        END IF;
        FOREACH statement IN ARRAY next.report LOOP
            RAISE NOTICE '%', statement;
        END LOOP;
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE inventory.enable_tenant_isolation_online(regclass, name, uuid, boolean, interval, integer) IS
    'enable_tenant_isolation for a table being written to: the same steps, committed one by one (SPEC §4).';

-- track_balances for a ledger that is being written to (src/balances/online.rs): the same set-up, with
-- writers held back only while it is made (the lock is tried, never queued for); the balances of the
-- ledger as it was then are summed by a background worker under that instant's snapshot and added to
-- the balance rows the triggers keep meanwhile. Read the balances once it returns. Like the isolation
-- procedure it has no SET clause (it commits): SECURITY INVOKER, names qualified. Called again, it
-- starts over (an online rebuild): after a failure, that is how it resumes.
CREATE PROCEDURE inventory.track_balances_online(
    ledger regclass,
    balance_table text,
    key_columns name[],
    qty_column name
)
LANGUAGE plpgsql
AS $$
DECLARE
    request bigint;
    answer record;
BEGIN
    request := inventory.balance_fill_start(ledger, balance_table, key_columns, qty_column);
    LOOP
        COMMIT;
        SELECT * INTO answer FROM inventory.background_result(request);
        EXIT WHEN answer.finished;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
    IF answer.sqlstate IS NOT NULL THEN
        RAISE EXCEPTION '%', answer.message USING ERRCODE = answer.sqlstate,
            DETAIL = 'while filling the balances of ' || ledger::text || ' from its snapshot',
            HINT = 'Fix the cause and call track_balances_online again: it starts over.';
    END IF;
END
$$;
COMMENT ON PROCEDURE inventory.track_balances_online(regclass, text, name[], name) IS
    'track_balances for a ledger being written to: the balances filled by a background worker from a snapshot.';

-- sql/citus.sql, new in 0.2.0 (issue 17), as a fresh install has it:
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

-- 3. Functions in the library (src/). 0.1.0's two trigger functions were pgrx wrappers with other
-- symbols; balance_maintenance is no longer SECURITY DEFINER (the flush takes its identity itself).
CREATE FUNCTION inventory.balance_rows() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'balance_rows_entry';
CREATE OR REPLACE FUNCTION inventory.balance_maintenance() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'balance_maintenance_entry';
CREATE OR REPLACE FUNCTION inventory.append_only_guard() RETURNS trigger
    LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'append_only_guard_entry';
CREATE FUNCTION inventory.on_ddl_command_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_command_start_entry';
CREATE FUNCTION inventory.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_command_end_entry';
CREATE FUNCTION inventory.on_ddl_begin() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_begin_entry';
-- Stock on hand from the balances: over all lots, and over all locations when location_id is NULL.
-- PL/pgSQL rather than SQL: Citus cannot plan a SQL function's parameters (SPEC §9). Under a tenant it
-- says org_id = the tenant, which row-level security filters by anyway, so that Citus reads one shard.
CREATE OR REPLACE FUNCTION inventory.on_hand(item_id uuid, location_id uuid DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant uuid := inventory.current_org_id();
    total numeric;
BEGIN
    IF tenant IS NULL THEN
        SELECT sum(b.qty) INTO total FROM inventory.balances b
         WHERE b.item_id = on_hand.item_id AND (on_hand.location_id IS NULL OR b.location_id = on_hand.location_id);
    ELSE
        SELECT sum(b.qty) INTO total FROM inventory.balances b
         WHERE b.org_id = tenant AND b.item_id = on_hand.item_id
           AND (on_hand.location_id IS NULL OR b.location_id = on_hand.location_id);
    END IF;
    RETURN coalesce(total, 0);
END
$$;

-- rebuild_balances' default names the built-in ledger by text, resolved per call (src/balances/mod.rs):
-- a regclass constant made the function depend on the table, which inventory.distribute drops on Citus
-- workers.
CREATE OR REPLACE FUNCTION inventory.rebuild_balances(ledger regclass DEFAULT 'inventory.ledger'::text::regclass,
        org_id uuid DEFAULT NULL) RETURNS bigint
    VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'rebuild_balances_wrapper';
CREATE FUNCTION inventory.set_balance_slots(ledger regclass, slots integer) RETURNS void
    VOLATILE PARALLEL UNSAFE
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'set_balance_slots_wrapper';

CREATE FUNCTION inventory.fill_org_column_batch(tbl regclass, backfill_org uuid, org_column name,
        first_page bigint, last_page bigint, batch_size integer)
    RETURNS bigint
    VOLATILE PARALLEL UNSAFE
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'fill_org_column_batch_wrapper';
CREATE FUNCTION inventory.tenant_isolation_next_step(tbl regclass, org_column name DEFAULT 'org_id',
        backfill_org uuid DEFAULT NULL, scope_unique boolean DEFAULT true)
    RETURNS TABLE (step text, report text[], kind text, statements text[])
    VOLATILE PARALLEL UNSAFE
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_isolation_next_step_wrapper';
CREATE FUNCTION inventory.concurrent_index_start(statement text) RETURNS bigint
    STRICT VOLATILE PARALLEL UNSAFE
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'concurrent_index_start_wrapper';
CREATE FUNCTION inventory.background_result(request bigint)
    RETURNS TABLE (finished boolean, sqlstate text, message text)
    STRICT VOLATILE PARALLEL UNSAFE
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'background_result_wrapper';
CREATE FUNCTION inventory.balance_fill_start(ledger regclass, balance_table text, key_columns name[], qty_column name)
    RETURNS bigint
    VOLATILE PARALLEL UNSAFE
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'balance_fill_start_wrapper';

-- 4. The built-in schema: the allow_negative guard, the stock view.
CREATE FUNCTION inventory.allow_negative_guard() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    negative record;
    folded bigint;
BEGIN
    -- The item as it is (OLD): row-level security chose that row; NEW is checked against the tenant's
    -- policy only after BEFORE triggers, so looking up NEW's keys would read another tenant's balances.
    IF NEW.allow_negative OR NOT OLD.allow_negative THEN
        RETURN NEW;
    END IF;
    -- With slots (inventory.set_balance_slots) a key's balance is the sum of its rows, and a guarded
    -- item's rows must each stay >= 0: the rows of a key whose total is not negative are folded into
    -- one (locked in slot order, as postings lock them); only a negative total refuses.
    IF EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'inventory.balances'::pg_catalog.regclass
                  AND attname = 'slot' AND NOT attisdropped)
       AND EXISTS (SELECT FROM inventory.balances b WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id AND b.qty < 0) THEN
        -- Planned only when it runs, so only while the slot column exists.
        WITH keys AS (SELECT DISTINCT b.location_id, b.lot_id FROM inventory.balances b
                       WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id AND b.qty < 0),
             locked AS MATERIALIZED (SELECT b.location_id, b.lot_id, b.slot, b.qty FROM inventory.balances b
                                       JOIN keys k ON k.location_id = b.location_id AND k.lot_id IS NOT DISTINCT FROM b.lot_id
                                      WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id
                                      ORDER BY b.location_id, b.lot_id, b.slot FOR NO KEY UPDATE OF b),
             totals AS (SELECT location_id, lot_id, min(slot) AS first, sum(qty) AS total FROM locked
                         GROUP BY location_id, lot_id HAVING sum(qty) >= 0),
             moved AS (UPDATE inventory.balances b SET qty = CASE WHEN b.slot = t.first THEN t.total ELSE 0 END
                         FROM totals t WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id AND b.location_id = t.location_id
                          AND b.lot_id IS NOT DISTINCT FROM t.lot_id RETURNING 1)
        SELECT count(*) INTO folded FROM moved;
    END IF;
    SELECT l.code AS location, lot.code AS lot, sum(b.qty) AS qty INTO negative
      FROM inventory.balances b
      LEFT JOIN inventory.locations l ON l.org_id = b.org_id AND l.id = b.location_id
      LEFT JOIN inventory.lots lot ON lot.org_id = b.org_id AND lot.id = b.lot_id
     WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id
     GROUP BY b.location_id, b.lot_id, l.code, lot.code
    HAVING sum(b.qty) < 0
     ORDER BY l.code, lot.code NULLS FIRST LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'item % cannot disallow negative stock: its balance at location % is %',
            OLD.sku, negative.location || coalesce(' lot ' || negative.lot, ''), negative.qty
            USING ERRCODE = '23514',
                  HINT = 'Receive stock (or post a correcting entry) until no balance of the item is below zero, then disallow negative stock.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER inventory_allow_negative BEFORE UPDATE OF allow_negative ON inventory.items
    FOR EACH ROW EXECUTE FUNCTION inventory.allow_negative_guard();

CREATE VIEW inventory.stock WITH (security_invoker = true) AS
SELECT org_id, item_id, location_id, lot_id, sum(qty) AS qty, max(last_ledger_id) AS last_ledger_id,
       max(updated_at) AS updated_at
  FROM inventory.balances
 GROUP BY org_id, item_id, location_id, lot_id;
COMMENT ON VIEW inventory.stock IS
    'Balances with a key''s slots summed: one row per item, location and lot (inventory.set_balance_slots).';

-- Roles grant_app_access gave SELECT on the balances read the stock view too, as it gives now.
DO $$
DECLARE
    reader regrole;
BEGIN
    FOR reader IN SELECT DISTINCT a.grantee::regrole FROM pg_class c, aclexplode(c.relacl) a
                   WHERE c.oid = 'inventory.balances'::regclass AND a.privilege_type = 'SELECT'
                     AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT SELECT ON inventory.stock TO %s', reader);
    END LOOP;
END
$$;

-- 5. Nothing new is executable by PUBLIC (as sql/finalize.sql ends a fresh install). Only the new
-- routines: a GRANT or REVOKE in an extension script records the object's whole ACL as its initial
-- privileges (pg_init_privs), which pg_dump leaves out, so one on 0.1.0's routines would turn every
-- grant_app_access a DBA ran since into an "initial" privilege a dump no longer carries.
REVOKE ALL ON FUNCTION inventory.open_policies(regclass, name), inventory.undo_cluster_changes(),
    inventory.balance_rows(), inventory.on_ddl_command_start(), inventory.on_ddl_command_end(),
    inventory.on_ddl_begin(), inventory.set_balance_slots(regclass, integer), inventory.allow_negative_guard(),
    inventory.tenant_isolation_next_step(regclass, name, uuid, boolean), inventory.concurrent_index_start(text),
    inventory.background_result(bigint), inventory.balance_fill_start(regclass, text, name[], name),
    inventory.fill_org_column_batch(regclass, uuid, name, bigint, bigint, integer)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE inventory.enable_tenant_isolation_online(regclass, name, uuid, boolean, interval, integer),
    inventory.track_balances_online(regclass, text, name[], name) FROM PUBLIC;

-- 6. Every tracked ledger, the built-in one first, gets 0.2.0's triggers and its negative-stock rule
-- in the registry; its balances are recomputed (sql/ledger.sql says how).
CREATE FUNCTION inventory.update_balance_triggers() RETURNS SETOF regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old record;
    owners record;
    args bytea;
    rule text;
    nul constant bytea := decode('00', 'hex');
    error_message text;
    error_hint text;
BEGIN
    FOR old IN
        DELETE FROM inventory.tracked_ledgers l WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = l.ledger)
        RETURNING l.ledger::oid
    LOOP
        RAISE WARNING 'removed the registration of a ledger that no longer exists (OID %)', old.ledger;
    END LOOP;
    FOR old IN
        SELECT l.ledger, l.balance_table, l.key_columns, l.qty_column, l.builtin, t.tgargs, t.tgenabled,
               t.oid IS NOT NULL AS legacy,
               EXISTS (SELECT FROM pg_trigger n WHERE n.tgrelid = l.ledger
                          AND n.tgfoid = 'inventory.balance_rows()'::regprocedure) AS current
          FROM inventory.tracked_ledgers l
          LEFT JOIN pg_trigger t ON t.tgrelid = l.ledger AND t.tgname = 'inventory_balances'
                                AND t.tgfoid = 'inventory.balance_maintenance()'::regprocedure AND t.tgnargs > 0
         ORDER BY l.builtin DESC, l.ledger::text
    LOOP
        IF NOT old.legacy THEN
            IF NOT old.current THEN
                RAISE WARNING 'ledger % has no balance trigger (dropped or renamed under an older version): its balances are not kept', old.ledger
                    USING HINT = 'Track it again: SELECT inventory.untrack_balances(…), then inventory.track_balances(…) with its rule; reconcile() shows the drift.';
            END IF;
            CONTINUE;
        END IF;
        BEGIN
            -- 0.1.0's arguments, each ended by a zero byte: balance table, qty, id, rule ('' for none),
            -- keys. Split as bytes: a column name may hold any other byte.
            args := old.tgargs;
            FOR i IN 1..3 LOOP
                args := substring(args FROM position(nul IN args) + 1);
            END LOOP;
            rule := convert_from(substring(args FOR position(nul IN args) - 1), 'UTF8');
            -- 0.1.0 let two ledgers keep their balances in one table; tracking either would rebuild
            -- the table from its ledger alone (and hand it to that ledger's owner). Both are left.
            IF EXISTS (SELECT FROM inventory.tracked_ledgers o WHERE o.balance_table = old.balance_table AND o.ledger <> old.ledger) THEN
                RAISE EXCEPTION 'its balance table % keeps another ledger''s balances too', old.balance_table
                    USING ERRCODE = '55000',
                          HINT = 'Give each ledger a balance table of its own: untrack both, then track each with its own.';
            END IF;
            SELECT l.relowner::regrole AS ledger_owner, b.relowner::regrole AS balance_owner, r.rolsuper AS by_superuser
              INTO owners
              FROM pg_class l, pg_class b JOIN pg_roles r ON r.oid = b.relowner
             WHERE l.oid = old.ledger AND b.oid = old.balance_table;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'its balance table (OID %) no longer exists', old.balance_table::oid USING ERRCODE = '42P01',
                    HINT = 'Track the ledger again: SELECT inventory.untrack_balances(…), then inventory.track_balances(…).';
            END IF;
            IF owners.ledger_owner <> owners.balance_owner AND owners.by_superuser THEN
                EXECUTE format('ALTER TABLE %s OWNER TO %s', old.balance_table, owners.ledger_owner);
                EXECUTE format('GRANT USAGE ON SCHEMA inventory TO %s', owners.ledger_owner);
                RAISE NOTICE 'balance table % now belongs to %, the owner of ledger %',
                    old.balance_table, owners.ledger_owner, old.ledger;
            END IF;
            PERFORM inventory.track_balances(old.ledger, old.balance_table::text, old.key_columns, old.qty_column,
                                             allow_negative => rule IS DISTINCT FROM 'refuse');
            IF old.tgenabled = 'D' THEN
                EXECUTE format('ALTER TABLE %s DISABLE TRIGGER inventory_balances, DISABLE TRIGGER inventory_balances_flush',
                               old.ledger);
                RAISE NOTICE 'ledger %''s balance upkeep stays suspended, as it was (its balances were recomputed)', old.ledger;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            IF old.builtin THEN
                RAISE;
            END IF;
            GET STACKED DIAGNOSTICS error_message = MESSAGE_TEXT, error_hint = PG_EXCEPTION_HINT;
            RAISE WARNING 'ledger % was not updated: % (%)', old.ledger, error_message, SQLSTATE
                USING HINT = coalesce(nullif(error_hint, '') || ' ', '')
                             || CASE WHEN old.tgenabled = 'D'
                                     THEN 'Its balance upkeep stays suspended, as it was, until this is fixed and SELECT inventory.update_balance_triggers() runs again.'
                                     ELSE 'Postings to it are refused until this is fixed and SELECT inventory.update_balance_triggers() runs again.' END;
            CONTINUE;
        END;
        RETURN NEXT old.ledger;
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION inventory.update_balance_triggers() FROM PUBLIC;
COMMENT ON FUNCTION inventory.update_balance_triggers() IS
    'Gives ledgers tracked under an older inventory_ext (a restored dump) this version''s balance triggers, and recomputes their balances.';

SELECT count(*) AS ledgers_updated FROM inventory.update_balance_triggers();

-- 7. The event triggers, last: the DDL check would refuse the trigger swap above half-way.
CREATE EVENT TRIGGER inventory_drop_extension ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION inventory.on_ddl_command_start();
-- DDL that would make a tracked ledger's balances drift is refused (src/balances/ddl.rs). Every
-- command: what it touched is known from the relcache invalidations it sent, whatever its form.
CREATE EVENT TRIGGER inventory_tracked_ddl_begin ON ddl_command_start
    EXECUTE FUNCTION inventory.on_ddl_begin();
CREATE EVENT TRIGGER inventory_tracked_ddl ON ddl_command_end
    EXECUTE FUNCTION inventory.on_ddl_command_end();

-- 8. Initial privileges as a fresh install records them. The stock view's grants (step 4) and the
-- schema USAGE a handed-over balance table's owner got (step 6) were made inside this script, so
-- PostgreSQL recorded those objects' ACLs, the DBA's own grants included, as initial privileges, which
-- pg_dump leaves out. A fresh install records none for either; without these rows a dump carries the
-- grants, as it does after a fresh install (tests/e2e/upgrade.sh compares, and restores a dump).
DELETE FROM pg_catalog.pg_init_privs
 WHERE (classoid, objoid) IN (('pg_catalog.pg_class'::pg_catalog.regclass::oid, 'inventory.stock'::pg_catalog.regclass::oid),
                              ('pg_catalog.pg_namespace'::pg_catalog.regclass::oid, 'inventory'::pg_catalog.regnamespace::oid));
