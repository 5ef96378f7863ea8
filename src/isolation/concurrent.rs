//! `CREATE INDEX CONCURRENTLY` and `DROP INDEX CONCURRENTLY` for the online path.
//!
//! PostgreSQL runs them only as a top-level statement outside any transaction block, which a statement
//! of a procedure never is, not even after its COMMIT (checked on PostgreSQL 15). So a background
//! worker runs each one, as a top-level statement of its own, in the caller's database and as the
//! caller's current role (connected as the session user, which can log in, then switched to the role as
//! SET ROLE would: it can do nothing the caller cannot). The request and the answer travel in a dynamic
//! shared memory segment; the procedure polls `concurrent_index_result` and commits between polls, since
//! an open snapshot of its own would make the build wait for it.
//!
//! The worker accepts nothing but those two statements (checked on the parse tree), so the functions
//! are no way to run other SQL in the background.

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

// 0: waiting (the zeroed segment).
const SUCCEEDED: u32 = 1;
const FAILED: u32 = 2;

/// The request and its answer, in the segment.
#[repr(C)]
struct Request {
    state: AtomicU32,
    database: pg_sys::Oid,
    session_user: pg_sys::Oid,
    current_user: pg_sys::Oid,
    statement_len: u32,
    statement: [u8; STATEMENT_MAX],
    sqlstate: [u8; 5],
    message_len: u32,
    message: [u8; MESSAGE_MAX],
}

struct Pending {
    segment: *mut pg_sys::dsm_segment,
    worker: DynamicBackgroundWorker,
}

thread_local! {
    /// This backend's requests, by segment handle; they outlive transactions (the procedure commits).
    static PENDING: RefCell<HashMap<u32, Pending>> = RefCell::new(HashMap::new());
}

/// Starts a worker for one `CREATE [UNIQUE] INDEX CONCURRENTLY` or `DROP INDEX CONCURRENTLY` statement
/// and returns the request's number for `concurrent_index_result`.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn concurrent_index_start(statement: &str) -> i64 {
    if statement.len() > STATEMENT_MAX {
        errors::invalid_argument("the statement is too long", format!("At most {STATEMENT_MAX} bytes."));
    }
    // SAFETY: plain calls into PostgreSQL from a backend; the segment is ours until we detach it.
    unsafe {
        let segment = pg_sys::dsm_create(std::mem::size_of::<Request>(), 0);
        // Mapped for the session, not the transaction: the procedure commits while the worker runs.
        pg_sys::dsm_pin_mapping(segment);
        let request = pg_sys::dsm_segment_address(segment) as *mut Request;
        std::ptr::write_bytes(request as *mut u8, 0, std::mem::size_of::<Request>());
        let request = &mut *request; // zeroed: WAITING, no answer
        request.database = pg_sys::MyDatabaseId;
        request.session_user = pg_sys::GetSessionUserId();
        request.current_user = pg_sys::GetUserId();
        request.statement[..statement.len()].copy_from_slice(statement.as_bytes());
        request.statement_len = statement.len() as u32;
        let handle = pg_sys::dsm_segment_handle(segment);
        // The worker's handle is palloc'd: in TopMemoryContext, so that it outlives the transaction.
        let worker = PgMemoryContexts::TopMemoryContext.switch_to(|_| {
            BackgroundWorkerBuilder::new("inventory_ext concurrent index")
                .set_type("inventory_ext concurrent index")
                .set_library("inventory_ext")
                .set_function("inventory_concurrent_index_main")
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
                "no background worker slot is free to build the index concurrently",
                "Raise max_worker_processes, or call again when fewer background workers run.",
            )
        };
        PENDING.with(|p| p.borrow_mut().insert(handle, Pending { segment, worker }));
        i64::from(handle)
    }
}

/// Whether request `request` of this session has finished, and if it failed, how (its SQLSTATE and
/// message). Once it has finished the request is forgotten.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn concurrent_index_result(
    request: i64,
) -> TableIterator<'static, (name!(finished, bool), name!(sqlstate, Option<String>), name!(message, Option<String>))> {
    let handle = u32::try_from(request).unwrap_or_default();
    let answer = PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        let Some(entry) = pending.get(&handle) else {
            errors::invalid_argument(format!("no request {request} of this session is waiting"), "Pass what concurrent_index_start returned.")
        };
        // SAFETY: the segment stays mapped until it is removed below.
        let request = unsafe { &*(pg_sys::dsm_segment_address(entry.segment) as *const Request) };
        // Stopped is read before the state: a worker that answered and then stopped is not lost.
        let stopped = matches!(entry.worker.pid(), Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied));
        let answer = match request.state.load(Ordering::Acquire) {
            SUCCEEDED => Some((None, None)),
            FAILED => {
                let sqlstate = String::from_utf8_lossy(&request.sqlstate).into_owned();
                let message = String::from_utf8_lossy(&request.message[..request.message_len as usize]).into_owned();
                Some((Some(sqlstate), Some(message)))
            }
            _ if stopped => Some((
                Some("57P01".to_string()),
                Some("the background worker building the index stopped before it finished (see the server log)".to_string()),
            )),
            _ => None,
        };
        if answer.is_some() {
            if let Some(done) = pending.remove(&handle) {
                // SAFETY: ours, mapped since `concurrent_index_start`.
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

/// The worker: one statement, then it exits.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn inventory_concurrent_index_main(argument: pg_sys::Datum) {
    // SAFETY: the segment handle the requesting backend passed; it keeps the segment until we answer
    // (or it exits, and then the segment lives as long as we are attached).
    unsafe {
        pg_sys::BackgroundWorkerUnblockSignals();
        let segment = pg_sys::dsm_attach(argument.value() as pg_sys::dsm_handle);
        if segment.is_null() {
            return; // the requester has gone and its segment with it: nobody to answer
        }
        let request = &mut *(pg_sys::dsm_segment_address(segment) as *mut Request);
        let statement = String::from_utf8_lossy(&request.statement[..request.statement_len as usize]).into_owned();
        pg_sys::BackgroundWorkerInitializeConnectionByOid(request.database, request.session_user, 0);
        let current_user = request.current_user;
        let outcome = PgTryBuilder::new(move || {
            run_top_level(&statement, current_user);
            None
        })
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
                let code = r.sql_error_code() as i32;
                let sqlstate: Vec<u8> = (0..5).map(|i| ((code >> (6 * i)) & 0x3F) as u8 + b'0').collect();
                Some((sqlstate, r.message().to_string()))
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

/// What `exec_simple_query` does for one utility statement, with the transaction commands the
/// concurrent build itself issues in between: parse, check it is one of the two statements, analyze,
/// plan, run at top level.
unsafe fn run_top_level(statement: &str, current_user: pg_sys::Oid) {
    let sql = std::ffi::CString::new(statement).unwrap_or_default();
    // SAFETY: called once from the worker, connected, outside any transaction.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        // As SET ROLE: the caller's current role (the session user is the caller's too).
        if current_user != pg_sys::GetSessionUserId() {
            pg_sys::SetCurrentRoleId(current_user, pg_sys::superuser_arg(current_user));
        }
        pg_sys::SetConfigOption(c"search_path".as_ptr(), c"pg_catalog, pg_temp".as_ptr(), pg_sys::GucContext::PGC_USERSET, pg_sys::GucSource::PGC_S_SESSION);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, sql.as_ptr());
        pg_sys::debug_query_string = sql.as_ptr();
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
        pg_sys::PortalRun(portal, i64::MAX, true, true, receiver, receiver, &mut completion);
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
