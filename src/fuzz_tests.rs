//! Property-based fuzzing (proptest) of the pure-Rust parsers that read untrusted text: the Host
//! header, API keys, tenant ids, and the number and date fields of an import document. Each property
//! runs thousands of generated inputs (arbitrary Unicode, and inputs shaped like the real thing) and
//! must hold for all of them; a panic is a failure too. Bounded: together well under a minute.

use crate::{api_key, backup, guc, host};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text a client could send: any Unicode, and ASCII that looks like hosts, keys and numbers.
fn untrusted() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        "[ -~]{0,300}",
        "[a-zA-Z0-9.:\\[\\]-]{0,80}",
        "inv_[0-9a-fA-F]{0,70}",
        "[+-]?[0-9.eE+-]{0,20}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_host_never_panics_and_only_returns_dns_labels(input in untrusted()) {
        if let Ok(Some(label)) = host::subdomain_of(&input) {
            prop_assert!(host::is_dns_label(&label), "{label:?} from {input:?}");
        }
    }

    #[test]
    fn fuzz_host_finds_the_first_label_of_real_hosts(
        sub in "[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?",
        domain in "[a-z0-9]{1,10}\\.[a-z]{2,6}",
        port in proptest::option::of(0u32..=65535),
    ) {
        let host = match port { Some(p) => format!("{sub}.{domain}:{p}"), None => format!("{sub}.{domain}") };
        prop_assert_eq!(host::subdomain_of(&host), Ok(Some(sub.to_ascii_lowercase())));
    }

    #[test]
    fn fuzz_api_key_prefix_only_for_well_formed_keys(input in untrusted()) {
        if let Some(prefix) = api_key::prefix_of(&input) {
            prop_assert_eq!(input.len(), 68);
            prop_assert!(input.starts_with(prefix) && prefix.len() == 12);
            prop_assert!(input[4..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn fuzz_api_key_verifies_only_itself(key in "inv_[0-9a-f]{64}", other in untrusted()) {
        let stored = api_key::hash(&key);
        prop_assert!(api_key::verify(&key, &stored));
        prop_assert_eq!(api_key::verify(&other, &stored), other == key);
        prop_assert!(!api_key::verify(&key, &stored[..stored.len() - 1]));
    }

    #[test]
    fn fuzz_tenant_ids_parse_only_as_canonical_uuids(input in untrusted()) {
        match guc::parse_org_id(&input) {
            Ok(None) => prop_assert!(input.is_empty()),
            Ok(Some(bytes)) => prop_assert_eq!(uuid::Uuid::from_bytes(bytes).to_string(), input.to_ascii_lowercase()),
            Err(()) => {}
        }
    }

    #[test]
    fn fuzz_tenant_ids_round_trip(bytes in any::<[u8; 16]>()) {
        let text = uuid::Uuid::from_bytes(bytes).to_string();
        prop_assert_eq!(guc::parse_org_id(&text), Ok(Some(bytes)));
        prop_assert_eq!(guc::parse_org_id(&text.to_ascii_uppercase()), Ok(Some(bytes)));
    }

    /// Every string the import accepts as a quantity is a number (Rust's float syntax is the oracle;
    /// PostgreSQL's numeric input accepts the same forms), and every plain decimal is accepted.
    #[test]
    fn fuzz_import_numbers(input in untrusted(), int in "[+-]?[0-9]{1,30}", frac in "[0-9]{0,30}") {
        if backup::is_numeric(&input) {
            prop_assert!(input.parse::<f64>().is_ok(), "{input:?}");
        }
        let decimal = format!("{int}.{frac}");
        prop_assert!(backup::is_numeric(&int));
        prop_assert!(backup::is_numeric(&decimal));
    }

    #[test]
    fn fuzz_import_dates(input in untrusted(), y in 1000u32..9999, m in 1u32..=12, d in 1u32..=28) {
        let _ = backup::is_date_like(&input, true);
        let date = format!("{y}-{m:02}-{d:02}");
        let timestamp = format!("{date}T10:11:12.345+00:00");
        prop_assert!(backup::is_date_like(&date, false));
        prop_assert!(backup::is_date_like(&timestamp, true));
        prop_assert!(!backup::is_date_like(&timestamp, false));
    }
}
