//! DKIM signing of a submitted message, against the signing path it replaced, in one run.
//!
//! Baseline: what the submission milter did per message before: parse the stored RSA-2048
//! key (PKCS#8) and sign with mail-auth's pure-Rust `rsa` backend. Measured:
//! `postwarden::dkim::sign` as the milter calls it now (the parsed key kept, the RSA
//! signature made by ring), on the same 3 KB message, the same key and header set. Both
//! signatures are checked to be the same bytes but for the `t=` timestamp. Also printed:
//! an Ed25519 signature of the same message. It prints, it does not assert.
//!
//! Run: cargo bench --bench signing

use std::time::Instant;

use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use postwarden::dkim::{self, Algorithm};
use postwarden::model::SigningKey;

const ROUNDS: usize = 300;

fn message() -> Vec<u8> {
    let mut m = String::from(
        "From: Alice <alice@acme.example>\r\nTo: rcpt@dest.example\r\nSubject: quarterly figures\r\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@acme.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
    );
    while m.len() < 3000 {
        m.push_str("The figures for the quarter are attached below, line by line.\r\n");
    }
    m.into_bytes()
}

fn per_second(rounds: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    rounds as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let message = message();
    let pair = dkim::generate(Algorithm::Rsa).unwrap();
    let key = SigningKey {
        domain: "acme.example".into(),
        selector: "bench".into(),
        algorithm: Algorithm::Rsa,
        private_pkcs8_der: pair.private_pkcs8_der.clone(),
    };
    // The header set postwarden signs (h=), for the baseline to sign the same fields.
    let ours = dkim::sign(&message, std::slice::from_ref(&key))
        .unwrap()
        .remove(0);
    let h: Vec<String> = ours
        .split(';')
        .find_map(|t| t.trim().strip_prefix("h="))
        .unwrap()
        .split(':')
        .map(|s| s.trim().to_string())
        .collect();
    let before = || {
        let der = pair.private_pkcs8_der.as_slice().try_into().unwrap();
        let rsa = RsaKey::<Sha256>::from_key_der(der).unwrap();
        DkimSigner::from_key(rsa)
            .domain("acme.example")
            .selector("bench")
            .headers(h.iter().cloned())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign(&message)
            .unwrap()
            .to_header()
    };
    // Same signature bytes (b=), whoever made them, when the timestamps agree.
    let b = |s: &str| {
        s.split(';')
            .find_map(|t| {
                t.trim()
                    .strip_prefix("b=")
                    .map(|v| v.replace(['\r', '\n', '\t', ' '], ""))
            })
            .unwrap()
    };
    let t = |s: &str| {
        s.split(';')
            .find_map(|t| t.trim().strip_prefix("t=").map(str::to_string))
    };
    let (old, new) = (
        before(),
        dkim::sign(&message, std::slice::from_ref(&key))
            .unwrap()
            .remove(0),
    );
    if t(&old) == t(&new) {
        println!("signatures identical: {}", b(&old) == b(&new));
    }

    let baseline = per_second(ROUNDS, || {
        before();
    });
    let measured = per_second(ROUNDS, || {
        dkim::sign(&message, std::slice::from_ref(&key)).unwrap();
    });
    let ed = SigningKey {
        algorithm: Algorithm::Ed25519,
        private_pkcs8_der: dkim::generate(Algorithm::Ed25519)
            .unwrap()
            .private_pkcs8_der,
        ..key.clone()
    };
    let ed25519 = per_second(ROUNDS * 10, || {
        dkim::sign(&message, std::slice::from_ref(&ed)).unwrap();
    });
    println!(
        "DKIM signatures of a {} byte message, one thread:",
        message.len()
    );
    println!("  baseline  RSA-2048, key parsed per message, rsa crate: {baseline:8.1} /s");
    println!("  measured  RSA-2048, postwarden::dkim::sign:           {measured:8.1} /s");
    println!(
        "  ratio     measured / baseline:                        {:8.2}",
        measured / baseline
    );
    println!("  (Ed25519, postwarden::dkim::sign:                     {ed25519:8.1} /s)");
}
