//! The direct write of one key's delta: find the balance row through the table's unique key index,
//! lock it, update it in place (HOT when it can), without planning or running SQL.
//!
//! Used by the flush for a statement that touched one key (the common OLTP posting) when it is safe to
//! do what the executor would do without the executor: the balance table is a heap table with nothing
//! that runs code or checks rows on update (no triggers, rules, check, exclusion or foreign-key
//! constraints, generated columns, expression or partial indexes) and only B-tree indexes, row-level security does not apply
//! to the upkeep's identity, and the transaction is READ COMMITTED. Anything else — a key not there
//! yet, a row another transaction is inserting, a row deleted under us, a stricter isolation level —
//! falls back to the kept SQL upsert, which handles it (`None`). The lookup and lock follow what
//! `INSERT … ON CONFLICT DO UPDATE` does (a dirty-snapshot probe of the unique index, then a tuple lock
//! that waits for a concurrent updater and retries on the new version), so both paths serialize on the
//! balance row the same way.

use super::frames::numeric;
use pgrx::prelude::*;

/// What the direct write needs to know about a balance table (from the catalog, when plans are made).
pub struct DirectTarget {
    pub balance: pg_sys::Oid,
    pub index: pg_sys::Oid,
    /// For each index column: which registered key it is, its equality function and collation.
    pub index_keys: Vec<(usize, pg_sys::Oid, pg_sys::Oid)>,
    pub qty_attnum: i32,
    pub last_id_attnum: Option<i32>,
    pub updated_at_attnum: i32,
    /// A slotted balance table's `slot` column, the unique index's last column (so that the index's
    /// other columns find all of a key's rows in one scan).
    pub slot_attnum: Option<i32>,
}

/// The target, when the balance table qualifies (see the module comment); `bypasses_rls`: the upkeep's
/// identity is not held to the table's row-level security.
pub fn target_for(balance: pg_sys::Oid, keys: &[String], bypasses_rls: bool) -> Option<DirectTarget> {
    let eligible = crate::spi_util::one_text(
        "SELECT 'yes' FROM pg_catalog.pg_class c,
                LATERAL (SELECT array_agg(a.attnum) AS attnums FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attname = ANY ($3::text[]) AND NOT a.attisdropped) keys
          WHERE c.oid = $1 AND c.relkind = 'r' AND c.relam = (SELECT m.oid FROM pg_catalog.pg_am m WHERE m.amname = 'heap')
            AND (NOT c.relrowsecurity OR $2)
            -- A foreign key from the key columns (the tenant's organization) is checked by PostgreSQL only
            -- when those columns change, which this write never does; any other trigger or constraint
            -- that could run or check on update disqualifies the table, and so does a foreign key of
            -- another table referencing it.
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid
                              AND (k.contype IN ('c', 'x', 't') OR (k.contype = 'f' AND NOT k.conkey <@ keys.attnums)))
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.confrelid = c.oid)
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid
                              AND NOT (t.tgisinternal AND EXISTS (SELECT FROM pg_catalog.pg_constraint k
                                         WHERE k.oid = t.tgconstraint AND k.conrelid = c.oid AND k.contype = 'f'
                                           AND k.conkey <@ keys.attnums)))
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid)
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                              AND NOT a.attisdropped AND a.attgenerated <> '')
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid
                              AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL OR NOT i.indisvalid OR NOT i.indisready))
            -- B-tree indexes only: the write adds index entries only when its update is not heap-only, and
            -- since PostgreSQL 16 a heap-only update still needs entries in summarizing indexes (BRIN),
            -- which it does not make.
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
                             WHERE i.indrelid = c.oid AND x.relam <> (SELECT m.oid FROM pg_catalog.pg_am m WHERE m.amname = 'btree'))
            AND (SELECT a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'updated_at'
                    AND NOT a.attisdropped) = 'timestamptz'::regtype",
        &[balance.into(), bypasses_rls.into(), keys.to_vec().into()],
    );
    eligible?;
    // The unique index on exactly the key columns that treats NULLs as equal (what ON CONFLICT infers).
    let index = crate::spi_util::rows(
        "SELECT i.indexrelid, k.pos::int4 - 1, o.opcfamily, o.opcintype, coalesce(c.oid, 0::oid)
           FROM pg_catalog.pg_index i
           CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[]) WITH ORDINALITY AS u(attnum, opclass, coll, n)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
           JOIN pg_catalog.pg_opclass o ON o.oid = u.opclass
           LEFT JOIN pg_catalog.pg_collation c ON c.oid = u.coll
           CROSS JOIN LATERAL (SELECT array_position($2::text[], a.attname::text) AS pos) k
          WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indnullsnotdistinct
            AND (SELECT x.relam FROM pg_catalog.pg_class x WHERE x.oid = i.indexrelid) = (SELECT m.oid FROM pg_catalog.pg_am m WHERE m.amname = 'btree')
            AND i.indnatts = cardinality($2::text[]) AND i.indnkeyatts = i.indnatts
          ORDER BY i.indexrelid, u.n",
        &[balance.into(), keys.to_vec().into()],
        |r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<i32>(2)?,
                r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<pg_sys::Oid>(4)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::InvalidOid),
            ))
        },
    );
    let first = index.first()?.0;
    let columns: Vec<_> = index.iter().filter(|c| c.0 == first).collect();
    let mut index_keys = Vec::new();
    for (_, pos, family, input_type, collation) in columns {
        let pos = usize::try_from((*pos)?).ok()?;
        // SAFETY: catalog lookups (cached by PostgreSQL).
        let proc = unsafe {
            let eq = pg_sys::get_opfamily_member(*family, *input_type, *input_type, pg_sys::BTEqualStrategyNumber as i16);
            if eq == pg_sys::InvalidOid { return None; }
            pg_sys::get_opcode(eq)
        };
        if proc == pg_sys::InvalidOid {
            return None;
        }
        index_keys.push((pos, proc, *collation));
    }
    let mut seen: Vec<usize> = index_keys.iter().map(|k| k.0).collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != keys.len() {
        return None;
    }
    let slotted = keys.last().is_some_and(|k| k == "slot");
    if slotted && index_keys.last().map(|k| k.0) != Some(keys.len() - 1) {
        return None;
    }
    let attnum = |name: &str| {
        crate::spi_util::one_text(
            "SELECT attnum::text FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[balance.into(), name.into()],
        )
        .and_then(|a| a.parse::<i32>().ok())
    };
    Some(DirectTarget {
        balance,
        index: first,
        index_keys,
        qty_attnum: attnum("qty")?,
        last_id_attnum: attnum("last_ledger_id"),
        updated_at_attnum: attnum("updated_at")?,
        slot_attnum: if slotted { Some(attnum("slot")?) } else { None },
    })
}

/// Adds `delta` (a numeric) to the balance row of `keys`, raising `last_ledger_id` to `max_id`.
/// `Some(below zero after)` when done here; `None` when the SQL upsert must do it.
pub fn add(target: &DirectTarget, keys: &[Option<pg_sys::Datum>], delta: pg_sys::Datum, max_id: Option<i64>) -> Option<bool> {
    let mut probe = Probe::open(target)?;
    let mut outcome = None;
    for _attempt in 0..3 {
        match probe.lock(keys, Wait::Block, None) {
            Locked::Row => {
                outcome = probe.update(delta, max_id);
                break;
            }
            // Updated or deleted by a transaction that committed while we waited: look again.
            Locked::Changed => continue,
            Locked::Absent | Locked::Busy => break,
        }
    }
    outcome
}

/// A slotted key's `take` (`super::spread`) without SQL: the first of its rows, in slot order from
/// `first` round, that no other transaction holds — all found with one scan of the unique index by the
/// key's columns, then locked without waiting — and, when `guarded`, that holds at least `-delta`. When every row that would do is
/// held and every slot is in use, it looks again a few times over about a millisecond and a half (a
/// holder is usually committing): a writer takes whichever row frees first instead of queueing behind
/// one. `spread`: whether the key is known to have more than one row (in: a hint; out: what the scan
/// saw). Rows it locked but could not use stay locked (as SKIP LOCKED leaves them) to the end of the
/// transaction. `None`: no such row here,
/// the SQL statements decide (and may wait).
pub fn take(
    target: &DirectTarget,
    keys: &[Option<pg_sys::Datum>],
    slots: i32,
    first: i32,
    delta: pg_sys::Datum,
    max_id: Option<i64>,
    guarded: bool,
    spread: &mut bool,
) -> Option<bool> {
    const LOOKS: u32 = 5;
    let mut probe = Probe::open(target)?;
    // A key known to be spread: this backend's own slot first (with writers fewer than slots it is
    // usually free: one probe). Any other key: one scan (a quiet key's one row).
    if *spread {
        let mut own: Vec<Option<pg_sys::Datum>> = keys.to_vec();
        own.push(Some(pg_sys::Datum::from(first)));
        if probe.lock(&own, Wait::Skip, guarded.then_some(delta)) == Locked::Row {
            return probe.update(delta, max_id);
        }
    }
    for look in 0..LOOKS {
        let mut rows = probe.rows_of_key(keys, guarded.then_some(delta));
        rows.sort_by_key(|row| (row.slot - first).rem_euclid(slots));
        let rows_seen: Vec<i32> = rows.iter().map(|row| row.slot).collect();
        *spread = distinct_slots(&rows_seen) > 1;
        let mut held = false;
        for row in rows {
            match row.state {
                RowState::Held => {
                    held = true;
                    continue;
                }
                RowState::Short => continue,
                RowState::Free => {}
            }
            match probe.lock_tid(row.tid, Wait::Skip) {
                Locked::Row => {}
                Locked::Busy => {
                    held = true;
                    continue;
                }
                _ => continue,
            }
            // SAFETY: the probe's slot holds the row just locked (unchanged since the scan: a version
            // updated meanwhile answers TM_Updated; checked again all the same).
            if guarded && !unsafe { probe.covers(delta) } {
                continue;
            }
            return probe.update(delta, max_id);
        }
        // Nothing held (every row short, or none at all), or a slot still unused: the SQL statements
        // make a row there, or gather, at once; waiting would not help.
        if !held || look + 1 == LOOKS || distinct_slots(&rows_seen) < slots {
            break;
        }
        // 100, 200, 400, 800 µs.
        // SAFETY: plain backend calls.
        unsafe {
            pg_sys::pg_usleep(100 << look);
            pgrx::check_for_interrupts!();
        }
    }
    None
}

/// How many different slots `rows` (a key's rows, each version a scan met) are in.
fn distinct_slots(rows: &[i32]) -> i32 {
    let mut slots = rows.to_vec();
    slots.sort_unstable();
    slots.dedup();
    slots.len() as i32
}

/// One row of a slotted key, as a dirty-snapshot scan found it (a row an in-progress transaction
/// updates is met twice, as its old and its new version, both held).
struct KeyRow {
    slot: i32,
    tid: pg_sys::ItemPointerData,
    state: RowState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RowState {
    Free,
    /// Another transaction is inserting, updating or locking it.
    Held,
    /// Free, but it does not cover the decrease.
    Short,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    Skip,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Locked {
    /// Locked; its newest version is in the probe's slot.
    Row,
    /// Not there, or another transaction is inserting it.
    Absent,
    /// Updated or deleted by a transaction that committed meanwhile.
    Changed,
    /// Held by another transaction (`Wait::Skip`), or anything else `table_tuple_lock` answers.
    Busy,
}

/// The balance table and its unique key index, opened for one write (closed on drop; their locks stay
/// to the end of the transaction, as the executor keeps them).
struct Probe<'a> {
    target: &'a DirectTarget,
    rel: pg_sys::Relation,
    index: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
}

impl<'a> Probe<'a> {
    /// `None` in REPEATABLE READ or SERIALIZABLE: the SQL statements then meet the serialization rules.
    fn open(target: &'a DirectTarget) -> Option<Probe<'a>> {
        // SAFETY: backend calls, following what the executor does for INSERT … ON CONFLICT DO UPDATE.
        unsafe {
            if pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 {
                return None;
            }
            // Changes earlier in this transaction (an earlier flush of the same row) become visible.
            pg_sys::CommandCounterIncrement();
            let rel = pg_sys::table_open(target.balance, pg_sys::RowExclusiveLock as i32);
            let index = pg_sys::index_open(target.index, pg_sys::RowExclusiveLock as i32);
            pg_sys::CheckCmdReplicaIdentity(rel, pg_sys::CmdType::CMD_UPDATE);
            let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
            Some(Probe { target, rel, index, slot })
        }
    }

    /// Scan keys for the first `columns` index columns, from the registered keys' values.
    fn scankeys(&self, keys: &[Option<pg_sys::Datum>], columns: usize) -> Vec<pg_sys::ScanKeyData> {
        // SAFETY: initializing plain structs with the index's own equality functions.
        unsafe {
            let mut scankeys: Vec<pg_sys::ScanKeyData> = vec![std::mem::zeroed(); columns];
            for (i, (pos, proc, collation)) in self.target.index_keys.iter().take(columns).enumerate() {
                let (flags, arg) = match keys[*pos] {
                    Some(d) => (0, d),
                    None => ((pg_sys::SK_ISNULL | pg_sys::SK_SEARCHNULL) as i32, pg_sys::Datum::from(0)),
                };
                pg_sys::ScanKeyEntryInitialize(
                    &mut scankeys[i],
                    flags,
                    (i + 1) as i16,
                    pg_sys::BTEqualStrategyNumber as u16,
                    pg_sys::InvalidOid,
                    *collation,
                    *proc,
                    arg,
                );
            }
            scankeys
        }
    }

    /// Every row of a slotted key (`keys` without the slot), found with one dirty-snapshot scan of the
    /// unique index by its other columns; with `needs` (a delta), whether each free one covers it.
    fn rows_of_key(&mut self, keys: &[Option<pg_sys::Datum>], needs: Option<pg_sys::Datum>) -> Vec<KeyRow> {
        let Some(slot_attnum) = self.target.slot_attnum else { return Vec::new() };
        let mut scankeys = self.scankeys(keys, self.target.index_keys.len() - 1);
        let mut rows = Vec::new();
        // SAFETY: the relations are open; the scan keys live through the scan; each row is read from
        // the slot before the next is fetched into it.
        unsafe {
            let mut dirty: pg_sys::SnapshotData = std::mem::zeroed();
            dirty.snapshot_type = pg_sys::SnapshotType::SNAPSHOT_DIRTY;
            let scan = crate::pg_compat::index_beginscan(self.rel, self.index, &mut dirty, scankeys.len() as i32);
            pg_sys::index_rescan(scan, scankeys.as_mut_ptr(), scankeys.len() as i32, std::ptr::null_mut(), 0);
            while pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, self.slot) {
                let mut isnull = false;
                let slot = pg_sys::slot_getattr(self.slot, slot_attnum, &mut isnull);
                if isnull {
                    continue;
                }
                let state = if dirty.xmin != pg_sys::InvalidTransactionId || dirty.xmax != pg_sys::InvalidTransactionId {
                    RowState::Held
                } else if needs.is_some_and(|delta| !self.covers(delta)) {
                    RowState::Short
                } else {
                    RowState::Free
                };
                rows.push(KeyRow { slot: slot.value() as i32, tid: (*self.slot).tts_tid, state });
            }
            pg_sys::index_endscan(scan);
        }
        rows
    }

    /// Finds the row of `keys` (a dirty-snapshot probe of the unique index) and locks it. With
    /// `Wait::Skip`, a row another transaction holds is `Busy` without a lock attempt; with `needs` (a
    /// delta), a row that does not cover it is not locked (`Busy`): a lock taken is a row used.
    fn lock(&mut self, keys: &[Option<pg_sys::Datum>], wait: Wait, needs: Option<pg_sys::Datum>) -> Locked {
        let mut scankeys = self.scankeys(keys, self.target.index_keys.len());
        // SAFETY: the relations are open; the scan keys live through the scan.
        unsafe {
            let mut dirty: pg_sys::SnapshotData = std::mem::zeroed();
            dirty.snapshot_type = pg_sys::SnapshotType::SNAPSHOT_DIRTY;
            let scan = crate::pg_compat::index_beginscan(self.rel, self.index, &mut dirty, scankeys.len() as i32);
            pg_sys::index_rescan(scan, scankeys.as_mut_ptr(), scankeys.len() as i32, std::ptr::null_mut(), 0);
            let found = pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, self.slot);
            pg_sys::index_endscan(scan);
            if !found || dirty.xmin != pg_sys::InvalidTransactionId {
                return Locked::Absent;
            }
            if wait == Wait::Skip && dirty.xmax != pg_sys::InvalidTransactionId {
                return Locked::Busy;
            }
            if needs.is_some_and(|delta| !self.covers(delta)) {
                return Locked::Busy;
            }
            self.lock_tid((*self.slot).tts_tid, wait)
        }
    }

    /// Locks the row version at `tid` (the newest, unless `Changed`); its contents land in the slot.
    fn lock_tid(&mut self, tid: pg_sys::ItemPointerData, wait: Wait) -> Locked {
        let mut tid = tid;
        // SAFETY: the relations are open; `tid` is a row of the balance table.
        unsafe {
            let mut failure: pg_sys::TM_FailureData = std::mem::zeroed();
            let policy = match wait {
                Wait::Block => pg_sys::LockWaitPolicy::LockWaitBlock,
                Wait::Skip => pg_sys::LockWaitPolicy::LockWaitSkip,
            };
            match pg_sys::table_tuple_lock(
                self.rel,
                &mut tid,
                pg_sys::GetActiveSnapshot(),
                self.slot,
                pg_sys::GetCurrentCommandId(false),
                pg_sys::LockTupleMode::LockTupleNoKeyExclusive,
                policy,
                0,
                &mut failure,
            ) {
                pg_sys::TM_Result::TM_Ok => Locked::Row,
                pg_sys::TM_Result::TM_Updated | pg_sys::TM_Result::TM_Deleted => Locked::Changed,
                _ => Locked::Busy,
            }
        }
    }

    /// Whether the row in the slot has a qty that `delta` leaves ≥ 0.
    ///
    /// # Safety
    /// The slot holds a row of the balance table; `delta` is a numeric.
    unsafe fn covers(&self, delta: pg_sys::Datum) -> bool {
        unsafe {
            let mut isnull = false;
            let qty = pg_sys::slot_getattr(self.slot, self.target.qty_attnum, &mut isnull);
            if isnull {
                return false;
            }
            let qty = pg_sys::pg_detoast_datum(qty.cast_mut_ptr());
            let after = pg_sys::numeric_add_opt_error(qty.cast(), delta.cast_mut_ptr(), std::ptr::null_mut());
            !numeric::is_negative(pg_sys::Datum::from(after))
        }
    }

    /// Writes the locked row's new version; whether its qty is now below zero.
    fn update(&mut self, delta: pg_sys::Datum, max_id: Option<i64>) -> Option<bool> {
        // SAFETY: the slot holds the row this transaction locked.
        unsafe { update_locked(self.target, self.rel, self.slot, delta, max_id) }
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        // An error unwinding through here: the (sub)transaction's abort releases them.
        if std::thread::panicking() {
            return;
        }
        // SAFETY: resources opened by `open`; nothing refers to them after this.
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            pg_sys::index_close(self.index, pg_sys::NoLock as i32);
            pg_sys::table_close(self.rel, pg_sys::NoLock as i32);
        }
    }
}

/// Writes the new version of the locked row in `slot`; returns whether its qty is now below zero.
unsafe fn update_locked(
    target: &DirectTarget,
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    delta: pg_sys::Datum,
    max_id: Option<i64>,
) -> Option<bool> {
    unsafe {
        let mut isnull = false;
        let old_qty = pg_sys::slot_getattr(slot, target.qty_attnum, &mut isnull);
        if isnull {
            // `plans::check` requires NOT NULL; a NULL here is the SQL upsert's to meet (and refuse).
            return None;
        }
        let old_qty = pg_sys::pg_detoast_datum(old_qty.cast_mut_ptr());
        let new_qty = pg_sys::numeric_add_opt_error(old_qty.cast(), delta.cast_mut_ptr(), std::ptr::null_mut());
        let natts = (*(*rel).rd_att).natts as usize;
        let mut values = vec![pg_sys::Datum::from(0); natts];
        let mut nulls = vec![false; natts];
        let mut replace = vec![false; natts];
        let mut set = |attnum: i32, value: pg_sys::Datum| {
            values[attnum as usize - 1] = value;
            replace[attnum as usize - 1] = true;
        };
        set(target.qty_attnum, pg_sys::Datum::from(new_qty));
        if let (Some(attnum), Some(id)) = (target.last_id_attnum, max_id) {
            let old = pg_sys::slot_getattr(slot, attnum, &mut isnull);
            let old = if isnull { i64::MIN } else { old.value() as i64 };
            set(attnum, pg_sys::Datum::from(old.max(id)));
        }
        set(target.updated_at_attnum, pg_sys::Datum::from(pg_sys::GetCurrentTransactionStartTimestamp()));
        let mut should_free = false;
        let old = pg_sys::ExecFetchSlotHeapTuple(slot, false, &mut should_free);
        let new = pg_sys::heap_modify_tuple(old, (*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr(), replace.as_mut_ptr());
        let mut otid = (*old).t_self;
        crate::pg_compat::simple_heap_update(rel, &mut otid, new);
        // A HOT update needs no new index entries; otherwise every index gets one (plain column indexes
        // only, which `target_for` checked).
        if (*(*new).t_data).t_infomask2 & pg_sys::HEAP_ONLY_TUPLE as u16 == 0 {
            insert_index_entries(rel, new);
        }
        Some(numeric::is_negative(pg_sys::Datum::from(new_qty)))
    }
}

unsafe fn insert_index_entries(rel: pg_sys::Relation, tuple: pg_sys::HeapTuple) {
    unsafe {
        let indexes = pgrx::PgList::<pg_sys::Oid>::from_pg(pg_sys::RelationGetIndexList(rel));
        let natts = (*(*rel).rd_att).natts as usize;
        let mut all_values = vec![pg_sys::Datum::from(0); natts];
        let mut all_nulls = vec![false; natts];
        pg_sys::heap_deform_tuple(tuple, (*rel).rd_att, all_values.as_mut_ptr(), all_nulls.as_mut_ptr());
        for oid in indexes.iter_oid() {
            let index = pg_sys::index_open(oid, pg_sys::RowExclusiveLock as i32);
            let info = pg_sys::BuildIndexInfo(index);
            let n = (*info).ii_NumIndexAttrs as usize;
            let mut values = vec![pg_sys::Datum::from(0); n];
            let mut nulls = vec![false; n];
            for i in 0..n {
                let attnum = (*info).ii_IndexAttrNumbers[i] as usize;
                values[i] = all_values[attnum - 1];
                nulls[i] = all_nulls[attnum - 1];
            }
            let check = if (*info).ii_Unique { pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES } else { pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO };
            pg_sys::index_insert(index, values.as_mut_ptr(), nulls.as_mut_ptr(), &mut (*tuple).t_self, rel, check, false, info);
            pg_sys::index_close(index, pg_sys::NoLock as i32);
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// A BRIN index on a balance table keeps it off the direct write: since PostgreSQL 16 an update of a
    /// BRIN-indexed column can be heap-only and still need a BRIN entry, which the direct write does not
    /// make (on 18 the index then found no row). The SQL upsert keeps the index right.
    #[pg_test]
    fn a_summarizing_index_keeps_the_balance_table_off_the_direct_write() {
        Spi::run(
            "CREATE TABLE public.brin_led (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku text NOT NULL, qty numeric NOT NULL);
             SELECT inventory.track_balances('public.brin_led', 'public.brin_bal', ARRAY['sku'], 'qty');
             INSERT INTO public.brin_led (sku, qty) VALUES ('a', 5);",
        )
        .unwrap();
        let balance = Spi::get_one::<pg_sys::Oid>("SELECT 'public.brin_bal'::regclass::oid").unwrap().unwrap();
        let keys = vec!["sku".to_string()];
        assert!(super::target_for(balance, &keys, true).is_some(), "a plain balance table takes the direct write");
        Spi::run("CREATE INDEX brin_bal_qty ON public.brin_bal USING brin (qty)").unwrap();
        assert!(super::target_for(balance, &keys, true).is_none(), "a BRIN index disqualifies it");
        Spi::run("INSERT INTO public.brin_led (sku, qty) VALUES ('a', 95)").unwrap();
        Spi::run("SET LOCAL enable_seqscan = off").unwrap();
        // No sequential scan: the only index that can answer `qty = 100` is the BRIN one.
        let found = Spi::get_one::<i64>("SELECT count(*) FROM public.brin_bal WHERE qty = 100").unwrap();
        assert_eq!(found, Some(1), "the BRIN index finds the balance");
    }
}
