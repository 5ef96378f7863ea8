//! Organizations (SPEC §3): the tenants, their API keys, and the administrators' functions.
//!
//! Key hashes live in `inventory.organization_api_keys`, a table no application role is granted, so a
//! tenant reading its own organization row can never see one. The administrators' functions are
//! SECURITY DEFINER (they write past row-level security) and not executable by PUBLIC; whoever holds
//! them but is itself subject to row-level security may only manage its current tenant's organization.

use crate::api_key;
use crate::errors;
use crate::host;
use crate::spi_util::{exec_with_args, first, rows};
use crate::tenant;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::Uuid;

const MAX_NAME_CHARS: usize = 200;

/// What a lookup of an organization found.
pub enum Found {
    Active(Uuid),
    Inactive,
    Nothing,
}

/// Runs a query whose rows are `(id uuid, active boolean[, key_hash bytea])` and returns the first row
/// that `accept` takes (by its key hash, when there is one).
fn find(query: &str, args: &[DatumWithOid], accept: impl Fn(Option<&[u8]>) -> bool) -> Found {
    // organizations.id is NOT NULL: a row without one cannot happen and would match nothing.
    let candidates = rows(query, args, |row| {
        let hash = if row.columns() > 2 { row.get::<Vec<u8>>(3)? } else { None };
        let active = row.get::<bool>(2)? == Some(true);
        Ok(row.get::<Uuid>(1)?.map(|id| (id, active, hash)))
    });
    match candidates.into_iter().flatten().find(|(_, _, hash)| accept(hash.as_deref())) {
        Some((id, true, _)) => Found::Active(id),
        Some((_, false, _)) => Found::Inactive,
        None => Found::Nothing,
    }
}

pub fn find_by_id(org_id: Uuid) -> Found {
    find("SELECT id, active FROM inventory.organizations WHERE id = $1", &[org_id.into()], |_| true)
}

/// Subdomains are stored lower-case; text that is no DNS label can match none.
pub fn find_by_subdomain(subdomain: &str) -> Found {
    let subdomain = subdomain.trim().to_ascii_lowercase();
    if !host::is_dns_label(&subdomain) {
        return Found::Nothing;
    }
    find(
        "SELECT id, active FROM inventory.organizations WHERE subdomain = $1",
        &[subdomain.into()],
        |_| true,
    )
}

/// The prefix finds the candidate rows; the hash decides, compared in constant time.
pub fn find_by_api_key(key: &str) -> Found {
    let Some(prefix) = api_key::prefix_of(key) else {
        return Found::Nothing;
    };
    find(
        "SELECT o.id, o.active, k.key_hash
           FROM inventory.organization_api_keys k
           JOIN inventory.organizations o ON o.id = k.org_id
          WHERE k.key_prefix = $1",
        &[prefix.into()],
        |stored| stored.is_some_and(|hash| api_key::verify(key, hash)),
    )
}

/// Administrators may manage any organization; a caller that row-level security applies to may manage
/// only its current tenant's. The caller is the session's role (after SET ROLE), since inside this
/// SECURITY DEFINER function `current_user` is the extension's owner.
pub fn authorize_management_of(org_id: Uuid) {
    if tenant::caller_bypasses_rls() {
        return;
    }
    match tenant::current() {
        None => errors::no_tenant_context(),
        Some(current) if current == org_id => {}
        Some(_) => errors::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "an application role can only manage its current tenant's organization",
            "Set app.org_id to the organization you manage, or ask an administrator.",
        ),
    }
}

fn store_new_key(org_id: Uuid) -> String {
    let key = api_key::generate();
    exec_with_args(
        // created_at from the new row, not now() in the SET list: Citus refuses a function there.
        "INSERT INTO inventory.organization_api_keys (org_id, key_prefix, key_hash, created_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (org_id) DO UPDATE
            SET key_prefix = excluded.key_prefix, key_hash = excluded.key_hash, created_at = excluded.created_at",
        &[org_id.into(), key.prefix.as_str().into(), key.hash.into()],
    );
    key.key
}

/// Creates an organization and its first API key. The key is returned once and never again.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn create_organization(
    name: Option<&str>,
    subdomain: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(org_id, Uuid), name!(api_key, String))> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors::invalid_argument(
            format!("organization name must be 1 to {MAX_NAME_CHARS} characters"),
            "Pass a non-empty name.",
        );
    }
    let subdomain = subdomain.map(|s| s.trim().to_ascii_lowercase());
    if let Some(s) = &subdomain {
        if !host::is_dns_label(s) {
            errors::invalid_argument(
                format!("subdomain {s:?} is not a DNS label"),
                "A subdomain is 1 to 63 letters, digits or inner hyphens, e.g. 'acme' or 'acme-eu'.",
            );
        }
        if !matches!(find_by_subdomain(s), Found::Nothing) {
            errors::raise(
                PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
                format!("subdomain {s:?} is already taken"),
                "Choose another subdomain.",
            );
        }
    }
    let org_id = first::<Uuid>(
        "INSERT INTO inventory.organizations (name, subdomain) VALUES ($1, $2) RETURNING id",
        &[name.into(), subdomain.into()],
    )
    .unwrap_or_else(|| errors::no_row("creating the organization"));
    let key = store_new_key(org_id);
    TableIterator::once((org_id, key))
}

/// Replaces an organization's API key; the old key stops working at once.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn rotate_api_key(org_id: Option<Uuid>) -> String {
    let org_id = org_id.unwrap_or_else(|| errors::invalid_tenant_credentials());
    authorize_management_of(org_id);
    if matches!(find_by_id(org_id), Found::Nothing) {
        errors::invalid_tenant_credentials();
    }
    store_new_key(org_id)
}

/// Activates or deactivates an organization. An inactive organization cannot be entered as a tenant.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_organization_active(org_id: Option<Uuid>, active: Option<bool>) {
    let org_id = org_id.unwrap_or_else(|| errors::invalid_tenant_credentials());
    let active = active.unwrap_or_else(|| {
        errors::invalid_argument("active must be true or false, not NULL", "Pass true or false.")
    });
    authorize_management_of(org_id);
    let updated = Spi::get_one_with_args::<bool>(
        "UPDATE inventory.organizations SET active = $2, updated_at = now() WHERE id = $1 RETURNING true",
        &[org_id.into(), active.into()],
    );
    if !matches!(updated, Ok(Some(true))) {
        errors::invalid_tenant_credentials();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::sqlstate_of;
    use pgrx::prelude::*;

    fn create(name: &str, subdomain: &str) -> (String, String) {
        let (id, key) = Spi::get_two_with_args::<String, String>(
            "SELECT org_id::text, api_key FROM inventory.create_organization($1, $2)",
            &[name.into(), subdomain.into()],
        )
        .unwrap();
        (id.unwrap(), key.unwrap())
    }

    fn tenant_after(sql: &str) -> Option<String> {
        Spi::run(sql).unwrap();
        Spi::get_one::<String>("SELECT inventory.current_org_id()::text").unwrap()
    }

    #[pg_test]
    fn api_key_is_stored_only_as_a_hash() {
        let (id, key) = create("Acme", "acme");
        let stored = Spi::get_one_with_args::<bool>(
            "SELECT key_hash = sha256(convert_to($2, 'UTF8')) AND strpos(key_hash::text, $2) = 0
               FROM inventory.organization_api_keys WHERE org_id = $1::uuid",
            &[id.as_str().into(), key.as_str().into()],
        )
        .unwrap();
        assert_eq!(stored, Some(true));
    }

    #[pg_test]
    fn api_key_enters_the_tenant_and_rotation_revokes_it() {
        let (id, key) = create("Acme", "acme");
        assert_eq!(tenant_after(&format!("SELECT inventory.set_org_by_api_key('{key}')")), Some(id.clone()));
        let new_key = Spi::get_one::<String>(&format!("SELECT inventory.rotate_api_key('{id}')")).unwrap().unwrap();
        assert_ne!(new_key, key);
        assert_eq!(sqlstate_of(&format!("SELECT inventory.set_org_by_api_key('{key}')")), "28000");
        assert_eq!(sqlstate_of(&format!("SELECT inventory.set_org_by_api_key('{new_key}')")), "00000");
    }

    #[pg_test]
    fn subdomains_are_normalised_validated_and_unique() {
        let (id, _) = create("Acme", " ACME ");
        assert_eq!(tenant_after("SELECT inventory.set_org_by_subdomain('Acme')"), Some(id));
        assert_eq!(sqlstate_of("SELECT inventory.create_organization('Other', 'acme')"), "23505");
        assert_eq!(sqlstate_of("SELECT inventory.create_organization('Other', 'no spaces')"), "22023");
        assert_eq!(sqlstate_of("SELECT inventory.create_organization('', 'fine')"), "22023");
        assert_eq!(sqlstate_of("SELECT inventory.create_organization(NULL)"), "22023");
    }

    #[pg_test]
    fn inactive_organizations_cannot_be_entered() {
        let (id, key) = create("Acme", "acme");
        Spi::run(&format!("SELECT inventory.set_organization_active('{id}', false)")).unwrap();
        for sql in [
            format!("SELECT inventory.set_org('{id}')"),
            "SELECT inventory.set_org_by_subdomain('acme')".to_string(),
            format!("SELECT inventory.set_org_by_api_key('{key}')"),
        ] {
            assert_eq!(sqlstate_of(&sql), "28000", "{sql}");
        }
    }
}
