//! Maintenance that no application can hold hostage (SPEC §7): reconcile and `rebuild_balances` wait
//! for other sessions' locks only up to `inventory.maintenance_lock_timeout`.
//!
//! Application roles may call `reconcile_run` for their tenant, which takes the same lock as a
//! scheduled run and `rebuild_balances`; and any writer of a ledger holds locks that a rebuild (SHARE
//! on the ledger) or a correction (the balance row) needs. An application that keeps its transaction
//! open would make those wait for as long as it likes. So maintenance:
//! - takes its lock (the ledger's row of `inventory.tracked_ledgers`, which no role can lock but
//!   through the extension's own maintenance functions) and, for a reconcile, the relation locks it
//!   needs, by polling until the timeout, and reports "could not start" to its caller (a reconcile
//!   skips that ledger, says why in the run and notifies; a rebuild fails with 55P03);
//! - runs with `lock_timeout` set to the same bound, so every other lock it waits for fails with 55P03
//!   after it, instead of hanging.

use crate::guc;
use crate::spi_util::{exec_with_args, first};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::ffi::CString;
use std::time::{Duration, Instant};

/// Takes the maintenance lock of one tracked ledger: its row of `inventory.tracked_ledgers`, locked FOR
/// UPDATE until the end of the transaction. No role can lock that row but through these functions (an
/// application role may not even read the registry), unlike an advisory lock, whose key anyone could
/// compute and hold; an application's own reconcile_run holds it as long as its transaction, for at
/// most the bound at the expense of anyone else. Polls with SKIP
/// LOCKED, waiting at most `inventory.maintenance_lock_timeout`; false when another session held it all
/// that time (or the ledger is no longer registered).
pub fn try_lock(ledger: pg_sys::Oid) -> bool {
    poll(|| {
        first::<bool>(
            "SELECT true FROM inventory.tracked_ledgers WHERE ledger = $1::oid::regclass FOR UPDATE SKIP LOCKED",
            &[ledger.into()],
        )
        .is_some()
    })
}

/// Takes a relation lock (`pg_sys::AccessShareLock`, …), waiting at most the same bound; false when
/// another session's lock (an application's `LOCK TABLE`, a long DDL) kept it all that time.
pub fn try_lock_relation(relation: pg_sys::Oid, mode: u32) -> bool {
    // SAFETY: a conditional lock on an OID; held until the end of the transaction.
    poll(|| unsafe { pg_sys::ConditionalLockRelationOid(relation, mode as pg_sys::LOCKMODE) })
}

/// Takes a relation lock for a step that must not hold the application back: it tries the lock without
/// queueing for a moment (a queued request makes every later writer wait behind it), then queues for at
/// most `wait_ms` and, if it did not get it, gives way (the request withdrawn, in a subtransaction rolled
/// back) and starts over, for up to `rounds` rounds. False when it never got it.
pub fn lock_giving_way(relation: pg_sys::Oid, mode: u32, wait_ms: i32, rounds: u32) -> bool {
    for _ in 0..rounds {
        for _ in 0..50 {
            // SAFETY: a conditional lock on an OID, held until the end of the transaction; a plain sleep
            // that answers a cancel.
            unsafe {
                if pg_sys::ConditionalLockRelationOid(relation, mode as pg_sys::LOCKMODE) {
                    return true;
                }
                pg_sys::pg_usleep(2_000);
                pg_sys::check_for_interrupts!();
            }
        }
        // SAFETY: a backend global, restored below whatever happens.
        let saved = unsafe { pg_sys::LockTimeout };
        unsafe { pg_sys::LockTimeout = wait_ms };
        let queued = subtransaction(
            // SAFETY: a lock on an OID; kept (the subtransaction released) when it was granted.
            || unsafe { pg_sys::LockRelationOid(relation, mode as pg_sys::LOCKMODE) },
            |_| true,
        );
        unsafe { pg_sys::LockTimeout = saved };
        match queued {
            Ok(()) => return true,
            Err(e) if lock_timed_out(&e) => continue,
            Err(e) => e.rethrow(),
        }
    }
    false
}

fn lock_timed_out(e: &CaughtError) -> bool {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
            r.sql_error_code() == pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
        }
    }
}

/// Tries `attempt` until it succeeds or `inventory.maintenance_lock_timeout` has passed.
fn poll(mut attempt: impl FnMut() -> bool) -> bool {
    let bound = Duration::from_millis(guc::maintenance_lock_timeout_ms() as u64);
    let started = Instant::now();
    let mut pause = 0.002_f64;
    loop {
        if attempt() {
            return true;
        }
        if started.elapsed() >= bound {
            return false;
        }
        // pg_sleep answers a cancel request (statement_timeout, pg_cancel_backend) between tries.
        exec_with_args("SELECT pg_catalog.pg_sleep($1)", &[pause.into()]);
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

/// Runs `work` in a subtransaction of its own, the way PL/pgSQL runs a block with an EXCEPTION clause:
/// an error rolls back only what `work` did (its writes, locks, the user it switched to, settings) and
/// comes back as its message, so that one broken ledger does not end a reconcile of all the others.
pub fn in_subtransaction<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    subtransaction(work, |_| true).map_err(|e| {
        let (message, code) = match &e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
                (r.message().to_string(), r.sql_error_code())
            }
        };
        // A cancel (statement_timeout, pg_cancel_backend) is for the whole statement, as PL/pgSQL's
        // WHEN OTHERS leaves it alone too.
        if code == pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
            e.rethrow()
        }
        message
    })
}

/// Runs `work` in a subtransaction of its own, released when `keep` says so of its result and rolled
/// back otherwise (with the locks it took). An error rolls the subtransaction back, always, and comes
/// back caught: the caller reports it or rethrows it, never leaving the subtransaction open behind it
/// (a PL/pgSQL block that then caught the error would roll back the wrong one).
pub fn subtransaction<T>(work: impl FnOnce() -> T, keep: impl FnOnce(&T) -> bool) -> Result<T, CaughtError> {
    // SAFETY: the pattern of PostgreSQL's own PL/pgSQL exception blocks: begin, then either release
    // or roll back, restoring the caller's memory context and resource owner either way.
    let (context, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
    }
    let restore = move || unsafe {
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    };
    let work = std::panic::AssertUnwindSafe(work);
    let keep = std::panic::AssertUnwindSafe(keep);
    PgTryBuilder::new(move || {
        let keep = keep; // the whole wrapper, not only its field (closures capture fields apart)
        let result = work();
        // SAFETY: as above.
        unsafe {
            if keep.0(&result) {
                pg_sys::ReleaseCurrentSubTransaction();
            } else {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            }
        }
        restore();
        Ok(result)
    })
    .catch_others(move |e| {
        restore();
        // SAFETY: as above; the error state was copied and flushed when it was caught.
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        restore();
        Err(e)
    })
    .execute()
}
