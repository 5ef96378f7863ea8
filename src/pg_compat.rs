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
        // BRIN); the direct write's targets have plain column indexes only (direct::target_for), for which
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
// built-in schema's items, locations and lots take it as their ids' default there, so that new rows go
// to the right edge of their (org_id, id) primary keys instead of to a random page of them
// (bench/uuid_ids.sh measures it: docs/BENCHMARKS.md). On 15, 16 and 17 they keep gen_random_uuid().
// Organizations keep random ids on every version: an organization's id names the tenant in URLs and
// logs and should not tell when it signed up, and there are few of them.
// A fresh CREATE EXTENSION only: a database upgraded with pg_upgrade keeps its defaults
// (docs/INSTALL.md says how to change them).
#[cfg(feature = "pg18")]
pgrx::extension_sql!(
    r#"
ALTER TABLE inventory.items ALTER COLUMN id SET DEFAULT uuidv7();
ALTER TABLE inventory.locations ALTER COLUMN id SET DEFAULT uuidv7();
ALTER TABLE inventory.lots ALTER COLUMN id SET DEFAULT uuidv7();
"#,
    name = "time_ordered_ids",
    requires = ["ledger"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The built-in schema's ids: version 7, in the order they were made, on 18; random (version 4) before.
    #[pg_test]
    fn built_in_ids_are_time_ordered_where_postgres_has_uuidv7() {
        let expected = if cfg!(feature = "pg18") { "7" } else { "4" };
        Spi::run(
            "INSERT INTO inventory.organizations (id, name) VALUES ('0d000000-0000-4000-8000-000000000001', 'Ids');
             SET LOCAL app.org_id = '0d000000-0000-4000-8000-000000000001';
             INSERT INTO inventory.items (sku, name) SELECT 'S' || g, 'I' FROM generate_series(1, 50) g;
             INSERT INTO inventory.locations (code, name) SELECT 'L' || g, 'L' FROM generate_series(1, 50) g;
             INSERT INTO inventory.lots (item_id, code) SELECT id, 'LOT' FROM inventory.items;",
        )
        .unwrap();
        for table in ["items", "locations", "lots"] {
            let versions = Spi::get_one::<String>(&format!(
                "SELECT string_agg(DISTINCT substr(id::text, 15, 1), ',') FROM inventory.{table}"
            ))
            .unwrap();
            assert_eq!(versions.as_deref(), Some(expected), "{table}");
        }
        // Organizations: random ids on every version.
        let org_default = Spi::get_one::<String>(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
              WHERE adrelid = 'inventory.organizations'::regclass AND adnum = 1",
        )
        .unwrap();
        assert_eq!(org_default.as_deref(), Some("gen_random_uuid()"));
        if cfg!(feature = "pg18") {
            // In the order they were made: sorted by id, the items come out in their sku's order.
            let in_order = Spi::get_one::<bool>(
                "SELECT array_agg(sku ORDER BY id) = array_agg(sku ORDER BY substr(sku, 2)::int) FROM inventory.items",
            )
            .unwrap();
            assert_eq!(in_order, Some(true));
        }
    }
}
