//! Materialized balances for any ledger (SPEC §5, §6): `track_balances`, `untrack_balances`,
//! `rebuild_balances` and the registry `inventory.tracked_ledgers` they keep. The balance trigger and
//! the append-only guard are in `trigger`; who the upkeep runs as is `crate::trust`'s.

pub mod ddl;
pub mod direct;
pub mod frames;
pub mod online;
pub mod plans;
pub mod slots;
pub mod spread;
pub mod trigger;

use crate::errors;
use crate::maintenance;
use crate::spi_util::{exec, exec_with_args, first, one_text, relation_name, rows, text};
use crate::sql_types::{NameArray, RegClass, SqlName};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use crate::trust;
use crate::sql_text::{ident, ident_list, literal};

/// The names of the guards on every tracked ledger (the balance triggers' are in `plans`).
pub const GUARD_ROWS: &str = "inventory_append_only";
pub const GUARD_TRUNCATE: &str = "inventory_append_only_truncate";
/// Negative-stock rules: the built-in ledger's (the item's `allow_negative` decides), and "refuse every
/// negative balance" for an application's ledger tracked with `allow_negative => false`.
const RULE_ITEMS: &str = "items.allow_negative";
const RULE_REFUSE: &str = "refuse";
const BUILTIN_LEDGER: &str = "inventory.ledger";
/// Every trigger `track_balances` installs.
const TRIGGERS: [&str; 4] = [plans::ROW_TRIGGER, plans::FLUSH_TRIGGER, GUARD_ROWS, GUARD_TRUNCATE];

/// Drops one of our triggers when it is there (DROP TRIGGER IF EXISTS would NOTICE when it is not).
fn drop_trigger(name: &str, ledger: pg_sys::Oid, ledger_name: &str) {
    if one_text("SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2", &[ledger.into(), name.into()]).is_some() {
        exec(&format!("DROP TRIGGER {name} ON {ledger_name}"));
    }
}

/// Starts materialized balances for a ledger: creates the balance table when it does not exist,
/// installs the triggers, fills the balances from the rows already there and records the ledger.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_balances(
    ledger: Option<RegClass>,
    balance_table: Option<&str>,
    key_columns: Option<NameArray>,
    qty_column: Option<SqlName>,
    allow_negative: default!(Option<bool>, "true"),
) {
    crate::sql_version::require_current("inventory.track_balances");
    let (ledger, balance_table, keys, qty) = track_arguments(ledger, balance_table, key_columns, qty_column);
    let rule = (allow_negative == Some(false)).then_some(RULE_REFUSE);
    ddl::own_ddl(|| track(ledger, &balance_table, keys, qty, rule, Fill::Now));
}

/// `track_balances`' first half for `track_balances_online` (sql/ledger.sql): the same set-up in this
/// transaction, the fill handed to a background worker (`online`). Returns the request to poll.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn balance_fill_start(
    ledger: Option<RegClass>,
    balance_table: Option<&str>,
    key_columns: Option<NameArray>,
    qty_column: Option<SqlName>,
) -> i64 {
    crate::sql_version::require_current("inventory.track_balances_online");
    let (ledger, balance_table, keys, qty) = track_arguments(ledger, balance_table, key_columns, qty_column);
    if crate::citus::is_distributed(ledger) {
        // The fill sums the ledger under one exported snapshot, which does not reach the workers.
        errors::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "track_balances_online is not supported on Citus",
            "Use inventory.track_balances (docs/SCALE_OUT.md): an exported snapshot does not reach the workers.",
        );
    }
    // SAFETY: reads the transaction state.
    if unsafe { pg_sys::IsTransactionBlock() } {
        errors::raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "track_balances_online cannot run inside a transaction block",
            "CALL it on its own, or use track_balances in a transaction.",
        );
    }
    if relation_name(ledger) == BUILTIN_LEDGER {
        online::refuse_rule(BUILTIN_LEDGER);
    }
    // Writers are held back from here to the commit that follows the worker's start. The lock is tried
    // between postings and queued for at most 100 ms at a time (postings wait no longer behind this
    // call), for up to about a minute: the lock every later step needs, taken first — SHARE ROW
    // EXCLUSIVE to create the triggers, ACCESS EXCLUSIVE when ours are there to be dropped first (a
    // DROP TRIGGER queued behind a reader would hold every posting behind it).
    let names: Vec<Option<String>> = TRIGGERS.iter().map(|t| Some(t.to_string())).collect();
    let has_our_triggers = || {
        one_text(
            "SELECT 'yes' FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = ANY ($2::text[]) LIMIT 1",
            &[ledger.into(), names.clone().into()],
        )
        .is_some()
    };
    let retrack = has_our_triggers();
    let mode = if retrack { pg_sys::AccessExclusiveLock } else { pg_sys::ShareRowExclusiveLock };
    if !maintenance::lock_giving_way(ledger, mode, 100, 300) {
        errors::raise(
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            format!("{} stayed locked by other sessions for a minute", relation_name(ledger)),
            "Call again: nothing was changed.",
        )
    }
    // Another session may have tracked the ledger between the look and the lock: then dropping its
    // triggers needs the stronger lock, which must not be queued for while this one holds postings.
    if !retrack && has_our_triggers() {
        errors::raise(
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            format!("another session tracked {} while this call took its lock", relation_name(ledger)),
            "Call again: nothing was changed.",
        )
    }
    // Whatever else the set-up waits for while it holds postings back (the balance table, the
    // organizations its foreign key names), it waits at most a second (for this transaction only).
    // SAFETY: reads a backend global.
    let current = unsafe { pg_sys::LockTimeout };
    if current == 0 || current > 1000 {
        exec("SELECT pg_catalog.set_config('lock_timeout', '1s', true)");
    }
    ddl::own_ddl(|| track(ledger, &balance_table, keys, qty, None, Fill::Online)).unwrap_or_default()
}

/// How `track` fills the balances: in its transaction, or from a snapshot by a background worker.
#[derive(PartialEq)]
enum Fill {
    Now,
    Online,
}

/// The arguments `track_balances` and `track_balances_online` share, checked.
fn track_arguments(
    ledger: Option<RegClass>,
    balance_table: Option<&str>,
    key_columns: Option<NameArray>,
    qty_column: Option<SqlName>,
) -> (pg_sys::Oid, String, Vec<String>, String) {
    let (Some(RegClass(ledger)), Some(balance_table), Some(keys), Some(SqlName(qty))) =
        (ledger, balance_table, key_columns, qty_column)
    else {
        errors::invalid_argument(
            "track_balances needs a ledger, a balance table, key columns and a qty column",
            "e.g. inventory.track_balances('public.\"InventoryLedger\"', 'public.\"InventoryBalance\"', ARRAY['itemId', 'locationId'], 'qtyCanonical')",
        )
    };
    (ledger, balance_table.to_string(), keys.0.into_iter().map(Option::unwrap_or_default).collect(), qty)
}

fn track(ledger: pg_sys::Oid, balance_table: &str, mut keys: Vec<String>, qty: String, rule: Option<&str>, fill: Fill) -> Option<i64> {
    let ledger_name = relation_name(ledger);
    trust::refuse_unless_plain_table(ledger);
    let rule = if ledger_name == BUILTIN_LEDGER { Some(RULE_ITEMS) } else { rule };
    refuse_temporary(ledger, &ledger_name);
    let column_type = |name: &str| {
        one_text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[ledger.into(), name.into()],
        )
    };
    if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
        errors::invalid_argument("key_columns must name at least one column, none empty", "e.g. ARRAY['itemId', 'locationId']");
    }
    let org_column = one_text(
        "SELECT org_column::text FROM inventory.tenant_tables WHERE relid = $1::regclass",
        &[ledger.into()],
    );
    let distributed = crate::citus::is_distributed(ledger);
    if distributed {
        crate::citus::require_tenant_distribution(ledger, &ledger_name, org_column.as_deref());
        crate::citus::one_connection_per_node();
    }
    if let Some(org) = &org_column {
        // Balances of a tenant-scoped ledger are per tenant: the org column leads the key.
        keys.retain(|k| k != org);
        keys.insert(0, org.clone());
    }
    let mut key_types = Vec::new();
    for k in keys.iter().chain(std::iter::once(&qty)) {
        match column_type(k) {
            Some(t) => key_types.push(t),
            None => errors::raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column {} of {ledger_name} does not exist", ident(k)),
                "Name the ledger's columns as they are spelled (camelCase columns keep their case).",
            ),
        }
    }
    let qty_type = key_types.pop().unwrap_or_default();
    if !matches!(qty_type.split('(').next(), Some("numeric" | "integer" | "bigint" | "smallint")) {
        errors::invalid_argument(
            format!("qty column {} of {ledger_name} is {qty_type}", ident(&qty)),
            "Quantities must be numeric (or an integer type), never floating point.",
        );
    }
    // The ledger's bigint key, when it has one (an identity column, or a bigint primary key), is
    // recorded as each balance's last_ledger_id.
    let id_column = one_text(
        "SELECT a.attname::text FROM pg_attribute a
          WHERE a.attrelid = $1 AND a.atttypid = 'bigint'::regtype AND a.attnum > 0 AND NOT a.attisdropped
            AND (a.attidentity <> '' OR EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = a.attrelid
                                                  AND c.contype = 'p' AND c.conkey = ARRAY[a.attnum]))
          ORDER BY a.attidentity <> '' DESC, a.attnum LIMIT 1",
        &[ledger.into()],
    );

    // An unqualified balance table goes beside the ledger (this function's search_path is pinned, so
    // the caller's would not apply anyway).
    let balance_table = one_text(
        "SELECT CASE cardinality(p) WHEN 1 THEN quote_ident(n.nspname) || '.' || quote_ident(p[1])
                                    WHEN 2 THEN quote_ident(p[1]) || '.' || quote_ident(p[2]) END
           FROM parse_ident($1) p, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $2",
        &[balance_table.into(), ledger.into()],
    )
    .unwrap_or_else(|| {
        errors::invalid_argument(
            format!("balance table name {balance_table:?} is not a table name"),
            "Pass a name like 'public.\"InventoryBalance\"' or 'stock_balances'.",
        )
    });
    let balance_table = balance_table.as_str();
    let existing = one_text("SELECT to_regclass($1)::text", &[balance_table.into()]);
    let balance_name = match existing {
        Some(name) => name,
        None if distributed => crate::citus::balance_table_first(balance_table, &ledger_name, &keys, &key_types, id_column.is_some()),
        None => {
            let columns = keys
                .iter()
                .zip(&key_types)
                .map(|(k, t)| format!("{} {t}", ident(k)))
                .collect::<Vec<_>>()
                .join(", ");
            let key_list = ident_list("", &keys);
            let last_id = if id_column.is_some() { "last_ledger_id bigint NOT NULL, " } else { "" };
            exec(&format!(
                "CREATE TABLE {balance_table} ({columns}, qty numeric NOT NULL, {last_id}updated_at timestamptz NOT NULL,
                  UNIQUE NULLS NOT DISTINCT ({key_list}))"
            ));
            let name = first::<String>("SELECT $1::regclass::text", &[balance_table.into()]).unwrap_or_default();
            // The balance table belongs to the ledger's owner: the upkeep runs as the tables' one owner
            // (crate::trust), so a balance table made by a superuser for a schema owner's ledger would
            // otherwise be refused, and must never be written with more rights than that owner has.
            // Every role that may read the ledger may read its balances.
            let ledger_owner = hand_over(&name, "TABLE", ledger, ledger);
            // The owner does the upkeep of a tenant-scoped balance table, whose policy and defaults call
            // inventory.current_org_id(): it needs to reach the schema (as grant_app_access gives).
            exec(&format!("GRANT USAGE ON SCHEMA inventory TO {ledger_owner}"));
            name
        }
    };
    let balance_oid = first::<pg_sys::Oid>("SELECT $1::regclass::oid", &[balance_name.as_str().into()]).unwrap_or(pg_sys::InvalidOid);
    refuse_temporary(balance_oid, &balance_name);
    refuse_shared(balance_oid, &balance_name, ledger);
    if distributed {
        crate::citus::require_beside(balance_oid, &balance_name, ledger, &ledger_name);
        crate::citus::refuse_transaction_block("track_balances");
    }
    if let Some(org) = &org_column {
        let isolate = format!(
            "SELECT count(*) FROM inventory.enable_tenant_isolation({}::regclass, {})",
            literal(&balance_name),
            literal(org)
        );
        exec(&isolate);
    }

    if distributed {
        crate::citus::allow_triggers();
    }
    for trigger in TRIGGERS {
        drop_trigger(trigger, ledger, &ledger_name);
    }
    // No arguments: the triggers read their configuration from the registry row written below.
    exec(&format!(
        "CREATE TRIGGER {} AFTER INSERT ON {ledger_name} FOR EACH ROW EXECUTE FUNCTION inventory.balance_rows()",
        plans::ROW_TRIGGER
    ));
    exec(&format!(
        "CREATE TRIGGER {} AFTER INSERT ON {ledger_name} FOR EACH STATEMENT EXECUTE FUNCTION inventory.balance_maintenance()",
        plans::FLUSH_TRIGGER
    ));
    exec(&format!(
        "CREATE TRIGGER {GUARD_ROWS} BEFORE UPDATE OR DELETE ON {ledger_name}
         FOR EACH ROW EXECUTE FUNCTION inventory.append_only_guard()"
    ));
    exec(&format!(
        "CREATE TRIGGER {GUARD_TRUNCATE} BEFORE TRUNCATE ON {ledger_name}
         FOR EACH STATEMENT EXECUTE FUNCTION inventory.append_only_guard()"
    ));
    let key_array: Vec<Option<String>> = keys.iter().cloned().map(Some).collect();
    exec_with_args(
        "INSERT INTO inventory.tracked_ledgers (ledger, balance_table, key_columns, qty_column, id_column, org_column, builtin, negative_rule)
         VALUES ($1::regclass, $2::oid::regclass, $3::name[], $4, $5, $6, $7, $8)
         ON CONFLICT (ledger) DO UPDATE SET balance_table = excluded.balance_table, key_columns = excluded.key_columns,
            qty_column = excluded.qty_column, id_column = excluded.id_column, org_column = excluded.org_column,
            negative_rule = excluded.negative_rule, tracked_at = now(), fill_worker = NULL",
        &[
            ledger.into(),
            balance_oid.into(),
            key_array.into(),
            qty.as_str().into(),
            id_column.into(),
            org_column.into(),
            crate::sql_version::extension_script_owns(ledger).into(),
            rule.into(),
        ],
    );
    let filled = match fill {
        Fill::Now => {
            rebuild(ledger, None);
            None
        }
        Fill::Online => Some(online::start(ledger)),
    };
    if distributed {
        crate::citus::sync_registry();
    }
    filled
}

/// Gives `relation` (its SQL name; `kind` TABLE or VIEW), made by the caller, to the owner of `owner_of`
/// when that is another role, and SELECT on it to every role that may SELECT `readers_of`. Returns the
/// owner as SQL (regrole text is a quoted identifier already).
pub(super) fn hand_over(relation: &str, kind: &str, owner_of: pg_sys::Oid, readers_of: pg_sys::Oid) -> String {
    let owner = one_text("SELECT relowner::regrole::text FROM pg_catalog.pg_class WHERE oid = $1", &[owner_of.into()]).unwrap_or_default();
    if one_text("SELECT current_user::regrole::text", &[]).as_deref() != Some(owner.as_str()) {
        exec(&format!("ALTER {kind} {relation} OWNER TO {owner}"));
    }
    let readers = rows(
        "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END
           FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a LEFT JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
          WHERE c.oid = $1 AND a.privilege_type = 'SELECT'",
        &[readers_of.into()],
        |row| text(row, 1),
    );
    for role in readers {
        exec(&format!("GRANT SELECT ON {relation} TO {role}"));
    }
    owner
}

/// 55000 when another ledger's balances are kept in `balance_table`: a rebuild of either would delete
/// the other's rows.
fn refuse_shared(balance_table: pg_sys::Oid, name: &str, ledger: pg_sys::Oid) {
    if let Some(other) = one_text(
        "SELECT ledger::text FROM inventory.tracked_ledgers WHERE balance_table = $1 AND ledger <> $2",
        &[balance_table.into(), ledger.into()],
    ) {
        errors::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{name} keeps the balances of ledger {other} already"),
            "Each tracked ledger needs a balance table of its own: name another one (track_balances makes it).",
        )
    }
}

/// 0A000 for a temporary table: it would vanish with its session and leave the registration behind.
fn refuse_temporary(table: pg_sys::Oid, name: &str) {
    if one_text("SELECT 'yes' FROM pg_catalog.pg_class WHERE oid = $1 AND relpersistence = 't'", &[table.into()]).is_some() {
        errors::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} is a temporary table: its balances cannot be tracked"),
            "Track permanent (or unlogged) tables.",
        )
    }
}

/// Stops maintaining a ledger's balances: removes the triggers and the registration, keeps both tables.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn untrack_balances(ledger: Option<RegClass>) {
    crate::sql_version::require_current("inventory.untrack_balances");
    let Some(RegClass(ledger)) = ledger else {
        errors::invalid_argument("ledger must not be NULL", "Pass the ledger table.")
    };
    let ledger_name = relation_name(ledger);
    let distributed = crate::citus::is_distributed(ledger);
    if distributed {
        crate::citus::refuse_transaction_block("untrack_balances");
        crate::citus::allow_triggers();
    }
    ddl::own_ddl(|| {
        for trigger in TRIGGERS {
            drop_trigger(trigger, ledger, &ledger_name);
        }
    });
    exec_with_args("DELETE FROM inventory.tracked_ledgers WHERE ledger = $1::regclass", &[ledger.into()]);
    if distributed {
        crate::citus::sync_registry();
    }
}

/// Recomputes balances from the ledger: all tenants, or one. It locks the ledger against writers
/// (SHARE: in-flight postings finish first, new ones wait), so it never loses a posting.
// Created after sql/ledger.sql: its default names the built-in ledger. By name, resolved per call
// ('…'::text::regclass), not as a regclass constant: that would make the function depend on the table,
// which inventory.distribute must drop on Citus workers (sql/citus.sql).
#[pg_extern(volatile, parallel_unsafe, security_definer, requires = ["ledger"])]
#[search_path(pg_catalog, pg_temp)]
fn rebuild_balances(
    ledger: default!(Option<RegClass>, "'inventory.ledger'::text::regclass"),
    org_id: default!(Option<pgrx::Uuid>, "NULL"),
) -> i64 {
    crate::sql_version::require_current("inventory.rebuild_balances");
    let Some(RegClass(ledger)) = ledger else {
        errors::invalid_argument("ledger must not be NULL", "Pass the ledger table, e.g. 'inventory.ledger'.")
    };
    rebuild(ledger, org_id)
}

/// One row of `inventory.tracked_ledgers`, names as quoted SQL (regclass text) or plain column names.
#[derive(Clone)]
pub struct Registered {
    pub ledger: pg_sys::Oid,
    pub ledger_name: String,
    pub balance_oid: pg_sys::Oid,
    pub balance_name: String,
    pub keys: Vec<String>,
    pub qty: String,
    pub id: Option<String>,
    pub org: Option<String>,
    /// The negative-stock rule: `items.allow_negative`, `refuse`, or none.
    pub rule: Option<String>,
    /// Rows per key the balance table may hold (`slots`); 1: one row per key, no slot column.
    pub slots: i32,
}

/// What a pending online fill means for a rewrite of the balances (`Registered::settle_pending_fill`).
#[derive(PartialEq)]
pub enum PendingFill {
    /// The rewrite replaces every balance: the fill's sums would count twice, so it is called off.
    Supersede,
    /// The rewrite touches part of the balances: refused while a fill is under way (55006).
    Refuse,
}

impl Registered {
    pub fn key_list(&self, alias: &str) -> String {
        ident_list(alias, &self.keys)
    }

    /// Serializes everything that rewrites this ledger's balances outside the trigger (rebuild and
    /// reconcile), until the end of the transaction, waiting at most `inventory.maintenance_lock_timeout`
    /// (`maintenance::try_lock`). Postings do not take it. False when another session held it all that time.
    pub fn try_lock_for_maintenance(&self) -> bool {
        maintenance::try_lock(self.ledger)
    }

    /// What rewrites the balance table as a whole (rebuild_balances, set_balance_slots) takes first, inside
    /// `maintenance::with_bounded_waits`: the maintenance lock (55P03 when another session keeps it),
    /// then SHARE on the ledger — postings in flight finish first, new ones wait until the transaction
    /// ends, so none is lost. Returns who the upkeep runs as.
    pub fn lock_for_rewrite(&self) -> trust::Upkeep {
        self.refuse_shared();
        if !self.try_lock_for_maintenance() {
            errors::raise(
                PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                format!("the balances of {} are being rebuilt or reconciled by another session", self.ledger_name),
                "Try again later; inventory.maintenance_lock_timeout bounds how long it waits.",
            )
        }
        let upkeep = trust::upkeep_for(self.ledger, self.balance_oid, self.org.is_some());
        exec(&format!("LOCK TABLE {} IN SHARE MODE", self.ledger_name));
        upkeep
    }

    /// Whether a `track_balances_online` fill is under way, read now (under the maintenance lock): the
    /// registry names its worker and that worker is still running. A worker that was cancelled or
    /// killed leaves its PID behind, which then names no such process and counts for nothing.
    pub fn fill_pending_now(&self) -> bool {
        first::<bool>(
            "SELECT true FROM inventory.tracked_ledgers t, pg_catalog.pg_stat_get_activity(t.fill_worker) a
              WHERE t.ledger = $1::oid::regclass AND a.backend_type = 'inventory_ext background'",
            &[self.ledger.into()],
        )
        .is_some()
    }

    /// Whether `track_balances_online`'s worker is still to add its sums, read under the maintenance
    /// lock (`lock_for_rewrite` first): called off for a full rewrite, 55006 for a partial one.
    pub fn settle_pending_fill(&self, rewrite: PendingFill) {
        match (self.fill_pending_now(), rewrite) {
            (false, _) => {}
            (true, PendingFill::Supersede) => exec_with_args(
                "UPDATE inventory.tracked_ledgers SET fill_worker = NULL WHERE ledger = $1::oid::regclass",
                &[self.ledger.into()],
            ),
            (true, PendingFill::Refuse) => errors::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                format!("the balances of {} are being filled by track_balances_online", self.ledger_name),
                "Wait until it returns; rebuild_balances for all tenants calls it off.",
            ),
        }
    }

    /// 55000 when another registration keeps its balances in this balance table too (0.1.0 allowed it;
    /// a restored 0.1.0 dump brings it back): rebuilding, reconciling or re-spreading either would treat
    /// the other's rows as its own.
    pub fn refuse_shared(&self) {
        refuse_shared(self.balance_oid, &self.balance_name, self.ledger);
    }

    /// The relation locks a reconcile of this ledger takes (reading the ledger, correcting balances),
    /// waited for at most `inventory.maintenance_lock_timeout`: the name of the table that stayed locked.
    pub fn try_lock_for_reconcile(&self) -> Option<&str> {
        if !maintenance::try_lock_relation(self.ledger, pg_sys::AccessShareLock) {
            return Some(&self.ledger_name);
        }
        if !maintenance::try_lock_relation(self.balance_oid, pg_sys::RowExclusiveLock) {
            return Some(&self.balance_name);
        }
        None
    }
}

/// The tracked ledgers (all of them, or one), in OID order so that every caller locks them in the same order.
pub fn registered(only: Option<pg_sys::Oid>) -> Vec<Registered> {
    rows(
        "SELECT ledger::oid, ledger::text, balance_table::oid, balance_table::text, key_columns::text[],
                qty_column::text, id_column::text, org_column::text, negative_rule, slots
           FROM inventory.tracked_ledgers WHERE $1::oid IS NULL OR ledger = $1::oid ORDER BY ledger::oid",
        &[only.into()],
        |r| {
            Ok(Registered {
                ledger: r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                ledger_name: text(r, 2)?,
                balance_oid: r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
                balance_name: text(r, 4)?,
                keys: r.get::<Vec<String>>(5)?.unwrap_or_default(),
                qty: text(r, 6)?,
                id: r.get::<String>(7)?,
                org: r.get::<String>(8)?,
                rule: r.get::<String>(9)?,
                slots: r.get::<i32>(10)?.unwrap_or(1),
            })
        },
    )
}

/// 22023: the ledger is not in `inventory.tracked_ledgers`.
pub fn not_tracked() -> ! {
    errors::invalid_argument("this table's balances are not tracked", "Track it first with inventory.track_balances(…).")
}

fn rebuild(ledger: pg_sys::Oid, org_id: Option<pgrx::Uuid>) -> i64 {
    let Some(registered) = registered(Some(ledger)).pop() else { not_tracked() };
    if org_id.is_some() && registered.org.is_none() {
        errors::invalid_argument(
            format!("{} is not tenant-scoped, so its balances cannot be rebuilt per organization", registered.ledger_name),
            "Call it without org_id.",
        )
    }
    maintenance::with_bounded_waits(|| {
        let upkeep = registered.lock_for_rewrite();
        registered.settle_pending_fill(if org_id.is_some() { PendingFill::Refuse } else { PendingFill::Supersede });
        trust::run(upkeep, || rewrite_balances(&registered, org_id))
    })
}

/// Rewrites the balances of one tenant (or all, `None`) from the ledger. Inside `trust::run`.
fn rewrite_balances(registered: &Registered, org_id: Option<pgrx::Uuid>) -> i64 {
    let Registered { ledger_name, balance_name, keys, qty, id, org, .. } = registered;
    let key_list = ident_list("", keys);
    let (filter, args): (String, Vec<pgrx::datum::DatumWithOid>) = match (org_id, org) {
        (Some(o), Some(col)) => (format!("WHERE {} = $1", ident(col)), vec![o.into()]),
        _ => ("".into(), vec![]),
    };
    exec_with_args(&format!("DELETE FROM {balance_name} {filter}"), &args);
    let (id_col, id_val) = match &id {
        Some(id) => (", last_ledger_id", format!(", max({})::bigint", ident(id))),
        None => ("", String::new()),
    };
    first::<i64>(
        &format!(
            "WITH written AS (
                INSERT INTO {balance_name} ({key_list}, qty{id_col}, updated_at)
                SELECT {key_list}, sum({q}){id_val}, now() FROM {ledger_name} {filter}
                 GROUP BY {key_list} ORDER BY {key_list}
                RETURNING 1)
             SELECT count(*) FROM written",
            q = ident(qty)
        ),
        &args,
    )
    .unwrap_or_default()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use crate::test_support::sqlstate_of;

    #[pg_test]
    fn a_tracked_camel_case_ledger_stays_exact() {
        Spi::run(
            "CREATE TABLE t_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \"itemId\" text NOT NULL,
                                    \"lotId\" text, \"qtyCanonical\" numeric(65, 30) NOT NULL);
             INSERT INTO t_ledger (\"itemId\", \"lotId\", \"qtyCanonical\") VALUES ('a', NULL, 2), ('a', NULL, 3), ('b', 'x', 1);
             SELECT inventory.track_balances('t_ledger', 't_balance', ARRAY['itemId', 'lotId'], 'qtyCanonical');
             INSERT INTO t_ledger (\"itemId\", \"lotId\", \"qtyCanonical\") SELECT 'a', NULL, 1 FROM generate_series(1, 100);",
        )
        .unwrap();
        let a = Spi::get_one::<pgrx::AnyNumeric>("SELECT qty FROM t_balance WHERE \"itemId\" = 'a' AND \"lotId\" IS NULL")
            .unwrap()
            .unwrap();
        assert_eq!(a.to_string().trim_end_matches('0').trim_end_matches('.'), "105");
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM t_balance").unwrap();
        assert_eq!(rows, Some(2));
        assert_eq!(sqlstate_of("INSERT INTO t_ledger (\"itemId\", \"qtyCanonical\") VALUES ('a', 0)"), "22023");
        assert_eq!(sqlstate_of("DELETE FROM t_ledger"), "55000");
    }
}
