//! DDL on tracked ledgers and their balance tables (SPEC §6: "after any ALTER TABLE … balances stay
//! exact or the DDL is refused with a clear error").
//!
//! An event trigger at the end of every ALTER TABLE, CREATE TABLE, DROP TABLE, DROP SCHEMA, ALTER
//! TRIGGER and DROP TRIGGER checks every registration against the catalog with the same check the
//! triggers' plans are made with (`plans::check`), and refuses the statement (its transaction rolls
//! back) when one no longer holds:
//! - a key, quantity or id column renamed or dropped, or retyped so that the two tables disagree
//!   (55000; what stays consistent — a qty widened from integer to numeric, a column added — passes,
//!   and the kept plans are made again on the next posting);
//! - either table made a partition, a partitioned table's parent, or put in an inheritance tree (0A000:
//!   rows inserted through a parent or into a child would bypass the balances);
//! - a balance trigger dropped, renamed or disabled (55000). Triggers are checked only when at least one
//!   of the two is there, so that pg_restore, which creates an application ledger's triggers after its
//!   constraints, is never refused half-way; the triggers' own plans refuse postings while only one is.
//! A dropped ledger's registration goes with it; a dropped balance table of a ledger still tracked is
//! refused. The extension's own DDL (track_balances, untrack_balances) is not checked half-way.

use super::plans::{self, ROW_TRIGGER, FLUSH_TRIGGER};
use super::registered;
use crate::errors;
use crate::spi_util::{exec_with_args, one_text};
use crate::trust;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Set while the extension's own functions change a ledger's triggers or tables.
    static OWN_DDL: Cell<u32> = const { Cell::new(0) };
}

/// Runs `work` (the extension's own DDL on tracked tables) without the end-of-command check.
pub fn own_ddl<T>(work: impl FnOnce() -> T) -> T {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            OWN_DDL.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    OWN_DDL.with(|d| d.set(d.get() + 1));
    let done = Done;
    let result = work();
    drop(done);
    result
}

/// Checks every registration after a DDL command (`tag`: its command tag).
fn check_after(tag: &str) {
    if OWN_DDL.with(Cell::get) > 0 {
        return;
    }
    let extension_owner = trust::extension_owner();
    trust::run_pinned(trust::Upkeep::Definer, extension_owner, || {
        for r in registered(None) {
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
            refuse_inheritance(&r.ledger_name, r.ledger);
            refuse_inheritance(&r.balance_name, r.balance_oid);
            let ours = one_text(
                "SELECT count(*)::text FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname IN ($2, $3)",
                &[r.ledger.into(), ROW_TRIGGER.into(), FLUSH_TRIGGER.into()],
            );
            let triggers_there = ours.as_deref() != Some("0") || tag == "DROP TRIGGER";
            plans::check(&r, triggers_there);
        }
    });
}

/// 0A000 when `table` is partitioned, a partition, or in an inheritance tree.
pub fn refuse_inheritance(name: &str, table: pg_sys::Oid) {
    let what = one_text(
        "SELECT CASE WHEN c.relkind = 'p' THEN 'a partitioned table'
                     WHEN c.relispartition THEN 'a partition'
                     WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) THEN 'an inheritance child'
                     WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) THEN 'an inheritance parent'
                END
           FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[table.into()],
    );
    if let Some(what) = what {
        errors::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} would become {what}: the balances of a tracked ledger cannot follow partitions or inheritance"),
            "Rows inserted through a parent or into a child would bypass the balances. Partitioned ledgers cannot be \
             tracked yet: inventory.untrack_balances first if the table must be partitioned.",
        )
    }
}

fn on_ddl_command_end(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: PostgreSQL passes a valid fcinfo; its context is EventTriggerData when called as an event trigger.
    let tag = unsafe {
        let context = fcinfo.as_ref().map(|f| f.context).unwrap_or(std::ptr::null_mut());
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
            errors::raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "inventory.on_ddl_command_end() can only be called as an event trigger",
                "CREATE EXTENSION installs it; there is nothing to call.",
            )
        }
        let tag = (*(context as *mut pg_sys::EventTriggerData)).tag;
        std::ffi::CStr::from_ptr(pg_sys::GetCommandTagName(tag)).to_string_lossy().into_owned()
    };
    check_after(&tag);
    pg_sys::Datum::from(0)
}

crate::v1_function!(on_ddl_command_end_entry, pg_finfo_on_ddl_command_end_entry, on_ddl_command_end);

pgrx::extension_sql!(
    r#"
-- The DDL check on tracked ledgers (src/balances/ddl.rs); the event trigger is in sql/finalize.sql.
CREATE FUNCTION inventory.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_command_end_entry';
"#,
    name = "ddl_check_function",
);
