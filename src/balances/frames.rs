//! The balance deltas of the statements in flight: one *frame* per (statement, ledger), kept in backend
//! memory from the row trigger's first row to the statement trigger's flush (SPEC §6: never shared memory).
//!
//! Which statement a row belongs to: the command id of the active snapshot. PostgreSQL fires a
//! statement's AFTER triggers (its rows', then its own) at the end of that statement, with the
//! statement's snapshot active; a statement nested in one of those triggers (a trigger on another table
//! posting to the ledger, a trigger on the balance table) runs under a snapshot of its own with a later
//! command id, and flushes its own frame before control returns to the outer one. So the frames form a
//! stack: a row adds to the newest frame of its statement and ledger, or opens one; the flush takes
//! that frame, or finds none when the statement inserted no row.
//!
//! Errors: a frame belongs to the subtransaction that opened it. When a subtransaction aborts (ROLLBACK
//! TO SAVEPOINT, an exception block catching an error), its frames and its children's go; when the
//! transaction ends, all do. A frame left open at COMMIT or PREPARE would mean postings whose balances
//! were never written: the commit is refused rather than let them drift.

use crate::errors;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// A key's values as bytes: per key column a NULL flag, then the value's length and bytes (the datum
/// itself for pass-by-value types, else its detoasted payload). Equal keys of the types whose equality
/// is their binary image (`plans::KeyColumn::image_is_identity`) have equal images; the flush regroups
/// in SQL for the others.
pub type KeyImage = Vec<u8>;

/// The running sum of one key's quantities in one statement.
pub enum Sum {
    /// Integer quantity columns: summed exactly, without allocation.
    Int(i128),
    /// Numeric quantity columns: a detoasted numeric in the transaction's memory.
    Numeric(pg_sys::Datum),
}

/// One key's change in one statement.
pub struct Delta {
    pub sum: Sum,
    /// The largest ledger id posted to the key in the statement (the ledger's bigint key), if any.
    pub max_id: Option<i64>,
}

impl Delta {
    /// Whether the statement lowers the key's balance (its net change is below zero).
    pub fn lowers(&self) -> bool {
        match self.sum {
            Sum::Int(v) => v < 0,
            // SAFETY: a numeric this module detoasted and keeps.
            Sum::Numeric(d) => unsafe { numeric::is_negative(d) },
        }
    }
}

/// The most distinct keys one statement may post to one ledger: the frame lives in the backend's own
/// heap (about 150 bytes a key), outside PostgreSQL's memory accounting, so it is bounded here and a
/// larger statement gets an ERROR rather than the backend running out of memory.
pub const MAX_KEYS_PER_STATEMENT: usize = 4_000_000;

struct Frame {
    ledger: pg_sys::Oid,
    statement: pg_sys::CommandId,
    subtransaction: pg_sys::SubTransactionId,
    deltas: HashMap<KeyImage, Delta>,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The statement whose triggers are firing: the active snapshot's command id.
pub fn current_statement() -> pg_sys::CommandId {
    // SAFETY: reading backend state; a trigger always fires with a snapshot active, but be defensive.
    unsafe {
        if pg_sys::ActiveSnapshotSet() {
            (*pg_sys::GetActiveSnapshot()).curcid
        } else {
            pg_sys::GetCurrentCommandId(false)
        }
    }
}

/// A row's quantity, as read from the ledger row.
pub enum Qty {
    Int(i64),
    /// A numeric datum of the row, detoasted (valid for the trigger call).
    Numeric(pg_sys::Datum),
}

/// Adds one row's quantity to its key in the frame of (`statement`, `ledger`), opening the frame when
/// this is the statement's first row there.
/// `key` is copied only when the statement meets it for the first time.
pub fn add(ledger: pg_sys::Oid, statement: pg_sys::CommandId, key: &[u8], qty: Qty, id: Option<i64>) {
    FRAMES.with(|frames| {
        let mut frames = frames.borrow_mut();
        let found = frames.iter().rposition(|f| f.statement == statement && f.ledger == ledger);
        // Frames of this statement are the newest ones: stop at the first older statement.
        let found = found.filter(|&i| frames[i + 1..].iter().all(|f| f.statement == statement));
        let frame = match found {
            Some(i) => &mut frames[i],
            None => {
                frames.push(Frame {
                    ledger,
                    statement,
                    // SAFETY: reading backend state.
                    subtransaction: unsafe { pg_sys::GetCurrentSubTransactionId() },
                    deltas: HashMap::new(),
                });
                frames.last_mut().expect("just pushed")
            }
        };
        match frame.deltas.get_mut(key) {
            Some(delta) => {
                delta.sum = match (&delta.sum, qty) {
                    (Sum::Int(a), Qty::Int(b)) => Sum::Int(a + b as i128),
                    // SAFETY: both are detoasted numerics; the sum is made in the transaction's memory.
                    (Sum::Numeric(a), Qty::Numeric(b)) => Sum::Numeric(unsafe { numeric::add_replacing(*a, b) }),
                    _ => unreachable!("a ledger's quantity kind is fixed by its plans"),
                };
                delta.max_id = delta.max_id.max(id);
            }
            None => {
                if frame.deltas.len() >= MAX_KEYS_PER_STATEMENT {
                    errors::raise(
                        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                        format!("one statement posts to more than {MAX_KEYS_PER_STATEMENT} distinct balance keys of one ledger"),
                        "Split the load into several statements (COPY or INSERT … SELECT in batches).",
                    )
                }
                let sum = match qty {
                    Qty::Int(v) => Sum::Int(v as i128),
                    // SAFETY: a detoasted numeric of the row.
                    Qty::Numeric(d) => Sum::Numeric(unsafe { numeric::copy_to_transaction(d) }),
                };
                frame.deltas.insert(key.to_vec(), Delta { sum, max_id: id });
            }
        }
    })
}

/// Takes the frame of (`statement`, `ledger`) for flushing: `None` when the statement added no row.
pub fn take(ledger: pg_sys::Oid, statement: pg_sys::CommandId) -> Option<HashMap<KeyImage, Delta>> {
    FRAMES.with(|frames| {
        let mut frames = frames.borrow_mut();
        let mut i = frames.len();
        while i > 0 && frames[i - 1].statement == statement {
            i -= 1;
            if frames[i].ledger == ledger {
                return Some(frames.remove(i).deltas);
            }
        }
        None
    })
}

/// Transaction callback (registered in `_PG_init`): a frame still open when the transaction commits or
/// prepares is a flush that never ran; the commit is refused. Any other end drops them all.
#[pg_guard]
pub unsafe extern "C-unwind" fn transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            let open = FRAMES.with(|f| std::mem::take(&mut *f.borrow_mut()));
            if let Some(frame) = open.first() {
                errors::raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "postings to the ledger with OID {} were never added to its balances",
                        u32::from(frame.ledger)
                    ),
                    "The ledger's statement-level balance trigger (inventory_balances_flush) did not run: \
                     re-run inventory.track_balances for the ledger.",
                )
            }
        }
        _ => {
            FRAMES.with(|f| f.borrow_mut().clear());
            super::ddl::forget_touched();
        }
    }
}

/// Subtransaction callback (registered in `_PG_init`): an aborted subtransaction's frames, and those
/// of any subtransaction begun inside it (subtransaction ids only grow), go with it.
#[pg_guard]
pub unsafe extern "C-unwind" fn subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    subtransaction: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        FRAMES.with(|f| f.borrow_mut().retain(|frame| frame.subtransaction < subtransaction));
    }
}

/// The few facts about PostgreSQL's numeric format the row trigger needs without a function call
/// (src/backend/utils/adt/numeric.c: the header word after the varlena length).
pub mod numeric {
    use pgrx::prelude::*;

    const SIGN_MASK: u16 = 0xC000;
    const NEG: u16 = 0x4000;
    const SHORT: u16 = 0x8000;
    const SPECIAL: u16 = 0xC000;
    const SHORT_SIGN_MASK: u16 = 0x2000;

    /// The total size of a varlena with a 4-byte header (VARSIZE).
    unsafe fn varsize(p: *const u8) -> usize {
        unsafe { (u32::from_ne_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]) >> 2) as usize }
    }

    /// (header word, number of base-10000 digits) of a detoasted numeric.
    unsafe fn header(d: pg_sys::Datum) -> (u16, usize) {
        unsafe {
            let p = d.cast_mut_ptr::<u8>();
            let total = varsize(p);
            let word = u16::from_ne_bytes([*p.add(4), *p.add(5)]);
            let header_size = if word & SIGN_MASK == SHORT { 4 + 2 } else { 4 + 4 };
            (word, total.saturating_sub(header_size) / 2)
        }
    }

    /// Zero (no digits), NaN or ±Infinity: a quantity no ledger row may hold.
    ///
    /// # Safety
    /// `d` is a detoasted numeric (4-byte varlena header; `pg_detoast_datum` gives one).
    pub unsafe fn is_unusable(d: pg_sys::Datum) -> bool {
        let (word, digits) = unsafe { header(d) };
        word & SIGN_MASK == SPECIAL || digits == 0
    }

    /// # Safety
    /// As for `is_unusable`.
    pub unsafe fn is_negative(d: pg_sys::Datum) -> bool {
        let (word, digits) = unsafe { header(d) };
        match word & SIGN_MASK {
            SHORT => digits > 0 && word & SHORT_SIGN_MASK != 0,
            NEG => digits > 0,
            _ => false,
        }
    }

    /// A copy of a detoasted numeric in the transaction's memory.
    ///
    /// # Safety
    /// As for `is_unusable`.
    pub unsafe fn copy_to_transaction(d: pg_sys::Datum) -> pg_sys::Datum {
        unsafe {
            let p = d.cast_mut_ptr::<u8>();
            let size = varsize(p);
            let copy = pg_sys::MemoryContextAlloc(pg_sys::TopTransactionContext, size) as *mut u8;
            std::ptr::copy_nonoverlapping(p, copy, size);
            pg_sys::Datum::from(copy)
        }
    }

    /// `a + b` in the transaction's memory, freeing `a` (a sum this module made).
    ///
    /// # Safety
    /// Both are detoasted numerics; `a` was made by `copy_to_transaction` or this function.
    pub unsafe fn add_replacing(a: pg_sys::Datum, b: pg_sys::Datum) -> pg_sys::Datum {
        unsafe {
            let saved = pg_sys::CurrentMemoryContext;
            pg_sys::CurrentMemoryContext = pg_sys::TopTransactionContext;
            struct Restore(pg_sys::MemoryContext);
            impl Drop for Restore {
                fn drop(&mut self) {
                    // SAFETY: putting back the context that was current.
                    unsafe { pg_sys::CurrentMemoryContext = self.0 };
                }
            }
            let restore = Restore(saved);
            // numeric_add raises its own error on overflow (a NULL error pointer).
            let sum = pg_sys::numeric_add_opt_error(a.cast_mut_ptr(), b.cast_mut_ptr(), std::ptr::null_mut());
            drop(restore);
            pg_sys::pfree(a.cast_mut_ptr());
            pg_sys::Datum::from(sum)
        }
    }
}
