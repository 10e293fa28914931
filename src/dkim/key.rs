//! Key generation, loading stored keys, and deriving the public key published in DNS.
//!
//! Key formats:
//! * private keys are PKCS#8 DER for both algorithms (RSA keys in PKCS#1 DER, as written by
//!   `openssl genrsa -traditional`, are accepted when signing too);
//! * the RSA public key in DNS is a DER `SubjectPublicKeyInfo` (what `opendkim-genkey` and
//!   `openssl rsa -pubout` produce, and what every verifier accepts), base64;
//! * the Ed25519 public key in DNS is the raw 32-byte key, base64 (RFC 8463 section 4.2).
//!
//! The DER envelopes come from the `rsa` and `ed25519` crates (the ones mail-auth's
//! pure-Rust backend signs with), not from hand-written encoders.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, KeypairBytes};
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
use rsa::pkcs8::{DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use rsa::{RsaPrivateKey, RsaPublicKey};

use super::{Algorithm, DkimError, DnsRecord};

/// Size of generated RSA keys, in bits.
pub const RSA_BITS: usize = 2048;

/// A freshly generated key pair.
#[derive(Clone)]
pub struct KeyPair {
    /// The key algorithm.
    pub algorithm: Algorithm,
    /// The private key, PKCS#8 DER. Secret: store it with restrictive permissions.
    pub private_pkcs8_der: Vec<u8>,
    /// The public key as published in DNS (`p=`), base64: a DER SubjectPublicKeyInfo for
    /// RSA, the raw 32-byte key for Ed25519.
    pub public_key_b64: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("algorithm", &self.algorithm)
            .field("private_pkcs8_der", &"<redacted>")
            .field("public_key_b64", &self.public_key_b64)
            .finish()
    }
}

impl KeyPair {
    /// The TXT record publishing this key under `selector._domainkey.domain`.
    pub fn dns_record(&self, domain: &str, selector: &str) -> DnsRecord {
        super::dns_record(domain, selector, self.algorithm, &self.public_key_b64)
    }
}

/// Generates a new key pair: RSA with [`RSA_BITS`] bits, or Ed25519.
///
/// RSA generation takes a noticeable moment (well under a second in release builds,
/// several seconds in unoptimized debug builds).
pub fn generate(algorithm: Algorithm) -> Result<KeyPair, DkimError> {
    let fail = |reason: String| DkimError::KeyGeneration { algorithm, reason };
    match algorithm {
        Algorithm::Rsa => {
            let pair = DkimKeyPair::generate_rsa(RSA_BITS).map_err(|e| fail(e.to_string()))?;
            // mail-auth hands out PKCS#1 for both halves; wrap them in the standard
            // envelopes (PKCS#8 private key, SubjectPublicKeyInfo public key).
            let (private_pkcs1, public_pkcs1) = pair.into_inner();
            let private_pkcs8_der = RsaPrivateKey::from_pkcs1_der(&private_pkcs1)
                .map_err(|e| fail(e.to_string()))?
                .to_pkcs8_der()
                .map_err(|e| fail(e.to_string()))?
                .as_bytes()
                .to_vec();
            let spki = rsa_spki(&public_pkcs1).map_err(fail)?;
            Ok(KeyPair {
                algorithm,
                private_pkcs8_der,
                public_key_b64: BASE64.encode(spki),
            })
        }
        Algorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(|e| fail(e.to_string()))?;
            let (private_pkcs8, public_raw) = pair.into_inner();
            if public_raw.len() != 32 {
                return Err(fail(format!(
                    "unexpected Ed25519 public key length {}",
                    public_raw.len()
                )));
            }
            // mail-auth writes PKCS#8 v2 (RFC 5958, public key included), which OpenSSL 3.0
            // cannot read; store the plain v1 form (RFC 8410) that every tool accepts.
            let private_pkcs8_der = ed25519_pkcs8_v1(&private_pkcs8)
                .filter(|v1| {
                    matches!(load_key(algorithm, v1), Ok(DkimKey::Ed25519(k)) if k.public_key() == public_raw)
                })
                .unwrap_or(private_pkcs8);
            Ok(KeyPair {
                algorithm,
                private_pkcs8_der,
                public_key_b64: BASE64.encode(&public_raw),
            })
        }
    }
}

/// Derives the public key (`p=` value, base64) from a stored private key, e.g. to check
/// that DNS publishes the key actually used for signing.
pub fn public_key_b64(algorithm: Algorithm, private_der: &[u8]) -> Result<String, DkimError> {
    let bad = |reason: String| DkimError::BadKey {
        domain: String::new(),
        selector: String::new(),
        algorithm,
        expected: expected_encoding(algorithm),
        reason,
    };
    match load_key(algorithm, private_der).map_err(bad)? {
        DkimKey::Rsa(key) => Ok(BASE64.encode(rsa_spki(&key.public_key()).map_err(bad)?)),
        DkimKey::Ed25519(key) => Ok(BASE64.encode(key.public_key())),
    }
}

/// The accepted encodings of a stored private key, for error messages.
pub(super) fn expected_encoding(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Rsa => "an RSA key in PKCS#8 or PKCS#1 DER",
        Algorithm::Ed25519 => "an Ed25519 key in PKCS#8 DER",
    }
}

/// Loads stored private key bytes as a key mail-auth can sign with.
pub(crate) fn load_key(algorithm: Algorithm, der: &[u8]) -> Result<DkimKey, String> {
    match algorithm {
        Algorithm::Rsa => {
            // mail-auth takes a rustls-pki-types `PrivateKeyDer`; its `TryFrom<&[u8]>`
            // recognizes PKCS#8, PKCS#1 and SEC1 by their DER structure.
            let parsed = der.try_into().map_err(|e: &str| e.to_string())?;
            RsaKey::<Sha256>::from_key_der(parsed)
                .map(DkimKey::Rsa)
                .map_err(|e| e.to_string())
        }
        Algorithm::Ed25519 => Ed25519Key::from_pkcs8_der(der)
            .map(DkimKey::Ed25519)
            .map_err(|e| e.to_string()),
    }
}

/// An RSA public key from its DER form, either a SubjectPublicKeyInfo or a bare PKCS#1
/// RSAPublicKey (both are seen in published DKIM records).
pub(super) fn rsa_public_key(der: &[u8]) -> Option<RsaPublicKey> {
    RsaPublicKey::from_public_key_der(der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(der))
        .ok()
}

/// SubjectPublicKeyInfo { rsaEncryption, BIT STRING { RSAPublicKey } } around a PKCS#1
/// public key.
fn rsa_spki(pkcs1: &[u8]) -> Result<Vec<u8>, String> {
    let key = RsaPublicKey::from_pkcs1_der(pkcs1).map_err(|e| e.to_string())?;
    let spki = key.to_public_key_der().map_err(|e| e.to_string())?;
    Ok(spki.as_bytes().to_vec())
}

/// Re-encodes an Ed25519 PKCS#8 key (v1 or v2) as v1: PrivateKeyInfo { 0, id-Ed25519,
/// OCTET STRING { OCTET STRING seed } } (RFC 8410 section 7).
fn ed25519_pkcs8_v1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let mut pair = KeypairBytes::from_pkcs8_der(pkcs8).ok()?;
    pair.public_key = None;
    Some(pair.to_pkcs8_der().ok()?.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ed_pair, rsa_pair};
    use super::*;

    #[test]
    fn algorithm_text_round_trip() {
        for a in [Algorithm::Rsa, Algorithm::Ed25519] {
            assert_eq!(a.to_string().parse::<Algorithm>().unwrap(), a);
        }
        assert_eq!(
            " ED25519 ".parse::<Algorithm>().unwrap(),
            Algorithm::Ed25519
        );
        let err = "dsa".parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().contains("\"dsa\""), "{err}");
    }

    #[test]
    fn generates_rsa_2048() {
        let pair = rsa_pair();
        assert_eq!(pair.algorithm, Algorithm::Rsa);
        // PKCS#8 envelope around the PKCS#1 key, loadable by the signer.
        assert_eq!(pair.private_pkcs8_der[0], 0x30);
        assert!(load_key(Algorithm::Rsa, &pair.private_pkcs8_der).is_ok());
        // SPKI of a 2048-bit key: 294 bytes, base64 392 characters, "MIIBIjANBgkqhkiG9w0B".
        let spki = BASE64.decode(&pair.public_key_b64).unwrap();
        assert_eq!(spki.len(), 294);
        assert_eq!(pair.public_key_b64.len(), 392);
        assert!(pair
            .public_key_b64
            .starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        assert_eq!(
            public_key_b64(Algorithm::Rsa, &pair.private_pkcs8_der).unwrap(),
            pair.public_key_b64
        );
        assert!(!format!("{pair:?}").contains(&format!("{:?}", &pair.private_pkcs8_der[..8])));
    }

    #[test]
    fn generates_ed25519() {
        let pair = ed_pair();
        assert_eq!(pair.algorithm, Algorithm::Ed25519);
        assert_eq!(BASE64.decode(&pair.public_key_b64).unwrap().len(), 32);
        assert_eq!(pair.public_key_b64.len(), 44);
        assert!(load_key(Algorithm::Ed25519, &pair.private_pkcs8_der).is_ok());
        assert_eq!(
            public_key_b64(Algorithm::Ed25519, &pair.private_pkcs8_der).unwrap(),
            pair.public_key_b64
        );
        // PKCS#8 v1 (RFC 8410): 48 bytes, the seed at the end.
        assert_eq!(pair.private_pkcs8_der.len(), 48);
        assert_eq!(
            pair.private_pkcs8_der[..16],
            [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
        let other = generate(Algorithm::Ed25519).unwrap();
        assert_ne!(other.public_key_b64, pair.public_key_b64);
    }

    #[test]
    fn rsa_public_keys_parse_from_spki_and_pkcs1() {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        let spki = BASE64.decode(&rsa_pair().public_key_b64).unwrap();
        let key = rsa_public_key(&spki).expect("SPKI");
        let pkcs1 = key.to_pkcs1_der().unwrap();
        assert_eq!(rsa_public_key(pkcs1.as_bytes()), Some(key));
        assert!(rsa_public_key(b"junk").is_none());
        assert_eq!(rsa_spki(pkcs1.as_bytes()).unwrap(), spki);
    }
}
