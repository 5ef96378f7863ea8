-- enable_tenant_isolation / disable_tenant_isolation (SPEC §4): every line they return, every error,
-- and that a failed call changes nothing. Each scenario runs in a transaction that is rolled back.
CREATE SCHEMA iso;
INSERT INTO inventory.organizations (id, name, subdomain)
VALUES ('00000000-0000-4000-8000-000000000001', 'Legacy', 'legacy'),
       ('00000000-0000-4000-8000-000000000002', 'Other', 'other');

-- A Prisma-style schema: camelCase names, text ids, global UNIQUEs, plain foreign keys, rows, no org column.
BEGIN;
CREATE TABLE iso."Item" (id text PRIMARY KEY, sku text NOT NULL UNIQUE, name text);
CREATE UNIQUE INDEX "Item_lower_name" ON iso."Item" (lower(name)) WHERE name IS NOT NULL;
CREATE TABLE iso."Location" (id text PRIMARY KEY, code text NOT NULL, CONSTRAINT "Location_code" UNIQUE (code),
                             "parentId" text REFERENCES iso."Location" (id) ON DELETE SET NULL);
CREATE TABLE iso."Ledger" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                           "itemId" text NOT NULL REFERENCES iso."Item" (id) ON DELETE CASCADE,
                           "locationCode" text REFERENCES iso."Location" (code) DEFERRABLE,
                           qty numeric NOT NULL);
INSERT INTO iso."Item" VALUES ('i1', 'SKU-1', 'Bolt'), ('i2', 'SKU-2', 'Nut');
INSERT INTO iso."Location" VALUES ('l1', 'A1', NULL), ('l2', 'A2', 'l1');
INSERT INTO iso."Ledger" ("itemId", "locationCode", qty) VALUES ('i1', 'A1', 5), ('i2', 'A2', 7);
SELECT inventory.enable_tenant_isolation('iso."Item"', backfill_org => '00000000-0000-4000-8000-000000000001');
-- A second call has nothing to do.
SELECT inventory.enable_tenant_isolation('iso."Item"', backfill_org => '00000000-0000-4000-8000-000000000001');
-- Another org column name; the foreign key to "Item" becomes composite.
SELECT inventory.enable_tenant_isolation('iso."Ledger"', 'orgId', '00000000-0000-4000-8000-000000000001');
-- "Location": its unique code is referenced by "Ledger" (now tenant-scoped), so both are rewritten
-- together; its self-reference keeps ON DELETE SET NULL for the id column only.
SELECT inventory.enable_tenant_isolation('iso."Location"', backfill_org => '00000000-0000-4000-8000-000000000001');
SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'iso'::regnamespace AND contype IN ('f', 'u', 'p') ORDER BY 1::text, 2;
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indrelid = 'iso."Item"'::regclass ORDER BY indexrelid::regclass::text;
SELECT relid, org_column FROM inventory.tenant_tables WHERE relid::text LIKE 'iso.%' ORDER BY 1::text;
-- Every row now belongs to the legacy organization.
SELECT count(*) FILTER (WHERE org_id = '00000000-0000-4000-8000-000000000001') AS legacy_items, count(*) AS items FROM iso."Item";
SELECT count(*) FILTER (WHERE "orgId" = '00000000-0000-4000-8000-000000000001') AS legacy_ledger, count(*) FROM iso."Ledger";
-- The application's view of it, as app_user (row-level security applies; the superuser bypasses it).
GRANT USAGE ON SCHEMA iso TO app_user;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA iso TO app_user;
SET LOCAL ROLE app_user;
SELECT count(*) AS items_without_tenant FROM iso."Item";
-- An INSERT without a tenant fails with 42501 (the column's default), not a NOT NULL violation.
SELECT regress.try($$INSERT INTO iso."Item" (id, sku) VALUES ('i3', 'SKU-3')$$);
-- With a tenant it gets the tenant's id; another tenant may reuse the same SKU.
SET LOCAL app.org_id = '00000000-0000-4000-8000-000000000002';
INSERT INTO iso."Item" (id, sku) VALUES ('i9', 'SKU-1') RETURNING org_id, id, sku;
-- A composite foreign key: the other tenant cannot reference the legacy tenant's location A1.
SELECT regress.try($$INSERT INTO iso."Ledger" ("itemId", "locationCode", qty) VALUES ('i9', 'A1', 1)$$);
SELECT regress.try($$INSERT INTO iso."Ledger" ("itemId", qty) VALUES ('i1', 1)$$);
-- Nor write a row into the legacy tenant, nor see its rows.
SELECT regress.try($$INSERT INTO iso."Item" (org_id, id, sku) VALUES ('00000000-0000-4000-8000-000000000001', 'i8', 'SKU-8')$$);
SELECT org_id, id, sku FROM iso."Item" ORDER BY id;
ROLLBACK;

-- An existing nullable column: its NULLs are filled; an empty table just gets the column; the index
-- that leads with the org column is added when no UNIQUE leads with it; an existing policy of ours that
-- does not match is replaced.
BEGIN;
CREATE TABLE iso.notes (id int PRIMARY KEY, org_id uuid, body text);
INSERT INTO iso.notes VALUES (1, NULL, 'a'), (2, NULL, 'b'), (3, '00000000-0000-4000-8000-000000000002', 'c');
CREATE POLICY tenant_isolation ON iso.notes USING (true);
SELECT inventory.enable_tenant_isolation('iso.notes', backfill_org => '00000000-0000-4000-8000-000000000001');
SELECT org_id, count(*) FROM iso.notes GROUP BY 1 ORDER BY 1;
CREATE TABLE iso.empty (id int, org_id uuid, PRIMARY KEY (id, org_id));
SELECT inventory.enable_tenant_isolation('iso.empty');
CREATE TABLE iso.fresh (id int PRIMARY KEY);
SELECT inventory.enable_tenant_isolation('iso.fresh');
ROLLBACK;

-- A partitioned table: the partitions get row-level security and the policy too, so a query on a
-- partition is isolated as well; a later call covers a newly attached partition.
BEGIN;
CREATE TABLE iso.events (id bigint, at date, body text, ref text, PRIMARY KEY (id, at), UNIQUE (ref, at))
    PARTITION BY RANGE (at);
CREATE UNIQUE INDEX events_body ON iso.events (body, at);
CREATE TABLE iso.events_2026 PARTITION OF iso.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO iso.events VALUES (1, '2026-05-01', 'x');
SELECT inventory.enable_tenant_isolation('iso.events', backfill_org => '00000000-0000-4000-8000-000000000001');
CREATE TABLE iso.events_2027 PARTITION OF iso.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SELECT inventory.enable_tenant_isolation('iso.events');
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indrelid IN ('iso.events'::regclass, 'iso.events_2027'::regclass) ORDER BY indexrelid::regclass::text;
SELECT c.oid::regclass, c.relrowsecurity, c.relforcerowsecurity, count(p.polname) AS policies
  FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
 WHERE c.relnamespace = 'iso'::regnamespace AND c.relkind IN ('r', 'p') GROUP BY 1, 2, 3 ORDER BY 1::text;
SELECT inventory.disable_tenant_isolation('iso.events');
SELECT inventory.disable_tenant_isolation('iso.events');
-- disable keeps the column, its constraints and the data.
SELECT org_id, body FROM iso.events;
ROLLBACK;

-- A permissive policy that was there before the call (a careless DBA's USING (true)) would keep the
-- table open: permissive policies are OR-ed, so a session without a tenant would read every row. The
-- call refuses (55000), names each such policy (on the partitions too, which a query can name
-- directly) and says how to close it; it changes nothing. Kept: a restrictive policy, a policy without
-- expressions (it lets nothing through), one that only ever allows the tenant's own rows, and a policy
-- of ours of the wrong shape, which the call replaces.
-- pg_temp.try_hint shows an error's SQLSTATE, message and hint.
CREATE FUNCTION pg_temp.try_hint(sql text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE hint text;
BEGIN
    EXECUTE sql;
    RETURN NEXT 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN NEXT SQLSTATE || ': ' || SQLERRM;
    RETURN QUERY SELECT 'HINT: ' || line FROM regexp_split_to_table(hint, E'\n') AS line WHERE hint <> '';
END
$$;
BEGIN;
CREATE TABLE iso.open_notes (id int PRIMARY KEY, org_id uuid NOT NULL, body text);
INSERT INTO iso.open_notes VALUES (1, '00000000-0000-4000-8000-000000000001', 'a'), (2, '00000000-0000-4000-8000-000000000002', 'b');
ALTER TABLE iso.open_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY "open read" ON iso.open_notes FOR SELECT USING (true);
CREATE POLICY movers ON iso.open_notes FOR UPDATE TO app_user, stranger
    USING (org_id = (SELECT inventory.current_org_id())) WITH CHECK (org_id IS NOT NULL);
CREATE POLICY own_rows ON iso.open_notes FOR SELECT USING (org_id = (SELECT inventory.current_org_id()));
CREATE POLICY nothing ON iso.open_notes FOR INSERT;
CREATE POLICY narrow ON iso.open_notes AS RESTRICTIVE USING (body <> 'hidden');
CREATE POLICY tenant_isolation ON iso.open_notes USING (true);
GRANT USAGE ON SCHEMA iso TO app_user;
GRANT SELECT, UPDATE ON iso.open_notes TO app_user;
SELECT * FROM pg_temp.try_hint($$SELECT inventory.enable_tenant_isolation('iso.open_notes')$$);
-- Nothing changed: no policy, no default, no registration; row-level security still not forced.
SELECT relforcerowsecurity, ARRAY(SELECT polname FROM pg_policy WHERE polrelid = c.oid ORDER BY 1) AS policies,
       (SELECT count(*) FROM inventory.tenant_tables WHERE relid = c.oid) AS registered
  FROM pg_class c WHERE oid = 'iso.open_notes'::regclass;
-- The SQL it gives, run as it is: one policy dropped, the other kept as a restriction.
SELECT policy, drop_policy, as_restrictive FROM inventory.open_policies('iso.open_notes', 'org_id');
DO $$
BEGIN
    EXECUTE (SELECT drop_policy FROM inventory.open_policies('iso.open_notes', 'org_id') WHERE policy = 'open read');
    EXECUTE (SELECT as_restrictive FROM inventory.open_policies('iso.open_notes', 'org_id') WHERE policy = 'movers');
END
$$;
SELECT inventory.enable_tenant_isolation('iso.open_notes');
SELECT polname, polpermissive, polcmd, polroles::regrole[], pg_get_expr(polqual, polrelid) AS using,
       pg_get_expr(polwithcheck, polrelid) AS with_check
  FROM pg_policy WHERE polrelid = 'iso.open_notes'::regclass ORDER BY 1;
-- Now a session without a tenant reads nothing, a tenant only its own rows.
SET LOCAL ROLE app_user;
SELECT count(*) AS rows_without_tenant FROM iso.open_notes;
SET LOCAL app.org_id = '00000000-0000-4000-8000-000000000002';
SELECT id, body FROM iso.open_notes;
ROLLBACK;
-- A partition's own permissive policy is refused too, named with its partition.
BEGIN;
CREATE TABLE iso.open_parted (id int, k int, org_id uuid NOT NULL, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE iso.open_parted_1 PARTITION OF iso.open_parted FOR VALUES IN (1);
CREATE TABLE iso.open_parted_2 PARTITION OF iso.open_parted FOR VALUES IN (2);
CREATE POLICY debug ON iso.open_parted_2 FOR ALL TO app_user USING (true) WITH CHECK (k = 2);
SELECT * FROM pg_temp.try_hint($$SELECT inventory.enable_tenant_isolation('iso.open_parted')$$);
SELECT count(*) AS policies FROM pg_policy WHERE polrelid IN ('iso.open_parted'::regclass, 'iso.open_parted_1'::regclass);
ROLLBACK;

-- Bad input: a clear error, and nothing changed.
BEGIN;
CREATE TABLE iso.plain (id int PRIMARY KEY, sku text UNIQUE);
INSERT INTO iso.plain VALUES (1, 'a');
CREATE VIEW iso.plain_view AS SELECT * FROM iso.plain;
CREATE MATERIALIZED VIEW iso.plain_mv AS SELECT * FROM iso.plain;
CREATE TEMPORARY TABLE temp_stuff (id int PRIMARY KEY);
CREATE TABLE iso.no_pk (sku text);
CREATE TABLE iso.text_org (id int PRIMARY KEY, org_id text);
CREATE TABLE iso.parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE iso.parted_1 PARTITION OF iso.parted FOR VALUES IN (1);
CREATE TABLE iso.global_ref (sku text REFERENCES iso.plain (sku));
CREATE TABLE iso.on_update (id int PRIMARY KEY, plain_id int REFERENCES iso.plain (id) ON UPDATE SET NULL);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation(NULL)$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.no_such_table')$$);
-- A regclass whose table was dropped: PostgreSQL's own answer for a missing relation (the OID masked).
CREATE TABLE iso.dropped (id int PRIMARY KEY);
SELECT 'iso.dropped'::regclass::oid AS dropped_oid \gset
DROP TABLE iso.dropped;
SELECT regexp_replace(regress.try(format('SELECT inventory.%s(%s::regclass)', f, :dropped_oid)), '\d{4,}', 'N') AS dangling
  FROM unnest(ARRAY['enable_tenant_isolation', 'disable_tenant_isolation']) f;
SELECT regexp_replace(regress.try(format('CALL inventory.backfill_org_column(%s::regclass, %L)', :dropped_oid,
                                         '00000000-0000-4000-8000-000000000001')), '\d{4,}', 'N') AS dangling;
SELECT count(*) AS open_policies_of_nothing FROM inventory.open_policies(:dropped_oid::regclass, 'org_id');
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.plain', NULL)$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.plain_view')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.plain_mv')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('temp_stuff')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.parted_1')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.no_pk')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.text_org')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.plain')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.plain', backfill_org => '00000000-0000-4000-8000-0000000000ff')$$);
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.plain', backfill_org => '00000000-0000-4000-8000-000000000001')$$);
-- The calls that failed left no trace: no column, no constraint, no policy, no registration.
SELECT count(*) AS org_columns FROM pg_attribute WHERE attrelid = 'iso.plain'::regclass AND attname = 'org_id';
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'iso.plain'::regclass AND contype <> 'n' ORDER BY 1;
SELECT relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies
  FROM pg_class c WHERE oid = 'iso.plain'::regclass;
SELECT count(*) AS registered FROM inventory.tenant_tables WHERE relid = 'iso.plain'::regclass;
-- An injection-looking column name is just a name: quoted everywhere.
SELECT inventory.enable_tenant_isolation('iso.plain', 'x"; DROP TABLE iso.plain; --', '00000000-0000-4000-8000-000000000001', false);
SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'iso.plain'::regclass;
-- scope_unique => false keeps the global key (the report will list it).
SELECT pg_get_indexdef('iso.plain_sku_key'::regclass);
-- A foreign key that would lose its ON UPDATE SET NULL is refused.
SELECT regress.try($$SELECT inventory.enable_tenant_isolation('iso.on_update', backfill_org => '00000000-0000-4000-8000-000000000001')$$);
ROLLBACK;
