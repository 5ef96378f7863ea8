//! The hardened tenant context (SPEC §2): who may *choose* a tenant.
//!
//! `app.org_id` is a SUSET setting (guc.rs), so PostgreSQL itself asks for the SET privilege on it
//! (`GRANT SET ON PARAMETER`, PostgreSQL 15) on every route that sets it: `SET`, `SET LOCAL`, `RESET`,
//! `set_config`, `ALTER ROLE/DATABASE … SET`, a function's `SET` clause, connection options. CREATE
//! EXTENSION grants it to PUBLIC the first time (the default: every role chooses its tenant, as an
//! application that sets `SET LOCAL app.org_id` needs). `revoke_tenant_switch('public')` takes it away,
//! and the SECURITY DEFINER functions that set the tenant (`set_org`, `set_org_by_subdomain`,
//! `resolve_org`) ask the same question of their caller. What stays open to everyone is
//! `set_org_by_api_key`: proving a tenant's key, which then cannot be exchanged for another tenant's in
//! the same transaction. Parameter privileges belong to the cluster, not to one database.

use crate::errors;
use crate::guc::{self, ORG_ID, ORG_ID_NAME};
use crate::tenant::caller;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use crate::sql_text::ident;
use pgrx::Uuid;
use std::cell::Cell;

/// Whether `role` may choose its tenant: a superuser, or a role with SET on `app.org_id`.
pub fn may_choose(role: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups for a NUL-terminated name and a role OID.
    unsafe {
        pg_sys::superuser_arg(role)
            || pg_sys::pg_parameter_aclcheck(ORG_ID_NAME.as_ptr(), role, pg_sys::ACL_SET as pg_sys::AclMode)
                == pg_sys::AclResult::ACLCHECK_OK
    }
}

/// Whether the caller may choose its tenant: never from inside a security-restricted operation that
/// PostgreSQL runs for an object's owner (the outer user is not who calls there).
pub fn caller_may_choose() -> bool {
    !crate::trust::in_foreign_restricted_operation() && may_choose(caller())
}

/// 42501 unless the caller may choose its tenant (set_org, set_org_by_subdomain, resolve_org by id or host).
pub fn require_choice() {
    if !caller_may_choose() {
        errors::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "this role may not choose its tenant (inventory.revoke_tenant_switch)",
            "Enter the tenant with inventory.set_org_by_api_key(<the tenant's API key>), or ask an administrator \
             for inventory.grant_tenant_switch.",
        )
    }
}

thread_local! {
    /// The tenant that a role which may not choose its tenant entered in this transaction (by API key).
    /// Kept in backend memory, not only in `app.org_id`, because the setting can be emptied by routes
    /// that need no privilege (`RESET ALL`, `DISCARD`-like resets, a function's SET clause ending): the
    /// transaction stays bound to its first tenant whatever happens to the setting. Forgotten when the
    /// transaction ends (`forget_entered_tenant`, a transaction callback), so nothing outlives it.
    static ENTERED: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
}

/// Transaction callback (registered in `_PG_init`): the transaction is over, so is its tenant.
#[pg_guard]
pub unsafe extern "C-unwind" fn forget_entered_tenant(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT) {
        ENTERED.with(|e| e.set(None));
    }
}

/// 42501 when a caller that may not choose its tenant already entered one other than `org_id` in this
/// transaction (or has one in `app.org_id`): a second API key does not switch tenants, whatever reset
/// the setting in between. Otherwise records `org_id` as the transaction's tenant.
pub fn refuse_switch_to(org_id: Uuid) {
    if caller_may_choose() {
        return;
    }
    let wanted = *org_id.as_bytes();
    let current = guc::parse_org_id(&guc::text_of(&ORG_ID)).ok().flatten();
    let entered = ENTERED.with(|e| e.get());
    if current.is_some_and(|c| c != wanted) || entered.is_some_and(|e| e != wanted) {
        errors::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "this role already has a tenant in this transaction and may not switch to another",
            "Commit or roll back first; each transaction acts for one tenant.",
        )
    }
    ENTERED.with(|e| e.set(Some(wanted)));
}

/// The role clause of GRANT/REVOKE: PUBLIC, or the role's quoted name.
fn grantee(role: &str) -> String {
    if role.eq_ignore_ascii_case("public") {
        return "PUBLIC".into();
    }
    let exists = Spi::get_one_with_args::<bool>("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", &[role.into()])
        .ok()
        .flatten()
        == Some(true);
    if !exists {
        errors::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("role {} does not exist", ident(role)),
            "Pass an existing role, or 'public'.",
        )
    }
    ident(role)
}

fn change(verb: &str, role: Option<String>) {
    if !guc::preloaded() {
        errors::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the hardened tenant context needs the library preloaded",
            "Add inventory_ext to shared_preload_libraries in postgresql.conf and restart PostgreSQL.",
        )
    }
    let Some(role) = role else { errors::invalid_argument("role must not be NULL", "Pass a role, or 'public'.") };
    let to_or_from = if verb == "GRANT" { "TO" } else { "FROM" };
    let grantee = grantee(&role);
    crate::spi_util::exec(&format!("{verb} SET ON PARAMETER app.org_id {to_or_from} {grantee}"));
    if grantee == "PUBLIC" {
        keep_decision_recorded(verb);
    }
}

/// PostgreSQL deletes a parameter's ACL entry when a REVOKE leaves it at the default, and CREATE
/// EXTENSION grants SET to PUBLIC only where there is no entry: a hardened cluster would be opened again
/// by the next CREATE EXTENSION (a restore, another database). So hardening keeps the entry non-default
/// by granting the bootstrap superuser (the parameter's owner) SET WITH GRANT OPTION, which it holds
/// implicitly anyway (`{postgres=s*A/postgres}`); opening it again takes that back, so the entry is
/// again exactly the one CREATE EXTENSION makes.
fn keep_decision_recorded(verb: &str) {
    let owner = Spi::get_one::<String>("SELECT quote_ident(rolname) FROM pg_catalog.pg_roles WHERE oid = 10")
        .ok()
        .flatten()
        .unwrap_or_else(|| "postgres".into());
    let statement = match verb {
        "REVOKE" => format!("GRANT SET ON PARAMETER app.org_id TO {owner} WITH GRANT OPTION"),
        _ => format!("REVOKE GRANT OPTION FOR SET ON PARAMETER app.org_id FROM {owner}"),
    };
    crate::spi_util::exec(&statement);
}

fn role_name(role: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT rolname::text FROM pg_roles WHERE oid = $1", &[role.into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            errors::raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("role with OID {} does not exist", u32::from(role)),
                "Pass an existing role, or 'public'.",
            )
        })
}

/// Takes away a role's (or PUBLIC's) right to choose its tenant: it can then only enter one with an API key.
#[pg_extern(volatile, parallel_unsafe, name = "revoke_tenant_switch")]
fn revoke_tenant_switch_role(role: Option<crate::sql_types::RegRole>) {
    change("REVOKE", role.map(|r| role_name(r.0)));
}

/// The same for a role given by name, and the only way to name PUBLIC (`'public'` is no regrole).
#[pg_extern(volatile, parallel_unsafe)]
fn revoke_tenant_switch(role: Option<&str>) {
    change("REVOKE", role.map(str::to_string));
}

/// Gives a role (or PUBLIC, the default) back the right to choose its tenant.
#[pg_extern(volatile, parallel_unsafe, name = "grant_tenant_switch")]
fn grant_tenant_switch_role(role: Option<crate::sql_types::RegRole>) {
    change("GRANT", role.map(|r| role_name(r.0)));
}

#[pg_extern(volatile, parallel_unsafe)]
fn grant_tenant_switch(role: Option<&str>) {
    change("GRANT", role.map(str::to_string));
}
