//! Credentials: generated usernames and passwords, argon2id hashing and verification.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use rand::Rng;

use crate::config::PasswordHashConfig;

/// Password characters: letters and digits without the look-alikes 0 O o 1 l I.
pub const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Random characters in a password: 24 × log2(56) ≈ 139 bits of entropy.
pub const PASSWORD_CHARS: usize = 24;
/// Username suffix characters (lower-case, no look-alikes): 6 × log2(32) = 30 bits.
const SUFFIX_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const SUFFIX_CHARS: usize = 6;

/// Bits of entropy of a generated password.
pub fn password_entropy_bits() -> f64 {
    PASSWORD_CHARS as f64 * (PASSWORD_ALPHABET.len() as f64).log2()
}

fn random_chars(alphabet: &[u8], n: usize) -> String {
    let mut rng = OsRng;
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A new password from the OS CSPRNG, in groups of four for reading aloud:
/// `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`.
pub fn generate_password() -> String {
    let raw = random_chars(PASSWORD_ALPHABET, PASSWORD_CHARS);
    raw.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Lower-case slug of a name: letters and digits, other runs become one hyphen.
fn slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// A readable username carrying the organization and label, with a random suffix:
/// `acme-laptop-k7m2qx`. Uniqueness is checked by the store.
pub fn generate_username(org: &str, label: &str) -> String {
    let mut parts = Vec::new();
    for (s, max) in [(org, 20), (label, 20)] {
        let sl = slug(s, max);
        if !sl.is_empty() {
            parts.push(sl);
        }
    }
    parts.push(random_chars(SUFFIX_ALPHABET, SUFFIX_CHARS));
    parts.join("-")
}

fn hasher(cfg: &PasswordHashConfig) -> Result<Argon2<'static>, String> {
    let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
        .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The argon2id PHC string of `password`.
pub fn hash_password(password: &str, cfg: &PasswordHashConfig) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(cfg)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Checks `password` against a stored PHC string. A malformed stored string is an error
/// (a fault, not a wrong password).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, String> {
    super::hash_memory::verify_in(password, phc, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn cheap() -> PasswordHashConfig {
        PasswordHashConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn password_format_and_entropy() {
        assert!(
            password_entropy_bits() >= 128.0,
            "{}",
            password_entropy_bits()
        );
        let p = generate_password();
        assert_eq!(p.len(), PASSWORD_CHARS + PASSWORD_CHARS / 4 - 1);
        let groups: Vec<&str> = p.split('-').collect();
        assert_eq!(groups.len(), 6);
        for g in groups {
            assert_eq!(g.len(), 4);
            assert!(g.bytes().all(|b| PASSWORD_ALPHABET.contains(&b)), "{p}");
        }
        for ambiguous in ['0', 'O', 'o', '1', 'l', 'I'] {
            assert!(!PASSWORD_ALPHABET.contains(&(ambiguous as u8)));
        }
    }

    #[test]
    fn passwords_are_random() {
        let set: HashSet<String> = (0..2000).map(|_| generate_password()).collect();
        assert_eq!(set.len(), 2000);
        // Every alphabet character shows up over many draws: the draw is not skewed to a subset.
        let all: String = set.into_iter().collect();
        for &c in PASSWORD_ALPHABET {
            assert!(all.as_bytes().contains(&c), "{} never drawn", c as char);
        }
    }

    #[test]
    fn usernames_are_readable_and_distinct() {
        let u = generate_username("Acme Corp", "Alice's laptop");
        assert!(u.starts_with("acme-corp-alice-s-laptop-"), "{u}");
        assert!(u
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_ne!(generate_username("a", "b"), generate_username("a", "b"));
        let u = generate_username("ü", "---");
        assert_eq!(u.len(), SUFFIX_CHARS);
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = hash_password("s3cret", &cheap()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password("s3cret", &h).unwrap());
        assert!(!verify_password("s3cret ", &h).unwrap());
        assert!(!verify_password("", &h).unwrap());
        assert!(verify_password("x", "not a phc string").is_err());
        // Two hashes of one password differ (fresh salt).
        assert_ne!(h, hash_password("s3cret", &cheap()).unwrap());
    }

    #[test]
    fn default_parameters_are_used() {
        let cfg = crate::config::Config::default_config().password_hash;
        let h = hash_password("pw", &cfg).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }
}
