//! The PostgreSQL C functions whose signatures differ between the versions this extension builds for
//! (Cargo features `pg15`, the default, and `pg18`, both tested; `pg16` and `pg17`, built by the same
//! code but not tested: docs/INSTALL.md's support matrix), each wrapped once with the call the rest of
//! the code makes. Every difference names the PostgreSQL version and change it follows.

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
        // BRIN); the direct write's targets have B-tree indexes only (direct::target_for), for which
        // the HEAP_ONLY_TUPLE bit says the same.
        #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
        {
            let mut update_indexes: pg_sys::TU_UpdateIndexes::Type = 0;
            pg_sys::simple_heap_update(rel, otid, tuple, &mut update_indexes);
        }
        #[cfg(feature = "pg15")]
        pg_sys::simple_heap_update(rel, otid, tuple);
    }
}

// PostgreSQL 18 added uuidv7() (RFC 9562's version 7: a millisecond timestamp, then random bits). The
// built-in schema does not use it: SPEC §5 gives every uuid id the default gen_random_uuid(), and
// measured on 18 (bench/uuid_ids.sh, docs/BENCHMARKS.md "uuidv7() ids") it is not better for these
// keys. Each tenant's new ids go to the end of that tenant's range of the (org_id, id) primary key, in
// the middle of the index; nbtree splits such a page 50/50 (its "after the new item" split is for keys
// of up to 16 bytes, these are 32), so the pages left behind stay half full: with 10 tenants inserting
// side by side the primary key was 1.31x the size and random lookups 1.4x as long, for loads 0.89x the time.
// The test below holds every version to the SPEC's default.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// Every built-in uuid id defaults to gen_random_uuid() (SPEC §5), on 18 too, where uuidv7() exists.
    #[pg_test]
    fn built_in_ids_default_to_gen_random_uuid_on_every_version() {
        let defaults = Spi::get_one::<String>(
            "SELECT string_agg(c.relname || '=' || pg_get_expr(d.adbin, d.adrelid), ' ' ORDER BY c.relname)
               FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
               JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
              WHERE c.relnamespace = 'inventory'::regnamespace AND a.attname = 'id' AND a.atttypid = 'uuid'::regtype",
        )
        .unwrap();
        assert_eq!(
            defaults.as_deref(),
            Some("items=gen_random_uuid() locations=gen_random_uuid() lots=gen_random_uuid() organizations=gen_random_uuid()")
        );
        Spi::run(
            "INSERT INTO inventory.organizations (id, name) VALUES ('0d000000-0000-4000-8000-000000000001', 'Ids');
             SET LOCAL app.org_id = '0d000000-0000-4000-8000-000000000001';
             INSERT INTO inventory.items (sku, name) SELECT 'S' || g, 'I' FROM generate_series(1, 20) g;",
        )
        .unwrap();
        let versions = Spi::get_one::<String>("SELECT string_agg(DISTINCT substr(id::text, 15, 1), ',') FROM inventory.items").unwrap();
        assert_eq!(versions.as_deref(), Some("4"));
    }
}
