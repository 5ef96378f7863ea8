//! Maintenance that no application can hold hostage (SPEC §7): reconcile and `rebuild_balances` wait
//! for other sessions' locks only up to `inventory.maintenance_lock_timeout`.
//!
//! Application roles may call `reconcile_run` for their tenant, which takes the same advisory lock as
//! a scheduled run and `rebuild_balances`; and any writer of a ledger holds locks that a rebuild (SHARE
//! on the ledger) or a correction (the balance row) needs. An application that keeps its transaction
//! open would make those wait for as long as it likes. So maintenance:
//! - takes its advisory lock by polling `pg_try_advisory_xact_lock` until the timeout, and reports
//!   "could not start" to its caller (a reconcile records a skipped run and notifies; a rebuild fails
//!   with 55P03);
//! - runs with `lock_timeout` set to the same bound, so every other lock it waits for fails with 55P03
//!   after it, instead of hanging.

use crate::guc;
use pgrx::prelude::*;
use std::ffi::CString;
use std::time::{Duration, Instant};

/// The advisory lock key of a balance table's maintenance ("inv" and the table's OID).
pub fn lock_key(balance: pg_sys::Oid) -> i64 {
    (0x696e76_i64 << 32) | i64::from(u32::from(balance))
}

/// Takes a transaction-level advisory lock, waiting at most `inventory.maintenance_lock_timeout`.
/// False when another session held it all that time.
pub fn try_lock(key: i64) -> bool {
    let bound = Duration::from_millis(guc::maintenance_lock_timeout_ms() as u64);
    let started = Instant::now();
    let mut pause = 0.002_f64;
    loop {
        let locked = Spi::get_one_with_args::<bool>("SELECT pg_catalog.pg_try_advisory_xact_lock($1)", &[key.into()])
            .ok()
            .flatten()
            == Some(true);
        if locked {
            return true;
        }
        if started.elapsed() >= bound {
            return false;
        }
        // pg_sleep answers a cancel request (statement_timeout, pg_cancel_backend) between tries.
        crate::spi_util::exec_with_args("SELECT pg_catalog.pg_sleep($1)", &[pause.into()]);
        pause = (pause * 2.0).min(0.1);
    }
}

/// Runs `work` with `lock_timeout` at `inventory.maintenance_lock_timeout` (unless the session's own
/// lock_timeout is already shorter), restored afterwards.
pub fn with_bounded_waits<T>(work: impl FnOnce() -> T) -> T {
    let bound = guc::maintenance_lock_timeout_ms();
    // SAFETY: reads a backend global.
    let current = unsafe { pg_sys::LockTimeout };
    if current > 0 && current <= bound {
        return work();
    }
    let value = CString::new(format!("{bound}ms")).unwrap_or_default();
    // SAFETY: a nested GUC level, undone below (and by the transaction's abort on error).
    let nest_level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"lock_timeout".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        level
    };
    let result = work();
    // SAFETY: as above.
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}
