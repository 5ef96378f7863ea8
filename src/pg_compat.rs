//! The PostgreSQL C functions whose signatures differ between the versions this extension builds for
//! (Cargo features `pg15`, the default, and `pg18`; issue 18), each wrapped once with the call the
//! rest of the code makes. Every difference names the PostgreSQL change it follows.

use pgrx::pg_sys;

/// Runs a portal to completion, its rows to `receiver`.
///
/// # Safety
/// `portal` is started; `receiver` and `completion` are valid.
pub unsafe fn portal_run(portal: pg_sys::Portal, receiver: *mut pg_sys::DestReceiver, completion: *mut pg_sys::QueryCompletion) {
    unsafe {
        // PostgreSQL 18 dropped PortalRun's run_once argument: a portal is run once either way here.
        #[cfg(feature = "pg18")]
        pg_sys::PortalRun(portal, i64::MAX, true, receiver, receiver, completion);
        #[cfg(not(feature = "pg18"))]
        pg_sys::PortalRun(portal, i64::MAX, true, true, receiver, receiver, completion);
    }
}

/// Begins an index scan with `nkeys` keys and no ordering.
///
/// # Safety
/// `heap` and `index` are open and locked; `snapshot` lives as long as the scan.
pub unsafe fn index_beginscan(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
) -> pg_sys::IndexScanDesc {
    unsafe {
        // PostgreSQL 18 added an IndexScanInstrumentation argument (EXPLAIN's index search counts): none here.
        #[cfg(feature = "pg18")]
        return pg_sys::index_beginscan(heap, index, snapshot, std::ptr::null_mut(), nkeys, 0);
        #[cfg(not(feature = "pg18"))]
        return pg_sys::index_beginscan(heap, index, snapshot, nkeys, 0);
    }
}

/// Replaces the tuple at `otid` with `tuple` (a HOT update when PostgreSQL can make one: the caller reads
/// `HEAP_ONLY_TUPLE` from the new tuple to know whether its indexes need entries).
///
/// # Safety
/// `rel` is open and locked for writing; `otid` names a live tuple of it.
pub unsafe fn simple_heap_update(rel: pg_sys::Relation, otid: pg_sys::ItemPointer, tuple: pg_sys::HeapTuple) {
    unsafe {
        // PostgreSQL 16 added the update_indexes result (TU_UpdateIndexes, for summarizing indexes such as
        // BRIN); the direct write's targets have plain column indexes only (direct::target_for), for which
        // the HEAP_ONLY_TUPLE bit says the same.
        #[cfg(feature = "pg18")]
        {
            let mut update_indexes: pg_sys::TU_UpdateIndexes::Type = 0;
            pg_sys::simple_heap_update(rel, otid, tuple, &mut update_indexes);
        }
        #[cfg(not(feature = "pg18"))]
        pg_sys::simple_heap_update(rel, otid, tuple);
    }
}
