//! Tenant export and import (SPEC §8): one organization's rows as one versioned JSON document.
//!
//! The format is defined once, by `SECTIONS`: export builds its SQL from it, import checks a document
//! against it (each problem named by its field, e.g. `ledger[12].qty`) and builds its INSERTs from it.
//! Quantities travel as strings so that every digit of a numeric survives JSON; ledger ids are the
//! exporting database's and only give the order: an import numbers the rows anew (ids are per database)
//! in that order, and its one INSERT into the ledger rebuilds the balances through the balance trigger.
//! An import is one statement: any error, and nothing of the document stays.

use crate::errors;
use crate::organizations;
use crate::spi_util::rows;
use crate::sql_types::JsonbText;
use crate::tenant;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::spi::quote_literal;
use pgrx::{JsonB, Uuid};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The document's `format`; a later version of the format gets a new one.
pub const FORMAT: &str = "inventory_ext.org/1";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Uuid,
    Text,
    Bool,
    /// A numeric, as a JSON string.
    Numeric,
    BigInt,
    Timestamp,
    Date,
}

struct Field {
    name: &'static str,
    kind: Kind,
    nullable: bool,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, nullable: false }
}

const fn nullable(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, nullable: true }
}

/// One array of the document: a built-in table's rows of the tenant, without `org_id`.
struct Section {
    key: &'static str,
    table: &'static str,
    order_by: &'static str,
    fields: &'static [Field],
}

const ORGANIZATION: &[Field] = &[
    field("id", Kind::Uuid),
    field("name", Kind::Text),
    nullable("subdomain", Kind::Text),
    field("active", Kind::Bool),
    field("created_at", Kind::Timestamp),
    field("updated_at", Kind::Timestamp),
];

/// In the order they are imported: whatever a row refers to comes first.
const SECTIONS: &[Section] = &[
    Section {
        key: "items",
        table: "inventory.items",
        order_by: "id",
        fields: &[
            field("id", Kind::Uuid),
            field("sku", Kind::Text),
            field("name", Kind::Text),
            field("uom", Kind::Text),
            field("allow_negative", Kind::Bool),
            field("created_at", Kind::Timestamp),
        ],
    },
    Section {
        key: "locations",
        table: "inventory.locations",
        order_by: "id",
        fields: &[
            field("id", Kind::Uuid),
            field("code", Kind::Text),
            field("name", Kind::Text),
            field("created_at", Kind::Timestamp),
        ],
    },
    Section {
        key: "lots",
        table: "inventory.lots",
        order_by: "id",
        fields: &[
            field("id", Kind::Uuid),
            field("item_id", Kind::Uuid),
            field("code", Kind::Text),
            nullable("expires_on", Kind::Date),
            field("created_at", Kind::Timestamp),
        ],
    },
    Section {
        key: "ledger",
        table: "inventory.ledger",
        order_by: "id",
        fields: &[
            field("id", Kind::BigInt),
            field("item_id", Kind::Uuid),
            field("location_id", Kind::Uuid),
            nullable("lot_id", Kind::Uuid),
            field("qty", Kind::Numeric),
            nullable("reason", Kind::Text),
            nullable("reference", Kind::Text),
            field("occurred_at", Kind::Timestamp),
            field("created_at", Kind::Timestamp),
            field("created_by", Kind::Text),
        ],
    },
];

/// References inside the document: (section, field) must be the id of a row of (section).
const REFERENCES: &[(&str, &str, &str)] = &[
    ("lots", "item_id", "items"),
    ("ledger", "item_id", "items"),
    ("ledger", "location_id", "locations"),
    ("ledger", "lot_id", "lots"),
];

fn json_object_sql(fields: &[Field], alias: &str) -> String {
    let pairs = fields.iter().map(|f| {
        let column = format!("{alias}.{}", f.name);
        let value = if f.kind == Kind::Numeric { format!("{column}::text") } else { column };
        format!("{}, {value}", quote_literal(f.name))
    });
    format!("jsonb_build_object({})", pairs.collect::<Vec<_>>().join(", "))
}

fn export_sql() -> String {
    let sections = SECTIONS.iter().map(|s| {
        format!(
            "{key}, (SELECT coalesce(jsonb_agg({obj} ORDER BY t.{order}), '[]') FROM {table} t WHERE t.org_id = $1)",
            key = quote_literal(s.key),
            obj = json_object_sql(s.fields, "t"),
            order = s.order_by,
            table = s.table,
        )
    });
    format!(
        "SELECT jsonb_build_object('format', {format}, 'exported_at', now(),
                'organization', (SELECT {org} FROM inventory.organizations o WHERE o.id = $1), {sections})",
        format = quote_literal(FORMAT),
        org = json_object_sql(ORGANIZATION, "o"),
        sections = sections.collect::<Vec<_>>().join(", "),
    )
}

/// One tenant as a document: its organization (without any API key material), items, locations, lots
/// and ledger. Administrators may export any organization; a caller that row-level security applies to
/// (if granted this function) only its current tenant's.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn export_org(org_id: Option<Uuid>) -> JsonB {
    let Some(org_id) = org_id else {
        errors::invalid_argument("org_id must not be NULL", "Pass the organization's id.")
    };
    organizations::authorize_management_of(org_id);
    if matches!(organizations::find_by_id(org_id), organizations::Found::Nothing) {
        errors::invalid_argument(format!("no organization {org_id}"), "Pass the id of an existing organization.")
    }
    Spi::get_one_with_args::<JsonB>(&export_sql(), &[org_id.into()])
        .expect("exporting the organization failed")
        .expect("an export document")
}

/// 22023 naming the field of the document that is wrong.
fn malformed(path: &str, problem: &str) -> ! {
    errors::invalid_argument(
        format!("import_org: {path} {problem}"),
        format!("The document must be one that inventory.export_org wrote (format \"{FORMAT}\")."),
    )
}

pub(crate) fn is_numeric(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

/// Dates and timestamps as PostgreSQL's JSON writes them (`2026-11-29`, `2026-11-29T01:17:50.81+00:00`);
/// the cast on import checks the values themselves.
pub(crate) fn is_date_like(s: &str, with_time: bool) -> bool {
    let b = s.as_bytes();
    let date = b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-';
    date && (if with_time { true } else { b.len() == 10 })
        && s.bytes().all(|c| c.is_ascii_digit() || b"-:.+TZ ".contains(&c))
}

fn check_value(path: &str, kind: Kind, value: &Value) {
    let ok = match (kind, value) {
        (Kind::Uuid, Value::String(s)) => uuid::Uuid::parse_str(s).is_ok(),
        (Kind::Text, Value::String(_)) => true,
        (Kind::Bool, Value::Bool(_)) => true,
        (Kind::Numeric, Value::String(s)) => is_numeric(s),
        (Kind::BigInt, Value::Number(n)) => n.as_i64().is_some(),
        (Kind::Timestamp, Value::String(s)) => is_date_like(s, true),
        (Kind::Date, Value::String(s)) => is_date_like(s, false),
        _ => false,
    };
    if !ok {
        let expected = match kind {
            Kind::Uuid => "a UUID string",
            Kind::Text => "a string",
            Kind::Bool => "true or false",
            Kind::Numeric => "a number written as a string (e.g. \"12.5\")",
            Kind::BigInt => "an integer",
            Kind::Timestamp => "a timestamp string (e.g. \"2026-11-29T10:00:00+00:00\")",
            Kind::Date => "a date string (e.g. \"2026-11-29\")",
        };
        malformed(path, &format!("must be {expected}, not {value}"));
    }
}

fn check_object(path: &str, value: Option<&Value>, fields: &[Field]) {
    let Some(object) = value.and_then(Value::as_object) else { malformed(path, "must be an object") };
    for f in fields {
        match object.get(f.name) {
            None | Some(Value::Null) if f.nullable => {}
            None | Some(Value::Null) => malformed(&format!("{path}.{}", f.name), "is missing"),
            Some(v) => check_value(&format!("{path}.{}", f.name), f.kind, v),
        }
    }
    if let Some(unknown) = object.keys().find(|k| !fields.iter().any(|f| f.name == *k)) {
        malformed(&format!("{path}.{unknown}"), "is not a field of this format");
    }
}

fn section<'a>(doc: &'a Map<String, Value>, key: &str) -> &'a Vec<Value> {
    match doc.get(key) {
        Some(Value::Array(rows)) => rows,
        Some(_) => malformed(key, "must be an array"),
        None => malformed(key, "is missing"),
    }
}

/// Checks the whole document before anything is written: shape, types, and that every reference
/// inside it (a lot's item, a ledger row's item, location and lot) is to a row of the document.
fn check_document(doc: &Value) -> Uuid {
    let Some(top) = doc.as_object() else { malformed("the document", "must be a JSON object") };
    match top.get("format") {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(other) => malformed("format", &format!("must be \"{FORMAT}\", not {other}")),
        None => malformed("format", "is missing"),
    }
    check_object("organization", top.get("organization"), ORGANIZATION);
    for s in SECTIONS {
        for (i, row) in section(top, s.key).iter().enumerate() {
            check_object(&format!("{}[{i}]", s.key), Some(row), s.fields);
        }
    }
    for (from, column, to) in REFERENCES {
        let ids: HashSet<&str> = section(top, to).iter().filter_map(|r| r["id"].as_str()).collect();
        for (i, row) in section(top, from).iter().enumerate() {
            if let Some(id) = row.get(*column).and_then(Value::as_str) {
                if !ids.contains(id) {
                    malformed(&format!("{from}[{i}].{column}"), &format!("refers to {id}, which is not in \"{to}\""));
                }
            }
        }
    }
    let id = top["organization"]["id"].as_str().expect("checked above");
    Uuid::from_slice(uuid::Uuid::parse_str(id).expect("checked above").as_bytes()).expect("16 bytes")
}

/// 23505: the document's ids (or subdomain) are already in this database.
fn refuse_existing(org_id: Uuid, doc: &Value) {
    let taken = |path: String, what: String| -> ! {
        errors::raise(
            PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            format!("import_org: {path} {what} already exists in this database"),
            "Nothing was imported. An organization is imported once; to replace one, remove it first.",
        )
    };
    if let Some(row) = rows(
        "SELECT CASE WHEN o.id = $1 THEN 'id' ELSE 'subdomain' END, CASE WHEN o.id = $1 THEN o.id::text ELSE o.subdomain END
           FROM inventory.organizations o, (SELECT $2::jsonb->>'subdomain' AS subdomain) d
          WHERE o.id = $1 OR o.subdomain = d.subdomain ORDER BY o.id = $1 DESC LIMIT 1",
        &[org_id.into(), doc["organization"].to_string().into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
    )
    .pop()
    {
        taken(format!("organization.{}", row.0), row.1);
    }
    for s in SECTIONS.iter().filter(|s| s.fields[0].kind == Kind::Uuid) {
        let found = rows(
            &format!(
                "SELECT e.ord - 1, k.id::text FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(row, ord)
                   CROSS JOIN LATERAL (SELECT (e.row->>'id')::uuid AS id) AS k
                   JOIN {table} t ON t.id = k.id ORDER BY e.ord LIMIT 1",
                table = s.table
            ),
            &[doc[s.key].to_string().into()],
            |r| Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
        )
        .pop();
        if let Some((i, id)) = found {
            taken(format!("{}[{i}].id", s.key), id);
        }
    }
}

fn column_sql(f: &Field, row: &str) -> String {
    let text = format!("{row}->>{}", quote_literal(f.name));
    match f.kind {
        Kind::Text => text,
        Kind::Uuid => format!("({text})::uuid"),
        Kind::Bool => format!("({text})::boolean"),
        Kind::Numeric => format!("({text})::numeric"),
        Kind::BigInt => format!("({text})::bigint"),
        Kind::Timestamp => format!("({text})::timestamptz"),
        Kind::Date => format!("({text})::date"),
    }
}

fn insert_sql(s: &Section) -> String {
    // The ledger's ids are the exporting database's: the rows get new ones here, in the same order.
    let columns: Vec<&Field> = s.fields.iter().filter(|f| !(s.key == "ledger" && f.name == "id")).collect();
    format!(
        "INSERT INTO {table} (org_id, {names})
         SELECT $2, {values} FROM jsonb_array_elements($1::jsonb) AS e(row)
          ORDER BY {order}",
        table = s.table,
        names = columns.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
        values = columns.iter().map(|f| column_sql(f, "e.row")).collect::<Vec<_>>().join(", "),
        order = column_sql(&s.fields[0], "e.row"),
    )
}

/// Loads a document that `export_org` wrote, into this or another database; returns the organization's
/// id. Administrators only. Balances are rebuilt from the imported ledger. The organization arrives
/// without an API key: issue one with `inventory.rotate_api_key`.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn import_org(doc: Option<JsonbText>) -> Uuid {
    if !tenant::caller_bypasses_rls() {
        errors::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "import_org is for administrators",
            "Run it as a superuser or a role with BYPASSRLS.",
        )
    }
    let Some(JsonbText(text)) = doc else { malformed("the document", "must not be NULL") };
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| malformed("the document", &format!("cannot be read ({e})")));
    let org_id = check_document(&doc);
    // Each statement gets only its own section: a large ledger is parsed once, by its INSERT.
    refuse_existing(org_id, &doc);
    let org_columns: Vec<&str> = ORGANIZATION.iter().map(|f| f.name).collect();
    Spi::run_with_args(
        &format!(
            "INSERT INTO inventory.organizations ({}) SELECT {} FROM (SELECT $1::jsonb AS row) AS o",
            org_columns.join(", "),
            ORGANIZATION.iter().map(|f| column_sql(f, "o.row")).collect::<Vec<_>>().join(", "),
        ),
        &[doc["organization"].to_string().into()],
    )
    .expect("importing the organization failed");
    for s in SECTIONS {
        Spi::run_with_args(&insert_sql(s), &[doc[s.key].to_string().into(), org_id.into()]).unwrap_or_else(|e| panic!("importing {}: {e}", s.key));
    }
    org_id
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use crate::spi_util::one_text;
    use crate::test_support::sqlstate_of;

    #[test]
    fn numerics_are_recognised() {
        for ok in ["1", "-2.50", "+.5", "3.", "1e10", "2.5E-3"] {
            assert!(is_numeric(ok), "{ok}");
        }
        for bad in ["", ".", "1.2.3", "abc", "1e", "NaN", "1 000", "0x10"] {
            assert!(!is_numeric(bad), "{bad}");
        }
    }

    fn stocked_org() -> String {
        Spi::run(
            "INSERT INTO inventory.organizations (id, name, subdomain) VALUES ('e1000000-0000-4000-8000-000000000001', 'Export', 'export');
             SET LOCAL app.org_id = 'e1000000-0000-4000-8000-000000000001';
             INSERT INTO inventory.items (id, sku, name) VALUES ('e1000000-0000-4000-a000-000000000001', 'E-1', 'one');
             INSERT INTO inventory.locations (id, code, name) VALUES ('e1000000-0000-4000-b000-000000000001', 'EL', 'shelf');
             INSERT INTO inventory.lots (id, item_id, code) VALUES ('e1000000-0000-4000-c000-000000000001', 'e1000000-0000-4000-a000-000000000001', 'LOT');
             SELECT inventory.post('e1000000-0000-4000-a000-000000000001', 'e1000000-0000-4000-b000-000000000001', 12.125);
             SELECT inventory.post('e1000000-0000-4000-a000-000000000001', 'e1000000-0000-4000-b000-000000000001', 2, 'e1000000-0000-4000-c000-000000000001');
             SET LOCAL app.org_id = '';",
        )
        .unwrap();
        one_text("SELECT inventory.export_org('e1000000-0000-4000-8000-000000000001')::text", &[]).unwrap()
    }

    #[pg_test]
    fn an_export_has_the_format_and_exact_quantities_and_no_key_material() {
        Spi::run("SELECT inventory.create_organization('Keyed', 'keyed')").unwrap();
        let doc: Value = serde_json::from_str(&stocked_org()).unwrap();
        assert_eq!(doc["format"], FORMAT);
        assert_eq!(doc["ledger"][0]["qty"], "12.125");
        assert_eq!(doc["ledger"].as_array().unwrap().len(), 2);
        assert!(!doc.to_string().contains("key"), "no API key material in {doc}");
    }

    #[pg_test]
    fn a_document_comes_back_once_with_its_balances() {
        let doc = stocked_org();
        Spi::run(
            "SET session_replication_role = replica;
             DELETE FROM inventory.ledger; DELETE FROM inventory.balances; DELETE FROM inventory.lots;
             DELETE FROM inventory.items; DELETE FROM inventory.locations;
             DELETE FROM inventory.organizations WHERE id = 'e1000000-0000-4000-8000-000000000001';
             SET session_replication_role = origin;",
        )
        .unwrap();
        let id = Spi::get_one_with_args::<Uuid>("SELECT inventory.import_org($1::jsonb)", &[doc.clone().into()]).unwrap();
        assert_eq!(id.unwrap().to_string(), "e1000000-0000-4000-8000-000000000001");
        let on_hand = one_text(
            "SELECT string_agg(qty::text, ',' ORDER BY lot_id NULLS FIRST) FROM inventory.balances
              WHERE org_id = 'e1000000-0000-4000-8000-000000000001'",
            &[],
        );
        assert_eq!(on_hand.as_deref(), Some("12.125,2"));
        let again = format!("SELECT inventory.import_org({}::jsonb)", quote_literal(&doc));
        assert_eq!(sqlstate_of(&again), "23505");
    }

    #[pg_test]
    fn malformed_documents_fail_with_22023() {
        for doc in [r#"[]"#, r#"{"format": "other/9"}"#, r#"{"format": "inventory_ext.org/1"}"#] {
            let err = sqlstate_of(&format!("SELECT inventory.import_org({}::jsonb)", quote_literal(doc)));
            assert_eq!(err, "22023", "{doc}");
        }
    }
}
