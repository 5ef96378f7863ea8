//! Reading the catalog once into a [`Description`]: everything the planner (`plan.rs`) needs to know
//! about a table it is asked to make tenant-scoped, as plain data. Nothing here changes anything.
//!
//! Names are schema-qualified and quoted: the functions that call this pin
//! `search_path = pg_catalog, pg_temp`, so `regclass::text` always qualifies.

use super::plan::{
    Check, Column, Description, ForeignKey, IndexState, OrgKey, Policy, Relation, Refusal, ScopedUnique, Table,
    UniqueToScope,
};
use crate::errors;
use crate::spi_util::{oid_at, rows, text};
use crate::sql_text::ident;
use crate::sql_types::RegClass;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::Uuid;

/// The policy every tenant-scoped table gets; its name marks it as ours.
pub const POLICY: &str = "tenant_isolation";

/// A name for a constraint or index the helper adds, as PostgreSQL chooses one (`ChooseRelationName`):
/// `name1_name2_label`, the longer part cut (at a character boundary) to fit 63 bytes, and a number
/// added when the name is taken by a relation or constraint of the schema, or by a name chosen earlier
/// for the same plan (`taken`). A 63-byte table name would otherwise make a constraint name equal to
/// the table's own.
fn choose_name(table: pg_sys::Oid, name1: &str, name2: Option<&str>, label: &str, taken: &mut Vec<String>) -> String {
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    for n in 0.. {
        let label = if n == 0 { label.to_string() } else { format!("{label}{n}") };
        let (c1, c2, cl) = (c(name1), name2.map(c), c(&label));
        // SAFETY: NUL-terminated strings; the result is palloc'd in the current memory context.
        let chosen = unsafe {
            let namespace = pg_sys::get_rel_namespace(table);
            let chosen = pg_sys::ChooseRelationName(
                c1.as_ptr(),
                c2.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
                cl.as_ptr(),
                namespace,
                true,
            );
            std::ffi::CStr::from_ptr(chosen).to_string_lossy().into_owned()
        };
        if !taken.contains(&chosen) {
            taken.push(chosen.clone());
            return chosen;
        }
    }
    unreachable!()
}

/// The name `choose_name` gives when nothing is in the way (`makeObjectName`): how the helper knows an
/// index it built on an earlier, interrupted online run.
fn first_choice(name1: &str, name2: Option<&str>, label: &str) -> String {
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (c1, c2, cl) = (c(name1), name2.map(c), c(label));
    // SAFETY: as in `choose_name`.
    unsafe {
        let made = pg_sys::makeObjectName(c1.as_ptr(), c2.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()), cl.as_ptr());
        std::ffi::CStr::from_ptr(made).to_string_lossy().into_owned()
    }
}

/// The table a call works on, checked to be one that can be made tenant-scoped (else 22023 or 42P01).
pub fn table(RegClass(oid): RegClass) -> Table {
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
    Table { oid, name, relname, schema, partitioned: kind == "p" }
}

/// Everything the planner needs, read now. `online`: whether the online path asks (it alone uses a
/// CHECK to prove NOT NULL, and so reads whether one is there first).
pub fn describe(table: Table, org: String, backfill_org: Option<Uuid>, scope_unique: bool) -> Description {
    let mut taken = Vec::new();
    let column = column(table.oid, &org);
    let attnum = column.as_ref().map(|c| c.attnum);
    // Not `<table>_<column>_not_null`: PostgreSQL 18 gives that name to the NOT NULL constraint SET NOT
    // NULL makes, which would then be `…_not_null1` after the online path and differ from the one-call path's.
    let not_null_check_name = first_choice(&table.relname, Some(&org), "not_null_check");
    let not_null_check = attnum.and_then(|a| not_null_check(&table, a));
    // A scan, so only when its answer matters: a nullable column not yet proved free of NULLs.
    let has_nulls = match &column {
        Some(c) if !c.not_null && not_null_check.is_none() => has_rows(&table, &format!("{} IS NULL", ident(&org))),
        _ => false,
    };
    let has_rows = column.is_none() && has_rows(&table, "true");
    let backfill_org_exists = backfill_org.map(org_exists);
    let org_fk = attnum.and_then(|a| {
        foreign_keys(
            "con.conrelid = $1 AND con.confrelid = 'inventory.organizations'::regclass AND con.conkey = ARRAY[$2]::int2[]",
            &[table.oid.into(), a.into()],
        )
        .pop()
    });
    let org_fk_name = match &org_fk {
        Some(fk) => fk.name.clone(),
        None => choose_name(table.oid, &table.relname, Some(&org), "fkey", &mut taken),
    };

    let pk = primary_key(table.oid);
    let any_unique = !rows("SELECT true FROM pg_index WHERE indrelid = $1 AND indisunique", &[table.oid.into()], |r| {
        r.get::<bool>(1)
    })
    .is_empty();
    let mut org_and_pk = vec![org.clone()];
    org_and_pk.extend(pk.iter().filter(|c| **c != org).cloned());
    let org_key = if pk.is_empty() || org_and_pk.len() == 1 {
        None
    } else {
        let ours = first_choice(&table.relname, Some(&org_and_pk.join("_")), "key");
        let state = match unique_on(table.oid, &org_and_pk, &ours) {
            Some(state) => state,
            None => IndexState::Missing(choose_name(table.oid, &table.relname, Some(&org_and_pk.join("_")), "key", &mut taken)),
        };
        Some(OrgKey { cols: org_and_pk, state })
    };

    let to_scope = match scope_unique {
        true => uniques_without(table.oid, attnum),
        false => Vec::new(),
    };
    let mut scoped = Vec::new();
    let mut rebuilt_with_keys = Vec::new();
    for unique in to_scope {
        let dependents: Vec<(ForeignKey, Option<String>)> = foreign_keys("con.conindid = $1", &[unique.index_oid.into()])
            .into_iter()
            .map(|fk| {
                let src_org = tenant_org_of(fk.table, &table, &org);
                (fk, src_org)
            })
            .collect();
        rebuilt_with_keys.extend(dependents.iter().map(|(fk, _)| (fk.table, fk.name.clone())));
        let index = prebuilt_scoped(&table, &unique, &org)
            .unwrap_or_else(|| IndexState::Missing(choose_name(table.oid, &unique.index_name, None, &org, &mut taken)));
        scoped.push(ScopedUnique { unique, dependents, index });
    }

    let tenant_fks = single_tenant_fks(&table, &org)
        .into_iter()
        .filter(|(fk, _, _)| !rebuilt_with_keys.contains(&(fk.table, fk.name.clone())))
        .collect();
    let unvalidated_fks = if column.is_some() { unvalidated_fks(&table, &org) } else { Vec::new() };
    let leading_index_name = first_choice(&table.relname, Some(&org), "idx");
    let leading_index = match attnum {
        None => IndexState::Missing(choose_name(table.oid, &table.relname, Some(&org), "idx", &mut taken)),
        Some(a) => leading_index(&table, a, &leading_index_name)
            .unwrap_or_else(|| IndexState::Missing(choose_name(table.oid, &table.relname, Some(&org), "idx", &mut taken))),
    };

    let mut relations = vec![relation(table.oid, table.name.clone())];
    relations.extend(partitions(&table).into_iter().map(|(oid, name)| relation(oid, name)));
    let open_policies = open_policies(&relations, &org);
    let registered = registered_org_column(table.oid);
    let builtin = crate::sql_version::extension_script_owns(table.oid);
    let on_citus = crate::citus::installed();
    let distributed_by = if on_citus { crate::citus::distribution_column(table.oid) } else { None };
    Description {
        table,
        org,
        backfill_org,
        backfill_org_exists,
        column,
        has_rows,
        has_nulls,
        not_null_check,
        not_null_check_name,
        org_fk,
        org_fk_name,
        pk,
        any_unique,
        org_key,
        scoped,
        tenant_fks,
        unvalidated_fks,
        leading_index,
        relations,
        open_policies,
        registered,
        builtin,
        on_citus,
        distributed_by,
    }
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

/// The `CHECK (org IS NOT NULL)` the online path adds to prove NOT NULL without a scan under ACCESS
/// EXCLUSIVE (whatever its name: one left by an interrupted run is found by what it checks).
fn not_null_check(table: &Table, attnum: i16) -> Option<Check> {
    rows(
        "SELECT con.conname::text, con.convalidated
           FROM pg_constraint con, pg_attribute a
          WHERE con.conrelid = $1 AND con.contype = 'c' AND a.attrelid = con.conrelid AND a.attnum = $2
            AND regexp_replace(pg_get_constraintdef(con.oid), ' NOT VALID$', '')
                = format('CHECK ((%I IS NOT NULL))', a.attname)
          ORDER BY con.convalidated DESC, con.conname LIMIT 1",
        &[table.oid.into(), attnum.into()],
        |r| Ok(Check { name: text(r, 1)?, valid: r.get::<bool>(2)?.unwrap_or_default() }),
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
pub fn registered_org_column(table: pg_sys::Oid) -> Option<String> {
    rows("SELECT org_column::text FROM inventory.tenant_tables WHERE relid = $1", &[table.into()], |r| text(r, 1))
        .pop()
}

/// How `(org, primary key)` is made unique already: `Done` when some valid unique index covers exactly
/// `cols`, in any order (what a foreign key needs to reference them) — unless it is a plain index named
/// `ours`, which an interrupted online run built and did not get to attach as a constraint yet
/// (`Built`). An invalid index named `ours` is a build that failed (`Invalid`). `None`: nothing yet.
fn unique_on(table: pg_sys::Oid, cols: &[String], ours: &str) -> Option<IndexState> {
    let cols: Vec<Option<String>> = cols.iter().cloned().map(Some).collect();
    let found = rows(
        &format!("SELECT ic.relname::text, i.indisvalid, con.oid IS NOT NULL, {BUILDER}
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
           LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
          WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL
            AND i.indnkeyatts = cardinality($2::text[])
            AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                   FROM unnest(i.indkey[0:i.indnkeyatts - 1]) k(attnum)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) c)
          ORDER BY i.indisvalid DESC, con.oid IS NOT NULL DESC, ic.relname <> $3"),
        &[table.into(), cols.into(), ours.into()],
        |r| Ok((text(r, 1)?, r.get::<bool>(2)?.unwrap_or_default(), r.get::<bool>(3)?.unwrap_or_default(), r.get::<i32>(4)?)),
    );
    let (name, valid, constraint, builder) = found.into_iter().find(|(name, valid, _, _)| *valid || name == ours)?;
    Some(match (valid, constraint, name == ours) {
        (true, true, _) | (true, false, false) => IndexState::Done,
        (true, false, true) => IndexState::Built(name),
        (false, _, _) => invalid(name, builder),
    })
}

const FOREIGN_KEYS: &str = "
    SELECT con.conname::text, con.conrelid, con.conrelid::regclass::text, con.confrelid, con.confrelid::regclass::text,
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o),
           con.confupdtype::text, con.confdeltype::text, con.confmatchtype::text, con.condeferrable,
           con.condeferred, src.relkind = 'p', con.convalidated
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
            valid: r.get::<bool>(14)?.unwrap_or_default(),
        })
    })
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

/// Composite foreign keys between tenant tables that are not validated yet: what an interrupted online
/// run (or a `NOT VALID` by hand) left. (The organization foreign key is `Description::org_fk`.)
fn unvalidated_fks(this: &Table, org: &str) -> Vec<ForeignKey> {
    foreign_keys("(con.conrelid = $1 OR con.confrelid = $1) AND NOT con.convalidated", &[this.oid.into()])
        .into_iter()
        .filter(|fk| {
            match (tenant_org_of(fk.table, this, org), tenant_org_of(fk.ref_table, this, org)) {
                (Some(src), Some(dst)) => fk.cols.contains(&src) && fk.ref_cols.contains(&dst),
                _ => false,
            }
        })
        .collect()
}

/// The unique keys other than the primary key that do not hold the org column (all of them while the
/// column does not exist yet).
fn uniques_without(table: pg_sys::Oid, org_attnum: Option<i16>) -> Vec<UniqueToScope> {
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
          WHERE i.indrelid = $1 AND i.indisunique AND NOT i.indisprimary AND i.indisvalid
            AND ($2::int2 IS NULL OR NOT ($2 = ANY (i.indkey[0:i.indnkeyatts - 1])))
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

/// An index built for `unique` by an earlier run: one whose definition is the scoped definition under
/// its own name (valid: built; invalid: a build that failed and must go first).
fn prebuilt_scoped(table: &Table, unique: &UniqueToScope, org: &str) -> Option<IndexState> {
    let candidates = rows(
        &format!("SELECT ic.relname::text, i.indisvalid, pg_get_indexdef(i.indexrelid),
                {BUILDER}
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1 AND i.indexrelid <> $2 AND i.indisunique
          ORDER BY i.indisvalid DESC, ic.relname"),
        &[table.oid.into(), unique.index_oid.into()],
        |r| Ok((text(r, 1)?, r.get::<bool>(2)?.unwrap_or_default(), text(r, 3)?, r.get::<i32>(4)?)),
    );
    candidates.into_iter().find_map(|(name, valid, def, builder)| {
        let expected = super::plan::indexdef_led_by(unique, &name, table, org).ok()?;
        // pg_get_indexdef ends where the led-by definition does: same text, same index.
        (def == expected).then(|| if valid { IndexState::Built(name) } else { invalid(name, builder) })
    })
}

/// Whether a valid index leads with the org column (`Done`); an invalid one named `ours` is a failed
/// online build (`Invalid`).
fn leading_index(table: &Table, attnum: i16, ours: &str) -> Option<IndexState> {
    let found = rows(
        &format!("SELECT ic.relname::text, i.indisvalid,
                {BUILDER}
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1 AND i.indkey[0] = $2 AND (i.indisvalid OR ic.relname = $3)
          ORDER BY i.indisvalid DESC"),
        &[table.oid.into(), attnum.into(), ours.into()],
        |r| Ok((text(r, 1)?, r.get::<bool>(2)?.unwrap_or_default(), r.get::<i32>(3)?)),
    );
    found.into_iter().next().map(|(name, valid, builder)| if valid { IndexState::Done } else { invalid(name, builder) })
}

/// The backend building index `i` right now, if any (a column of the index queries below).
const BUILDER: &str = "(SELECT p.pid FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid LIMIT 1)";

/// An invalid index: a build that failed (to drop and build again), or one still running in another
/// session (`pg_stat_progress_create_index` names its backend), which must be left to finish.
fn invalid(name: String, builder: Option<i32>) -> IndexState {
    match builder {
        Some(pid) => IndexState::Building(name, pid),
        None => IndexState::Invalid(name),
    }
}

pub fn partitions(table: &Table) -> Vec<(pg_sys::Oid, String)> {
    rows(
        "SELECT relid, relid::regclass::text FROM pg_partition_tree($1) WHERE relid <> $1::regclass ORDER BY level, relid::regclass::text",
        &[table.oid.into()],
        |r| Ok((oid_at(r, 1)?, text(r, 2)?)),
    )
}

/// Row-level security on one relation as it is now, and our policy on it.
fn relation(oid: pg_sys::Oid, name: String) -> Relation {
    let (enabled, forced) = rows(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1",
        &[oid.into()],
        |r| Ok((r.get::<bool>(1)?.unwrap_or_default(), r.get::<bool>(2)?.unwrap_or_default())),
    )
    .pop()
    .unwrap_or_else(|| errors::undefined_relation(oid));
    let policy = rows(
        "SELECT pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
                p.polcmd = '*' AND p.polpermissive AND p.polroles = '{0}'
           FROM pg_policy p WHERE p.polrelid = $1 AND p.polname = $2",
        &[oid.into(), POLICY.into()],
        |r| Ok(Policy { using: r.get::<String>(1)?, check: r.get::<String>(2)?, for_all_public: r.get::<bool>(3)?.unwrap_or_default() }),
    )
    .pop();
    Relation { oid, name, enabled, forced, policy }
}

fn org_exists(org: Uuid) -> bool {
    rows("SELECT true FROM inventory.organizations WHERE id = $1", &[org.into()], |r| r.get::<bool>(1)).len() == 1
}

fn has_rows(table: &Table, filter: &str) -> bool {
    rows(&format!("SELECT true FROM {} WHERE {filter} LIMIT 1", table.name), &[], |r| r.get::<bool>(1)).len() == 1
}

/// Permissive policies are OR-ed: a permissive policy on the table or on one of its partitions (which a
/// query can name directly) that lets rows through other than by the org column would keep them open
/// to every tenant, and to sessions without one, whatever the tenant policy says.
/// `inventory.open_policies` (sql/isolation.sql) decides, as it does for `isolation_report`; a policy of
/// ours of another shape is not listed: the plan replaces it. Each: (name, DROP, AS RESTRICTIVE).
fn open_policies(relations: &[Relation], org: &str) -> Vec<(String, String, String)> {
    let oids: Vec<pg_sys::Oid> = relations.iter().map(|r| r.oid).collect();
    rows(
        "SELECT format('%I on %s', o.policy, r.relid::regclass), o.drop_policy, o.as_restrictive
           FROM unnest($1::oid[]) WITH ORDINALITY AS r(relid, n)
          CROSS JOIN LATERAL inventory.open_policies(r.relid::regclass, $2) AS o
          WHERE o.policy <> $3
          ORDER BY r.n, o.policy",
        &[oids.into(), org.into(), POLICY.into()],
        |r| Ok((text(r, 1)?, text(r, 2)?, text(r, 3)?)),
    )
}

/// Raises what the planner refused, with its SQLSTATE.
pub fn raise(refusal: Refusal) -> ! {
    errors::raise(refusal.code, refusal.message, refusal.hint)
}
