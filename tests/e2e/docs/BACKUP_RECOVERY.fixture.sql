-- The database docs/BACKUP_RECOVERY.md's SQL blocks run in: the extension and one stocked tenant (the
-- one the "Removing a tenant" block removes).
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('00000000-0000-4000-8000-0000000000d1', 'Removed');
SET app.org_id = '00000000-0000-4000-8000-0000000000d1';
INSERT INTO inventory.items (id, sku, name) VALUES ('00000000-0000-4000-a000-0000000000d1', 'R', 'Item');
INSERT INTO inventory.locations (id, code, name) VALUES ('00000000-0000-4000-b000-0000000000d1', 'L', 'Shelf');
SELECT inventory.post('00000000-0000-4000-a000-0000000000d1', '00000000-0000-4000-b000-0000000000d1', 5);
RESET app.org_id;
