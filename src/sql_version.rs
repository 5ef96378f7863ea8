//! Which version of the extension's SQL this database runs, against this library's version.
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
