-- An application's own tables on Citus (issue 17): the documented order (docs/SCALE_OUT.md) is
-- create, distribute by the org column co-located with inventory.items, enable_tenant_isolation,
-- then track_balances (the balance table made and distributed first). The other order is refused with
-- a hint, changing nothing. Then the ledger works for two tenants as an application role. TAP from 301.
\ir helpers.psql
\set a '00000000-0000-4000-8000-0000000000a1'
\set b '00000000-0000-4000-8000-0000000000b1'

-- A Prisma-style schema: camelCase names, the tenant column "orgId".
CREATE TABLE public."Product" ("orgId" uuid NOT NULL, id bigint NOT NULL, sku text NOT NULL, PRIMARY KEY ("orgId", id), UNIQUE ("orgId", sku));
CREATE TABLE public."StockMove" ("orgId" uuid NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, "productId" bigint NOT NULL,
                                 qty numeric NOT NULL, PRIMARY KEY ("orgId", id),
                                 FOREIGN KEY ("orgId", "productId") REFERENCES public."Product" ("orgId", id));

SELECT pg_temp.tap(301, pg_temp.sqlstate_of($$SELECT inventory.enable_tenant_isolation('public."Product"', 'orgId')$$) = '0A000'
                        AND NOT EXISTS (SELECT FROM inventory.tenant_tables WHERE relid = 'public."Product"'::regclass)
                        AND NOT EXISTS (SELECT FROM pg_policies WHERE tablename = 'Product'),
       'enable_tenant_isolation on a table not yet distributed: 0A000 with the create_distributed_table call to make, nothing changed');
SELECT create_distributed_table('public."Product"', 'orgId', colocate_with => 'inventory.items') \g /dev/null
SELECT create_distributed_table('public."StockMove"', 'orgId', colocate_with => 'inventory.items') \g /dev/null
SELECT pg_temp.tap(302, (SELECT count(*) FROM inventory.enable_tenant_isolation('public."Product"', 'orgId')) > 0
                        AND (SELECT count(*) FROM inventory.enable_tenant_isolation('public."StockMove"', 'orgId')) > 0
                        AND (SELECT count(*) FROM inventory.enable_tenant_isolation('public."StockMove"', 'orgId')) = 0,
       'distributed first, then enable_tenant_isolation: done, and a second call has nothing to do');
SELECT pg_temp.tap(303, (SELECT bool_and(qual = '("orgId" = inventory.current_org_id())') FROM pg_policies
                          WHERE tablename IN ('Product', 'StockMove') AND policyname = 'tenant_isolation')
                        AND (SELECT count(*) FROM pg_policies WHERE tablename IN ('Product', 'StockMove')) = 2,
       'the tenant policy takes the plain form SPEC 9 prescribes');
SELECT pg_temp.tap(304, pg_temp.sqlstate_of($$SELECT inventory.track_balances('public."StockMove"', 'public."ProductStock"', ARRAY['productId'], 'qty', allow_negative => false)$$) = '55000'
                        AND to_regclass('public."ProductStock"') IS NULL,
       'track_balances without its balance table: 55000 with the statements that make it, nothing changed');
CREATE TABLE public."ProductStock" ("orgId" uuid, "productId" bigint, qty numeric NOT NULL, last_ledger_id bigint NOT NULL,
                                    updated_at timestamptz NOT NULL, UNIQUE NULLS NOT DISTINCT ("orgId", "productId"));
SELECT create_distributed_table('public."ProductStock"', 'orgId', colocate_with => 'public."StockMove"') \g /dev/null
SELECT inventory.track_balances('public."StockMove"', 'public."ProductStock"', ARRAY['productId'], 'qty', allow_negative => false) \g /dev/null
SELECT pg_temp.tap(305, (SELECT array_agg(result ORDER BY nodeport) FROM run_command_on_workers(
            $$SELECT count(*) FROM inventory.tracked_ledgers WHERE ledger = 'public."StockMove"'::regclass
                AND balance_table = 'public."ProductStock"'::regclass AND negative_rule = 'refuse'$$)) = '{1,1}',
       'track_balances on a distributed ledger: its registry row is on both workers');

CREATE ROLE citus_prisma LOGIN;
SELECT inventory.grant_app_access('citus_prisma') \g /dev/null
GRANT SELECT, INSERT, UPDATE, DELETE ON public."Product", public."StockMove" TO citus_prisma;
GRANT SELECT ON public."ProductStock" TO citus_prisma;
SET ROLE citus_prisma;
BEGIN;
SELECT inventory.set_org(:'a') \g /dev/null
INSERT INTO public."Product" (id, sku) VALUES (1, 'P-1'), (2, 'P-2');
INSERT INTO public."StockMove" ("productId", qty) VALUES (1, 5), (2, 3), (1, 2);
INSERT INTO public."StockMove" ("productId", qty) VALUES (1, -1);
SELECT pg_temp.tap(306, (SELECT string_agg("productId" || '=' || qty, ',' ORDER BY "productId") FROM public."ProductStock") = '1=6,2=3',
       'postings of one and many rows into the application''s ledger: balances in the same transaction');
SELECT pg_temp.tap(307, pg_temp.sqlstate_of($$INSERT INTO public."StockMove" ("productId", qty) VALUES (2, -10)$$) = '23514'
                        AND pg_temp.sqlstate_of($$UPDATE public."StockMove" SET qty = 0$$) = '55000',
       'its negative-stock rule (23514) and append-only guard (55000) hold on the shards');
COMMIT;
BEGIN;
SELECT inventory.set_org(:'b') \g /dev/null
SELECT pg_temp.tap(308, (SELECT count(*) FROM public."ProductStock") + (SELECT count(*) FROM public."StockMove") = 0
                        AND pg_temp.sqlstate_of($$INSERT INTO public."StockMove" ("productId", qty) VALUES (1, 1)$$) = '23503',
       'the other tenant sees none of it and cannot post against its products');
COMMIT;
RESET ROLE;

UPDATE public."ProductStock" SET qty = qty + 0.001 WHERE "productId" = 1;
SELECT pg_temp.tap(309, (SELECT string_agg(kind || ':' || action, ',') FROM inventory.reconcile('public."StockMove"')) = 'drift:corrected'
                        AND (SELECT qty FROM public."ProductStock" WHERE "productId" = 1) = 6,
       'reconcile corrects planted drift in the application''s balances');
SELECT pg_temp.tap(310, inventory.rebuild_balances('public."StockMove"') = 2, 'rebuild_balances of the application''s ledger');
BEGIN;
SELECT pg_temp.tap(314, pg_temp.sqlstate_of($$SELECT inventory.untrack_balances('public."StockMove"')$$) = '25001',
       'untrack_balances of a distributed ledger inside a transaction block: 25001 (the workers'' registry commits at once)');
ROLLBACK;
SELECT inventory.untrack_balances('public."StockMove"') \g /dev/null
SELECT pg_temp.tap(311, (SELECT array_agg(result ORDER BY nodeport) FROM run_command_on_workers(
            $$SELECT count(*) FROM inventory.tracked_ledgers WHERE ledger = 'public."StockMove"'::regclass$$)) = '{0,0}'
                        AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'public."StockMove"'::regclass AND NOT tgisinternal),
       'untrack_balances: the triggers go, and the registry rows on the workers');
-- What is not verified on Citus is refused, not run half-right.
SELECT pg_temp.tap(312, pg_temp.sqlstate_of($$SELECT * FROM inventory.tenant_isolation_next_step('public."Product"', 'orgId')$$) = '0A000',
       'enable_tenant_isolation_online''s steps on Citus: 0A000');
SELECT pg_temp.tap(313, pg_temp.sqlstate_of($$SELECT inventory.balance_fill_start('public."StockMove"', 'public."ProductStock"', ARRAY['productId'], 'qty')$$) = '0A000',
       'track_balances_online on a distributed ledger: 0A000 (an exported snapshot does not reach the workers)');
