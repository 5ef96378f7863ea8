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

/// The same, with a detail that says why.
pub fn raise_detailed(code: PgSqlErrorCode, message: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "inventory_ext")
        .set_detail(detail)
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// The five characters of a SQLSTATE as PostgreSQL encodes it (MAKE_SQLSTATE: six bits a character).
pub fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let code = code as i32;
    (0..5).map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char).collect()
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

/// 42P01: a relation that does not exist, such as a dangling `regclass` (the OID of a dropped table);
/// PostgreSQL's own code and words for it.
pub fn undefined_relation(oid: pgrx::pg_sys::Oid) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        format!("relation with OID {} does not exist", oid.to_u32()),
        "It was dropped (or the OID is wrong): pass the table by name, e.g. 'public.items'.",
    )
}

/// P0002: a statement that must return a row returned none (as PL/pgSQL's `INTO STRICT` says it).
pub fn no_row(what: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
        format!("{what}: the statement returned no row"),
        "A trigger or rule on the table may have suppressed the row; check the table's triggers and rules.",
    )
}

/// A failure that pgrx's SPI reports as a value rather than as a PostgreSQL ERROR (a PostgreSQL ERROR
/// raised inside SPI keeps its own SQLSTATE and never comes here), with the SQLSTATE PostgreSQL gives
/// the same condition: a statement SPI cannot run (COPY to the client, transaction control), a column
/// whose type is not the one expected (a table altered under a running statement), no row where one
/// was expected, and SPI's own status codes.
pub fn spi_failed(statement: &str, error: &pgrx::spi::SpiError) -> ! {
    use pgrx::spi::{SpiError, SpiErrorCodes};
    use PgSqlErrorCode::*;
    let code = match error {
        SpiError::SpiError(SpiErrorCodes::Copy | SpiErrorCodes::OpUnknown) => ERRCODE_FEATURE_NOT_SUPPORTED,
        SpiError::SpiError(SpiErrorCodes::Transaction) => ERRCODE_INVALID_TRANSACTION_TERMINATION,
        SpiError::SpiError(SpiErrorCodes::Connect | SpiErrorCodes::Unconnected) => {
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        }
        SpiError::SpiError(SpiErrorCodes::Argument) => ERRCODE_INVALID_PARAMETER_VALUE,
        SpiError::SpiError(SpiErrorCodes::Param) | SpiError::PreparedStatementArgumentMismatch { .. } => {
            ERRCODE_UNDEFINED_PARAMETER
        }
        SpiError::SpiError(SpiErrorCodes::NoAttribute) => ERRCODE_UNDEFINED_COLUMN,
        SpiError::SpiError(SpiErrorCodes::NoOutFunc) => ERRCODE_UNDEFINED_FUNCTION,
        SpiError::SpiError(SpiErrorCodes::TypUnknown) => ERRCODE_UNDEFINED_OBJECT,
        SpiError::SpiError(SpiErrorCodes::RelDuplicate) => ERRCODE_DUPLICATE_TABLE,
        SpiError::SpiError(SpiErrorCodes::RelNotFound) => ERRCODE_UNDEFINED_TABLE,
        SpiError::SpiError(SpiErrorCodes::Cursor) | SpiError::CursorNotFound(_) => ERRCODE_INVALID_CURSOR_NAME,
        SpiError::DatumError(_) => ERRCODE_DATATYPE_MISMATCH,
        SpiError::InvalidPosition | SpiError::NoTupleTable => ERRCODE_NO_DATA_FOUND,
    };
    // The statement's first line is enough to recognise it; generated DDL can be long.
    let first_line = statement.trim().lines().next().unwrap_or_default();
    raise(
        code,
        format!("inventory_ext could not run a statement: {error}"),
        format!("The statement began: {first_line}. If the objects it names were changed meanwhile, run the call again."),
    )
}
