-- inventory_ext bootstrap: tables that the Rust functions use. Runs first, inside CREATE EXTENSION,
-- with the schema `inventory` (from the control file) already created and first on search_path.

-- The tenants. Nothing secret lives here: an application role may read its own organization's row.
CREATE TABLE inventory.organizations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    subdomain  text UNIQUE,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_name_check CHECK (btrim(name) <> '' AND char_length(name) <= 200),
    -- Lower-case DNS labels, as host::is_dns_label accepts them.
    CONSTRAINT organizations_subdomain_check CHECK (subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
);
COMMENT ON TABLE inventory.organizations IS
    'Tenants. Under a tenant context an application role sees its own organization''s row only.';

-- One API key per organization, as a SHA-256 hash and a non-secret prefix that finds the row.
-- No application role is granted anything here; only the SECURITY DEFINER functions read it.
CREATE TABLE inventory.organization_api_keys (
    org_id     uuid PRIMARY KEY REFERENCES inventory.organizations (id) ON DELETE CASCADE,
    key_prefix text NOT NULL,
    key_hash   bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organization_api_keys_prefix_idx ON inventory.organization_api_keys (key_prefix);
COMMENT ON TABLE inventory.organization_api_keys IS
    'API key hashes (SHA-256) and prefixes. Never granted to application roles.';

-- Tables made tenant-scoped by inventory.enable_tenant_isolation, with the org column each was
-- made tenant-scoped with. isolation_report and the foreign-key rewrite read it.
-- builtin marks the extension's own rows: CREATE EXTENSION makes them again on restore, so pg_dump
-- must not carry them.
CREATE TABLE inventory.tenant_tables (
    relid      regclass PRIMARY KEY,
    org_column name NOT NULL,
    builtin    boolean NOT NULL DEFAULT false,
    enabled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE inventory.tenant_tables IS
    'Tables made tenant-scoped by enable_tenant_isolation, and their org column.';

-- Ledgers whose balances are maintained (track_balances): the built-in one and applications' own.
CREATE TABLE inventory.tracked_ledgers (
    ledger        regclass PRIMARY KEY,
    balance_table regclass NOT NULL,
    key_columns   name[] NOT NULL,
    qty_column    name NOT NULL,
    id_column     name,
    org_column    name,
    builtin       boolean NOT NULL DEFAULT false,
    tracked_at    timestamptz NOT NULL DEFAULT now(),
    -- Columns added since 0.1.0 come last, where ALTER EXTENSION … UPDATE adds them too.
    -- The negative-stock rule: 'items.allow_negative' (the built-in ledger: the item decides), 'refuse'
    -- (track_balances(…, allow_negative => false)) or NULL (negative balances allowed).
    negative_rule text CHECK (negative_rule IN ('items.allow_negative', 'refuse')),
    -- Rows per key the balance table may hold (inventory.set_balance_slots): 1 is one row per key; more
    -- adds a slot column to the balance table's key, and contended keys spread over that many rows.
    slots         integer NOT NULL DEFAULT 1 CHECK (slots BETWEEN 1 AND 64),
    -- The process ID of the background worker filling the balances for track_balances_online. It adds
    -- its sums only while this still names it, and clears it; a later call or a full rebuild replaces
    -- or clears it (and wins). While that worker runs, reconcile skips the ledger; once it is gone
    -- (cancelled, killed) the value names no worker and means nothing. NULL: none.
    fill_worker   integer
);
COMMENT ON TABLE inventory.tracked_ledgers IS
    'Ledgers whose balances the balance trigger maintains, with their balance table and keys.';

-- pg_dump must carry the rows of extension tables (SPEC §8).
SELECT pg_catalog.pg_extension_config_dump('inventory.organizations', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.organization_api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.tenant_tables', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('inventory.tracked_ledgers', 'WHERE NOT builtin');
