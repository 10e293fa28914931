//! The PLAIN and LOGIN mechanisms as pure state machines over decoded client responses.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::{Mechanism, Refusal};

/// Base64 "Username:" and "Password:", LOGIN's customary prompts (Postfix passes them on to
/// the SMTP client as its `334` lines).
pub(crate) const LOGIN_USER_PROMPT: &str = "VXNlcm5hbWU6";
pub(crate) const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// Decoding is lenient about padding and trailing bits, as Dovecot's decoder is: a client that
/// omits `=` padding still gets its credentials checked.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// What a request waits for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// PLAIN's single response.
    PlainResponse,
    /// LOGIN's user name.
    LoginUser,
    /// LOGIN's password, for this (already checked) login.
    LoginPassword { login: String },
}

/// The outcome of feeding one response to a mechanism.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send `CONT` with this base64 challenge and wait in `stage`.
    Continue {
        stage: Stage,
        challenge: &'static str,
    },
    /// The credentials are complete and well formed: ask the verifier.
    Verify {
        login: String,
        authzid: Option<String>,
        password: String,
    },
    /// Refuse without asking the verifier.
    Refuse(Refused),
}

/// A refusal and what is known about the login.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub why: Refusal,
    /// The login to report as `user=` in `FAIL` (only a valid, non-empty one).
    pub reply_user: Option<String>,
    /// The login for the caller's log, lossily converted; empty when unknown.
    pub login: String,
    /// The authorization identity for the caller's log, lossily converted.
    pub authzid: Option<String>,
}

impl Refused {
    fn new(why: Refusal) -> Self {
        Self {
            why,
            reply_user: None,
            login: String::new(),
            authzid: None,
        }
    }

    fn with_login(why: Refusal, login: &str) -> Self {
        Self {
            why,
            reply_user: (!login.is_empty()).then(|| login.to_owned()),
            login: login.to_owned(),
            authzid: None,
        }
    }
}

/// Where a new request starts, and the challenge of its first `CONT` when it has no initial
/// response.
pub(crate) fn initial(mechanism: Mechanism) -> (Stage, &'static str) {
    match mechanism {
        Mechanism::Plain => (Stage::PlainResponse, ""),
        Mechanism::Login => (Stage::LoginUser, LOGIN_USER_PROMPT),
    }
}

/// Feeds one base64 response (alphabet already checked) to a request in `stage`.
pub(crate) fn step(stage: Stage, base64: &[u8], max_size: usize) -> Step {
    let known_login = match &stage {
        Stage::LoginPassword { login } => login.as_str(),
        _ => "",
    };
    // Decoded data is at most 3/4 of the base64 length: refuse before allocating for it.
    if base64.len() / 4 * 3 > max_size.saturating_add(3) {
        return Step::Refuse(Refused::with_login(Refusal::TooLarge, known_login));
    }
    let Ok(data) = LENIENT.decode(base64) else {
        return Step::Refuse(Refused::with_login(Refusal::InvalidBase64, known_login));
    };
    if data.len() > max_size {
        return Step::Refuse(Refused::with_login(Refusal::TooLarge, known_login));
    }
    match stage {
        Stage::PlainResponse => plain(&data),
        Stage::LoginUser => login_user(&data),
        Stage::LoginPassword { login } => login_password(login, &data),
    }
}

/// RFC 4616: `authzid NUL authcid NUL password`, exactly two NULs.
fn plain(data: &[u8]) -> Step {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Step::Refuse(Refused::new(Refusal::Malformed));
    };
    if password.contains(&0) {
        return Step::Refuse(Refused::new(Refusal::Malformed));
    }
    let Ok(login) = std::str::from_utf8(authcid) else {
        return Step::Refuse(Refused {
            login: String::from_utf8_lossy(authcid).into_owned(),
            authzid: lossy_nonempty(authzid),
            ..Refused::new(Refusal::NotUtf8)
        });
    };
    if login.is_empty() {
        return Step::Refuse(Refused {
            authzid: lossy_nonempty(authzid),
            ..Refused::new(Refusal::EmptyLogin)
        });
    }
    let Ok(authzid) = std::str::from_utf8(authzid) else {
        return Step::Refuse(Refused {
            authzid: lossy_nonempty(authzid),
            ..Refused::with_login(Refusal::NotUtf8, login)
        });
    };
    // An empty authorization identity means "the login itself"; any other must be the login,
    // byte for byte: nobody may act as somebody else.
    if !authzid.is_empty() && authzid != login {
        return Step::Refuse(Refused {
            authzid: Some(authzid.to_owned()),
            ..Refused::with_login(Refusal::AuthzidMismatch, login)
        });
    }
    let authzid = (!authzid.is_empty()).then(|| authzid.to_owned());
    let Ok(password) = std::str::from_utf8(password) else {
        return Step::Refuse(Refused {
            authzid,
            ..Refused::with_login(Refusal::NotUtf8, login)
        });
    };
    Step::Verify {
        login: login.to_owned(),
        authzid,
        password: password.to_owned(),
    }
}

fn login_user(data: &[u8]) -> Step {
    if data.contains(&0) {
        return Step::Refuse(Refused {
            login: String::from_utf8_lossy(data).into_owned(),
            ..Refused::new(Refusal::Malformed)
        });
    }
    let Ok(login) = std::str::from_utf8(data) else {
        return Step::Refuse(Refused {
            login: String::from_utf8_lossy(data).into_owned(),
            ..Refused::new(Refusal::NotUtf8)
        });
    };
    if login.is_empty() {
        return Step::Refuse(Refused::new(Refusal::EmptyLogin));
    }
    Step::Continue {
        stage: Stage::LoginPassword {
            login: login.to_owned(),
        },
        challenge: LOGIN_PASSWORD_PROMPT,
    }
}

fn login_password(login: String, data: &[u8]) -> Step {
    if data.contains(&0) {
        return Step::Refuse(Refused::with_login(Refusal::Malformed, &login));
    }
    let Ok(password) = std::str::from_utf8(data) else {
        return Step::Refuse(Refused::with_login(Refusal::NotUtf8, &login));
    };
    Step::Verify {
        login,
        authzid: None,
        password: password.to_owned(),
    }
}

fn lossy_nonempty(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn b64(data: &[u8]) -> Vec<u8> {
        STANDARD.encode(data).into_bytes()
    }

    fn refusal(step: &Step) -> Option<Refusal> {
        match step {
            Step::Refuse(r) => Some(r.why),
            _ => None,
        }
    }

    #[test]
    fn prompts_are_the_customary_ones() {
        assert_eq!(STANDARD.decode(LOGIN_USER_PROMPT).unwrap(), b"Username:");
        assert_eq!(
            STANDARD.decode(LOGIN_PASSWORD_PROMPT).unwrap(),
            b"Password:"
        );
        assert_eq!(initial(Mechanism::Plain), (Stage::PlainResponse, ""));
        assert_eq!(
            initial(Mechanism::Login),
            (Stage::LoginUser, LOGIN_USER_PROMPT)
        );
    }

    #[test]
    fn plain_variants() {
        let ok = step(Stage::PlainResponse, &b64(b"\0alice\0pw"), 4096);
        assert_eq!(
            ok,
            Step::Verify {
                login: "alice".into(),
                authzid: None,
                password: "pw".into()
            }
        );
        let same = step(Stage::PlainResponse, &b64(b"alice\0alice\0pw"), 4096);
        assert!(matches!(same, Step::Verify { authzid: Some(ref a), .. } if a == "alice"));
        // Byte equality: no case folding.
        let other_case = step(Stage::PlainResponse, &b64(b"Alice\0alice\0pw"), 4096);
        assert_eq!(refusal(&other_case), Some(Refusal::AuthzidMismatch));
        let Step::Refuse(r) = step(Stage::PlainResponse, &b64(b"bob\0alice\0pw"), 4096) else {
            panic!("impersonation accepted");
        };
        assert_eq!(r.why, Refusal::AuthzidMismatch);
        assert_eq!(r.reply_user.as_deref(), Some("alice"));
        assert_eq!(r.authzid.as_deref(), Some("bob"));

        for (data, why) in [
            (&b"alice\0pw"[..], Refusal::Malformed),
            (b"\0alice\0pw\0x", Refusal::Malformed),
            (b"", Refusal::Malformed),
            (b"\0\0pw", Refusal::EmptyLogin),
            (b"\0al\xffice\0pw", Refusal::NotUtf8),
            (b"\xff\0alice\0pw", Refusal::NotUtf8),
            (b"\0alice\0p\xffw", Refusal::NotUtf8),
        ] {
            assert_eq!(
                refusal(&step(Stage::PlainResponse, &b64(data), 4096)),
                Some(why),
                "{data:?}"
            );
        }
        // Only the login is reported back, and only when it is known and valid.
        let Step::Refuse(r) = step(Stage::PlainResponse, &b64(b"\0alice\0p\xffw"), 4096) else {
            panic!();
        };
        assert_eq!(r.reply_user.as_deref(), Some("alice"));
        let Step::Refuse(r) = step(Stage::PlainResponse, &b64(b"\0al\xffice\0pw"), 4096) else {
            panic!();
        };
        assert_eq!(r.reply_user, None);
        assert_eq!(r.login, "al\u{fffd}ice");
    }

    #[test]
    fn base64_is_lenient_about_padding_but_not_structure() {
        // "\0a\0b" unpadded.
        assert!(matches!(
            step(Stage::PlainResponse, b"AGEAYg", 4096),
            Step::Verify { .. }
        ));
        assert_eq!(
            refusal(&step(Stage::PlainResponse, b"A", 4096)),
            Some(Refusal::InvalidBase64)
        );
        assert_eq!(
            refusal(&step(Stage::PlainResponse, b"=AAA", 4096)),
            Some(Refusal::InvalidBase64)
        );
    }

    #[test]
    fn size_limit() {
        let big = b64(&[b'a'; 100]);
        assert_eq!(
            refusal(&step(Stage::LoginUser, &big, 99)),
            Some(Refusal::TooLarge)
        );
        assert!(matches!(
            step(Stage::LoginUser, &big, 100),
            Step::Continue { .. }
        ));
        let huge = vec![b'A'; 100_000];
        assert_eq!(
            refusal(&step(Stage::LoginUser, &huge, 4096)),
            Some(Refusal::TooLarge)
        );
    }

    #[test]
    fn login_variants() {
        let Step::Continue { stage, challenge } = step(Stage::LoginUser, &b64(b"alice"), 4096)
        else {
            panic!();
        };
        assert_eq!(challenge, LOGIN_PASSWORD_PROMPT);
        assert_eq!(
            step(stage.clone(), &b64(b"pw"), 4096),
            Step::Verify {
                login: "alice".into(),
                authzid: None,
                password: "pw".into()
            }
        );
        let Step::Refuse(r) = step(stage, &b64(b"p\xffw"), 4096) else {
            panic!();
        };
        assert_eq!(
            (r.why, r.reply_user.as_deref()),
            (Refusal::NotUtf8, Some("alice"))
        );
        assert_eq!(
            refusal(&step(Stage::LoginUser, &b64(b""), 4096)),
            Some(Refusal::EmptyLogin)
        );
        assert_eq!(
            refusal(&step(Stage::LoginUser, &b64(b"a\0b"), 4096)),
            Some(Refusal::Malformed)
        );
        assert_eq!(
            refusal(&step(Stage::LoginUser, &b64(b"\xff"), 4096)),
            Some(Refusal::NotUtf8)
        );
    }

    proptest! {
        #[test]
        fn plain_round_trips(authzid in "[^\0]{0,8}", login in "[^\0]{1,16}", password in "[^\0]{0,16}") {
            let data = format!("{authzid}\0{login}\0{password}");
            let s = step(Stage::PlainResponse, &b64(data.as_bytes()), 4096);
            if authzid.is_empty() || authzid == login {
                prop_assert_eq!(s, Step::Verify {
                    login: login.clone(),
                    authzid: (!authzid.is_empty()).then(|| authzid.clone()),
                    password,
                });
            } else {
                prop_assert_eq!(refusal(&s), Some(Refusal::AuthzidMismatch));
            }
        }

        #[test]
        fn arbitrary_responses_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            login_stage in 0u8..3,
        ) {
            let stage = match login_stage {
                0 => Stage::PlainResponse,
                1 => Stage::LoginUser,
                _ => Stage::LoginPassword { login: "x".into() },
            };
            let _ = step(stage.clone(), &data, 32);
            let _ = step(stage, &b64(&data), 32);
        }
    }
}
