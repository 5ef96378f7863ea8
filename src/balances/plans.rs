//! What the balance triggers of one ledger keep for the session: where its columns are, the checks
//! that its registration still matches the tables, who the upkeep runs as, and the two upserts the flush
//! runs, prepared once. Kept until either table, its triggers, a schema or a role changes (relcache
//! and syscache invalidation), then made and checked again from the catalog.

use super::{registered, Registered};
use crate::errors;
use crate::sql_text::{ident, ident_list};
use crate::spi_util::rows;
use crate::trust::{self, Upkeep};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The names `track_balances` gives the triggers it installs.
pub const ROW_TRIGGER: &str = "inventory_balances";
pub const FLUSH_TRIGGER: &str = "inventory_balances_flush";

/// A key column of the ledger (and, with the same name and type, of the balance table).
pub struct KeyColumn {
    pub name: String,
    pub attnum: i32,
    pub typid: pg_sys::Oid,
    pub typlen: i16,
    pub byval: bool,
    pub align: std::ffi::c_char,
    pub array_type: pg_sys::Oid,
    /// NOT NULL in the ledger: its values are never NULL, so a lookup by it can use `=` and the index.
    pub not_null: bool,
}

/// The kind of the ledger's quantity column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum QtyKind {
    Int2,
    Int4,
    Int8,
    Numeric,
}

pub struct Plans {
    pub ledger: pg_sys::Oid,
    pub balance: pg_sys::Oid,
    pub registration: Registered,
    pub keys: Vec<KeyColumn>,
    pub qty_attnum: i32,
    pub qty_kind: QtyKind,
    pub id_attnum: Option<i32>,
    pub upkeep: Upkeep,
    pub extension_owner: pg_sys::Oid,
    /// The direct write of one key, when the balance table allows it (`direct`).
    pub direct: Option<super::direct::DirectTarget>,
    /// The upsert of one key: parameters are the key values, the quantity, the largest id.
    pub single: pg_sys::SPIPlanPtr,
    /// The upsert of many keys, from arrays, regrouped and in key order; returns the keys it took below zero.
    pub bulk: pg_sys::SPIPlanPtr,
    /// The statements of a ledger whose keys spread over slots (`super::spread`), when it has more than one.
    pub slotted: Option<super::spread::SlotPlans>,
    /// The items table the built-in negative-stock rule reads: `inventory.items`, or on a Citus shard the
    /// items shard co-located with it.
    pub items_table: String,
}

impl Drop for Plans {
    fn drop(&mut self) {
        // SAFETY: plans this struct kept (SPI_keepplan) and nothing else refers to once it is dropped.
        // At backend exit (the thread-local cache going away) the memory goes with the process.
        unsafe {
            if pg_sys::proc_exit_inprogress {
                return;
            }
            pg_sys::SPI_freeplan(self.single);
            pg_sys::SPI_freeplan(self.bulk);
        }
    }
}

/// Why a registration no longer matches its tables (for a DDL refusal, or at the next posting).
pub fn mismatch(message: String) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message,
        "Balances are kept only while the ledger and its balance table agree with inventory.tracked_ledgers. \
         To change a key or quantity column: inventory.untrack_balances(ledger), alter both tables, then \
         inventory.track_balances(…) again (it recomputes the balances).",
    )
}

/// One registered column as the catalog has it in both tables.
struct CatalogColumn {
    name: String,
    ledger: Option<(i32, pg_sys::Oid, String)>,
    balance: Option<(pg_sys::Oid, String)>,
    typlen: i16,
    byval: bool,
    align: i8,
    array_type: pg_sys::Oid,
    not_null: bool,
}

fn catalog_columns(ledger: pg_sys::Oid, balance: pg_sys::Oid, ledger_names: &[String], balance_names: &[String]) -> Vec<CatalogColumn> {
    rows(
        "SELECT k.name, la.attnum::int4, la.atttypid, pg_catalog.format_type(la.atttypid, la.atttypmod),
                ba.atttypid, pg_catalog.format_type(ba.atttypid, ba.atttypmod),
                t.typlen, t.typbyval, t.typalign::text, t.typarray, la.attnotnull
           FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS k(name, balance_name, ord)
           LEFT JOIN pg_catalog.pg_attribute la ON la.attrelid = $1 AND la.attname = k.name AND la.attnum > 0 AND NOT la.attisdropped
           LEFT JOIN pg_catalog.pg_attribute ba ON ba.attrelid = $2 AND ba.attname = k.balance_name AND ba.attnum > 0 AND NOT ba.attisdropped
           LEFT JOIN pg_catalog.pg_type t ON t.oid = la.atttypid
          ORDER BY k.ord",
        &[ledger.into(), balance.into(), ledger_names.to_vec().into(), balance_names.to_vec().into()],
        |r| {
            let ledger_col = match (r.get::<i32>(2)?, r.get::<pg_sys::Oid>(3)?, r.get::<String>(4)?) {
                (Some(a), Some(t), Some(f)) => Some((a, t, f)),
                _ => None,
            };
            let balance_col = match (r.get::<pg_sys::Oid>(5)?, r.get::<String>(6)?) {
                (Some(t), Some(f)) => Some((t, f)),
                _ => None,
            };
            Ok(CatalogColumn {
                name: r.get::<String>(1)?.unwrap_or_default(),
                ledger: ledger_col,
                balance: balance_col,
                typlen: r.get::<i16>(7)?.unwrap_or(0),
                byval: r.get::<bool>(8)?.unwrap_or(false),
                align: r.get::<String>(9)?.and_then(|s| s.bytes().next()).unwrap_or(b'i') as i8,
                array_type: r.get::<pg_sys::Oid>(10)?.unwrap_or(pg_sys::InvalidOid),
                not_null: r.get::<bool>(11)?.unwrap_or(false),
            })
        },
    )
}

/// What the registration says the tables look like, checked against the catalog: the key columns in
/// both tables with one type, a numeric or integer quantity in the ledger summed into a numeric
/// `qty`, the ledger's bigint id into `last_ledger_id`, and exactly the two balance triggers, enabled.
/// The same check refuses DDL that would break it (`super::ddl`) and guards every plan made.
pub struct Shape {
    pub keys: Vec<KeyColumn>,
    pub qty_attnum: i32,
    pub qty_kind: QtyKind,
    pub id_attnum: Option<i32>,
}

/// How `check` looks at the balance and append-only triggers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Triggers {
    /// Not at all (DDL that cannot change them; pg_restore creates them one by one).
    Skip,
    /// All four there and enabled, or with both balance triggers disabled together (upkeep suspended).
    AllowSuspended,
    /// As `AllowSuspended`, or some of the four not there yet: pg_restore makes a ledger's triggers one
    /// at a time (a suspended ledger's each disabled right after it is made). A ledger missing a balance
    /// trigger keeps no balances to drift: its postings are refused; DROP TRIGGER itself is checked.
    /// For ENABLE/DISABLE TRIGGER.
    AllowIncomplete,
    /// For CREATE TRIGGER: only that each trigger under one of the four names, or calling their
    /// functions, is one of the four as it should be (no name given to another function); their states
    /// are whatever pg_restore's next command makes them (it disables a suspended ledger's triggers one
    /// at a time after making each). Only a superuser can make a trigger that calls their functions.
    Created,
    /// All four there and enabled: what a posting needs.
    Required,
}

pub fn check(r: &Registered, triggers: Triggers) -> Shape {
    // 42P01 when either table is gone (a registry row can outlive its tables behind the DDL check).
    crate::spi_util::relation_name(r.ledger);
    crate::spi_util::relation_name(r.balance_oid);
    let (ledger, balance) = (&r.ledger_name, &r.balance_name);
    let mut ledger_names = r.keys.clone();
    let mut balance_names = r.keys.clone();
    ledger_names.push(r.qty.clone());
    balance_names.push("qty".into());
    if let Some(id) = &r.id {
        ledger_names.push(id.clone());
        balance_names.push("last_ledger_id".into());
    }
    let columns = catalog_columns(r.ledger, r.balance_oid, &ledger_names, &balance_names);
    let mut keys = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let role = if i < r.keys.len() { "key" } else if i == r.keys.len() { "quantity" } else { "id" };
        let balance_name = &balance_names[i];
        let Some((attnum, typid, ledger_type)) = &c.ledger else {
            mismatch(format!("{ledger} has no {role} column {} (renamed or dropped?), which its balances are kept by", ident(&c.name)))
        };
        let Some((balance_typid, balance_type)) = &c.balance else {
            mismatch(format!("balance table {balance} has no column {} (renamed or dropped?)", ident(balance_name)))
        };
        match role {
            "key" => {
                if ledger_type != balance_type {
                    mismatch(format!(
                        "key column {} is {ledger_type} in {ledger} but {balance_type} in its balance table {balance}",
                        ident(&c.name)
                    ))
                }
                if c.array_type == pg_sys::InvalidOid {
                    mismatch(format!("key column {} of {ledger} has a type without an array type ({ledger_type})", ident(&c.name)))
                }
                keys.push(KeyColumn {
                    name: c.name.clone(),
                    attnum: *attnum,
                    typid: *typid,
                    typlen: c.typlen,
                    byval: c.byval,
                    align: c.align as std::ffi::c_char,
                    array_type: c.array_type,
                    not_null: c.not_null,
                });
            }
            "quantity" => {
                if *balance_typid != pg_sys::NUMERICOID || balance_type != "numeric" {
                    mismatch(format!("the qty column of balance table {balance} is {balance_type}: it must be numeric, unconstrained"))
                }
            }
            _ => {
                if *typid != pg_sys::INT8OID || *balance_typid != pg_sys::INT8OID {
                    mismatch(format!("id column {} of {ledger} and last_ledger_id of {balance} must be bigint", ident(&c.name)))
                }
            }
        }
    }
    let (qty_attnum, qty_typid, qty_type) = columns[r.keys.len()].ledger.clone().expect("checked above");
    let qty_kind = match qty_typid {
        pg_sys::INT2OID => QtyKind::Int2,
        pg_sys::INT4OID => QtyKind::Int4,
        pg_sys::INT8OID => QtyKind::Int8,
        pg_sys::NUMERICOID => QtyKind::Numeric,
        _ => mismatch(format!("quantity column {} of {ledger} is {qty_type}: it must be numeric or an integer type", ident(&r.qty))),
    };
    let id_attnum = r.id.as_ref().map(|_| columns[r.keys.len() + 1].ledger.as_ref().expect("checked above").0);
    if !matches!(balance_qty_not_null(r.balance_oid), Some(true)) {
        mismatch(format!("the qty column of balance table {balance} must be NOT NULL"))
    }
    if r.slots > 1 && !super::slots::has_slot_column(r.balance_oid) {
        mismatch(format!(
            "balance table {balance} has no slot column (integer NOT NULL), which its {} slots per key need",
            r.slots
        ))
    }
    if triggers != Triggers::Skip {
        check_trigger_set(r, triggers);
    }
    Shape { keys, qty_attnum, qty_kind, id_attnum }
}

fn balance_qty_not_null(balance: pg_sys::Oid) -> Option<bool> {
    crate::spi_util::first::<bool>(
        "SELECT attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = 'qty' AND NOT attisdropped",
        &[balance.into()],
    )
}

/// Exactly the two balance triggers and the two append-only guards, with their shapes, enabled (or,
/// `allow_suspended`, both balance triggers disabled together); no other trigger calling their functions.
pub(super) fn check_trigger_set(r: &Registered, mode: Triggers) {
    let allow_suspended = mode != Triggers::Required;
    let while_restoring = matches!(mode, Triggers::AllowIncomplete | Triggers::Created);
    // The triggers that call the extension's trigger functions, and any trigger under one of their
    // names (CREATE OR REPLACE TRIGGER can keep a name and change the function).
    let found = rows(
        "SELECT t.tgname::text, p.proname::text, t.tgtype::int4, t.tgenabled::text, t.tgqual IS NULL AND t.tgnewtable IS NULL
                AND t.tgoldtable IS NULL AND pg_catalog.cardinality(t.tgattr::int2[]) = 0,
                p.pronamespace = 'inventory'::regnamespace AND p.proname IN ('balance_rows', 'balance_maintenance', 'append_only_guard')
           FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
          WHERE t.tgrelid = $1
            AND ((p.pronamespace = 'inventory'::regnamespace AND p.proname IN ('balance_rows', 'balance_maintenance', 'append_only_guard'))
                 OR t.tgname IN ($2, $3, $4, $5))",
        &[r.ledger.into(), ROW_TRIGGER.into(), FLUSH_TRIGGER.into(), super::GUARD_ROWS.into(), super::GUARD_TRUNCATE.into()],
        |row| {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<i32>(3)?.unwrap_or_default(),
                row.get::<String>(4)?.unwrap_or_default(),
                row.get::<bool>(5)?.unwrap_or_default(),
                row.get::<bool>(6)?.unwrap_or_default(),
            ))
        },
    );
    if let Some((name, ..)) = found.iter().find(|(.., ours)| !*ours) {
        mismatch(format!("trigger {name} of {} no longer calls the extension's trigger function", r.ledger_name))
    }
    let found: Vec<_> = found.into_iter().map(|(n, f, t, e, plain, _)| (n, f, t, e, plain)).collect();
    let enabled_state = |e: &str| matches!(e, "O" | "A");
    // 0.1.0's balance trigger (one AFTER INSERT … FOR EACH STATEMENT trigger under the row trigger's
    // name, with a transition table): a dump of 0.1.0 restored into this version brings it back, and
    // the update leaves it on a ledger it could not track. A posting is refused until
    // inventory.update_balance_triggers() replaces it; DDL may disable or enable it (pg_restore does,
    // for a suspended ledger) but not take the append-only guards away (a restore makes them first).
    if found.iter().any(|(n, f, t, _, plain)| n == ROW_TRIGGER && f == "balance_maintenance" && *t == 4 && !*plain) {
        if !allow_suspended {
            errors::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the balance trigger of {} is inventory_ext 0.1.0's (restored from an older dump?)", r.ledger_name),
                "A superuser runs SELECT inventory.update_balance_triggers() once (docs/UPGRADING.md); nothing was written.",
            )
        }
        let guard = |name: &str| found.iter().find(|(n, f, ..)| n == name && f == "append_only_guard").map(|g| enabled_state(&g.3));
        let guards = [guard(super::GUARD_ROWS), guard(super::GUARD_TRUNCATE)];
        let guarded = guards.iter().all(|g| g.unwrap_or(while_restoring));
        if !guarded {
            mismatch(format!(
                "the append-only guards {} and {} of {} must stay there and enabled",
                super::GUARD_ROWS, super::GUARD_TRUNCATE, r.ledger_name
            ))
        }
        return;
    }
    // pg_trigger.tgtype: ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32 (AFTER: no BEFORE).
    let expected = [
        (ROW_TRIGGER, "balance_rows", 5, true),
        (FLUSH_TRIGGER, "balance_maintenance", 4, true),
        (super::GUARD_ROWS, "append_only_guard", 27, false),
        (super::GUARD_TRUNCATE, "append_only_guard", 34, false),
    ];
    let state = |name: &str, function: &str, tgtype: i32| {
        found
            .iter()
            .find(|(n, f, t, _, plain)| n == name && f == function && *t == tgtype && *plain)
            .map(|(_, _, _, enabled, _)| enabled_state(enabled))
    };
    let present = found.len() == expected.len() && expected.iter().all(|(n, f, t, _)| state(n, f, *t).is_some());
    let shaped = found.len() <= expected.len()
        && found.iter().all(|(n, f, t, _, plain)| *plain && expected.iter().any(|e| e.0 == n.as_str() && e.1 == f.as_str() && e.2 == *t));
    if shaped && (mode == Triggers::Created || (mode == Triggers::AllowIncomplete && !present)) {
        return;
    }
    let enabled = |balance: bool| {
        expected.iter().filter(|e| e.3 == balance).map(|(n, f, t, _)| state(n, f, *t) == Some(true)).collect::<Vec<_>>()
    };
    let balance = enabled(true);
    // Suspended: both balance triggers off (the guards may be off too: DISABLE TRIGGER ALL, as
    // pg_restore --disable-triggers does); never one of them alone, nor a guard while they run.
    let complete = present
        && ((balance.iter().all(|&e| e) && enabled(false).iter().all(|&e| e))
            || (allow_suspended && balance.iter().all(|&e| !e)));
    if !complete {
        mismatch(format!(
            "the balance triggers of {} are missing, disabled or altered: {} AFTER INSERT FOR EACH ROW, {} \
             AFTER INSERT FOR EACH STATEMENT and the append-only guards {} and {} must all be there and enabled",
            r.ledger_name, ROW_TRIGGER, FLUSH_TRIGGER, super::GUARD_ROWS, super::GUARD_TRUNCATE
        ))
    }
}

thread_local! {
    /// Kept plans by ledger OID. Shared (`Rc`) so that a statement the flush sets off (a trigger on the
    /// balance table posting to another tracked ledger) can use the cache while an outer flush does.
    static PLANS: RefCell<HashMap<pg_sys::Oid, Rc<Plans>>> = RefCell::new(HashMap::new());
    /// Relations invalidated since the cache was last looked at (`InvalidOid`: all of them). The
    /// callbacks only record them: freeing plans inside cache invalidation could free one in use.
    static INVALIDATED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
}

/// Relcache invalidation callback (registered in `_PG_init`): ALTER TABLE, ALTER … OWNER, DROP, CREATE
/// or DROP TRIGGER, ENABLE/DISABLE TRIGGER on either table all send one.
#[pg_guard]
pub unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    super::ddl::relation_touched(relid);
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
    let changed: Vec<pg_sys::Oid> = INVALIDATED.with(|list| {
        let mut list = list.borrow_mut();
        if list.is_empty() { Vec::new() } else { std::mem::take(&mut *list) }
    });
    if changed.is_empty() {
        return;
    }
    PLANS.with(|plans| {
        plans.borrow_mut().retain(|_, p| {
            !changed.iter().any(|&c| c == pg_sys::InvalidOid || c == p.ledger || c == p.balance)
        })
    });
}

/// 55000: a balance trigger fired somewhere it does not belong.
pub fn not_registered(what: String) -> ! {
    errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        what,
        "inventory.balance_rows and inventory.balance_maintenance only run as the triggers inventory.track_balances \
         installs on a ledger registered in inventory.tracked_ledgers; call inventory.track_balances instead of CREATE TRIGGER.",
    )
}

/// The plans of `ledger`: from the cache, or made (as the extension's owner, with a pinned search_path,
/// so that the registry is readable and no name resolves into a schema the caller controls).
pub fn plans_for(ledger: pg_sys::Oid) -> Rc<Plans> {
    forget_invalidated();
    if let Some(plans) = PLANS.with(|p| p.borrow().get(&ledger).cloned()) {
        return plans;
    }
    let extension_owner = trust::extension_owner();
    let plans = Rc::new(trust::run_pinned(Upkeep::Definer, extension_owner, || make(ledger, extension_owner)));
    PLANS.with(|p| p.borrow_mut().insert(ledger, plans.clone()));
    plans
}

/// The registration a trigger on `ledger` works by: the ledger's own, or, when `ledger` is a Citus shard
/// of a tracked distributed ledger, that ledger's with the shard in its place and the co-located shard of
/// its balance table (and of the items table, for the built-in rule) as what it writes and reads.
/// The shard's triggers are Citus's copies of the distributed table's, which are the ones checked.
fn registration_for(ledger: pg_sys::Oid) -> (Registered, Shape, String) {
    const ITEMS: &str = "inventory.items";
    if let Some(registration) = registered(Some(ledger)).pop() {
        let shape = check(&registration, Triggers::Required);
        return (registration, shape, ITEMS.into());
    }
    let unregistered = || not_registered(format!("{} is not a tracked ledger", crate::spi_util::relation_name(ledger)));
    let Some(shard) = crate::citus::shard_of(ledger) else { unregistered() };
    let Some(distributed) = registered(Some(shard.table)).pop() else { unregistered() };
    check_trigger_set(&distributed, Triggers::Required);
    let Some((balance_oid, balance_name)) = crate::citus::colocated_shard(&shard, distributed.balance_oid) else {
        mismatch(format!(
            "balance table {} is not distributed co-located with its ledger {}: on Citus both are distributed by the org column, co-located",
            distributed.balance_name, distributed.ledger_name
        ))
    };
    let items = match distributed.rule.as_deref() {
        Some(super::RULE_ITEMS) => {
            let items = crate::spi_util::first::<pg_sys::Oid>("SELECT 'inventory.items'::regclass::oid", &[]).unwrap_or(pg_sys::InvalidOid);
            crate::citus::colocated_shard(&shard, items).map(|(_, name)| name).unwrap_or_else(|| {
                mismatch(format!("{ITEMS} is not distributed co-located with {}", distributed.ledger_name))
            })
        }
        _ => ITEMS.into(),
    };
    let on_shard = Registered {
        ledger,
        ledger_name: crate::spi_util::relation_name(ledger),
        balance_oid,
        balance_name,
        ..distributed
    };
    let shape = check(&on_shard, Triggers::Skip);
    (on_shard, shape, items)
}

fn make(ledger: pg_sys::Oid, extension_owner: pg_sys::Oid) -> Plans {
    let (registration, shape, items_table) = registration_for(ledger);
    let upkeep = trust::upkeep_for(ledger, registration.balance_oid, registration.org.is_some());
    let sql = Upserts::of(&registration, &shape.keys);
    // The upkeep's identity passes the balance table's row-level security: a superuser (the extension's
    // owner, in the extension's own mode), or the owner with forced RLS lifted or not forced.
    // SAFETY: a catalog lookup (cached by PostgreSQL).
    let bypasses_rls = match upkeep {
        Upkeep::Definer => unsafe { pg_sys::superuser_arg(extension_owner) },
        Upkeep::Owner { own_rows, .. } => own_rows || !forces_rls(registration.balance_oid),
    };
    // A slotted balance table's unique key ends with the slot.
    let mut index_keys = registration.keys.clone();
    if registration.slots > 1 {
        index_keys.push("slot".into());
    }
    let direct = super::direct::target_for(registration.balance_oid, &index_keys, bypasses_rls);
    let slotted = (registration.slots > 1).then(|| super::spread::SlotPlans::make(&registration, &shape.keys));
    let mut single_types: Vec<pg_sys::Oid> = shape.keys.iter().map(|k| k.typid).collect();
    single_types.extend([pg_sys::NUMERICOID, pg_sys::INT8OID]);
    let mut bulk_types: Vec<pg_sys::Oid> = shape.keys.iter().map(|k| k.array_type).collect();
    bulk_types.extend([pg_sys::NUMERICARRAYOID, pg_sys::INT8ARRAYOID]);
    Plans {
        ledger,
        balance: registration.balance_oid,
        keys: shape.keys,
        qty_attnum: shape.qty_attnum,
        qty_kind: shape.qty_kind,
        id_attnum: shape.id_attnum,
        upkeep,
        extension_owner,
        direct,
        single: keep_plan(&sql.single, &single_types),
        bulk: keep_plan(&sql.bulk, &bulk_types),
        slotted,
        registration,
        items_table,
    }
}

/// The default equality operator of a type, schema-qualified: `OPERATOR(schema.=)`.
pub fn equality_operator(typid: pg_sys::Oid) -> String {
    // SAFETY: a type cache lookup.
    let operator = unsafe { (*pg_sys::lookup_type_cache(typid, pg_sys::TYPECACHE_EQ_OPR as i32)).eq_opr };
    let found = crate::spi_util::rows(
        "SELECT n.nspname::text, o.oprname::text FROM pg_catalog.pg_operator o
           JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace WHERE o.oid = $1",
        &[operator.into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
    );
    match found.first() {
        // An operator's name is made of operator characters only: it is written as it is.
        Some((schema, name)) => format!("OPERATOR({}.{name})", ident(schema)),
        None => mismatch(format!("a key column's type ({}) has no default equality operator", u32::from(typid))),
    }
}

fn forces_rls(table: pg_sys::Oid) -> bool {
    crate::spi_util::one_text("SELECT 'yes' FROM pg_catalog.pg_class WHERE oid = $1 AND relforcerowsecurity", &[table.into()]).is_some()
}

/// Prepares a statement and keeps it for the session.
pub fn keep_plan(sql: &str, types: &[pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    let text = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    // SAFETY: SPI calls in a connection of their own; the kept plan outlives it (SPI_keepplan).
    unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_ptr() as *mut pg_sys::Oid);
        if plan.is_null() {
            errors::raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("preparing the balance upsert failed (SPI result {})", { let r = pg_sys::SPI_result; r }),
                "This is a bug in inventory_ext; please report it with the ledger's definition.",
            )
        }
        pg_sys::SPI_keepplan(plan);
        pg_sys::SPI_finish();
        plan
    }
}

/// The SQL of the two upserts (plain data: unit-tested without a database).
pub struct Upserts {
    pub single: String,
    pub bulk: String,
}

impl Upserts {
    pub fn of(r: &Registered, keys: &[KeyColumn]) -> Upserts {
        let equalities: Vec<String> = keys.iter().map(|k| equality_operator(k.typid)).collect();
        Upserts::from_names(&r.balance_name, &keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>(), &equalities, r.id.is_some())
    }

    /// `equalities`: each key type's equality operator as `OPERATOR(schema.=)`, the one GROUP BY uses
    /// (the type's default), so that the upsert's result is matched to its deltas by the same equality
    /// that grouped them, whatever the pinned search_path finds.
    pub fn from_names(balance: &str, keys: &[String], equalities: &[String], has_id: bool) -> Upserts {
        let n = keys.len();
        let key_list = ident_list("", keys);
        let (id_col, id_set) = if has_id {
            (", last_ledger_id", ", last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id)")
        } else {
            ("", "")
        };
        let conflict = format!(
            "ON CONFLICT ({key_list}) DO UPDATE SET qty = b.qty + excluded.qty{id_set}, updated_at = excluded.updated_at"
        );
        let params = (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let id_param = if has_id { format!(", ${}", n + 2) } else { String::new() };
        let single = format!(
            "INSERT INTO {balance} AS b ({key_list}, qty{id_col}, updated_at) VALUES ({params}, ${q}{id_param}, now()) \
             {conflict} RETURNING b.qty < 0",
            q = n + 1
        );
        let aliases = (1..=n).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", ");
        let d_keys = (1..=n).map(|i| format!("d.k{i}")).collect::<Vec<_>>().join(", ");
        let id_value = if has_id { ", d.m" } else { "" };
        let matches = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("(w.{k} IS NULL AND d.k{n} IS NULL OR w.{k} {eq} d.k{n})", k = ident(k), n = i + 1, eq = equalities[i]))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key_texts = keys.iter().map(|k| format!("w.{}::text", ident(k))).collect::<Vec<_>>().join(", ");
        let bulk = format!(
            "WITH d AS MATERIALIZED (
                 SELECT {aliases}, sum(u.q) AS q, max(u.m) AS m
                   FROM unnest({params}, ${q}, ${m}) AS u({aliases}, q, m)
                  GROUP BY {aliases}),
             w AS (INSERT INTO {balance} AS b ({key_list}, qty{id_col}, updated_at)
                   SELECT {d_keys}, d.q{id_value}, now() FROM d ORDER BY {d_keys}
                   {conflict} RETURNING b.*)
             SELECT {key_texts} FROM w JOIN d ON {matches} WHERE w.qty < 0 AND d.q < 0",
            q = n + 1,
            m = n + 2,
        );
        Upserts { single, bulk }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn upserts_quote_every_column_and_order_keys() {
        let eq = vec!["OPERATOR(pg_catalog.=)".to_string(); 2];
        let u = Upserts::from_names("public.\"InventoryBalance\"", &["itemId".into(), "lot id".into()], &eq, true);
        assert!(u.single.contains("(\"itemId\", \"lot id\", qty, last_ledger_id, updated_at) VALUES ($1, $2, $3, $4, now())"), "{}", u.single);
        assert!(u.single.contains("ON CONFLICT (\"itemId\", \"lot id\")"), "{}", u.single);
        assert!(u.bulk.contains("ORDER BY d.k1, d.k2"), "{}", u.bulk);
        assert!(u.bulk.contains("GROUP BY k1, k2"), "{}", u.bulk);
        assert!(u.bulk.contains("(w.\"lot id\" IS NULL AND d.k2 IS NULL OR w.\"lot id\" OPERATOR(pg_catalog.=) d.k2)"), "{}", u.bulk);
        let no_id = Upserts::from_names("b", &["k".into()], &eq[..1], false);
        assert!(!no_id.single.contains("last_ledger_id") && !no_id.bulk.contains("last_ledger_id"), "{}", no_id.bulk);
    }
}
