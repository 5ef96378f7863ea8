-- Reconciliation (SPEC §7): run history, findings, the reconcile() entry point, retention and
-- scheduling with pg_cron. The work itself is inventory.reconcile_run (src/reconcile.rs).

-- One row per run. org_id is the tenant the run covered, NULL for all tenants. notification is the
-- JSON payload sent with NOTIFY inventory_reconcile (NULL when nothing was flagged).
CREATE TABLE inventory.reconcile_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    ledgers      integer NOT NULL DEFAULT 0,
    keys_checked bigint NOT NULL DEFAULT 0,
    findings     bigint NOT NULL DEFAULT 0,
    corrected    bigint NOT NULL DEFAULT 0,
    flagged      bigint NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'clean', 'corrected', 'flagged', 'skipped', 'failed')),
    org_id       uuid,
    tolerance    numeric NOT NULL,
    auto_correct boolean NOT NULL,
    run_by       name NOT NULL,
    notification jsonb,
    -- Added since 0.1.0, so last (as ALTER EXTENSION … UPDATE adds it).
    -- Why a run was skipped (it could not start within inventory.maintenance_lock_timeout), or which
    -- ledgers it could not reconcile (status failed; the other ledgers were reconciled).
    detail       text
);
CREATE INDEX reconcile_runs_started_at_idx ON inventory.reconcile_runs (started_at);
COMMENT ON TABLE inventory.reconcile_runs IS
    'One row per reconcile run: what it covered, counts, status (clean, corrected or flagged).';

-- One row per finding. key holds the balance key's columns (without the org column, which is org_id);
-- variance = actual - expected, with a missing balance row counted as 0.
CREATE TABLE inventory.reconcile_findings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id         bigint NOT NULL REFERENCES inventory.reconcile_runs (id) ON DELETE CASCADE,
    ledger         regclass NOT NULL,
    org_id         uuid,
    key            jsonb NOT NULL,
    expected       numeric NOT NULL,
    actual         numeric,
    variance       numeric NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('drift', 'missing', 'orphan')),
    action         text NOT NULL CHECK (action IN ('corrected', 'flagged')),
    last_ledger_id bigint
);
CREATE INDEX reconcile_findings_run_id_idx ON inventory.reconcile_findings (run_id);
COMMENT ON TABLE inventory.reconcile_findings IS
    'What each reconcile run found: kind drift, missing or orphan; action corrected or flagged.';

-- A tenant reads its own tenant's runs and findings; runs over all tenants are for administrators.
-- Only inventory.reconcile_run (SECURITY DEFINER) writes here.
ALTER TABLE inventory.reconcile_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE inventory.reconcile_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON inventory.reconcile_runs FOR SELECT
    USING (org_id = (SELECT inventory.current_org_id()));
ALTER TABLE inventory.reconcile_findings ENABLE ROW LEVEL SECURITY;
ALTER TABLE inventory.reconcile_findings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON inventory.reconcile_findings FOR SELECT
    USING (org_id = (SELECT inventory.current_org_id()));

SELECT pg_catalog.pg_extension_config_dump('inventory.reconcile_runs', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.reconcile_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.reconcile_findings', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.reconcile_findings_id_seq', '');

-- The contract's entry point: runs a reconciliation, returns its findings. SECURITY INVOKER: the
-- findings come back through the row-level security above.
CREATE FUNCTION inventory.reconcile(only_ledger regclass DEFAULT NULL, only_org uuid DEFAULT NULL,
                                    tolerance numeric DEFAULT 0.01, auto_correct boolean DEFAULT true)
RETURNS TABLE(run_id bigint, ledger regclass, org_id uuid, key jsonb, expected numeric, actual numeric,
              variance numeric, kind text, action text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    this_run bigint := inventory.reconcile_run(only_ledger, only_org, tolerance, auto_correct);
BEGIN
    RETURN QUERY
        SELECT f.run_id, f.ledger, f.org_id, f.key, f.expected, f.actual, f.variance, f.kind, f.action
          FROM inventory.reconcile_findings f
         WHERE f.run_id = this_run
         ORDER BY f.id;
END
$$;

-- Retention: deletes runs (and, by cascade, their findings) that started before now() - older_than.
CREATE FUNCTION inventory.prune_reconcile_runs(older_than interval DEFAULT '90 days') RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pruned bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = '22023',
            HINT = 'e.g. inventory.prune_reconcile_runs(''90 days'')';
    END IF;
    DELETE FROM inventory.reconcile_runs WHERE started_at < now() - older_than;
    GET DIAGNOSTICS pruned = ROW_COUNT;
    RETURN pruned;
END
$$;

-- pg_cron is optional (SPEC: CREATE EXTENSION works without it), so these look for it when called.
-- pg_cron lives in one database (cron.database_name); from another, a job is scheduled there with
-- cron.schedule_in_database (docs/DBA.md). SECURITY INVOKER: the job runs as whoever scheduled it.
CREATE FUNCTION inventory.require_pg_cron() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
            USING ERRCODE = '55000',
            DETAIL = format('cron.database_name is %L.', current_setting('cron.database_name', true)),
            HINT = 'Add pg_cron to shared_preload_libraries and CREATE EXTENSION pg_cron in the database named by '
                   'cron.database_name; to reconcile a different database, call cron.schedule_in_database(''inventory-reconcile'', '
                   '''0 2 * * *'', ''SELECT inventory.reconcile_run()'', <this database>) from that one.';
    END IF;
END
$$;

CREATE FUNCTION inventory.schedule_reconcile(schedule text DEFAULT '0 2 * * *',
                                             job_name text DEFAULT 'inventory-reconcile')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory.require_pg_cron();
    IF schedule IS NULL OR job_name IS NULL OR job_name = '' THEN
        RAISE EXCEPTION 'schedule and job_name must be given' USING ERRCODE = '22023',
            HINT = 'e.g. inventory.schedule_reconcile(''0 2 * * *'', ''inventory-reconcile'')';
    END IF;
    -- pg_cron updates the job when this user already has one of this name.
    RETURN cron.schedule(job_name, schedule, 'SELECT inventory.reconcile_run()');
END
$$;

CREATE FUNCTION inventory.unschedule_reconcile(job_name text DEFAULT 'inventory-reconcile') RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory.require_pg_cron();
    -- cron.job shows each user their own jobs.
    IF NOT EXISTS (SELECT FROM cron.job j WHERE j.jobname = job_name AND j.username = current_user) THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule(job_name);
END
$$;

COMMENT ON FUNCTION inventory.reconcile(regclass, uuid, numeric, boolean) IS
    'Compares balances with ledger sums; corrects |variance| <= tolerance by the difference, flags the rest; returns the findings.';
COMMENT ON FUNCTION inventory.reconcile_run(regclass, uuid, numeric, boolean) IS
    'Like reconcile, returning the run id (for pg_cron jobs); findings are in inventory.reconcile_findings.';
COMMENT ON FUNCTION inventory.prune_reconcile_runs(interval) IS
    'Deletes reconcile runs and their findings older than the given age; returns how many runs.';
COMMENT ON FUNCTION inventory.schedule_reconcile(text, text) IS
    'Schedules reconcile_run with pg_cron (calling it again updates the job); returns the job id.';
COMMENT ON FUNCTION inventory.unschedule_reconcile(text) IS
    'Removes the pg_cron job; false when there was none.';
