-- Every generator of dynamic SQL on hostile names (issue 12.10): the isolation helper, track_balances
-- and the balance trigger, reconcile, rebuild, untrack, disable and the report, on a schema, tables and
-- columns whose names hold quotes, semicolons, spaces, mixed case, Unicode and 63 bytes; and export /
-- import on values that hold the same. Nothing may break out of its quotes (the table "x" below must
-- survive), and every call must do its ordinary work.
BEGIN;
CREATE TABLE public.x (survives boolean);
INSERT INTO public.x VALUES (true);
CREATE SCHEMA "Sch;ema ""q""";
CREATE TABLE "Sch;ema ""q"""."Item'; DROP TABLE public.x; --" (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "S K U" text NOT NULL UNIQUE, "名前" text);
CREATE TABLE "Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "item Id" uuid NOT NULL REFERENCES "Sch;ema ""q"""."Item'; DROP TABLE public.x; --" (id),
    "lötÜ; --" text,
    "Qty""x" numeric NOT NULL);
INSERT INTO inventory.organizations (id, name) VALUES
    ('f1000000-0000-4000-8000-000000000001', 'Hostile A'), ('f2000000-0000-4000-8000-000000000002', 'Hostile B');

-- The isolation helper, with a hostile org column name too.
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation(
    '"Sch;ema ""q"""."Item''; DROP TABLE public.x; --"', 'Org;Id "1"');
SELECT count(*) > 0 AS isolated FROM inventory.enable_tenant_isolation(
    '"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy', 'Org;Id "1"');
SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
 WHERE conrelid = '"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy'::regclass AND contype <> 'n'
 ORDER BY conname;
SELECT polname, pg_get_expr(polqual, polrelid) AS using_expression FROM pg_policy
 WHERE polrelid = '"Sch;ema ""q"""."Item''; DROP TABLE public.x; --"'::regclass;

-- Rows of two tenants, then track_balances with a hostile balance table name.
SET LOCAL app.org_id = 'f1000000-0000-4000-8000-000000000001';
INSERT INTO "Sch;ema ""q"""."Item'; DROP TABLE public.x; --" (id, "S K U", "名前")
VALUES ('f1000000-0000-4000-a000-000000000001', 'a''; --', 'ä');
INSERT INTO "Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy ("item Id", "lötÜ; --", "Qty""x")
VALUES ('f1000000-0000-4000-a000-000000000001', NULL, 5), ('f1000000-0000-4000-a000-000000000001', 'Ünï"; --', 2);
SET LOCAL app.org_id = 'f2000000-0000-4000-8000-000000000002';
INSERT INTO "Sch;ema ""q"""."Item'; DROP TABLE public.x; --" (id, "S K U", "名前")
VALUES ('f2000000-0000-4000-a000-000000000001', 'a''; --', 'b');
INSERT INTO "Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy ("item Id", "lötÜ; --", "Qty""x")
VALUES ('f2000000-0000-4000-a000-000000000001', NULL, 7);
SET LOCAL app.org_id = '';
SELECT inventory.track_balances('"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy',
                                '"Sch;ema ""q"""."Bal""ance; --"', ARRAY['item Id', 'lötÜ; --'], 'Qty"x');
-- The balance trigger: one multi-row statement over both tenants, then one row.
INSERT INTO "Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy ("Org;Id ""1""", "item Id", "lötÜ; --", "Qty""x")
VALUES ('f1000000-0000-4000-8000-000000000001', 'f1000000-0000-4000-a000-000000000001', NULL, 1),
       ('f2000000-0000-4000-8000-000000000002', 'f2000000-0000-4000-a000-000000000001', NULL, 1);
INSERT INTO "Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy ("Org;Id ""1""", "item Id", "lötÜ; --", "Qty""x")
VALUES ('f1000000-0000-4000-8000-000000000001', 'f1000000-0000-4000-a000-000000000001', 'Ünï"; --', 10);
SELECT "Org;Id ""1""", "lötÜ; --", qty FROM "Sch;ema ""q"""."Bal""ance; --" ORDER BY 1, 2 NULLS FIRST;

-- Reconcile finds and corrects drift, naming the hostile columns in its keys; rebuild agrees.
UPDATE "Sch;ema ""q"""."Bal""ance; --" SET qty = qty + 0.01 WHERE "lötÜ; --" = 'Ünï"; --';
SELECT org_id, key, variance, kind, action FROM inventory.reconcile(
    '"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy');
SELECT inventory.rebuild_balances('"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy') AS rebuilt;
SELECT count(*) AS findings_after FROM inventory.reconcile(
    '"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy');
-- The report has nothing to say about these tables.
SELECT severity, object, problem FROM inventory.isolation_report(ARRAY['Sch;ema "q"']) WHERE severity = 'error';
-- And back: untrack, disable.
SELECT inventory.untrack_balances('"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy');
SELECT count(*) > 0 AS disabled FROM inventory.disable_tenant_isolation(
    '"Sch;ema ""q""".ledger_with_a_name_of_exactly_sixty_three_bytes_for_the_test_xy');
SELECT survives AS x_survives FROM public.x;
ROLLBACK;

-- export_org / import_org on hostile values: names, codes, reasons and references that hold quotes,
-- semicolons, backslashes, Unicode and JSON syntax come back byte for byte.
BEGIN;
INSERT INTO inventory.organizations (id, name) VALUES ('f3000000-0000-4000-8000-000000000003', 'O''Brien; DROP TABLE x; -- "ü" \ {"a":1}');
SET LOCAL app.org_id = 'f3000000-0000-4000-8000-000000000003';
INSERT INTO inventory.items (id, sku, name) VALUES ('f3000000-0000-4000-a000-000000000001', 'sku''; --', '名前 "quoted" \n');
INSERT INTO inventory.locations (id, code, name) VALUES ('f3000000-0000-4000-b000-000000000001', 'L;1', E'tab\there');
SELECT inventory.post('f3000000-0000-4000-a000-000000000001', 'f3000000-0000-4000-b000-000000000001', 3,
                      reason => '); DELETE FROM inventory.ledger; --', reference => '{"json": "in text"}') > 0 AS posted;
SET LOCAL app.org_id = '';
CREATE TEMP TABLE hostile_doc AS SELECT inventory.export_org('f3000000-0000-4000-8000-000000000003') AS d;
SET LOCAL session_replication_role = replica;
DELETE FROM inventory.ledger WHERE org_id = 'f3000000-0000-4000-8000-000000000003';
DELETE FROM inventory.balances WHERE org_id = 'f3000000-0000-4000-8000-000000000003';
DELETE FROM inventory.items WHERE org_id = 'f3000000-0000-4000-8000-000000000003';
DELETE FROM inventory.locations WHERE org_id = 'f3000000-0000-4000-8000-000000000003';
DELETE FROM inventory.organizations WHERE id = 'f3000000-0000-4000-8000-000000000003';
SET LOCAL session_replication_role = origin;
SELECT inventory.import_org(d) AS imported FROM hostile_doc;
SELECT o.name, i.sku, i.name AS item_name, l.code, l.name AS location_name, g.reason, g.reference, b.qty
  FROM inventory.organizations o
  JOIN inventory.items i ON i.org_id = o.id JOIN inventory.locations l ON l.org_id = o.id
  JOIN inventory.ledger g ON g.org_id = o.id JOIN inventory.balances b ON b.org_id = o.id
 WHERE o.id = 'f3000000-0000-4000-8000-000000000003';
ROLLBACK;
