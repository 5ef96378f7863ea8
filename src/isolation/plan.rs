//! The named steps that make a table tenant-scoped, planned from a [`Description`] of the catalog as
//! plain data: no database is needed to plan, so the rules are unit-tested here.
//!
//! Both paths run this one list. `enable_tenant_isolation` plans once and applies every step in its one
//! transaction. `enable_tenant_isolation_online` applies the first piece of work of the first step,
//! commits, reads the catalog again and plans again, until nothing is left: so whatever it was doing
//! when it failed, calling it again goes on from there. Every rule therefore reads "what is still
//! missing" from the catalog, never "what this call did".
//!
//! The order keeps the long work (filling the column, building indexes, validating constraints) ahead of
//! the catalog-only changes that need ACCESS EXCLUSIVE. Online, each of those is a transaction of its
//! own: the long work runs under locks writers do not wait for (ROW EXCLUSIVE per committed batch,
//! SHARE UPDATE EXCLUSIVE for CONCURRENTLY and VALIDATE), and each ACCESS EXCLUSIVE is held for a
//! catalog change only. docs/DBA.md lists the lock of each step.

use crate::sql_text::{ident, ident_list, literal};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::Uuid;

pub const CONTEXT_DEFAULT: &str = "inventory.require_org_id()";
const POLICY: &str = super::catalog::POLICY;

/// Which path plans: the one-call function (one transaction) or the online procedure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    OneCall,
    Online,
}

pub struct Table {
    pub oid: pg_sys::Oid,
    pub name: String,
    pub relname: String,
    pub schema: String,
    pub partitioned: bool,
}

pub struct Column {
    pub attnum: i16,
    pub type_name: String,
    pub not_null: bool,
    pub default: Option<String>,
}

/// A `CHECK (org IS NOT NULL)`.
pub struct Check {
    pub name: String,
    pub valid: bool,
}

/// A foreign key, as much of it as a rewrite needs.
#[derive(Clone)]
pub struct ForeignKey {
    pub name: String,
    pub table: pg_sys::Oid,
    pub table_name: String,
    pub cols: Vec<String>,
    pub ref_table: pg_sys::Oid,
    pub ref_table_name: String,
    pub ref_cols: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
    pub match_full: bool,
    pub deferrable: bool,
    pub deferred: bool,
    pub source_partitioned: bool,
    pub valid: bool,
}

/// A unique key (constraint or plain unique index) that does not hold the org column.
pub struct UniqueToScope {
    pub index_name: String,
    pub index_oid: pg_sys::Oid,
    pub constraint: Option<String>,
    pub cols: Vec<String>,
    pub keys: Vec<String>,
    pub nulls_not_distinct: bool,
    pub deferrable: bool,
    pub deferred: bool,
    pub indexdef: String,
}

/// An index the helper needs: there already (`Done`), built but not attached yet (`Built`), left
/// invalid by a failed build (`Invalid`), being built by another session (`Building`: refused, 55006),
/// or to build under the name given (`Missing`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum IndexState {
    Done,
    Built(String),
    Invalid(String),
    /// Invalid because another backend (its pid) is building it right now.
    Building(String, i32),
    Missing(String),
}

/// `UNIQUE (org, primary key)`.
pub struct OrgKey {
    pub cols: Vec<String>,
    pub state: IndexState,
}

/// A unique key to lead with the org column, the foreign keys that depend on it (with their own
/// table's org column, `None` when that table is not tenant-scoped) and the scoped index.
pub struct ScopedUnique {
    pub unique: UniqueToScope,
    pub dependents: Vec<(ForeignKey, Option<String>)>,
    pub index: IndexState,
}

pub struct Policy {
    pub using: Option<String>,
    pub check: Option<String>,
    pub for_all_public: bool,
}

/// The table or one of its partitions: row-level security as it is, and our policy.
pub struct Relation {
    pub oid: pg_sys::Oid,
    pub name: String,
    pub enabled: bool,
    pub forced: bool,
    pub policy: Option<Policy>,
}

/// The catalog as the plan needs it (`catalog::describe`).
pub struct Description {
    pub table: Table,
    pub org: String,
    pub backfill_org: Option<Uuid>,
    /// Whether `backfill_org` names an organization (`None`: none given).
    pub backfill_org_exists: Option<bool>,
    pub column: Option<Column>,
    /// Read only when the column is missing.
    pub has_rows: bool,
    /// Read only while the column is nullable and no CHECK proves it is not.
    pub has_nulls: bool,
    pub not_null_check: Option<Check>,
    pub not_null_check_name: String,
    pub org_fk: Option<ForeignKey>,
    pub org_fk_name: String,
    pub pk: Vec<String>,
    pub any_unique: bool,
    /// `None` when the primary key is the org column alone, or there is none.
    pub org_key: Option<OrgKey>,
    pub scoped: Vec<ScopedUnique>,
    /// Foreign keys between tenant tables without the org columns (those of `scoped` left out), with
    /// the org column of each side.
    pub tenant_fks: Vec<(ForeignKey, String, String)>,
    pub unvalidated_fks: Vec<ForeignKey>,
    pub leading_index: IndexState,
    pub relations: Vec<Relation>,
    /// Permissive policies that would keep the table open: (name, DROP, AS RESTRICTIVE).
    pub open_policies: Vec<(String, String, String)>,
    pub registered: Option<String>,
    pub builtin: bool,
    /// Where Citus is installed (SPEC §9): the policy takes the plain form, since Citus refuses a
    /// sub-select in a policy of a distributed table (and the table may be distributed later).
    pub on_citus: bool,
    /// The table's Citus distribution column, when it is distributed.
    pub distributed_by: Option<String>,
}

/// What a step does, in pieces that each are one transaction online.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Work {
    /// Statements that commit together.
    Transaction(Vec<String>),
    /// An index built (`CREATE [UNIQUE] INDEX name ON …`) or dropped (`DROP INDEX schema.name`): in one
    /// transaction in the one-call path, CONCURRENTLY online.
    Index(String),
    /// The NULLs of the org column given to an organization: one UPDATE in the one-call path, committed
    /// batches online (`inventory.backfill_org_column`).
    Backfill(Uuid),
}

impl Work {
    /// The statement as the online path runs it, CONCURRENTLY.
    pub fn concurrently(statement: &str) -> String {
        for verb in ["CREATE UNIQUE INDEX ", "CREATE INDEX ", "DROP INDEX "] {
            if let Some(rest) = statement.strip_prefix(verb) {
                return format!("{verb}CONCURRENTLY {rest}");
            }
        }
        statement.to_string()
    }
}

/// One named step: what it is, the lines the one-call path returns for it (`{filled}`: the number of
/// rows a backfill filled) and its work.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Step {
    pub name: &'static str,
    pub report: Vec<String>,
    pub work: Vec<Work>,
}

/// What the planner refuses to do, with the SQLSTATE to raise.
#[derive(Debug)]
pub struct Refusal {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub hint: String,
}

fn refuse<T>(message: impl Into<String>, hint: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { code: PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message: message.into(), hint: hint.into() })
}

/// On Citus an application's table is distributed by its org column before it is made tenant-scoped
/// (docs/SCALE_OUT.md): the key to inventory.organizations, a reference table there, would make Citus
/// replace a local table by another mid-plan, and a table distributed by another column would spread a
/// tenant over every shard. The extension's own tables are made tenant-scoped by CREATE EXTENSION,
/// before inventory.distribute.
fn refuse_undistributed(d: &Description) -> Result<(), Refusal> {
    if !d.on_citus || d.builtin || d.distributed_by.as_deref() == Some(d.org.as_str()) {
        return Ok(());
    }
    let problem = match &d.distributed_by {
        Some(other) => format!("{} is distributed by {}, not by its org column {}", d.table.name, ident(other), ident(&d.org)),
        None => format!("{} is not distributed: on Citus a tenant table is distributed by its org column first", d.table.name),
    };
    Err(Refusal {
        code: PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        message: problem,
        hint: format!(
            "SELECT create_distributed_table({}, {}, colocate_with => 'inventory.items'); then call enable_tenant_isolation again (docs/SCALE_OUT.md).",
            literal(&d.table.name),
            literal(&d.org)
        ),
    })
}

/// An index build or drop: CONCURRENTLY online, except on a partitioned table (PostgreSQL cannot), where
/// it is an ordinary statement in both paths.
fn index_work(d: &Description, statement: String) -> Work {
    match d.table.partitioned {
        true => Work::Transaction(vec![statement]),
        false => Work::Index(statement),
    }
}

fn quoted_list(names: &[String]) -> String {
    ident_list("", names)
}

struct Plan(Vec<Step>);

impl Plan {
    fn add(&mut self, name: &'static str, report: Option<String>, work: Vec<Work>) {
        if !work.is_empty() || report.is_some() {
            self.0.push(Step { name, report: report.into_iter().collect(), work });
        }
    }
}

/// Every step still to do, in order (empty: the table is tenant-scoped as asked).
pub fn plan(d: &Description, mode: Mode) -> Result<Vec<Step>, Refusal> {
    let mut plan = Plan(Vec::new());
    let t = &d.table.name;
    let q_org = ident(&d.org);
    refuse_open_policies(d)?;
    refuse_builds_in_progress(d)?;
    refuse_undistributed(d)?;
    if mode == Mode::Online && d.on_citus {
        return Err(Refusal {
            code: PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            message: "enable_tenant_isolation_online is not supported on Citus".into(),
            hint: "Use inventory.enable_tenant_isolation (one call; docs/SCALE_OUT.md): its online steps (concurrent \
                   builds by a background worker, batched backfills) are not verified on distributed tables."
                .into(),
        });
    }
    if let (Some(b), Some(false)) = (d.backfill_org, d.backfill_org_exists) {
        return refuse(
            format!("backfill_org {b} names no organization"),
            "Create it first with inventory.create_organization, or pass an existing organization's id.",
        );
    }

    // The column: added (a constant DEFAULT fills existing rows without rewriting the table), or
    // checked and its NULLs filled (ROW EXCLUSIVE only).
    match &d.column {
        Some(c) if c.type_name != "uuid" => {
            return refuse(
                format!("column {q_org} of {t} is of type {}, not uuid", c.type_name),
                "The org column holds an organization's id; use another column name or convert this one to uuid.",
            )
        }
        Some(_) if d.has_nulls => match d.backfill_org {
            None => {
                return refuse(
                    format!("{t} has rows whose {q_org} is NULL"),
                    "Pass backfill_org => '<organization id>' to give them to one organization.",
                )
            }
            Some(b) => plan.add(
                "fill the org column",
                Some(format!("filled {q_org} of {{filled}} rows of {t} with {b}")),
                vec![Work::Backfill(b)],
            ),
        },
        Some(_) => {}
        None => match (d.has_rows, d.backfill_org) {
            (true, None) => {
                return refuse(
                    format!("{t} has rows and no column {q_org}"),
                    "Pass backfill_org => '<organization id>' to give the existing rows to one organization.",
                )
            }
            (true, Some(b)) => plan.add(
                "add the org column",
                Some(format!("added column {q_org} uuid to {t}; its existing rows belong to {b}")),
                vec![Work::Transaction(vec![format!(
                    "ALTER TABLE {t} ADD COLUMN {q_org} uuid DEFAULT {}::uuid",
                    literal(b.to_string())
                )])],
            ),
            (false, _) => plan.add(
                "add the org column",
                Some(format!("added column {q_org} uuid to {t}")),
                vec![Work::Transaction(vec![format!("ALTER TABLE {t} ADD COLUMN {q_org} uuid")])],
            ),
        },
    }

    // Online, NOT NULL is proved by a validated CHECK first (SHARE UPDATE EXCLUSIVE while it scans), so
    // that SET NOT NULL at the end needs no scan under ACCESS EXCLUSIVE. A partitioned table's CHECK
    // cannot be added NOT VALID: it gets SET NOT NULL alone, as in the one-call path.
    let not_null = d.column.as_ref().is_some_and(|c| c.not_null);
    let prove_not_null = mode == Mode::Online && !not_null && !d.table.partitioned;
    if prove_not_null {
        let name = d.not_null_check.as_ref().map_or(d.not_null_check_name.clone(), |c| c.name.clone());
        let mut work = Vec::new();
        if d.not_null_check.is_none() {
            work.push(Work::Transaction(vec![format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({q_org} IS NOT NULL) NOT VALID",
                ident(&name)
            )]));
        }
        if !d.not_null_check.as_ref().is_some_and(|c| c.valid) {
            work.push(Work::Transaction(vec![format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", ident(&name))]));
        }
        plan.add("prove the org column NOT NULL", None, work);
    }

    // Every row belongs to an existing organization.
    match &d.org_fk {
        None => {
            let name = ident(&d.org_fk_name);
            let add = format!("ALTER TABLE {t} ADD CONSTRAINT {name} FOREIGN KEY ({q_org}) REFERENCES inventory.organizations (id)");
            let work = match d.table.partitioned {
                true => vec![Work::Transaction(vec![add])],
                false => vec![
                    Work::Transaction(vec![format!("{add} NOT VALID")]),
                    Work::Transaction(vec![format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}")]),
                ],
            };
            plan.add("add the organization foreign key", Some(format!("added foreign key {name}: {q_org} → inventory.organizations (id)")), work);
        }
        Some(fk) if !fk.valid => plan.add(
            "validate the organization foreign key",
            None,
            vec![Work::Transaction(vec![format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", ident(&fk.name))])],
        ),
        Some(_) => {}
    }

    // The unique indexes the tenant keys need, built first (one-call: SHARE, reads go on; online:
    // CONCURRENTLY) and attached as constraints in the catalog-only phase below. A partitioned table
    // cannot attach an index as a constraint, so it gets the constraint directly there.
    // A table without a primary key needs some unique key to identify its rows (a balance table's
    // NULLS NOT DISTINCT key, say), which scoping then leads with the org column.
    if d.pk.is_empty() && !d.any_unique {
        return refuse(
            format!("{t} has no primary key"),
            "Add one first: other tables reference tenant rows by (org column, primary key).",
        );
    }
    if let Some(key) = &d.org_key {
        if !d.table.partitioned {
            let build = |name: &str| Work::Index(format!("CREATE UNIQUE INDEX {} ON {t} ({})", ident(name), quoted_list(&key.cols)));
            let work = match &key.state {
                IndexState::Missing(name) => vec![build(name)],
                IndexState::Invalid(name) => vec![Work::Index(format!("DROP INDEX {}.{}", d.table.schema, ident(name))), build(name)],
                IndexState::Done | IndexState::Built(_) | IndexState::Building(..) => vec![],
            };
            plan.add("build the (org, primary key) index", None, work);
        }
    }
    for s in &d.scoped {
        if let Some((fk, _)) = s.dependents.iter().find(|(_, src_org)| src_org.is_none()) {
            return refuse(
                format!(
                    "UNIQUE {} of {t} is referenced by foreign key {} of {}, which is not tenant-scoped",
                    s.unique.index_name, fk.name, fk.table_name
                ),
                format!("Make {} tenant-scoped first, or pass scope_unique => false to keep the key global.", fk.table_name),
            );
        }
        if d.table.partitioned && s.unique.constraint.is_some() {
            continue;
        }
        let work = match &s.index {
            IndexState::Missing(name) => vec![index_work(d, indexdef_led_by(&s.unique, name, &d.table, &d.org)?)],
            IndexState::Invalid(name) => vec![
                index_work(d, format!("DROP INDEX {}.{}", d.table.schema, ident(name))),
                index_work(d, indexdef_led_by(&s.unique, name, &d.table, &d.org)?),
            ],
            IndexState::Done | IndexState::Built(_) | IndexState::Building(..) => vec![],
        };
        plan.add("build a scoped unique index", None, work);
    }

    // The catalog-only phase: one-call, the table is under ACCESS EXCLUSIVE from here until commit, so
    // everything slow is above; online, each change is a short transaction of its own.
    if let Some(key) = &d.org_key {
        let report = Some(format!("added UNIQUE ({}) to {t}", quoted_list(&key.cols)));
        let statement = match (&key.state, d.table.partitioned) {
            (IndexState::Done | IndexState::Building(..), _) => None,
            (_, true) => Some(format!("ALTER TABLE {t} ADD UNIQUE ({})", quoted_list(&key.cols))),
            (IndexState::Missing(n) | IndexState::Built(n) | IndexState::Invalid(n), false) => {
                Some(format!("ALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n}", n = ident(n)))
            }
        };
        if let Some(statement) = statement {
            plan.add("attach UNIQUE (org, primary key)", report, vec![Work::Transaction(vec![statement])]);
        }
    }
    for s in &d.scoped {
        scope_unique(&mut plan, d, s)?;
    }

    // Foreign keys between tenant tables carry both org columns, so no row references another
    // tenant's row.
    for (fk, src_org, ref_org) in &d.tenant_fks {
        let (add, validate) = composite_fk(fk, src_org, ref_org)?;
        let mut work = vec![Work::Transaction(vec![drop_fk_statement(fk), add])];
        work.extend(validate.map(|v| Work::Transaction(vec![v])));
        plan.add(
            "make a foreign key composite",
            Some(format!("replaced foreign key {} of {} with {}", ident(&fk.name), fk.table_name, composite_fk_text(fk, src_org, ref_org))),
            work,
        );
    }
    for fk in &d.unvalidated_fks {
        plan.add(
            "validate a foreign key",
            None,
            vec![Work::Transaction(vec![format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", fk.table_name, ident(&fk.name))])],
        );
    }

    // An index that leads with the org column: one is there, or the (org, primary key) or a scoped key
    // built above is one; else one of its own.
    let builds_leading = d.org_key.as_ref().is_some_and(|k| k.state != IndexState::Done) || !d.scoped.is_empty();
    if !builds_leading {
        let work = match &d.leading_index {
            IndexState::Done | IndexState::Built(_) | IndexState::Building(..) => vec![],
            IndexState::Missing(name) => vec![index_work(d, format!("CREATE INDEX {} ON {t} ({q_org})", ident(name)))],
            IndexState::Invalid(name) => vec![
                index_work(d, format!("DROP INDEX {}.{}", d.table.schema, ident(name))),
                index_work(d, format!("CREATE INDEX {} ON {t} ({q_org})", ident(name))),
            ],
        };
        if !work.is_empty() {
            plan.add("index the org column", Some(format!("added an index on {t} ({q_org})")), work);
        }
    }

    if d.column.as_ref().and_then(|c| c.default.as_deref()) != Some(CONTEXT_DEFAULT) {
        plan.add(
            "default the org column to the tenant context",
            Some(format!("set the default of {q_org} of {t} to {CONTEXT_DEFAULT} (no tenant context: error 42501)")),
            vec![Work::Transaction(org_default(d, &t, &q_org))],
        );
    }
    // SET NOT NULL skips its scan when a valid CHECK proves it; the CHECK then goes.
    let drop_check = d.not_null_check.as_ref().map(|c| format!("ALTER TABLE {t} DROP CONSTRAINT {}", ident(&c.name)));
    if !not_null {
        let mut statements = vec![format!("ALTER TABLE {t} ALTER COLUMN {q_org} SET NOT NULL")];
        let check_name = d.not_null_check.as_ref().map_or(&d.not_null_check_name, |c| &c.name);
        if prove_not_null {
            statements.push(format!("ALTER TABLE {t} DROP CONSTRAINT {}", ident(check_name)));
        } else {
            statements.extend(drop_check);
        }
        plan.add("make the org column NOT NULL", Some(format!("made {q_org} of {t} NOT NULL")), vec![Work::Transaction(statements)]);
    } else if let Some(drop) = drop_check {
        plan.add("drop the NOT NULL proof", None, vec![Work::Transaction(vec![drop])]);
    }

    for relation in &d.relations {
        isolate(&mut plan, relation, &d.org, d.on_citus);
    }
    if d.registered.as_deref() != Some(d.org.as_str()) {
        plan.add(
            "register the table",
            Some(format!("registered {t} in inventory.tenant_tables with org column {q_org}")),
            vec![Work::Transaction(vec![format!(
                "INSERT INTO inventory.tenant_tables (relid, org_column, builtin) VALUES ({}::regclass, {}, {})
                 ON CONFLICT (relid) DO UPDATE SET org_column = excluded.org_column, enabled_at = now()",
                literal(t),
                literal(&d.org),
                d.builtin
            )])],
        );
    }
    Ok(plan.0)
}

/// 55006 while another session builds one of the indexes the plan needs (an earlier online call whose
/// worker is still at it): dropping it under that build would fail, and building another would race it.
fn refuse_builds_in_progress(d: &Description) -> Result<(), Refusal> {
    let states = d.org_key.iter().map(|k| &k.state).chain(d.scoped.iter().map(|s| &s.index)).chain([&d.leading_index]);
    for state in states {
        if let IndexState::Building(name, pid) = state {
            return Err(Refusal {
                code: PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                message: format!("index {} of {} is being built by another session (pid {pid})", ident(name), d.table.name),
                hint: "Wait for that build to finish (or cancel it), then call again: it goes on from there.".into(),
            });
        }
    }
    Ok(())
}

/// Permissive policies are OR-ed with the tenant policy: the plan refuses a table with one that would
/// keep it open (55000), naming each and the SQL that closes it, before anything changes.
fn refuse_open_policies(d: &Description) -> Result<(), Refusal> {
    if d.open_policies.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = d.open_policies.iter().map(|(name, _, _)| name.as_str()).collect();
    let fixes: Vec<String> = d
        .open_policies
        .iter()
        .map(|(_, drop, restrictive)| format!("{drop}  -- or, to keep it as a further restriction: {restrictive}"))
        .collect();
    Err(Refusal {
        code: PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message: format!(
            "{} has permissive policies besides {POLICY} that would keep it open to every tenant: {}",
            d.table.name,
            names.join(", ")
        ),
        hint: format!(
            "Permissive policies are OR-ed with the tenant policy, so each lets its rows through whatever the tenant. \
             Drop each, or recreate it AS RESTRICTIVE (a restriction on top of the tenant policy), then call \
             enable_tenant_isolation again. Nothing was changed.\n{}",
            fixes.join("\n")
        ),
    })
}

/// A unique key swapped for its scoped index, with the foreign keys that depend on it dropped and put
/// back on the scoped key in the same transaction (NOT VALID, then validated in their own).
fn scope_unique(plan: &mut Plan, d: &Description, s: &ScopedUnique) -> Result<(), Refusal> {
    let (t, u, org) = (&d.table.name, &s.unique, &d.org);
    let mut swap: Vec<String> = s.dependents.iter().map(|(fk, _)| drop_fk_statement(fk)).collect();
    let deferrable = match (u.deferrable, u.deferred) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    };
    let new_index = match &s.index {
        IndexState::Missing(n) | IndexState::Built(n) | IndexState::Invalid(n) | IndexState::Building(n, _) => n.clone(),
        IndexState::Done => String::new(),
    };
    match (&u.constraint, d.table.partitioned) {
        (Some(name), true) => {
            let mut scoped = vec![org.clone()];
            scoped.extend(u.cols.iter().cloned());
            swap.push(format!(
                "ALTER TABLE {t} DROP CONSTRAINT {c}, ADD CONSTRAINT {c} UNIQUE{nnd} ({cols}){deferrable}",
                c = ident(name),
                nnd = if u.nulls_not_distinct { " NULLS NOT DISTINCT" } else { "" },
                cols = quoted_list(&scoped),
            ));
        }
        // Renamed first, so that ADD CONSTRAINT … USING INDEX has no renaming NOTICE to give.
        (Some(name), false) => swap.extend([
            format!("ALTER TABLE {t} DROP CONSTRAINT {}", ident(name)),
            format!("ALTER INDEX {}.{} RENAME TO {}", d.table.schema, ident(&new_index), ident(name)),
            format!("ALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n}{deferrable}", n = ident(name)),
        ]),
        (None, _) => swap.extend([
            format!("DROP INDEX {}.{}", d.table.schema, ident(&u.index_name)),
            format!("ALTER INDEX {}.{} RENAME TO {}", d.table.schema, ident(&new_index), ident(&u.index_name)),
        ]),
    }
    let mut rebuilt = Vec::new();
    for (fk, src_org) in &s.dependents {
        let src_org = src_org.as_deref().unwrap_or_default();
        let (add, validate) = composite_fk(fk, src_org, org)?;
        swap.push(add);
        rebuilt.push((fk, validate, composite_fk_text(fk, src_org, org)));
    }
    plan.add(
        "scope a unique key to the tenant",
        Some(format!(
            "scoped unique {} of {t} to the tenant: now ({}, {})",
            ident(&u.index_name),
            ident(org),
            u.keys.join(", ")
        )),
        vec![Work::Transaction(swap)],
    );
    for (fk, validate, text) in rebuilt {
        plan.add(
            "validate a rebuilt foreign key",
            Some(format!("rebuilt foreign key {} of {} on the scoped key: {text}", ident(&fk.name), fk.table_name)),
            validate.map(|v| vec![Work::Transaction(vec![v])]).unwrap_or_default(),
        );
    }
    Ok(())
}

/// Row-level security on one relation: enabled, forced, and our one policy for all commands — in one
/// transaction, since row-level security without the policy would refuse every row to the application
/// (the online path commits between steps).
/// The org column's default. Citus refuses ALTER TABLE on a distribution column; the default is only
/// ever evaluated on the coordinator (Citus computes the distribution value there to route the row), so
/// on a table distributed by the org column it is set there alone, with Citus's DDL propagation off.
fn org_default(d: &Description, t: &str, q_org: &str) -> Vec<String> {
    let set = format!("ALTER TABLE {t} ALTER COLUMN {q_org} SET DEFAULT {CONTEXT_DEFAULT}");
    if d.distributed_by.as_deref() != Some(d.org.as_str()) {
        return vec![set];
    }
    vec![
        "SELECT pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true)".into(),
        set,
        "SELECT pg_catalog.set_config('citus.enable_ddl_propagation', 'on', true)".into(),
    ]
}

fn isolate(plan: &mut Plan, r: &Relation, org: &str, on_citus: bool) {
    let name = &r.name;
    let (mut lines, mut statements) = (Vec::new(), Vec::new());
    if !r.enabled {
        lines.push(format!("enabled row-level security on {name}"));
        statements.push(format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"));
    }
    if !r.forced {
        lines.push(format!("forced row-level security on {name} (the owner is held to it too)"));
        statements.push(format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY"));
    }
    // The sub-select makes PostgreSQL call current_org_id() once per query, not per row; Citus refuses
    // it (SPEC §9), where the plain form is used.
    let (expression, tenant) = if on_citus {
        (format!("({} = inventory.current_org_id())", ident(org)), "inventory.current_org_id()")
    } else {
        (format!("({} = ( SELECT inventory.current_org_id() AS current_org_id))", ident(org)), "(SELECT inventory.current_org_id())")
    };
    let create = format!(
        "CREATE POLICY {POLICY} ON {name} AS PERMISSIVE FOR ALL TO PUBLIC \
         USING ({col} = {tenant}) \
         WITH CHECK ({col} = {tenant})",
        col = ident(org)
    );
    match &r.policy {
        None => {
            lines.push(format!("created policy {POLICY} on {name}: {} = current_org_id(), for reading and writing", ident(org)));
            statements.push(create);
        }
        Some(p) if p.using.as_deref() == Some(&expression) && p.check.as_deref() == Some(&expression) && p.for_all_public => {}
        Some(_) => {
            lines.push(format!("replaced policy {POLICY} on {name}, which did not match the tenant expression"));
            statements.extend([format!("DROP POLICY {POLICY} ON {name}"), create]);
        }
    }
    if !statements.is_empty() {
        plan.0.push(Step { name: "isolate with row-level security", report: lines, work: vec![Work::Transaction(statements)] });
    }
}

/// `fk` put back as `(org, cols) → (ref org, ref cols)`: the ADD (NOT VALID where PostgreSQL allows it,
/// not on partitioned tables) and the VALIDATE that goes with it.
fn composite_fk(fk: &ForeignKey, org: &str, ref_org: &str) -> Result<(String, Option<String>), Refusal> {
    if matches!(fk.on_update.as_str(), "SET NULL" | "SET DEFAULT") {
        return refuse(
            format!("foreign key {} on {} has ON UPDATE {}", fk.name, fk.table_name, fk.on_update),
            "ON UPDATE SET NULL/SET DEFAULT would clear the org column of a composite key; \
             change it to CASCADE, RESTRICT or NO ACTION first.",
        );
    }
    let mut cols = vec![org.to_string()];
    cols.extend(fk.cols.iter().cloned());
    let mut ref_cols = vec![ref_org.to_string()];
    ref_cols.extend(fk.ref_cols.iter().cloned());
    // SET NULL / SET DEFAULT on delete must leave the org column alone (PostgreSQL 15 column lists).
    let on_delete = match fk.on_delete.as_str() {
        "SET NULL" | "SET DEFAULT" => format!("{} ({})", fk.on_delete, quoted_list(&fk.cols)),
        other => other.to_string(),
    };
    let def = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){} ON UPDATE {} ON DELETE {}{}",
        fk.table_name,
        ident(&fk.name),
        quoted_list(&cols),
        fk.ref_table_name,
        quoted_list(&ref_cols),
        if fk.match_full { " MATCH FULL" } else { "" },
        fk.on_update,
        on_delete,
        match (fk.deferrable, fk.deferred) {
            (true, true) => " DEFERRABLE INITIALLY DEFERRED",
            (true, false) => " DEFERRABLE",
            _ => "",
        },
    );
    if fk.source_partitioned {
        return Ok((def, None));
    }
    Ok((
        format!("{def} NOT VALID"),
        Some(format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", fk.table_name, ident(&fk.name))),
    ))
}

/// `(org, cols) → table (ref org, ref cols)`, for the lines a call returns.
fn composite_fk_text(fk: &ForeignKey, org: &str, ref_org: &str) -> String {
    format!(
        "({}, {}) → {} ({}, {})",
        ident(org),
        quoted_list(&fk.cols),
        fk.ref_table_name,
        ident(ref_org),
        quoted_list(&fk.ref_cols)
    )
}

fn drop_fk_statement(fk: &ForeignKey) -> String {
    format!("ALTER TABLE {} DROP CONSTRAINT {}", fk.table_name, ident(&fk.name))
}

/// The definition of a unique index, under a new name, with the org column put first among its keys.
/// pg_get_indexdef writes `CREATE UNIQUE INDEX name ON [ONLY ]table USING btree (keys…)…`; anything
/// else is refused rather than guessed at. `ONLY` (a partitioned table's index) is dropped so the
/// partitions get it too. It is also how `catalog` recognises an index an earlier run built: its
/// pg_get_indexdef is this text under its own name.
pub fn indexdef_led_by(u: &UniqueToScope, new_name: &str, table: &Table, org: &str) -> Result<String, Refusal> {
    let create = format!("CREATE UNIQUE INDEX {} ON ", ident(&u.index_name));
    let using = format!("{} USING btree (", table.name);
    let rest = ["", "ONLY "].iter().find_map(|only| u.indexdef.strip_prefix(&format!("{create}{only}{using}")));
    match rest {
        Some(rest) => Ok(format!("CREATE UNIQUE INDEX {} ON {using}{}, {rest}", ident(new_name), ident(org))),
        None => refuse(
            format!("cannot rewrite unique index {} automatically: {}", u.index_name, u.indexdef),
            "Rewrite it by hand so that it leads with the org column, or pass scope_unique => false.",
        ),
    }
}

/// The planner on descriptions written by hand: no catalog is read (it runs inside PostgreSQL only for
/// its quoting functions).
#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;


    fn fk(name: &str, cols: &[&str], ref_table: &str, ref_cols: &[&str]) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            table: pg_sys::Oid::from(16384u32),
            table_name: "public.t".into(),
            cols: cols.iter().map(|c| c.to_string()).collect(),
            ref_table: pg_sys::Oid::from(16390u32),
            ref_table_name: ref_table.into(),
            ref_cols: ref_cols.iter().map(|c| c.to_string()).collect(),
            on_update: "NO ACTION".into(),
            on_delete: "CASCADE".into(),
            match_full: false,
            deferrable: false,
            deferred: false,
            source_partitioned: false,
            valid: true,
        }
    }

    /// `public.t (id pk, sku unique, item_id → public.items)`, its org column there but with NULLs,
    /// nothing of the tenant shape done yet.
    fn untouched() -> Description {
        let table = Table { oid: pg_sys::Oid::from(16384u32), name: "public.t".into(), relname: "t".into(), schema: "public".into(), partitioned: false };
        Description {
            table,
            org: "org_id".into(),
            backfill_org: Some(Uuid::from_bytes([0; 16])),
            backfill_org_exists: Some(true),
            column: Some(Column { attnum: 4, type_name: "uuid".into(), not_null: false, default: None }),
            has_rows: true,
            has_nulls: true,
            not_null_check: None,
            not_null_check_name: "t_org_id_not_null_check".into(),
            org_fk: None,
            org_fk_name: "t_org_id_fkey".into(),
            pk: vec!["id".into()],
            any_unique: true,
            org_key: Some(OrgKey { cols: vec!["org_id".into(), "id".into()], state: IndexState::Missing("t_org_id_id_key".into()) }),
            scoped: vec![ScopedUnique {
                unique: UniqueToScope {
                    index_name: "t_sku_key".into(),
                    index_oid: pg_sys::Oid::from(16386u32),
                    constraint: Some("t_sku_key".into()),
                    cols: vec!["sku".into()],
                    keys: vec!["sku".into()],
                    nulls_not_distinct: false,
                    deferrable: false,
                    deferred: false,
                    indexdef: "CREATE UNIQUE INDEX t_sku_key ON public.t USING btree (sku)".into(),
                },
                dependents: vec![],
                index: IndexState::Missing("t_sku_key_org_id".into()),
            }],
            tenant_fks: vec![(fk("t_item_id_fkey", &["item_id"], "public.items", &["id"]), "org_id".into(), "org_id".into())],
            unvalidated_fks: vec![],
            leading_index: IndexState::Missing("t_org_id_idx".into()),
            relations: vec![Relation { oid: pg_sys::Oid::from(16384u32), name: "public.t".into(), enabled: false, forced: false, policy: None }],
            open_policies: vec![],
            registered: None,
            builtin: false,
            on_citus: false,
            distributed_by: None,
        }
    }

    fn transactions(steps: &[Step]) -> Vec<Vec<String>> {
        steps
            .iter()
            .flat_map(|s| s.work.iter())
            .filter_map(|w| match w {
                Work::Transaction(statements) => Some(statements.clone()),
                _ => None,
            })
            .collect()
    }

    #[pg_test]
    fn online_keeps_every_scan_and_build_out_of_catalog_transactions() {
        let steps = plan(&untouched(), Mode::Online).unwrap();
        for statements in transactions(&steps) {
            let scans = statements.iter().filter(|s| s.contains("VALIDATE CONSTRAINT")).count();
            // A VALIDATE (SHARE UPDATE EXCLUSIVE, long) never shares a transaction with anything else.
            assert!(scans == 0 || statements.len() == 1, "{statements:?}");
            assert!(!statements.iter().any(|s| s.starts_with("CREATE UNIQUE INDEX") || s.starts_with("CREATE INDEX")), "{statements:?}");
        }
        let indexes: Vec<String> = steps
            .iter()
            .flat_map(|s| s.work.iter())
            .filter_map(|w| if let Work::Index(s) = w { Some(Work::concurrently(s)) } else { None })
            .collect();
        assert_eq!(indexes.len(), 2);
        assert!(indexes.iter().all(|s| s.starts_with("CREATE UNIQUE INDEX CONCURRENTLY")), "{indexes:?}");
        // NOT NULL: proved by a CHECK validated in its own transaction before SET NOT NULL, which drops it.
        let all = transactions(&steps).concat();
        let position = |needle: &str| all.iter().position(|s| s.contains(needle)).unwrap_or_else(|| panic!("{needle} in {all:?}"));
        assert!(position("CHECK (org_id IS NOT NULL) NOT VALID") < position("VALIDATE CONSTRAINT t_org_id_not_null_check"));
        assert!(position("VALIDATE CONSTRAINT t_org_id_not_null_check") < position("SET NOT NULL"));
        // Row-level security and its policy commit together.
        let rls = transactions(&steps).into_iter().find(|t| t.iter().any(|s| s.contains("ENABLE ROW LEVEL SECURITY"))).unwrap();
        assert!(rls.iter().any(|s| s.starts_with("CREATE POLICY")) && rls.iter().any(|s| s.contains("FORCE ROW LEVEL SECURITY")));
        assert_eq!(steps.first().map(|s| s.work.clone()), Some(vec![Work::Backfill(Uuid::from_bytes([0; 16]))]));
    }

    #[pg_test]
    fn one_call_builds_before_it_changes_the_catalog_and_needs_no_check() {
        let steps = plan(&untouched(), Mode::OneCall).unwrap();
        let last_build = steps.iter().rposition(|s| s.work.iter().any(|w| matches!(w, Work::Index(_)))).unwrap();
        let first_attach = steps.iter().position(|s| s.name == "attach UNIQUE (org, primary key)").unwrap();
        assert!(last_build < first_attach);
        assert!(!transactions(&steps).concat().iter().any(|s| s.contains("IS NOT NULL) NOT VALID")));
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "fill the org column",
                "add the organization foreign key",
                "build the (org, primary key) index",
                "build a scoped unique index",
                "attach UNIQUE (org, primary key)",
                "scope a unique key to the tenant",
                "make a foreign key composite",
                "default the org column to the tenant context",
                "make the org column NOT NULL",
                "isolate with row-level security",
                "register the table",
            ]
        );
    }

    #[pg_test]
    fn a_resumed_plan_uses_what_an_earlier_run_left() {
        let mut d = untouched();
        d.has_nulls = false;
        d.not_null_check = Some(Check { name: "t_org_id_not_null_check".into(), valid: true });
        d.org_key = Some(OrgKey { cols: vec!["org_id".into(), "id".into()], state: IndexState::Built("t_org_id_id_key".into()) });
        d.scoped[0].index = IndexState::Invalid("t_sku_key_org_id".into());
        let steps = plan(&d, Mode::Online).unwrap();
        assert!(!steps.iter().any(|s| s.name == "fill the org column" || s.name == "prove the org column NOT NULL"));
        assert!(!steps.iter().any(|s| s.name == "build the (org, primary key) index"));
        let rebuild = steps.iter().find(|s| s.name == "build a scoped unique index").unwrap();
        assert_eq!(
            rebuild.work,
            vec![
                Work::Index("DROP INDEX public.t_sku_key_org_id".into()),
                Work::Index("CREATE UNIQUE INDEX t_sku_key_org_id ON public.t USING btree (org_id, sku)".into()),
            ]
        );
        let attach = steps.iter().find(|s| s.name == "attach UNIQUE (org, primary key)").unwrap();
        assert_eq!(attach.work, vec![Work::Transaction(vec!["ALTER TABLE public.t ADD CONSTRAINT t_org_id_id_key UNIQUE USING INDEX t_org_id_id_key".into()])]);
        let not_null = steps.iter().find(|s| s.name == "make the org column NOT NULL").unwrap();
        assert_eq!(
            not_null.work,
            vec![Work::Transaction(vec![
                "ALTER TABLE public.t ALTER COLUMN org_id SET NOT NULL".into(),
                "ALTER TABLE public.t DROP CONSTRAINT t_org_id_not_null_check".into(),
            ])]
        );
    }

    #[pg_test]
    fn a_finished_table_plans_nothing() {
        let mut d = untouched();
        d.column = Some(Column { attnum: 4, type_name: "uuid".into(), not_null: true, default: Some(CONTEXT_DEFAULT.into()) });
        d.has_nulls = false;
        d.org_fk = Some(fk("t_org_id_fkey", &["org_id"], "inventory.organizations", &["id"]));
        d.org_key = Some(OrgKey { cols: vec!["org_id".into(), "id".into()], state: IndexState::Done });
        d.scoped.clear();
        d.tenant_fks.clear();
        d.leading_index = IndexState::Done;
        let expression = "(org_id = ( SELECT inventory.current_org_id() AS current_org_id))".to_string();
        d.relations[0] = Relation {
            oid: d.table.oid,
            name: "public.t".into(),
            enabled: true,
            forced: true,
            policy: Some(Policy { using: Some(expression.clone()), check: Some(expression), for_all_public: true }),
        };
        d.registered = Some("org_id".into());
        assert_eq!(plan(&d, Mode::OneCall).unwrap(), vec![]);
        assert_eq!(plan(&d, Mode::Online).unwrap(), vec![]);
    }

    #[pg_test]
    fn on_citus_a_table_is_distributed_by_its_org_column_first_and_gets_the_plain_policy() {
        let mut d = untouched();
        d.on_citus = true;
        let refused = plan(&d, Mode::OneCall).unwrap_err();
        assert_eq!(refused.code, PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED);
        assert!(refused.message.contains("is not distributed"), "{}", refused.message);
        assert!(refused.hint.contains("create_distributed_table('public.t', 'org_id'"), "{}", refused.hint);
        d.distributed_by = Some("id".into());
        assert!(plan(&d, Mode::OneCall).unwrap_err().message.contains("is distributed by id, not by its org column"));

        d.distributed_by = Some("org_id".into());
        let statements: Vec<String> = transactions(&plan(&d, Mode::OneCall).unwrap()).concat();
        assert!(statements.iter().any(|s| s.contains("USING (org_id = inventory.current_org_id())")), "{statements:?}");
        assert!(!statements.iter().any(|s| s.contains("(SELECT inventory.current_org_id())")), "{statements:?}");
        // Citus refuses ALTER TABLE on the distribution column: the default is set on the coordinator alone.
        let default = statements.iter().position(|s| s.contains("SET DEFAULT")).unwrap();
        assert!(statements[default - 1].contains("'citus.enable_ddl_propagation', 'off'"), "{statements:?}");
        assert!(statements[default + 1].contains("'citus.enable_ddl_propagation', 'on'"), "{statements:?}");

        assert_eq!(plan(&d, Mode::Online).unwrap_err().code, PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED);

        // The extension's own tables are made tenant-scoped before inventory.distribute.
        let mut d = untouched();
        d.on_citus = true;
        d.builtin = true;
        assert!(plan(&d, Mode::OneCall).is_ok());
    }

    #[pg_test]
    fn refusals_carry_their_sqlstate() {
        let mut d = untouched();
        d.backfill_org = None;
        let refused = plan(&d, Mode::Online).unwrap_err();
        assert_eq!(refused.code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert!(refused.message.contains("whose org_id is NULL"), "{}", refused.message);

        let mut d = untouched();
        d.pk.clear();
        d.any_unique = false;
        d.org_key = None;
        assert!(plan(&d, Mode::OneCall).unwrap_err().message.contains("has no primary key"));

        let mut d = untouched();
        d.scoped[0].dependents = vec![(fk("other_sku_fkey", &["sku"], "public.t", &["sku"]), None)];
        assert!(plan(&d, Mode::OneCall).unwrap_err().message.contains("which is not tenant-scoped"));

        let mut d = untouched();
        d.open_policies = vec![("everyone on public.t".into(), "DROP POLICY everyone ON public.t;".into(), "…".into())];
        assert_eq!(plan(&d, Mode::Online).unwrap_err().code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        // Nothing is planned before a refusal: the call changes nothing.
        let mut d = untouched();
        d.column = Some(Column { attnum: 4, type_name: "text".into(), not_null: false, default: None });
        assert!(plan(&d, Mode::OneCall).unwrap_err().message.contains("is of type text, not uuid"));
    }
}
