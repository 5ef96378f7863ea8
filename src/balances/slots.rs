//! `inventory.set_balance_slots` (SPEC §6, hot keys): how many rows per key a ledger's balance table may
//! hold, and the view beside it that sums them. How postings use the slots is `spread`'s.
//!
//! Changing the count is a list of named steps planned from the two counts (`steps`, plain data), then
//! applied with the ledger locked against postings as `rebuild_balances` locks it:
//! - 1 → more: a `slot integer NOT NULL DEFAULT 0` column joins the balance table's unique key (every
//!   existing row is slot 0, so nothing moves);
//! - more → fewer: every key's rows are folded into slot 0 first (exact: one sum per key);
//! - more → 1: then the slot column goes and the key is the ledger's keys again, as SPEC §5 describes.
//! The view (`inventory.stock` for the built-in ledger, else `<balance table>_totals` beside the
//! balance table) sums a key's slots; it is `security_invoker`, so the balance table's row-level
//! security applies to its readers.

use super::{not_tracked, registered, Registered};
use crate::errors;
use crate::maintenance;
use crate::spi_util::{exec, exec_with_args, one_text, rows, text};
use crate::sql_text::{ident, ident_list};
use crate::sql_types::RegClass;
use crate::trust;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

/// The most slots a key may use: enough for the writers two to a few dozen cores run at once, few
/// enough that a gather (which locks them all) stays short.
pub const MAX_SLOTS: i32 = 64;
/// The view beside the built-in balance table.
const BUILTIN_VIEW: &str = "inventory.stock";

/// One step of a change of slot count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `slot integer NOT NULL DEFAULT 0`.
    AddSlotColumn,
    /// The unique key becomes (keys…, slot).
    KeyWithSlot,
    /// Every key's rows summed into slot 0.
    FoldIntoSlotZero,
    /// The unique key becomes (keys…) again.
    KeyWithoutSlot,
    DropSlotColumn,
    /// The view that sums slots, when it is not there.
    CreateView,
    /// The new count in `inventory.tracked_ledgers`.
    Record,
}

/// The steps from `from` slots to `to` (both 1…MAX_SLOTS).
pub fn steps(from: i32, to: i32) -> Vec<Step> {
    use Step::*;
    let mut steps = Vec::new();
    if from == 1 && to > 1 {
        steps.extend([AddSlotColumn, KeyWithSlot]);
    }
    if from > 1 && to < from {
        steps.push(FoldIntoSlotZero);
    }
    if from > 1 && to == 1 {
        steps.extend([KeyWithoutSlot, DropSlotColumn]);
    }
    steps.extend([CreateView, Record]);
    steps
}

/// Whether the balance table has the slot column (`integer NOT NULL`) slotted postings write.
pub fn has_slot_column(balance: pg_sys::Oid) -> bool {
    one_text(
        "SELECT 'yes' FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = 'slot' AND NOT attisdropped
            AND atttypid = 'pg_catalog.int4'::pg_catalog.regtype AND attnotnull",
        &[balance.into()],
    )
    .is_some()
}

/// Sets how many rows per key the ledger's balance table may hold (1: one row per key, the default).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn set_balance_slots(ledger: Option<RegClass>, slots: Option<i32>) {
    let (Some(RegClass(ledger)), Some(slots)) = (ledger, slots) else {
        errors::invalid_argument("set_balance_slots needs a ledger and a slot count", "e.g. inventory.set_balance_slots('inventory.ledger', 8)")
    };
    if !(1..=MAX_SLOTS).contains(&slots) {
        errors::invalid_argument(
            format!("slots must be between 1 and {MAX_SLOTS}, not {slots}"),
            "1 keeps one balance row per key; about twice the writers that post to one key at once is enough.",
        )
    }
    let Some(r) = registered(Some(ledger)).pop() else { not_tracked() };
    if crate::citus::is_distributed(ledger) {
        // Postings spread over slots on the shards, but reconcile's fold of a spread key (a CTE that
        // deletes and updates by ctid, rows named by their text form) is refused by Citus's planner.
        errors::raise(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "set_balance_slots is not supported on Citus",
            "On Citus a contended key's postings queue on its tenant's shard; keep one balance row per key (docs/SCALE_OUT.md).",
        )
    }
    maintenance::with_bounded_waits(|| {
        let upkeep = r.lock_for_rewrite();
        r.settle_pending_fill(super::PendingFill::Refuse);
        super::ddl::own_ddl(|| {
            for step in steps(r.slots, slots) {
                apply(&r, step, slots, upkeep);
            }
        });
        // Every session's plans of this ledger are made again (also when no DDL changed the table).
        // SAFETY: queues a relcache invalidation, sent at commit.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(r.balance_oid) };
        super::plans::check(&Registered { slots, ..r.clone() }, super::plans::Triggers::Required);
    });
}

fn apply(r: &Registered, step: Step, slots: i32, upkeep: trust::Upkeep) {
    let balance = &r.balance_name;
    let keys = ident_list("", &r.keys);
    match step {
        Step::AddSlotColumn => exec(&format!("ALTER TABLE {balance} ADD COLUMN slot integer NOT NULL DEFAULT 0")),
        Step::KeyWithSlot => {
            drop_unique_keys(r, &r.keys);
            exec(&format!("ALTER TABLE {balance} ADD UNIQUE NULLS NOT DISTINCT ({keys}, slot)"));
        }
        Step::FoldIntoSlotZero => trust::run(upkeep, || exec(&fold_sql(r))),
        Step::KeyWithoutSlot => {
            let mut with_slot = r.keys.clone();
            with_slot.push("slot".into());
            drop_unique_keys(r, &with_slot);
            exec(&format!("ALTER TABLE {balance} ADD UNIQUE NULLS NOT DISTINCT ({keys})"));
        }
        Step::DropSlotColumn => exec(&format!("ALTER TABLE {balance} DROP COLUMN slot")),
        Step::CreateView => create_view(r),
        Step::Record => exec_with_args(
            "UPDATE inventory.tracked_ledgers SET slots = $2 WHERE ledger = $1::oid::regclass",
            &[r.ledger.into(), slots.into()],
        ),
    }
}

/// Folds every key's slots into slot 0, in one statement (exact: one sum per key).
pub fn fold_sql(r: &Registered) -> String {
    let balance = &r.balance_name;
    let keys = ident_list("", &r.keys);
    let (id_col, id_agg, id_set) = match r.id {
        Some(_) => (
            ", last_ledger_id",
            ", max(last_ledger_id) AS last_ledger_id",
            ", last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id)",
        ),
        None => ("", "", ""),
    };
    format!(
        "WITH gone AS (DELETE FROM {balance} WHERE slot <> 0 RETURNING {keys}, qty{id_col}),
              folded AS (SELECT {keys}, sum(qty) AS qty{id_agg} FROM gone GROUP BY {keys})
         INSERT INTO {balance} AS b ({keys}, slot, qty{id_col}, updated_at)
         SELECT {keys}, 0, qty{id_col}, now() FROM folded ORDER BY {keys}
         ON CONFLICT ({keys}, slot) DO UPDATE SET qty = b.qty + excluded.qty{id_set}, updated_at = excluded.updated_at"
    )
}

/// Drops the unique constraints and indexes on exactly `columns` (in any order) of the balance table.
fn drop_unique_keys(r: &Registered, columns: &[String]) {
    let found = rows(
        "SELECT c.conname::text, i.indexrelid::regclass::text
           FROM pg_catalog.pg_index i
           LEFT JOIN pg_catalog.pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
          WHERE i.indrelid = $1 AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL
            AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[]))
                = (SELECT array_agg(x ORDER BY x) FROM unnest($2::text[]) AS x)",
        &[r.balance_oid.into(), columns.to_vec().into()],
        |row| Ok((row.get::<String>(1)?, text(row, 2)?)),
    );
    for (constraint, index) in found {
        match constraint {
            Some(name) => exec(&format!("ALTER TABLE {} DROP CONSTRAINT {}", r.balance_name, ident(name))),
            None => exec(&format!("DROP INDEX {index}")),
        }
    }
}

/// The name of the view beside a balance table: `inventory.stock` for the built-in one, else the
/// balance table's name and `_totals`, the name cut (at a character boundary) to keep within
/// PostgreSQL's 63 bytes.
fn view_name(r: &Registered) -> String {
    if r.ledger_name == super::BUILTIN_LEDGER {
        return BUILTIN_VIEW.into();
    }
    let found = rows(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[r.balance_oid.into()],
        |row| Ok((text(row, 1)?, text(row, 2)?)),
    );
    let Some((schema, table)) = found.into_iter().next() else { return String::new() };
    format!("{}.{}", ident(schema), ident(totals_name(&table)))
}

/// `<table>_totals` within 63 bytes.
pub fn totals_name(table: &str) -> String {
    const SUFFIX: &str = "_totals";
    let mut end = table.len().min(63 - SUFFIX.len());
    while !table.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{SUFFIX}", &table[..end])
}

/// The view that sums a key's slots, made when it is not there yet (a view of that name is kept; any
/// other relation of that name is 42P07). It belongs to the balance table's owner, and every role that
/// may read the balance table may read it.
fn create_view(r: &Registered) {
    let view = view_name(r);
    match one_text("SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)", &[view.as_str().into()]) {
        Some(kind) if kind == "v" => return,
        Some(_) => errors::raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
            format!("{view} exists and is not a view: the view that sums {}'s slots cannot be made", r.balance_name),
            "Rename it; inventory.set_balance_slots then makes the view.",
        ),
        None => {}
    }
    let keys = ident_list("", &r.keys);
    let id = if r.id.is_some() { ", max(last_ledger_id) AS last_ledger_id" } else { "" };
    exec(&format!(
        "CREATE VIEW {view} WITH (security_invoker = true) AS
         SELECT {keys}, sum(qty) AS qty{id}, max(updated_at) AS updated_at FROM {} GROUP BY {keys}",
        r.balance_name
    ));
    super::hand_over(&view, "VIEW", r.balance_oid, r.balance_oid);
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use Step::*;

    #[pg_test]
    fn the_view_name_keeps_within_63_bytes() {
        assert_eq!(totals_name("InventoryBalance"), "InventoryBalance_totals");
        let long = format!("{}x", "é".repeat(31)); // 63 bytes
        let name = totals_name(&long);
        assert!(name.len() <= 63 && name.ends_with("_totals") && name != long, "{name}");
        assert_eq!(name, format!("{}_totals", "é".repeat(28)));
    }

    #[pg_test]
    fn a_change_of_slot_count_is_planned_step_by_step() {
        assert_eq!(steps(1, 8), vec![AddSlotColumn, KeyWithSlot, CreateView, Record]);
        assert_eq!(steps(8, 4), vec![FoldIntoSlotZero, CreateView, Record]);
        assert_eq!(steps(4, 8), vec![CreateView, Record]);
        assert_eq!(steps(8, 1), vec![FoldIntoSlotZero, KeyWithoutSlot, DropSlotColumn, CreateView, Record]);
        assert_eq!(steps(1, 1), vec![CreateView, Record]);
    }
}
