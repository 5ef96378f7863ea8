//! What CREATE EXTENSION changes outside its database, and DROP EXTENSION undoes (issue 12.9).
//!
//! Two things outlive a database's objects: the cluster-wide parameter privilege `SET ON PARAMETER
//! app.org_id TO PUBLIC` (parameter ACLs belong to the cluster), and pg_cron jobs (they live in
//! pg_cron's tables). DROP EXTENSION drops the database's objects only, so an event trigger of the
//! extension, at the start of `DROP EXTENSION inventory_ext` (or `DROP SCHEMA inventory`, which takes it
//! along), calls `inventory.undo_cluster_changes()` (sql/finalize.sql): it unschedules this database's
//! pg_cron jobs that run `inventory.reconcile_run`, and revokes the PUBLIC grant when this database's
//! CREATE EXTENSION made it and it is still exactly as made. If the DROP then fails, the transaction
//! takes the undo back with it.
//!
//! The event trigger function is written by hand (not `#[pg_extern]`): it reads the statement's parse
//! tree, which only a C-level event trigger function can see, to tell whether this extension is the
//! one being dropped (`DROP EXTENSION pgtap` must not touch anything of ours).

use pgrx::prelude::*;
use std::ffi::CStr;

/// Whether a DROP statement's parse tree drops this extension (directly, or through its schema).
///
/// # Safety
/// `parsetree` is a valid node of the statement being run.
unsafe fn drops_this_extension(parsetree: *mut pg_sys::Node) -> bool {
    unsafe {
        if parsetree.is_null() || (*parsetree).type_ != pg_sys::NodeTag::T_DropStmt {
            return false;
        }
        let drop = &*(parsetree as *mut pg_sys::DropStmt);
        let wanted: &[u8] = match drop.removeType {
            pg_sys::ObjectType::OBJECT_EXTENSION => b"inventory_ext",
            pg_sys::ObjectType::OBJECT_SCHEMA => b"inventory",
            _ => return false,
        };
        let objects = pgrx::PgList::<pg_sys::Node>::from_pg(drop.objects);
        let found = objects.iter_ptr().any(|node| {
            !node.is_null()
                && (*node).type_ == pg_sys::NodeTag::T_String
                && CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_bytes() == wanted
        });
        found
    }
}

fn on_ddl_command_start(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let parsetree = crate::event_trigger_data(fcinfo, "inventory.on_ddl_command_start()").parsetree;
    // SAFETY: the parse tree of the statement this event trigger fires for.
    if unsafe { drops_this_extension(parsetree) } {
        crate::spi_util::exec("SELECT inventory.undo_cluster_changes()");
    }
    pg_sys::Datum::from(0)
}

crate::v1_function!(on_ddl_command_start_entry, pg_finfo_on_ddl_command_start_entry, on_ddl_command_start);

pgrx::extension_sql!(
    r#"
-- The event trigger function (src/cluster_changes.rs); the event trigger itself is in sql/finalize.sql.
CREATE FUNCTION inventory.on_ddl_command_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'on_ddl_command_start_entry';
"#,
    name = "event_trigger_functions",
);
