-- The built-in inventory schema (SPEC §5): items, locations, lots, an append-only ledger and its
-- materialized balances. Runs after the Rust functions exist: every table is made tenant-scoped by
-- inventory.enable_tenant_isolation and the ledger is tracked by the same machinery as any
-- application's ledger (src/balances.rs).

CREATE TABLE inventory.items (
    org_id         uuid NOT NULL,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    sku            text NOT NULL,
    name           text NOT NULL,
    uom            text NOT NULL DEFAULT 'each',
    allow_negative boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, sku)
);

CREATE TABLE inventory.locations (
    org_id     uuid NOT NULL,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    code       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, code)
);

CREATE TABLE inventory.lots (
    org_id     uuid NOT NULL,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    item_id    uuid NOT NULL,
    code       text NOT NULL,
    expires_on date,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, item_id, code),
    FOREIGN KEY (org_id, item_id) REFERENCES inventory.items (org_id, id)
);

-- Append-only: corrections are reversing entries (the guard refuses UPDATE, DELETE and TRUNCATE).
CREATE TABLE inventory.ledger (
    org_id      uuid NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    item_id     uuid NOT NULL,
    location_id uuid NOT NULL,
    lot_id      uuid,
    qty         numeric NOT NULL,
    reason      text,
    reference   text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, item_id) REFERENCES inventory.items (org_id, id),
    FOREIGN KEY (org_id, location_id) REFERENCES inventory.locations (org_id, id),
    FOREIGN KEY (org_id, lot_id) REFERENCES inventory.lots (org_id, id)
);
CREATE INDEX ledger_key_idx ON inventory.ledger (org_id, item_id, location_id, lot_id);

-- One row per (org_id, item_id, location_id, lot_id), NULL lots equal. Written only by the balance
-- trigger; applications may read it.
CREATE TABLE inventory.balances (
    org_id         uuid NOT NULL,
    item_id        uuid NOT NULL,
    location_id    uuid NOT NULL,
    lot_id         uuid,
    qty            numeric NOT NULL,
    last_ledger_id bigint NOT NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (org_id, item_id, location_id, lot_id)
);

-- pg_dump carries the tenants' rows (SPEC §8), but not the balances: they are derived. On restore,
-- CREATE EXTENSION installs the balance trigger before the data is loaded, so the ledger's COPY goes
-- through it and rebuilds every balance with one grouped upsert; dumping the balances as well would
-- count every ledger row twice. The ledger's id sequence goes along, so new postings continue after it.
SELECT pg_catalog.pg_extension_config_dump('inventory.items', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.locations', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.lots', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.ledger_id_seq', '');

SELECT count(*) FROM inventory.enable_tenant_isolation('inventory.items');
SELECT count(*) FROM inventory.enable_tenant_isolation('inventory.locations');
SELECT count(*) FROM inventory.enable_tenant_isolation('inventory.lots');
SELECT count(*) FROM inventory.enable_tenant_isolation('inventory.ledger');
SELECT count(*) FROM inventory.enable_tenant_isolation('inventory.balances');

-- The balance triggers write balances that applications cannot, each row into its own tenant: the
-- flush takes the extension owner's identity and a pinned search_path itself, once per statement
-- (src/trust.rs, run_pinned), rather than per row as SECURITY DEFINER … SET would.
ALTER FUNCTION inventory.append_only_guard() SET search_path = pg_catalog, pg_temp;

-- The negative-stock rule holds for the live state (SPEC §5): an item's allow_negative cannot be turned
-- off while one of its balances is below zero. So a dump restores, and a tenant imports, whatever
-- history led there: each ledger statement of a restore ends at a state the rule allowed.
CREATE FUNCTION inventory.allow_negative_guard() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    negative record;
    folded bigint;
BEGIN
    -- The item as it is (OLD): row-level security chose that row; NEW is checked against the tenant's
    -- policy only after BEFORE triggers, so looking up NEW's keys would read another tenant's balances.
    IF NEW.allow_negative OR NOT OLD.allow_negative THEN
        RETURN NEW;
    END IF;
    -- With slots (inventory.set_balance_slots) a key's balance is the sum of its rows, and a guarded
    -- item's rows must each stay >= 0: the rows of a key whose total is not negative are folded into
    -- one (locked in slot order, as postings lock them); only a negative total refuses.
    IF EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'inventory.balances'::pg_catalog.regclass
                  AND attname = 'slot' AND NOT attisdropped)
       AND EXISTS (SELECT FROM inventory.balances b WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id AND b.qty < 0) THEN
        -- Planned only when it runs, so only while the slot column exists.
        WITH keys AS (SELECT DISTINCT b.location_id, b.lot_id FROM inventory.balances b
                       WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id AND b.qty < 0),
             locked AS MATERIALIZED (SELECT b.location_id, b.lot_id, b.slot, b.qty FROM inventory.balances b
                                       JOIN keys k ON k.location_id = b.location_id AND k.lot_id IS NOT DISTINCT FROM b.lot_id
                                      WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id
                                      ORDER BY b.location_id, b.lot_id, b.slot FOR NO KEY UPDATE OF b),
             totals AS (SELECT location_id, lot_id, min(slot) AS first, sum(qty) AS total FROM locked
                         GROUP BY location_id, lot_id HAVING sum(qty) >= 0),
             moved AS (UPDATE inventory.balances b SET qty = CASE WHEN b.slot = t.first THEN t.total ELSE 0 END
                         FROM totals t WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id AND b.location_id = t.location_id
                          AND b.lot_id IS NOT DISTINCT FROM t.lot_id RETURNING 1)
        SELECT count(*) INTO folded FROM moved;
    END IF;
    SELECT l.code AS location, lot.code AS lot, sum(b.qty) AS qty INTO negative
      FROM inventory.balances b
      LEFT JOIN inventory.locations l ON l.org_id = b.org_id AND l.id = b.location_id
      LEFT JOIN inventory.lots lot ON lot.org_id = b.org_id AND lot.id = b.lot_id
     WHERE b.org_id = OLD.org_id AND b.item_id = OLD.id
     GROUP BY b.location_id, b.lot_id, l.code, lot.code
    HAVING sum(b.qty) < 0
     ORDER BY l.code, lot.code NULLS FIRST LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'item % cannot disallow negative stock: its balance at location % is %',
            OLD.sku, negative.location || coalesce(' lot ' || negative.lot, ''), negative.qty
            USING ERRCODE = '23514',
                  HINT = 'Receive stock (or post a correcting entry) until no balance of the item is below zero, then disallow negative stock.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER inventory_allow_negative BEFORE UPDATE OF allow_negative ON inventory.items
    FOR EACH ROW EXECUTE FUNCTION inventory.allow_negative_guard();

-- Tracked like any ledger; for this one the item's allow_negative decides about negative stock.
SELECT inventory.track_balances('inventory.ledger', 'inventory.balances',
                                ARRAY['org_id', 'item_id', 'location_id', 'lot_id'], 'qty');

-- Ledgers tracked under an older version get this version's triggers (docs/UPGRADING.md). 0.1.0 kept a
-- ledger's balances with one AFTER INSERT … FOR EACH STATEMENT trigger whose arguments carried the
-- registration, the negative-stock rule among them; this version needs its row and statement
-- triggers and the rule in the registry. Each such ledger is tracked again with its registration and
-- that rule: track_balances checks both tables as this version requires, replaces the triggers and
-- recomputes the balances from the ledger; a ledger whose trigger was disabled (upkeep suspended)
-- stays suspended. A balance table 0.1.0's track_balances made belongs to the superuser who ran it;
-- this version's upkeep runs as the tables' one owner, so such a table goes to the ledger's owner
-- first, as track_balances now hands over a balance table it makes (with USAGE on this schema, which
-- its policy needs). An application's ledger this version refuses (a partition, a default calling
-- another role's function, a balance table another ledger shares, …) keeps its old trigger, which
-- refuses postings until it is fixed and this runs again, and a WARNING says why; the others are updated. So are these, with a WARNING each:
-- a registration whose ledger is gone (0.1.0 kept those) is removed; a ledger without any version's
-- balance trigger (dropped under 0.1.0, so its balances have not been kept since) is left for
-- track_balances. ALTER EXTENSION … UPDATE runs it; after restoring an older version's dump (whose
-- triggers come back as they were) a superuser runs it once. Returns the ledgers it updated.
CREATE FUNCTION inventory.update_balance_triggers() RETURNS SETOF regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old record;
    owners record;
    args bytea;
    rule text;
    nul constant bytea := decode('00', 'hex');
    error_message text;
    error_hint text;
BEGIN
    FOR old IN
        DELETE FROM inventory.tracked_ledgers l WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = l.ledger)
        RETURNING l.ledger::oid
    LOOP
        RAISE WARNING 'removed the registration of a ledger that no longer exists (OID %)', old.ledger;
    END LOOP;
    FOR old IN
        SELECT l.ledger, l.balance_table, l.key_columns, l.qty_column, l.builtin, t.tgargs, t.tgenabled,
               t.oid IS NOT NULL AS legacy,
               EXISTS (SELECT FROM pg_trigger n WHERE n.tgrelid = l.ledger
                          AND n.tgfoid = 'inventory.balance_rows()'::regprocedure) AS current
          FROM inventory.tracked_ledgers l
          LEFT JOIN pg_trigger t ON t.tgrelid = l.ledger AND t.tgname = 'inventory_balances'
                                AND t.tgfoid = 'inventory.balance_maintenance()'::regprocedure AND t.tgnargs > 0
         ORDER BY l.builtin DESC, l.ledger::text
    LOOP
        IF NOT old.legacy THEN
            IF NOT old.current THEN
                RAISE WARNING 'ledger % has no balance trigger (dropped or renamed under an older version): its balances are not kept', old.ledger
                    USING HINT = 'Track it again: SELECT inventory.untrack_balances(…), then inventory.track_balances(…) with its rule; reconcile() shows the drift.';
            END IF;
            CONTINUE;
        END IF;
        BEGIN
            -- 0.1.0's arguments, each ended by a zero byte: balance table, qty, id, rule ('' for none),
            -- keys. Split as bytes: a column name may hold any other byte.
            args := old.tgargs;
            FOR i IN 1..3 LOOP
                args := substring(args FROM position(nul IN args) + 1);
            END LOOP;
            rule := convert_from(substring(args FOR position(nul IN args) - 1), 'UTF8');
            -- 0.1.0 let two ledgers keep their balances in one table; tracking either would rebuild
            -- the table from its ledger alone (and hand it to that ledger's owner). Both are left.
            IF EXISTS (SELECT FROM inventory.tracked_ledgers o WHERE o.balance_table = old.balance_table AND o.ledger <> old.ledger) THEN
                RAISE EXCEPTION 'its balance table % keeps another ledger''s balances too', old.balance_table
                    USING ERRCODE = '55000',
                          HINT = 'Give each ledger a balance table of its own: untrack both, then track each with its own.';
            END IF;
            SELECT l.relowner::regrole AS ledger_owner, b.relowner::regrole AS balance_owner, r.rolsuper AS by_superuser
              INTO owners
              FROM pg_class l, pg_class b JOIN pg_roles r ON r.oid = b.relowner
             WHERE l.oid = old.ledger AND b.oid = old.balance_table;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'its balance table (OID %) no longer exists', old.balance_table::oid USING ERRCODE = '42P01',
                    HINT = 'Track the ledger again: SELECT inventory.untrack_balances(…), then inventory.track_balances(…).';
            END IF;
            IF owners.ledger_owner <> owners.balance_owner AND owners.by_superuser THEN
                EXECUTE format('ALTER TABLE %s OWNER TO %s', old.balance_table, owners.ledger_owner);
                EXECUTE format('GRANT USAGE ON SCHEMA inventory TO %s', owners.ledger_owner);
                RAISE NOTICE 'balance table % now belongs to %, the owner of ledger %',
                    old.balance_table, owners.ledger_owner, old.ledger;
            END IF;
            PERFORM inventory.track_balances(old.ledger, old.balance_table::text, old.key_columns, old.qty_column,
                                             allow_negative => rule IS DISTINCT FROM 'refuse');
            IF old.tgenabled = 'D' THEN
                EXECUTE format('ALTER TABLE %s DISABLE TRIGGER inventory_balances, DISABLE TRIGGER inventory_balances_flush',
                               old.ledger);
                RAISE NOTICE 'ledger %''s balance upkeep stays suspended, as it was (its balances were recomputed)', old.ledger;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            IF old.builtin THEN
                RAISE;
            END IF;
            GET STACKED DIAGNOSTICS error_message = MESSAGE_TEXT, error_hint = PG_EXCEPTION_HINT;
            RAISE WARNING 'ledger % was not updated: % (%)', old.ledger, error_message, SQLSTATE
                USING HINT = coalesce(nullif(error_hint, '') || ' ', '')
                             || CASE WHEN old.tgenabled = 'D'
                                     THEN 'Its balance upkeep stays suspended, as it was, until this is fixed and SELECT inventory.update_balance_triggers() runs again.'
                                     ELSE 'Postings to it are refused until this is fixed and SELECT inventory.update_balance_triggers() runs again.' END;
            CONTINUE;
        END;
        RETURN NEXT old.ledger;
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION inventory.update_balance_triggers() FROM PUBLIC;
COMMENT ON FUNCTION inventory.update_balance_triggers() IS
    'Gives ledgers tracked under an older inventory_ext (a restored dump) this version''s balance triggers, and recomputes their balances.';

-- The application's API. SECURITY INVOKER: row-level security and the caller's grants apply, and the
-- ledger's defaults give each row the caller's tenant (42501 without one).

-- Posts one ledger entry; returns its id.
CREATE FUNCTION inventory.post(item_id uuid, location_id uuid, qty numeric, lot_id uuid DEFAULT NULL,
                               reason text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    posted bigint;
BEGIN
    IF qty IS NULL OR qty = 0 THEN
        RAISE EXCEPTION 'a ledger quantity cannot be zero or NULL' USING ERRCODE = '22023',
            HINT = 'Post a non-zero quantity: positive to receive, negative to issue.';
    END IF;
    INSERT INTO inventory.ledger (item_id, location_id, lot_id, qty, reason, reference)
    VALUES (post.item_id, post.location_id, post.lot_id, post.qty, post.reason, post.reference)
    RETURNING id INTO posted;
    RETURN posted;
END
$$;

-- Moves stock between two locations: both entries in one statement, so both or neither.
CREATE FUNCTION inventory.transfer(item_id uuid, from_location uuid, to_location uuid, qty numeric,
                                   lot_id uuid DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids bigint[];
BEGIN
    IF qty IS NULL OR qty <= 0 THEN
        RAISE EXCEPTION 'a transfer quantity must be positive' USING ERRCODE = '22023',
            HINT = 'Transfer a positive quantity from one location to another.';
    END IF;
    IF from_location IS NOT DISTINCT FROM to_location THEN
        RAISE EXCEPTION 'a transfer needs two different locations' USING ERRCODE = '22023';
    END IF;
    WITH posted AS (
        INSERT INTO inventory.ledger (item_id, location_id, lot_id, qty, reason, reference)
        VALUES (transfer.item_id, from_location, transfer.lot_id, -transfer.qty, 'transfer out', transfer.reference),
               (transfer.item_id, to_location, transfer.lot_id, transfer.qty, 'transfer in', transfer.reference)
        RETURNING id)
    SELECT array_agg(id ORDER BY id) INTO ids FROM posted;
    RETURN ids;
END
$$;

-- Stock on hand from the balances: over all lots, and over all locations when location_id is NULL.
-- PL/pgSQL rather than SQL: Citus cannot plan a SQL function's parameters (SPEC §9). Under a tenant it
-- says org_id = the tenant, which row-level security filters by anyway, so that Citus reads one shard.
CREATE FUNCTION inventory.on_hand(item_id uuid, location_id uuid DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant uuid := inventory.current_org_id();
    total numeric;
BEGIN
    IF tenant IS NULL THEN
        SELECT sum(b.qty) INTO total FROM inventory.balances b
         WHERE b.item_id = on_hand.item_id AND (on_hand.location_id IS NULL OR b.location_id = on_hand.location_id);
    ELSE
        SELECT sum(b.qty) INTO total FROM inventory.balances b
         WHERE b.org_id = tenant AND b.item_id = on_hand.item_id
           AND (on_hand.location_id IS NULL OR b.location_id = on_hand.location_id);
    END IF;
    RETURN coalesce(total, 0);
END
$$;

-- The balances with a key's slots summed (SPEC §6, hot keys): one row per (org_id, item_id, location_id,
-- lot_id) whatever inventory.set_balance_slots says; security_invoker, so each tenant reads its own.
CREATE VIEW inventory.stock WITH (security_invoker = true) AS
SELECT org_id, item_id, location_id, lot_id, sum(qty) AS qty, max(last_ledger_id) AS last_ledger_id,
       max(updated_at) AS updated_at
  FROM inventory.balances
 GROUP BY org_id, item_id, location_id, lot_id;
COMMENT ON VIEW inventory.stock IS
    'Balances with a key''s slots summed: one row per item, location and lot (inventory.set_balance_slots).';

COMMENT ON FUNCTION inventory.post(uuid, uuid, numeric, uuid, text, text) IS
    'Posts one ledger entry for the current tenant; returns its id. Balances follow in the same transaction.';
COMMENT ON FUNCTION inventory.transfer(uuid, uuid, uuid, numeric, uuid, text) IS
    'Moves stock between two locations: two ledger entries, both or neither; returns their ids.';
COMMENT ON FUNCTION inventory.on_hand(uuid, uuid) IS
    'Stock on hand of an item (at a location, or everywhere), from the materialized balances.';

-- track_balances for a ledger that is being written to (src/balances/online.rs): the same set-up, with
-- writers held back only while it is made (the lock is tried, never queued for); the balances of the
-- ledger as it was then are summed by a background worker under that instant's snapshot and added to
-- the balance rows the triggers keep meanwhile. Read the balances once it returns. Like the isolation
-- procedure it has no SET clause (it commits): SECURITY INVOKER, names qualified. Called again, it
-- starts over (an online rebuild): after a failure, that is how it resumes.
CREATE PROCEDURE inventory.track_balances_online(
    ledger regclass,
    balance_table text,
    key_columns name[],
    qty_column name
)
LANGUAGE plpgsql
AS $$
DECLARE
    request bigint;
    answer record;
BEGIN
    request := inventory.balance_fill_start(ledger, balance_table, key_columns, qty_column);
    LOOP
        COMMIT;
        SELECT * INTO answer FROM inventory.background_result(request);
        EXIT WHEN answer.finished;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
    IF answer.sqlstate IS NOT NULL THEN
        RAISE EXCEPTION '%', answer.message USING ERRCODE = answer.sqlstate,
            DETAIL = 'while filling the balances of ' || ledger::text || ' from its snapshot',
            HINT = 'Fix the cause and call track_balances_online again: it starts over.';
    END IF;
END
$$;
COMMENT ON PROCEDURE inventory.track_balances_online(regclass, text, name[], name) IS
    'track_balances for a ledger being written to: the balances filled by a background worker from a snapshot.';
