//! Materialized balances for any ledger (SPEC §5, §6): the balance trigger, the append-only guard,
//! `track_balances`, `untrack_balances` and `rebuild_balances`.
//!
//! The balance trigger is an AFTER INSERT … FOR EACH STATEMENT trigger with a transition table. Per
//! statement it reads and aggregates the new rows once (one row per balance key, in key order), then
//! applies all of them with one upsert from arrays (`unnest`) through a plan kept for the session. The
//! upsert touches keys in that sorted order, so concurrent multi-row inserts lock balance rows in the
//! same order and cannot deadlock each other; a 1-million-row COPY is one upsert of its distinct keys.
//! Reading the transition table first and upserting from arrays, rather than `INSERT … SELECT FROM`
//! it, is also what Citus can run (SPEC §9).
//!
//! The trigger's configuration travels in its arguments (`CREATE TRIGGER … (balance table, qty column,
//! id column, negative-stock rule, key columns…)`), so a statement costs no catalog lookup.

use crate::errors;
use crate::spi_util::{exec, one_text, rows, text};
use crate::sql_types::{NameArray, RegClass, SqlName};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, OwnedPreparedStatement, SpiClient, SpiResult};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;

/// The name of the balance trigger and the guards on every tracked ledger.
const BALANCE_TRIGGER: &str = "inventory_balances";
const GUARD_ROWS: &str = "inventory_append_only";
const GUARD_TRUNCATE: &str = "inventory_append_only_truncate";
/// Negative-stock rules: the built-in ledger's (the item's `allow_negative` decides), and "refuse every
/// negative balance" for an application's ledger tracked with `allow_negative => false`.
const RULE_ITEMS: &str = "items.allow_negative";
const RULE_REFUSE: &str = "refuse";
const BUILTIN_LEDGER: &str = "inventory.ledger";

/// What the balance trigger of one ledger needs, from its arguments.
struct Tracking {
    balance_table: String,
    qty: String,
    id: Option<String>,
    rule: Option<String>,
    keys: Vec<String>,
}

impl Tracking {
    fn from_args(args: &[String]) -> Tracking {
        let [balance_table, qty, id, rule, keys @ ..] = args else {
            panic!("balance trigger arguments: balance table, qty column, id column, rule, key columns…")
        };
        let optional = |s: &String| (!s.is_empty()).then(|| s.clone());
        Tracking {
            balance_table: balance_table.clone(),
            qty: qty.clone(),
            id: optional(id),
            rule: optional(rule),
            keys: keys.to_vec(),
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            self.balance_table.clone(),
            self.qty.clone(),
            self.id.clone().unwrap_or_default(),
            self.rule.clone().unwrap_or_default(),
        ];
        args.extend(self.keys.iter().cloned());
        args
    }

    fn key_list(&self) -> String {
        self.keys.iter().map(quote_identifier).collect::<Vec<_>>().join(", ")
    }

    /// One row of arrays: each key column (as text), the sum of qty per key, the largest ledger id per
    /// key, all in key order; and whether any row has a zero or NULL quantity.
    fn aggregate_sql(&self, new_rows: &str) -> String {
        let order = (1..=self.keys.len()).map(|i| format!("g.k{i}")).collect::<Vec<_>>().join(", ");
        let group_cols = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} AS k{}", quote_identifier(k), i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let arrays = (1..=self.keys.len())
            .map(|i| format!("array_agg(g.k{i}::text ORDER BY {order})"))
            .collect::<Vec<_>>()
            .join(", ");
        let qty = quote_identifier(&self.qty);
        let max_id = match &self.id {
            Some(id) => format!("max({})", quote_identifier(id)),
            None => "NULL::bigint".into(),
        };
        format!(
            "SELECT {arrays}, array_agg(g.s::text ORDER BY {order}), array_agg(g.m ORDER BY {order}), \
                    coalesce(bool_or(g.bad), false) \
               FROM (SELECT {group_cols}, sum({qty}) AS s, {max_id} AS m, \
                            bool_or({qty} IS NULL OR {qty}::numeric IN (0, 'NaN', 'Infinity', '-Infinity')) AS bad \
                       FROM {new_rows} GROUP BY {keys}) g",
            new_rows = quote_identifier(new_rows),
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
        let returning = self.keys.iter().map(|k| format!("b.{}::text", quote_identifier(k))).collect::<Vec<_>>();
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

/// The two statements of one trigger, prepared once per session and kept (plans that read the
/// transition table work again on every call: the table is registered under the same name each time).
struct Plans {
    tracking: Tracking,
    aggregate: OwnedPreparedStatement,
    upsert: OwnedPreparedStatement,
    single: OwnedPreparedStatement,
    /// Where the ledger's key, qty and id columns are, and their output functions.
    key_columns: Vec<(i32, pg_sys::Oid)>,
    qty_column: (i32, pg_sys::Oid),
    id_column: Option<i32>,
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
    panic!("the ledger has no column {name:?}: re-run inventory.track_balances after renaming columns")
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
    /// Kept plans by trigger OID (a trigger's arguments never change).
    static PLANS: RefCell<HashMap<pg_sys::Oid, Plans>> = RefCell::new(HashMap::new());
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
                .map(|t| t.unwrap_or_else(|| panic!("balance table {} has no column {k}", tracking.balance_table)))
        })
        .collect()
}

/// The balance trigger. SECURITY DEFINER (see sql/ledger.sql): applications never write balances
/// themselves, and each row's balance is its own tenant's, whatever the session's tenant.
#[pg_trigger]
fn balance_maintenance<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByRust>>, pgrx::PgTriggerError> {
    let trigger_oid = trigger.trigger().tgoid;
    let trigger_data = trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    // The arguments are read once per session; later statements find them with the kept plans.
    let first_call = match PLANS.with(|p| p.borrow().contains_key(&trigger_oid)) {
        true => None,
        false => {
            let new_rows = trigger
                .new_transition_table_name()?
                .unwrap_or_else(|| panic!("the balance trigger needs REFERENCING NEW TABLE"))
                .to_string();
            Some((Tracking::from_args(&trigger.extra_args()?), new_rows))
        }
    };
    let negatives = Spi::connect_mut(|client| -> SpiResult<Vec<Vec<Option<String>>>> {
        // SAFETY: the trigger data outlives this SPI connection; registering it makes the transition
        // table visible to queries by name.
        unsafe { pg_sys::SPI_register_trigger_data(trigger_data) };
        if let Some((tracking, new_rows)) = first_call {
            let n = tracking.keys.len();
            let aggregate = client.prepare(&tracking.aggregate_sql(&new_rows), &[])?.keep();
            let types = key_types(client, &tracking)?;
            let mut oids = vec![PgOid::from(pg_sys::TEXTARRAYOID); n + 1];
            oids.push(PgOid::from(pg_sys::INT8ARRAYOID));
            let upsert = client.prepare_mut(&tracking.upsert_sql(&types), &oids)?.keep();
            let mut oids = vec![PgOid::from(pg_sys::TEXTOID); n + 1];
            oids.push(PgOid::from(pg_sys::INT8OID));
            let single = client.prepare_mut(&tracking.single_upsert_sql(&types), &oids)?.keep();
            // SAFETY: the trigger's relation is open for the call.
            let tupdesc = unsafe { (*(*trigger_data).tg_relation).rd_att };
            let plans = Plans {
                key_columns: tracking.keys.iter().map(|k| ledger_column(tupdesc, k)).collect(),
                qty_column: ledger_column(tupdesc, &tracking.qty),
                id_column: tracking.id.as_ref().map(|id| ledger_column(tupdesc, id).0),
                tracking,
                aggregate,
                upsert,
                single,
            };
            PLANS.with(|p| p.borrow_mut().insert(trigger_oid, plans));
        }
        PLANS.with(|plans| {
            let plans = plans.borrow();
            let plans = plans.get(&trigger_oid).expect("plans prepared above");
            let (tracking, n) = (&plans.tracking, plans.tracking.keys.len());
            // SAFETY: the transition table belongs to this trigger call.
            let rows_inserted = unsafe { pg_sys::tuplestore_tuple_count((*trigger_data).tg_newtable) };
            let applied = match rows_inserted {
                0 => return Ok(Vec::new()),
                // One row (the common OLTP case): no aggregate query, one VALUES upsert.
                1 => {
                    // SAFETY: as above.
                    let (keys, qty, id) = unsafe { single_row(&*trigger_data, plans) };
                    if qty.as_deref().is_none_or(is_unusable_qty) {
                        refuse_zero(tracking);
                    }
                    let mut args: Vec<pgrx::datum::DatumWithOid> = keys.into_iter().map(|k| k.into()).collect();
                    args.push(qty.into());
                    args.push(id.into());
                    client.update(&plans.single, None, &args)?
                }
                _ => {
                    let aggregate = client.select(&plans.aggregate, Some(1), &[])?.first();
                    let mut arrays: Vec<Option<Vec<Option<String>>>> = Vec::with_capacity(n + 1);
                    for i in 1..=n + 1 {
                        arrays.push(aggregate.get::<Vec<Option<String>>>(i)?);
                    }
                    let max_ids = aggregate.get::<Vec<Option<i64>>>(n + 2)?;
                    if aggregate.get::<bool>(n + 3)? == Some(true) {
                        refuse_zero(tracking);
                    }
                    let mut args: Vec<pgrx::datum::DatumWithOid> = arrays.into_iter().map(|a| a.into()).collect();
                    args.push(max_ids.into());
                    client.update(&plans.upsert, None, &args)?
                }
            };
            // Keys whose balance went below zero.
            Ok(applied
                .filter_map(|row| match row.get::<bool>(n + 1) {
                    Ok(Some(true)) => Some((1..=n).map(|i| row.get::<String>(i).ok().flatten()).collect()),
                    _ => None,
                })
                .collect::<Vec<Vec<Option<String>>>>())
        })
    })
    .unwrap_or_else(|e| panic!("balance maintenance failed: {e}"));
    if !negatives.is_empty() {
        PLANS.with(|p| refuse_negative(&p.borrow()[&trigger_oid].tracking, &negatives));
    }
    Ok(None)
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
        Some(other) => panic!("unknown negative-stock rule {other:?}"),
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
#[pg_trigger]
fn append_only_guard<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByRust>>, pgrx::PgTriggerError> {
    let op = match trigger.op()? {
        pgrx::PgTriggerOperation::Update => "UPDATE",
        pgrx::PgTriggerOperation::Delete => "DELETE",
        pgrx::PgTriggerOperation::Truncate => "TRUNCATE",
        pgrx::PgTriggerOperation::Insert => return Ok(None),
    };
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("{op} on {}.{} is not allowed: the ledger is append-only", trigger.table_schema()?, trigger.table_name()?),
        "To correct an entry, post a reversing entry (the same item, location and lot with the opposite quantity).",
    )
}

/// Drops one of our triggers when it is there (DROP TRIGGER IF EXISTS would NOTICE when it is not).
fn drop_trigger(name: &str, ledger: pg_sys::Oid, ledger_name: &str) {
    if one_text("SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2", &[ledger.into(), name.into()]).is_some() {
        exec(&format!("DROP TRIGGER {name} ON {ledger_name}"));
    }
}

/// Starts materialized balances for a ledger: creates the balance table when it does not exist,
/// installs the triggers, fills the balances from the rows already there and records the ledger.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn track_balances(
    ledger: Option<RegClass>,
    balance_table: Option<&str>,
    key_columns: Option<NameArray>,
    qty_column: Option<SqlName>,
    allow_negative: default!(Option<bool>, "true"),
) {
    let (Some(RegClass(ledger)), Some(balance_table), Some(keys), Some(SqlName(qty))) =
        (ledger, balance_table, key_columns, qty_column)
    else {
        errors::invalid_argument(
            "track_balances needs a ledger, a balance table, key columns and a qty column",
            "e.g. inventory.track_balances('public.\"InventoryLedger\"', 'public.\"InventoryBalance\"', ARRAY['itemId', 'locationId'], 'qtyCanonical')",
        )
    };
    let keys: Vec<String> = keys.0.into_iter().map(Option::unwrap_or_default).collect();
    let rule = (allow_negative == Some(false)).then_some(RULE_REFUSE);
    track(ledger, balance_table, keys, qty, rule);
}

fn track(ledger: pg_sys::Oid, balance_table: &str, mut keys: Vec<String>, qty: String, rule: Option<&str>) {
    let ledger_name = one_text("SELECT $1::regclass::text", &[ledger.into()]).expect("ledger exists");
    let rule = if ledger_name == BUILTIN_LEDGER { Some(RULE_ITEMS) } else { rule };
    let column_type = |name: &str| {
        one_text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[ledger.into(), name.into()],
        )
    };
    if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
        errors::invalid_argument("key_columns must name at least one column, none empty", "e.g. ARRAY['itemId', 'locationId']");
    }
    let org_column = one_text(
        "SELECT org_column::text FROM inventory.tenant_tables WHERE relid = $1::regclass",
        &[ledger.into()],
    );
    if let Some(org) = &org_column {
        // Balances of a tenant-scoped ledger are per tenant: the org column leads the key.
        keys.retain(|k| k != org);
        keys.insert(0, org.clone());
    }
    let mut key_types = Vec::new();
    for k in keys.iter().chain(std::iter::once(&qty)) {
        match column_type(k) {
            Some(t) => key_types.push(t),
            None => errors::raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column {} of {ledger_name} does not exist", quote_identifier(k)),
                "Name the ledger's columns as they are spelled (camelCase columns keep their case).",
            ),
        }
    }
    let qty_type = key_types.pop().expect("qty type");
    if !matches!(qty_type.split('(').next(), Some("numeric" | "integer" | "bigint" | "smallint")) {
        errors::invalid_argument(
            format!("qty column {} of {ledger_name} is {qty_type}", quote_identifier(&qty)),
            "Quantities must be numeric (or an integer type), never floating point.",
        );
    }
    // The ledger's bigint key, when it has one (an identity column, or a bigint primary key), is
    // recorded as each balance's last_ledger_id.
    let id_column = one_text(
        "SELECT a.attname::text FROM pg_attribute a
          WHERE a.attrelid = $1 AND a.atttypid = 'bigint'::regtype AND a.attnum > 0 AND NOT a.attisdropped
            AND (a.attidentity <> '' OR EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = a.attrelid
                                                  AND c.contype = 'p' AND c.conkey = ARRAY[a.attnum]))
          ORDER BY a.attidentity <> '' DESC, a.attnum LIMIT 1",
        &[ledger.into()],
    );

    // An unqualified balance table goes beside the ledger (this function's search_path is pinned, so
    // the caller's would not apply anyway).
    let balance_table = one_text(
        "SELECT CASE cardinality(p) WHEN 1 THEN quote_ident(n.nspname) || '.' || quote_ident(p[1])
                                    WHEN 2 THEN quote_ident(p[1]) || '.' || quote_ident(p[2]) END
           FROM parse_ident($1) p, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $2",
        &[balance_table.into(), ledger.into()],
    )
    .unwrap_or_else(|| {
        errors::invalid_argument(
            format!("balance table name {balance_table:?} is not a table name"),
            "Pass a name like 'public.\"InventoryBalance\"' or 'stock_balances'.",
        )
    });
    let balance_table = balance_table.as_str();
    let existing = one_text("SELECT to_regclass($1)::text", &[balance_table.into()]);
    let balance_name = match existing {
        Some(name) => name,
        None => {
            let columns = keys
                .iter()
                .zip(&key_types)
                .map(|(k, t)| format!("{} {t}", quote_identifier(k)))
                .collect::<Vec<_>>()
                .join(", ");
            let key_list = keys.iter().map(quote_identifier).collect::<Vec<_>>().join(", ");
            let last_id = if id_column.is_some() { "last_ledger_id bigint NOT NULL, " } else { "" };
            exec(&format!(
                "CREATE TABLE {balance_table} ({columns}, qty numeric NOT NULL, {last_id}updated_at timestamptz NOT NULL,
                  UNIQUE NULLS NOT DISTINCT ({key_list}))"
            ));
            let name = one_text("SELECT $1::regclass::text", &[balance_table.into()]).expect("just created");
            // Every role that may read the ledger may read its balances.
            let readers = rows(
                "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
                   FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
                  WHERE c.oid = $1 AND a.privilege_type = 'SELECT'",
                &[ledger.into()],
                |row| text(row, 1),
            );
            for role in readers {
                exec(&format!("GRANT SELECT ON {name} TO {role}"));
            }
            name
        }
    };
    let balance_oid = one_text("SELECT $1::regclass::oid::text", &[balance_name.as_str().into()]).expect("exists");
    if let Some(org) = &org_column {
        let isolate = format!(
            "SELECT count(*) FROM inventory.enable_tenant_isolation({}::regclass, {})",
            quote_literal(&balance_name),
            quote_literal(org)
        );
        exec(&isolate);
    }

    let tracking = Tracking { balance_table: balance_name.clone(), qty: qty.clone(), id: id_column.clone(), rule: rule.map(str::to_string), keys: keys.clone() };
    let args = tracking.args().iter().map(quote_literal).collect::<Vec<_>>().join(", ");
    for trigger in [BALANCE_TRIGGER, GUARD_ROWS, GUARD_TRUNCATE] {
        drop_trigger(trigger, ledger, &ledger_name);
    }
    exec(&format!(
        "CREATE TRIGGER {BALANCE_TRIGGER} AFTER INSERT ON {ledger_name} REFERENCING NEW TABLE AS inventory_new_rows
         FOR EACH STATEMENT EXECUTE FUNCTION inventory.balance_maintenance({args})"
    ));
    exec(&format!(
        "CREATE TRIGGER {GUARD_ROWS} BEFORE UPDATE OR DELETE ON {ledger_name}
         FOR EACH ROW EXECUTE FUNCTION inventory.append_only_guard()"
    ));
    exec(&format!(
        "CREATE TRIGGER {GUARD_TRUNCATE} BEFORE TRUNCATE ON {ledger_name}
         FOR EACH STATEMENT EXECUTE FUNCTION inventory.append_only_guard()"
    ));
    let key_array: Vec<Option<String>> = keys.iter().cloned().map(Some).collect();
    Spi::run_with_args(
        "INSERT INTO inventory.tracked_ledgers (ledger, balance_table, key_columns, qty_column, id_column, org_column, builtin)
         VALUES ($1::regclass, $2::oid::regclass, $3::name[], $4, $5, $6, $7)
         ON CONFLICT (ledger) DO UPDATE SET balance_table = excluded.balance_table, key_columns = excluded.key_columns,
            qty_column = excluded.qty_column, id_column = excluded.id_column, org_column = excluded.org_column,
            tracked_at = now()",
        &[
            ledger.into(),
            balance_oid.into(),
            key_array.into(),
            qty.as_str().into(),
            id_column.into(),
            org_column.into(),
            // SAFETY: reading a backend global.
            unsafe { pg_sys::creating_extension }.into(),
        ],
    )
    .expect("recording the tracked ledger failed");
    rebuild(ledger, None);
}

/// Stops maintaining a ledger's balances: removes the triggers and the registration, keeps both tables.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn untrack_balances(ledger: Option<RegClass>) {
    let Some(RegClass(ledger)) = ledger else {
        errors::invalid_argument("ledger must not be NULL", "Pass the ledger table.")
    };
    let ledger_name = one_text("SELECT $1::regclass::text", &[ledger.into()]).expect("ledger exists");
    for trigger in [BALANCE_TRIGGER, GUARD_ROWS, GUARD_TRUNCATE] {
        drop_trigger(trigger, ledger, &ledger_name);
    }
    Spi::run_with_args("DELETE FROM inventory.tracked_ledgers WHERE ledger = $1::regclass", &[ledger.into()])
        .expect("unregistering failed");
}

/// Recomputes balances from the ledger: all tenants, or one. It locks the ledger against writers
/// (SHARE: in-flight postings finish first, new ones wait), so it never loses a posting.
// Created after sql/ledger.sql: its default names the built-in ledger.
#[pg_extern(volatile, parallel_unsafe, security_definer, requires = ["ledger"])]
#[search_path(pg_catalog, pg_temp)]
fn rebuild_balances(
    ledger: default!(Option<RegClass>, "'inventory.ledger'"),
    org_id: default!(Option<pgrx::Uuid>, "NULL"),
) -> i64 {
    let Some(RegClass(ledger)) = ledger else {
        errors::invalid_argument("ledger must not be NULL", "Pass the ledger table, e.g. 'inventory.ledger'.")
    };
    rebuild(ledger, org_id)
}

/// One row of `inventory.tracked_ledgers`, names as quoted SQL (regclass text) or plain column names.
pub struct Registered {
    pub ledger: pg_sys::Oid,
    pub ledger_name: String,
    pub balance_oid: pg_sys::Oid,
    pub balance_name: String,
    pub keys: Vec<String>,
    pub qty: String,
    pub id: Option<String>,
    pub org: Option<String>,
}

impl Registered {
    pub fn key_list(&self, alias: &str) -> String {
        self.keys.iter().map(|k| format!("{alias}{}", quote_identifier(k))).collect::<Vec<_>>().join(", ")
    }

    /// Serializes everything that rewrites this ledger's balances outside the trigger (rebuild and
    /// reconcile), until the end of the transaction. Postings do not take it.
    pub fn lock_for_maintenance(&self) {
        let key = (0x696e76_i64 << 32) | i64::from(u32::from(self.balance_oid));
        Spi::run_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1)", &[key.into()]).expect("advisory lock");
    }
}

/// The tracked ledgers (all of them, or one), in OID order so that every caller locks them in the same order.
pub fn registered(only: Option<pg_sys::Oid>) -> Vec<Registered> {
    rows(
        "SELECT ledger::oid, ledger::text, balance_table::oid, balance_table::text, key_columns::text[],
                qty_column::text, id_column::text, org_column::text
           FROM inventory.tracked_ledgers WHERE $1::oid IS NULL OR ledger = $1::oid ORDER BY ledger::oid",
        &[only.into()],
        |r| {
            Ok(Registered {
                ledger: r.get::<pg_sys::Oid>(1)?.expect("oid"),
                ledger_name: text(r, 2)?,
                balance_oid: r.get::<pg_sys::Oid>(3)?.expect("oid"),
                balance_name: text(r, 4)?,
                keys: r.get::<Vec<String>>(5)?.unwrap_or_default(),
                qty: text(r, 6)?,
                id: r.get::<String>(7)?,
                org: r.get::<String>(8)?,
            })
        },
    )
}

/// 22023: the ledger is not in `inventory.tracked_ledgers`.
pub fn not_tracked() -> ! {
    errors::invalid_argument("this table's balances are not tracked", "Track it first with inventory.track_balances(…).")
}

fn rebuild(ledger: pg_sys::Oid, org_id: Option<pgrx::Uuid>) -> i64 {
    let Some(registered) = registered(Some(ledger)).pop() else { not_tracked() };
    registered.lock_for_maintenance();
    let Registered { ledger_name, balance_name, keys, qty, id, org, .. } = registered;
    exec(&format!("LOCK TABLE {ledger_name} IN SHARE MODE"));
    let key_list = keys.iter().map(quote_identifier).collect::<Vec<_>>().join(", ");
    let (filter, args): (String, Vec<pgrx::datum::DatumWithOid>) = match (org_id, &org) {
        (Some(o), Some(col)) => (format!("WHERE {} = $1", quote_identifier(col)), vec![o.into()]),
        (Some(_), None) => errors::invalid_argument(
            format!("{ledger_name} is not tenant-scoped, so its balances cannot be rebuilt per organization"),
            "Call it without org_id.",
        ),
        (None, _) => ("".into(), vec![]),
    };
    Spi::run_with_args(&format!("DELETE FROM {balance_name} {filter}"), &args).expect("clearing balances failed");
    let (id_col, id_val) = match &id {
        Some(id) => (", last_ledger_id", format!(", max({})", quote_identifier(id))),
        None => ("", String::new()),
    };
    Spi::get_one_with_args::<i64>(
        &format!(
            "WITH written AS (
                INSERT INTO {balance_name} ({key_list}, qty{id_col}, updated_at)
                SELECT {key_list}, sum({q}){id_val}, now() FROM {ledger_name} {filter}
                 GROUP BY {key_list} ORDER BY {key_list}
                RETURNING 1)
             SELECT count(*) FROM written",
            q = quote_identifier(&qty)
        ),
        &args,
    )
    .expect("rebuilding balances failed")
    .unwrap_or_default()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use crate::test_support::sqlstate_of;

    fn tracking() -> Tracking {
        Tracking::from_args(&[
            "public.\"InventoryBalance\"".into(),
            "qtyCanonical".into(),
            "id".into(),
            "".into(),
            "itemId".into(),
            "lotId".into(),
        ])
    }

    #[pg_test]
    fn trigger_arguments_round_trip() {
        let t = tracking();
        assert_eq!(t.keys, vec!["itemId", "lotId"]);
        assert_eq!(t.id.as_deref(), Some("id"));
        assert_eq!(t.rule, None);
        assert_eq!(Tracking::from_args(&t.args()).args(), t.args());
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
    fn a_tracked_camel_case_ledger_stays_exact() {
        Spi::run(
            "CREATE TABLE t_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \"itemId\" text NOT NULL,
                                    \"lotId\" text, \"qtyCanonical\" numeric(65, 30) NOT NULL);
             INSERT INTO t_ledger (\"itemId\", \"lotId\", \"qtyCanonical\") VALUES ('a', NULL, 2), ('a', NULL, 3), ('b', 'x', 1);
             SELECT inventory.track_balances('t_ledger', 't_balance', ARRAY['itemId', 'lotId'], 'qtyCanonical');
             INSERT INTO t_ledger (\"itemId\", \"lotId\", \"qtyCanonical\") SELECT 'a', NULL, 1 FROM generate_series(1, 100);",
        )
        .unwrap();
        let a = Spi::get_one::<pgrx::AnyNumeric>("SELECT qty FROM t_balance WHERE \"itemId\" = 'a' AND \"lotId\" IS NULL")
            .unwrap()
            .unwrap();
        assert_eq!(a.to_string().trim_end_matches('0').trim_end_matches('.'), "105");
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM t_balance").unwrap();
        assert_eq!(rows, Some(2));
        assert_eq!(sqlstate_of("INSERT INTO t_ledger (\"itemId\", \"qtyCanonical\") VALUES ('a', 0)"), "22023");
        assert_eq!(sqlstate_of("DELETE FROM t_ledger"), "55000");
    }
}
