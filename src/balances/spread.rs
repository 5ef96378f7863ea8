//! Hot keys spread over slots (`inventory.set_balance_slots`, SPEC §6): how the flush writes a key of a
//! ledger whose balance table holds up to `slots` rows per key, told apart by a `slot` column.
//!
//! One row per key makes every posting to a popular key wait for the previous one's commit. With slots,
//! a posting takes whichever of the key's rows no other transaction holds, and the key's balance is the
//! sum of its rows (`inventory.on_hand`, the view beside the balance table). Per key, in this order:
//! 1. **take**: add the delta to a row nobody holds, looking from this backend's own slot round (so
//!    concurrent writers start apart) — without SQL when the table allows (`direct::take`, which looks
//!    again for about a millisecond while every row is held: holders are usually committing), else with
//!    `FOR NO KEY UPDATE SKIP LOCKED`. It never waits. A decrease under a negative-stock rule takes only
//!    a row that holds enough, so every row of a guarded key stays ≥ 0 and so does their sum.
//! 2. **gather** (a guarded decrease no free row covers): lock all of the key's rows in slot order
//!    (waiting), decide on their total — short: the rule decides (23514, or the delta goes into slot 0) —
//!    and spread what remains evenly over the slots, so the next decreases find rows that hold enough.
//!    Two sessions cannot both take the last unit: each takes it only from a row it holds. A guarded SQL
//!    take runs in a subtransaction rolled back when it takes nothing, so no row it locked and found
//!    short is still held when the gather waits (two gathers would then wait for each other).
//! 3. **place** (an increase, or no rule to keep, and no free row): a new row in a slot not yet used
//!    (the first from this backend's own round), or, with every slot in use and held, a wait on this
//!    backend's own slot.
//! A quiet key finds its one row free and keeps one row. Keys of one statement are written one at a
//! time in key order, so waits (gather, place) follow one order and statements do not deadlock.

use super::frames::{numeric, Delta, KeyImage};
use super::plans::{equality_operator, keep_plan, KeyColumn, Plans};
use super::trigger::{execute, key_datums, key_texts, sum_datum, key_arrays};
use super::Registered;
use crate::sql_text::{ident, ident_list};
use pgrx::prelude::*;
use std::collections::HashMap;

/// The kept statements of a slotted ledger (made with the other plans, freed with them).
pub struct SlotPlans {
    take: pg_sys::SPIPlanPtr,
    gather: pg_sys::SPIPlanPtr,
    free_slot: pg_sys::SPIPlanPtr,
    put: pg_sys::SPIPlanPtr,
    order: pg_sys::SPIPlanPtr,
}

impl Drop for SlotPlans {
    fn drop(&mut self) {
        // SAFETY: as for `Plans`: kept plans that nothing refers to once this is dropped.
        unsafe {
            if pg_sys::proc_exit_inprogress {
                return;
            }
            for plan in [self.take, self.gather, self.free_slot, self.put, self.order] {
                pg_sys::SPI_freeplan(plan);
            }
        }
    }
}

impl SlotPlans {
    pub fn make(r: &Registered, keys: &[KeyColumn]) -> SlotPlans {
        let columns: Vec<SlotKey> = keys
            .iter()
            .map(|k| SlotKey { name: k.name.clone(), equality: equality_operator(k.typid), not_null: k.not_null })
            .collect();
        let sql = SlotSql::from_names(&r.balance_name, &columns, r.id.is_some());
        let key_types: Vec<pg_sys::Oid> = keys.iter().map(|k| k.typid).collect();
        let with = |extra: &[pg_sys::Oid]| key_types.iter().chain(extra).copied().collect::<Vec<_>>();
        let (numeric, int8, int4, bool_) = (pg_sys::NUMERICOID, pg_sys::INT8OID, pg_sys::INT4OID, pg_sys::BOOLOID);
        let array_types: Vec<pg_sys::Oid> = keys.iter().map(|k| k.array_type).collect();
        SlotPlans {
            take: keep_plan(&sql.take, &with(&[numeric, int8, bool_, int4, int4])),
            gather: keep_plan(&sql.gather, &with(&[numeric, int8, int4])),
            free_slot: keep_plan(&sql.free_slot, &with(&[int4, int4])),
            put: keep_plan(&sql.put, &with(&[numeric, int8, int4])),
            order: keep_plan(&sql.order, &array_types),
        }
    }
}

/// A key column as the statements name and compare it.
pub struct SlotKey {
    pub name: String,
    /// `OPERATOR(schema.=)`: the type's default equality (`plans::equality_operator`).
    pub equality: String,
    pub not_null: bool,
}

/// The SQL of the slotted statements (plain data: unit-tested without a database). Parameters $1…$n
/// are the key's values; the rest are named per statement.
pub struct SlotSql {
    /// + delta, largest id, guarded (bool), first slot, slots: adds to the first free row from the first
    /// slot round (one that holds enough, when guarded), never waiting.
    pub take: String,
    /// + delta, largest id, slots: locks every row, and when the total covers the delta, spreads it.
    pub gather: String,
    /// + slots, first slot: a slot with no row, the first from the first slot round.
    pub free_slot: String,
    /// + delta, largest id, slot: adds to one slot's row (made when missing), waiting for it if held.
    pub put: String,
    /// Key arrays: the ordinals of each distinct key, in key order.
    pub order: String,
}

impl SlotSql {
    pub fn from_names(balance: &str, keys: &[SlotKey], has_id: bool) -> SlotSql {
        let n = keys.len();
        let names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
        let key_list = ident_list("", &names);
        let params = (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let matches = |alias: &str| {
            keys.iter()
                .enumerate()
                .map(|(i, k)| {
                    let (column, eq, p) = (format!("{alias}.{}", ident(&k.name)), &k.equality, i + 1);
                    if k.not_null {
                        format!("{column} {eq} ${p}")
                    } else {
                        format!("({column} {eq} ${p} OR {column} IS NULL AND ${p} IS NULL)")
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let (d, m, x) = (n + 1, n + 2, n + 3);
        let (id_col, id_val, id_set, id_excluded) = if has_id {
            (
                ", last_ledger_id",
                format!(", ${m}"),
                format!(", last_ledger_id = greatest(b.last_ledger_id, ${m})"),
                ", last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id)",
            )
        } else {
            ("", String::new(), String::new(), "")
        };
        let conflict = format!(
            "ON CONFLICT ({key_list}, slot) DO UPDATE SET qty = b.qty + excluded.qty{id_excluded}, updated_at = excluded.updated_at"
        );
        // take: + delta, largest id, guarded, first slot, slots.
        let (first, slots) = (n + 4, n + 5);
        let take = format!(
            "UPDATE {balance} AS b SET qty = b.qty + ${d}{id_set}, updated_at = now()
              WHERE {mb} AND b.slot = (SELECT s.slot FROM {balance} AS s WHERE {ms} AND (NOT ${x} OR s.qty + ${d} >= 0)
                                        ORDER BY (s.slot + ${slots} - ${first}) % ${slots} LIMIT 1
                                        FOR NO KEY UPDATE OF s SKIP LOCKED)
              RETURNING b.slot",
            mb = matches("b"),
            ms = matches("s"),
        );
        // Shares keep the total's scale: slot 0 gets the total less the other slots' equal shares.
        let gather = format!(
            "WITH l AS MATERIALIZED (SELECT s.slot, s.qty FROM {balance} AS s WHERE {ms} ORDER BY s.slot FOR NO KEY UPDATE OF s),
                  t AS (SELECT coalesce(sum(l.qty), 0) + ${d} AS total FROM l),
                  share AS (SELECT t.total, pg_catalog.trunc(t.total / ${x}, pg_catalog.scale(t.total)) AS each FROM t WHERE t.total >= 0),
                  target AS (SELECT g AS slot, CASE WHEN g = 0 THEN share.total - (${x} - 1) * share.each ELSE share.each END AS qty
                               FROM share, pg_catalog.generate_series(0, ${x} - 1) AS g),
                  adj AS (SELECT coalesce(target.slot, l.slot) AS slot, coalesce(target.qty, 0) - coalesce(l.qty, 0) AS adjust
                            FROM target FULL JOIN l ON l.slot = target.slot),
                  w AS (INSERT INTO {balance} AS b ({key_list}, slot, qty{id_col}, updated_at)
                        SELECT {params}, adj.slot, adj.adjust{id_val}, now() FROM adj
                         WHERE (adj.adjust <> 0 OR adj.slot = 0) AND EXISTS (SELECT FROM share)
                         ORDER BY adj.slot
                        {conflict} RETURNING 1)
             SELECT t.total >= 0, (SELECT count(*) FROM w) FROM t",
            ms = matches("s"),
        );
        // free_slot: + slots, first slot. A new key's first row is slot 0; after that, the first unused
        // slot from this backend's own round, so that two backends making a row at once seldom make the
        // same one.
        let (slots, first) = (n + 1, n + 2);
        let free_slot = format!(
            "SELECT g FROM pg_catalog.generate_series(0, ${slots} - 1) AS g
              WHERE NOT EXISTS (SELECT FROM {balance} AS s WHERE {ms} AND s.slot = g)
              ORDER BY CASE WHEN EXISTS (SELECT FROM {balance} AS s WHERE {ms}) THEN (g + ${slots} - ${first}) % ${slots}
                            ELSE g END
              LIMIT 1",
            ms = matches("s"),
        );
        let put = format!(
            "INSERT INTO {balance} AS b ({key_list}, slot, qty{id_col}, updated_at) VALUES ({params}, ${x}, ${d}{id_val}, now())
             {conflict} RETURNING b.slot"
        );
        let aliases = (1..=n).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", ");
        let order = format!(
            "SELECT array_agg(u.o ORDER BY u.o)::text FROM unnest({params}) WITH ORDINALITY AS u({aliases}, o)
              GROUP BY {aliases} ORDER BY {aliases}"
        );
        SlotSql { take, gather, free_slot, put, order }
    }
}

/// The slot this backend tries first (and waits on, when it must wait): sessions start apart, so
/// that concurrent writers of one key seldom race for the same free row.
fn own_slot(plans: &Plans) -> i32 {
    // SAFETY: reading a backend global.
    unsafe { pg_sys::MyProcPid }.rem_euclid(plans.registration.slots)
}

thread_local! {
    /// Hashes of keys this backend last saw spread over more than one row (`direct::take`'s hint).
    /// Bounded: emptied when full, so it only ever costs a scan instead of a probe.
    static SPREAD_KEYS: std::cell::RefCell<std::collections::HashSet<u64>> = std::cell::RefCell::new(Default::default());
}

/// Whether a key's delta (a numeric, `sum_datum`) is a decrease the ledger's negative-stock rule keeps:
/// such a take uses only a row that covers it, and a gather decides on the total.
fn guarded(plans: &Plans, delta: pg_sys::Datum) -> bool {
    // SAFETY: a numeric datum.
    plans.registration.rule.is_some() && unsafe { numeric::is_negative(delta) }
}

/// Under the built-in ledger's rule, the items of `keys` locked FOR SHARE before any of their balance
/// rows (`trigger::refusing_items`: the allow_negative guard's order, item then rows).
fn lock_items_first(plans: &Plans, keys: &[Vec<Option<String>>]) {
    if plans.registration.rule.as_deref() == Some(super::RULE_ITEMS) && !keys.is_empty() {
        super::trigger::refusing_items(plans, keys);
    }
}

/// `direct::take` with this backend's hint of whether the key is spread, kept up to date.
fn take_with_hint(plans: &Plans, image: &[u8], keys: &[Option<pg_sys::Datum>], delta: pg_sys::Datum, max_id: Option<i64>, guarded: bool) -> bool {
    let Some(target) = &plans.direct else { return false };
    let hash = key_hash(plans.ledger, image);
    let mut spread = SPREAD_KEYS.with(|k| k.borrow().contains(&hash));
    let done = super::direct::take(target, keys, plans.registration.slots, own_slot(plans), delta, max_id, guarded, &mut spread).is_some();
    SPREAD_KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if spread {
            if k.len() >= 4096 {
                k.clear();
            }
            k.insert(hash);
        } else {
            k.remove(&hash);
        }
    });
    done
}

/// A statement of one key taken without SQL (`direct::take`), before any identity switch: true when done.
/// Runs no code of anyone's (`direct`), so it needs neither the upkeep's identity nor a pinned search_path.
pub fn take_directly(plans: &Plans, deltas: &HashMap<KeyImage, Delta>) -> bool {
    if plans.direct.is_none() || plans.slotted.is_none() {
        return false;
    }
    let Some((image, delta)) = deltas.iter().next().filter(|_| deltas.len() == 1) else { return false };
    let keys = key_datums(plans, image);
    let delta_datum = sum_datum(&delta.sum);
    take_with_hint(plans, image, &keys, delta_datum, delta.max_id, guarded(plans, delta_datum))
}

/// Writes one statement's deltas to a slotted ledger, key by key in key order (see the module comment).
/// Inside the upkeep's identity (`trust::run_pinned`). `tried_directly`: `take_directly` already failed.
pub fn write(plans: &Plans, deltas: HashMap<KeyImage, Delta>, tried_directly: bool) {
    let slotted = plans.slotted.as_ref().expect("a slotted ledger");
    if deltas.len() == 1 {
        let (image, delta) = deltas.into_iter().next().expect("one delta");
        write_key(plans, slotted, &image, sum_datum(&delta.sum), delta.max_id, tried_directly);
        return;
    }
    let entries: Vec<(KeyImage, Delta)> = deltas.into_iter().collect();
    let arrays = key_arrays(plans, entries.iter().map(|(image, _)| image.as_slice()));
    // Keys the key types' equality makes one (byte images may differ) are written once, with their sum.
    let mut groups = Vec::new();
    for group in execute(slotted.order, &arrays) {
        let ordinals: Vec<usize> = group[0]
            .as_deref()
            .unwrap_or("{}")
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .filter_map(|o| o.parse::<usize>().ok())
            .collect();
        let Some(&first) = ordinals.first() else { continue };
        let mut sum = sum_datum(&entries[first - 1].1.sum);
        let mut max_id = entries[first - 1].1.max_id;
        for &o in &ordinals[1..] {
            let delta = &entries[o - 1].1;
            // SAFETY: numeric datums in the current memory context.
            sum = pg_sys::Datum::from(unsafe {
                pg_sys::numeric_add_opt_error(sum.cast_mut_ptr(), sum_datum(&delta.sum).cast_mut_ptr(), std::ptr::null_mut())
            });
            max_id = max_id.max(delta.max_id);
        }
        groups.push((first - 1, sum, max_id));
    }
    // The built-in rule's items of every decrease, locked before any balance row (a later key's gather
    // would otherwise take its item while this statement holds an earlier key's row of that item, which
    // the allow_negative guard, holding the item, may be waiting for).
    if plans.registration.rule.as_deref() == Some(super::RULE_ITEMS) {
        let decreases: Vec<Vec<Option<String>>> = groups
            .iter()
            .filter(|(_, sum, _)| guarded(plans, *sum))
            .map(|(i, _, _)| key_texts(plans, &key_datums(plans, &entries[*i].0)))
            .collect();
        lock_items_first(plans, &decreases);
    }
    for (i, sum, max_id) in groups {
        write_key(plans, slotted, &entries[i].0, sum, max_id, false);
    }
}

fn write_key(
    plans: &Plans,
    slotted: &SlotPlans,
    image: &[u8],
    delta: pg_sys::Datum,
    max_id: Option<i64>,
    tried_directly: bool,
) {
    let keys = key_datums(plans, image);
    let guarded = guarded(plans, delta);
    let with = |extra: &[Option<pg_sys::Datum>]| keys.iter().copied().chain(extra.iter().copied()).collect::<Vec<_>>();
    let id = max_id.map(pg_sys::Datum::from);
    let slot_count = Some(pg_sys::Datum::from(plans.registration.slots));
    let first = Some(pg_sys::Datum::from(own_slot(plans)));
    // 1. take a free row: without SQL when the balance table allows (`direct`), else with SKIP LOCKED.
    if !tried_directly && take_with_hint(plans, image, &keys, delta, max_id, guarded) {
        return;
    }
    let take = || !execute(slotted.take, &with(&[Some(delta), id, Some(pg_sys::Datum::from(guarded)), first, slot_count])).is_empty();
    // A guarded take in a subtransaction that is rolled back when it takes nothing: a row it locked and
    // then found short (changed since the statement's snapshot) must not stay locked into the gather,
    // where it would make two gathers wait for each other.
    if if guarded { kept_only_if(take) } else { take() } {
        return;
    }
    let free_slot = || {
        let free = execute(slotted.free_slot, &with(&[slot_count, first]));
        free.first().and_then(|r| r[0].as_deref()).and_then(|s| s.parse::<i32>().ok())
    };
    let slot = if guarded {
        // 2. gather: every row locked, in slot order; spread when the total covers the decrease. It
        // makes the slots' missing rows, so it holds the key's row-making lock first; before that, the
        // built-in rule's item (`refusing_items`: the allow_negative guard's order).
        lock_items_first(plans, &[key_texts(plans, &keys)]);
        lock_row_making(plans.ledger, image);
        let covered = execute(slotted.gather, &with(&[Some(delta), id, slot_count]));
        if covered.first().and_then(|r| r[0].as_deref()) == Some("t") {
            return;
        }
        // Short: the rule decides (and refuses with 23514), or the balance may go negative, in slot 0.
        super::trigger::apply_negative_rule(plans, &[key_texts(plans, &keys)]);
        0
    } else if free_slot().is_some() {
        // 3. place: a new row (under the key's row-making lock, looked for again once held) …
        lock_row_making(plans.ledger, image);
        free_slot().unwrap_or_else(|| own_slot(plans))
    } else {
        // … or, every slot in use and held, a wait on this backend's own slot.
        own_slot(plans)
    };
    execute(slotted.put, &with(&[Some(delta), id, Some(pg_sys::Datum::from(slot))]));
}

/// The lock a transaction holds, to its end, before it makes rows for a key (a gather, a place): two
/// transactions that made the same missing slot's row at once would each wait for the other's insert
/// while holding rows the other needs. Taken before any of the key's rows (a take never holds one when
/// it fails), so it keeps the order of waits: row-making lock, then rows in slot order. An advisory lock
/// tag of the extension's own kind (`objsubid` 14 in `pg_locks`: SQL's advisory functions use 1 and 2,
/// so no application can hold it), keyed by the ledger and a hash of the key's bytes.
fn lock_row_making(ledger: pg_sys::Oid, image: &[u8]) {
    let hash = key_hash(ledger, image);
    // SAFETY: a lock tag built as SET_LOCKTAG_ADVISORY builds one; a transaction-scoped lock.
    unsafe {
        let mut tag: pg_sys::LOCKTAG = std::mem::zeroed();
        tag.locktag_field1 = pg_sys::MyDatabaseId.into();
        tag.locktag_field2 = (hash >> 32) as u32;
        tag.locktag_field3 = hash as u32;
        tag.locktag_field4 = ROW_MAKING_LOCK_CLASS;
        tag.locktag_type = pg_sys::LockTagType::LOCKTAG_ADVISORY as u8;
        tag.locktag_lockmethodid = pg_sys::USER_LOCKMETHOD as u8;
        pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, false);
    }
}

/// A key of a ledger as 64 bits (SipHash with fixed keys: the same in every backend).
fn key_hash(ledger: pg_sys::Oid, image: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    u32::from(ledger).hash(&mut hasher);
    image.hash(&mut hasher);
    hasher.finish()
}

/// `pg_locks.objsubid` of the row-making lock.
const ROW_MAKING_LOCK_CLASS: u16 = 14;

/// Runs `work` in a subtransaction that is kept when it returns true and rolled back (with the row
/// locks it took) when it returns false. An error rolls the subtransaction back and propagates.
fn kept_only_if(work: impl FnOnce() -> bool) -> bool {
    crate::maintenance::subtransaction(work, |kept| *kept).unwrap_or_else(|e| e.rethrow())
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn slotted_statements_match_nullable_keys_and_lock_in_slot_order() {
        let keys = vec![
            SlotKey { name: "itemId".into(), equality: "OPERATOR(pg_catalog.=)".into(), not_null: true },
            SlotKey { name: "lot".into(), equality: "OPERATOR(pg_catalog.=)".into(), not_null: false },
        ];
        let sql = SlotSql::from_names("public.\"Bal\"", &keys, true);
        assert!(sql.take.contains("s.\"itemId\" OPERATOR(pg_catalog.=) $1 AND (s.lot OPERATOR(pg_catalog.=) $2 OR s.lot IS NULL AND $2 IS NULL)"), "{}", sql.take);
        assert!(sql.take.contains("ORDER BY (s.slot + $7 - $6) % $7 LIMIT 1"), "{}", sql.take);
        assert!(sql.take.contains("FOR NO KEY UPDATE OF s SKIP LOCKED"), "{}", sql.take);
        assert!(sql.take.contains("(NOT $5 OR s.qty + $3 >= 0)"), "{}", sql.take);
        assert!(sql.gather.contains("ORDER BY s.slot FOR NO KEY UPDATE OF s)"), "{}", sql.gather);
        assert!(sql.gather.contains("ON CONFLICT (\"itemId\", lot, slot)"), "{}", sql.gather);
        assert!(sql.put.contains("VALUES ($1, $2, $5, $3, $4, now())"), "{}", sql.put);
        assert!(sql.order.contains("GROUP BY k1, k2 ORDER BY k1, k2"), "{}", sql.order);
        let no_id = SlotSql::from_names("b", &keys[..1], false);
        assert!(!no_id.gather.contains("last_ledger_id") && !no_id.put.contains("last_ledger_id"), "{}", no_id.put);
    }
}
