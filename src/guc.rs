//! The library's settings, all defined here (SPEC §2):
//! - `app.org_id`: the tenant of the current transaction, text form of an organization's UUID. It is
//!   SUSET so that setting it takes the SET privilege on it (PostgreSQL 15's `GRANT SET ON PARAMETER`),
//!   which CREATE EXTENSION gives to PUBLIC and the hardened context takes away (tenant_switch.rs);
//! - `inventory.default_org_id`: the tenant of sessions that set none (superuser only; for migrations).
//!
//! Both are checked when set, so a bad value fails at `SET` with 22P02. When the library is not preloaded,
//! a value set before it loads is a placeholder PostgreSQL never checked; `tenant::current_org_id` parses
//! the text itself, so such a value still fails with 22P02 when it is used, never silently.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};

pub static ORG_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static DEFAULT_ORG_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// How long maintenance (reconcile, rebuild_balances) waits for another session's locks (maintenance.rs).
pub static MAINTENANCE_LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30_000);

pub fn maintenance_lock_timeout_ms() -> i32 {
    MAINTENANCE_LOCK_TIMEOUT.get()
}

/// How long a spread key's rows must have gone untouched before reconcile folds them into one (reconcile.rs).
pub static SLOT_FOLD_AFTER: GucSetting<i32> = GucSetting::<i32>::new(600);

pub fn slot_fold_after_s() -> i32 {
    SLOT_FOLD_AFTER.get()
}

pub const ORG_ID_NAME: &CStr = c"app.org_id";
pub const DEFAULT_ORG_ID_NAME: &CStr = c"inventory.default_org_id";

thread_local! {
    /// True while `_PG_init` defines the settings. PostgreSQL then re-applies values set before the
    /// library loaded and turns a failed check into a WARNING that silently drops the value; we keep the
    /// value instead so that using it raises the documented 22P02.
    static DEFINING: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    /// Whether the library was loaded by shared_preload_libraries (the hardened context needs it: only
    /// then is `app.org_id` a checked setting from the first statement of every session).
    static PRELOADED: Cell<bool> = const { Cell::new(false) };
}

pub fn preloaded() -> bool {
    PRELOADED.with(|p| p.get())
}

pub fn init() {
    // SAFETY: reads a backend global.
    PRELOADED.with(|p| p.set(unsafe { pg_sys::process_shared_preload_libraries_in_progress }));
    DEFINING.with(|d| d.set(true));
    // SAFETY: called once from _PG_init; the hooks are #[pg_guard]ed and the settings are 'static.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            ORG_ID_NAME,
            c"Tenant (organization UUID) of the current transaction; empty means no tenant.",
            c"Set it per transaction: SET LOCAL app.org_id = '...' or inventory.set_org(...).",
            &ORG_ID,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_org_id),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            DEFAULT_ORG_ID_NAME,
            c"Tenant of sessions that set no app.org_id (migration aid; empty means none).",
            c"Only a superuser can set it, typically with ALTER DATABASE ... SET.",
            &DEFAULT_ORG_ID,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_default_org_id),
            None,
            None,
        );
        GucRegistry::define_int_guc(
            c"inventory.maintenance_lock_timeout",
            c"How long reconcile and rebuild_balances wait for locks other sessions hold.",
            c"A scheduled reconcile that cannot start within it records a skipped run; other waits fail with 55P03.",
            &MAINTENANCE_LOCK_TIMEOUT,
            1,
            3_600_000,
            GucContext::Userset,
            GucFlags::UNIT_MS,
        );
        GucRegistry::define_int_guc(
            c"inventory.slot_fold_after",
            c"How long a key spread over slots must go without postings before reconcile folds its rows into one.",
            c"A key posted to more recently is still hot: folding it would only make it spread again.",
            &SLOT_FOLD_AFTER,
            0,
            7 * 24 * 3600,
            GucContext::Userset,
            GucFlags::UNIT_S,
        );
        pg_sys::MarkGUCPrefixReserved(c"inventory".as_ptr());
    }
    DEFINING.with(|d| d.set(false));
}

/// Sets a setting until the end of the transaction, as `SET LOCAL` does (checked like a client's `SET`:
/// its check hook runs, errors are PostgreSQL ERRORs).
pub fn set_local(name: &CStr, value: &CStr) {
    // SAFETY: plain C call with NUL-terminated strings; errors are raised as PostgreSQL ERRORs.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}

/// Parses a tenant id as the settings hold it: `Ok(None)` for empty, the 16 bytes of a UUID written in
/// the canonical 8-4-4-4-12 form (any case), or `Err` for anything else.
pub fn parse_org_id(text: &str) -> Result<Option<[u8; 16]>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    match uuid::Uuid::try_parse(text) {
        Ok(id) if text.len() == 36 => Ok(Some(*id.as_bytes())),
        _ => Err(()),
    }
}

/// The raw text of a setting, `""` when unset.
pub fn text_of(setting: &GucSetting<Option<CString>>) -> String {
    setting.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether `app.org_id` may become `new` now, from `source`. On Citus, not when the shards would not
/// follow (`citus::tenant_change_refusal`): 0A000, and the tenant stays what it was. Only `app.org_id`
/// goes through here (`inventory.default_org_id` is read by the coordinator alone).
///
/// # Safety
/// Called from a GUC check hook (sets the check's error fields).
unsafe fn switch_allowed(new: Option<[u8; 16]>, source: pg_sys::GucSource::Type) -> bool {
    let current = parse_org_id(&text_of(&ORG_ID)).ok().flatten();
    let Some(refusal) = (current != new).then(|| crate::citus::tenant_change_refusal(source)).flatten() else {
        return true;
    };
    pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED as i32);
    let text = |s: &str| pg_sys::pstrdup(CString::new(s).unwrap_or_default().as_ptr());
    pg_sys::GUC_check_errmsg_string = text(refusal.message);
    pg_sys::GUC_check_errdetail_string = text(refusal.detail);
    pg_sys::GUC_check_errhint_string = text(refusal.hint);
    false
}

/// Both settings hold a tenant id (22P02 otherwise); `app.org_id`'s changes are also held to
/// `switch_allowed`, a RESET (no value: no tenant) included.
///
/// # Safety
/// Called from a GUC check hook with its `newval`.
unsafe fn check_tenant_text(newval: *mut *mut c_char, source: pg_sys::GucSource::Type, tenant_of_transaction: bool) -> bool {
    if DEFINING.with(|d| d.get()) || newval.is_null() {
        return true;
    }
    let parsed = if (*newval).is_null() { Ok(None) } else { parse_org_id(&CStr::from_ptr(*newval).to_string_lossy()) };
    match parsed {
        Ok(new) => !tenant_of_transaction || switch_allowed(new, source),
        Err(()) => {
            pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION as i32);
            pg_sys::GUC_check_errdetail_string =
                pg_sys::pstrdup(c"The value must be an organization's UUID, or empty for no tenant.".as_ptr());
            false
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_org_id(newval: *mut *mut c_char, _extra: *mut *mut c_void, source: pg_sys::GucSource::Type) -> bool {
    check_tenant_text(newval, source, true)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_default_org_id(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    check_tenant_text(newval, source, false)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use crate::test_support::sqlstate_of;
    use pgrx::prelude::*;

    #[pg_test]
    fn parse_accepts_canonical_uuids_and_empty() {
        assert_eq!(parse_org_id(""), Ok(None));
        let id = parse_org_id("0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c").unwrap().unwrap();
        assert_eq!(id[0], 0x0b);
        assert!(parse_org_id("0B0C8A2E-6F0E-4B8E-9A51-3A1F4F1A2B3C").unwrap().is_some());
    }

    #[pg_test]
    fn parse_rejects_everything_else() {
        for bad in [
            " ",
            "acme",
            "0b0c8a2e6f0e4b8e9a513a1f4f1a2b3c",
            "{0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c}",
            "urn:uuid:0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c",
            " 0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c",
            "0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3g",
            "' OR 1=1 --",
        ] {
            assert_eq!(parse_org_id(bad), Err(()), "{bad:?}");
        }
    }

    #[pg_test]
    fn setting_a_non_uuid_fails_with_22p02() {
        assert_eq!(sqlstate_of("SET LOCAL app.org_id = 'acme'"), "22P02");
        assert_eq!(sqlstate_of("SELECT set_config('app.org_id', 'x', true)"), "22P02");
        assert_eq!(sqlstate_of("SET LOCAL inventory.default_org_id = 'x'"), "22P02");
        assert_eq!(sqlstate_of("SET LOCAL app.org_id = ''"), "00000");
        assert_eq!(
            sqlstate_of("SET LOCAL app.org_id = '0b0c8a2e-6f0e-4b8e-9a51-3a1f4f1a2b3c'"),
            "00000"
        );
    }

    #[pg_test]
    fn other_inventory_settings_are_reserved() {
        // MarkGUCPrefixReserved: a typo in our namespace is an error, not a silent placeholder.
        assert_eq!(sqlstate_of("SET LOCAL inventory.default_org = ''"), "42602");
    }
}
