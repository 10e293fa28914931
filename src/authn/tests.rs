//! The evaluator's construction, the disposition, and the shared `verdicts()` fixture of
//! the module's tests.

use std::time::Duration;

use super::*;

/// A complete set of passing verdicts for `a@b.example` (no DNS involved).
pub(crate) fn verdicts() -> Verdicts {
    Verdicts {
        client_ip: "192.0.2.7".parse().unwrap(),
        helo: "mail.b.example".into(),
        mail_from: "a@b.example".into(),
        spf_helo: SpfVerdict {
            result: Outcome::None,
            domain: "mail.b.example".into(),
            identity: "postmaster@mail.b.example".into(),
            explanation: None,
        },
        spf_mail_from: SpfVerdict {
            result: Outcome::Pass,
            domain: "b.example".into(),
            identity: "a@b.example".into(),
            explanation: None,
        },
        dkim: vec![DkimVerdict {
            result: Outcome::Pass,
            domain: "b.example".into(),
            selector: "sel".into(),
            algorithm: "rsa-sha256".into(),
            identity: None,
            b_prefix: "abcd1234".into(),
            reason: None,
        }],
        dmarc: DmarcVerdict {
            result: Outcome::Pass,
            from_domain: "b.example".into(),
            policy: Some(Policy::Reject),
            record: Some(PublishedPolicy {
                p: Policy::Reject,
                sp: Policy::Reject,
                np: Policy::Reject,
                strict_dkim: false,
                strict_spf: false,
                testing: false,
            }),
            spf_aligned: Outcome::Pass,
            dkim_aligned: Outcome::Pass,
            reason: None,
        },
        from_domains: vec!["b.example".into()],
    }
}

#[test]
fn disposition_and_temporary_failure() {
    let mut v = verdicts();
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(!v.dns_temporary_failure());

    v.dmarc.result = Outcome::Fail;
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
    v.dmarc.policy = Some(Policy::Quarantine);
    assert_eq!(v.dmarc_disposition(), Disposition::Quarantine);
    v.dmarc.policy = Some(Policy::None);
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);

    v.dmarc.policy = Some(Policy::Reject);
    v.dmarc.result = Outcome::TempError;
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(v.dns_temporary_failure());
    v.dmarc.result = Outcome::PermError;
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(!v.dns_temporary_failure());

    v.dmarc.result = Outcome::None;
    v.spf_mail_from.result = Outcome::TempError;
    assert!(v.dns_temporary_failure());
    v.dmarc.result = Outcome::Pass;
    assert!(!v.dns_temporary_failure(), "DMARC passed regardless");
    v.dmarc.result = Outcome::None;
    v.spf_mail_from.result = Outcome::Fail;
    v.dkim[0].result = Outcome::TempError;
    assert!(
        !v.dns_temporary_failure(),
        "a lone DKIM temperror does not matter"
    );
}

#[test]
fn builds_outside_a_runtime_and_from_system_conf() {
    let auth = Authenticator::new(&["192.0.2.53:53".parse().unwrap()], Duration::from_secs(3))
        .unwrap()
        .with_budget(Duration::from_secs(1));
    assert_eq!(
        auth.budget(),
        Duration::from_secs(3),
        "at least one timeout"
    );
    // Empty list: /etc/resolv.conf, which may be missing in a sandbox; no panic.
    match Authenticator::new(&[], Duration::from_secs(1)) {
        Ok(a) => assert_eq!(a.timeout(), Duration::from_secs(1)),
        Err(e) => assert!(e.to_string().contains("resolv.conf"), "{e}"),
    }
}

#[test]
fn evaluate_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = Authenticator::new(&["127.0.0.1:9".parse().unwrap()], Duration::ZERO).unwrap();
        assert_eq!(auth.timeout(), MIN_TIMEOUT);
        assert_eq!(auth.budget(), MIN_TIMEOUT * 4);
        let input = Input {
            client_ip: "127.0.0.1".parse().unwrap(),
            helo: "h",
            mail_from: "",
            message: b"",
        };
        let fut = auth.evaluate(&input);
        assert_send(&fut);
        drop(fut);
    });
}
