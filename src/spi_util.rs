//! Small SPI helpers shared by the modules that read the catalog and run generated DDL.
//!
//! A PostgreSQL ERROR raised by a statement (a constraint, a permission, a missing object) unwinds
//! through these helpers with its own SQLSTATE. What pgrx reports as an `SpiError` value instead (a
//! statement SPI cannot run, a column of an unexpected type, no row where one was expected) becomes
//! an ERROR with the SQLSTATE PostgreSQL gives the same condition (`errors::spi_failed`), never a
//! panic (XX000).

use crate::errors;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiHeapTupleData, SpiResult};
use pgrx::{FromDatum, IntoDatum};

/// Rows of a query, each mapped by `map`.
pub fn rows<T>(sql: &str, args: &[DatumWithOid], mut map: impl FnMut(&SpiHeapTupleData) -> SpiResult<T>) -> Vec<T> {
    Spi::connect(|client| client.select(sql, None, args)?.map(|row| map(&row)).collect::<SpiResult<Vec<T>>>())
        .unwrap_or_else(|e| errors::spi_failed(sql, &e))
}

/// Rows of a statement that locks or writes (`SELECT … FOR UPDATE`, DML with RETURNING), each mapped by
/// `map`: `rows` runs read-only, where PostgreSQL refuses row locks.
pub fn rows_locking<T>(sql: &str, args: &[DatumWithOid], mut map: impl FnMut(&SpiHeapTupleData) -> SpiResult<T>) -> Vec<T> {
    Spi::connect_mut(|client| client.update(sql, None, args)?.map(|row| map(&row)).collect::<SpiResult<Vec<T>>>())
        .unwrap_or_else(|e| errors::spi_failed(sql, &e))
}

/// The first column of the first row as text, if there is a row and the value is not NULL.
pub fn one_text(sql: &str, args: &[DatumWithOid]) -> Option<String> {
    rows(sql, args, |r| r.get::<String>(1)).into_iter().next().flatten()
}

/// A column as text, `""` for NULL.
pub fn text(row: &SpiHeapTupleData, i: usize) -> SpiResult<String> {
    Ok(row.get::<String>(i)?.unwrap_or_default())
}

/// An OID column of the catalog (`conrelid`, `indexrelid`, …: NOT NULL there); `InvalidOid` for NULL.
pub fn oid_at(row: &SpiHeapTupleData, i: usize) -> SpiResult<pg_sys::Oid> {
    Ok(row.get::<pg_sys::Oid>(i)?.unwrap_or(pg_sys::InvalidOid))
}

/// A relation's name as SQL (`regclass` text, quoted and qualified as needed), or 42P01 when the OID
/// names no relation (a `regclass` argument can outlive its table).
pub fn relation_name(oid: pg_sys::Oid) -> String {
    one_text("SELECT c.oid::regclass::text FROM pg_catalog.pg_class c WHERE c.oid = $1", &[oid.into()])
        .unwrap_or_else(|| errors::undefined_relation(oid))
}

/// Runs a statement; its errors are PostgreSQL's own.
pub fn exec(sql: &str) {
    exec_with_args(sql, &[])
}

/// Runs a statement with parameters; its errors are PostgreSQL's own.
pub fn exec_with_args(sql: &str, args: &[DatumWithOid]) {
    Spi::run_with_args(sql, args).unwrap_or_else(|e| errors::spi_failed(sql, &e))
}

/// Runs a statement (a query, or DML with RETURNING) and returns the first column of its first row:
/// `None` when there is no row or the value is NULL.
pub fn first<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::connect_mut(|client| {
        let table = client.update(sql, None, args)?;
        match table.is_empty() {
            true => Ok(None),
            false => table.first().get_one::<T>(),
        }
    })
    .unwrap_or_else(|e| errors::spi_failed(sql, &e))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::pg_sys::panic::CaughtError;

    /// The SQLSTATE that `f` fails with, caught in Rust (the test's transaction is rolled back).
    fn sqlstate_of(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        PgTryBuilder::new(|| {
            f();
            "00000".to_string()
        })
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
                crate::errors::sqlstate_text(r.sql_error_code())
            }
        })
        .execute()
    }

    /// What pgrx reports as SpiError values (not PostgreSQL ERRORs) get PostgreSQL's own SQLSTATE for
    /// the condition, not XX000.
    #[pg_test]
    fn spi_failures_have_specific_sqlstates() {
        assert_eq!(sqlstate_of(|| exec("COPY (SELECT 1) TO STDOUT")), "0A000");
        assert_eq!(sqlstate_of(|| exec("COMMIT")), "2D000");
        assert_eq!(sqlstate_of(|| drop(rows("SELECT 1::int", &[], |r| r.get::<String>(1)))), "42804");
        assert_eq!(sqlstate_of(|| drop(first::<String>("SELECT 1::int", &[]))), "42804");
        // PostgreSQL's own errors keep their SQLSTATE.
        assert_eq!(sqlstate_of(|| exec("SELECT 1/0")), "22012");
        assert_eq!(sqlstate_of(|| exec("SELECT * FROM no_such_table")), "42P01");
        assert_eq!(sqlstate_of(|| exec("SELECT 1")), "00000");
        assert_eq!(first::<i32>("SELECT 1 WHERE false", &[]), None);
        assert_eq!(first::<i32>("SELECT 7", &[]), Some(7));
    }
}
