//! Which version of the extension's SQL this database runs, against this library's version, and which
//! tables its own script made.
//!
//! One library file serves every version's SQL (docs/UPGRADING.md): after a new library is installed,
//! a database keeps its old SQL until `ALTER EXTENSION inventory_ext UPDATE`. Functions whose SQL
//! signature is unchanged keep working; the ones that read or write the registry and run history, whose
//! tables an update changes, refuse until then with one clear error instead of a missing column.

use crate::errors;
use crate::spi_util::one_text;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

/// 55000 unless this database's `inventory_ext` is at the library's version. During `ALTER EXTENSION
/// … UPDATE` the catalog already holds the target version, so the update script's own calls pass.
pub fn require_current(function: &str) {
    let library = env!("CARGO_PKG_VERSION");
    let installed = one_text("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'inventory_ext'", &[]);
    if installed.as_deref() != Some(library) {
        errors::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "{function} needs inventory_ext {library} in this database, which is still at {}",
                installed.as_deref().unwrap_or("no version")
            ),
            "The library was updated and this database was not: run ALTER EXTENSION inventory_ext UPDATE (docs/UPGRADING.md).",
        )
    }
}

/// Whether `relid` is one of the extension's own tables being set up by its script: `CREATE EXTENSION`
/// or `ALTER EXTENSION … UPDATE` is running and the relation is a member of this extension. Registry rows
/// of such tables are `builtin` (CREATE EXTENSION makes them again, so pg_dump leaves them out). Not
/// merely "a script is running": an update re-tracks applications' ledgers (update_balance_triggers),
/// and their rows must stay in dumps.
pub fn extension_script_owns(relid: pgrx::pg_sys::Oid) -> bool {
    // SAFETY: reading two backend globals that the extension machinery sets for the script's duration.
    let (creating, extension) = unsafe { (pgrx::pg_sys::creating_extension, pgrx::pg_sys::CurrentExtensionObject) };
    creating
        && crate::spi_util::first::<bool>(
            "SELECT true FROM pg_catalog.pg_depend WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND objid = $1 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND refobjid = $2
                AND deptype = 'e'",
            &[relid.into(), extension.into()],
        )
        .unwrap_or(false)
}
