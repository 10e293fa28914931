//! The key a signature is made with: parsed once, kept, and for RSA signed with ring.
//!
//! An RSA-2048 signature takes about 2.9 ms with the pure-Rust `rsa` crate and about
//! 0.95 ms with ring on the same machine, and it was most of a submitted message's cost in
//! the milter. RSA PKCS#1 v1.5 signatures are deterministic, so ring's are byte for byte
//! the ones the `rsa` crate makes from the same stored key (a test compares them). ring
//! refuses RSA keys under 2048 bits (still found in imported keys): those, and Ed25519
//! keys, sign with mail-auth's pure-Rust keys as before.
//!
//! Parsing a stored key (and ring's consistency checks) costs more than hashing a message,
//! so parsed keys are kept by their stored bytes, at most [`KEPT_KEYS`]; a changed or new
//! key is new bytes and is parsed afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use mail_auth::common::crypto::{Algorithm as SigAlgorithm, CryptoError, DkimKey, Sha256};
use mail_auth::common::headers::Writable;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

use super::key::load_key;
use super::Algorithm;

/// Parsed keys kept at most; past it the cache starts again empty.
const KEPT_KEYS: usize = 256;

enum Inner {
    Ring(RsaKeyPair, SystemRandom),
    MailAuth(DkimKey),
}

/// A parsed signing key, shared by every signature made with it.
#[derive(Clone)]
pub(crate) struct LoadedKey(Arc<Inner>);

#[cfg(test)]
impl LoadedKey {
    /// Whether ring signs with this key (RSA of 2048 bits or more).
    pub(crate) fn uses_ring(&self) -> bool {
        matches!(*self.0, Inner::Ring(..))
    }
}

impl mail_auth::common::crypto::SigningKey for LoadedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        match &*self.0 {
            Inner::Ring(pair, rng) => {
                // ring hashes the data itself: the canonical header fields, a few hundred bytes.
                let mut data = Vec::with_capacity(512);
                input.write(&mut data);
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, &data, &mut signature)
                    .map_err(|e| mail_auth::Error::Crypto(CryptoError::Library(e.to_string())))?;
                Ok(signature)
            }
            Inner::MailAuth(key) => key.sign(input),
        }
    }

    fn algorithm(&self) -> SigAlgorithm {
        match &*self.0 {
            Inner::Ring(..) => SigAlgorithm::RsaSha256,
            Inner::MailAuth(key) => key.algorithm(),
        }
    }
}

fn parse(algorithm: Algorithm, der: &[u8]) -> Result<Inner, String> {
    if algorithm == Algorithm::Rsa {
        let pair = RsaKeyPair::from_pkcs8(der).or_else(|_| RsaKeyPair::from_der(der));
        if let Ok(pair) = pair {
            return Ok(Inner::Ring(pair, SystemRandom::new()));
        }
    }
    load_key(algorithm, der).map(Inner::MailAuth)
}

/// The stored key `der` ready to sign with, parsed at its first use.
pub(crate) fn loaded(algorithm: Algorithm, der: &[u8]) -> Result<LoadedKey, String> {
    type Kept = Mutex<HashMap<(Algorithm, Vec<u8>), LoadedKey>>;
    static KEPT: OnceLock<Kept> = OnceLock::new();
    let kept = KEPT.get_or_init(Default::default);
    let key = (algorithm, der.to_vec());
    if let Some(k) = kept.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(k.clone());
    }
    let loaded = LoadedKey(Arc::new(parse(algorithm, der)?));
    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= KEPT_KEYS {
        kept.clear();
    }
    kept.insert(key, loaded.clone());
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::crypto::SigningKey as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

    fn rsa_der(bits: usize) -> Vec<u8> {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits).unwrap();
        key.to_pkcs8_der().unwrap().as_bytes().to_vec()
    }

    #[test]
    fn ring_signs_the_same_bytes_as_the_rsa_crate_and_small_keys_still_sign() {
        let der = rsa_der(2048);
        let ours = loaded(Algorithm::Rsa, &der).unwrap();
        assert!(ours.uses_ring());
        let theirs = load_key(Algorithm::Rsa, &der).unwrap();
        for data in [&b"from:a@b.example\r\n"[..], b"", &[0xffu8; 3000]] {
            assert_eq!(ours.sign(data).unwrap(), theirs.sign(data).unwrap());
        }
        // The same key in PKCS#1 DER (openssl genrsa -traditional): ring too, same bytes.
        let pkcs1 = rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .unwrap()
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        let from_pkcs1 = loaded(Algorithm::Rsa, &pkcs1).unwrap();
        assert!(from_pkcs1.uses_ring());
        assert_eq!(
            from_pkcs1.sign(&b"x"[..]).unwrap(),
            theirs.sign(&b"x"[..]).unwrap()
        );

        // ring refuses 1024-bit keys: they sign with the rsa crate, as before.
        let small = rsa_der(1024);
        let k = loaded(Algorithm::Rsa, &small).unwrap();
        assert!(!k.uses_ring());
        assert_eq!(
            k.sign(&b"x"[..]).unwrap(),
            load_key(Algorithm::Rsa, &small)
                .unwrap()
                .sign(&b"x"[..])
                .unwrap()
        );
        assert_eq!(k.algorithm(), SigAlgorithm::RsaSha256);

        // Garbage is refused with the loader's reason, and not kept.
        assert!(loaded(Algorithm::Rsa, b"not a key").is_err());
        assert!(loaded(Algorithm::Ed25519, &der).is_err());
    }
}
