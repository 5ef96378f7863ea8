//! The one path every name and value takes into SQL that the extension generates (issue 12.10).
//!
//! Generated DDL and DML (the isolation helper, track_balances, the balance trigger's statements,
//! reconcile, rebuild, export/import) splice in names of tables and columns that applications chose —
//! quotes, semicolons, spaces, mixed case, Unicode, 63-byte names — and a few literal values. Every one
//! of them goes through `ident` or `literal` here (PostgreSQL's own quoting rules, via pgrx's
//! `quote_identifier`/`quote_literal`), or arrives already quoted by PostgreSQL itself (`regclass`,
//! `regrole` and `regprocedure` text, `quote_ident()` in a catalog query). Values that are data travel
//! as query parameters, never as text. `source_check::only_this_module_quotes` fails the build's tests when
//! another module quotes on its own; tests/pg_regress/sql/13_hostile_names.sql runs every generator on
//! hostile names.

/// A name as a quoted SQL identifier (`"itemId"`, `"a""b"`; lower-case plain names stay bare).
pub fn ident(name: impl AsRef<str>) -> String {
    pgrx::spi::quote_identifier(name.as_ref())
}

/// A value as a quoted SQL string literal (`'it''s'`, `E'\\…'` where backslashes need it).
pub fn literal(value: impl AsRef<str>) -> String {
    pgrx::spi::quote_literal(value.as_ref())
}

/// Names as a comma-separated list of quoted identifiers, each after `prefix` (an alias like `b.`).
pub fn ident_list(prefix: &str, names: &[String]) -> String {
    names.iter().map(|n| format!("{prefix}{}", ident(n))).collect::<Vec<_>>().join(", ")
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn names_and_values_are_quoted() {
        assert_eq!(ident("itemId"), "\"itemId\"");
        assert_eq!(ident("a\"; DROP TABLE x; --"), "\"a\"\"; DROP TABLE x; --\"");
        assert_eq!(ident("plain"), "plain");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident_list("b.", &["x".into(), "Y".into()]), "b.x, b.\"Y\"");
    }
}

/// Plain tests: no PostgreSQL symbols, so they link into the test binary.
#[cfg(test)]
mod source_check {

    /// Every other module builds SQL with `ident`/`literal`/`ident_list` and never quotes by hand.
    #[test]
    fn only_this_module_quotes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("sql_text.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for needle in ["quote_identifier", "quote_literal", "spi::quote"] {
                        if text.contains(needle) {
                            offenders.push(format!("{} uses {needle}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "quote through crate::sql_text only: {offenders:?}");
    }
}
