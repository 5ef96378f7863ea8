//! Running on Citus (SPEC §9, issue 17): what the extension does differently when the database has the
//! `citus` extension, kept in one place.
//!
//! - The tenant reaches the shards only through a `SET LOCAL` statement (Citus forwards it, with
//!   `citus.propagate_set_commands = 'local'`, to every worker connection of the transaction), never
//!   through `set_config`: `set_local_tenant` issues the statement itself, and the utility hook
//!   (`tenant_statements`) switches the forwarding on for any `SET LOCAL app.org_id`.
//! - What the shards would not follow is refused with 0A000 (`tenant_change_refusal`): a change inside a
//!   subtransaction (Citus forgets a `SET LOCAL` made in a savepoint that is then released, so the shards
//!   would go on reading the old tenant's rows while the coordinator names the new one), and a change by
//!   `set_config`, a session-level `SET` or a function's `SET` clause (the coordinator's alone).
//! - The balance triggers fire on shards (`ledger_1020xx`), not on the distributed table; `shard_of` finds
//!   the distributed table a shard belongs to and `colocated_shard` the shard of another co-located table
//!   that holds the same tenants, so that the triggers write the balance shard next to the ledger shard
//!   (a plain local table: no distributed query from a shard, which Citus refuses).

use crate::spi_util::{exec, rows};
use crate::sql_text::literal;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::{c_char, CStr};

/// Whether the `citus` extension is installed in this database. An index lookup in pg_extension; callers
/// that run per row cache what they derive from it.
pub fn installed() -> bool {
    // SAFETY: a catalog lookup; callers are inside a transaction (SQL functions, triggers).
    unsafe { pg_sys::IsTransactionState() && pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// Makes `org_id` the transaction's tenant on the coordinator and on every shard the transaction
/// reaches: `SET LOCAL` through SPI, which goes through the utility hooks like a client's (ours switches
/// Citus's forwarding on, Citus's forwards it). The value is a UUID's text, quoted through the one
/// literal path all the same.
pub fn set_local_tenant(org_id: &str) {
    // Refused here, before Citus forwards the statement to the workers.
    let current = crate::guc::parse_org_id(&crate::guc::text_of(&crate::guc::ORG_ID)).ok().flatten();
    if current != crate::guc::parse_org_id(org_id).ok().flatten() {
        refuse_in_subtransaction();
    }
    exec(&format!("SET LOCAL app.org_id = {}", literal(org_id)));
}

/// Why a change of `app.org_id` is refused on a Citus coordinator (0A000): the shards would not follow it.
pub struct Refusal {
    pub message: &'static str,
    pub detail: &'static str,
    pub hint: &'static str,
}

/// In a subtransaction: Citus forgets a `SET LOCAL` made inside a savepoint once it is released (and
/// sends the older tenant to connections it opens later), so the shards would keep the previous tenant.
pub static IN_SUBTRANSACTION: Refusal = Refusal {
    message: "on Citus the tenant cannot change inside a subtransaction",
    detail: "Citus drops a SET LOCAL made inside a savepoint once the savepoint is released, so the shards would keep the previous tenant.",
    hint: "Set the tenant at the start of the transaction, before any SAVEPOINT or PL/pgSQL block with an EXCEPTION clause.",
};

/// Not a `SET LOCAL` statement: `set_config`, a session-level `SET`, a function's `SET` clause change the
/// coordinator only; Citus forwards `SET LOCAL` statements alone.
pub static NOT_FORWARDED: Refusal = Refusal {
    message: "on Citus the tenant is set with SET LOCAL app.org_id or inventory.set_org",
    detail: "set_config, a session-level SET and a function's SET clause change the coordinator only: the shards would keep the tenant they have.",
    hint: "SET LOCAL app.org_id = '<organization uuid>' (Citus forwards it to the shards) or SELECT inventory.set_org(...).",
};

/// Whether a change of `app.org_id` from `source` must be refused here, and why. Nothing is refused
/// without Citus, in a session a Citus node opened (`from_coordinator`), or in a parallel worker (which
/// copies its leader's settings). Called by the setting's check hook only when the value would change.
pub fn tenant_change_refusal(source: pg_sys::GucSource::Type) -> Option<&'static Refusal> {
    // SAFETY: reads transaction state and a backend global.
    let (nest_level, parallel_worker) = unsafe { (pg_sys::GetCurrentTransactionNestLevel(), pg_sys::ParallelWorkerNumber >= 0) };
    let interactive = source == pg_sys::GucSource::PGC_S_SESSION;
    if parallel_worker || !(nest_level > 1 || interactive) || !installed() || from_coordinator() {
        return None;
    }
    if nest_level > 1 {
        Some(&IN_SUBTRANSACTION)
    } else if !SET_LOCAL_STATEMENT.with(|s| s.get()) {
        // SAFETY: reads a process-local static set once in _PG_init.
        Some(if unsafe { PREVIOUS_PROCESS_UTILITY_SET } { &NOT_FORWARDED } else { &LOADED_BEFORE_CITUS })
    } else {
        None
    }
}

/// The library was loaded before Citus, so it saw no Citus to put its hook in front of: no `SET LOCAL
/// app.org_id` is forwarded, and each is refused rather than leave the shards without a tenant.
pub static LOADED_BEFORE_CITUS: Refusal = Refusal {
    message: "on Citus inventory_ext must be loaded after citus",
    detail: "shared_preload_libraries names inventory_ext before citus, so the tenant cannot be forwarded to the shards.",
    hint: "Set shared_preload_libraries = 'citus,inventory_ext' (citus first) and restart PostgreSQL.",
};

fn raise(refusal: &Refusal) -> ! {
    crate::errors::raise_detailed(
        pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        refusal.message,
        refusal.detail,
        refusal.hint,
    )
}

/// Raises `IN_SUBTRANSACTION` when a tenant change would be refused for being inside a subtransaction
/// (for changes PostgreSQL runs no check hook for, and before Citus forwards one).
fn refuse_in_subtransaction() {
    if let Some(refusal) = tenant_change_refusal(pg_sys::GucSource::PGC_S_SESSION).filter(|r| std::ptr::eq(*r, &IN_SUBTRANSACTION)) {
        raise(refusal)
    }
}

/// Whether this session is one Citus opened from the coordinator on a worker: there a tenant switch or
/// a trigger change only carries out what the coordinator decided and checked; refusing it again would
/// turn the coordinator's clean error into a broken connection, or refuse, one by one, the trigger changes
/// of a track_balances the coordinator made as a whole. Citus names these sessions `citus_internal
/// gpid=…`; a client can call itself that too, so this holds only where Citus is installed and this
/// node is not the coordinator (docs/SECURITY.md "On Citus" says what such a client gets).
pub fn from_coordinator() -> bool {
    // SAFETY: reads a setting's current value (a copy is made below).
    let name = unsafe { pg_sys::GetConfigOption(c"application_name".as_ptr(), true, false) };
    // SAFETY: a NUL-terminated string PostgreSQL owns, read at once.
    let internal = !name.is_null() && unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes().starts_with(b"citus_internal");
    internal
        && installed()
        && crate::spi_util::first::<bool>("SELECT groupid <> 0 FROM pg_catalog.pg_dist_local_group", &[]).unwrap_or(false)
}

thread_local! {
    /// True while a `SET LOCAL app.org_id = …` statement runs (`tenant_statements`): the one way a new
    /// tenant reaches the shards, so the check hook lets it through.
    static SET_LOCAL_STATEMENT: Cell<bool> = const { Cell::new(false) };
}

static mut PREVIOUS_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
/// Whether `install_utility_hook` found Citus loaded and put `tenant_statements` in front of it.
static mut PREVIOUS_PROCESS_UTILITY_SET: bool = false;

/// Installs `tenant_statements` in front of Citus's utility hook, when Citus is loaded: it must come first
/// in shared_preload_libraries, so its settings exist by the time this library's `_PG_init` runs. Without
/// Citus no hook is installed (nothing changes for a single server).
pub fn install_utility_hook() {
    // SAFETY: called once per process from _PG_init; hooks are process-local.
    unsafe {
        if pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false).is_null() {
            return;
        }
        PREVIOUS_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        PREVIOUS_PROCESS_UTILITY_SET = true;
        pg_sys::ProcessUtility_hook = Some(tenant_statements);
    }
}

/// Transaction callback (registered in `_PG_init`): a statement that failed never cleared its mark.
#[pg_guard]
pub unsafe extern "C-unwind" fn transaction_event(_event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    SET_LOCAL_STATEMENT.with(|s| s.set(false));
}

/// Subtransaction callback: the same, for a failure caught by a savepoint or an EXCEPTION block.
#[pg_guard]
pub unsafe extern "C-unwind" fn subtransaction_event(
    _event: pg_sys::SubXactEvent::Type,
    _mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    SET_LOCAL_STATEMENT.with(|s| s.set(false));
}

/// What a utility statement does to `app.org_id`.
#[derive(PartialEq, Clone, Copy)]
enum TenantStatement {
    /// `SET LOCAL app.org_id = …`: forwarded to the shards by Citus.
    SetLocal,
    /// `RESET app.org_id`, `SET [LOCAL] app.org_id TO DEFAULT`, `RESET ALL`: no check hook runs for them.
    Clears,
}

/// # Safety
/// `node` is null or a valid parse tree node.
unsafe fn tenant_statement(node: *mut pg_sys::Node) -> Option<TenantStatement> {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_VariableSetStmt {
        return None;
    }
    let set = &*(node as *mut pg_sys::VariableSetStmt);
    let names_tenant = !set.name.is_null() && CStr::from_ptr(set.name).to_bytes().eq_ignore_ascii_case(crate::guc::ORG_ID_NAME.to_bytes());
    match set.kind {
        pg_sys::VariableSetKind::VAR_SET_VALUE if names_tenant && set.is_local => Some(TenantStatement::SetLocal),
        pg_sys::VariableSetKind::VAR_SET_DEFAULT | pg_sys::VariableSetKind::VAR_RESET if names_tenant => Some(TenantStatement::Clears),
        pg_sys::VariableSetKind::VAR_RESET_ALL => Some(TenantStatement::Clears),
        _ => None,
    }
}

/// The utility hook: a statement that clears the tenant inside a subtransaction is refused on Citus
/// (PostgreSQL runs no check hook for it); a `SET LOCAL app.org_id` is marked for the check hook. Then
/// the previous hook (Citus's, which forwards the statement) or PostgreSQL's own.
#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn tenant_statements(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let statement = if pstmt.is_null() { None } else { tenant_statement((*pstmt).utilityStmt) };
    if statement == Some(TenantStatement::Clears) && tenant_is_set() {
        refuse_in_subtransaction();
    }
    let set_local = statement == Some(TenantStatement::SetLocal);
    if set_local && installed() && !from_coordinator() {
        forward_set_local();
    }
    // The previous hook is called through its pointer, not a pgrx-guarded binding: an ERROR passes
    // through this frame (which holds nothing to drop) as PostgreSQL's own, with its CONTEXT lines. The
    // mark is cleared after the statement, or by the (sub)transaction callbacks when it fails.
    SET_LOCAL_STATEMENT.with(|s| s.set(set_local));
    if let Some(previous) = PREVIOUS_PROCESS_UTILITY {
        previous(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    } else {
        standard_process_utility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    }
    SET_LOCAL_STATEMENT.with(|s| s.set(false));
}

extern "C-unwind" {
    /// PostgreSQL's own, unguarded (see `tenant_statements`); only reached if Citus installed no hook.
    #[link_name = "standard_ProcessUtility"]
    fn standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

/// `citus.propagate_set_commands = 'local'` until the end of the transaction, so that Citus forwards the
/// `SET LOCAL app.org_id` about to run (its default, `none`, would leave the shards without a tenant: every
/// read empty, every write refused, and nothing said).
fn forward_set_local() {
    crate::guc::set_local(c"citus.propagate_set_commands", c"local");
}

fn tenant_is_set() -> bool {
    !crate::guc::text_of(&crate::guc::ORG_ID).is_empty()
}

/// A shard of a distributed table: the table, and the shard's place among its table's shards.
pub struct Shard {
    pub table: pg_sys::Oid,
    pub shard_id: i64,
}

/// The distributed table `relid` is a shard of, when Citus is installed and it is one. A shard is named
/// `<table>_<shard id>` in its table's schema; the name alone could be anyone's table, so the shard id
/// it ends with must be in Citus's metadata with exactly this relation as that shard.
pub fn shard_of(relid: pg_sys::Oid) -> Option<Shard> {
    if !installed() {
        return None;
    }
    rows(
        "SELECT s.logicalrelid::oid, s.shardid
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_dist_shard s ON s.shardid = pg_catalog.substring(c.relname, '_(\\d+)$')::bigint
          WHERE c.oid = $1 AND pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid, false)) = c.oid",
        &[relid.into()],
        |r| {
            Ok(Shard {
                table: crate::spi_util::oid_at(r, 1)?,
                shard_id: r.get::<i64>(2)?.unwrap_or_default(),
            })
        },
    )
    .pop()
}

/// The shard of `table` that holds the same hash range as `shard` (its co-located shard: same node,
/// same tenants), with its name; `None` when `table` is not co-located with the shard's table.
pub fn colocated_shard(shard: &Shard, table: pg_sys::Oid) -> Option<(pg_sys::Oid, String)> {
    rows(
        "SELECT pg_catalog.to_regclass(pg_catalog.shard_name(o.logicalrelid, o.shardid, false))::oid,
                pg_catalog.to_regclass(pg_catalog.shard_name(o.logicalrelid, o.shardid, false))::text
           FROM pg_catalog.pg_dist_shard s
           JOIN pg_catalog.pg_dist_partition sp ON sp.logicalrelid = s.logicalrelid
           JOIN pg_catalog.pg_dist_partition op ON op.logicalrelid = $2 AND op.colocationid = sp.colocationid
           JOIN pg_catalog.pg_dist_shard o ON o.logicalrelid = $2 AND o.shardminvalue = s.shardminvalue
          WHERE s.shardid = $1",
        &[shard.shard_id.into(), table.into()],
        |r| Ok((crate::spi_util::oid_at(r, 1)?, crate::spi_util::text(r, 2)?)),
    )
    .pop()
    .filter(|(oid, _)| *oid != pg_sys::InvalidOid)
}

/// Whether `relid` is a Citus distributed table (hash-distributed: tenants spread over shards).
pub fn is_distributed(relid: pg_sys::Oid) -> bool {
    installed() && distribution_column(relid).is_some()
}

/// On Citus, `citus.multi_shard_modify_mode = 'sequential'` for the rest of the transaction: a
/// transaction that reads distributed tables and then writes a reference table they refer to (import_org
/// checks the tenant's ids, then inserts its organization; enable_tenant_isolation adds a key to
/// organizations) must use one connection per node.
pub fn one_connection_per_node() {
    if installed() {
        crate::guc::set_local(c"citus.multi_shard_modify_mode", c"sequential");
    }
}

/// The distribution column of a hash-distributed table, by name.
pub fn distribution_column(relid: pg_sys::Oid) -> Option<String> {
    crate::spi_util::one_text(
        "SELECT pg_catalog.column_to_column_name(logicalrelid, partkey)
           FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1 AND partmethod = 'h'",
        &[relid.into()],
    )
}

/// A tracked ledger on Citus is distributed by its org column (enable_tenant_isolation first), so that
/// each tenant's postings and balances share a shard; anything else is refused (0A000) before any change.
pub fn require_tenant_distribution(ledger: pg_sys::Oid, ledger_name: &str, org_column: Option<&str>) {
    let by = distribution_column(ledger);
    if org_column.is_none() || by.as_deref() != org_column {
        crate::errors::raise(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{ledger_name} is distributed by {}, not by a tenant column made with enable_tenant_isolation",
                by.as_deref().map(crate::sql_text::ident).unwrap_or_default()
            ),
            "On Citus: distribute the ledger by its org column, call inventory.enable_tenant_isolation on it, then \
             inventory.track_balances (docs/SCALE_OUT.md).",
        )
    }
}

/// A distributed ledger's balance table must exist, distributed beside it, before track_balances: the
/// workers take the ledger's registry row over connections of their own, which see only committed
/// tables, so a balance table made in the same transaction would not be found there. Refused (55000)
/// with the statements that make it, in the shape track_balances would have made.
pub fn balance_table_first(balance_table: &str, ledger_name: &str, keys: &[String], key_types: &[String], with_id: bool) -> ! {
    let columns = keys.iter().zip(key_types).map(|(k, t)| format!("{} {t}", crate::sql_text::ident(k))).collect::<Vec<_>>().join(", ");
    let last_id = if with_id { "last_ledger_id bigint NOT NULL, " } else { "" };
    crate::errors::raise(
        pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("on Citus the balance table {balance_table} must exist, distributed beside {ledger_name}, before track_balances"),
        format!(
            "Run, then call track_balances again: CREATE TABLE {balance_table} ({columns}, qty numeric NOT NULL, {last_id}updated_at timestamptz NOT NULL, \
             UNIQUE NULLS NOT DISTINCT ({})); SELECT create_distributed_table({}, {}, colocate_with => {});",
            crate::sql_text::ident_list("", keys),
            literal(balance_table),
            literal(&keys[0]),
            literal(ledger_name)
        ),
    )
}

/// The balance table of a distributed ledger: distributed by the same column, co-located with it (the
/// triggers on a ledger shard write the balance shard beside it), in an earlier transaction (see
/// `balance_table_first`); anything else is refused (0A000) before any change.
pub fn require_beside(balance: pg_sys::Oid, balance_name: &str, ledger: pg_sys::Oid, ledger_name: &str) {
    let Some(org) = distribution_column(ledger) else { return };
    let colocated = crate::spi_util::first::<bool>(
        "SELECT b.colocationid = l.colocationid AND pg_catalog.column_to_column_name(b.logicalrelid, b.partkey) = $3
           FROM pg_catalog.pg_dist_partition b, pg_catalog.pg_dist_partition l
          WHERE b.logicalrelid = $1 AND l.logicalrelid = $2",
        &[balance.into(), ledger.into(), org.as_str().into()],
    );
    if colocated != Some(true) {
        crate::errors::raise(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("balance table {balance_name} is not distributed by {} co-located with {ledger_name}", crate::sql_text::ident(&org)),
            format!(
                "SELECT create_distributed_table({}, {}, colocate_with => {}); commit, then call track_balances again.",
                literal(balance_name),
                literal(&org),
                literal(ledger_name)
            ),
        )
    }
}

/// Triggers on distributed tables, for this transaction (Citus refuses CREATE TRIGGER on them without).
pub fn allow_triggers() {
    crate::guc::set_local(c"citus.enable_unsafe_triggers", c"on");
}

/// The tracked-ledger registry of distributed ledgers copied to every worker (sql/citus.sql).
pub fn sync_registry() {
    exec("SELECT inventory.sync_registry_to_workers()");
}

/// track_balances and untrack_balances of a distributed ledger copy the registry to
/// the workers over connections of their own, which commit at once: they run on their own (not in a
/// transaction block, 25001), so that nothing after the copy can roll the coordinator back while the
/// workers keep it. The copy is their last step; only a failing COMMIT could still part them, and then
/// `SELECT inventory.sync_registry_to_workers()` copies the registry again.
pub fn refuse_transaction_block(what: &str) {
    // SAFETY: reads the transaction state.
    if unsafe { pg_sys::IsTransactionBlock() } {
        crate::errors::raise(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("on Citus {what} of a distributed ledger cannot run inside a transaction block"),
            "Run it on its own: the workers' copy of the registry commits at once (docs/SCALE_OUT.md).",
        )
    }
}
