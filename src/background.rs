//! Work the online procedures hand to a background worker, because a procedure's own statements cannot
//! do it:
//! - `CREATE INDEX CONCURRENTLY` and `DROP INDEX CONCURRENTLY` (for `enable_tenant_isolation_online`):
//!   PostgreSQL runs them only as a top-level statement outside any transaction block, which a statement
//!   of a procedure never is, not even after its COMMIT (checked on PostgreSQL 15). The worker runs the
//!   statement as a top-level statement of its own, through a portal, as a client's would run.
//! - filling balances from a snapshot (for `track_balances_online`): the procedure's transaction exports
//!   the snapshot its triggers start from and must stay open until someone imports it, while the sums
//!   over the ledger as it was then take long; the worker imports it, and its sums are added to the
//!   balance rows the triggers keep meanwhile (`balances::online`).
//!
//! The worker connects to the caller's database as the session user (which can log in) and takes the
//! caller's current role as SET ROLE would: it can do nothing the caller cannot. The request and the
//! answer travel in a dynamic shared memory segment; the procedure polls `background_result`, committing
//! between polls (an open snapshot of its own would make an index build wait for it). A worker accepts
//! nothing but these jobs: the index statement is checked on its parse tree, and the fill runs only SQL
//! that `balances::online` wrote.

use crate::errors;
use pgrx::bgworkers::{BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime, DynamicBackgroundWorker};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

const STATEMENT_MAX: usize = 16 * 1024;
const MESSAGE_MAX: usize = 2 * 1024;
const SNAPSHOT_MAX: usize = 64;

// States; 0 (the zeroed segment) is waiting.
const SUCCEEDED: u32 = 1;
const FAILED: u32 = 2;

const INDEX: u32 = 0;
const FILL: u32 = 1;

/// The request and its answer, in the segment.
#[repr(C)]
struct Request {
    state: AtomicU32,
    /// Set by a fill once it has imported the snapshot (the exporting transaction may end then).
    imported: AtomicU32,
    kind: u32,
    database: pg_sys::Oid,
    session_user: pg_sys::Oid,
    current_user: pg_sys::Oid,
    /// A fill's ledger and the transaction that exported its snapshot (and set the fill up).
    ledger: pg_sys::Oid,
    exporter: pg_sys::TransactionId,
    /// A fill's upkeep identity (`trust::Upkeep`): InvalidOid for the caller's own rights.
    upkeep_role: pg_sys::Oid,
    upkeep_own_rows: bool,
    snapshot: [u8; SNAPSHOT_MAX],
    statement_len: u32,
    statement: [u8; STATEMENT_MAX],
    second_len: u32,
    second: [u8; STATEMENT_MAX],
    sqlstate: [u8; 5],
    message_len: u32,
    message: [u8; MESSAGE_MAX],
}

/// A fill of balances from an exported snapshot: `sums` (one row of arrays) runs under the snapshot,
/// `merge` (its parameters: those arrays) after it, each as `upkeep`.
pub struct Fill {
    pub snapshot: String,
    pub ledger: pg_sys::Oid,
    /// The exporting transaction: the sums are added after it has committed.
    pub exporter: pg_sys::TransactionId,
    pub sums: String,
    pub merge: String,
    pub upkeep: crate::trust::Upkeep,
}

struct Pending {
    segment: *mut pg_sys::dsm_segment,
    worker: DynamicBackgroundWorker,
}

impl Pending {
    /// Whether the worker has exited (its answer, if any, is in the segment already).
    fn stopped(&self) -> bool {
        matches!(self.worker.pid(), Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied))
    }
}

thread_local! {
    /// This backend's requests, by segment handle; they outlive transactions (the procedures commit).
    static PENDING: RefCell<HashMap<u32, Pending>> = RefCell::new(HashMap::new());
}

/// Requests one session may have waiting at once (the procedures use one at a time).
const PENDING_MAX: usize = 4;

/// 22023 for a statement longer than a request holds; checked before anything is allocated.
fn check_length(text: &str) {
    if text.len() > STATEMENT_MAX {
        errors::invalid_argument("the statement is too long", format!("At most {STATEMENT_MAX} bytes."));
    }
}

fn copy_text(into: &mut [u8], len: &mut u32, text: &str) {
    into[..text.len()].copy_from_slice(text.as_bytes());
    *len = text.len() as u32;
}

/// At the end of a transaction that failed (a cancelled or failed CALL polling for its request), the
/// session's requests are given up: their workers stopped (an index build left INVALID, which the next
/// call drops and builds again; a fill that adds nothing) and their segments unmapped. A request is only
/// ever waiting inside the CALL that made it, so nothing else is lost.
#[pg_guard]
pub unsafe extern "C-unwind" fn transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if matches!(event, pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT) {
        let given_up: Vec<Pending> = PENDING.with(|p| p.borrow_mut().drain().map(|(_, pending)| pending).collect());
        for pending in given_up {
            drop(pending.worker.terminate());
            // SAFETY: ours, mapped since `start`; nothing reads it after this.
            unsafe { pg_sys::dsm_detach(pending.segment) };
        }
    }
}

/// Starts a worker for `fill` (a `Request` already written, but for the common fields) and returns the
/// request's number for `background_result`.
fn start(fill: impl FnOnce(&mut Request)) -> i64 {
    if PENDING.with(|p| p.borrow().len()) >= PENDING_MAX {
        errors::raise(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!("this session has {PENDING_MAX} background requests waiting already"),
            "Read their answers with inventory.background_result first.",
        )
    }
    // SAFETY: plain calls into PostgreSQL from a backend; the segment is ours until we detach it.
    unsafe {
        let segment = pg_sys::dsm_create(std::mem::size_of::<Request>(), 0);
        // Mapped for the session, not the transaction: the procedure commits while the worker runs.
        pg_sys::dsm_pin_mapping(segment);
        let request = pg_sys::dsm_segment_address(segment) as *mut Request;
        std::ptr::write_bytes(request as *mut u8, 0, std::mem::size_of::<Request>());
        let request = &mut *request; // zeroed: waiting, no answer
        request.database = pg_sys::MyDatabaseId;
        request.session_user = pg_sys::GetSessionUserId();
        request.current_user = pg_sys::GetUserId();
        fill(request);
        let handle = pg_sys::dsm_segment_handle(segment);
        // The worker's handle is palloc'd: in TopMemoryContext, so that it outlives the transaction.
        let worker = PgMemoryContexts::TopMemoryContext.switch_to(|_| {
            BackgroundWorkerBuilder::new("inventory_ext background")
                .set_type("inventory_ext background")
                .set_library("inventory_ext")
                .set_function("inventory_background_main")
                .set_argument(Some(pg_sys::Datum::from(handle)))
                .enable_spi_access()
                .set_start_time(BgWorkerStartTime::RecoveryFinished)
                .set_restart_time(None)
                .set_notify_pid(pg_sys::MyProcPid)
                .load_dynamic()
        });
        let Ok(worker) = worker else {
            pg_sys::dsm_detach(segment);
            errors::raise(
                PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                "no background worker slot is free for the online step",
                "Raise max_worker_processes, or call again when fewer background workers run.",
            )
        };
        PENDING.with(|p| p.borrow_mut().insert(handle, Pending { segment, worker }));
        i64::from(handle)
    }
}

/// Starts a worker for one `CREATE [UNIQUE] INDEX CONCURRENTLY` or `DROP INDEX CONCURRENTLY` statement
/// and returns the request's number for `background_result`.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn concurrent_index_start(statement: &str) -> i64 {
    check_length(statement);
    start(|r| {
        r.kind = INDEX;
        copy_text(&mut r.statement, &mut r.statement_len, statement);
    })
}

/// Starts a worker that imports `fill.snapshot` and returns once it has (or fails): the caller's
/// transaction, which exported it, may end from then on.
pub fn start_fill(fill: Fill) -> i64 {
    check_length(&fill.sums);
    check_length(&fill.merge);
    let request = start(|r| {
        r.kind = FILL;
        r.ledger = fill.ledger;
        r.exporter = fill.exporter;
        let snapshot = fill.snapshot.as_bytes();
        r.snapshot[..snapshot.len().min(SNAPSHOT_MAX - 1)].copy_from_slice(&snapshot[..snapshot.len().min(SNAPSHOT_MAX - 1)]);
        copy_text(&mut r.statement, &mut r.statement_len, &fill.sums);
        copy_text(&mut r.second, &mut r.second_len, &fill.merge);
        (r.upkeep_role, r.upkeep_own_rows) = match fill.upkeep {
            crate::trust::Upkeep::Definer => (pg_sys::InvalidOid, false),
            crate::trust::Upkeep::Owner { role, own_rows } => (role, own_rows),
        };
    });
    let handle = request as u32;
    for _ in 0..30_000 {
        let (imported, answered, stopped) = PENDING.with(|p| {
            let pending = p.borrow();
            let entry = pending.get(&handle).expect("started above");
            // SAFETY: mapped until the request is answered and read.
            let r = unsafe { &*(pg_sys::dsm_segment_address(entry.segment) as *const Request) };
            let stopped = entry.stopped();
            (r.imported.load(Ordering::Acquire) == 1, r.state.load(Ordering::Acquire) != 0, stopped)
        });
        if imported || answered || stopped {
            return request;
        }
        // SAFETY: a plain sleep that answers a cancel.
        unsafe {
            pg_sys::pg_usleep(2_000);
            pg_sys::check_for_interrupts!();
        }
    }
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "the background worker did not start within a minute",
        "Check max_worker_processes and the server log, then call again.",
    )
}

/// The process ID of request `request`'s worker while it runs.
pub fn worker_pid(request: i64) -> Option<i32> {
    let handle = u32::try_from(request).ok()?;
    PENDING.with(|p| p.borrow().get(&handle).and_then(|entry| entry.worker.pid().ok()))
}

/// Whether request `request` of this session has finished, and if it failed, how (its SQLSTATE and
/// message). Once it has finished the request is forgotten.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn background_result(
    request: i64,
) -> TableIterator<'static, (name!(finished, bool), name!(sqlstate, Option<String>), name!(message, Option<String>))> {
    let handle = u32::try_from(request).unwrap_or_default();
    let answer = PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        let Some(entry) = pending.get(&handle) else {
            errors::invalid_argument(format!("no request {request} of this session is waiting"), "Pass what the start function returned.")
        };
        // SAFETY: the segment stays mapped until it is removed below.
        let request = unsafe { &*(pg_sys::dsm_segment_address(entry.segment) as *const Request) };
        // Stopped is read before the state: a worker that answered and then stopped is not lost.
        let stopped = entry.stopped();
        let answer = match request.state.load(Ordering::Acquire) {
            SUCCEEDED => Some((None, None)),
            FAILED => {
                let sqlstate = String::from_utf8_lossy(&request.sqlstate).into_owned();
                let message = String::from_utf8_lossy(&request.message[..request.message_len as usize]).into_owned();
                Some((Some(sqlstate), Some(message)))
            }
            _ if stopped => Some((
                Some("57P01".to_string()),
                Some("the background worker stopped before it finished (see the server log)".to_string()),
            )),
            _ => None,
        };
        if answer.is_some() {
            if let Some(done) = pending.remove(&handle) {
                // SAFETY: ours, mapped since `start`.
                unsafe { pg_sys::dsm_detach(done.segment) };
            }
        }
        answer
    });
    let row = match answer {
        None => (false, None, None),
        Some((sqlstate, message)) => (true, sqlstate, message),
    };
    TableIterator::once(row)
}

/// The worker: one job, then it exits.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn inventory_background_main(argument: pg_sys::Datum) {
    // SAFETY: the segment handle the requesting backend passed; it keeps the segment until we answer
    // (or it exits, and then the segment lives as long as we are attached).
    unsafe {
        pg_sys::BackgroundWorkerUnblockSignals();
        let segment = pg_sys::dsm_attach(argument.value() as pg_sys::dsm_handle);
        if segment.is_null() {
            return; // the requester has gone and its segment with it: nobody to answer
        }
        let request = &mut *(pg_sys::dsm_segment_address(segment) as *mut Request);
        pg_sys::BackgroundWorkerInitializeConnectionByOid(request.database, request.session_user, 0);
        let text = |bytes: &[u8], len: u32| String::from_utf8_lossy(&bytes[..len as usize]).into_owned();
        let statement = text(&request.statement, request.statement_len);
        let current_user = request.current_user;
        let kind = request.kind;
        let fill = (kind == FILL).then(|| {
            let snapshot = std::ffi::CStr::from_bytes_until_nul(&request.snapshot).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let upkeep = match request.upkeep_role {
                pg_sys::InvalidOid => crate::trust::Upkeep::Definer,
                role => crate::trust::Upkeep::Owner { role, own_rows: request.upkeep_own_rows },
            };
            Fill { snapshot, ledger: request.ledger, exporter: request.exporter, sums: statement.clone(), merge: text(&request.second, request.second_len), upkeep }
        });
        let imported: &AtomicU32 = &*(&request.imported as *const AtomicU32);
        let outcome = PgTryBuilder::new(move || {
            match fill {
                None => run_top_level(&statement, current_user),
                Some(fill) => crate::balances::online::fill(fill, current_user, || imported.store(1, Ordering::Release)),
            }
            None
        })
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
                Some((errors::sqlstate_text(r.sql_error_code()).into_bytes(), r.message().to_string()))
            }
        })
        .execute();
        match outcome {
            None => request.state.store(SUCCEEDED, Ordering::Release),
            Some((sqlstate, message)) => {
                request.sqlstate.copy_from_slice(&sqlstate);
                let bytes = &message.as_bytes()[..message.len().min(MESSAGE_MAX)];
                request.message[..bytes.len()].copy_from_slice(bytes);
                request.message_len = bytes.len() as u32;
                request.state.store(FAILED, Ordering::Release);
            }
        }
        // Exiting aborts whatever transaction an error left and releases every lock.
    }
}

/// Starts the worker's transaction as the caller: its current role (as SET ROLE; the session user is
/// the caller's too), `search_path` pinned, the statement shown in pg_stat_activity.
pub unsafe fn begin_as_caller(current_user: pg_sys::Oid, statement: &std::ffi::CStr) {
    // SAFETY: called from the worker, connected, outside any transaction.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        if current_user != pg_sys::GetSessionUserId() {
            pg_sys::SetCurrentRoleId(current_user, pg_sys::superuser_arg(current_user));
        }
        pg_sys::SetConfigOption(c"search_path".as_ptr(), c"pg_catalog, pg_temp".as_ptr(), pg_sys::GucContext::PGC_USERSET, pg_sys::GucSource::PGC_S_SESSION);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, statement.as_ptr());
        pg_sys::debug_query_string = statement.as_ptr();
    }
}

/// What `exec_simple_query` does for one utility statement, with the transaction commands the
/// concurrent build itself issues in between: parse, check it is one of the two statements, analyze,
/// plan, run at top level through a portal.
unsafe fn run_top_level(statement: &str, current_user: pg_sys::Oid) {
    let sql = std::ffi::CString::new(statement).unwrap_or_default();
    // SAFETY: called once from the worker, connected, outside any transaction.
    unsafe {
        begin_as_caller(current_user, &sql);
        // The parse and plan trees must outlive the transactions the build commits.
        let context = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"inventory_ext concurrent index".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let previous = pg_sys::MemoryContextSwitchTo(context);
        let parsed = pg_sys::pg_parse_query(sql.as_ptr());
        let raw = match parsed.as_ref() {
            Some(list) if list.length == 1 => pg_sys::list_nth(parsed, 0) as *mut pg_sys::RawStmt,
            _ => refuse_statement(statement),
        };
        let node = (*raw).stmt;
        let concurrent = match (*node).type_ {
            pg_sys::NodeTag::T_IndexStmt => (*(node as *mut pg_sys::IndexStmt)).concurrent,
            pg_sys::NodeTag::T_DropStmt => {
                let drop = &*(node as *mut pg_sys::DropStmt);
                drop.concurrent && drop.removeType == pg_sys::ObjectType::OBJECT_INDEX
            }
            _ => false,
        };
        if !concurrent {
            refuse_statement(statement);
        }
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(raw, sql.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
        let plans = pg_sys::pg_plan_queries(queries, sql.as_ptr(), pg_sys::CURSOR_OPT_PARALLEL_OK as i32, std::ptr::null_mut());
        pg_sys::PopActiveSnapshot();
        // Run through a portal, as a client's statement is: the portal gives the statement its snapshot
        // and whatever runs inside it (event triggers) one to run SQL under between the build's commits.
        let portal = pg_sys::CreatePortal(c"".as_ptr(), true, true);
        (*portal).visible = false;
        pg_sys::PortalDefineQuery(portal, std::ptr::null(), sql.as_ptr(), pg_sys::CreateCommandTag(node), plans, std::ptr::null_mut());
        pg_sys::PortalStart(portal, std::ptr::null_mut(), 0, std::ptr::null_mut());
        let receiver = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
        let mut completion: pg_sys::QueryCompletion = std::mem::zeroed();
        crate::pg_compat::portal_run(portal, receiver, &mut completion);
        if let Some(destroy) = (*receiver).rDestroy {
            destroy(receiver);
        }
        pg_sys::PortalDrop(portal, false);
        pg_sys::CommitTransactionCommand();
        pg_sys::MemoryContextSwitchTo(previous);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
    }
}

fn refuse_statement(statement: &str) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("only CREATE INDEX CONCURRENTLY or DROP INDEX CONCURRENTLY runs in the background, not: {statement}"),
        "concurrent_index_start serves enable_tenant_isolation_online.",
    )
}
