//! Reconciliation (SPEC §7): compares every tracked ledger's balances with the sums of its rows,
//! corrects small differences, flags the rest, records the run and tells listeners.
//!
//! Why it is safe while postings continue:
//! - One statement, one snapshot. The survey reads the ledger and its balance table in a single query
//!   (a `UNION ALL` of both, grouped by key: one pass over the ledger), so it sees every committed
//!   posting on both sides and no in-flight one on either: the balance trigger writes a posting's
//!   balance in the posting's own transaction, so an open transaction cannot look like drift.
//! - Corrections apply the difference, never the surveyed absolute value. Legitimate postings change a
//!   ledger sum and its balance by the same amount, so the drift measured in the snapshot is still the
//!   drift later; `qty = qty - variance` on the newest row version keeps every posting that committed
//!   since, and waits for (then keeps) one that is in flight.
//! - Lock order. The rows to correct are locked first, sorted by key, as the balance trigger locks them,
//!   so a reconcile and multi-row postings do not deadlock each other. Orphan rows are deleted only if
//!   their quantity is still the surveyed one (re-checked under that lock), else corrected by difference.
//! - Reconciles and `rebuild_balances` of one ledger run one at a time (its registry row, locked
//!   `Registered::try_lock_for_maintenance`): both rewrite balances outside the trigger, and two
//!   corrections of the same drift would apply it twice. Postings never take that lock.
//! - Each ledger in a subtransaction of its own (`maintenance::in_subtransaction`): a ledger that is
//!   busy beyond `inventory.maintenance_lock_timeout` is skipped, one whose tables are broken fails,
//!   and the run says which in `detail` while it reconciles the others.
//! Run it in READ COMMITTED (pg_cron does). Under REPEATABLE READ a correction that meets a concurrent
//! posting fails with a serialization error instead, and loses nothing either.

use crate::balances::{not_tracked, registered, Registered};
use crate::maintenance;
use crate::trust;
use crate::errors;
use crate::spi_util::{exec_with_args, first, one_text, rows, rows_locking};
use crate::sql_types::RegClass;
use crate::tenant;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use crate::sql_text::{ident, literal};
use pgrx::{AnyNumeric, Uuid};

/// One key the survey found wrong, as text ready for `inventory.reconcile_findings`.
struct Finding {
    org: Option<String>,
    key: Option<String>,
    expected: Option<String>,
    actual: Option<String>,
    variance: Option<String>,
    kind: Option<String>,
    action: Option<String>,
    last_id: Option<String>,
}

#[derive(Default)]
struct Totals {
    ledgers: i64,
    keys_checked: i64,
    findings: i64,
    corrected: i64,
    flagged: i64,
}

impl Totals {
    fn status(&self) -> &'static str {
        match (self.findings, self.flagged) {
            (0, _) => "clean",
            (_, 0) => "corrected",
            _ => "flagged",
        }
    }
}

/// Runs a reconciliation and returns its run id; `inventory.reconcile` returns its findings.
/// SECURITY DEFINER: it reads every tenant's rows under forced row-level security and writes balances
/// no application role may write, so it decides itself what the caller may cover (`scope`).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn reconcile_run(
    only_ledger: default!(Option<RegClass>, "NULL"),
    only_org: default!(Option<Uuid>, "NULL"),
    tolerance: default!(Option<AnyNumeric>, "0.01"),
    auto_correct: default!(Option<bool>, "true"),
) -> i64 {
    crate::sql_version::require_current("inventory.reconcile_run");
    // NaN compares above every number in PostgreSQL, so it would pass ">= 0" and correct everything.
    let tolerance = match tolerance.map(|t| (t >= AnyNumeric::from(0), t.to_string())) {
        Some((true, t)) if !matches!(t.as_str(), "NaN" | "Infinity") => t,
        _ => errors::invalid_argument("tolerance must be a finite number, zero or more", "e.g. tolerance => 0.01"),
    };
    let Some(auto_correct) = auto_correct else {
        errors::invalid_argument("auto_correct must not be NULL", "Pass true or false.")
    };
    let org = scope(only_org);
    let ledgers = ledgers_to_check(only_ledger.map(|RegClass(oid)| oid), org);
    maintenance::with_bounded_waits(|| {
        let run_id = start_run(org, &tolerance, auto_correct);
        let mut totals = Totals::default();
        let mut failures = Vec::new();
        let mut skipped = Vec::new();
        let mut filling = Vec::new();
        for ledger in &ledgers {
            // Each ledger's maintenance lock and the relation locks its work needs, each waited for at
            // most inventory.maintenance_lock_timeout: a ledger that stays busy is skipped (and said
            // why), the others go on.
            let busy = match ledger.try_lock_for_maintenance() {
                false => Some(format!("another session is reconciling or rebuilding the balances of {}", ledger.ledger_name)),
                // Read under the lock: a fill's sums are still to come, so every balance would look short.
                true if ledger.fill_pending_now() => {
                    filling.push(ledger.ledger_name.clone());
                    continue;
                }
                true => ledger.try_lock_for_reconcile().map(|table| format!("another session holds a lock on {table}")),
            };
            if let Some(busy) = busy {
                skipped.push(busy);
                continue;
            }
            // Each ledger in a subtransaction: one whose tables were broken (dropped, refused by the
            // trust check, a trigger of the owner's that fails) is reported, and the others go on.
            let done = maintenance::in_subtransaction(|| {
                ledger.refuse_shared();
                let upkeep = trust::upkeep_for(ledger.ledger, ledger.balance_oid, ledger.org.is_some());
                let (keys_checked, findings) = trust::run(upkeep, || survey(ledger, upkeep != trust::Upkeep::Definer, org, &tolerance, auto_correct));
                record(run_id, ledger, &findings);
                let corrections: Vec<&Finding> = findings.iter().filter(|f| f.action.as_deref() == Some("corrected")).collect();
                if !corrections.is_empty() {
                    trust::run(upkeep, || correct_by_tenant(ledger, &corrections));
                }
                if ledger.slots > 1 && auto_correct {
                    trust::run(upkeep, || fold_quiet_keys(ledger, org));
                }
                (keys_checked, findings.len() as i64, corrections.len() as i64)
            });
            match done {
                Ok((keys_checked, findings, corrected)) => {
                    totals.ledgers += 1;
                    totals.keys_checked += keys_checked;
                    totals.findings += findings;
                    totals.corrected += corrected;
                }
                Err(message) => failures.push(format!("{}: {message}", ledger.ledger_name)),
            }
        }
        totals.flagged = totals.findings - totals.corrected;
        let skip_reason = (!skipped.is_empty()).then(|| {
            format!(
                "could not start within inventory.maintenance_lock_timeout ({} ms): {}",
                crate::guc::maintenance_lock_timeout_ms(),
                skipped.join("; ")
            )
        });
        let detail = skip_reason
            .into_iter()
            .chain((!filling.is_empty()).then(|| format!("not reconciled while track_balances_online fills their balances: {}", filling.join(", "))))
            .chain((!failures.is_empty()).then(|| format!("could not reconcile {}", failures.join("; "))))
            .collect::<Vec<_>>()
            .join("; ");
        let outcome = match (skipped.len() + filling.len() == ledgers.len(), detail.is_empty()) {
            (_, true) => None,
            (true, false) if failures.is_empty() => Some(Outcome::Skipped(&detail)),
            _ => Some(Outcome::Failed(&detail)),
        };
        finish_run(run_id, org, &totals, outcome);
        run_id
    })
}

/// Which tenant the run covers (`None`: all). Administrators (superusers, BYPASSRLS roles) choose with
/// `only_org`, else the tenant they set (`app.org_id`), else all tenants: the migration fallback
/// `inventory.default_org_id` never narrows an administrator's run (a pg_cron job during a migration
/// covers every tenant). Anyone else needs a tenant context and covers that tenant only.
fn scope(only_org: Option<Uuid>) -> Option<Uuid> {
    if tenant::caller_bypasses_rls() {
        return only_org.or_else(tenant::explicit);
    }
    let Some(current) = tenant::current() else { errors::no_tenant_context() };
    match only_org {
        Some(other) if other != current => errors::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "an application role can only reconcile its current tenant",
            "Leave only_org NULL (it defaults to the tenant context), or ask an administrator.",
        ),
        _ => Some(current),
    }
}

/// The tracked ledgers this run covers. For one tenant, only tenant-scoped ledgers; for a caller that
/// row-level security applies to, only ledgers it may read. Naming a ledger the run cannot cover is an error.
fn ledgers_to_check(only: Option<pg_sys::Oid>, org: Option<Uuid>) -> Vec<Registered> {
    let all = registered(only);
    if only.is_some() && all.is_empty() {
        not_tracked()
    }
    let admin = tenant::caller_bypasses_rls();
    let caller = tenant::caller();
    all.into_iter()
        .filter(|r| {
            if org.is_some() && r.org.is_none() {
                if only.is_some() {
                    errors::invalid_argument(
                        format!("{} is not tenant-scoped, so it cannot be reconciled for one organization", r.ledger_name),
                        "Call it with no tenant context and only_org NULL, as an administrator.",
                    )
                }
                return false;
            }
            let may_read = admin
                || one_text("SELECT has_table_privilege($1, $2, 'SELECT')::text", &[caller.into(), r.ledger.into()])
                    .as_deref()
                    == Some("true");
            if !may_read && only.is_some() {
                errors::raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied to reconcile {}", r.ledger_name),
                    "Reconciling a ledger needs SELECT on it.",
                )
            }
            may_read
        })
        .collect()
}

fn start_run(org: Option<Uuid>, tolerance: &str, auto_correct: bool) -> i64 {
    let caller = tenant::caller();
    first::<i64>(
        "INSERT INTO inventory.reconcile_runs (org_id, tolerance, auto_correct, run_by)
         VALUES ($1, $2::numeric, $3, (SELECT rolname FROM pg_roles WHERE oid = $4)) RETURNING id",
        &[org.into(), tolerance.into(), auto_correct.into(), caller.into()],
    )
    .unwrap_or_else(|| errors::no_row("the new run's id"))
}

/// How a run ended other than by checking every ledger: why it could not start, or which ledgers failed.
enum Outcome<'a> {
    Skipped(&'a str),
    Failed(&'a str),
}

/// Records the run's counts and status (and the reason, when it was skipped or failed); when anything
/// was flagged, skipped or failed, sends one NOTIFY (delivered at commit) whose payload is also kept in
/// the run row.
fn finish_run(run_id: i64, org: Option<Uuid>, totals: &Totals, outcome: Option<Outcome>) {
    let (status, reason) = match outcome {
        Some(Outcome::Skipped(reason)) => ("skipped", Some(reason)),
        Some(Outcome::Failed(reason)) => ("failed", Some(reason)),
        None => (totals.status(), None),
    };
    let payload = (totals.flagged > 0 || reason.is_some()).then(|| {
        let mut payload = serde_json::json!({
            "run_id": run_id,
            "org_id": org.map(|o| o.to_string()),
            "status": status,
            "ledgers": totals.ledgers,
            "keys_checked": totals.keys_checked,
            "findings": totals.findings,
            "corrected": totals.corrected,
            "flagged": totals.flagged,
        });
        if let Some(reason) = reason {
            payload["detail"] = reason.into();
        }
        payload.to_string()
    });
    exec_with_args(
        "UPDATE inventory.reconcile_runs
            SET finished_at = clock_timestamp(), ledgers = $2, keys_checked = $3, findings = $4,
                corrected = $5, flagged = $6, status = $7, notification = $8::jsonb, detail = $9
          WHERE id = $1",
        &[
            run_id.into(),
            (totals.ledgers as i32).into(),
            totals.keys_checked.into(),
            totals.findings.into(),
            totals.corrected.into(),
            totals.flagged.into(),
            status.into(),
            payload.clone().into(),
            reason.into(),
        ],
    );
    if let Some(payload) = payload {
        exec_with_args("SELECT pg_notify('inventory_reconcile', $1)", &[notice_for_listeners(run_id, org, status, &payload).into()]);
    }
}

/// What goes out on the channel. Any role may LISTEN on any channel, so a run of one tenant must not
/// tell other tenants' sessions whose it was or how big it is (the differential leak fuzzer found
/// exactly that): its notification carries the run id and status only, and the tenant reads the rest
/// from `inventory.reconcile_runs` (its own rows only). A run over all tenants names none, and sends
/// the whole payload with its counts.
fn notice_for_listeners(run_id: i64, org: Option<Uuid>, status: &str, payload: &str) -> String {
    match org {
        None => payload.to_string(),
        Some(_) => serde_json::json!({ "run_id": run_id, "status": status, "scope": "tenant" }).to_string(),
    }
}

/// A foreign key of the ledger whose columns are all balance keys: a balance row whose key no longer
/// finds the referenced row (an item or location deleted behind the ledger's back) is an orphan.
struct ForeignKey {
    table: String,
    columns: Vec<String>,
    referenced: Vec<String>,
}

/// In owner mode (`owner_mode`) only foreign keys to the owner's own tables count: the owner sees every
/// row of those (forced row-level security is lifted for it), but another owner's tenant table, such
/// as `inventory.organizations`, shows it only the session's tenant, and every other key would look
/// like an orphan.
fn foreign_keys(ledger: &Registered, owner_mode: bool) -> Vec<ForeignKey> {
    rows(
        "SELECT c.confrelid::regclass::text, array_agg(a.attname::text ORDER BY k.n), array_agg(f.attname::text ORDER BY k.n)
           FROM pg_constraint c
           CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(col, fcol, n)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
           JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = k.fcol
          WHERE c.conrelid = $1 AND c.contype = 'f'
            AND (NOT $2 OR (SELECT relowner FROM pg_class WHERE oid = c.confrelid) = (SELECT relowner FROM pg_class WHERE oid = $1))
          GROUP BY c.oid, c.confrelid ORDER BY c.oid",
        &[ledger.ledger.into(), owner_mode.into()],
        |r| {
            Ok(ForeignKey {
                table: r.get::<String>(1)?.unwrap_or_default(),
                columns: r.get::<Vec<String>>(2)?.unwrap_or_default(),
                referenced: r.get::<Vec<String>>(3)?.unwrap_or_default(),
            })
        },
    )
    .into_iter()
    .filter(|fk| fk.columns.iter().all(|c| ledger.keys.contains(c)))
    .collect()
}

/// The survey: one query, one snapshot, one pass over the ledger. Every key of the ledger or the
/// balance table is grouped once; the rows that come back are the findings (kind not NULL), plus the
/// first key when there is none, so that the key count always arrives.
fn survey_sql(ledger: &Registered, org_filter: bool, owner_mode: bool) -> String {
    let keys = ledger.key_list("");
    let filter = match (&ledger.org, org_filter) {
        (Some(org), true) => format!("WHERE {} = $3::uuid", ident(org)),
        _ => String::new(),
    };
    let id = ledger.id.as_deref().map(ident).unwrap_or_else(|| "NULL".into());
    let fks = foreign_keys(ledger, owner_mode);
    let joins: String = fks
        .iter()
        .enumerate()
        .map(|(n, fk)| {
            let on = fk
                .columns
                .iter()
                .zip(&fk.referenced)
                .map(|(c, f)| format!("r{n}.{} = k.{}", ident(f), ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(" LEFT JOIN {} AS r{n} ON {on}", fk.table)
        })
        .collect();
    // MATCH SIMPLE: a key with a NULL in a foreign key's columns refers to nothing.
    let dangling = fks
        .iter()
        .enumerate()
        .map(|(n, fk)| {
            let present = fk.columns.iter().map(|c| format!("k.{} IS NOT NULL", ident(c)));
            let missing = format!("r{n}.{} IS NULL", ident(&fk.referenced[0]));
            format!("({})", present.chain(std::iter::once(missing)).collect::<Vec<_>>().join(" AND "))
        })
        .chain(std::iter::once("false".to_string()))
        .collect::<Vec<_>>()
        .join(" OR ");
    let org_out = ledger.org.as_deref().map(|o| format!("{}::text", ident(o))).unwrap_or_else(|| "NULL".into());
    let key_json = ledger
        .keys
        .iter()
        .filter(|k| Some(*k) != ledger.org.as_ref())
        .map(|k| format!("{}, {}", literal(k), ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT keys_checked, {org_out}, jsonb_build_object({key_json})::text, expected::text, actual::text,
                variance::text, kind, CASE WHEN kind IS NULL THEN NULL
                     WHEN $2::boolean AND NOT dangling AND abs(variance) <= $1::numeric THEN 'corrected' ELSE 'flagged' END,
                last_id::text
           FROM (SELECT c.*, coalesce(actual, 0) - expected AS variance,
                        count(*) OVER () AS keys_checked, row_number() OVER () AS n
                   FROM (SELECT k.*, {dangling} AS dangling,
                                CASE WHEN k.balance_rows = 0 THEN 'missing'
                                     WHEN k.ledger_rows = 0 OR ({dangling}) THEN 'orphan'
                                     WHEN k.actual <> k.expected THEN 'drift' END AS kind
                           FROM (SELECT {keys}, coalesce(sum(l_qty), 0) AS expected, sum(b_qty) AS actual,
                                        max(l_id) AS last_id, count(*) FILTER (WHERE is_ledger) AS ledger_rows,
                                        count(*) FILTER (WHERE NOT is_ledger) AS balance_rows
                                   FROM (SELECT {keys}, {qty}::numeric AS l_qty, NULL::numeric AS b_qty,
                                                {id}::bigint AS l_id, true AS is_ledger
                                           FROM {ledger_name} {filter}
                                         UNION ALL
                                         SELECT {keys}, NULL, qty, NULL, false FROM {balance_name} {filter}) AS sides
                                  GROUP BY {keys}) AS k{joins}) AS c) AS w
          WHERE kind IS NOT NULL OR n = 1
          ORDER BY kind IS NULL, {keys}",
        qty = ident(&ledger.qty),
        ledger_name = ledger.ledger_name,
        balance_name = ledger.balance_name,
    )
}

fn survey(ledger: &Registered, owner_mode: bool, org: Option<Uuid>, tolerance: &str, auto_correct: bool) -> (i64, Vec<Finding>) {
    let mut args = vec![tolerance.into(), auto_correct.into()];
    let sql = survey_sql(ledger, org.is_some() && ledger.org.is_some(), owner_mode);
    if let (Some(org), Some(_)) = (org, &ledger.org) {
        args.push(org.into());
    }
    let mut keys_checked = 0;
    let findings = rows(&sql, &args, |r| {
        keys_checked = r.get::<i64>(1)?.unwrap_or_default();
        Ok(Finding {
            org: r.get(2)?,
            key: r.get(3)?,
            expected: r.get(4)?,
            actual: r.get(5)?,
            variance: r.get(6)?,
            kind: r.get(7)?,
            action: r.get(8)?,
            last_id: r.get(9)?,
        })
    });
    (keys_checked, findings.into_iter().filter(|f| f.kind.is_some()).collect())
}

fn record(run_id: i64, ledger: &Registered, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    let column = |f: fn(&Finding) -> &Option<String>| findings.iter().map(|x| f(x).clone()).collect::<Vec<_>>();
    exec_with_args(
        "INSERT INTO inventory.reconcile_findings
                (run_id, ledger, org_id, key, expected, actual, variance, kind, action, last_ledger_id)
         SELECT $1, $2::regclass, f.org::uuid, f.key::jsonb, f.expected::numeric, f.actual::numeric,
                f.variance::numeric, f.kind, f.action, f.last_id::bigint
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
                AS f(org, key, expected, actual, variance, kind, action, last_id)",
        &[
            run_id.into(),
            ledger.ledger.into(),
            column(|f| &f.org).into(),
            column(|f| &f.key).into(),
            column(|f| &f.expected).into(),
            column(|f| &f.actual).into(),
            column(|f| &f.variance).into(),
            column(|f| &f.kind).into(),
            column(|f| &f.action).into(),
            column(|f| &f.last_id).into(),
        ],
    );
}

/// Applies corrections: all in one go, or on Citus (a distributed balance table) tenant by tenant, each
/// tenant's statements saying `org = <tenant>` so that they run on its one shard: Citus refuses
/// `FOR UPDATE` across shards (SPEC §9: lock per tenant).
fn correct_by_tenant(ledger: &Registered, corrections: &[&Finding]) {
    let Some(org) = ledger.org.as_deref().filter(|_| crate::citus::is_distributed(ledger.balance_oid)) else {
        return correct(ledger, corrections, None);
    };
    let mut tenants: Vec<&str> = corrections.iter().filter_map(|f| f.org.as_deref()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for tenant in tenants {
        let theirs: Vec<&Finding> = corrections.iter().copied().filter(|f| f.org.as_deref() == Some(tenant)).collect();
        correct(ledger, &theirs, Some(format!(" AND b.{} = {}::uuid", ident(org), literal(tenant))));
    }
}

/// Applies corrections to one ledger's balances: lock (in key order), delete orphans that are still as
/// surveyed, apply the difference to drift and to orphans that changed, insert missing rows. The
/// corrections travel as parameters (not read back from inventory.reconcile_findings), so that this
/// can run as the tables' owner (`trust::run`), who may not read the run history.
fn correct(ledger: &Registered, corrections: &[&Finding], tenant_filter: Option<String>) {
    let tenant_filter = tenant_filter.unwrap_or_default();
    let org_part = ledger
        .org
        .as_deref()
        .map(|o| format!(" || jsonb_build_object({}, f.org::uuid)", literal(o)))
        .unwrap_or_default();
    let fix = format!(
        "WITH fix AS (
            SELECT f.kind, f.expected::numeric AS expected, f.actual::numeric AS actual,
                   f.variance::numeric AS variance, f.last_id::bigint AS last_ledger_id, {rec_keys}
              FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                   AS f(kind, key, org, expected, actual, variance, last_id)
             CROSS JOIN LATERAL jsonb_populate_record(NULL::{balance}, f.key::jsonb{org_part}) AS rec)",
        rec_keys = ledger.key_list("rec."),
        balance = ledger.balance_name,
    );
    let b_keys = ledger.key_list("b.");
    // Column by column with each type's own equality operator, named with its schema (this runs with a
    // pinned search_path, where an extension type's `=` would not be found), NULLs equal: a record's
    // text form is a STABLE function of the row, which Citus refuses in UPDATE and DELETE.
    let same_key = ledger
        .keys
        .iter()
        .map(|k| {
            let eq = crate::balances::plans::equality_operator(column_type(ledger.balance_oid, k));
            format!("(b.{k} {eq} fix.{k} OR (b.{k} IS NULL AND fix.{k} IS NULL))", k = ident(k))
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    // A slotted balance table (inventory.set_balance_slots): rows locked in slot order, and a corrected
    // key's locked rows folded into its first slot before the one-row corrections below.
    let slotted = ledger.slots > 1;
    let (slot_order, slot_key) = if slotted { (", b.slot", ", slot") } else { ("", "") };
    let (touch, touch_insert, id_col, id_val) = match &ledger.id {
        Some(_) => (
            ", updated_at = now()",
            // excluded's now(), not a call in the SET list: Citus refuses one there.
            ", last_ledger_id = greatest(b.last_ledger_id, excluded.last_ledger_id), updated_at = excluded.updated_at",
            ", last_ledger_id, updated_at",
            ", last_ledger_id, now()",
        ),
        None => ("", "", "", ""),
    };
    let balance = &ledger.balance_name;
    let keys = ledger.key_list("");
    let fix_keys = ledger.key_list("fix.");
    // A spread key's rows are corrected only as locked here: postings may make new rows of the key
    // meanwhile, which later statements (new snapshots) would see but this run never locked.
    let locked_only = if slotted { format!(" AND ROW({b_keys}, b.slot)::text = ANY ($8::text[])") } else { String::new() };
    let lock = format!(
        "{fix} SELECT ROW({b_keys}{slot_order})::text FROM {balance} AS b
          WHERE ROW({b_keys})::text IN (SELECT ROW({fix_keys})::text FROM fix WHERE kind <> 'missing'){tenant_filter}
          ORDER BY {b_keys}{slot_order} FOR UPDATE OF b"
    );
    let statements = [
        Some(format!(
            "{fix} DELETE FROM {balance} AS b USING fix WHERE fix.kind = 'orphan' AND {same_key} AND b.qty = fix.actual{locked_only}{tenant_filter}"
        )),
        Some(format!(
            "{fix} UPDATE {balance} AS b SET qty = b.qty - fix.variance{touch}
               FROM fix WHERE fix.kind IN ('drift', 'orphan') AND {same_key}{locked_only}{tenant_filter}"
        )),
        Some(format!(
            "{fix} INSERT INTO {balance} AS b ({keys}, qty{id_col})
             SELECT {keys}, expected{id_val} FROM fix WHERE kind = 'missing' ORDER BY {keys}
             ON CONFLICT ({keys}{slot_key}) DO UPDATE SET qty = b.qty + excluded.qty{touch_insert}"
        )),
    ];
    let column = |f: fn(&Finding) -> &Option<String>| corrections.iter().map(|x| f(x).clone()).collect::<Vec<_>>();
    let args = [
        column(|f| &f.kind),
        column(|f| &f.key),
        column(|f| &f.org),
        column(|f| &f.expected),
        column(|f| &f.actual),
        column(|f| &f.variance),
        column(|f| &f.last_id),
    ];
    let params = |locked: Option<&Vec<Option<String>>>| {
        let mut params: Vec<pgrx::datum::DatumWithOid> = args.iter().map(|a| Some(a.clone()).into()).collect();
        params.extend(locked.map(|l| l.clone().into()));
        params
    };
    let locked: Vec<Option<String>> = rows_locking(&lock, &params(None), |r| r.get::<String>(1));
    if slotted {
        exec_with_args(&fold_locked_sql(ledger), &[locked.clone().into()]);
    }
    for sql in statements.into_iter().flatten() {
        exec_with_args(&sql, &params(slotted.then_some(&locked)));
    }
}

/// The type of a column of a table.
fn column_type(table: pg_sys::Oid, column: &str) -> pg_sys::Oid {
    first::<pg_sys::Oid>(
        "SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped",
        &[table.into(), column.into()],
    )
    .unwrap_or_else(|| errors::undefined_relation(table))
}

/// Folds a slotted balance table's rows named in `$1` (`ROW(keys…, slot)::text` of rows this transaction
/// locked, in an earlier statement, so that this one's snapshot sees the versions locked) into the first
/// slot of each key: the one statement both a correction and the quiet-key fold use. Rows of the key that
/// a posting made meanwhile are not among them, and are left as they are.
fn fold_locked_sql(ledger: &Registered) -> String {
    let balance = &ledger.balance_name;
    let b_keys = ledger.key_list("b.");
    format!(
        "WITH slot_rows AS (SELECT b.ctid AS tid, b.slot, min(b.slot) OVER w AS first, sum(b.qty) OVER w AS total
                              FROM {balance} AS b WHERE ROW({b_keys}, b.slot)::text = ANY ($1::text[])
                            WINDOW w AS (PARTITION BY {b_keys})),
              gone AS (DELETE FROM {balance} AS b USING slot_rows WHERE b.ctid = slot_rows.tid AND slot_rows.slot <> slot_rows.first)
         UPDATE {balance} AS b SET qty = slot_rows.total FROM slot_rows WHERE b.ctid = slot_rows.tid AND slot_rows.slot = slot_rows.first"
    )
}

/// Folds the rows of every quiet spread key into one (SPEC §6, hot keys: a key that stopped being
/// contended goes back to one row). Quiet: no posting for `inventory.slot_fold_after` (default 10
/// minutes). Each key in a subtransaction of its own: its rows are locked in slot order with NOWAIT, and
/// a key with a row held by a posting is left as it is — the subtransaction's rollback releases the rows
/// it did lock, so the fold never makes a posting wait.
fn fold_quiet_keys(ledger: &Registered, org: Option<Uuid>) {
    let balance = &ledger.balance_name;
    let keys = ledger.key_list("");
    let b_keys = ledger.key_list("b.");
    let (filter, mut args): (String, Vec<pgrx::datum::DatumWithOid>) = match (org, &ledger.org) {
        (Some(o), Some(col)) => (format!("WHERE {} = $2", ident(col)), vec![o.into()]),
        _ => (String::new(), vec![]),
    };
    args.insert(0, crate::guc::slot_fold_after_s().into());
    // Quiet: no posting for inventory.slot_fold_after (a hot key folded would only spread again).
    let spread: Vec<Option<String>> = rows(
        &format!(
            "SELECT ROW({keys})::text FROM {balance} {filter} GROUP BY {keys}
             HAVING count(*) > 1 AND max(updated_at) <= now() - make_interval(secs => $1) ORDER BY {keys}"
        ),
        &args,
        |r| r.get::<String>(1),
    );
    let lock = format!(
        "SELECT ROW({b_keys}, b.slot)::text FROM {balance} AS b WHERE ROW({b_keys})::text = $1
          ORDER BY b.slot FOR NO KEY UPDATE OF b NOWAIT"
    );
    let fold = fold_locked_sql(ledger);
    for key in spread.into_iter().flatten() {
        // Held by a posting (55P03), or anything else: this key stays spread until the next run.
        let _ = maintenance::in_subtransaction(|| {
            let locked: Vec<Option<String>> = rows_locking(&lock, &[key.as_str().into()], |r| r.get::<String>(1));
            exec_with_args(&fold, &[locked.into()]);
        });
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use crate::test_support::sqlstate_of;

    fn ledger_with_balances() {
        Spi::run(
            "CREATE TABLE r_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \"itemId\" text NOT NULL,
                                    \"lotId\" text, \"qtyCanonical\" numeric NOT NULL);
             SELECT inventory.track_balances('r_ledger', 'r_balance', ARRAY['itemId', 'lotId'], 'qtyCanonical');
             INSERT INTO r_ledger (\"itemId\", \"lotId\", \"qtyCanonical\") VALUES ('a', NULL, 5), ('b', 'x', 2), ('c', NULL, 1);",
        )
        .unwrap();
    }

    fn findings(sql: &str) -> Vec<(String, String, String)> {
        rows(sql, &[], |r| Ok((r.get::<String>(1)?.unwrap(), r.get::<String>(2)?.unwrap(), r.get::<String>(3)?.unwrap())))
    }

    #[pg_test]
    fn a_clean_ledger_has_no_findings_and_a_clean_run() {
        ledger_with_balances();
        let run = Spi::get_one::<i64>("SELECT inventory.reconcile_run('r_ledger')").unwrap().unwrap();
        let status = one_text(&format!("SELECT status || ' ' || keys_checked FROM inventory.reconcile_runs WHERE id = {run}"), &[]);
        assert_eq!(status.as_deref(), Some("clean 3"));
    }

    #[pg_test]
    fn drift_within_tolerance_is_corrected_by_the_difference_and_the_rest_is_flagged() {
        ledger_with_balances();
        Spi::run(
            "UPDATE r_balance SET qty = qty + 0.01 WHERE \"itemId\" = 'a';
             UPDATE r_balance SET qty = qty - 3 WHERE \"itemId\" = 'b';
             DELETE FROM r_balance WHERE \"itemId\" = 'c';
             INSERT INTO r_balance (\"itemId\", \"lotId\", qty, last_ledger_id, updated_at) VALUES ('z', NULL, 0.005, 0, now());",
        )
        .unwrap();
        let found = findings(
            "SELECT key::text, kind, action FROM inventory.reconcile('r_ledger') ORDER BY key->>'itemId'",
        );
        assert_eq!(
            found,
            vec![
                (r#"{"lotId": null, "itemId": "a"}"#.into(), "drift".into(), "corrected".into()),
                (r#"{"lotId": "x", "itemId": "b"}"#.into(), "drift".into(), "flagged".into()),
                (r#"{"lotId": null, "itemId": "c"}"#.into(), "missing".into(), "flagged".into()),
                (r#"{"lotId": null, "itemId": "z"}"#.into(), "orphan".into(), "corrected".into()),
            ]
        );
        let a = one_text("SELECT qty::text FROM r_balance WHERE \"itemId\" = 'a'", &[]);
        assert_eq!(a.as_deref(), Some("5.00"));
        assert_eq!(one_text("SELECT count(*)::text FROM r_balance WHERE \"itemId\" = 'z'", &[]).as_deref(), Some("0"));
        let payload = one_text("SELECT notification->>'flagged' FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1", &[]);
        assert_eq!(payload.as_deref(), Some("2"));
    }

    /// A key whose type's `=` lives outside pg_catalog (as citext's or ltree's do; here a text-like type
    /// of the test's own, which needs no contrib module): the correction compares keys with that type's
    /// own operator, named with its schema, though it runs with a pinned search_path.
    #[pg_test]
    fn a_key_type_from_another_schema_is_corrected() {
        Spi::run(
            "CREATE SCHEMA codes;
             CREATE TYPE codes.code;
             CREATE FUNCTION codes.code_in(cstring) RETURNS codes.code AS 'textin' LANGUAGE internal IMMUTABLE STRICT;
             CREATE FUNCTION codes.code_out(codes.code) RETURNS cstring AS 'textout' LANGUAGE internal IMMUTABLE STRICT;
             CREATE TYPE codes.code (INPUT = codes.code_in, OUTPUT = codes.code_out, LIKE = text, COLLATABLE = true);
             CREATE FUNCTION codes.lt(codes.code, codes.code) RETURNS boolean AS 'text_lt' LANGUAGE internal IMMUTABLE STRICT;
             CREATE FUNCTION codes.le(codes.code, codes.code) RETURNS boolean AS 'text_le' LANGUAGE internal IMMUTABLE STRICT;
             CREATE FUNCTION codes.eq(codes.code, codes.code) RETURNS boolean AS 'texteq' LANGUAGE internal IMMUTABLE STRICT;
             CREATE FUNCTION codes.ge(codes.code, codes.code) RETURNS boolean AS 'text_ge' LANGUAGE internal IMMUTABLE STRICT;
             CREATE FUNCTION codes.gt(codes.code, codes.code) RETURNS boolean AS 'text_gt' LANGUAGE internal IMMUTABLE STRICT;
             CREATE FUNCTION codes.cmp(codes.code, codes.code) RETURNS integer AS 'bttextcmp' LANGUAGE internal IMMUTABLE STRICT;
             CREATE OPERATOR codes.< (LEFTARG = codes.code, RIGHTARG = codes.code, FUNCTION = codes.lt);
             CREATE OPERATOR codes.<= (LEFTARG = codes.code, RIGHTARG = codes.code, FUNCTION = codes.le);
             CREATE OPERATOR codes.= (LEFTARG = codes.code, RIGHTARG = codes.code, FUNCTION = codes.eq);
             CREATE OPERATOR codes.>= (LEFTARG = codes.code, RIGHTARG = codes.code, FUNCTION = codes.ge);
             CREATE OPERATOR codes.> (LEFTARG = codes.code, RIGHTARG = codes.code, FUNCTION = codes.gt);
             CREATE OPERATOR CLASS codes.code_ops DEFAULT FOR TYPE codes.code USING btree AS
                 OPERATOR 1 codes.<, OPERATOR 2 codes.<=, OPERATOR 3 codes.=, OPERATOR 4 codes.>=, OPERATOR 5 codes.>,
                 FUNCTION 1 codes.cmp(codes.code, codes.code);
             CREATE TABLE ct_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku codes.code, qty numeric NOT NULL);
             SELECT inventory.track_balances('ct_ledger', 'ct_balance', ARRAY['sku'], 'qty');
             INSERT INTO ct_ledger (sku, qty) VALUES ('Ab', 5), (NULL, 2);
             UPDATE ct_balance SET qty = qty + 0.001;",
        )
        .unwrap();
        let found = findings("SELECT key::text, kind, action FROM inventory.reconcile('ct_ledger') ORDER BY key->>'sku' NULLS LAST");
        assert_eq!(
            found,
            vec![
                (r#"{"sku": "Ab"}"#.into(), "drift".into(), "corrected".into()),
                (r#"{"sku": null}"#.into(), "drift".into(), "corrected".into()),
            ]
        );
        let sums = one_text("SELECT string_agg(qty::text, ',' ORDER BY sku NULLS LAST) FROM ct_balance", &[]);
        assert_eq!(sums.as_deref(), Some("5.000,2.000"));
    }

    #[pg_test]
    fn bad_arguments_fail_with_their_sqlstates() {
        assert_eq!(sqlstate_of("SELECT inventory.reconcile_run(tolerance => -1)"), "22023");
        assert_eq!(sqlstate_of("SELECT inventory.reconcile_run(auto_correct => NULL)"), "22023");
        assert_eq!(sqlstate_of("SELECT inventory.reconcile_run('pg_class')"), "22023");
    }
}
