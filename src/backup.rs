//! Tenant export and import (SPEC §8): one organization's rows as one versioned JSON document.
//!
//! The format is defined once, by `SECTIONS`: export builds its SQL from it, import checks a document
//! against it (each problem named by its field, e.g. `ledger[12].qty`) and builds its INSERTs from it.
//! Quantities travel as strings so that every digit of a numeric survives JSON; ledger ids are the
//! exporting database's and only give the order: an import numbers the rows anew (ids are per database)
//! in that order, and its one INSERT into the ledger rebuilds the balances through the balance trigger.
//! An import is one statement: any error, and nothing of the document stays.

use crate::errors;
use crate::host;
use crate::organizations;
use crate::spi_util::{exec_with_args, rows};
use crate::sql_types::JsonbText;
use crate::tenant;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use crate::sql_text::literal;
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
    /// A subdomain: a lower-case DNS label (the organizations table's check).
    Subdomain,
    /// An organization's name: not blank, at most 200 characters (the organizations table's check).
    OrgName,
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
    field("name", Kind::OrgName),
    nullable("subdomain", Kind::Subdomain),
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
        format!("{}, {value}", literal(f.name))
    });
    format!("jsonb_build_object({})", pairs.collect::<Vec<_>>().join(", "))
}

fn export_sql() -> String {
    let sections = SECTIONS.iter().map(|s| {
        format!(
            "{key}, (SELECT coalesce(jsonb_agg({obj} ORDER BY t.{order}), '[]') FROM {table} t WHERE t.org_id = $1)",
            key = literal(s.key),
            obj = json_object_sql(s.fields, "t"),
            order = s.order_by,
            table = s.table,
        )
    });
    format!(
        "SELECT jsonb_build_object('format', {format}, 'exported_at', now(),
                'organization', (SELECT {org} FROM inventory.organizations o WHERE o.id = $1), {sections})",
        format = literal(FORMAT),
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
    // One row, never NULL (jsonb_build_object). A read: no transaction id is taken, so a standby can export.
    rows(&export_sql(), &[org_id.into()], |r| r.get::<JsonB>(1))
        .pop()
        .flatten()
        .unwrap_or_else(|| errors::no_row("exporting the organization"))
}

/// 22023 naming the field of the document that is wrong.
fn malformed(path: &str, problem: &str) -> ! {
    errors::invalid_argument(
        format!("import_org: {path} {problem}"),
        format!("The document must be one that inventory.export_org wrote (format \"{FORMAT}\")."),
    )
}

/// A quantity as PostgreSQL's numeric input reads it and numeric can hold it: an optional sign, ASCII
/// digits with an optional point, an optional exponent, a leading digit no higher than 10^131071 and at
/// most 16383 digits after the point (`value overflows numeric format` beyond). Stricter where
/// export_org never writes anything else: no NaN or infinities (no quantity), no surrounding spaces.
pub(crate) fn is_numeric(s: &str) -> bool {
    const MAX_DSCALE: i64 = 16383; // NUMERIC_DSCALE_MAX
    const MAX_DIGIT_POWER: i64 = 131071; // 4 × NUMERIC_WEIGHT_MAX + 3
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return false;
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => {
            let (negative, body) = match e.strip_prefix('-') {
                Some(body) => (true, body),
                None => (false, e.strip_prefix('+').unwrap_or(e)),
            };
            let significant = body.trim_start_matches('0');
            // Nine digits keep it far from overflow; larger exponents are out of numeric's range anyway.
            if body.is_empty() || !digits(body) || significant.len() > 9 {
                return false;
            }
            let magnitude = significant.parse::<i64>().unwrap_or(0);
            if negative { -magnitude } else { magnitude }
        }
    };
    let dscale = (frac.len() as i64 - exponent).max(0);
    // The power of ten of the leading non-zero digit; a zero has none.
    let int_significant = int.trim_start_matches('0');
    let leading = match (int_significant.len(), frac.bytes().position(|b| b != b'0')) {
        (0, None) => None,
        (0, Some(j)) => Some(-(j as i64) - 1 + exponent),
        (n, _) => Some(n as i64 - 1 + exponent),
    };
    dscale <= MAX_DSCALE && leading.is_none_or(|p| p <= MAX_DIGIT_POWER)
}

/// A UUID as PostgreSQL's uuid input reads it: 32 hex digits, optionally in braces, with a hyphen
/// allowed after any group of four of them but the last; nothing else (no spaces, no `urn:uuid:`, which
/// Rust's uuid crate would take). The same text gives the same 16 bytes as in PostgreSQL.
pub(crate) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    let braces = b.first() == Some(&b'{');
    let mut i = usize::from(braces);
    let mut bytes = [0u8; 16];
    for (k, byte) in bytes.iter_mut().enumerate() {
        let hex = |at: usize| b.get(at).and_then(|c| (*c as char).to_digit(16));
        *byte = (hex(i)? * 16 + hex(i + 1)?) as u8;
        i += 2;
        if k % 2 == 1 && k < 15 && b.get(i) == Some(&b'-') {
            i += 1;
        }
    }
    if braces {
        if b.get(i) != Some(&b'}') {
            return None;
        }
        i += 1;
    }
    (i == b.len()).then_some(bytes)
}

/// Dates and timestamps as PostgreSQL's JSON writes them (`2026-11-29`, `0044-03-15 BC`,
/// `2026-11-29T01:17:50.81+00:00`, `infinity`), checked as its date and timestamptz input would: a
/// month of 1 to 12, a day that the month has (leap years as PostgreSQL counts them, 1 BC being one),
/// a time of day up to 23:59:59.999999, a UTC offset up to 15:59:59, a year inside the type's range.
/// Stricter where export_org never writes anything else: a year of at least four digits, at most six
/// fractional digits, no `24:00:00` or leap second, offsets written `Z`, `±hh`, `±hh:mm` or
/// `±hh:mm:ss`, and the first and last year of each type's range left out.
pub(crate) fn is_date_like(s: &str, with_time: bool) -> bool {
    if matches!(s, "infinity" | "-infinity") {
        return true;
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let (date, time) = match with_time {
        true => match s.split_once(['T', ' ']) {
            Some((date, time)) => (date, Some(time)),
            None => (s, None),
        },
        false => (s, None),
    };
    let max_year = match (bc, with_time) {
        (true, _) => 4713,         // from 4714-11-24 BC
        (false, true) => 294275,   // to 294276-12-31
        (false, false) => 5874896, // to 5874897-12-31
    };
    date_ok(date, bc, max_year) && time.is_none_or(time_ok)
}

/// Digits only, and their value (None for anything else, or more than nine digits).
fn number(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().unwrap_or(0))
}

fn date_ok(date: &str, bc: bool, max_year: i64) -> bool {
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (number(y), number(m), number(d)) else { return false };
    // PostgreSQL counts 1 BC as year 0 for leap years (the proleptic Gregorian calendar).
    let astronomical = if bc { 1 - year } else { year };
    let leap = astronomical % 4 == 0 && (astronomical % 100 != 0 || astronomical % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    y.len() >= 4 && m.len() == 2 && d.len() == 2 && (1..=max_year).contains(&year) && (1..=12).contains(&month)
        && (1..=days).contains(&day)
}

/// `hh:mm:ss[.ffffff]` and an optional offset.
fn time_ok(time: &str) -> bool {
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => (time, ""),
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let fraction_ok = !clock.contains('.') || ((1..=6).contains(&fraction.len()) && number(fraction).is_some());
    let offset_ok = match offset.strip_prefix(['+', '-']) {
        None => offset.is_empty() || offset == "Z",
        Some(hms) => fields_ok(hms, 1, 15),
    };
    fields_ok(hms, 3, 23) && fraction_ok && offset_ok
}

/// `hh[:mm[:ss]]` with at least `min_fields` fields of two digits each, hours up to `max_hours`.
fn fields_ok(s: &str, min_fields: usize, max_hours: i64) -> bool {
    let fields: Vec<&str> = s.split(':').collect();
    (min_fields..=3).contains(&fields.len())
        && fields.iter().all(|f| f.len() == 2 && number(f).is_some())
        && fields.iter().zip([max_hours, 59, 59]).all(|(f, max)| number(f).is_some_and(|v| v <= max))
}

/// An organization's name as the organizations table checks it: not only spaces, at most 200 characters.
fn is_org_name(s: &str) -> bool {
    !s.trim_matches(' ').is_empty() && s.chars().count() <= 200
}

fn check_value(path: &str, kind: Kind, value: &Value) {
    let ok = match (kind, value) {
        (Kind::Uuid, Value::String(s)) => parse_uuid(s).is_some(),
        (Kind::Text, Value::String(_)) => true,
        (Kind::Bool, Value::Bool(_)) => true,
        (Kind::Numeric, Value::String(s)) => is_numeric(s),
        (Kind::BigInt, Value::Number(n)) => n.as_i64().is_some(),
        (Kind::Timestamp, Value::String(s)) => is_date_like(s, true),
        (Kind::Date, Value::String(s)) => is_date_like(s, false),
        (Kind::Subdomain, Value::String(s)) => host::is_dns_label(s),
        (Kind::OrgName, Value::String(s)) => is_org_name(s),
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
            Kind::Subdomain => "a lower-case DNS label (e.g. \"acme-eu\")",
            Kind::OrgName => "a non-blank name of at most 200 characters",
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
    // Compared as UUIDs, not as text: `{E2…}` and `e2…` are the same id to PostgreSQL.
    let uuid_of = |v: Option<&Value>| v.and_then(Value::as_str).and_then(parse_uuid);
    for (from, column, to) in REFERENCES {
        let ids: HashSet<[u8; 16]> = section(top, to).iter().filter_map(|r| uuid_of(r.get("id"))).collect();
        for (i, row) in section(top, from).iter().enumerate() {
            if let Some(id) = uuid_of(row.get(*column)) {
                if !ids.contains(&id) {
                    malformed(
                        &format!("{from}[{i}].{column}"),
                        &format!("refers to {}, which is not in \"{to}\"", Uuid::from_bytes(id)),
                    );
                }
            }
        }
    }
    let id = uuid_of(top["organization"].get("id")).unwrap_or_else(|| malformed("organization.id", "must be a UUID string"));
    Uuid::from_bytes(id)
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
    let text = format!("{row}->>{}", literal(f.name));
    match f.kind {
        Kind::Text | Kind::Subdomain | Kind::OrgName => text,
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
    crate::citus::one_connection_per_node();
    // Each statement gets only its own section: a large ledger is parsed once, by its INSERT.
    refuse_existing(org_id, &doc);
    let org_columns: Vec<&str> = ORGANIZATION.iter().map(|f| f.name).collect();
    exec_with_args(
        &format!(
            "INSERT INTO inventory.organizations ({}) SELECT {} FROM (SELECT $1::jsonb AS row) AS o",
            org_columns.join(", "),
            ORGANIZATION.iter().map(|f| column_sql(f, "o.row")).collect::<Vec<_>>().join(", "),
        ),
        &[doc["organization"].to_string().into()],
    );
    for s in SECTIONS {
        exec_with_args(&insert_sql(s), &[doc[s.key].to_string().into(), org_id.into()]);
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
        let again = format!("SELECT inventory.import_org({}::jsonb)", literal(&doc));
        assert_eq!(sqlstate_of(&again), "23505");
    }

    /// A small deterministic generator (xorshift), so that the oracle below needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// Which of `values` PostgreSQL's input function for `type_name` accepts (each cast in its own
    /// subtransaction).
    fn accepted_by_postgres(type_name: &str, values: &[String]) -> Vec<bool> {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.accepts(type_name text, v text) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN EXECUTE format('SELECT %L::%s', v, type_name); RETURN true;
             EXCEPTION WHEN OTHERS THEN RETURN false; END $$",
        )
        .unwrap();
        Spi::get_one_with_args::<Vec<bool>>(
            "SELECT array_agg(pg_temp.accepts($1, v) ORDER BY n) FROM unnest($2::text[]) WITH ORDINALITY AS t(v, n)",
            &[type_name.into(), values.to_vec().into()],
        )
        .unwrap()
        .unwrap()
    }

    /// Whatever the import's checks accept, PostgreSQL's input functions accept too, so a cast in the
    /// INSERT never fails after the check passed (the check names the field; the cast would not). And
    /// whatever PostgreSQL's JSON writes for a value of the type, the checks accept (a tenant exported
    /// can be imported).
    #[pg_test]
    fn import_checks_accept_nothing_postgresql_rejects() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let n = |rng: &mut Rng, digits: u32| rng.below(10u64.pow(digits)).to_string();
        let mut dates = Vec::new();
        let mut timestamps = Vec::new();
        let mut numerics = Vec::new();
        let mut uuids = Vec::new();
        for _ in 0..3000 {
            let year = match rng.below(4) {
                0 => format!("{:04}", rng.below(10000)),
                1 => rng.pick(&["0000", "0001", "4713", "4714", "294275", "294276", "294277", "5874896", "5874897", "5874898", "10000"]).to_string(),
                2 => format!("{:04}", 1900 + rng.below(200)),
                _ => n(&mut rng, 7),
            };
            let date = format!("{year}-{:02}-{:02}{}", rng.below(14), rng.below(33), rng.pick(&["", "", " BC", "BC", " AD"]));
            let time = format!(
                "{}{:02}:{:02}:{:02}{}{}",
                rng.pick(&["T", " ", "t"]),
                rng.below(26),
                rng.below(62),
                rng.below(62),
                rng.pick(&["", ".5", ".123456", ".1234567", ".", ".x"]),
                rng.pick(&["", "Z", "z", "+00:00", "-15:59:59", "+15:59:60", "+16:00", "+05", "+0530", "-1", "+5:30", "+05:30:"]),
            );
            let date_only = date.strip_suffix(" BC").unwrap_or(&date).to_string();
            let bc = if date.ends_with(" BC") { " BC" } else { "" };
            dates.push(date.clone());
            timestamps.push(date.clone());
            timestamps.push(format!("{date_only}{time}{bc}"));
            numerics.push(format!(
                "{}{}{}{}{}",
                rng.pick(&["", "-", "+", " ", "--"]),
                rng.pick(&["", "0", "00012", "9", "123456789012345678901234567890"]),
                rng.pick(&["", ".", ".5", ".000001", ".0"]),
                rng.pick(&["", "e", "E", "e+", "e-"]),
                rng.pick(&["", "1", "16383", "16384", "131071", "131072", "131067", "1000000000", "0001"]),
            ));
            let hex: String = (0..32).map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap()).collect();
            let mut uuid = String::new();
            for (i, c) in hex.chars().enumerate() {
                uuid.push(if rng.below(5) == 0 { c.to_ascii_uppercase() } else { c });
                if i % 4 == 3 && i < 31 && rng.below(3) == 0 {
                    uuid.push('-');
                }
            }
            uuids.push(match rng.below(8) {
                0 => format!("{{{uuid}}}"),
                1 => format!("urn:uuid:{uuid}"),
                2 => format!("{uuid}-"),
                3 => format!(" {uuid}"),
                4 => uuid[..uuid.len() - 1].to_string(),
                _ => uuid,
            });
        }
        let checks: [(&str, &Vec<String>, &dyn Fn(&str) -> bool); 4] = [
            ("date", &dates, &|v| is_date_like(v, false)),
            ("timestamptz", &timestamps, &|v| is_date_like(v, true)),
            ("numeric", &numerics, &is_numeric),
            ("uuid", &uuids, &|v| parse_uuid(v).is_some()),
        ];
        for (type_name, values, check) in checks {
            let postgres = accepted_by_postgres(type_name, values);
            let mut accepted = 0;
            for (value, pg_accepts) in values.iter().zip(postgres) {
                if check(value) {
                    accepted += 1;
                    assert!(pg_accepts, "{type_name}: the import accepts {value:?}, PostgreSQL does not");
                }
            }
            assert!(accepted > 100, "{type_name}: only {accepted} of {} accepted; the generator is off", values.len());
        }
        // Every value PostgreSQL's JSON writes for these types is accepted, to the ends of their ranges.
        let written = |sql: &str| -> Vec<String> { Spi::get_one::<Vec<String>>(sql).unwrap().unwrap() };
        let spread = "SELECT array_agg(to_jsonb(v) #>> '{}') FROM (SELECT {expr} AS v FROM generate_series(1, 2000) i
                      UNION ALL SELECT unnest({ends})) t";
        for (expr, ends, check) in [
            (
                "date '4713-01-01 BC' + (random() * 2147000000)::int",
                "ARRAY['infinity', '-infinity', '4713-01-01 BC', '5874896-12-31', '2024-02-29', '0001-02-29 BC']::date[]",
                &(|v: &str| is_date_like(v, false)) as &dyn Fn(&str) -> bool,
            ),
            (
                "timestamptz '4713-01-02 BC' + random() * interval '298000 years'",
                "ARRAY['infinity', '-infinity', '4713-01-02 00:00 BC', '294275-12-31 23:59:59.999999+00']::timestamptz[]",
                &|v: &str| is_date_like(v, true),
            ),
            (
                "round((random() - 0.5)::numeric * 10::numeric ^ (i % 60 - 30), i % 20)",
                "ARRAY[0, -0.000001, 1e131071, 9e131071, 1e-16383, ('0.' || repeat('0', 16382) || '1')::numeric]",
                &is_numeric,
            ),
            ("gen_random_uuid()", "ARRAY['00000000-0000-0000-0000-000000000000']::uuid[]", &|v: &str| {
                parse_uuid(v).is_some()
            }),
        ] {
            for value in written(&spread.replace("{expr}", expr).replace("{ends}", ends)) {
                assert!(check(&value), "PostgreSQL writes {value:?} ({expr}), the import refuses it");
            }
        }
    }

    #[pg_test]
    fn malformed_documents_fail_with_22023() {
        for doc in [r#"[]"#, r#"{"format": "other/9"}"#, r#"{"format": "inventory_ext.org/1"}"#] {
            let err = sqlstate_of(&format!("SELECT inventory.import_org({}::jsonb)", literal(doc)));
            assert_eq!(err, "22023", "{doc}");
        }
    }
}
