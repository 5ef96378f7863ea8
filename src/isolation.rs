//! Tenant isolation for any table (SPEC §4): `enable_tenant_isolation` and `disable_tenant_isolation`.
//!
//! One call makes a table tenant-scoped and returns one line per change it made. It is atomic (a function
//! runs inside one statement: any error undoes every step) and idempotent (every step first reads the
//! catalog and does nothing when its work is already done). The steps run in an order that keeps the ones
//! needing ACCESS EXCLUSIVE (catalog-only changes) last, after the long ones (backfill, index builds,
//! constraint validation) that take weaker locks; docs/DBA.md lists the lock of each step. Adding a
//! missing column is the exception: it needs ACCESS EXCLUSIVE first.

use crate::errors;
use crate::spi_util::{exec, exec_with_args, first, oid_at, rows, text};
use crate::sql_types::{RegClass, SqlName};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use crate::sql_text::{ident, ident_list, literal};
use pgrx::Uuid;

/// The policy every tenant-scoped table gets; its name marks it as ours.
const POLICY: &str = "tenant_isolation";
const CONTEXT_DEFAULT: &str = "inventory.require_org_id()";

/// A name for a constraint or index the helper adds, as PostgreSQL chooses one (`ChooseRelationName`):
/// `name1_name2_label`, the longer part cut (at a character boundary) to fit 63 bytes, and a number
/// added when the name is taken by a relation or constraint of the schema. A 63-byte table name would
/// otherwise make a constraint name equal to the table's own.
fn choose_name(table: pg_sys::Oid, name1: &str, name2: Option<&str>, label: &str) -> String {
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (name1, name2, label) = (c(name1), name2.map(c), c(label));
    // SAFETY: NUL-terminated strings; the result is palloc'd in the current memory context.
    unsafe {
        let namespace = pg_sys::get_rel_namespace(table);
        let chosen = pg_sys::ChooseRelationName(
            name1.as_ptr(),
            name2.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
            label.as_ptr(),
            namespace,
            true,
        );
        std::ffi::CStr::from_ptr(chosen).to_string_lossy().into_owned()
    }
}

fn quoted_list(names: &[String]) -> String {
    ident_list("", names)
}

/// The table a call works on (and its bare name, for naming constraints). Names are schema-qualified and quoted (the functions pin
/// `search_path = pg_catalog, pg_temp`, so `regclass::text` always qualifies).
struct Table {
    oid: pg_sys::Oid,
    name: String,
    schema: String,
    partitioned: bool,
}

struct Column {
    attnum: i16,
    type_name: String,
    not_null: bool,
    default: Option<String>,
}

/// A foreign key, as much of it as a rewrite needs.
struct ForeignKey {
    name: String,
    table: pg_sys::Oid,
    table_name: String,
    cols: Vec<String>,
    ref_table: pg_sys::Oid,
    ref_table_name: String,
    ref_cols: Vec<String>,
    on_update: String,
    on_delete: String,
    match_full: bool,
    deferrable: bool,
    deferred: bool,
    source_partitioned: bool,
}

/// The lines a call returns, each recorded as its step runs.
struct Changes(Vec<String>);

impl Changes {
    fn run(&mut self, line: String, statements: &[String]) {
        for sql in statements {
            exec(sql);
        }
        self.0.push(line);
    }
}

fn describe(RegClass(oid): RegClass) -> (Table, String) {
    // ACCESS SHARE (what reading the table takes anyway) first, so that a concurrent DROP cannot take
    // the relation away between this check and the steps below; then whether it exists at all (a
    // regclass can outlive its table: an OID kept from before a DROP).
    // SAFETY: locking an OID that names no relation is allowed; it only takes a lock tag.
    unsafe { pg_sys::LockRelationOid(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    let (name, kind, persistence, parent, relname, schema) = rows(
        "SELECT c.oid::regclass::text, c.relkind::text, c.relpersistence::text,
                (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition),
                c.relname::text, c.relnamespace::regnamespace::text
           FROM pg_class c WHERE c.oid = $1",
        &[oid.into()],
        |r| Ok((text(r, 1)?, text(r, 2)?, text(r, 3)?, r.get::<String>(4)?, text(r, 5)?, text(r, 6)?)),
    )
    .pop()
    .unwrap_or_else(|| errors::undefined_relation(oid));
    let what = match kind.as_str() {
        "r" | "p" => None,
        "v" => Some("a view"),
        "m" => Some("a materialized view"),
        "f" => Some("a foreign table"),
        "S" => Some("a sequence"),
        "i" | "I" => Some("an index"),
        _ => Some("not a table"),
    };
    if let Some(what) = what {
        errors::invalid_argument(
            format!("{name} is {what}: only tables can be made tenant-scoped"),
            "Pass the table the view or index is built on; a view over it needs security_invoker = true.",
        );
    }
    if persistence == "t" {
        errors::invalid_argument(
            format!("{name} is a temporary table: temporary tables cannot be made tenant-scoped"),
            "A temporary table is private to one session already; use a permanent table for tenant data.",
        );
    }
    if let Some(parent) = parent {
        errors::invalid_argument(
            format!("{name} is a partition of {parent}"),
            format!("Call it on the partitioned table: SELECT inventory.enable_tenant_isolation('{parent}')."),
        );
    }
    (Table { oid, name, schema, partitioned: kind == "p" }, relname)
}

fn column(table: pg_sys::Oid, name: &str) -> Option<Column> {
    rows(
        "SELECT a.attnum, format_type(a.atttypid, NULL), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
           FROM pg_attribute a
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        &[table.into(), name.into()],
        |r| {
            Ok(Column {
                attnum: r.get::<i16>(1)?.unwrap_or_default(),
                type_name: text(r, 2)?,
                not_null: r.get::<bool>(3)?.unwrap_or_default(),
                default: r.get::<String>(4)?,
            })
        },
    )
    .pop()
}

fn primary_key(table: pg_sys::Oid) -> Vec<String> {
    rows(
        "SELECT a.attname::text
           FROM pg_constraint con, unnest(con.conkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
          WHERE con.conrelid = $1 AND con.contype = 'p' AND a.attrelid = con.conrelid AND a.attnum = k.attnum
          ORDER BY k.ord",
        &[table.into()],
        |r| text(r, 1),
    )
}

/// The org column of a table made tenant-scoped before (or being made so now).
fn registered_org_column(table: pg_sys::Oid) -> Option<String> {
    rows("SELECT org_column::text FROM inventory.tenant_tables WHERE relid = $1", &[table.into()], |r| text(r, 1))
        .pop()
}

/// Whether some valid unique index of `table` covers exactly `cols`, in any order (what a foreign key
/// needs to reference them).
fn has_unique_on(table: pg_sys::Oid, cols: &[String]) -> bool {
    let cols: Vec<Option<String>> = cols.iter().cloned().map(Some).collect();
    rows(
        "SELECT true FROM pg_index i
          WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
            AND i.indnkeyatts = cardinality($2::text[])
            AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                   FROM unnest(i.indkey[0:i.indnkeyatts - 1]) k(attnum)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) c)",
        &[table.into(), cols.into()],
        |r| r.get::<bool>(1),
    )
    .into_iter()
    .any(|found| found == Some(true))
}

const FOREIGN_KEYS: &str = "
    SELECT con.conname::text, con.conrelid, con.conrelid::regclass::text, con.confrelid, con.confrelid::regclass::text,
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o),
           con.confupdtype::text, con.confdeltype::text, con.confmatchtype::text, con.condeferrable,
           con.condeferred, src.relkind = 'p'
      FROM pg_constraint con JOIN pg_class src ON src.oid = con.conrelid
     WHERE con.contype = 'f' AND con.conparentid = 0";

fn foreign_keys(filter: &str, args: &[DatumWithOid]) -> Vec<ForeignKey> {
    let action = |code: &str| match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    };
    rows(&format!("{FOREIGN_KEYS} AND {filter} ORDER BY con.conname"), args, |r| {
        Ok(ForeignKey {
            name: text(r, 1)?,
            table: oid_at(r, 2)?,
            table_name: text(r, 3)?,
            ref_table: oid_at(r, 4)?,
            ref_table_name: text(r, 5)?,
            cols: r.get::<Vec<String>>(6)?.unwrap_or_default(),
            ref_cols: r.get::<Vec<String>>(7)?.unwrap_or_default(),
            on_update: action(&text(r, 8)?).to_string(),
            on_delete: action(&text(r, 9)?).to_string(),
            match_full: text(r, 10)? == "f",
            deferrable: r.get::<bool>(11)?.unwrap_or_default(),
            deferred: r.get::<bool>(12)?.unwrap_or_default(),
            source_partitioned: r.get::<bool>(13)?.unwrap_or_default(),
        })
    })
}

/// The statements that put `fk` back as `(org, cols) → (ref org, ref cols)`: added NOT VALID and then
/// validated, where PostgreSQL allows it (not on partitioned tables).
fn composite_fk_statements(fk: &ForeignKey, org: &str, ref_org: &str) -> Vec<String> {
    if matches!(fk.on_update.as_str(), "SET NULL" | "SET DEFAULT") {
        errors::invalid_argument(
            format!("foreign key {} on {} has ON UPDATE {}", fk.name, fk.table_name, fk.on_update),
            "ON UPDATE SET NULL/SET DEFAULT would clear the org column of a composite key; \
             change it to CASCADE, RESTRICT or NO ACTION first.",
        );
    }
    let mut cols = vec![org.to_string()];
    cols.extend(fk.cols.iter().cloned());
    let mut ref_cols = vec![ref_org.to_string()];
    ref_cols.extend(fk.ref_cols.iter().cloned());
    // SET NULL / SET DEFAULT on delete must leave the org column alone (PostgreSQL 15 column lists).
    let on_delete = match fk.on_delete.as_str() {
        "SET NULL" | "SET DEFAULT" => format!("{} ({})", fk.on_delete, quoted_list(&fk.cols)),
        other => other.to_string(),
    };
    let mut def = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){} ON UPDATE {} ON DELETE {}{}",
        fk.table_name,
        ident(&fk.name),
        quoted_list(&cols),
        fk.ref_table_name,
        quoted_list(&ref_cols),
        if fk.match_full { " MATCH FULL" } else { "" },
        fk.on_update,
        on_delete,
        match (fk.deferrable, fk.deferred) {
            (true, true) => " DEFERRABLE INITIALLY DEFERRED",
            (true, false) => " DEFERRABLE",
            _ => "",
        },
    );
    if fk.source_partitioned {
        return vec![def];
    }
    def.push_str(" NOT VALID");
    vec![def, format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", fk.table_name, ident(&fk.name))]
}

/// `(org, cols) → table (ref org, ref cols)`, for the lines a call returns.
fn composite_fk_text(fk: &ForeignKey, org: &str, ref_org: &str) -> String {
    format!(
        "({}, {}) → {} ({}, {})",
        ident(org),
        quoted_list(&fk.cols),
        fk.ref_table_name,
        ident(ref_org),
        quoted_list(&fk.ref_cols)
    )
}

fn drop_fk_statement(fk: &ForeignKey) -> String {
    format!("ALTER TABLE {} DROP CONSTRAINT {}", fk.table_name, ident(&fk.name))
}

/// The org column of the other side of a foreign key, when that side is tenant-scoped.
fn tenant_org_of(fk_side: pg_sys::Oid, this: &Table, org: &str) -> Option<String> {
    if fk_side == this.oid {
        Some(org.to_string())
    } else {
        registered_org_column(fk_side)
    }
}

/// The foreign keys from and to this table whose both sides are tenant-scoped, with the org column of
/// each side, that do not carry the org columns yet.
fn single_tenant_fks(this: &Table, org: &str) -> Vec<(ForeignKey, String, String)> {
    foreign_keys("(con.conrelid = $1 OR con.confrelid = $1)", &[this.oid.into()])
        .into_iter()
        .filter_map(|fk| {
            let src_org = tenant_org_of(fk.table, this, org)?;
            let ref_org = tenant_org_of(fk.ref_table, this, org)?;
            let composite = fk.cols.contains(&src_org) && fk.ref_cols.contains(&ref_org);
            (!composite).then_some((fk, src_org, ref_org))
        })
        .collect()
}

struct UniqueToScope {
    index_name: String,
    index_oid: pg_sys::Oid,
    constraint: Option<String>,
    cols: Vec<String>,
    keys: Vec<String>,
    nulls_not_distinct: bool,
    deferrable: bool,
    deferred: bool,
    indexdef: String,
}

fn uniques_without(table: pg_sys::Oid, org_attnum: i16) -> Vec<UniqueToScope> {
    rows(
        "SELECT ic.relname::text, i.indexrelid, con.conname::text,
                ARRAY(SELECT a.attname::text FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k),
                i.indnullsnotdistinct, coalesce(con.condeferrable, false), coalesce(con.condeferred, false),
                pg_get_indexdef(i.indexrelid)
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                                      AND con.contype = 'u'
          WHERE i.indrelid = $1 AND i.indisunique AND NOT i.indisprimary
            AND NOT ($2 = ANY (i.indkey[0:i.indnkeyatts - 1]))
          ORDER BY ic.relname",
        &[table.into(), org_attnum.into()],
        |r| {
            Ok(UniqueToScope {
                index_name: text(r, 1)?,
                index_oid: oid_at(r, 2)?,
                constraint: r.get::<String>(3)?,
                cols: r.get::<Vec<String>>(4)?.unwrap_or_default(),
                keys: r.get::<Vec<String>>(5)?.unwrap_or_default(),
                nulls_not_distinct: r.get::<bool>(6)?.unwrap_or_default(),
                deferrable: r.get::<bool>(7)?.unwrap_or_default(),
                deferred: r.get::<bool>(8)?.unwrap_or_default(),
                indexdef: text(r, 9)?,
            })
        },
    )
}

/// The definition of a unique index, under a new name, with the org column put first among its keys.
/// pg_get_indexdef
/// writes `CREATE UNIQUE INDEX name ON [ONLY ]table USING btree (keys…)…`; anything else is refused
/// rather than guessed at. `ONLY` (a partitioned table's index) is dropped so the partitions get it too.
fn indexdef_led_by(u: &UniqueToScope, new_name: &str, table: &Table, org: &str) -> String {
    let create = format!("CREATE UNIQUE INDEX {} ON ", ident(&u.index_name));
    let using = format!("{} USING btree (", table.name);
    let rest = ["", "ONLY "]
        .iter()
        .find_map(|only| u.indexdef.strip_prefix(&format!("{create}{only}{using}")))
        .unwrap_or_else(|| {
            errors::invalid_argument(
                format!("cannot rewrite unique index {} automatically: {}", u.index_name, u.indexdef),
                "Rewrite it by hand so that it leads with the org column, or pass scope_unique => false.",
            )
        });
    format!("CREATE UNIQUE INDEX {} ON {using}{}, {rest}", ident(new_name), ident(org))
}

fn partitions(table: &Table) -> Vec<(pg_sys::Oid, String)> {
    rows(
        "SELECT relid, relid::regclass::text FROM pg_partition_tree($1) WHERE relid <> $1::regclass ORDER BY level, relid::regclass::text",
        &[table.oid.into()],
        |r| Ok((oid_at(r, 1)?, text(r, 2)?)),
    )
}

fn org_exists(org: Uuid) -> bool {
    rows("SELECT true FROM inventory.organizations WHERE id = $1", &[org.into()], |r| r.get::<bool>(1)).len() == 1
}

fn has_rows(table: &Table, filter: &str) -> bool {
    rows(&format!("SELECT true FROM {} WHERE {filter} LIMIT 1", table.name), &[], |r| r.get::<bool>(1)).len() == 1
}

/// Permissive policies are OR-ed: a permissive policy on the table or on one of its partitions (which a
/// query can name directly) that lets rows through other than by the org column would keep them open
/// to every tenant, and to sessions without one, whatever the tenant policy says. The call refuses
/// such a table before changing anything (55000), naming each policy and the SQL that closes it;
/// `inventory.open_policies` (sql/isolation.sql) decides, as it does for `isolation_report`. A policy
/// of ours of another shape is not refused: `isolate` replaces it.
fn refuse_open_policies(table: &Table, partitions: &[(pg_sys::Oid, String)], org: &str) {
    let mut relations = vec![table.oid];
    relations.extend(partitions.iter().map(|(oid, _)| *oid));
    let open = rows(
        "SELECT format('%I on %s', o.policy, r.relid::regclass), o.drop_policy, o.as_restrictive
           FROM unnest($1::oid[]) WITH ORDINALITY AS r(relid, n)
          CROSS JOIN LATERAL inventory.open_policies(r.relid::regclass, $2) AS o
          WHERE o.policy <> $3
          ORDER BY r.n, o.policy",
        &[relations.into(), org.into(), POLICY.into()],
        |r| Ok((text(r, 1)?, text(r, 2)?, text(r, 3)?)),
    );
    if open.is_empty() {
        return;
    }
    let names: Vec<&str> = open.iter().map(|(name, _, _)| name.as_str()).collect();
    let fixes: Vec<String> = open
        .iter()
        .map(|(_, drop, restrictive)| format!("{drop}  -- or, to keep it as a further restriction: {restrictive}"))
        .collect();
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{} has permissive policies besides {POLICY} that would keep it open to every tenant: {}",
            table.name,
            names.join(", ")
        ),
        format!(
            "Permissive policies are OR-ed with the tenant policy, so each lets its rows through whatever the tenant. \
             Drop each, or recreate it AS RESTRICTIVE (a restriction on top of the tenant policy), then call \
             enable_tenant_isolation again. Nothing was changed.\n{}",
            fixes.join("\n")
        ),
    )
}

/// Row-level security on one relation: enabled, forced, and our one policy for all commands.
fn isolate(changes: &mut Changes, rel: pg_sys::Oid, rel_name: &str, org: &str) {
    let (enabled, forced) = rows(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1",
        &[rel.into()],
        |r| Ok((r.get::<bool>(1)?.unwrap_or_default(), r.get::<bool>(2)?.unwrap_or_default())),
    )
    .pop()
    .unwrap_or_else(|| errors::undefined_relation(rel));
    if !enabled {
        changes.run(
            format!("enabled row-level security on {rel_name}"),
            &[format!("ALTER TABLE {rel_name} ENABLE ROW LEVEL SECURITY")],
        );
    }
    if !forced {
        changes.run(
            format!("forced row-level security on {rel_name} (the owner is held to it too)"),
            &[format!("ALTER TABLE {rel_name} FORCE ROW LEVEL SECURITY")],
        );
    }
    let expression = format!("({} = ( SELECT inventory.current_org_id() AS current_org_id))", ident(org));
    let existing = rows(
        "SELECT pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
                p.polcmd = '*' AND p.polpermissive AND p.polroles = '{0}'
           FROM pg_policy p WHERE p.polrelid = $1 AND p.polname = $2",
        &[rel.into(), POLICY.into()],
        |r| Ok((r.get::<String>(1)?, r.get::<String>(2)?, r.get::<bool>(3)?.unwrap_or_default())),
    )
    .pop();
    let create = format!(
        "CREATE POLICY {POLICY} ON {rel_name} AS PERMISSIVE FOR ALL TO PUBLIC \
         USING ({col} = (SELECT inventory.current_org_id())) \
         WITH CHECK ({col} = (SELECT inventory.current_org_id()))",
        col = ident(org)
    );
    match existing {
        None => changes.run(
            format!("created policy {POLICY} on {rel_name}: {} = current_org_id(), for reading and writing", ident(org)),
            &[create],
        ),
        Some((using, check, shape)) if using.as_deref() == Some(&expression) && check.as_deref() == Some(&expression) && shape => {}
        Some(_) => changes.run(
            format!("replaced policy {POLICY} on {rel_name}, which did not match the tenant expression"),
            &[format!("DROP POLICY {POLICY} ON {rel_name}"), create],
        ),
    }
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn enable_tenant_isolation(
    tbl: Option<RegClass>,
    org_column: default!(Option<SqlName>, "'org_id'"),
    backfill_org: default!(Option<Uuid>, "NULL"),
    scope_unique: default!(Option<bool>, "true"),
) -> SetOfIterator<'static, String> {
    let Some(tbl) = tbl else {
        errors::invalid_argument("tbl must not be NULL", "Pass the table, e.g. 'public.items'.")
    };
    let Some(SqlName(org)) = org_column.filter(|n| !n.0.is_empty()) else {
        errors::invalid_argument("org_column must not be NULL or empty", "Pass the column name, e.g. 'org_id'.")
    };
    let (table, relname) = describe(tbl);
    refuse_open_policies(&table, &partitions(&table), &org);
    let mut changes = Changes(Vec::new());
    let q_org = ident(&org);

    if let Some(b) = backfill_org {
        if !org_exists(b) {
            errors::invalid_argument(
                format!("backfill_org {b} names no organization"),
                "Create it first with inventory.create_organization, or pass an existing organization's id.",
            );
        }
    }

    // 1. The column: added (a constant DEFAULT fills existing rows without rewriting the table), or
    //    checked and its NULLs filled (ROW EXCLUSIVE only).
    match column(table.oid, &org) {
        Some(c) if c.type_name != "uuid" => errors::invalid_argument(
            format!("column {q_org} of {} is of type {}, not uuid", table.name, c.type_name),
            "The org column holds an organization's id; use another column name or convert this one to uuid.",
        ),
        Some(c) if !c.not_null && has_rows(&table, &format!("{q_org} IS NULL")) => match backfill_org {
            None => errors::invalid_argument(
                format!("{} has rows whose {q_org} is NULL", table.name),
                "Pass backfill_org => '<organization id>' to give them to one organization.",
            ),
            Some(b) => {
                let filled = first::<i64>(
                    &format!(
                        "WITH filled AS (UPDATE {} SET {q_org} = $1 WHERE {q_org} IS NULL RETURNING 1) SELECT count(*) FROM filled",
                        table.name
                    ),
                    &[b.into()],
                )
                .unwrap_or_default();
                changes.0.push(format!("filled {q_org} of {filled} rows of {} with {b}", table.name));
            }
        },
        Some(_) => {}
        None => {
            let rows_exist = has_rows(&table, "true");
            match (rows_exist, backfill_org) {
                (true, None) => errors::invalid_argument(
                    format!("{} has rows and no column {q_org}", table.name),
                    "Pass backfill_org => '<organization id>' to give the existing rows to one organization.",
                ),
                (true, Some(b)) => changes.run(
                    format!("added column {q_org} uuid to {}; its existing rows belong to {b}", table.name),
                    &[format!("ALTER TABLE {} ADD COLUMN {q_org} uuid DEFAULT {}::uuid", table.name, literal(b.to_string()))],
                ),
                (false, _) => changes.run(
                    format!("added column {q_org} uuid to {}", table.name),
                    &[format!("ALTER TABLE {} ADD COLUMN {q_org} uuid", table.name)],
                ),
            }
        }
    }
    let col = column(table.oid, &org).unwrap_or_else(|| {
        errors::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column {q_org} of {} does not exist", table.name),
            "It was dropped while the call ran; call it again.",
        )
    });

    // 2. Every row belongs to an existing organization.
    let org_fk = foreign_keys(
        "con.conrelid = $1 AND con.confrelid = 'inventory.organizations'::regclass AND con.conkey = ARRAY[$2]::int2[]",
        &[table.oid.into(), col.attnum.into()],
    );
    if org_fk.is_empty() {
        let name = ident(choose_name(table.oid, &relname, Some(&org), "fkey"));
        let add = format!(
            "ALTER TABLE {} ADD CONSTRAINT {name} FOREIGN KEY ({q_org}) REFERENCES inventory.organizations (id)",
            table.name
        );
        let statements = if table.partitioned {
            vec![add]
        } else {
            vec![format!("{add} NOT VALID"), format!("ALTER TABLE {} VALIDATE CONSTRAINT {name}", table.name)]
        };
        changes.run(format!("added foreign key {name}: {q_org} → inventory.organizations (id)"), &statements);
    }

    // 3. The unique indexes the tenant keys need, built now with CREATE UNIQUE INDEX (SHARE lock:
    //    reads go on) and attached as constraints in the catalog-only phase below. A partitioned
    //    table cannot attach an index as a constraint, so it gets the constraint directly there.
    // A table without a primary key needs some unique key to identify its rows (a balance table's
    // NULLS NOT DISTINCT key, say), which scoping then leads with the org column.
    let pk = primary_key(table.oid);
    let any_unique = !rows("SELECT true FROM pg_index WHERE indrelid = $1 AND indisunique", &[table.oid.into()], |r| {
        r.get::<bool>(1)
    })
    .is_empty();
    if pk.is_empty() && !any_unique {
        errors::invalid_argument(
            format!("{} has no primary key", table.name),
            "Add one first: other tables reference tenant rows by (org column, primary key).",
        );
    }
    let mut org_and_pk = vec![org.clone()];
    org_and_pk.extend(pk.iter().filter(|c| **c != org).cloned());
    let org_pk_name = choose_name(table.oid, &relname, Some(&org_and_pk.join("_")), "key");
    let add_org_pk = !pk.is_empty() && org_and_pk.len() > 1 && !has_unique_on(table.oid, &org_and_pk);
    if add_org_pk && !table.partitioned {
        exec(&format!(
            "CREATE UNIQUE INDEX {} ON {} ({})",
            ident(&org_pk_name),
            table.name,
            quoted_list(&org_and_pk)
        ));
    }
    let to_scope = match scope_unique.unwrap_or(true) {
        true => uniques_without(table.oid, col.attnum),
        false => Vec::new(),
    };
    let mut scoped_keys = Vec::new();
    for u in to_scope {
        let dependents = foreign_keys("con.conindid = $1", &[u.index_oid.into()]);
        let mut re_add = Vec::new();
        for fk in dependents {
            let Some(src_org) = tenant_org_of(fk.table, &table, &org) else {
                errors::invalid_argument(
                    format!(
                        "UNIQUE {} of {} is referenced by foreign key {} of {}, which is not tenant-scoped",
                        u.index_name, table.name, fk.name, fk.table_name
                    ),
                    format!(
                        "Make {} tenant-scoped first, or pass scope_unique => false to keep the key global.",
                        fk.table_name
                    ),
                );
            };
            re_add.push((fk, src_org));
        }
        let new_index = choose_name(table.oid, &u.index_name, None, &org);
        match (&u.constraint, table.partitioned) {
            (Some(_), true) => {}
            (Some(_), false) => exec(&format!(
                "CREATE UNIQUE INDEX {} ON {} ({}, {}){}",
                ident(&new_index),
                table.name,
                q_org,
                quoted_list(&u.cols),
                if u.nulls_not_distinct { " NULLS NOT DISTINCT" } else { "" },
            )),
            (None, _) => exec(&indexdef_led_by(&u, &new_index, &table, &org)),
        }
        scoped_keys.push((u, new_index, re_add));
    }

    // 4. The catalog-only phase: from here on the table is under ACCESS EXCLUSIVE until commit, so
    //    everything slow is done above. (Re-validating rebuilt foreign keys still reads the tables
    //    that reference this one.)
    if add_org_pk {
        let statement = match table.partitioned {
            true => format!("ALTER TABLE {} ADD UNIQUE ({})", table.name, quoted_list(&org_and_pk)),
            false => format!(
                "ALTER TABLE {} ADD CONSTRAINT {n} UNIQUE USING INDEX {n}",
                table.name,
                n = ident(&org_pk_name)
            ),
        };
        changes.run(format!("added UNIQUE ({}) to {}", quoted_list(&org_and_pk), table.name), &[statement]);
    }
    for (u, new_index, re_add) in scoped_keys {
        for (fk, _) in &re_add {
            exec(&drop_fk_statement(fk));
        }
        let deferrable = match (u.deferrable, u.deferred) {
            (true, true) => " DEFERRABLE INITIALLY DEFERRED",
            (true, false) => " DEFERRABLE",
            _ => "",
        };
        let statements = match (&u.constraint, table.partitioned) {
            (Some(name), true) => {
                let mut scoped = vec![org.clone()];
                scoped.extend(u.cols.iter().cloned());
                vec![format!(
                    "ALTER TABLE {t} DROP CONSTRAINT {c}, ADD CONSTRAINT {c} UNIQUE{nnd} ({cols}){deferrable}",
                    t = table.name,
                    c = ident(name),
                    nnd = if u.nulls_not_distinct { " NULLS NOT DISTINCT" } else { "" },
                    cols = quoted_list(&scoped),
                )]
            }
            // Renamed first, so that ADD CONSTRAINT … USING INDEX has no renaming NOTICE to give.
            (Some(name), false) => vec![
                format!("ALTER TABLE {} DROP CONSTRAINT {}", table.name, ident(name)),
                format!(
                    "ALTER INDEX {}.{} RENAME TO {}",
                    table.schema,
                    ident(&new_index),
                    ident(name)
                ),
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {n} UNIQUE USING INDEX {n}{deferrable}",
                    table.name,
                    n = ident(name)
                ),
            ],
            (None, _) => vec![
                format!("DROP INDEX {}.{}", table.schema, ident(&u.index_name)),
                format!(
                    "ALTER INDEX {}.{} RENAME TO {}",
                    table.schema,
                    ident(&new_index),
                    ident(&u.index_name)
                ),
            ],
        };
        changes.run(
            format!(
                "scoped unique {} of {} to the tenant: now ({}, {})",
                ident(&u.index_name),
                table.name,
                q_org,
                u.keys.join(", ")
            ),
            &statements,
        );
        for (fk, src_org) in re_add {
            changes.run(
                format!(
                    "rebuilt foreign key {} of {} on the scoped key: {}",
                    ident(&fk.name),
                    fk.table_name,
                    composite_fk_text(&fk, &src_org, &org)
                ),
                &composite_fk_statements(&fk, &src_org, &org),
            );
        }
    }

    // Foreign keys between tenant tables carry both org columns, so no row references another
    // tenant's row.
    for (fk, src_org, ref_org) in single_tenant_fks(&table, &org) {
        let mut statements = vec![drop_fk_statement(&fk)];
        statements.extend(composite_fk_statements(&fk, &src_org, &ref_org));
        changes.run(
            format!(
                "replaced foreign key {} of {} with {}",
                ident(&fk.name),
                fk.table_name,
                composite_fk_text(&fk, &src_org, &ref_org)
            ),
            &statements,
        );
    }

    // An index that leads with the org column (the UNIQUE above is one, unless the primary key
    // already held the org column in another place).
    let leading = rows(
        "SELECT true FROM pg_index WHERE indrelid = $1 AND indkey[0] = $2 AND indisvalid",
        &[table.oid.into(), col.attnum.into()],
        |r| r.get::<bool>(1),
    );
    if leading.is_empty() {
        changes.run(
            format!("added an index on {} ({q_org})", table.name),
            &[format!("CREATE INDEX ON {} ({q_org})", table.name)],
        );
    }

    if col.default.as_deref() != Some(CONTEXT_DEFAULT) {
        changes.run(
            format!("set the default of {q_org} of {} to {CONTEXT_DEFAULT} (no tenant context: error 42501)", table.name),
            &[format!("ALTER TABLE {} ALTER COLUMN {q_org} SET DEFAULT {CONTEXT_DEFAULT}", table.name)],
        );
    }
    if !col.not_null {
        changes.run(
            format!("made {q_org} of {} NOT NULL", table.name),
            &[format!("ALTER TABLE {} ALTER COLUMN {q_org} SET NOT NULL", table.name)],
        );
    }
    // Checked again on the partitions as they are now: one attached while the call ran is held to the
    // same rule before it gets the tenant policy.
    let parts = partitions(&table);
    refuse_open_policies(&table, &parts, &org);
    isolate(&mut changes, table.oid, &table.name, &org);
    for (oid, name) in parts {
        isolate(&mut changes, oid, &name, &org);
    }

    if registered_org_column(table.oid).as_deref() != Some(org.as_str()) {
        exec_with_args(
            "INSERT INTO inventory.tenant_tables (relid, org_column, builtin) VALUES ($1::regclass, $2, $3)
             ON CONFLICT (relid) DO UPDATE SET org_column = excluded.org_column, enabled_at = now()",
            &[table.oid.into(), org.as_str().into(), crate::sql_version::extension_script_owns(table.oid).into()],
        );
        changes.0.push(format!("registered {} in inventory.tenant_tables with org column {q_org}", table.name));
    }
    SetOfIterator::new(changes.0)
}

/// Removes the policy and row-level security; keeps the column, its constraints and the data.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn disable_tenant_isolation(tbl: Option<RegClass>) -> SetOfIterator<'static, String> {
    let Some(tbl) = tbl else {
        errors::invalid_argument("tbl must not be NULL", "Pass the table, e.g. 'public.items'.")
    };
    let (table, _) = describe(tbl);
    let mut changes = Changes(Vec::new());
    let mut relations = vec![(table.oid, table.name.clone())];
    relations.extend(partitions(&table));
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
            changes.run(format!("dropped policy {POLICY} on {name}"), &[format!("DROP POLICY {POLICY} ON {name}")]);
        }
        if forced {
            changes.run(
                format!("stopped forcing row-level security on {name}"),
                &[format!("ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY")],
            );
        }
        if enabled {
            changes.run(
                format!("disabled row-level security on {name}"),
                &[format!("ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")],
            );
        }
    }
    let unregistered = first::<bool>(
        "WITH gone AS (DELETE FROM inventory.tenant_tables WHERE relid = $1::regclass RETURNING 1) SELECT count(*) > 0 FROM gone",
        &[table.oid.into()],
    );
    if unregistered == Some(true) {
        changes.0.push(format!("removed {} from inventory.tenant_tables", table.name));
    }
    SetOfIterator::new(changes.0)
}
