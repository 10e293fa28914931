//! The milters' parsing of what a client controls, called directly: MAIL FROM arguments,
//! address and domain normalisation, From header values, List-Id, the sender rule's replies,
//! and the header handling of ARC sealing.

use crate::address::{display_domain, header_addresses, normalize_address, normalize_domain};
use crate::model::{AccountFact, AccountKind, Decision, DomainFact, Facts, SenderCheck};
use crate::sender::rule::{envelope_address, judge_message};

/// `data` as a MAIL FROM argument, as a From header value, and as a whole message head.
pub fn target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);

    // MAIL FROM, as the submission milter (sender rule) and the inbound milter (SPF) take it.
    let envelope = envelope_address(&text);
    if let Some(e) = envelope {
        assert!(!e.is_empty());
        address(e);
    }
    let mail_from = crate::authn::spf::normalize_mail_from(&text);
    assert_eq!(mail_from, mail_from.trim());

    // The From header field value, as the submission milter receives it.
    let from: Vec<String> = header_addresses(data);
    for a in &from {
        assert!(
            !a.is_empty() && a.trim() == a,
            "From address {a:?} not trimmed"
        );
        address(a);
    }
    let decision = judge_message(&facts(), envelope, std::slice::from_ref(&from));
    if let Decision::Reject(r) = decision {
        // The reply goes to the SMTP client on one line.
        assert!(
            !r.text.chars().any(|c| c.is_control()),
            "control character in reply {:?}",
            r.text
        );
        assert!(r.code.len() == 3 && r.xcode.split('.').count() == 3);
    }

    // The inbound milter's DMARC list exception and the ARC sealer's header handling.
    if let Some(list) = crate::authn::dmarc::list_id(data) {
        assert!(!list.is_empty() && list.chars().count() <= 200);
        assert!(!list.chars().any(|c| c.is_control()), "{list:?}");
        assert_eq!(list.trim(), list);
        assert!(!list.contains("  "), "{list:?}");
    }
    crate::authn::arc::seal::fuzz_header_handling(data);
}

/// A normalised address re-normalises to itself; its domain is a normalised domain whose
/// readable form normalises back to it.
fn address(input: &str) {
    let Ok(addr) = normalize_address(input) else {
        return;
    };
    let again = normalize_address(&addr.to_string());
    assert_eq!(again.as_ref(), Ok(&addr), "{input:?} does not re-normalise");
    assert_eq!(addr.local, addr.local.to_ascii_lowercase());
    assert_eq!(
        normalize_domain(&addr.domain).as_deref(),
        Ok(addr.domain.as_str())
    );
    let shown = display_domain(&addr.domain);
    assert_eq!(
        normalize_domain(&shown).as_deref(),
        Ok(addr.domain.as_str()),
        "{:?} shown as {shown:?}",
        addr.domain
    );
}

fn facts() -> Facts {
    let domain = |name: &str, active| DomainFact {
        name: name.into(),
        active,
    };
    let account = |address: &str| AccountFact {
        address: address.into(),
        kind: AccountKind::EndUser,
    };
    Facts {
        organization: "acme".into(),
        sender_check: SenderCheck::Account,
        domains: vec![
            domain("acme.example", true),
            domain("old.example", false),
            domain("xn--bcher-kva.example", true),
        ],
        accounts: vec![
            account("alice@acme.example"),
            account("info@xn--bcher-kva.example"),
        ],
    }
}

pub const DICT: &[&[u8]] = &[
    b"<",
    b">",
    b"<>",
    b"@",
    b"@acme.example",
    b"alice@acme.example",
    b"xn--",
    b"xn--bcher-kva",
    b"b\xc3\xbccher",
    b"=?utf-8?B?",
    b"=?utf-8?Q?",
    b"?=",
    b"\"",
    b"(",
    b")",
    b",",
    b";",
    b":",
    b"\r\n",
    b"\n\t",
    b"\r\n\r\n",
    b"From: ",
    b"List-Id: ",
    b"list-id:",
    b"ARC-Seal: i=1; cv=none; ",
    b"ARC-Message-Signature: i=2; ",
    b"ARC-Authentication-Results: i=1; ",
    b"DKIM-Signature: ",
    b"i=",
    b"undisclosed-recipients:;",
    b"\xef\xbc\x8e",
    b"\xe3\x80\x82",
    b"\xc3\x9f",
    b"\xe2\x80\x8d",
];
