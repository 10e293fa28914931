//! argon2id verification into working memory the caller keeps ([`super::hashers`]: each
//! hashing slot keeps its own between checks).
//!
//! argon2 overwrites every block of the working memory before it reads it, so a reused
//! buffer gives the same hash as a fresh one; what a buffer held stays inside the process.

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Verifies with `memory` as argon2's working memory, grown to what the stored
/// parameters need (never shrunk: the same parameters come again).
pub fn verify_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> Result<bool, String> {
    let unreadable = |e: argon2::password_hash::Error| format!("stored hash unreadable: {e}");
    let parsed = PasswordHash::new(phc).map_err(unreadable)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(unreadable)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| format!("stored hash unreadable: {e}"))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(unreadable)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err("stored hash unreadable: no salt or no hash".into());
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(unreadable)?;
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..needed])
        .map_err(|e| format!("verification failed: {e}"))?;
    // Output's equality is constant-time.
    let computed = Output::new(out).map_err(|e| format!("verification failed: {e}"))?;
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PasswordHashConfig;
    use crate::login::credential::{hash_password, verify_password};

    fn cfg(memory_kib: u32) -> PasswordHashConfig {
        PasswordHashConfig {
            memory_kib,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn a_reused_buffer_gives_the_same_answers_as_a_fresh_one() {
        let small = hash_password("s3cret", &cfg(64)).unwrap();
        let large = hash_password("other", &cfg(256)).unwrap();
        let mut memory = Vec::new();
        for _ in 0..2 {
            for (pw, phc) in [("s3cret", &small), ("other", &large), ("s3cret", &small)] {
                assert!(verify_in(pw, phc, &mut memory).unwrap());
                assert!(!verify_in(&format!("{pw} "), phc, &mut memory).unwrap());
                assert!(!verify_in("", phc, &mut memory).unwrap());
                assert_eq!(
                    verify_in("x", phc, &mut memory).unwrap(),
                    verify_password("x", phc).unwrap()
                );
            }
        }
        // The buffer grew to the larger parameters and stayed.
        assert_eq!(memory.len(), 256);
    }

    #[test]
    fn other_algorithms_and_parameters_in_the_stored_string_are_honoured() {
        // An argon2i hash and one with p=2, made with the library's own defaults.
        for (alg, p) in [(Algorithm::Argon2i, 1), (Algorithm::Argon2id, 2)] {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let params = Params::new(128, 2, p, Some(24)).unwrap();
            let salt = SaltString::encode_b64(b"sixteen byte sal").unwrap();
            let phc = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            let mut memory = Vec::new();
            assert!(verify_in("pw", &phc, &mut memory).unwrap(), "{phc}");
            assert!(!verify_in("pW", &phc, &mut memory).unwrap(), "{phc}");
        }
    }

    #[test]
    fn a_malformed_stored_string_is_an_error_not_a_wrong_password() {
        let mut memory = Vec::new();
        for phc in [
            "not a phc string",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let e = verify_in("x", phc, &mut memory).unwrap_err();
            assert!(e.contains("stored hash unreadable"), "{phc}: {e}");
        }
    }
}
