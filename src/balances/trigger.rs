//! The balance triggers and the append-only guard (SPEC §5, §6).
//!
//! Two triggers keep a ledger's balances, both plain C functions:
//! - `inventory_balances`, AFTER INSERT FOR EACH ROW (`balance_rows`): adds the row's quantity to its
//!   key in the statement's frame (`frames`), in backend memory. No SQL, no allocation beyond the key.
//! - `inventory_balances_flush`, AFTER INSERT FOR EACH STATEMENT (`balance_maintenance`): takes the
//!   frame and writes it: one key with a kept single-row upsert, more with one kept upsert from arrays
//!   that regroups and sorts the keys, so that concurrent statements lock balance rows in one order and
//!   a 1-million-row COPY is one upsert of its distinct keys. No transition table (SPEC §9: Citus).
//!
//! Where their configuration comes from: `inventory.tracked_ledgers`, keyed by the OID of the table the
//! trigger fires on, never the trigger's arguments; an unregistered table is refused (`plans`). Who the
//! flush runs as: `trust::upkeep_for`, decided when the plans are made; the functions themselves are not
//! SECURITY DEFINER (fmgr would switch identity and settings on every row), the flush switches itself.

use super::frames::{self, Delta, KeyImage, Qty, Sum};
use super::plans::{self, not_registered, Plans, QtyKind};
use super::{RULE_ITEMS, RULE_REFUSE};
use crate::errors;
use crate::spi_util::one_text;
use crate::trust;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::collections::HashMap;

fn refuse_zero(plans: &Plans) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("a ledger quantity ({}) cannot be zero, NULL, NaN or infinite", plans.registration.qty),
        "Post a non-zero, finite quantity: positive to receive, negative to issue.",
    )
}

/// The trigger data of a call, checked to be the shape `expected_row_level` says.
///
/// # Safety
/// `fcinfo` is PostgreSQL's for a trigger call (`trigger_entry` checked it).
unsafe fn trigger_data(fcinfo: pg_sys::FunctionCallInfo) -> &'static pg_sys::TriggerData {
    unsafe { &*((*fcinfo).context as *const pg_sys::TriggerData) }
}

thread_local! {
    /// The row trigger's key buffer, kept between rows (taken out while in use, so a nested call —
    /// which cannot happen between taking and putting it back — would only get a fresh one).
    static KEY_BUFFER: std::cell::RefCell<KeyImage> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A key value's image: NULL flag, length, bytes (`frames::KeyImage`).
///
/// # Safety
/// `datum` is a value of `column`'s type.
unsafe fn push_image(image: &mut KeyImage, column: &plans::KeyColumn, datum: pg_sys::Datum, isnull: bool) {
    if isnull {
        image.push(0);
        return;
    }
    image.push(1);
    unsafe {
        let bytes: &[u8] = if column.byval {
            let value = datum.value().to_ne_bytes();
            let len = column.typlen as usize;
            image.extend_from_slice(&(len as u32).to_ne_bytes());
            image.extend_from_slice(&value[..len]);
            return;
        } else if column.typlen > 0 {
            std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), column.typlen as usize)
        } else if column.typlen == -1 {
            let v = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            std::slice::from_raw_parts(pgrx::varlena::vardata_any(v) as *const u8, pgrx::varlena::varsize_any_exhdr(v))
        } else {
            std::ffi::CStr::from_ptr(datum.cast_mut_ptr()).to_bytes()
        };
        image.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
        image.extend_from_slice(bytes);
    }
}

/// The key values of an image, as datums in the current memory context (NULL: `None`).
pub(super) fn key_datums(plans: &Plans, image: &[u8]) -> Vec<Option<pg_sys::Datum>> {
    let mut at = 0;
    plans
        .keys
        .iter()
        .map(|column| {
            let present = image[at] == 1;
            at += 1;
            if !present {
                return None;
            }
            let len = u32::from_ne_bytes(image[at..at + 4].try_into().expect("4 bytes")) as usize;
            at += 4;
            let bytes = &image[at..at + len];
            at += len;
            // SAFETY: building a value of the column's type from the image `push_image` made of one.
            Some(unsafe {
                if column.byval {
                    let mut value = [0u8; 8];
                    value[..len].copy_from_slice(bytes);
                    pg_sys::Datum::from(usize::from_ne_bytes(value))
                } else if column.typlen > 0 {
                    let p = pg_sys::palloc(len) as *mut u8;
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, len);
                    pg_sys::Datum::from(p)
                } else if column.typlen == -1 {
                    let p = pg_sys::palloc(len + 4) as *mut u8;
                    pgrx::varlena::set_varsize_4b(p as *mut pg_sys::varlena, (len + 4) as i32);
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(4), len);
                    pg_sys::Datum::from(p)
                } else {
                    let p = pg_sys::palloc0(len + 1) as *mut u8;
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, len);
                    pg_sys::Datum::from(p)
                }
            })
        })
        .collect()
}

/// 55000 unless the call is an AFTER INSERT trigger at the level its function is for: each row
/// (`balance_rows`) or each statement (`balance_maintenance`).
fn require_after_insert(td: &pg_sys::TriggerData, row_level: bool) {
    let event = td.tg_event;
    if event & pg_sys::TRIGGER_EVENT_OPMASK != pg_sys::TRIGGER_EVENT_INSERT
        || (event & pg_sys::TRIGGER_EVENT_ROW != 0) != row_level
        || event & pg_sys::TRIGGER_EVENT_TIMINGMASK != pg_sys::TRIGGER_EVENT_AFTER
    {
        not_registered(if row_level {
            "inventory.balance_rows() must be an AFTER INSERT … FOR EACH ROW trigger".into()
        } else {
            "inventory.balance_maintenance() must be an AFTER INSERT … FOR EACH STATEMENT trigger".into()
        })
    }
}

/// The row trigger: one row's quantity into its key's delta in the statement's frame.
fn balance_rows(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: `trigger_entry` checked this is a trigger call.
    let td = unsafe { trigger_data(fcinfo) };
    // SAFETY: the trigger's relation is open for the call.
    let ledger = unsafe { (*td.tg_relation).rd_id };
    require_after_insert(td, true);
    let plans = plans::plans_for(ledger);
    let slot = td.tg_trigslot;
    // One buffer for every row's key: a row whose key the statement already met allocates nothing.
    let mut image = KEY_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    image.clear();
    // SAFETY: the slot holds the inserted row of the trigger's relation; attnums come from its catalog.
    unsafe {
        for column in &plans.keys {
            let mut isnull = false;
            let datum = pg_sys::slot_getattr(slot, column.attnum, &mut isnull);
            push_image(&mut image, column, datum, isnull);
        }
        let mut isnull = false;
        let datum = pg_sys::slot_getattr(slot, plans.qty_attnum, &mut isnull);
        if isnull {
            refuse_zero(&plans);
        }
        let qty = match plans.qty_kind {
            QtyKind::Int2 => Qty::Int(datum.value() as i16 as i64),
            QtyKind::Int4 => Qty::Int(datum.value() as i32 as i64),
            QtyKind::Int8 => Qty::Int(datum.value() as i64),
            QtyKind::Numeric => {
                let numeric = pg_sys::Datum::from(pg_sys::pg_detoast_datum(datum.cast_mut_ptr()));
                if frames::numeric::is_unusable(numeric) {
                    refuse_zero(&plans);
                }
                Qty::Numeric(numeric)
            }
        };
        if matches!(qty, Qty::Int(0)) {
            refuse_zero(&plans);
        }
        let id = plans.id_attnum.and_then(|attnum| {
            let mut isnull = false;
            let datum = pg_sys::slot_getattr(slot, attnum, &mut isnull);
            (!isnull).then(|| datum.value() as i64)
        });
        frames::add(ledger, frames::current_statement(), &image, qty, id);
    }
    KEY_BUFFER.with(|b| *b.borrow_mut() = image);
}

/// A sum as a numeric datum in the current memory context.
pub(super) fn sum_datum(sum: &Sum) -> pg_sys::Datum {
    match *sum {
        Sum::Numeric(d) => d,
        Sum::Int(v) => {
            let v = i64::try_from(v).unwrap_or_else(|_| {
                errors::raise(
                    PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                    "the quantities one statement posts to one key add up beyond the bigint range",
                    "Post them in several statements.",
                )
            });
            // SAFETY: a plain conversion.
            pg_sys::Datum::from(unsafe { pg_sys::int64_to_numeric(v) })
        }
    }
}

/// A one-dimensional array of `values` of type `element` (len, byval, align).
fn array(values: &[Option<pg_sys::Datum>], element: pg_sys::Oid, typlen: i16, byval: bool, align: std::ffi::c_char) -> pg_sys::Datum {
    let mut datums: Vec<pg_sys::Datum> = values.iter().map(|v| v.unwrap_or(pg_sys::Datum::from(0))).collect();
    let mut nulls: Vec<bool> = values.iter().map(Option::is_none).collect();
    let mut dims = [values.len() as i32];
    let mut lbs = [1];
    // SAFETY: the arrays are as long as `dims` says; construct_md_array copies the values.
    pg_sys::Datum::from(unsafe {
        pg_sys::construct_md_array(datums.as_mut_ptr(), nulls.as_mut_ptr(), 1, dims.as_mut_ptr(), lbs.as_mut_ptr(), element, typlen as i32, byval, align)
    })
}

/// Runs a kept plan with `values` (NULL: `None`) and returns the rows' columns as text.
pub(super) fn execute(plan: pg_sys::SPIPlanPtr, values: &[Option<pg_sys::Datum>]) -> Vec<Vec<Option<String>>> {
    let mut datums: Vec<pg_sys::Datum> = values.iter().map(|v| v.unwrap_or(pg_sys::Datum::from(0))).collect();
    let nulls: Vec<std::ffi::c_char> = values.iter().map(|v| if v.is_some() { b' ' } else { b'n' } as std::ffi::c_char).collect();
    // SAFETY: SPI calls in a connection of their own; the plan is kept and its parameters match.
    unsafe {
        pg_sys::SPI_connect();
        let rc = pg_sys::SPI_execute_plan(plan, datums.as_mut_ptr(), nulls.as_ptr(), false, 0);
        if rc < 0 {
            errors::raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("the balance upsert failed (SPI result {rc})"),
                "This is a bug in inventory_ext; please report it with the statement that caused it.",
            )
        }
        let mut result = Vec::new();
        let table = pg_sys::SPI_tuptable;
        if !table.is_null() {
            let natts = (*(*table).tupdesc).natts;
            for i in 0..pg_sys::SPI_processed as usize {
                let tuple = *(*table).vals.add(i);
                let row = (1..=natts)
                    .map(|c| {
                        let text = pg_sys::SPI_getvalue(tuple, (*table).tupdesc, c);
                        (!text.is_null()).then(|| std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned())
                    })
                    .collect();
                result.push(row);
            }
        }
        pg_sys::SPI_finish();
        result
    }
}

/// The statement trigger: writes the statement's frame into the balances, then applies the
/// negative-stock rule to the keys it lowered below zero.
fn balance_maintenance(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: `trigger_entry` checked this is a trigger call.
    let td = unsafe { trigger_data(fcinfo) };
    // SAFETY: the trigger's relation is open for the call.
    let ledger = unsafe { (*td.tg_relation).rd_id };
    require_after_insert(td, false);
    // Made (and checked) also when the statement inserted nothing: a missing row trigger shows at once.
    let mut plans = plans::plans_for(ledger);
    // The balance table locked before its cached description is used: taking the lock reads the
    // invalidations of a concurrent ALTER that committed while we waited, so the plans are made again.
    // SAFETY: a relation lock held to the end of the transaction, as any write to the table takes.
    unsafe { pg_sys::LockRelationOid(plans.balance, pg_sys::RowExclusiveLock as i32) };
    plans = plans::plans_for(ledger);
    let Some(deltas) = frames::take(ledger, frames::current_statement()) else { return };
    if plans.slotted.is_some() {
        // Spread over slots: the negative-stock rule is kept key by key as it writes (`spread`).
        let tried = plans.direct.is_some() && deltas.len() == 1;
        if tried && super::spread::take_directly(&plans, &deltas) {
            return;
        }
        return trust::run_pinned(plans.upkeep, plans.extension_owner, || super::spread::write(&plans, deltas, tried));
    }
    let lowered_below_zero = match write_directly(&plans, &deltas) {
        Some(lowered) => lowered,
        None => trust::run_pinned(plans.upkeep, plans.extension_owner, || write(&plans, deltas)),
    };
    if !lowered_below_zero.is_empty() {
        apply_negative_rule(&plans, &lowered_below_zero);
    }
}

/// One key's delta written without SQL (`direct`), when the balance table allows it and the row is
/// there: no user code can run, so neither the upkeep's identity nor a pinned search_path is needed.
/// `None`: the SQL upsert must write it.
fn write_directly(plans: &Plans, deltas: &HashMap<KeyImage, Delta>) -> Option<Vec<Vec<Option<String>>>> {
    let target = plans.direct.as_ref()?;
    if deltas.len() != 1 {
        return None;
    }
    let (image, delta) = deltas.iter().next()?;
    let keys = key_datums(plans, image);
    let below_zero = super::direct::add(target, &keys, sum_datum(&delta.sum), delta.max_id)?;
    if plans.registration.rule.is_some() && below_zero && delta.lowers() {
        return Some(vec![key_texts(plans, &keys)]);
    }
    Some(Vec::new())
}

/// Writes one statement's deltas; returns the keys (as text) whose balance the statement lowered
/// below zero, when the ledger has a negative-stock rule.
fn write(plans: &Plans, deltas: HashMap<KeyImage, Delta>) -> Vec<Vec<Option<String>>> {
    let rule = plans.registration.rule.is_some();
    if deltas.len() == 1 {
        let (image, delta) = deltas.into_iter().next().expect("one delta");
        let mut values = key_datums(plans, &image);
        values.push(Some(sum_datum(&delta.sum)));
        values.push(delta.max_id.map(pg_sys::Datum::from));
        let below_zero = execute(plans.single, &values).first().and_then(|r| r[0].clone()) == Some("t".into());
        if rule && below_zero && delta.lowers() {
            return vec![key_texts(plans, &values)];
        }
        return Vec::new();
    }
    let mut values = key_arrays(plans, deltas.keys().map(Vec::as_slice));
    let sums: Vec<_> = deltas.values().map(|delta| Some(sum_datum(&delta.sum))).collect();
    let ids: Vec<_> = deltas.values().map(|delta| delta.max_id.map(pg_sys::Datum::from)).collect();
    values.push(Some(array(&sums, pg_sys::NUMERICOID, -1, false, b'i' as std::ffi::c_char)));
    values.push(Some(array(&ids, pg_sys::INT8OID, 8, true, b'd' as std::ffi::c_char)));
    let below_zero = execute(plans.bulk, &values);
    if rule { below_zero } else { Vec::new() }
}

/// The keys of `images` as one array per key column, in the images' order.
pub(super) fn key_arrays<'a>(plans: &Plans, images: impl Iterator<Item = &'a [u8]>) -> Vec<Option<pg_sys::Datum>> {
    let mut columns: Vec<Vec<Option<pg_sys::Datum>>> = vec![Vec::new(); plans.keys.len()];
    for image in images {
        for (column, value) in columns.iter_mut().zip(key_datums(plans, image)) {
            column.push(value);
        }
    }
    plans.keys.iter().zip(&columns).map(|(k, column)| Some(array(column, k.typid, k.typlen, k.byval, k.align))).collect()
}

/// A key's values as text (for a refusal's message and the item lookup).
pub(super) fn key_texts(plans: &Plans, values: &[Option<pg_sys::Datum>]) -> Vec<Option<String>> {
    plans
        .keys
        .iter()
        .zip(values)
        .map(|(k, v)| {
            v.map(|d| {
                let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
                // SAFETY: a value of the key column's type and that type's output function.
                unsafe {
                    pg_sys::getTypeOutputInfo(k.typid, &mut output, &mut varlena);
                    std::ffi::CStr::from_ptr(pg_sys::OidOutputFunctionCall(output, d)).to_string_lossy().into_owned()
                }
            })
        })
        .collect()
}

/// Keys a statement lowered below zero: refused (23514) unless the ledger's rule allows them. Decided
/// after the upsert, which holds the balance rows' locks: two sessions cannot both take the last unit.
/// A statement that raises a balance, or leaves it where it was, is never refused (SPEC §5).
pub(super) fn apply_negative_rule(plans: &Plans, lowered: &[Vec<Option<String>>]) {
    let refused = match plans.registration.rule.as_deref() {
        None => return,
        Some(RULE_REFUSE) => Some(format!(
            "key ({})",
            lowered[0].iter().map(|k| k.as_deref().unwrap_or("NULL")).collect::<Vec<_>>().join(", ")
        )),
        Some(RULE_ITEMS) => refusing_items(plans, lowered),
        Some(other) => errors::raise(
            PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            format!("inventory.tracked_ledgers names an unknown negative-stock rule {other:?}"),
            "Re-run inventory.track_balances for the ledger.",
        ),
    };
    if let Some(what) = refused {
        errors::raise(
            PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            format!("not enough stock: this posting would take the balance of {what} below zero"),
            "Post less, receive stock first, or allow negative stock for it if that is intended.",
        );
    }
}

/// The built-in ledger's rule: locks the keys' items FOR SHARE and names the first that does not allow
/// negative stock (`item <sku>`), if any. FOR SHARE: a concurrent `allow_negative = false` waits for
/// this posting (and its guard then sees the negative balance), or this posting waits for it and is
/// refused. A slotted gather takes it before it locks the key's rows, in the guard's order (item, then
/// balance rows), so the two never wait for each other.
pub(super) fn refusing_items(plans: &Plans, keys: &[Vec<Option<String>>]) -> Option<String> {
    // The built-in ledger's keys are (org_id, item_id, location_id, lot_id).
    let orgs: Vec<Option<String>> = keys.iter().map(|k| k[0].clone()).collect();
    let items: Vec<Option<String>> = keys.iter().map(|k| k[1].clone()).collect();
    trust::run_pinned(trust::Upkeep::Definer, plans.extension_owner, || {
        one_text(
            &format!(
                "SELECT 'item ' || min(s.sku) FILTER (WHERE NOT s.allow_negative) FROM (
                     SELECT i.sku, i.allow_negative FROM unnest($1::text[]::uuid[], $2::text[]::uuid[]) AS n(org_id, item_id)
                       JOIN {} i ON i.org_id = n.org_id AND i.id = n.item_id
                        FOR SHARE OF i) s",
                plans.items_table
            ),
            &[orgs.into(), items.into()],
        )
    })
}

/// UPDATE, DELETE and TRUNCATE on a tracked ledger: refused (55000). A ledger is corrected by posting a
/// reversing entry, which keeps the history and the balances exact.
fn append_only_guard(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: `trigger_entry` checked this is a trigger call.
    let td = unsafe { trigger_data(fcinfo) };
    let op = match td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
        pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
        pg_sys::TRIGGER_EVENT_TRUNCATE => "TRUNCATE",
        _ => return,
    };
    // SAFETY: the trigger's relation is open for the call.
    let relid = unsafe { (*td.tg_relation).rd_id };
    // On Citus the guard fires on a shard: the application wrote to (and knows) the distributed table.
    let table = crate::spi_util::relation_name(crate::citus::shard_of(relid).map_or(relid, |shard| shard.table));
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("{op} on {table} is not allowed: the ledger is append-only"),
        "To correct an entry, post a reversing entry (the same item, location and lot with the opposite quantity).",
    )
}

/// The fmgr entry of a trigger function: the body, or 0A000 when it is called as a plain function.
fn trigger_entry(fcinfo: pg_sys::FunctionCallInfo, name: &str, body: fn(pg_sys::FunctionCallInfo)) -> pg_sys::Datum {
    crate::call_context(
        fcinfo,
        pg_sys::NodeTag::T_TriggerData,
        name,
        "a trigger",
        "It is installed on tracked ledgers by inventory.track_balances.",
    );
    body(fcinfo);
    // Returning NULL is what AFTER and statement triggers return (and what makes a BEFORE trigger
    // skip the operation, which only the guard's refusal reaches first).
    pg_sys::Datum::from(0)
}

crate::v1_function!(balance_rows_entry, pg_finfo_balance_rows_entry, |fcinfo| {
    trigger_entry(fcinfo, "inventory.balance_rows()", balance_rows)
});
crate::v1_function!(balance_maintenance_entry, pg_finfo_balance_maintenance_entry, |fcinfo| {
    trigger_entry(fcinfo, "inventory.balance_maintenance()", balance_maintenance)
});
crate::v1_function!(append_only_guard_entry, pg_finfo_append_only_guard_entry, |fcinfo| {
    trigger_entry(fcinfo, "inventory.append_only_guard()", append_only_guard)
});

// The symbols inventory_ext 0.1.0's SQL names (docs/UPGRADING.md: one library file serves every
// version's SQL, so it keeps each symbol an older version's SQL names, with that SQL's signature).
// Between installing this library and ALTER EXTENSION inventory_ext UPDATE, a database still runs
// 0.1.0's SQL: its guard keeps guarding; its balance trigger (one AFTER INSERT … FOR EACH STATEMENT
// trigger that read a transition table) cannot be served by this version's engine, which sums rows as
// a row trigger sees them, so it refuses the posting — the statement rolls back and no balance drifts.
crate::v1_function!(append_only_guard_wrapper, pg_finfo_append_only_guard_wrapper, |fcinfo| {
    trigger_entry(fcinfo, "inventory.append_only_guard()", append_only_guard)
});
crate::v1_function!(balance_maintenance_wrapper, pg_finfo_balance_maintenance_wrapper, |fcinfo| {
    trigger_entry(fcinfo, "inventory.balance_maintenance()", |_| legacy_sql_refused())
});

/// A posting through 0.1.0's balance trigger while the library is newer: 55000 until the update.
fn legacy_sql_refused() -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "this database's inventory_ext is still version 0.1.0, and the installed library is {}: postings to tracked ledgers wait for the update",
            env!("CARGO_PKG_VERSION")
        ),
        "Run ALTER EXTENSION inventory_ext UPDATE in this database (docs/UPGRADING.md); nothing was written.",
    )
}

pgrx::extension_sql!(
    r#"
-- The trigger functions (src/balances/trigger.rs). Written by hand so that a direct call answers 0A000.
-- Not SECURITY DEFINER: the flush takes the upkeep's identity itself (src/trust.rs), once per statement.
CREATE FUNCTION inventory.balance_rows() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'balance_rows_entry';
CREATE FUNCTION inventory.balance_maintenance() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'balance_maintenance_entry';
CREATE FUNCTION inventory.append_only_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'append_only_guard_entry';
"#,
    name = "trigger_functions",
);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::test_support::sqlstate_of;
    use pgrx::prelude::*;

    #[pg_test]
    fn the_triggers_refuse_a_table_that_is_not_registered() {
        Spi::run(
            "CREATE TABLE not_a_ledger (item text, qty numeric);
             CREATE TRIGGER t AFTER INSERT ON not_a_ledger FOR EACH ROW EXECUTE FUNCTION inventory.balance_rows();
             CREATE TABLE not_a_ledger2 (item text, qty numeric);
             CREATE TRIGGER t AFTER INSERT ON not_a_ledger2 FOR EACH STATEMENT EXECUTE FUNCTION inventory.balance_maintenance()",
        )
        .unwrap();
        assert_eq!(sqlstate_of("INSERT INTO not_a_ledger VALUES ('a', 1)"), "55000");
        assert_eq!(sqlstate_of("INSERT INTO not_a_ledger2 VALUES ('a', 1)"), "55000");
        assert_eq!(sqlstate_of("SELECT inventory.balance_maintenance()"), "0A000");
        assert_eq!(sqlstate_of("SELECT inventory.balance_rows()"), "0A000");
    }

    #[pg_test]
    fn zero_and_non_finite_numeric_quantities_are_recognised() {
        for (text, unusable, negative) in [
            ("0", true, false),
            ("0.000", true, false),
            ("-0", true, false),
            ("NaN", true, false),
            ("Infinity", true, false),
            ("-Infinity", true, false),
            ("1", false, false),
            ("0.001", false, false),
            ("-10", false, true),
            ("-0.5", false, true),
            ("1e1000", false, false),
            ("-123456789012345678901234567890.123456789", false, true),
        ] {
            let d = Spi::get_one_with_args::<pgrx::AnyNumeric>("SELECT $1::numeric", &[text.into()]).unwrap().unwrap();
            let datum = pgrx::IntoDatum::into_datum(d).unwrap();
            // SAFETY: a numeric datum, detoasted as the row trigger does.
            unsafe {
                let datum = pg_sys::Datum::from(pg_sys::pg_detoast_datum(datum.cast_mut_ptr()));
                assert_eq!(super::frames::numeric::is_unusable(datum), unusable, "{text}");
                assert_eq!(super::frames::numeric::is_negative(datum), negative, "{text}");
            }
        }
    }
}
