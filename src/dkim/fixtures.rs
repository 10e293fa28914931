//! Keys, a message and an offline verifier shared by the DKIM tests.

use std::sync::OnceLock;

use mail_auth::{AuthenticatedMessage, DkimResult};

use super::{generate, Algorithm, KeyPair, SigningKey};
use crate::authn::{Dns, StaticZone};

/// RSA generation is slow in debug builds: one key for the whole test binary.
pub(super) fn rsa_pair() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| generate(Algorithm::Rsa).expect("rsa keygen"))
}

pub(super) fn ed_pair() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| generate(Algorithm::Ed25519).expect("ed25519 keygen"))
}

pub(super) const MESSAGE: &str = concat!(
    "From: Alice <alice@acme.example>\r\n",
    "To: bob@other.example\r\n",
    "Subject: Quarterly figures\r\n",
    "Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n",
    "Message-ID: <1@acme.example>\r\n",
    "List-Id: <team.acme.example>\r\n",
    "X-Unsigned: whatever\r\n",
    "\r\n",
    "Hello Bob,\r\n",
    "  the numbers are attached.\r\n",
    "\r\n",
    "\r\n",
);

/// Verifies every signature of `message` against the keys in `zone`, never touching the
/// network: (result, d=, s=) per signature.
pub(super) fn verify(message: &[u8], zone: &StaticZone) -> Vec<(DkimResult, String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dns = Dns::zone(zone.clone());
    let parsed = AuthenticatedMessage::parse(message).expect("parse");
    rt.block_on(async {
        dns.authenticator()
            .verify_dkim(dns.params(&parsed))
            .await
            .into_iter()
            .map(|o| {
                let s = o.signature().expect("signature");
                (o.result().clone(), s.d.clone(), s.s.clone())
            })
            .collect()
    })
}

/// `headers` (as returned by `sign`) prepended to `message`.
pub(super) fn signed(headers: &[String], message: &str) -> Vec<u8> {
    let mut out = String::new();
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(message);
    out.into_bytes()
}

pub(super) fn keys() -> Vec<SigningKey> {
    vec![
        SigningKey {
            domain: "acme.example".into(),
            selector: "rsa2025".into(),
            algorithm: Algorithm::Rsa,
            private_pkcs8_der: rsa_pair().private_pkcs8_der.clone(),
        },
        SigningKey {
            domain: "acme.example".into(),
            selector: "ed2025".into(),
            algorithm: Algorithm::Ed25519,
            private_pkcs8_der: ed_pair().private_pkcs8_der.clone(),
        },
    ]
}

/// A zone publishing both keys of [`keys`].
pub(super) fn cache_with_keys() -> StaticZone {
    let mut zone = StaticZone::new();
    zone.dkim_key(&rsa_pair().dns_record("acme.example", "rsa2025"))
        .dkim_key(&ed_pair().dns_record("acme.example", "ed2025"));
    zone
}
