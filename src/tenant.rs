//! Tenant context (SPEC §2): which organization the current transaction acts for.
//!
//! The tenant lives only in the GUC `app.org_id`, set transaction-locally, so nothing survives COMMIT,
//! ROLLBACK or DISCARD ALL and pooled connections (PgBouncer in transaction mode) are safe. The
//! `set_org…`/`resolve_org` functions are SECURITY DEFINER because an application role cannot see other
//! organizations' rows (row-level security) and so could not validate a tenant itself.

use crate::errors;
use crate::guc::{self, DEFAULT_ORG_ID, DEFAULT_ORG_ID_NAME, ORG_ID, ORG_ID_NAME};
use crate::host;
use crate::organizations::{self, Found};
use crate::tenant_switch;
use pgrx::prelude::*;
use pgrx::guc::GucSetting;
use pgrx::Uuid;
use std::ffi::{CStr, CString};

/// The tenant: `app.org_id`, else `inventory.default_org_id`, else none.
pub fn current() -> Option<Uuid> {
    explicit().or_else(|| org_id_in(&DEFAULT_ORG_ID, DEFAULT_ORG_ID_NAME))
}

/// The tenant this transaction set itself (`app.org_id`), without the migration fallback
/// `inventory.default_org_id`: what narrows an administrator's maintenance run.
pub fn explicit() -> Option<Uuid> {
    org_id_in(&ORG_ID, ORG_ID_NAME)
}

/// The session's role (after SET ROLE): inside a SECURITY DEFINER function `current_user` is the
/// function's owner, so whoever called it is the outer user.
pub fn caller() -> pg_sys::Oid {
    // Inside the extension's upkeep of an owner's tables, the owner's code is the caller.
    if let Some(owner) = crate::trust::upkeep_owner() {
        return owner;
    }
    // SAFETY: reads the backend's own state.
    unsafe { pg_sys::GetOuterUserId() }
}

/// Whether the caller is one that row-level security does not apply to: a superuser or a BYPASSRLS role.
pub fn caller_bypasses_rls() -> bool {
    if crate::trust::in_foreign_restricted_operation() {
        return false;
    }
    let caller = caller();
    // SAFETY: plain catalog lookups for a role OID.
    unsafe { pg_sys::superuser_arg(caller) || pg_sys::has_bypassrls_privilege(caller) }
}

/// The organization a setting names, or none when it is empty. Text that is not a UUID raises 22P02
/// (it can only be there when it was set before the library was loaded).
fn org_id_in(setting: &GucSetting<Option<CString>>, name: &CStr) -> Option<Uuid> {
    match guc::parse_org_id(&guc::text_of(setting)) {
        Ok(bytes) => bytes.map(Uuid::from_bytes),
        Err(()) => errors::org_id_not_uuid(&name.to_string_lossy()),
    }
}

/// Makes `org_id` the tenant until the end of the current transaction (like `SET LOCAL`).
fn set_for_transaction(org_id: Uuid) -> Uuid {
    tenant_switch::refuse_switch_to(org_id);
    if crate::citus::installed() {
        // set_config_option would change the coordinator only (SPEC §9): SET LOCAL reaches the shards.
        crate::citus::set_local_tenant(&org_id.to_string());
        return org_id;
    }
    let value = CString::new(org_id.to_string()).unwrap_or_default();
    crate::guc::set_local(ORG_ID_NAME, &value);
    org_id
}

/// Makes the organization a lookup found the tenant if it is active; anything else is 28000.
fn enter_found(found: Option<Found>) -> Uuid {
    match found {
        Some(Found::Active(id)) => set_for_transaction(id),
        Some(Found::Inactive | Found::Nothing) | None => errors::invalid_tenant_credentials(),
    }
}

fn enter(org_id: Uuid) -> Uuid {
    enter_found(Some(organizations::find_by_id(org_id)))
}

/// The current tenant, or NULL when there is none.
#[pg_extern(stable, parallel_safe)]
fn current_org_id() -> Option<Uuid> {
    current()
}

/// The current tenant, or error 42501 naming `app.org_id` when there is none.
#[pg_extern(stable, parallel_safe)]
fn require_org_id() -> Uuid {
    current().unwrap_or_else(|| errors::no_tenant_context())
}

/// Makes an active organization the tenant of the current transaction.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_org(org_id: Option<Uuid>) -> Uuid {
    tenant_switch::require_choice();
    enter_found(org_id.map(organizations::find_by_id))
}

/// The same, found by subdomain (case-insensitive).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_org_by_subdomain(subdomain: Option<&str>) -> Uuid {
    tenant_switch::require_choice();
    enter_found(subdomain.map(organizations::find_by_subdomain))
}

/// The same, found by API key.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_org_by_api_key(api_key: Option<&str>) -> Uuid {
    enter_found(api_key.map(organizations::find_by_api_key))
}

/// A web app's request resolution, in the database: an explicit id, then the subdomain of `host`, then the
/// API key, then `inventory.default_org_id`. An id or key that is given must be valid: a bad credential is
/// an error, never a fall-back to the next source. A host is different: `www.` or `api.` name no
/// tenant, so a subdomain that matches no organization falls through, while one that names an inactive
/// organization is refused (a deactivated tenant must not land in another tenant).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn resolve_org(
    org_id: default!(Option<Uuid>, "NULL"),
    host: default!(Option<&str>, "NULL"),
    api_key: default!(Option<&str>, "NULL"),
) -> Uuid {
    if let Some(id) = org_id {
        tenant_switch::require_choice();
        return enter(id);
    }
    // A role that may not choose its tenant is identified by its key alone: the host is not consulted
    // (a subdomain would be refused, and looking it up first would tell which exist).
    if let Some(key) = api_key.filter(|k| !k.is_empty() && !tenant_switch::caller_may_choose()) {
        return set_org_by_api_key(Some(key));
    }
    let subdomain = match host.map(host::subdomain_of) {
        Some(Err(e)) => errors::invalid_argument(
            format!("invalid host: {}", e.describe()),
            "Pass the request's Host header as it came, e.g. 'acme.example.com:443'.",
        ),
        Some(Ok(subdomain)) => subdomain,
        None => None,
    };
    if let Some(subdomain) = subdomain {
        // Asked before the lookup: for a role that may not choose its tenant an active, an inactive and
        // an unknown subdomain must all give the same answer, or the error would say which exist.
        tenant_switch::require_choice();
        match organizations::find_by_subdomain(&subdomain) {
            Found::Active(id) => return set_for_transaction(id),
            Found::Inactive => errors::invalid_tenant_credentials(),
            Found::Nothing => {}
        }
    }
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        return set_org_by_api_key(Some(key));
    }
    match org_id_in(&DEFAULT_ORG_ID, DEFAULT_ORG_ID_NAME) {
        Some(id) => enter(id),
        None => errors::invalid_tenant_credentials(),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::sqlstate_of;
    use pgrx::prelude::*;

    fn current() -> Option<String> {
        Spi::get_one::<String>("SELECT inventory.current_org_id()::text").unwrap()
    }

    #[pg_test]
    fn no_context_means_null_and_require_fails_with_42501() {
        assert_eq!(current(), None);
        Spi::run("SET LOCAL app.org_id = ''").unwrap();
        assert_eq!(current(), None);
        assert_eq!(sqlstate_of("SELECT inventory.require_org_id()"), "42501");
    }

    #[pg_test]
    fn context_is_read_back_in_canonical_form() {
        Spi::run("SET LOCAL app.org_id = '0B0C8A2E-6F0E-4B8E-9A51-3A1F4F1A2B3C'").unwrap();
        assert_eq!(current().as_deref(), Some("0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c"));
        let required = Spi::get_one::<String>("SELECT inventory.require_org_id()::text").unwrap();
        assert_eq!(required.as_deref(), Some("0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c"));
    }

    #[pg_test]
    fn default_org_id_is_the_fallback_and_app_org_id_wins() {
        Spi::run("SET LOCAL inventory.default_org_id = '11111111-1111-1111-1111-111111111111'").unwrap();
        assert_eq!(current().as_deref(), Some("11111111-1111-1111-1111-111111111111"));
        Spi::run("SET LOCAL app.org_id = '22222222-2222-2222-2222-222222222222'").unwrap();
        assert_eq!(current().as_deref(), Some("22222222-2222-2222-2222-222222222222"));
    }

    #[pg_test]
    fn set_org_sets_the_context_and_rejects_unknown_ids() {
        let id = Spi::get_one::<String>("SELECT org_id::text FROM inventory.create_organization('Acme', 'acme')")
            .unwrap()
            .unwrap();
        assert_eq!(sqlstate_of("SELECT inventory.set_org(gen_random_uuid())"), "28000");
        assert_eq!(current(), None);
        Spi::run(&format!("SELECT inventory.set_org('{id}')")).unwrap();
        assert_eq!(current(), Some(id.clone()));
        Spi::run(&format!("SELECT inventory.set_organization_active('{id}', false)")).unwrap();
        assert_eq!(sqlstate_of(&format!("SELECT inventory.set_org('{id}')")), "28000");
    }

    #[pg_test]
    fn resolve_org_checks_the_host() {
        assert_eq!(sqlstate_of("SELECT inventory.resolve_org(host => 'bad host')"), "22023");
        assert_eq!(sqlstate_of("SELECT inventory.resolve_org(host => 'nobody.example.com')"), "28000");
        Spi::run("SELECT inventory.create_organization('Acme', 'acme')").unwrap();
        assert_eq!(sqlstate_of("SELECT inventory.resolve_org(host => 'ACME.example.com:443')"), "00000");
    }
}
