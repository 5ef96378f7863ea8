-- Backups (SPEC §8): whether WAL archiving is on and keeping up. Tenant export and import are in
-- src/backup.rs; what pg_dump carries is registered next to each table (bootstrap.sql, ledger.sql,
-- reconcile.sql).

-- SECURITY DEFINER because archive_command is readable only by superusers and pg_read_all_settings;
-- not executable by PUBLIC (grant it to a monitoring role).
CREATE FUNCTION inventory.backup_status(max_age interval DEFAULT '25 hours')
RETURNS TABLE(archiving boolean, last_archived_at timestamptz, age interval, failed_count bigint,
              last_failed_at timestamptz, healthy boolean, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mode text := current_setting('archive_mode');
    command text := current_setting('archive_command');
    library text := current_setting('archive_library', true);
    s pg_stat_archiver%ROWTYPE;
BEGIN
    IF max_age IS NULL OR max_age <= interval '0' THEN
        RAISE EXCEPTION 'max_age must be a positive interval' USING ERRCODE = '22023',
            HINT = 'e.g. inventory.backup_status(''25 hours'')';
    END IF;
    SELECT * INTO s FROM pg_stat_archiver;
    archiving := mode IN ('on', 'always') AND (coalesce(command, '') NOT IN ('', '(disabled)') OR coalesce(library, '') <> '');
    last_archived_at := s.last_archived_time;
    age := now() - s.last_archived_time;
    failed_count := s.failed_count;
    last_failed_at := s.last_failed_time;
    healthy := false;
    IF mode NOT IN ('on', 'always') THEN
        detail := format('archive_mode is %s: WAL is not archived, so there is no point-in-time recovery', mode);
    ELSIF NOT archiving THEN
        detail := 'archive_mode is on but archive_command is empty: WAL segments pile up in pg_wal and nothing is archived';
    ELSIF s.last_failed_time IS NOT NULL AND (s.last_archived_time IS NULL OR s.last_failed_time > s.last_archived_time) THEN
        detail := format('archiving is failing: %s failures, the last at %s for %s; see the server log',
                         s.failed_count, s.last_failed_time, s.last_failed_wal);
    ELSIF s.last_archived_time IS NULL THEN
        detail := 'nothing archived yet since the statistics were reset (SELECT pg_switch_wal() to archive a segment now)';
    ELSIF now() - s.last_archived_time > max_age THEN
        detail := format('the last archived segment (%s) is older than %s', s.last_archived_wal, max_age);
    ELSE
        healthy := true;
        detail := format('archiving works: last segment %s, %s ago', s.last_archived_wal,
                         date_trunc('second', now() - s.last_archived_time));
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION inventory.backup_status(interval) IS
    'WAL archiving health: off, failing, stale (older than max_age) or healthy, with a detail that says which.';
COMMENT ON FUNCTION inventory.export_org(uuid) IS
    'One tenant as a versioned JSON document (format inventory_ext.org/1): organization, items, locations, lots, ledger.';
COMMENT ON FUNCTION inventory.import_org(jsonb) IS
    'Loads an export_org document (all or nothing; its ids must be new here), rebuilds its balances, returns the org id.';
