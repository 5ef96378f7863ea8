//! The errors an application can act on (SPEC §1): one place that fixes each SQLSTATE and its words,
//! so that every module raises the same code and message for the same condition.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;

/// Raises an ERROR with a fixed SQLSTATE, a message and a hint that says what to do.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "inventory_ext")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// 42501: the call needs a tenant and none is set.
pub fn no_tenant_context() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "no tenant context: app.org_id is not set",
        "Set the tenant for this transaction first: SET LOCAL app.org_id = '<organization uuid>', \
         or SELECT inventory.set_org(...) inside the same transaction.",
    )
}

/// 22P02: app.org_id (or inventory.default_org_id) holds text that is not a UUID.
pub fn org_id_not_uuid(setting: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        format!("{setting} is not a valid organization id"),
        format!("{setting} must be an organization's UUID, or empty for no tenant."),
    )
}

/// 28000: one message for an unknown or inactive organization, a wrong API key and an unknown
/// subdomain, so that the error tells a caller nothing about which of them exists.
pub fn invalid_tenant_credentials() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        "no active organization matches the given id, subdomain or API key",
        "Check the organization id, host or API key the request presented.",
    )
}

/// 22023: an argument that the function cannot use (the message names it).
pub fn invalid_argument(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message, hint)
}
