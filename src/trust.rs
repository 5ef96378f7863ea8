//! The trust model (docs/SECURITY.md, "Who is trusted") and how the extension holds privileged work to it.
//!
//! - Trusted: superusers and the extension's owner.
//! - Semi-trusted: roles that own tables or schemas. They may break their own tables, never gain a right.
//! - Untrusted: application roles.
//!
//! Balance upkeep (the balance trigger, reconcile's corrections, `rebuild_balances`) writes a balance
//! table that an application's schema owner may control, and reads a ledger it may control. Whatever
//! runs there — triggers, rules, defaults, check and domain constraints, operators, index expressions,
//! casts of column types — runs as the identity that does the work, and every name the generated SQL
//! spells (the tables, the key columns' types) is looked up in schemas someone owns. So the work has an
//! *upkeep identity* (`Upkeep`), decided from the catalog every time the work is planned:
//! - both tables owned by trusted roles, and nothing they use — the code above, followed through
//!   domains, composite types and operators, and the schemas of the tables and types — owned by anyone
//!   else: the extension's own rights (SECURITY DEFINER), as for the built-in tables;
//! - both tables owned by one role that is not trusted, and nothing they use owned by a third role: that
//!   owner's rights inside a security-restricted operation (`run`), the way PostgreSQL runs REFRESH
//!   MATERIALIZED VIEW, VACUUM and index expressions (CVE-2022-1552). For a tenant-scoped balance table
//!   forced row-level security is lifted for the owner's own tables only (`SECURITY_NOFORCE_RLS`, as
//!   PostgreSQL's foreign-key checks do), so the owner writes its balance rows of every tenant without
//!   being given any tenant's context; since that flag would follow the owner's code into other owners'
//!   SECURITY DEFINER functions, none of the owner's code may be on such tables (only its schemas);
//! - anything else (partitions and inheritance included): refused, naming the object and its owner.
//!
//! While the owner's code runs inside `run`, it is the caller of the extension's own functions
//! (`upkeep_owner`, read by `tenant::caller`); inside PostgreSQL's own restricted operations for some
//! other owner, nobody is (`in_foreign_restricted_operation`).

use crate::errors;
use crate::spi_util::rows;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

/// The identity balance upkeep of one ledger runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upkeep {
    /// The extension's own rights (the function's SECURITY DEFINER owner).
    Definer,
    /// The tables' owner, in a security-restricted operation. `own_rows`: forced row-level security
    /// is lifted for the owner's own tables (a tenant-scoped balance table, whose rows of every tenant
    /// it writes), which the check allows only when none of the owner's code can run inside.
    Owner { role: pg_sys::Oid, own_rows: bool },
}

thread_local! {
    /// The owner whose upkeep `run` is doing now (innermost first): the identity every SECURITY
    /// DEFINER function of the extension must take for its caller while the owner's code runs, since
    /// PostgreSQL's outer user is still the session's.
    static UPKEEP_OWNERS: std::cell::RefCell<Vec<pg_sys::Oid>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The owner whose code may be running inside the upkeep now, if any.
pub fn upkeep_owner() -> Option<pg_sys::Oid> {
    UPKEEP_OWNERS.with(|o| o.borrow().last().copied())
}

/// Inside a security-restricted operation that is not the extension's own upkeep (PostgreSQL running
/// an object owner's code for REFRESH MATERIALIZED VIEW, VACUUM, an index expression…), the outer user
/// is not who calls: nobody may choose a tenant or act as an administrator from there.
pub fn in_foreign_restricted_operation() -> bool {
    // SAFETY: reads a backend global.
    let restricted = unsafe { pg_sys::InSecurityRestrictedOperation() };
    restricted && upkeep_owner().is_none()
}

/// The trusted roles: superusers and the extension's owner (read once per decision, not per object).
struct TrustedRoles {
    extension_owner: Option<pg_sys::Oid>,
}

/// The extension's owner (the bootstrap superuser when the catalog has no answer, which cannot happen
/// while the extension's functions run).
pub fn extension_owner() -> pg_sys::Oid {
    TrustedRoles::read().extension_owner.unwrap_or(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID))
}

impl TrustedRoles {
    fn read() -> TrustedRoles {
        let extension_owner =
            Spi::get_one::<pg_sys::Oid>("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'inventory_ext'")
                .ok()
                .flatten();
        TrustedRoles { extension_owner }
    }

    fn contains(&self, role: pg_sys::Oid) -> bool {
        // SAFETY: a catalog lookup for a role OID (cached by PostgreSQL).
        let superuser = unsafe { pg_sys::superuser_arg(role) };
        superuser || self.extension_owner == Some(role)
    }
}

/// What the catalog says about one table the upkeep touches.
struct TableFacts {
    name: String,
    owner: pg_sys::Oid,
    owner_name: String,
}

fn table_facts(table: pg_sys::Oid) -> TableFacts {
    rows(
        "SELECT c.oid::regclass::text, c.relowner, r.rolname::text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner WHERE c.oid = $1",
        &[table.into()],
        |r| {
            Ok(TableFacts {
                name: r.get::<String>(1)?.unwrap_or_default(),
                owner: r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                owner_name: r.get::<String>(3)?.unwrap_or_default(),
            })
        },
    )
    .pop()
    .unwrap_or_else(|| {
        errors::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("a table of a tracked ledger (OID {}) no longer exists", u32::from(table)),
            "It was dropped after inventory.track_balances: re-run track_balances for the ledger, or untrack_balances.",
        )
    })
}

/// Everything work on `tables` may run or look up by name, with its owner: the tables' schemas; their
/// defaults, constraints, triggers, indexes, policies and rules; the functions, operators and types
/// those use, and the column types; followed through types (domain constraints, base, element and
/// range types, the columns of composite types) and operators (their functions) to the end; and the
/// schemas of every type. Each as (what, owner OID, owner name).
fn used_objects(tables: &[pg_sys::Oid]) -> Vec<(String, pg_sys::Oid, String)> {
    rows(
        "WITH RECURSIVE objs(classid, objid) AS (
             SELECT 'pg_catalog.pg_class'::regclass::oid, t FROM unnest($1::oid[]) t
           UNION
             SELECT e.classid, e.objid FROM objs o CROSS JOIN LATERAL (
                 -- what an object uses (a function its types; a constraint its functions and operators; …)
                 SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d
                  WHERE d.classid = o.classid AND d.objid = o.objid AND d.deptype IN ('n', 'a', 'i')
                    AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_type'::regclass,
                                         'pg_catalog.pg_operator'::regclass)
                 -- a table's own parts (pg_class here is one of the start tables or an index of one)
                 UNION ALL SELECT 'pg_catalog.pg_attrdef'::regclass, a.oid FROM pg_catalog.pg_attrdef a
                  WHERE o.classid = 'pg_catalog.pg_class'::regclass AND a.adrelid = o.objid
                 UNION ALL SELECT 'pg_catalog.pg_constraint'::regclass, c.oid FROM pg_catalog.pg_constraint c
                  WHERE (o.classid = 'pg_catalog.pg_class'::regclass AND c.conrelid = o.objid)
                     OR (o.classid = 'pg_catalog.pg_type'::regclass AND c.contypid = o.objid)
                 UNION ALL SELECT 'pg_catalog.pg_trigger'::regclass, g.oid FROM pg_catalog.pg_trigger g
                  WHERE o.classid = 'pg_catalog.pg_class'::regclass AND g.tgrelid = o.objid AND NOT g.tgisinternal
                 UNION ALL SELECT 'pg_catalog.pg_class'::regclass, i.indexrelid FROM pg_catalog.pg_index i
                  WHERE o.classid = 'pg_catalog.pg_class'::regclass AND i.indrelid = o.objid
                 UNION ALL SELECT 'pg_catalog.pg_policy'::regclass, p.oid FROM pg_catalog.pg_policy p
                  WHERE o.classid = 'pg_catalog.pg_class'::regclass AND p.polrelid = o.objid
                 UNION ALL SELECT 'pg_catalog.pg_rewrite'::regclass, w.oid FROM pg_catalog.pg_rewrite w
                  WHERE o.classid = 'pg_catalog.pg_class'::regclass AND w.ev_class = o.objid
                 -- column types of a table, and of a composite type's columns
                 UNION ALL SELECT 'pg_catalog.pg_type'::regclass, a.atttypid FROM pg_catalog.pg_attribute a
                  WHERE o.classid = 'pg_catalog.pg_class'::regclass AND a.attrelid = o.objid AND a.attnum > 0
                    AND NOT a.attisdropped
                 UNION ALL SELECT 'pg_catalog.pg_class'::regclass, t.typrelid FROM pg_catalog.pg_type t
                  WHERE o.classid = 'pg_catalog.pg_type'::regclass AND t.oid = o.objid AND t.typrelid <> 0
                    AND t.typtype = 'c'
                 UNION ALL SELECT 'pg_catalog.pg_type'::regclass, x.id FROM pg_catalog.pg_type t,
                        LATERAL (VALUES (t.typelem), (t.typbasetype)) x(id)
                  WHERE o.classid = 'pg_catalog.pg_type'::regclass AND t.oid = o.objid AND x.id <> 0
                 UNION ALL SELECT 'pg_catalog.pg_type'::regclass, r.rngsubtype FROM pg_catalog.pg_range r
                  WHERE o.classid = 'pg_catalog.pg_type'::regclass AND r.rngtypid = o.objid
                 UNION ALL SELECT 'pg_catalog.pg_proc'::regclass, f.id FROM pg_catalog.pg_operator op,
                        LATERAL (VALUES (op.oprcode), (op.oprrest), (op.oprjoin)) f(id)
                  WHERE o.classid = 'pg_catalog.pg_operator'::regclass AND op.oid = o.objid AND f.id <> 0
             ) e(classid, objid)
         ), owned AS (
             SELECT 'function ' || f.oid::regprocedure::text AS what, f.proowner AS owner
               FROM objs o JOIN pg_catalog.pg_proc f ON o.classid = 'pg_catalog.pg_proc'::regclass AND f.oid = o.objid
             UNION ALL
             SELECT 'operator ' || op.oid::regoperator::text, op.oprowner
               FROM objs o JOIN pg_catalog.pg_operator op ON o.classid = 'pg_catalog.pg_operator'::regclass AND op.oid = o.objid
             UNION ALL
             SELECT 'type ' || t.oid::regtype::text, t.typowner
               FROM objs o JOIN pg_catalog.pg_type t ON o.classid = 'pg_catalog.pg_type'::regclass AND t.oid = o.objid
             UNION ALL
             SELECT 'schema ' || n.nspname::regnamespace::text || ' (of type ' || t.oid::regtype::text || ')', n.nspowner
               FROM objs o JOIN pg_catalog.pg_type t ON o.classid = 'pg_catalog.pg_type'::regclass AND t.oid = o.objid
               JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             UNION ALL
             SELECT 'schema ' || n.oid::regnamespace::text || ' (of ' || c.oid::regclass::text || ')', n.nspowner
               FROM unnest($1::oid[]) t(id) JOIN pg_catalog.pg_class c ON c.oid = t.id
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         )
         -- pg_database_owner (the owner of PostgreSQL 15's public schema) stands for the database's owner.
         SELECT DISTINCT o.what, r.oid, r.rolname::text FROM owned o
           JOIN pg_catalog.pg_roles r ON r.oid = CASE WHEN o.owner = 'pg_database_owner'::regrole
                                                     THEN (SELECT d.datdba FROM pg_catalog.pg_database d
                                                            WHERE d.datname = pg_catalog.current_database())
                                                     ELSE o.owner END
          ORDER BY 1",
        &[tables.to_vec().into()],
        |r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<String>(3)?.unwrap_or_default(),
            ))
        },
    )
}

fn refuse(message: String) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
        "Balance upkeep runs with the rights of the tables' owner and never runs another role's code with \
         more rights than that role has: give the ledger and its balance table one owner, and keep code \
         owned by other roles out of them (docs/SECURITY.md, \"Who the upkeep runs as\").",
    )
}

/// 0A000 unless `table` is a plain table: not partitioned, not a partition, not in an inheritance tree
/// (rows reaching it through a parent, or another table through it, would escape the balances and the
/// checks on who the upkeep runs as), and not a view or any other kind of relation. Used by
/// `track_balances`, by every decision of `upkeep_for`, and by the DDL check after every command.
pub fn refuse_unless_plain_table(table: pg_sys::Oid) {
    let refused = rows(
        "SELECT c.oid::regclass::text,
                CASE WHEN c.relkind = 'p' THEN 'a partitioned table'
                     WHEN c.relispartition THEN 'a partition'
                     WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) THEN 'an inheritance child'
                     WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) THEN 'an inheritance parent'
                     WHEN c.relkind <> 'r' THEN 'not a plain table'
                END
           FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[table.into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?)),
    );
    if let Some((name, Some(what))) = refused.into_iter().next() {
        errors::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} is {what}: balances are kept only between plain tables"),
            "Rows inserted through a parent or into a child would bypass the balances. Partitioned ledgers cannot be \
             tracked yet: track plain tables, and inventory.untrack_balances first if a tracked one must change.",
        )
    }
}

/// Decides (and checks) the identity that upkeep of `ledger`'s balances in `balance` runs as;
/// `tenant_scoped`: the balance table is (its rows of every tenant are written under forced RLS).
pub fn upkeep_for(ledger: pg_sys::Oid, balance: pg_sys::Oid, tenant_scoped: bool) -> Upkeep {
    let ledger_facts = table_facts(ledger);
    let balance_facts = table_facts(balance);
    refuse_unless_plain_table(ledger);
    refuse_unless_plain_table(balance);
    let trusted = TrustedRoles::read();
    let upkeep = match (trusted.contains(ledger_facts.owner), trusted.contains(balance_facts.owner)) {
        (true, true) => Upkeep::Definer,
        _ if ledger_facts.owner == balance_facts.owner => Upkeep::Owner { role: balance_facts.owner, own_rows: tenant_scoped },
        _ => refuse(format!(
            "{} is owned by {} and its balance table {} by {}: balance upkeep runs as the tables' one owner",
            ledger_facts.name, ledger_facts.owner_name, balance_facts.name, balance_facts.owner_name
        )),
    };
    // What the work runs or looks up, and whose it may be. An owner's own code may run as that owner,
    // except where forced row-level security is lifted for it (its code could then read, through another
    // owner's SECURITY DEFINER function, rows that role's forced RLS would hide): there only the trusted
    // roles' code runs, and the owner may own nothing but schemas.
    let (tables, runs_as) = match upkeep {
        Upkeep::Definer => (vec![ledger, balance], "the extension's rights"),
        Upkeep::Owner { role, .. } => {
            let mut tables = vec![ledger, balance];
            tables.extend(owned_references(ledger, role));
            (tables, "the rights of the tables' owner")
        }
    };
    let foreign = used_objects(&tables).into_iter().find(|(what, owner, _)| {
        let owners_own = matches!(upkeep, Upkeep::Owner { role, own_rows } if *owner == role && (!own_rows || what.starts_with("schema ")));
        !owners_own && !trusted.contains(*owner)
    });
    if let Some((what, _, owner_name)) = foreign {
        refuse(format!(
            "{} or its balance table {} uses {what}, owned by role {owner_name}: balance upkeep would run it, or look it up, with {runs_as}{}",
            ledger_facts.name,
            balance_facts.name,
            if matches!(upkeep, Upkeep::Owner { own_rows: true, .. }) { " and every tenant's rows in view" } else { "" }
        ));
    }
    upkeep
}

/// The tables the ledger's foreign keys reference that `owner` owns: a reconcile joins them to find
/// orphans, so their policies run inside the upkeep too.
fn owned_references(ledger: pg_sys::Oid, owner: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    rows(
        "SELECT DISTINCT c.confrelid FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.confrelid
          WHERE c.conrelid = $1 AND c.contype = 'f' AND r.relowner = $2",
        &[ledger.into(), owner.into()],
        |r| Ok(r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid)),
    )
}

/// Runs `work` under `upkeep`: as it is for `Definer`, else as the owner inside a security-restricted
/// operation in which forced row-level security does not hold the owner on its own tables (it reads and
/// writes its ledger and balances of every tenant; everyone else's tables keep their row-level security
/// and the session's tenant). Settings changed inside (by the owner's code) are rolled back after it,
/// as PostgreSQL does for REFRESH MATERIALIZED VIEW. On error, the (sub)transaction's abort restores
/// the user and the settings.
pub fn run<T>(upkeep: Upkeep, work: impl FnOnce() -> T) -> T {
    let Upkeep::Owner { role, own_rows } = upkeep else { return work() };
    let mut context = pg_sys::SECURITY_RESTRICTED_OPERATION as i32;
    if own_rows {
        context |= pg_sys::SECURITY_NOFORCE_RLS as i32;
    }
    as_user(role, context, || run_restricted(role, work))
}

/// Runs `work` — DML on `table` that fires whatever the table's owner put on it (triggers, rules,
/// defaults, domain checks) — as that owner inside a security-restricted operation when the caller is
/// another role (an administrator making an owner's table tenant-scoped): the owner's code never runs
/// with the caller's rights. Forced row-level security still holds the owner (the work is not the
/// owner's upkeep of its own rows). The owner itself: as it is.
pub fn as_table_owner<T>(table: pg_sys::Oid, work: impl FnOnce() -> T) -> T {
    let owner = crate::spi_util::first::<pg_sys::Oid>("SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1", &[table.into()]);
    // SAFETY: reads the current user.
    match owner {
        Some(role) if role != unsafe { pg_sys::GetUserId() } => run(Upkeep::Owner { role, own_rows: false }, work),
        _ => work(),
    }
}

/// Runs `work` as `role`, with `context` added to the security context (and the user change marked
/// local, as fmgr marks a SECURITY DEFINER call's). On error, the (sub)transaction's abort restores both.
fn as_user<T>(role: pg_sys::Oid, context: i32, work: impl FnOnce() -> T) -> T {
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: plain backend calls; the matching restore follows `work`.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(role, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | context);
    }
    let result = work();
    // SAFETY: as above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
}

/// The owner's part of `run`, already as the owner in a security-restricted operation: its settings
/// rolled back after it, and the owner recorded as the caller of the extension's functions meanwhile.
fn run_restricted<T>(role: pg_sys::Oid, work: impl FnOnce() -> T) -> T {
    // SAFETY: a plain backend call; the matching AtEOXact_GUC follows `work`.
    let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
    // Popped also when `work` fails and the error unwinds through here (the (sub)transaction's abort
    // restores the user, the security context and the settings).
    struct Popped;
    impl Drop for Popped {
        fn drop(&mut self) {
            UPKEEP_OWNERS.with(|o| o.borrow_mut().pop());
        }
    }
    UPKEEP_OWNERS.with(|o| o.borrow_mut().push(role));
    let popped = Popped;
    let result = work();
    drop(popped);
    // SAFETY: as above.
    unsafe { pg_sys::AtEOXact_GUC(false, nest_level) };
    result
}

/// Runs `work` as `upkeep` from a trigger, whose function is not SECURITY DEFINER: `Definer` takes the
/// extension owner's identity here (as fmgr would for a SECURITY DEFINER function), `Owner` is `run`;
/// either way search_path is pinned to `pg_catalog, pg_temp` for the duration, as every SECURITY
/// DEFINER function of the extension pins it.
pub fn run_pinned<T>(upkeep: Upkeep, extension_owner: pg_sys::Oid, work: impl FnOnce() -> T) -> T {
    // SAFETY: plain backend calls; the settings and the identity are restored after `work`, and by the
    // (sub)transaction's abort when it fails.
    let nest_level = unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        nest_level
    };
    let result = match upkeep {
        Upkeep::Definer => as_user(extension_owner, 0, work),
        Upkeep::Owner { .. } => run(upkeep, work),
    };
    // SAFETY: as above.
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}
