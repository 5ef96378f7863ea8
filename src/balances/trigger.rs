//! The balance trigger and the append-only guard (SPEC §5, §6).
//!
//! The balance trigger is an AFTER INSERT … FOR EACH STATEMENT trigger with a transition table. Per
//! statement it reads and aggregates the new rows once (one row per balance key, in key order), then
//! applies all of them with one upsert from arrays (`unnest`) through a plan kept for the session. The
//! upsert touches keys in that sorted order, so concurrent multi-row inserts lock balance rows in the
//! same order and cannot deadlock each other; a 1-million-row COPY is one upsert of its distinct keys.
//! Reading the transition table first and upserting from arrays, rather than `INSERT … SELECT FROM`
//! it, is also what Citus can run (SPEC §9).
//!
//! Where its configuration comes from: `inventory.tracked_ledgers`, keyed by the OID of the table the
//! trigger fires on, never the trigger's arguments (whoever can attach a trigger function to a table
//! would otherwise choose which balance table it writes). A table that is not registered is refused.
//! Who it runs as: `trust::upkeep_for` (the extension for trusted tables, else the tables' owner in a
//! security-restricted operation). Both are decided when the plans are made, and the plans are dropped
//! whenever either table changes (a relcache invalidation: ALTER TABLE, ALTER … OWNER, DROP, CREATE
//! or DROP TRIGGER, which track_balances and untrack_balances do).

use super::{registered, Registered, RULE_ITEMS, RULE_REFUSE};
use crate::errors;
use crate::spi_util::{one_text, relation_name};
use crate::trust::{self, Upkeep};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use crate::sql_text::{ident, ident_list};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The name the trigger registers its transition table under (`REFERENCING NEW TABLE AS …`).
pub const NEW_ROWS: &str = "inventory_new_rows";

/// What the balance trigger of one ledger needs, from its registration.
pub(super) struct Tracking {
    pub balance_table: String,
    pub qty: String,
    pub id: Option<String>,
    pub rule: Option<String>,
    pub keys: Vec<String>,
}

impl Tracking {
    pub fn of(r: &Registered) -> Tracking {
        Tracking {
            balance_table: r.balance_name.clone(),
            qty: r.qty.clone(),
            id: r.id.clone(),
            rule: r.rule.clone(),
            keys: r.keys.clone(),
        }
    }

    fn key_list(&self) -> String {
        ident_list("", &self.keys)
    }

    /// One row of arrays: each key column (as text), the sum of qty per key, the largest ledger id per
    /// key, all in key order; and whether any row has a zero or NULL quantity.
    fn aggregate_sql(&self, new_rows: &str) -> String {
        let order = (1..=self.keys.len()).map(|i| format!("g.k{i}")).collect::<Vec<_>>().join(", ");
        let group_cols = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} AS k{}", ident(k), i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let arrays = (1..=self.keys.len())
            .map(|i| format!("array_agg(g.k{i}::text ORDER BY {order})"))
            .collect::<Vec<_>>()
            .join(", ");
        let qty = ident(&self.qty);
        let max_id = match &self.id {
            Some(id) => format!("max({})::bigint", ident(id)),
            None => "NULL::bigint".into(),
        };
        format!(
            "SELECT {arrays}, array_agg(g.s::text ORDER BY {order}), array_agg(g.m ORDER BY {order}), \
                    coalesce(bool_or(g.bad), false) \
               FROM (SELECT {group_cols}, sum({qty}) AS s, {max_id} AS m, \
                            bool_or({qty} IS NULL OR {qty}::numeric IN (0, 'NaN', 'Infinity', '-Infinity')) AS bad \
                       FROM {new_rows} GROUP BY {keys}) g",
            new_rows = ident(new_rows),
            keys = (1..=self.keys.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
        )
    }

    /// The upsert of many keys, parameterised by the arrays `aggregate_sql` returns (as text[] and
    /// bigint[]). `types` are the balance table's key column types, so the text lands back in them.
    fn upsert_sql(&self, types: &[String]) -> String {
        let n = self.keys.len();
        let casts = types.iter().enumerate().map(|(i, t)| format!("u.k{}::{t}", i + 1)).collect::<Vec<_>>();
        let params = (1..=n + 1).map(|i| format!("${i}::text[]")).collect::<Vec<_>>().join(", ");
        let aliases = (1..=n).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", ");
        let id_val = if self.id.is_some() { ", u.m" } else { "" };
        self.upsert_into(&format!(
            "SELECT {}, u.q::numeric{id_val}, now() \
               FROM unnest({params}, ${m}::bigint[]) WITH ORDINALITY AS u({aliases}, q, m, ord) \
              ORDER BY u.ord",
            casts.join(", "),
            m = n + 2,
        ))
    }

    /// The upsert of one key, for a statement that inserted one row: parameters are the key values and
    /// the quantity as text and the ledger id as bigint.
    fn single_upsert_sql(&self, types: &[String]) -> String {
        let n = self.keys.len();
        let values = types.iter().enumerate().map(|(i, t)| format!("${}::{t}", i + 1)).collect::<Vec<_>>();
        let id_val = if self.id.is_some() { format!(", ${}::bigint", n + 2) } else { String::new() };
        self.upsert_into(&format!("VALUES ({}, ${}::numeric{id_val}, now())", values.join(", "), n + 1))
    }

    /// INSERT … ON CONFLICT DO UPDATE from `source`, returning each key (as text) and whether its
    /// balance is now below zero.
    fn upsert_into(&self, source: &str) -> String {
        let (id_col, id_set) = match &self.id {
            Some(_) => (", last_ledger_id", ", last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id)"),
            None => ("", ""),
        };
        let returning = self.keys.iter().map(|k| format!("b.{}::text", ident(k))).collect::<Vec<_>>();
        format!(
            "INSERT INTO {table} AS b ({keys}, qty{id_col}, updated_at) {source} \
             ON CONFLICT ({keys}) DO UPDATE SET qty = b.qty + excluded.qty{id_set}, updated_at = excluded.updated_at \
             RETURNING {returning}, b.qty < 0",
            table = self.balance_table,
            keys = self.key_list(),
            returning = returning.join(", "),
        )
    }
}

/// The statements of one ledger's trigger, prepared once and kept until either table changes.
struct Plans {
    tracking: Tracking,
    upkeep: Upkeep,
    aggregate: OwnedPreparedStatement,
    upsert: OwnedPreparedStatement,
    single: OwnedPreparedStatement,
    /// Where the ledger's key, qty and id columns are, and their output functions.
    key_columns: Vec<(i32, pg_sys::Oid)>,
    qty_column: (i32, pg_sys::Oid),
    id_column: Option<i32>,
    ledger: pg_sys::Oid,
    balance: pg_sys::Oid,
}

/// A ledger column's attribute number and output function, from the trigger's relation.
fn ledger_column(tupdesc: pg_sys::TupleDesc, name: &str) -> (i32, pg_sys::Oid) {
    // SAFETY: the trigger's relation descriptor is valid for the call.
    unsafe {
        for i in 0..(*tupdesc).natts as usize {
            let att = &*(*tupdesc).attrs.as_ptr().add(i);
            if !att.attisdropped && std::ffi::CStr::from_ptr(att.attname.data.as_ptr()).to_bytes() == name.as_bytes() {
                let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(att.atttypid, &mut output, &mut varlena);
                return (att.attnum as i32, output);
            }
        }
    }
    errors::raise(
        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        format!("the tracked ledger has no column {}", ident(name)),
        "A column the balances are keyed on was renamed or dropped: re-run inventory.track_balances.",
    )
}

/// The one row a single-row INSERT put in the transition table: its keys and quantity as text, its id.
/// It reads through a read pointer of its own, so other readers of the table are not disturbed.
unsafe fn single_row(td: &pg_sys::TriggerData, plans: &Plans) -> (Vec<Option<String>>, Option<String>, Option<i64>) {
    unsafe {
        let store = td.tg_newtable;
        let slot = pg_sys::MakeSingleTupleTableSlot((*td.tg_relation).rd_att, &pg_sys::TTSOpsMinimalTuple);
        let pointer = pg_sys::tuplestore_alloc_read_pointer(store, 0);
        pg_sys::tuplestore_select_read_pointer(store, pointer);
        pg_sys::tuplestore_rescan(store);
        let found = pg_sys::tuplestore_gettupleslot(store, true, false, slot);
        pg_sys::tuplestore_select_read_pointer(store, 0);
        assert!(found, "the transition table holds one row");
        let text = |(attnum, output): (i32, pg_sys::Oid)| {
            let mut isnull = false;
            let datum = pg_sys::slot_getattr(slot, attnum, &mut isnull);
            (!isnull).then(|| {
                std::ffi::CStr::from_ptr(pg_sys::OidOutputFunctionCall(output, datum)).to_string_lossy().into_owned()
            })
        };
        let keys = plans.key_columns.iter().map(|c| text(*c)).collect();
        let qty = text(plans.qty_column);
        let id = plans.id_column.and_then(|attnum| {
            let mut isnull = false;
            let datum = pg_sys::slot_getattr(slot, attnum, &mut isnull);
            (!isnull).then(|| datum.value() as i64)
        });
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        (keys, qty, id)
    }
}

/// A quantity no ledger row may hold: zero (all its digits are), or not a finite number (numeric has
/// NaN and ±Infinity; one such row would make its balance NaN or infinite for good).
fn is_unusable_qty(numeric: &str) -> bool {
    matches!(numeric, "NaN" | "Infinity" | "-Infinity")
        || (numeric.bytes().any(|b| b.is_ascii_digit()) && numeric.bytes().filter(u8::is_ascii_digit).all(|b| b == b'0'))
}

fn refuse_zero(tracking: &Tracking) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("a ledger quantity ({}) cannot be zero, NULL, NaN or infinite", tracking.qty),
        "Post a non-zero, finite quantity: positive to receive, negative to issue.",
    )
}

thread_local! {
    /// Kept plans by ledger OID. Shared (`Rc`) so that a statement the upsert sets off (a trigger on the
    /// balance table writing another tracked ledger) can use the cache while an outer statement does.
    static PLANS: RefCell<HashMap<pg_sys::Oid, Rc<Plans>>> = RefCell::new(HashMap::new());
    /// Relations invalidated since the cache was last looked at (`InvalidOid`: all of them). The
    /// callback only records them: freeing plans inside cache invalidation could free one in use.
    static INVALIDATED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
}

/// Relcache invalidation callback (registered in `_PG_init`).
#[pg_guard]
pub unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    INVALIDATED.with(|list| {
        let mut list = list.borrow_mut();
        if list.len() >= 64 {
            list.clear();
            list.push(pg_sys::InvalidOid);
        } else if list.last() != Some(&pg_sys::InvalidOid) {
            list.push(relid);
        }
    });
}

/// Syscache invalidation callback (registered in `_PG_init` for schemas and roles): a renamed schema
/// can change what the plans' names resolve to, and a role that gains or loses superuser whom they
/// trust, so every kept plan goes and is made (and checked by `trust::upkeep_for`) again. (Types and
/// functions change far more often — every CREATE TABLE makes a type — so a function or domain given
/// to another owner is checked again only when the plans are next made.)
#[pg_guard]
pub unsafe extern "C-unwind" fn catalog_changed(_arg: pg_sys::Datum, _cacheid: std::ffi::c_int, _hash: u32) {
    INVALIDATED.with(|list| {
        let mut list = list.borrow_mut();
        list.clear();
        list.push(pg_sys::InvalidOid);
    });
}

/// Drops the kept plans of every ledger whose ledger or balance table was invalidated.
fn forget_invalidated() {
    let changed: Vec<pg_sys::Oid> = INVALIDATED.with(|list| std::mem::take(&mut *list.borrow_mut()));
    if changed.is_empty() {
        return;
    }
    PLANS.with(|plans| {
        plans.borrow_mut().retain(|_, p| {
            !changed.iter().any(|&c| c == pg_sys::InvalidOid || c == p.ledger || c == p.balance)
        })
    });
}

fn key_types(client: &SpiClient, tracking: &Tracking) -> SpiResult<Vec<String>> {
    tracking
        .keys
        .iter()
        .map(|k| {
            client
                .select(
                    "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                      WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped",
                    Some(1),
                    &[tracking.balance_table.as_str().into(), k.as_str().into()],
                )?
                .first()
                .get_one::<String>()
                .map(|t| {
                    t.unwrap_or_else(|| {
                        errors::raise(
                            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                            format!("balance table {} has no column {}", tracking.balance_table, ident(k)),
                            "The balance table was altered after inventory.track_balances: re-run it.",
                        )
                    })
                })
        })
        .collect()
}

/// 55000: the trigger function fired somewhere it does not belong.
fn not_registered(what: String) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        what,
        "inventory.balance_maintenance only runs as the trigger inventory.track_balances installs on a ledger \
         registered in inventory.tracked_ledgers; call inventory.track_balances instead of CREATE TRIGGER.",
    )
}

/// The plans for the ledger the trigger fired on: from the cache, or made from its registration.
fn plans_for(client: &mut SpiClient, trigger: &pgrx::PgTrigger, trigger_data: *mut pg_sys::TriggerData) -> SpiResult<Rc<Plans>> {
    forget_invalidated();
    // SAFETY: the trigger's relation is open for the call.
    let ledger = unsafe { (*(*trigger_data).tg_relation).rd_id };
    if let Some(plans) = PLANS.with(|p| p.borrow().get(&ledger).cloned()) {
        return Ok(plans);
    }
    let shape_ok = matches!(trigger.when(), Ok(pgrx::PgTriggerWhen::After))
        && matches!(trigger.level(), pgrx::PgTriggerLevel::Statement)
        && matches!(trigger.op(), Ok(pgrx::PgTriggerOperation::Insert))
        && trigger.new_transition_table_name().ok().flatten() == Some(NEW_ROWS);
    let Some(registration) = registered(Some(ledger)).pop() else {
        not_registered(format!("{} is not a tracked ledger", relation_name(ledger)))
    };
    if !shape_ok {
        not_registered(format!(
            "the balance trigger on {} must be AFTER INSERT … REFERENCING NEW TABLE AS {NEW_ROWS} FOR EACH STATEMENT",
            registration.ledger_name
        ));
    }
    let upkeep = trust::upkeep_for(ledger, registration.balance_oid, registration.org.is_some());
    let tracking = Tracking::of(&registration);
    let n = tracking.keys.len();
    let aggregate = client.prepare(&tracking.aggregate_sql(NEW_ROWS), &[])?.keep();
    let types = key_types(client, &tracking)?;
    let mut oids = vec![PgOid::from(pg_sys::TEXTARRAYOID); n + 1];
    oids.push(PgOid::from(pg_sys::INT8ARRAYOID));
    let upsert = client.prepare_mut(&tracking.upsert_sql(&types), &oids)?.keep();
    let mut oids = vec![PgOid::from(pg_sys::TEXTOID); n + 1];
    oids.push(PgOid::from(pg_sys::INT8OID));
    let single = client.prepare_mut(&tracking.single_upsert_sql(&types), &oids)?.keep();
    // SAFETY: the trigger's relation is open for the call.
    let tupdesc = unsafe { (*(*trigger_data).tg_relation).rd_att };
    let plans = Rc::new(Plans {
        key_columns: tracking.keys.iter().map(|k| ledger_column(tupdesc, k)).collect(),
        qty_column: ledger_column(tupdesc, &tracking.qty),
        id_column: tracking.id.as_ref().map(|id| ledger_column(tupdesc, id).0),
        tracking,
        upkeep,
        aggregate,
        upsert,
        single,
        ledger,
        balance: registration.balance_oid,
    });
    PLANS.with(|p| p.borrow_mut().insert(ledger, plans.clone()));
    Ok(plans)
}

/// The balance trigger's body. SECURITY DEFINER (see sql/ledger.sql): applications never write
/// balances themselves, and each row's balance is its own tenant's, whatever the session's tenant.
fn balance_maintenance(trigger: &pgrx::PgTrigger) {
    let trigger_data = trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    let (negatives, plans) = Spi::connect_mut(|client| -> SpiResult<(Vec<Vec<Option<String>>>, Rc<Plans>)> {
        // SAFETY: the trigger data outlives this SPI connection; registering it makes the transition
        // table visible to queries by name.
        unsafe { pg_sys::SPI_register_trigger_data(trigger_data) };
        let plans = plans_for(client, trigger, trigger_data)?;
        let (tracking, n) = (&plans.tracking, plans.tracking.keys.len());
        // SAFETY: the transition table belongs to this trigger call.
        let rows_inserted = unsafe { pg_sys::tuplestore_tuple_count((*trigger_data).tg_newtable) };
        let negatives = trust::run(plans.upkeep, || -> SpiResult<Vec<Vec<Option<String>>>> {
            let mut negatives = Vec::new();
            let mut collect = |applied: pgrx::spi::SpiTupleTable| {
                for row in applied {
                    if let Ok(Some(true)) = row.get::<bool>(n + 1) {
                        negatives.push((1..=n).map(|i| row.get::<String>(i).ok().flatten()).collect());
                    }
                }
            };
            match rows_inserted {
                0 => {}
                // One row (the common OLTP case): no aggregate query, one VALUES upsert.
                1 => {
                    // SAFETY: as above.
                    let (keys, qty, id) = unsafe { single_row(&*trigger_data, &plans) };
                    if qty.as_deref().is_none_or(is_unusable_qty) {
                        refuse_zero(tracking);
                    }
                    let mut args: Vec<pgrx::datum::DatumWithOid> = keys.into_iter().map(|k| k.into()).collect();
                    args.push(qty.into());
                    args.push(id.into());
                    collect(client.update(&plans.single, None, &args)?);
                }
                _ => {
                    let aggregate = client.select(&plans.aggregate, Some(1), &[])?.first();
                    let mut arrays: Vec<Vec<Option<String>>> = Vec::with_capacity(n + 1);
                    for i in 1..=n + 1 {
                        arrays.push(aggregate.get::<Vec<Option<String>>>(i)?.unwrap_or_default());
                    }
                    let max_ids = aggregate.get::<Vec<Option<i64>>>(n + 2)?.unwrap_or_default();
                    if aggregate.get::<bool>(n + 3)? == Some(true) {
                        refuse_zero(tracking);
                    }
                    let mut args: Vec<pgrx::datum::DatumWithOid> = arrays.into_iter().map(|a| Some(a).into()).collect();
                    args.push(Some(max_ids).into());
                    collect(client.update(&plans.upsert, None, &args)?);
                }
            }
            Ok(negatives)
        })?;
        Ok((negatives, plans))
    })
    .unwrap_or_else(|e| {
        errors::raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("balance maintenance failed: {e}"),
            "This is a bug in inventory_ext; please report it with the statement that caused it.",
        )
    });
    if !negatives.is_empty() {
        refuse_negative(&plans.tracking, &negatives);
    }
}

/// Balances that went below zero: refused (23514) unless the ledger's rule allows them. Decided after
/// the upsert, which holds the balance rows' locks: two sessions cannot both take the last unit.
fn refuse_negative(tracking: &Tracking, negatives: &[Vec<Option<String>>]) {
    let refused = match tracking.rule.as_deref() {
        None => return,
        Some(RULE_REFUSE) => Some(format!("key ({})", negatives[0].iter().map(|k| k.as_deref().unwrap_or("NULL")).collect::<Vec<_>>().join(", "))),
        Some(RULE_ITEMS) => {
            // The built-in ledger's keys are (org_id, item_id, location_id, lot_id).
            let orgs: Vec<Option<String>> = negatives.iter().map(|k| k[0].clone()).collect();
            let items: Vec<Option<String>> = negatives.iter().map(|k| k[1].clone()).collect();
            one_text(
                "SELECT 'item ' || i.sku FROM unnest($1::uuid[], $2::uuid[]) AS n(org_id, item_id)
                   JOIN inventory.items i ON i.org_id = n.org_id AND i.id = n.item_id
                  WHERE NOT i.allow_negative ORDER BY i.sku LIMIT 1",
                &[orgs.into(), items.into()],
            )
        }
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

/// UPDATE, DELETE and TRUNCATE on a tracked ledger: refused (55000). A ledger is corrected by posting a
/// reversing entry, which keeps the history and the balances exact.
fn append_only_guard(trigger: &pgrx::PgTrigger) {
    let op = match trigger.op() {
        Ok(pgrx::PgTriggerOperation::Update) => "UPDATE",
        Ok(pgrx::PgTriggerOperation::Delete) => "DELETE",
        Ok(pgrx::PgTriggerOperation::Truncate) => "TRUNCATE",
        _ => return,
    };
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{op} on {}.{} is not allowed: the ledger is append-only",
            trigger.table_schema().unwrap_or_default(),
            trigger.table_name().unwrap_or_default()
        ),
        "To correct an entry, post a reversing entry (the same item, location and lot with the opposite quantity).",
    )
}

/// The fmgr entry of a trigger function: the body, or 0A000 when it is called as a plain function
/// (pgrx's `#[pg_trigger]` would answer that with an internal error).
fn trigger_entry(fcinfo: pg_sys::FunctionCallInfo, name: &str, body: fn(&pgrx::PgTrigger)) -> pg_sys::Datum {
    // SAFETY: PostgreSQL passes a valid fcinfo to a V1 function.
    let trigger = unsafe { fcinfo.as_ref().and_then(|f| pgrx::PgTrigger::from_fcinfo(f).ok()) };
    let Some(trigger) = trigger else {
        errors::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} can only be called as a trigger"),
            "It is installed on tracked ledgers by inventory.track_balances.",
        )
    };
    body(&trigger);
    // Returning NULL is what AFTER and statement triggers return (and what makes a BEFORE trigger
    // skip the operation, which only the guard's refusal reaches first).
    pg_sys::Datum::from(0)
}

crate::v1_function!(balance_maintenance_entry, pg_finfo_balance_maintenance_entry, |fcinfo| {
    trigger_entry(fcinfo, "inventory.balance_maintenance()", balance_maintenance)
});
crate::v1_function!(append_only_guard_entry, pg_finfo_append_only_guard_entry, |fcinfo| {
    trigger_entry(fcinfo, "inventory.append_only_guard()", append_only_guard)
});

pgrx::extension_sql!(
    r#"
-- The trigger functions (src/balances/trigger.rs). Written by hand so that a direct call answers 0A000.
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
    use super::*;

    fn tracking() -> Tracking {
        Tracking {
            balance_table: "public.\"InventoryBalance\"".into(),
            qty: "qtyCanonical".into(),
            id: Some("id".into()),
            rule: None,
            keys: vec!["itemId".into(), "lotId".into()],
        }
    }

    #[pg_test]
    fn generated_sql_quotes_every_column_and_orders_keys() {
        let t = tracking();
        let aggregate = t.aggregate_sql("new rows");
        assert!(aggregate.contains("\"itemId\" AS k1, \"lotId\" AS k2"), "{aggregate}");
        assert!(aggregate.contains("FROM \"new rows\""), "{aggregate}");
        assert!(aggregate.contains("array_agg(g.k1::text ORDER BY g.k1, g.k2)"), "{aggregate}");
        let upsert = t.upsert_sql(&["text".into(), "text".into()]);
        assert!(upsert.contains("ORDER BY u.ord"), "{upsert}");
        assert!(upsert.contains("ON CONFLICT (\"itemId\", \"lotId\")"), "{upsert}");
        assert!(upsert.contains("last_ledger_id = greatest"), "{upsert}");
    }

    #[pg_test]
    fn zero_and_non_finite_quantities_are_recognised() {
        for unusable in ["0", "0.000", "-0", "0.000000000000000000000000000000", "NaN", "Infinity", "-Infinity"] {
            assert!(is_unusable_qty(unusable), "{unusable}");
        }
        for other in ["1", "0.001", "-10", "100.0", "1e1000", ""] {
            assert!(!is_unusable_qty(other), "{other}");
        }
    }

    #[pg_test]
    fn the_trigger_refuses_a_table_that_is_not_registered() {
        Spi::run(
            "CREATE TABLE not_a_ledger (item text, qty numeric);
             CREATE TRIGGER t AFTER INSERT ON not_a_ledger REFERENCING NEW TABLE AS inventory_new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION inventory.balance_maintenance()",
        )
        .unwrap();
        assert_eq!(crate::test_support::sqlstate_of("INSERT INTO not_a_ledger VALUES ('a', 1)"), "55000");
        assert_eq!(crate::test_support::sqlstate_of("SELECT inventory.balance_maintenance()"), "0A000");
    }
}
