-- What the example needs beyond docs/MIGRATION_GUIDE.md, run as a superuser after the guide:
-- operators' read-only view of WAL archiving for the application's role (docs/DISASTER_RECOVERY.md
-- grants it to a monitoring role the same way), and, for the tests of the last resolution step only, a
-- role that connects with inventory.default_org_id set to the legacy tenant, as the application did
-- during the migration (steps 2 to 8 of the guide). The application's own role has no default.
GRANT EXECUTE ON FUNCTION inventory.backup_status(interval) TO prisma;
DO $$ BEGIN CREATE ROLE prisma_default LOGIN IN ROLE prisma; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
ALTER ROLE prisma_default IN DATABASE shop SET inventory.default_org_id = '8c1f3e2a-5b7d-4c9e-a1f0-3d2e4b6a8c10';
