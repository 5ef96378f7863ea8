-- The citus layer's first checks (issue 17, in progress): the cluster, the extension on every node, and
-- SPEC §9's tenant policy on a table distributed by org_id, as an application role over the coordinator
-- with SET LOCAL (citus.propagate_set_commands = 'local'). One TAP line per check.
\ir helpers.psql

SELECT pg_temp.tap(1, (SELECT count(*) FROM citus_get_active_worker_nodes()) = 2, 'a coordinator and two active workers');
SELECT pg_temp.tap(2, (SELECT array_agg(result ORDER BY nodeport) FROM run_command_on_workers(
           $$SELECT extversion FROM pg_extension WHERE extname = 'inventory_ext'$$))
           = ARRAY[(SELECT extversion FROM pg_extension WHERE extname = 'inventory_ext')]::text[] || ARRAY[(SELECT extversion FROM pg_extension WHERE extname = 'inventory_ext')]::text[],
       'CREATE EXTENSION inventory_ext on the coordinator reaches both workers, same version');

-- An application's table distributed by the tenant, with the plain policy SPEC §9 prescribes.
CREATE TABLE public.notes (org_id uuid NOT NULL, id bigint NOT NULL, body text, PRIMARY KEY (org_id, id));
SELECT create_distributed_table('public.notes', 'org_id') \g /dev/null
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.notes
    USING (org_id = inventory.current_org_id()) WITH CHECK (org_id = inventory.current_org_id());
INSERT INTO public.notes
SELECT ('00000000-0000-4000-8000-00000000000' || o)::uuid, g, 'note ' || g
  FROM generate_series(1, 2) o, generate_series(1, 5) g;
CREATE ROLE citus_app LOGIN;
GRANT USAGE ON SCHEMA inventory TO citus_app;
GRANT SELECT, INSERT ON public.notes TO citus_app;
SELECT pg_temp.tap(3, (SELECT count(*) FROM public.notes) = 10 AND (SELECT count(DISTINCT shardid) FROM pg_dist_shard
           WHERE logicalrelid = 'public.notes'::regclass) = 32, 'a table distributed by org_id over 32 shards, 10 rows');

SET ROLE citus_app;
BEGIN;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL app.org_id = '00000000-0000-4000-8000-000000000001';
SELECT pg_temp.tap(4, (SELECT count(*) FROM public.notes) = 5 AND (SELECT bool_and(org_id = '00000000-0000-4000-8000-000000000001') FROM public.notes),
       'SET LOCAL app.org_id reaches the shards: the application role reads its tenant''s 5 rows only');
COMMIT;
BEGIN;
SELECT pg_temp.tap(5, (SELECT count(*) FROM public.notes) = 0, 'without a tenant the application role reads nothing (fail closed)');
COMMIT;
RESET ROLE;

DROP TABLE public.notes;
REVOKE ALL ON SCHEMA inventory FROM citus_app;
DROP ROLE citus_app;
