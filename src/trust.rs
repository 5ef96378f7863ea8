//! The trust model (docs/SECURITY.md, "Who is trusted") and how the extension holds privileged work to it.
//!
//! - Trusted: superusers and the extension's owner.
//! - Semi-trusted: roles that own tables or schemas. They may break their own tables, never gain a right.
//! - Untrusted: application roles.
//!
//! Balance upkeep (the balance trigger, reconcile's corrections, `rebuild_balances`) writes a balance
//! table that an application's schema owner may control, and reads a ledger it may control. Whatever
//! runs there — triggers, rules, defaults, check and domain constraints, index expressions, casts of
//! column types — runs as the identity that does the work. So the work has an *upkeep identity*
//! (`Upkeep`), decided from the catalog every time the work is planned:
//! - both tables owned by trusted roles, and nothing in them (types, functions their defaults,
//!   constraints, triggers, indexes and policies call) owned by anyone else: the extension's own rights
//!   (SECURITY DEFINER), as for the built-in tables;
//! - both tables owned by one role that is not trusted: that role's rights inside a security-restricted
//!   operation (`as_owner`), the way PostgreSQL runs REFRESH MATERIALIZED VIEW, VACUUM and index
//!   expressions (CVE-2022-1552). Forced row-level security then holds the owner too, so writes of a
//!   tenant's balances run with `app.org_id` set to that tenant (`with_tenant`);
//! - anything else (different owners, a trusted table holding an untrusted role's code): refused with
//!   42501, naming the object and its owner.

use crate::errors;
use crate::spi_util::rows;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::ffi::CString;

/// The identity balance upkeep of one ledger runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upkeep {
    /// The extension's own rights (the function's SECURITY DEFINER owner).
    Definer,
    /// The tables' owner, in a security-restricted operation.
    Owner(pg_sys::Oid),
}

/// Whether a role is trusted: a superuser or the extension's owner.
pub fn is_trusted(role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup for a role OID (cached by PostgreSQL).
    let superuser = unsafe { pg_sys::superuser_arg(role) };
    superuser || extension_owner() == Some(role)
}

fn extension_owner() -> Option<pg_sys::Oid> {
    Spi::get_one::<pg_sys::Oid>("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'inventory_ext'")
        .ok()
        .flatten()
}

/// What the catalog says about one table the upkeep touches.
struct TableFacts {
    name: String,
    owner: pg_sys::Oid,
    owner_name: String,
    kind: String,
}

fn table_facts(table: pg_sys::Oid) -> TableFacts {
    rows(
        "SELECT c.oid::regclass::text, c.relowner, r.rolname::text, c.relkind::text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner WHERE c.oid = $1",
        &[table.into()],
        |r| {
            Ok(TableFacts {
                name: r.get::<String>(1)?.unwrap_or_default(),
                owner: r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                owner_name: r.get::<String>(3)?.unwrap_or_default(),
                kind: r.get::<String>(4)?.unwrap_or_default(),
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

/// Code that would run inside work on `table` and that a role other than `trusted_owner` and the
/// trusted roles controls: the types of its columns (domain constraints, casts), and the functions that
/// its defaults, constraints, triggers, indexes, policies and rules call. Each as (what, owner name).
fn foreign_code(table: pg_sys::Oid, trusted_owner: pg_sys::Oid) -> Vec<(String, String)> {
    rows(
        "WITH parts AS (
             SELECT 'pg_catalog.pg_class'::regclass::oid AS classid, $1::oid AS objid
             UNION
             SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
              WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a', 'n', 'i')
         ), used AS (
             SELECT d.refclassid, d.refobjid FROM parts p
               JOIN pg_catalog.pg_depend d ON d.classid = p.classid AND d.objid = p.objid
             UNION
             SELECT 'pg_catalog.pg_type'::regclass, a.atttypid FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
         ), owned AS (
             SELECT 'function ' || f.oid::regprocedure::text AS what, f.proowner AS owner
               FROM used u JOIN pg_catalog.pg_proc f ON u.refclassid = 'pg_catalog.pg_proc'::regclass AND f.oid = u.refobjid
             UNION ALL
             SELECT 'type ' || t.oid::regtype::text, t.typowner
               FROM used u JOIN pg_catalog.pg_type t ON u.refclassid = 'pg_catalog.pg_type'::regclass AND t.oid = u.refobjid
             UNION ALL
             SELECT 'type ' || e.oid::regtype::text, e.typowner
               FROM used u JOIN pg_catalog.pg_type t ON u.refclassid = 'pg_catalog.pg_type'::regclass AND t.oid = u.refobjid
               JOIN pg_catalog.pg_type e ON e.oid IN (t.typelem, t.typbasetype)
         )
         SELECT o.what, r.rolname::text FROM owned o JOIN pg_catalog.pg_roles r ON r.oid = o.owner
          WHERE o.owner <> $2 AND NOT r.rolsuper
            AND o.owner IS DISTINCT FROM (SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'inventory_ext')
          ORDER BY 1",
        &[table.into(), trusted_owner.into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
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

/// Decides (and checks) the identity that upkeep of `ledger`'s balances in `balance` runs as.
pub fn upkeep_for(ledger: pg_sys::Oid, balance: pg_sys::Oid) -> Upkeep {
    let ledger_facts = table_facts(ledger);
    let balance_facts = table_facts(balance);
    for facts in [&ledger_facts, &balance_facts] {
        if !matches!(facts.kind.as_str(), "r" | "p") {
            refuse(format!("{} is no longer a table (relkind {}): balance upkeep refuses to run on it", facts.name, facts.kind));
        }
    }
    let (ledger_trusted, balance_trusted) = (is_trusted(ledger_facts.owner), is_trusted(balance_facts.owner));
    if ledger_trusted && balance_trusted {
        for (oid, facts) in [(ledger, &ledger_facts), (balance, &balance_facts)] {
            if let Some((what, owner)) = foreign_code(oid, facts.owner).into_iter().next() {
                refuse(format!(
                    "{} uses {what}, owned by role {owner}: balance upkeep would run it with the extension's rights",
                    facts.name
                ));
            }
        }
        return Upkeep::Definer;
    }
    if ledger_facts.owner != balance_facts.owner {
        refuse(format!(
            "{} is owned by {} and its balance table {} by {}: balance upkeep runs as the tables' one owner",
            ledger_facts.name, ledger_facts.owner_name, balance_facts.name, balance_facts.owner_name
        ));
    }
    Upkeep::Owner(balance_facts.owner)
}

/// Runs `work` under `upkeep`: as it is for `Definer`, else as the owner inside a security-restricted
/// operation. Settings changed inside (by the owner's code, or `with_tenant`) are rolled back after it,
/// as PostgreSQL does for REFRESH MATERIALIZED VIEW. On error, the (sub)transaction's abort restores
/// the user and the settings.
pub fn run<T>(upkeep: Upkeep, work: impl FnOnce() -> T) -> T {
    let Upkeep::Owner(owner) = upkeep else { return work() };
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: plain backend calls; the matching restore follows `work`.
    let nest_level = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        pg_sys::NewGUCNestLevel()
    };
    let result = work();
    // SAFETY: as above.
    unsafe {
        pg_sys::AtEOXact_GUC(false, nest_level);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
    }
    result
}

/// Inside `run` for an owner: makes `org_id` the tenant (`app.org_id`) for the rest of the
/// security-restricted operation, so that forced row-level security lets the owner write that
/// tenant's balance rows and only those. The setting is set on the extension's authority (the role
/// need not be allowed to choose its tenant) and rolled back when `run` ends.
pub fn with_tenant(org_id: &str) {
    let value = CString::new(org_id).unwrap_or_else(|_| errors::invalid_argument("an org id has a NUL byte", ""));
    // SAFETY: NUL-terminated strings; errors are raised as PostgreSQL ERRORs.
    unsafe {
        pg_sys::set_config_option_ext(
            crate::guc::ORG_ID_NAME.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}
