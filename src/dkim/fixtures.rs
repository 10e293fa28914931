//! Keys, a message and an offline verifier shared by the DKIM tests.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use super::{generate, Algorithm, DnsRecord, KeyPair, SigningKey};

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

/// A TXT "cache" that answers every DKIM key lookup from memory, so mail-auth's
/// verifier never touches the network.
#[derive(Default)]
pub(super) struct StaticTxt(Mutex<HashMap<Box<str>, Txt>>);

impl StaticTxt {
    fn add_key(&self, record: &DnsRecord) {
        let key = DomainKey::parse(record.value.as_bytes()).expect("mail-auth parses record");
        self.0.lock().unwrap().insert(
            format!("{}.", record.name).into_boxed_str(),
            Txt::DomainKey(key.into()),
        );
    }
}

impl ResolverCache<Box<str>, Txt> for StaticTxt {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

fn offline_authenticator() -> MessageAuthenticator {
    MessageAuthenticator::new(
        ResolverConfig::from_name_servers(Vec::new()),
        ResolverOpts::default(),
    )
    .expect("resolver")
}

/// Verifies every signature of `message` against the keys in `cache`, never touching
/// the network: (result, d=, s=) per signature.
pub(super) fn verify(message: &[u8], cache: &StaticTxt) -> Vec<(DkimResult, String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = offline_authenticator();
    let parsed = AuthenticatedMessage::parse(message).expect("parse");
    rt.block_on(async {
        auth.verify_dkim(Parameters::new(&parsed).with_txt_cache(cache))
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

/// A cache publishing both keys of [`keys`].
pub(super) fn cache_with_keys() -> StaticTxt {
    let cache = StaticTxt::default();
    cache.add_key(&rsa_pair().dns_record("acme.example", "rsa2025"));
    cache.add_key(&ed_pair().dns_record("acme.example", "ed2025"));
    cache
}
