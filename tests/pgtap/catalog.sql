-- What the catalog says about the extension's functions and tables, checked rather than reviewed:
-- SECURITY DEFINER functions pin search_path; nothing is LEAKPROOF; PUBLIC executes only the two
-- readers row-level security needs; dynamic SQL in PL/pgSQL goes through format() with %I/%L (and %s
-- only for regclass/regrole values, whose text is already quoted), never through concatenation; and
-- every table of the extension with row-level security has it forced.
BEGIN;
SELECT plan(7);
CREATE TEMP VIEW ext_functions AS
SELECT p.oid, p.oid::regprocedure::text AS signature, p.proname, p.prosecdef, p.proleakproof, p.proconfig,
       l.lanname, p.prosrc
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'inventory_ext'
  JOIN pg_language l ON l.oid = p.prolang;

SELECT ok((SELECT count(*) FROM ext_functions) > 30, 'the extension''s functions are found through pg_depend');
SELECT is(ARRAY(SELECT signature FROM ext_functions
                 WHERE prosecdef AND NOT (proconfig @> ARRAY['search_path=pg_catalog, pg_temp'])
                 ORDER BY 1), '{}'::text[],
          'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is(ARRAY(SELECT signature FROM ext_functions WHERE proleakproof ORDER BY 1), '{}'::text[],
          'no function is LEAKPROOF');
SELECT is(ARRAY(SELECT signature FROM ext_functions WHERE has_function_privilege('public', oid, 'EXECUTE') ORDER BY 1),
          ARRAY['inventory.current_org_id()', 'inventory.require_org_id()'],
          'PUBLIC executes only the readers that row-level security policies call');
-- Every EXECUTE statement of a PL/pgSQL function, as written (up to its semicolon).
CREATE TEMP VIEW dynamic_sql AS
SELECT f.signature, m[1] AS statement
  FROM ext_functions f, regexp_matches(f.prosrc, '\mEXECUTE\M(.*?);', 'gs') AS m
 WHERE f.lanname = 'plpgsql';
-- One exception, by name: the online isolation procedure executes the statements its planner returned
-- (tenant_isolation_next_step, written in Rust through src/sql_text.rs, the one quoting path).
SELECT is(ARRAY(SELECT signature || ': ' || statement FROM dynamic_sql
                 WHERE (statement !~ '^\s*format\(' OR statement ~ '\|\|')
                   AND NOT (signature LIKE 'inventory.enable_tenant_isolation_online(%' AND statement ~ '^\s*statement\s*$')
                 ORDER BY 1), '{}'::text[],
          'every EXECUTE builds its SQL with format(), never by concatenation');
-- %s interpolates a value's text as it is: allowed only where that value is a regclass or a regrole,
-- whose text form PostgreSQL quotes. The list is what was reviewed; a new %s makes this test fail.
SELECT is(ARRAY(SELECT signature || ' ' || count(*) FROM dynamic_sql, regexp_matches(statement, '%s', 'g')
                 GROUP BY signature ORDER BY 1),
          ARRAY['inventory.distribute_tables() 5',
                'inventory.grant_app_access(regrole) 7',
                'inventory.release_builtin_tables(boolean) 3',
                'inventory.update_balance_triggers() 4'],
          '%s appears only where a regclass (update_balance_triggers: the balance table; distribute_tables and release_builtin_tables: the built-in tables) '
          || 'or a regrole (grant_app_access: role; update_balance_triggers: the ledger''s owner) is interpolated, '
          || 'or a foreign key as pg_get_constraintdef wrote it (distribute_tables puts it back as it was)');
SELECT is(ARRAY(SELECT c.oid::regclass::text
                  FROM pg_class c
                  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'inventory_ext'
                 WHERE c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
                 ORDER BY 1),
          ARRAY['inventory.cluster_changes', 'inventory.tenant_tables', 'inventory.tracked_ledgers'],
          'every extension table has forced row-level security but the three registries (no tenant data; no application role is granted them)');
SELECT * FROM finish();
ROLLBACK;
