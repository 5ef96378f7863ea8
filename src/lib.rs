//! inventory_ext: multi-tenant isolation and materialized inventory balances inside PostgreSQL.
//!
//! One module per concern. The SQL the extension creates is in `sql/`: `bootstrap.sql` runs before the
//! Rust functions are created, `finalize.sql` after them (policies and grants that name those functions).

use pgrx::prelude::*;

mod api_key;
mod backup;
mod background;
mod balances;
mod citus;
mod cluster_changes;
mod errors;
mod guc;
mod host;
mod isolation;
mod maintenance;
mod organizations;
mod pg_compat;
mod reconcile;
mod spi_util;
mod sql_text;
mod sql_types;
mod sql_version;
mod tenant;
mod tenant_switch;
mod trust;
#[cfg(any(test, feature = "pg_test"))]
mod test_support;
#[cfg(test)]
mod fuzz_tests;

::pgrx::pg_module_magic!(name, version);

/// A C-language function written by hand (`CREATE FUNCTION … LANGUAGE c AS 'MODULE_PATHNAME', 'entry'`
/// in an `extension_sql!`), for what pgrx's attribute macros cannot express: a trigger function that
/// answers 0A000 when called directly, an event trigger function that reads the parse tree. `$body`
/// takes the `FunctionCallInfo`; PostgreSQL errors and Rust panics in it become ERRORs as in any pgrx
/// function.
#[macro_export]
macro_rules! v1_function {
    ($entry:ident, $finfo:ident, $body:expr) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1_API: ::pgrx::pg_sys::Pg_finfo_record = ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1_API
        }

        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub unsafe extern "C-unwind" fn $entry(fcinfo: ::pgrx::pg_sys::FunctionCallInfo) -> ::pgrx::pg_sys::Datum {
            ::pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(move || ($body)(fcinfo))
        }
    };
}

/// The context node of a call to a hand-written function (`v1_function!`) that must be called as a
/// trigger (`T_TriggerData`) or an event trigger (`T_EventTriggerData`); called any other way, 0A000
/// saying what `name` can only be called as (`kind`) and where it comes from (`hint`).
pub fn call_context(
    fcinfo: pg_sys::FunctionCallInfo,
    tag: pg_sys::NodeTag,
    name: &str,
    kind: &str,
    hint: &str,
) -> *mut pg_sys::Node {
    // SAFETY: PostgreSQL passes a valid fcinfo to a V1 function; its context, when set, is a node.
    let context = unsafe { fcinfo.as_ref().map(|f| f.context).unwrap_or(std::ptr::null_mut()) };
    // SAFETY: as above.
    if context.is_null() || unsafe { (*context).type_ } != tag {
        errors::raise(
            pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} can only be called as {kind}"),
            hint,
        )
    }
    context
}

/// The event trigger data of a call to an event trigger function `name` (0A000 for any other call).
pub fn event_trigger_data(fcinfo: pg_sys::FunctionCallInfo, name: &str) -> &'static pg_sys::EventTriggerData {
    let context = call_context(
        fcinfo,
        pg_sys::NodeTag::T_EventTriggerData,
        name,
        "an event trigger",
        "CREATE EXTENSION installs it; there is nothing to call.",
    );
    // SAFETY: `call_context` checked the node's tag; the data lives for the call.
    unsafe { &*(context as *const pg_sys::EventTriggerData) }
}

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/isolation.sql", name = "isolation");
extension_sql_file!(
    "../sql/ledger.sql",
    name = "ledger",
    requires = ["isolation", isolation::enable_tenant_isolation, balances::track_balances, "trigger_functions"]
);
extension_sql_file!(
    "../sql/reconcile.sql",
    name = "reconcile",
    requires = ["ledger", reconcile::reconcile_run]
);
extension_sql_file!("../sql/backup.sql", name = "backup", requires = ["ledger"]);
extension_sql_file!("../sql/citus.sql", name = "citus", requires = ["ledger", "reconcile"]);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize, requires = ["event_trigger_functions", "ddl_check_function"]);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
    citus::install_utility_hook();
    // SAFETY: registering backend-local callbacks once per process, from _PG_init.
    unsafe {
        pg_sys::RegisterXactCallback(Some(tenant_switch::forget_entered_tenant), std::ptr::null_mut());
        pg_sys::RegisterXactCallback(Some(balances::frames::transaction_event), std::ptr::null_mut());
        pg_sys::RegisterXactCallback(Some(background::transaction_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(balances::frames::subtransaction_event), std::ptr::null_mut());
        pg_sys::RegisterXactCallback(Some(citus::transaction_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(citus::subtransaction_event), std::ptr::null_mut());
        pg_sys::CacheRegisterRelcacheCallback(Some(balances::plans::relation_changed), pg_sys::Datum::from(0));
        for cache in [
            pg_sys::SysCacheIdentifier::NAMESPACEOID,
            pg_sys::SysCacheIdentifier::AUTHOID,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(balances::plans::catalog_changed), pg_sys::Datum::from(0));
        }
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'inventory_ext'"]
    }
}
