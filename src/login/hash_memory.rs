//! argon2id working memory kept between verifications, one buffer per hashing slot.
//!
//! A verification with the default parameters needs 19 MiB of working memory. Allocated
//! afresh each time it is a new mapping (the allocator maps every buffer past 128 KiB on
//! its own, `daemon::memory`) that the kernel zero-fills page by page as argon2 first
//! touches it: about a tenth of a verification's time. So a verification borrows a buffer
//! from this pool and gives it back; at most one buffer per hashing slot is kept (the slots
//! bound how many verifications run at once), and [`HashMemory::release_idle`], called by
//! the daemon every [`LINGER`], frees those no verification used for that long: logins in
//! a row (one connection or many) reuse them, and a second after the last one the memory is
//! back with the system.
//!
//! argon2 overwrites every block of the working memory before it reads it, so a reused
//! buffer gives the same hash as a fresh one; what a buffer held stays inside the process.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// How long a buffer is kept unused (the daemon checks this often).
pub const LINGER: Duration = Duration::from_secs(1);

/// Buffers larger than this (a stored hash with m > 256 MiB) are not kept after use.
const KEEP_AT_MOST_KIB: usize = 256 * 1024;

struct Buffer {
    blocks: Vec<Block>,
    last_used: Instant,
}

/// The buffers of idle hashing slots.
pub struct HashMemory {
    idle: Mutex<Vec<Buffer>>,
    slots: usize,
}

impl HashMemory {
    /// A pool keeping at most `slots` buffers (the number of verifications that may run at
    /// once).
    pub fn new(slots: usize) -> HashMemory {
        HashMemory {
            idle: Mutex::new(Vec::new()),
            slots,
        }
    }

    /// Checks `password` against the stored PHC string `phc` (as
    /// [`super::credential::verify_password`]), in a kept buffer when there is one.
    pub fn verify(&self, password: &str, phc: &str) -> Result<bool, String> {
        let mut buffer = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .map_or_else(Vec::new, |b| b.blocks);
        let result = verify_in(password, phc, &mut buffer);
        if buffer.len() * Block::SIZE / 1024 <= KEEP_AT_MOST_KIB {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.slots {
                idle.push(Buffer {
                    blocks: buffer,
                    last_used: Instant::now(),
                });
            }
        }
        result
    }

    /// Frees the buffers unused for `idle_for` or longer; returns how many.
    pub fn release_idle(&self, idle_for: Duration) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let before = idle.len();
        idle.retain(|b| b.last_used.elapsed() < idle_for);
        before - idle.len()
    }

    /// Buffers kept now (for tests and the benchmark).
    pub fn kept(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

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
        let mem = HashMemory::new(1);
        for _ in 0..2 {
            for (pw, phc) in [("s3cret", &small), ("other", &large), ("s3cret", &small)] {
                assert!(mem.verify(pw, phc).unwrap());
                assert!(!mem.verify(&format!("{pw} "), phc).unwrap());
                assert!(!mem.verify("", phc).unwrap());
                assert_eq!(
                    mem.verify("x", phc).unwrap(),
                    verify_password("x", phc).unwrap()
                );
            }
        }
        // The buffer grew to the larger parameters and was kept.
        assert_eq!(mem.kept(), 1);
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
        let mem = HashMemory::new(1);
        for phc in [
            "not a phc string",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let e = mem.verify("x", phc).unwrap_err();
            assert!(e.contains("stored hash unreadable"), "{phc}: {e}");
        }
    }

    #[test]
    fn idle_buffers_are_released_and_the_pool_never_keeps_more_than_its_slots() {
        let phc = hash_password("pw", &cfg(64)).unwrap();
        let mem = std::sync::Arc::new(HashMemory::new(2));
        std::thread::scope(|s| {
            for _ in 0..6 {
                let (mem, phc) = (&mem, &phc);
                s.spawn(move || {
                    for _ in 0..5 {
                        assert!(mem.verify("pw", phc).unwrap());
                    }
                });
            }
        });
        assert!((1..=2).contains(&mem.kept()), "{}", mem.kept());
        assert_eq!(mem.release_idle(Duration::from_secs(3600)), 0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(mem.release_idle(Duration::from_millis(10)) >= 1);
        assert_eq!(mem.kept(), 0);
    }
}
