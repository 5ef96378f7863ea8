-- export_org / import_org and backup_status (SPEC §8): the document format, a round trip in one
-- database, every malformation named by its field, ids that exist already, who may call them, and
-- backup_status with archiving off (this cluster does not archive).
BEGIN;
INSERT INTO inventory.organizations (id, name, subdomain) VALUES ('e2000000-0000-4000-8000-000000000002', 'Mover', 'mover');
SET LOCAL app.org_id = 'e2000000-0000-4000-8000-000000000002';
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES
    ('e2000000-0000-4000-a000-000000000001', 'M-1', 'one', false), ('e2000000-0000-4000-a000-000000000002', 'M-2', 'two', true);
INSERT INTO inventory.locations (id, code, name) VALUES
    ('e2000000-0000-4000-b000-000000000001', 'ML1', 'first'), ('e2000000-0000-4000-b000-000000000002', 'ML2', 'second');
INSERT INTO inventory.lots (id, item_id, code, expires_on) VALUES
    ('e2000000-0000-4000-c000-000000000001', 'e2000000-0000-4000-a000-000000000001', 'LOT-1', '2027-06-30');
SELECT count(*) AS posted FROM (
    SELECT inventory.post('e2000000-0000-4000-a000-000000000001', 'e2000000-0000-4000-b000-000000000001', 10.125, reason => 'receipt')
    UNION ALL SELECT inventory.post('e2000000-0000-4000-a000-000000000001', 'e2000000-0000-4000-b000-000000000001', 3, 'e2000000-0000-4000-c000-000000000001')
    UNION ALL SELECT inventory.post('e2000000-0000-4000-a000-000000000002', 'e2000000-0000-4000-b000-000000000002', -4, reference => 'consigned')) p;
SELECT unnest(inventory.transfer('e2000000-0000-4000-a000-000000000001', 'e2000000-0000-4000-b000-000000000001',
                                 'e2000000-0000-4000-b000-000000000002', 1.125)) > 0 AS transferred;
SET LOCAL app.org_id = '';

-- The document: its format, what each section holds, exact quantities as strings, no key material.
CREATE TEMP TABLE doc AS SELECT inventory.export_org('e2000000-0000-4000-8000-000000000002') AS d;
SELECT d->>'format' AS format, (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(d) k) AS sections,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(d->'organization') k) AS organization_fields
  FROM doc;
SELECT jsonb_array_length(d->'items') AS items, jsonb_array_length(d->'locations') AS locations,
       jsonb_array_length(d->'lots') AS lots, jsonb_array_length(d->'ledger') AS ledger_rows FROM doc;
SELECT e->>'qty' AS qty, jsonb_typeof(e->'qty') AS qty_type, e->>'reason' AS reason, e->>'reference' AS reference,
       e->'lot_id' IS NOT NULL AND e->>'lot_id' IS NOT NULL AS has_lot
  FROM doc, jsonb_array_elements(d->'ledger') e ORDER BY (e->>'id')::bigint;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(d->'ledger'->0) k) AS ledger_fields FROM doc;
SELECT d::text ~* 'key|hash|prefix' AS mentions_keys FROM doc;

-- Round trip in this database: remove the tenant (guards off, as a superuser), import it back.
SELECT balances_before FROM (SELECT string_agg(qty::text, ',' ORDER BY item_id, location_id, lot_id NULLS FIRST) AS balances_before
  FROM inventory.balances WHERE org_id = 'e2000000-0000-4000-8000-000000000002') b \gset
SET LOCAL session_replication_role = replica;
DELETE FROM inventory.ledger WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
DELETE FROM inventory.balances WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
DELETE FROM inventory.lots WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
DELETE FROM inventory.items WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
DELETE FROM inventory.locations WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
DELETE FROM inventory.organizations WHERE id = 'e2000000-0000-4000-8000-000000000002';
SET LOCAL session_replication_role = origin;
SELECT inventory.import_org(d) AS imported FROM doc;
SELECT string_agg(qty::text, ',' ORDER BY item_id, location_id, lot_id NULLS FIRST) = :'balances_before' AS same_balances,
       count(*) AS balance_rows
  FROM inventory.balances WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
SELECT name, subdomain, active FROM inventory.organizations WHERE id = 'e2000000-0000-4000-8000-000000000002';
SELECT count(*) AS keys FROM inventory.organization_api_keys WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
SELECT l.reason, l.reference, l.qty FROM inventory.ledger l
 WHERE l.org_id = 'e2000000-0000-4000-8000-000000000002' ORDER BY l.id;
SELECT count(*) AS findings FROM inventory.reconcile(only_org => 'e2000000-0000-4000-8000-000000000002');
-- Importing it again: refused, naming what exists, and nothing more was written.
SELECT regress.try(format('SELECT inventory.import_org(%L)', d)) AS again FROM doc;
SELECT count(*) AS ledger_rows FROM inventory.ledger WHERE org_id = 'e2000000-0000-4000-8000-000000000002';
-- A document whose organization is new but whose item ids exist: refused as a whole.
SELECT regress.try(format('SELECT inventory.import_org(%L)',
       jsonb_set(jsonb_set(d, '{organization,id}', '"e3000000-0000-4000-8000-000000000003"'), '{organization,subdomain}', 'null'))) AS same_items
  FROM doc;
SELECT count(*) AS organizations FROM inventory.organizations WHERE id = 'e3000000-0000-4000-8000-000000000003';

-- Malformed documents: 22023, and the message names the field.
SELECT regress.try(format('SELECT inventory.import_org(%L)', x.doc)) AS malformed
  FROM doc, LATERAL (VALUES
    ('[1, 2]'::jsonb),
    ('{}'),
    (jsonb_set(d, '{format}', '"inventory_ext.org/9"')),
    (d - 'organization'),
    (d - 'lots'),
    (jsonb_set(d, '{items}', '{}')),
    (jsonb_set(d, '{organization,id}', '"not-a-uuid"')),
    (d #- '{items,1,sku}'),
    (jsonb_set(d, '{items,0,allow_negative}', '"yes"')),
    (jsonb_set(d, '{ledger,2,qty}', '4')),
    (jsonb_set(d, '{ledger,0,qty}', '"ten"')),
    (jsonb_set(d, '{ledger,1,occurred_at}', '"yesterday"')),
    (jsonb_set(d, '{lots,0,expires_on}', '"2027-06-30T00:00:00"')),
    (jsonb_set(d, '{ledger,3,location_id}', '"e2000000-0000-4000-b000-00000000009f"')),
    (jsonb_set(d, '{lots,0,item_id}', '"e2000000-0000-4000-a000-00000000009f"')),
    (jsonb_set(d, '{items,0,colour}', '"red"')),
    -- Values that PostgreSQL's own input functions (or the organizations table's checks) reject: named
    -- here, before anything is written, rather than by the cast's error without a field.
    (jsonb_set(d, '{lots,0,expires_on}', '"2026-99-99"')),
    (jsonb_set(d, '{lots,0,expires_on}', '"0000-01-01"')),
    (jsonb_set(d, '{ledger,1,occurred_at}', '"2026-02-29T10:00:00+00:00"')),
    (jsonb_set(d, '{ledger,2,created_at}', '"2026-01-01T24:30:00+00:00"')),
    (jsonb_set(d, '{ledger,3,occurred_at}', '"2026-01-01T10:00:00+16:00"')),
    (jsonb_set(d, '{organization,updated_at}', '"2026-01-01T--::"')),
    (jsonb_set(d, '{items,1,id}', '"urn:uuid:e2000000-0000-4000-a000-000000000002"')),
    (jsonb_set(d, '{ledger,0,lot_id}', '"e2000000-0000-4000-c000-00000000001"')),
    (jsonb_set(d, '{ledger,4,qty}', '"1e200000"')),
    (jsonb_set(d, '{ledger,4,qty}', '"0.5e-16384"')),
    (jsonb_set(d, '{organization,subdomain}', '"Mover Inc"')),
    (jsonb_set(d, '{organization,name}', '"   "'))) AS x(doc);
-- Forms PostgreSQL accepts are accepted: an item's id in another spelling (its lot still refers to it)
-- is found to exist already, in a document for a new organization.
SELECT regress.try(format('SELECT inventory.import_org(%L)', jsonb_set(x.doc, '{items,0,id}', v.id))) AS accepted_spelling
  FROM (SELECT jsonb_set(jsonb_set(d, '{organization,id}', '"e3000000-0000-4000-8000-000000000003"'),
                         '{organization,subdomain}', 'null') AS doc FROM doc) x,
       LATERAL (VALUES ('"{E2000000-0000-4000-A000-000000000001}"'::jsonb), ('"e200000000004000a000000000000001"'),
                       ('"e200-0000-0000-4000-a000-0000-0000-0001"')) AS v(id);
SELECT regress.try('SELECT inventory.import_org(NULL)') AS null_document;
ROLLBACK;

-- Who may call them, and the errors of export_org.
SELECT regress.try($$SELECT inventory.export_org('e9000000-0000-4000-8000-000000000009')$$) AS unknown_org;
SELECT regress.try($$SELECT inventory.export_org(NULL)$$) AS null_org;
SET ROLE app_user;
SELECT regress.try($$SELECT inventory.export_org((SELECT id FROM regress.orgs WHERE name = 'acme'))$$) AS app_exports;
SELECT regress.try($$SELECT inventory.import_org('{}')$$) AS app_imports;
SELECT regress.try($$SELECT * FROM inventory.backup_status()$$) AS app_backup_status;
RESET ROLE;
-- An administrator who granted export_org to an application role: it exports its own tenant only.
BEGIN;
GRANT EXECUTE ON FUNCTION inventory.export_org(uuid), inventory.import_org(jsonb) TO app_user;
SET LOCAL ROLE app_user;
SELECT inventory.set_org((SELECT id FROM regress.orgs WHERE name = 'acme')) IS NOT NULL AS as_acme;
SELECT inventory.export_org((SELECT id FROM regress.orgs WHERE name = 'acme'))->>'format' AS own_tenant;
SELECT regress.try($$SELECT inventory.export_org((SELECT id FROM regress.orgs WHERE name = 'globex'))$$) AS other_tenant;
SELECT regress.try($$SELECT inventory.import_org('{}')$$) AS import_still_refused;
ROLLBACK;

-- backup_status: this scratch cluster does not archive.
SELECT archiving, last_archived_at, age, failed_count, last_failed_at, healthy, detail FROM inventory.backup_status();
SELECT regress.try($$SELECT * FROM inventory.backup_status(NULL)$$) AS null_max_age;
SELECT regress.try($$SELECT * FROM inventory.backup_status('-1 hour')$$) AS negative_max_age;
