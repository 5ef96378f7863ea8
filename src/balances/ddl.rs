//! DDL on tracked ledgers and their balance tables (SPEC §6: "after any ALTER TABLE … balances stay
//! exact or the DDL is refused with a clear error").
//!
//! An event trigger at the end of every DDL command checks the registrations of the tables the command
//! touched — the relations whose relcache entries it invalidated, whatever the command's form (ALTER
//! TABLE, ALTER VIEW … RENAME COLUMN on a table, DROP TYPE … CASCADE, DROP SCHEMA) — with the same check
//! the triggers' plans are made with (`plans::check`), and refuses the statement (its transaction rolls
//! back) when one no longer holds. Unrelated DDL costs a look at an empty list, and a registration
//! broken some other way never blocks DDL on other tables.
//! - a key, quantity or id column renamed or dropped, or retyped so that the two tables disagree
//!   (55000). A column's type may change only for the ledger's quantity, to unconstrained `numeric`
//!   and without `USING` (lossless); any other type change of a registered column would rewrite the
//!   ledger's history or the balances behind the append-only guard, and is refused;
//! - either table made a partition, a partitioned table's parent, or put in an inheritance tree (0A000:
//!   rows inserted through a parent or into a child would bypass the balances);
//! - a balance or append-only trigger dropped or renamed, one balance trigger disabled without the
//!   other, or a guard disabled while the balance triggers run (55000). Disabling both balance triggers
//!   together (or all triggers) suspends the upkeep, as `session_replication_role = replica` does and as
//!   `pg_restore --disable-triggers` needs; `rebuild_balances` repairs afterwards. Triggers are checked
//!   after DROP TRIGGER, ALTER TRIGGER, CREATE TRIGGER and ALTER TABLE … ENABLE/DISABLE TRIGGER; the
//!   last two accept a set that is not complete or settled yet (pg_restore creates the triggers one by
//!   one, and disables a suspended ledger's as it goes) but never one of the extension's names on
//!   another function (CREATE OR REPLACE TRIGGER); the triggers' own plans refuse postings while the
//!   set is incomplete.
//! A dropped ledger's registration goes with it; a dropped balance table of a ledger still tracked is
//! refused. The extension's own DDL (track_balances, untrack_balances) is not checked half-way.

use super::plans;
use super::registered;
use crate::spi_util::{exec_with_args, one_text};
use crate::trust;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

thread_local! {
    /// Set while the extension's own functions change a ledger's triggers or tables.
    static OWN_DDL: Cell<u32> = const { Cell::new(0) };
    /// Relations invalidated since the last check (`InvalidOid`: too many to list, check them all).
    static TOUCHED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
}

/// Called by the relcache invalidation callback (`plans::relation_changed`) for every relation.
pub fn relation_touched(relid: pg_sys::Oid) {
    TOUCHED.with(|list| {
        let mut list = list.borrow_mut();
        if list.len() >= 256 {
            list.clear();
            list.push(pg_sys::InvalidOid);
        } else if list.first() != Some(&pg_sys::InvalidOid) && !list.contains(&relid) {
            list.push(relid);
        }
    });
}

/// At the end of a transaction: what it touched has been checked, or rolled back.
pub fn forget_touched() {
    TOUCHED.with(|t| t.borrow_mut().clear());
}

/// Runs `work` (the extension's own DDL on tracked tables) without the end-of-command check.
pub fn own_ddl<T>(work: impl FnOnce() -> T) -> T {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            OWN_DDL.with(|d| d.set(d.get().saturating_sub(1)));
            TOUCHED.with(|t| t.borrow_mut().clear());
        }
    }
    OWN_DDL.with(|d| d.set(d.get() + 1));
    let done = Done;
    let result = work();
    drop(done);
    result
}

/// What the command's parse tree says, for the checks the catalog alone cannot make.
#[derive(Default)]
struct Command {
    /// DROP TRIGGER, ALTER TRIGGER, or ALTER TABLE … ENABLE/DISABLE TRIGGER.
    changes_triggers: bool,
    /// Only ALTER TABLE … ENABLE/DISABLE TRIGGER (what pg_restore runs after making a disabled trigger).
    only_toggles_triggers: bool,
    /// CREATE TRIGGER (or CREATE OR REPLACE, which can give one of the extension's names another function).
    creates_trigger: bool,
    /// ALTER … ALTER COLUMN … TYPE: the table, the column, and whether it has USING.
    retyped: Vec<(pg_sys::Oid, String, bool)>,
}

/// # Safety
/// `parsetree` is the node of the command the event trigger fires for.
unsafe fn read_command(tag: &str, parsetree: *mut pg_sys::Node) -> Command {
    let mut command = Command {
        changes_triggers: matches!(tag, "DROP TRIGGER" | "ALTER TRIGGER" | "CREATE TRIGGER"),
        creates_trigger: tag == "CREATE TRIGGER",
        ..Command::default()
    };
    unsafe {
        if parsetree.is_null() || (*parsetree).type_ != pg_sys::NodeTag::T_AlterTableStmt {
            return command;
        }
        let stmt = &*(parsetree as *mut pg_sys::AlterTableStmt);
        let table = if stmt.relation.is_null() {
            pg_sys::InvalidOid
        } else {
            pg_sys::RangeVarGetRelidExtended(stmt.relation, pg_sys::NoLock as i32, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut())
        };
        for cmd in pgrx::PgList::<pg_sys::Node>::from_pg(stmt.cmds).iter_ptr() {
            if cmd.is_null() || (*cmd).type_ != pg_sys::NodeTag::T_AlterTableCmd {
                continue;
            }
            let cmd = &*(cmd as *mut pg_sys::AlterTableCmd);
            match cmd.subtype {
                pg_sys::AlterTableType::AT_EnableTrig..=pg_sys::AlterTableType::AT_DisableTrigUser => {
                    command.only_toggles_triggers = !command.changes_triggers || command.only_toggles_triggers;
                    command.changes_triggers = true;
                }
                pg_sys::AlterTableType::AT_AlterColumnType if !cmd.name.is_null() => {
                    let column = std::ffi::CStr::from_ptr(cmd.name).to_string_lossy().into_owned();
                    let def = cmd.def as *mut pg_sys::ColumnDef;
                    let using = !def.is_null() && !(*def).raw_default.is_null();
                    command.retyped.push((table, column, using));
                }
                _ => {}
            }
        }
    }
    command
}

/// Checks the registrations of the relations the command touched.
fn check_after(command: Command) {
    let touched: Vec<pg_sys::Oid> = TOUCHED.with(|t| std::mem::take(&mut *t.borrow_mut()));
    // A Citus worker carries out what its coordinator decided (and checked there): track_balances'
    // and untrack_balances' own trigger changes arrive one by one, each of which alone would fail here
    // (`from_coordinator`: only on a worker, in a session Citus opened).
    if OWN_DDL.with(Cell::get) > 0 || touched.is_empty() || crate::citus::from_coordinator() {
        return;
    }
    let all = touched.first() == Some(&pg_sys::InvalidOid);
    let extension_owner = trust::extension_owner();
    trust::run_pinned(trust::Upkeep::Definer, extension_owner, || {
        for r in registered(None) {
            if !all && !touched.contains(&r.ledger) && !touched.contains(&r.balance_oid) {
                continue;
            }
            let exists = |oid: pg_sys::Oid| {
                one_text("SELECT 'yes' FROM pg_catalog.pg_class WHERE oid = $1", &[oid.into()]).is_some()
            };
            if !exists(r.ledger) {
                // The ledger is gone (its triggers with it): so is its registration.
                exec_with_args("DELETE FROM inventory.tracked_ledgers WHERE ledger = $1::oid", &[r.ledger.into()]);
                continue;
            }
            if !exists(r.balance_oid) {
                plans::mismatch(format!(
                    "the balance table (OID {}) of tracked ledger {} cannot be dropped while the ledger is tracked",
                    u32::from(r.balance_oid),
                    r.ledger_name
                ))
            }
            let triggers = if !command.changes_triggers {
                plans::Triggers::Skip
            } else if command.creates_trigger {
                plans::Triggers::Created
            } else if command.only_toggles_triggers {
                plans::Triggers::AllowIncomplete
            } else {
                plans::Triggers::AllowSuspended
            };
            // A ledger without this version's row trigger keeps no balances that DDL could make drift:
            // pg_restore makes its triggers last, and an older version's trigger awaits
            // update_balance_triggers (which checks everything); postings are refused meanwhile. Only
            // its triggers are looked at, when a command makes or toggles one; a command that removes
            // one is checked in full.
            if triggers != plans::Triggers::AllowSuspended && !has_row_trigger(r.ledger) {
                if triggers != plans::Triggers::Skip {
                    plans::check_trigger_set(&r, triggers);
                }
                continue;
            }
            trust::refuse_unless_plain_table(r.ledger);
            trust::refuse_unless_plain_table(r.balance_oid);
            for (table, column, using) in &command.retyped {
                refuse_retype(&r, *table, column, *using);
            }
            plans::check(&r, triggers);
        }
    });
}

/// Whether the ledger has this version's balance row trigger (under any name, enabled or not).
fn has_row_trigger(ledger: pg_sys::Oid) -> bool {
    one_text(
        "SELECT 'yes' FROM pg_catalog.pg_trigger WHERE tgrelid = $1
            AND tgfoid = 'inventory.balance_rows()'::pg_catalog.regprocedure LIMIT 1",
        &[ledger.into()],
    )
    .is_some()
}

/// A registered column's type may change only for the ledger's quantity, to unconstrained numeric,
/// without USING: every value keeps its meaning, so the history and the balances stay what they were.
fn refuse_retype(r: &super::Registered, table: pg_sys::Oid, column: &str, using: bool) {
    let (registered, what) = if table == r.ledger {
        let mut columns = r.keys.clone();
        columns.push(r.qty.clone());
        columns.extend(r.id.clone());
        (columns, &r.ledger_name)
    } else if table == r.balance_oid {
        let mut columns = r.keys.clone();
        columns.extend(["qty".to_string(), "last_ledger_id".to_string()]);
        if r.slots > 1 {
            columns.push("slot".into());
        }
        (columns, &r.balance_name)
    } else {
        return;
    };
    if !registered.iter().any(|c| c == column) {
        return;
    }
    if table == r.ledger && column == r.qty && !using {
        let now = one_text(
            "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2",
            &[table.into(), column.into()],
        );
        if now.as_deref() == Some("numeric") {
            return;
        }
    }
    plans::mismatch(format!(
        "column {} of {what} is registered for its balances: its type cannot change{}",
        crate::sql_text::ident(column),
        if table == r.ledger && column == r.qty { " except to unconstrained numeric without USING" } else { "" }
    ))
}

fn on_ddl_command_end(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let data = crate::event_trigger_data(fcinfo, "inventory.on_ddl_command_end()");
    // SAFETY: the command tag's name is a static string; the parse tree is the command's.
    let command = unsafe {
        let tag = std::ffi::CStr::from_ptr(pg_sys::GetCommandTagName(data.tag)).to_string_lossy().into_owned();
        read_command(&tag, data.parsetree)
    };
    check_after(command);
    pg_sys::Datum::from(0)
}

/// At the start of every DDL command: what the end-of-command check looks at is what this command touches.
fn on_ddl_begin(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    crate::event_trigger_data(fcinfo, "inventory.on_ddl_begin()");
    forget_touched();
    pg_sys::Datum::from(0)
}

crate::v1_function!(on_ddl_command_end_entry, pg_finfo_on_ddl_command_end_entry, on_ddl_command_end);
crate::v1_function!(on_ddl_begin_entry, pg_finfo_on_ddl_begin_entry, on_ddl_begin);

pgrx::extension_sql!(
    r#"
-- The DDL check on tracked ledgers (src/balances/ddl.rs); the event trigger is in sql/finalize.sql.
CREATE FUNCTION inventory.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_command_end_entry';
CREATE FUNCTION inventory.on_ddl_begin() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_begin_entry';
"#,
    name = "ddl_check_function",
);
