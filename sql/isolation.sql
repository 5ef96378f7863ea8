-- Tenant isolation helpers written in SQL: the online backfill and the isolation report (SPEC §4).
-- enable_tenant_isolation / disable_tenant_isolation are Rust (src/isolation/).

-- Fills a tenant column's NULLs in batches, committing after each, so that a backfill of a big table
-- holds row locks on one batch at a time and no table lock stronger than ROW EXCLUSIVE. Call it outside a
-- transaction block (CALL … commits), before enable_tenant_isolation; see docs/DBA.md.
CREATE PROCEDURE inventory.backfill_org_column(
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
COMMENT ON PROCEDURE inventory.backfill_org_column(regclass, uuid, name, integer) IS
    'Fills NULLs of a tenant column in committed batches (online backfill before enable_tenant_isolation).';

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

-- The permissive policies of one table that let rows through other than by its org column, each with
-- the statements that close it. Permissive policies are OR-ed: one whose USING or WITH CHECK is
-- anything but the tenant expression (org_column = (SELECT inventory.current_org_id()), or the plain
-- org_column = inventory.current_org_id() that Citus needs) opens every row it allows to every
-- tenant, and to sessions without one, whatever the tenant policy says. A policy with neither
-- expression lets nothing through and is not listed; restrictive policies only narrow. One decision
-- for both users: enable_tenant_isolation refuses a table with such a policy (other than its own
-- tenant_isolation, which it replaces) and isolation_report flags them as errors.
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

-- The lint: the ways the given schemas (default: all but the system ones) still leak across tenants
-- that the catalog shows (docs/SECURITY.md lists what it does not check). A table's org column is the
-- one it (or the partitioned table it is a partition of) was made tenant-scoped with, else a column
-- named org_id. Not held to the tenant-table rules: a table that tenants can only read (row-level
-- security forced, every policy FOR SELECT) and that the helper did not make tenant-scoped, such as
-- the reconcile history, whose runs over all tenants belong to no tenant. No tenant can write such a
-- table; its permissive policies are checked like every tenant table's.
CREATE FUNCTION inventory.isolation_report(schemas name[] DEFAULT NULL)
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
COMMENT ON FUNCTION inventory.isolation_report(name[]) IS
    'Lints the given schemas (default: all but the system ones) for every way data still leaks across tenants.';
