-- The database docs/DISASTER_RECOVERY.md's SQL blocks run in: just the extension (the cluster does not
-- archive, so backup_status reports that; tests/e2e/pitr.sh covers the archiving cases).
CREATE EXTENSION inventory_ext;
