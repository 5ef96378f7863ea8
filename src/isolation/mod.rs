//! Tenant isolation for any table (SPEC §4): `enable_tenant_isolation`, its online form
//! `enable_tenant_isolation_online` (a procedure in sql/isolation.sql that drives
//! `tenant_isolation_next_step` and `concurrent`), and `disable_tenant_isolation`.
//!
//! Both paths run one list of named steps: `catalog` reads the table into a description, `plan` turns it
//! into steps as plain data, and the caller applies them — all in one transaction here, one piece of
//! work per transaction online. Every step first reads the catalog and does nothing when its work is
//! already done, so calling either twice is safe, and the online path resumes where it stopped.

mod catalog;

mod plan;

use crate::errors;
use crate::spi_util::{exec, first, rows};
use crate::sql_text::ident;
use crate::sql_types::{RegClass, SqlName};
use catalog::POLICY;
use plan::{Mode, Step, Work};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::Uuid;

/// The table and org column a call names, checked.
fn arguments(tbl: Option<RegClass>, org_column: Option<SqlName>) -> (plan::Table, String) {
    let Some(tbl) = tbl else {
        errors::invalid_argument("tbl must not be NULL", "Pass the table, e.g. 'public.items'.")
    };
    let Some(SqlName(org)) = org_column.filter(|n| !n.0.is_empty()) else {
        errors::invalid_argument("org_column must not be NULL or empty", "Pass the column name, e.g. 'org_id'.")
    };
    (catalog::table(tbl), org)
}

/// The steps still to do for a table, as the catalog is now, and the description they were planned from.
fn steps(
    tbl: Option<RegClass>,
    org_column: Option<SqlName>,
    backfill_org: Option<Uuid>,
    scope_unique: Option<bool>,
    mode: Mode,
) -> (plan::Description, Vec<Step>) {
    let (table, org) = arguments(tbl, org_column);
    let description = catalog::describe(table, org, backfill_org, scope_unique.unwrap_or(true));
    let steps = plan::plan(&description, mode).unwrap_or_else(|refusal| catalog::raise(refusal));
    (description, steps)
}

/// One call, one transaction: every step applied, one line per change. The catalog is read again
/// afterwards and anything still missing (a partition attached while the call ran) done too.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn enable_tenant_isolation(
    tbl: Option<RegClass>,
    org_column: default!(Option<SqlName>, "'org_id'"),
    backfill_org: default!(Option<Uuid>, "NULL"),
    scope_unique: default!(Option<bool>, "true"),
) -> SetOfIterator<'static, String> {
    let mut lines = Vec::new();
    crate::citus::one_connection_per_node();
    for _round in 0..3 {
        let (description, steps) = steps(tbl, org_column.clone(), backfill_org, scope_unique, Mode::OneCall);
        if steps.is_empty() {
            return SetOfIterator::new(lines);
        }
        for step in steps {
            let mut filled = 0i64;
            for work in &step.work {
                match work {
                    Work::Transaction(statements) => statements.iter().for_each(|s| exec(s)),
                    Work::Index(statement) => exec(statement),
                    Work::Backfill(b) => filled += fill_org_column(&description.table, &description.org, *b, Batch::All),
                }
            }
            lines.extend(step.report.iter().map(|r| r.replace("{filled}", &filled.to_string())));
        }
    }
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "the table kept changing while enable_tenant_isolation ran",
        "Call it again when no other DDL runs on the table.",
    )
}

/// Which NULLs of the org column one fill gives to the organization.
enum Batch {
    /// All of them, in one UPDATE (ROW EXCLUSIVE): the one-call path.
    All,
    /// The rows on pages `[first, last)` (a TID range scan).
    Pages(i64, i64),
    /// Up to this many rows still NULL anywhere (after a walk by pages: versions that moved meanwhile).
    Rows(i32),
}

/// Fills NULLs of the org column with `org`, as the table's owner (`trust::as_table_owner`: the UPDATE
/// fires the owner's triggers and rules, which must not run with an administrator's rights); the number
/// of rows filled.
fn fill_org_column(table: &plan::Table, column: &str, org: Uuid, batch: Batch) -> i64 {
    let q_org = ident(column);
    let (filter, args): (String, Vec<pgrx::datum::DatumWithOid>) = match batch {
        Batch::All => (String::new(), vec![org.into()]),
        Batch::Pages(first, last) => (
            "AND ctid >= format('(%s,0)', $2)::tid AND ctid < format('(%s,0)', $3)::tid".into(),
            vec![org.into(), first.into(), last.into()],
        ),
        Batch::Rows(n) => (
            format!("AND ctid = ANY (ARRAY(SELECT ctid FROM {} WHERE {q_org} IS NULL LIMIT $2))", table.name),
            vec![org.into(), n.into()],
        ),
    };
    // A plain UPDATE (an UPDATE in WITH refuses a table with rules); its count is SPI's.
    let sql = format!("UPDATE {} SET {q_org} = $1 WHERE {q_org} IS NULL {filter}", table.name);
    crate::trust::as_table_owner(table.oid, || {
        Spi::connect_mut(|client| client.update(&sql, None, &args).map(|done| done.len() as i64))
            .unwrap_or_else(|e| errors::spi_failed(&sql, &e))
    })
}

/// One batch of `backfill_org_column` (sql/isolation.sql): the NULLs on pages `[first_page, last_page)`,
/// or, with `first_page` NULL, up to `batch_size` NULL rows anywhere; filled as the table's owner.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn fill_org_column_batch(
    tbl: Option<RegClass>,
    backfill_org: Option<Uuid>,
    org_column: Option<SqlName>,
    first_page: Option<i64>,
    last_page: Option<i64>,
    batch_size: Option<i32>,
) -> i64 {
    let Some(org) = backfill_org else {
        errors::invalid_argument("backfill_org must not be NULL", "Pass the organization the rows go to.")
    };
    let (table, column) = arguments(tbl, org_column);
    let batch = match (first_page, last_page, batch_size) {
        (Some(first), Some(last), _) if first >= 0 && last > first => Batch::Pages(first, last),
        (None, None, Some(n)) if n > 0 => Batch::Rows(n),
        _ => errors::invalid_argument(
            "pass a page range (first_page < last_page) or a positive batch_size",
            "backfill_org_column calls it; call that procedure instead.",
        ),
    };
    fill_org_column(&table, &column, org, batch)
}

/// The online path's next piece of work (no row: nothing left): the step's name, its line (with the
/// step's first piece: the following ones are planned afresh, as what is left of it), what kind of work (`transaction`: the statements in one transaction; `index`: the
/// one statement, CONCURRENTLY, through `concurrent_index_start`; `backfill`: committed batches of
/// `backfill_org_column` for the organization in `statements[1]`).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn tenant_isolation_next_step(
    tbl: Option<RegClass>,
    org_column: default!(Option<SqlName>, "'org_id'"),
    backfill_org: default!(Option<Uuid>, "NULL"),
    scope_unique: default!(Option<bool>, "true"),
) -> TableIterator<
    'static,
    (name!(step, String), name!(report, Vec<String>), name!(kind, String), name!(statements, Vec<String>)),
> {
    // Arguments first (22023 and the like), then where it runs.
    let next = steps(tbl, org_column, backfill_org, scope_unique, Mode::Online).1.into_iter().find(|s| !s.work.is_empty());
    // SAFETY: reads the transaction state.
    if unsafe { pg_sys::IsTransactionBlock() } {
        errors::raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "enable_tenant_isolation_online cannot run inside a transaction block",
            "CALL it on its own (it commits between its steps), or use enable_tenant_isolation in a transaction.",
        );
    }
    let row = next.map(|step| {
        let report = step.report.iter().map(|r| r.replace("{filled}", "the NULL")).collect();
        let (kind, statements) = match step.work.into_iter().next() {
            Some(Work::Transaction(statements)) => ("transaction", statements),
            Some(Work::Index(statement)) => ("index", vec![Work::concurrently(&statement)]),
            Some(Work::Backfill(org)) => ("backfill", vec![org.to_string()]),
            None => unreachable!(),
        };
        (step.name.to_string(), report, kind.to_string(), statements)
    });
    TableIterator::new(row)
}

/// Removes the policy and row-level security; keeps the column, its constraints and the data.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn disable_tenant_isolation(tbl: Option<RegClass>) -> SetOfIterator<'static, String> {
    let Some(tbl) = tbl else {
        errors::invalid_argument("tbl must not be NULL", "Pass the table, e.g. 'public.items'.")
    };
    let table = catalog::table(tbl);
    let mut lines = Vec::new();
    let mut run = |line: String, statement: String| {
        exec(&statement);
        lines.push(line);
    };
    let mut relations = vec![(table.oid, table.name.clone())];
    relations.extend(catalog::partitions(&table));
    for (oid, name) in relations {
        let (has_policy, enabled, forced) = rows(
            "SELECT EXISTS (SELECT FROM pg_policy WHERE polrelid = c.oid AND polname = $2),
                    c.relrowsecurity, c.relforcerowsecurity
               FROM pg_class c WHERE c.oid = $1",
            &[oid.into(), POLICY.into()],
            |r| {
                Ok((
                    r.get::<bool>(1)?.unwrap_or_default(),
                    r.get::<bool>(2)?.unwrap_or_default(),
                    r.get::<bool>(3)?.unwrap_or_default(),
                ))
            },
        )
        .pop()
        .unwrap_or_else(|| errors::undefined_relation(oid));
        if has_policy {
            run(format!("dropped policy {POLICY} on {name}"), format!("DROP POLICY {POLICY} ON {name}"));
        }
        if forced {
            run(format!("stopped forcing row-level security on {name}"), format!("ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY"));
        }
        if enabled {
            run(format!("disabled row-level security on {name}"), format!("ALTER TABLE {name} DISABLE ROW LEVEL SECURITY"));
        }
    }
    let unregistered = first::<bool>(
        "WITH gone AS (DELETE FROM inventory.tenant_tables WHERE relid = $1::regclass RETURNING 1) SELECT count(*) > 0 FROM gone",
        &[table.oid.into()],
    );
    if unregistered == Some(true) {
        lines.push(format!("removed {} from inventory.tenant_tables", table.name));
    }
    SetOfIterator::new(lines)
}
