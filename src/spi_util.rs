//! Small SPI helpers shared by the modules that read the catalog and run generated DDL.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiHeapTupleData, SpiResult};

/// Rows of a query, each mapped by `map`.
pub fn rows<T>(sql: &str, args: &[DatumWithOid], mut map: impl FnMut(&SpiHeapTupleData) -> SpiResult<T>) -> Vec<T> {
    Spi::connect(|client| client.select(sql, None, args)?.map(|row| map(&row)).collect::<SpiResult<Vec<T>>>())
        .unwrap_or_else(|e| panic!("catalog query failed: {e}"))
}

/// The first column of the first row as text, if there is a row and the value is not NULL.
pub fn one_text(sql: &str, args: &[DatumWithOid]) -> Option<String> {
    rows(sql, args, |r| r.get::<String>(1)).into_iter().next().flatten()
}

/// A column as text, `""` for NULL.
pub fn text(row: &SpiHeapTupleData, i: usize) -> SpiResult<String> {
    Ok(row.get::<String>(i)?.unwrap_or_default())
}

/// Runs a statement; its errors are PostgreSQL's own.
pub fn exec(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}
