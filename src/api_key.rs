//! API keys: 256 random bits from the operating system, shown once, stored only as a SHA-256 hash beside
//! a short non-secret prefix that finds the stored row. Pure Rust, no database access.
//!
//! A key reads `inv_` followed by 64 lower-case hex digits. The first 12 characters are its prefix.
//! The keys are uniformly random, so a fast hash is enough: there is nothing to brute-force.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_TAG: &str = "inv_";
const SECRET_BYTES: usize = 32;
const KEY_LEN: usize = KEY_TAG.len() + 2 * SECRET_BYTES;
const PREFIX_LEN: usize = KEY_TAG.len() + 8;

pub struct NewKey {
    pub key: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

/// A fresh key. The operating system's generator failing is a system error (58000), as PostgreSQL
/// reports a failing system call; nothing is stored.
pub fn generate() -> NewKey {
    let mut secret = [0u8; SECRET_BYTES];
    if let Err(e) = getrandom::getrandom(&mut secret) {
        crate::errors::raise(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            format!("could not generate an API key: the operating system's random generator failed ({e})"),
            "Check the server's random source (getrandom, /dev/urandom) and try again.",
        )
    }
    let key = format!("{KEY_TAG}{}", hex::encode(secret));
    NewKey { prefix: key[..PREFIX_LEN].to_string(), hash: hash(&key), key }
}

/// The lookup prefix of a well-formed key; `None` for text that cannot be one of our keys.
pub fn prefix_of(key: &str) -> Option<&str> {
    let well_formed = key.len() == KEY_LEN
        && key.starts_with(KEY_TAG)
        && key[KEY_TAG.len()..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| &key[..PREFIX_LEN])
}

pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Whether `key` hashes to `stored`, compared in constant time.
pub fn verify(key: &str, stored: &[u8]) -> bool {
    hash(key).ct_eq(stored).into()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate();
        assert_eq!(k.key.len(), 68);
        assert!(k.key.starts_with("inv_"));
        assert_eq!(prefix_of(&k.key), Some(k.prefix.as_str()));
        assert_eq!(k.prefix.len(), 12);
        assert_eq!(k.hash.len(), 32);
    }

    #[pg_test]
    fn generated_keys_differ_and_carry_256_bits() {
        let keys: std::collections::HashSet<String> = (0..1000).map(|_| generate().key).collect();
        assert_eq!(keys.len(), 1000);
        // Every hex digit shows up in every position across 1000 keys if the bits are random; a
        // generator stuck on a constant or on few bits would not.
        for pos in KEY_TAG.len()..KEY_LEN {
            let distinct: std::collections::HashSet<u8> = keys.iter().map(|k| k.as_bytes()[pos]).collect();
            assert_eq!(distinct.len(), 16, "position {pos}");
        }
    }

    #[pg_test]
    fn verify_accepts_only_the_key_itself() {
        let k = generate();
        assert!(verify(&k.key, &k.hash));
        let mut other = k.key.clone().into_bytes();
        let last = other.len() - 1;
        other[last] = if other[last] == b'0' { b'1' } else { b'0' };
        assert!(!verify(std::str::from_utf8(&other).unwrap(), &k.hash));
        assert!(!verify("", &k.hash));
        assert!(!verify(&k.key, &k.hash[..31]));
    }

    #[pg_test]
    fn malformed_keys_have_no_prefix() {
        let k = generate().key;
        assert_eq!(prefix_of(""), None);
        assert_eq!(prefix_of(&k[..67]), None);
        assert_eq!(prefix_of(&format!("{k}0")), None);
        assert_eq!(prefix_of(&k.to_uppercase()), None);
        assert_eq!(prefix_of(&k.replacen("inv_", "key_", 1)), None);
        assert_eq!(prefix_of(&format!("inv_{}", "g".repeat(64))), None);
        assert_eq!(prefix_of("inv_' OR '1'='1"), None);
    }
}
