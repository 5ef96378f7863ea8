-- grant_app_access and the extension's privileges (SPEC §3, §4): what an application role gets,
-- what PUBLIC gets, and the catalog facts behind them.

-- Functions: app_user was given grant_app_access; stranger only has what PUBLIC has.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('app_user', p.oid, 'EXECUTE') AS app_user,
       has_function_privilege('stranger', p.oid, 'EXECUTE') AS public
  FROM pg_proc p
 WHERE p.pronamespace = 'inventory'::regnamespace
 ORDER BY p.oid::regprocedure::text;

-- Schema and tables.
SELECT has_schema_privilege('app_user', 'inventory', 'USAGE') AS app_user_usage,
       has_schema_privilege('stranger', 'inventory', 'USAGE') AS public_usage,
       has_schema_privilege('app_user', 'inventory', 'CREATE') AS app_user_create;
SELECT c.relname,
       has_table_privilege('app_user', c.oid, 'SELECT') AS sel,
       has_table_privilege('app_user', c.oid, 'INSERT') AS ins,
       has_table_privilege('app_user', c.oid, 'UPDATE') AS upd,
       has_table_privilege('app_user', c.oid, 'DELETE') AS del,
       has_table_privilege('stranger', c.oid, 'SELECT') AS public_sel,
       c.relrowsecurity AS rls, c.relforcerowsecurity AS forced
  FROM pg_class c
 WHERE c.relnamespace = 'inventory'::regnamespace AND c.relkind = 'r'
 ORDER BY c.relname;
SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies
 WHERE schemaname = 'inventory' ORDER BY tablename, policyname;

-- Every SECURITY DEFINER function pins search_path; none is marked LEAKPROOF.
SELECT p.oid::regprocedure AS security_definer, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'inventory'::regnamespace AND p.prosecdef
 ORDER BY p.oid::regprocedure::text;
SELECT count(*) AS leakproof FROM pg_proc WHERE pronamespace = 'inventory'::regnamespace AND proleakproof;

-- grant_app_access itself: idempotent, quotes role names, refuses bad input, and is not for PUBLIC.
SELECT inventory.grant_app_access('app_user');
CREATE ROLE "App Role; --" NOLOGIN;
SELECT inventory.grant_app_access('"App Role; --"');
SELECT has_function_privilege('App Role; --', 'inventory.set_org(uuid)', 'EXECUTE') AS quoted_role_granted;
SELECT regress.try('SELECT inventory.grant_app_access(NULL)');
SELECT regress.try($$SELECT inventory.grant_app_access('no_such_role')$$);
SET ROLE app_user;
SELECT regress.try($$SELECT inventory.grant_app_access('app_user')$$);
RESET ROLE;
REVOKE ALL ON SCHEMA inventory FROM "App Role; --";
REVOKE ALL ON ALL TABLES IN SCHEMA inventory FROM "App Role; --";
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA inventory FROM "App Role; --";
DROP ROLE "App Role; --";
