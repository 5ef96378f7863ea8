//! Argument types pgrx 0.18 lacks, so that SQL signatures read exactly as the contract says:
//! `name` (`org_column name DEFAULT 'org_id'`), `name[]`, and `regclass`/`regrole` as a bare OID (pgrx's own `PgRelation`
//! keeps the relation open, and PostgreSQL then refuses to ALTER it: "being used by active queries").

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::FromDatum;
use std::ffi::CStr;

/// Arguments unboxed through their `FromDatum`, as pgrx does for its own types.
macro_rules! arg_from_datum {
    ($($t:ty),*) => {$(
        unsafe impl<'fcx> ArgAbi<'fcx> for $t {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| {
                    crate::errors::raise(
                        pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                        format!("argument {} must not be NULL", index + 1),
                        "Pass a value for it.",
                    )
                })
            }
        }
    )*};
}
arg_from_datum!(SqlName, RegClass, RegRole, NameArray, JsonbText);

/// An identifier as PostgreSQL passed it (at most 63 bytes, unquoted).
#[derive(Clone)]
pub struct SqlName(pub String);

impl FromDatum for SqlName {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a `name` datum points to a NUL-terminated NameData.
        let name = unsafe { CStr::from_ptr((*datum.cast_mut_ptr::<pg_sys::NameData>()).data.as_ptr()) };
        Some(SqlName(name.to_string_lossy().into_owned()))
    }
}


unsafe impl SqlTranslatable for SqlName {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(SqlName);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("name"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("name")));
}

/// OID types passed as their OID: `regclass` (a relation) and `regrole` (a role).
macro_rules! oid_type {
    ($($(#[$doc:meta])* $t:ident => $sql:literal),*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $t(pub pg_sys::Oid);

        impl FromDatum for $t {
            unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
                (!is_null).then(|| $t(pg_sys::Oid::from(datum.value() as u32)))
            }
        }

        unsafe impl SqlTranslatable for $t {
            const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!($t);
            const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
            const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal($sql)));
        }
    )*};
}
oid_type!(
    /// A relation, passed as `regclass`.
    RegClass => "regclass",
    /// A role, passed as `regrole`.
    RegRole => "regrole"
);

/// A `name[]` argument, as its elements (a NULL element is kept as `None`).
pub struct NameArray(pub Vec<Option<String>>);

impl FromDatum for NameArray {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut count: i32 = 0;
        // SAFETY: a name[] datum; `name` is a fixed-length (64-byte), by-reference, char-aligned type.
        unsafe {
            let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
            pg_sys::deconstruct_array(
                array,
                pg_sys::NAMEOID,
                pg_sys::NAMEDATALEN as i32,
                false,
                b'c' as std::ffi::c_char,
                &mut elems,
                &mut nulls,
                &mut count,
            );
            let names = (0..count as usize)
                .map(|i| match *nulls.add(i) {
                    true => None,
                    false => SqlName::from_polymorphic_datum(*elems.add(i), false, pg_sys::NAMEOID).map(|n| n.0),
                })
                .collect();
            Some(NameArray(names))
        }
    }
}


unsafe impl SqlTranslatable for NameArray {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(NameArray);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("name[]"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("name[]")));
}

/// A `jsonb` argument as its text, so that the function parses it itself and reports its own errors
/// (pgrx's `JsonB` fails with an internal error on a document serde_json cannot read, such as one
/// nested deeper than serde_json's recursion limit).
pub struct JsonbText(pub String);

impl FromDatum for JsonbText {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a jsonb datum, printed by jsonb's own output function.
        let text = unsafe { pgrx::direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(datum)]) };
        text.map(|t| JsonbText(t.to_string_lossy().into_owned()))
    }
}

unsafe impl SqlTranslatable for JsonbText {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonbText);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}
