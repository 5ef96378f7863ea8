//! `track_balances_online` (sql/ledger.sql drives it): tracking a ledger that is being written to without
//! holding its writers back while the balances are computed.
//!
//! `track_balances` fills the balances in its own transaction, under a lock that keeps postings out
//! until it commits: for a ledger of ten million rows, seconds. The online form splits that at one
//! instant, the snapshot S its transaction exports while it holds the ledger against writers (briefly):
//! - in that transaction: what `track_balances` sets up (balance table, triggers, registration), the
//!   balance rows emptied, S exported. No posting is in flight then (the lock waited for them), so every
//!   ledger row is either visible in S, or written after the transaction commits — by then the triggers
//!   are there, and they add it to its balance;
//! - a background worker (`crate::background`) imports S before that transaction ends, sums the ledger
//!   as it was in S (REPEATABLE READ: the long read, under no lock writers wait for), and adds the sums
//!   to the balance rows in a transaction of its own, as the trigger adds a posting (`+=` on conflict).
//! Every row is counted once: by the sums if S sees it, by a trigger if not. The registry names the
//! worker (`tracked_ledgers.fill_worker`) while it runs: reconcile leaves the ledger alone meanwhile,
//! and a later call or a full rebuild calls the fill off by naming another or none.
//!
//! While the worker runs, the balances hold only what was posted since: read them after the CALL.
//! Refused (0A000) where a negative-stock rule applies: a posting checked against a balance that lacks
//! the rows before S would be refused wrongly.

use super::{registered, Registered};
use crate::background::{self, Fill};
use crate::errors;
use crate::maintenance;
use crate::spi_util::{exec, exec_with_args, one_text};
use crate::sql_text::ident;
use crate::trust;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

/// The second half of `track`'s work for the online path, inside its transaction: the balances
/// emptied, S exported, the worker started and waited for until it has imported S. Returns the
/// request for `background_result`.
pub fn start(ledger: pg_sys::Oid) -> i64 {
    let Some(registered) = registered(Some(ledger)).pop() else { super::not_tracked() };
    if registered.rule.is_some() {
        refuse_rule(&registered.ledger_name);
    }
    if registered.slots > 1 {
        errors::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{} keeps its balances in {} slots: they cannot be filled online", registered.ledger_name, registered.slots),
            "Use inventory.rebuild_balances.",
        )
    }
    maintenance::with_bounded_waits(|| {
        let upkeep = registered.lock_for_rewrite();
        // A fill still under way from an earlier call is called off: its sums would count twice.
        registered.settle_pending_fill(super::PendingFill::Supersede);
        trust::run(upkeep, || exec(&format!("DELETE FROM {}", registered.balance_name)));
        // SAFETY: this transaction has an xid (it made the triggers).
        let exporter = unsafe { pg_sys::GetTopTransactionId() };
        let snapshot = one_text("SELECT pg_catalog.pg_export_snapshot()", &[]).unwrap_or_default();
        let (sums, merge) = statements(&registered);
        let request = background::start_fill(Fill { snapshot, ledger, exporter, sums, merge, upkeep });
        // The worker that fills, named in the registry as this transaction commits: the fill is pending
        // while that process runs, and its sums count only while the registry still names it.
        exec_with_args(
            "UPDATE inventory.tracked_ledgers SET fill_worker = $2 WHERE ledger = $1::oid::regclass",
            &[ledger.into(), background::worker_pid(request).into()],
        );
        request
    })
}

/// 0A000: a negative-stock rule would judge postings against balances that lack the rows before S.
pub fn refuse_rule(ledger_name: &str) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("{ledger_name} has a negative-stock rule: its balances cannot be filled online"),
        "While the online fill runs, a balance lacks the postings before it, so the rule would refuse postings \
         wrongly. Use inventory.track_balances (it holds writers back while it fills).",
    )
}

/// The worker's two statements: the sums per key as one row of arrays (keys, qty, last id), and the
/// upsert that adds them to the balance rows, its parameters those arrays.
fn statements(r: &Registered) -> (String, String) {
    let n = r.keys.len();
    let mut inner: Vec<String> = r.keys.iter().enumerate().map(|(i, k)| format!("{} AS c{i}", ident(k))).collect();
    inner.push(format!("sum({}) AS cq", ident(&r.qty)));
    let mut outer: Vec<String> = (0..n).map(|i| format!("array_agg(f.c{i})")).collect();
    outer.push("array_agg(f.cq)".into());
    if let Some(id) = &r.id {
        inner.push(format!("max({})::bigint AS ci", ident(id)));
        outer.push("array_agg(f.ci)".into());
    }
    let key_list = r.key_list("");
    let sums = format!(
        "SELECT {} FROM (SELECT {} FROM {} GROUP BY {key_list}) f",
        outer.join(", "),
        inner.join(", "),
        r.ledger_name
    );
    let params = (1..=outer.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let (id_col, id_set) = match &r.id {
        Some(_) => (", last_ledger_id", ", last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id)"),
        None => ("", ""),
    };
    let merge = format!(
        "INSERT INTO {} AS b ({key_list}, qty{id_col}, updated_at) SELECT u.*, now() FROM unnest({params}) AS u \
         ON CONFLICT ({key_list}) DO UPDATE SET qty = b.qty + excluded.qty{id_set}, updated_at = excluded.updated_at",
        r.balance_name
    );
    (sums, merge)
}

/// The worker's part (`background`): import S, sum under it, add the sums. `imported` lets the exporting
/// transaction end.
pub fn fill(fill: Fill, current_user: pg_sys::Oid, imported: impl FnOnce()) {
    let label = c"track_balances_online: the balances of the ledger as it was, added to the balance rows";
    // SAFETY: the worker's own transactions, begun and ended here; the arrays are copied into a context
    // that outlives the first.
    unsafe {
        background::begin_as_caller(current_user, label);
        pg_sys::XactIsoLevel = pg_sys::XACT_REPEATABLE_READ as i32;
        let snapshot = std::ffi::CString::new(fill.snapshot).unwrap_or_default();
        pg_sys::ImportSnapshot(snapshot.as_ptr());
        imported();
        let keep = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"inventory_ext balance fill".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let arrays = trust::run(fill.upkeep, || sums(&fill.sums, keep));
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
        pg_sys::StartTransactionCommand();
        // The sums are added once the exporting transaction has ended (it may have made the registry
        // row this reads, which a snapshot taken before its commit would not see), under the
        // maintenance lock (the registry row), and only while the registry still names this worker: a
        // later track_balances_online or a full rebuild_balances called it off, and a rollback never
        // named it.
        pg_sys::XactLockTableWait(fill.exporter, std::ptr::null_mut(), std::ptr::null_mut(), pg_sys::XLTW_Oper::XLTW_None);
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let still_ours = crate::spi_util::first::<i32>(
            "SELECT fill_worker FROM inventory.tracked_ledgers WHERE ledger = $1::oid::regclass FOR UPDATE",
            &[fill.ledger.into()],
        ) == Some(pg_sys::MyProcPid);
        pg_sys::PopActiveSnapshot();
        if !still_ours {
            errors::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the fill was called off before its sums were added (a later track_balances_online or rebuild_balances, \
                 or the set-up rolled back): nothing was added",
                "The balances are whatever the later call made; reconcile checks them.",
            );
        }
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        trust::run(fill.upkeep, || merge(&fill.merge, arrays));
        crate::spi_util::exec_with_args(
            "UPDATE inventory.tracked_ledgers SET fill_worker = NULL WHERE ledger = $1::oid::regclass",
            &[fill.ledger.into()],
        );
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
    }
}

/// The one row of arrays `sql` returns, each (type, value, null) with the value copied into `keep`.
unsafe fn sums(sql: &str, keep: pg_sys::MemoryContext) -> Vec<(pg_sys::Oid, pg_sys::Datum, bool)> {
    let sql = std::ffi::CString::new(sql).unwrap_or_default();
    // SAFETY: SPI inside the worker's transaction; the tuple is read before SPI_finish frees it.
    unsafe {
        pg_sys::SPI_connect();
        let rc = pg_sys::SPI_execute(sql.as_ptr(), true, 1);
        if rc != pg_sys::SPI_OK_SELECT as i32 || pg_sys::SPI_processed != 1 {
            errors::raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "the balance sums returned no row", "");
        }
        let table = &*pg_sys::SPI_tuptable;
        let tuple = *table.vals;
        let mut arrays = Vec::new();
        for column in 1..=(*table.tupdesc).natts {
            let typ = pg_sys::SPI_gettypeid(table.tupdesc, column);
            let mut null = false;
            let value = pg_sys::SPI_getbinval(tuple, table.tupdesc, column, &mut null);
            let value = match null {
                true => value,
                false => {
                    let previous = pg_sys::MemoryContextSwitchTo(keep);
                    // Arrays are varlenas: a detoasted copy.
                    let copied = pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(value.cast_mut_ptr()));
                    pg_sys::MemoryContextSwitchTo(previous);
                    copied
                }
            };
            arrays.push((typ, value, null));
        }
        pg_sys::SPI_finish();
        arrays
    }
}

/// Runs the upsert with the arrays as its parameters.
unsafe fn merge(sql: &str, arrays: Vec<(pg_sys::Oid, pg_sys::Datum, bool)>) {
    let sql = std::ffi::CString::new(sql).unwrap_or_default();
    let mut types: Vec<pg_sys::Oid> = arrays.iter().map(|a| a.0).collect();
    let mut values: Vec<pg_sys::Datum> = arrays.iter().map(|a| a.1).collect();
    let nulls: Vec<std::ffi::c_char> = arrays.iter().map(|a| if a.2 { b'n' as std::ffi::c_char } else { b' ' as std::ffi::c_char }).collect();
    // SAFETY: SPI inside the worker's transaction; the parameters live in the kept context.
    unsafe {
        pg_sys::SPI_connect();
        let rc = pg_sys::SPI_execute_with_args(
            sql.as_ptr(),
            types.len() as i32,
            types.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            false,
            0,
        );
        if rc != pg_sys::SPI_OK_INSERT as i32 {
            errors::raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "the balance upsert did not run", "");
        }
        pg_sys::SPI_finish();
    }
}
