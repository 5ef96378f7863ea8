//! Running on Citus (SPEC §9, issue 17): what the extension does differently when the database has the
//! `citus` extension, kept in one place.
//!
//! - The tenant reaches the shards only through `SET LOCAL` (Citus forwards it, with
//!   `citus.propagate_set_commands = 'local'`, to every worker connection of the transaction), never
//!   through `set_config`: `set_local_tenant` issues the statement itself.
//! - A tenant switch inside a subtransaction is refused (`refuses_subtransaction_switch`): Citus forgets a
//!   `SET LOCAL` made in a savepoint that is then released, so the shards would go on reading the old
//!   tenant's rows while the coordinator names the new one.
//! - The balance triggers fire on shards (`ledger_1020xx`), not on the distributed table; `shard_of` finds
//!   the distributed table a shard belongs to and `colocated_shard` the shard of another co-located table
//!   that holds the same tenants, so that the triggers write the balance shard next to the ledger shard
//!   (a plain local table: no distributed query from a shard, which Citus refuses).

use crate::spi_util::{exec, rows};
use crate::sql_text::literal;
use pgrx::prelude::*;

/// Whether the `citus` extension is installed in this database. An index lookup in pg_extension; callers
/// that run per row cache what they derive from it.
pub fn installed() -> bool {
    // SAFETY: a catalog lookup; callers are inside a transaction (SQL functions, triggers).
    unsafe { pg_sys::IsTransactionState() && pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// Makes `org_id` the transaction's tenant on the coordinator and on every shard the transaction
/// reaches: `SET LOCAL` through SPI, which Citus's utility hook sees and forwards, after switching
/// that forwarding on for the transaction (it is `none` by default). The value is a UUID's text,
/// quoted through the one literal path all the same.
pub fn set_local_tenant(org_id: &str) {
    // Refused here, before Citus forwards the statement to the workers (which would refuse it too, as a
    // broken connection rather than this error).
    let current = crate::guc::parse_org_id(&crate::guc::text_of(&crate::guc::ORG_ID)).ok().flatten();
    if current != crate::guc::parse_org_id(org_id).ok().flatten() && refuses_subtransaction_switch() {
        crate::errors::raise_detailed(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            SWITCH_REFUSED,
            SWITCH_REFUSED_DETAIL,
            SWITCH_REFUSED_HINT,
        )
    }
    exec("SET LOCAL citus.propagate_set_commands = 'local'");
    exec(&format!("SET LOCAL app.org_id = {}", literal(org_id)));
}

/// The 0A000 a tenant switch inside a subtransaction gets on Citus (from `set_org` and from `SET`).
pub const SWITCH_REFUSED: &str = "on Citus the tenant cannot change inside a subtransaction";
pub const SWITCH_REFUSED_DETAIL: &str =
    "Citus drops a SET LOCAL made inside a savepoint once the savepoint is released, so the shards would keep the previous tenant.";
pub const SWITCH_REFUSED_HINT: &str =
    "Set the tenant at the start of the transaction, before any SAVEPOINT or PL/pgSQL block with an EXCEPTION clause.";

/// Whether changing the tenant now must be refused: Citus is installed and a subtransaction is open
/// (a savepoint, a PL/pgSQL block with EXCEPTION). Called by the setting's check hook only when the value
/// would change, so it runs rarely; outside a transaction there is no subtransaction and no lookup.
pub fn refuses_subtransaction_switch() -> bool {
    // SAFETY: reads transaction state; the catalog lookup only runs inside a transaction.
    let in_subtransaction = unsafe { pg_sys::GetCurrentTransactionNestLevel() > 1 };
    in_subtransaction && installed()
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
          WHERE c.oid = $1 AND pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid)) = c.oid",
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
        "SELECT pg_catalog.to_regclass(pg_catalog.shard_name(o.logicalrelid, o.shardid))::oid,
                pg_catalog.to_regclass(pg_catalog.shard_name(o.logicalrelid, o.shardid))::text
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
    installed()
        && crate::spi_util::first::<bool>(
            "SELECT true FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1 AND partmethod = 'h'",
            &[relid.into()],
        )
        .unwrap_or(false)
}
