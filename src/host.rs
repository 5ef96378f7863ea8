//! The subdomain of a request's Host header, as a web app's tenant router reads it: the first DNS label,
//! lower-cased, port stripped, when the host has at least three labels. Pure Rust, no database access.

use std::net::Ipv4Addr;

/// Longest host name DNS allows (RFC 1035), without a trailing dot.
const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, PartialEq, Eq)]
pub enum HostError {
    TooLong,
    BadPort,
    BadLabel,
}

impl HostError {
    pub fn describe(&self) -> &'static str {
        match self {
            HostError::TooLong => "host is longer than 253 characters",
            HostError::BadPort => "host has a port that is not a number from 0 to 65535",
            HostError::BadLabel => {
                "host has a label that is not a DNS label (letters, digits and inner hyphens, 1 to 63 characters)"
            }
        }
    }
}

/// A lower-case DNS label: 1–63 letters, digits and hyphens, not starting or ending with a hyphen.
/// Subdomains are stored in this form.
pub fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// The tenant subdomain of `host`, `None` when the host names no subdomain (fewer than three labels,
/// an IP address, or empty), or an error when the text is not a host at all.
pub fn subdomain_of(host: &str) -> Result<Option<String>, HostError> {
    let host = host.trim();
    if host.is_empty() {
        return Ok(None);
    }
    if host.len() > MAX_HOST_LEN + 7 {
        return Err(HostError::TooLong);
    }
    // An IPv6 literal ("[::1]:8080") names no subdomain; only its optional port needs checking.
    if let Some(rest) = host.strip_prefix('[') {
        let (_, after) = rest.split_once(']').ok_or(HostError::BadLabel)?;
        return match after {
            "" => Ok(None),
            _ => after.strip_prefix(':').map(check_port).unwrap_or(Err(HostError::BadPort)).map(|_| None),
        };
    }
    let name = match host.split_once(':') {
        Some((name, port)) => {
            check_port(port)?;
            name
        }
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.len() > MAX_HOST_LEN {
        return Err(HostError::TooLong);
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Ok(None);
    }
    let labels: Vec<&str> = name.split('.').collect();
    if !labels.iter().all(|label| is_dns_label(label)) {
        return Err(HostError::BadLabel);
    }
    Ok((labels.len() >= 3).then(|| labels[0].to_string()))
}

fn check_port(port: &str) -> Result<(), HostError> {
    let digits_only = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    match digits_only && port.parse::<u32>().is_ok_and(|p| p <= 65535) {
        true => Ok(()),
        false => Err(HostError::BadPort),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn subdomain_is_first_label_of_three_or_more() {
        assert_eq!(subdomain_of("acme.example.com"), Ok(Some("acme".into())));
        assert_eq!(subdomain_of("eu.acme.example.co.uk"), Ok(Some("eu".into())));
        assert_eq!(subdomain_of("  Acme.Example.COM  "), Ok(Some("acme".into())));
    }

    #[pg_test]
    fn port_and_trailing_dot_are_stripped() {
        assert_eq!(subdomain_of("acme.example.com:8443"), Ok(Some("acme".into())));
        assert_eq!(subdomain_of("acme.example.com."), Ok(Some("acme".into())));
        assert_eq!(subdomain_of("acme.example.com.:80"), Ok(Some("acme".into())));
    }

    #[pg_test]
    fn no_subdomain_below_three_labels_or_for_addresses() {
        assert_eq!(subdomain_of("example.com"), Ok(None));
        assert_eq!(subdomain_of("localhost:3000"), Ok(None));
        assert_eq!(subdomain_of(""), Ok(None));
        assert_eq!(subdomain_of("10.1.2.3:5432"), Ok(None));
        assert_eq!(subdomain_of("[::1]:8080"), Ok(None));
        assert_eq!(subdomain_of("[2001:db8::1]"), Ok(None));
    }

    #[pg_test]
    fn malformed_hosts_are_errors() {
        assert_eq!(subdomain_of("acme.example.com:http"), Err(HostError::BadPort));
        assert_eq!(subdomain_of("acme.example.com:99999"), Err(HostError::BadPort));
        assert_eq!(subdomain_of("acme.example.com:"), Err(HostError::BadPort));
        assert_eq!(subdomain_of("a:b:c"), Err(HostError::BadPort));
        assert_eq!(subdomain_of("[::1]x"), Err(HostError::BadPort));
        assert_eq!(subdomain_of("[::1"), Err(HostError::BadLabel));
        assert_eq!(subdomain_of("ac me.example.com"), Err(HostError::BadLabel));
        assert_eq!(subdomain_of("-acme.example.com"), Err(HostError::BadLabel));
        assert_eq!(subdomain_of("acme..example.com"), Err(HostError::BadLabel));
        assert_eq!(subdomain_of("acme.example.com/path"), Err(HostError::BadLabel));
        assert_eq!(subdomain_of("x'; drop table t; --.example.com"), Err(HostError::BadLabel));
        assert_eq!(subdomain_of(&"a".repeat(64)), Err(HostError::BadLabel));
        assert_eq!(subdomain_of(&"a.".repeat(200)), Err(HostError::TooLong));
    }

    #[pg_test]
    fn dns_labels() {
        assert!(is_dns_label("acme"));
        assert!(is_dns_label("a-1"));
        assert!(is_dns_label(&"a".repeat(63)));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(!is_dns_label("Acme"));
        assert!(!is_dns_label("acme-"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label("ac_me"));
    }
}
