//! Parsing one client line (without its LF) into a command. Pure; never panics.

use std::net::IpAddr;

use crate::error::{sanitize, ProtocolError};
use crate::escape::tab_unescape_bytes;
use crate::Mechanism;

/// A well-formed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientLine<'a> {
    /// `VERSION TAB 1 [TAB minor ...]` (other majors are an error; the minor is ignored).
    Version,
    /// `CPID TAB pid`.
    Cpid(u32),
    /// `AUTH TAB id TAB mech [TAB param ...]`.
    Auth(AuthLine<'a>),
    /// `CONT TAB id TAB base64`.
    Cont { id: u32, data: &'a [u8] },
    /// `CANCEL TAB id`.
    Cancel { id: u32 },
}

/// The parts of an `AUTH` line this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthLine<'a> {
    pub id: u32,
    pub mechanism: Mechanism,
    pub service: String,
    pub local_ip: Option<IpAddr>,
    pub remote_ip: Option<IpAddr>,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    pub secured: bool,
    /// `resp=`: base64 (alphabet already checked), possibly empty.
    pub resp: Option<&'a [u8]>,
}

/// The command name: everything up to the first TAB.
pub(crate) fn command_name(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b'\t').next().unwrap_or(line)
}

/// Parses one line.
pub(crate) fn parse_line(line: &[u8]) -> Result<ClientLine<'_>, ProtocolError> {
    let mut fields = line.split(|&b| b == b'\t');
    let name = fields.next().unwrap_or_default();
    match name {
        b"VERSION" => {
            let major = fields.next().ok_or(ProtocolError::MissingField {
                command: "VERSION",
                field: "major version",
            })?;
            // Like Dovecot, only the major version is checked; minor and anything after it are
            // ignored.
            if parse_uint(major) == Some(1) {
                Ok(ClientLine::Version)
            } else {
                Err(ProtocolError::VersionMismatch {
                    major: sanitize(major),
                })
            }
        }
        b"CPID" => {
            let pid = fields.next().ok_or(ProtocolError::MissingField {
                command: "CPID",
                field: "process id",
            })?;
            if fields.next().is_some() {
                return Err(ProtocolError::UnexpectedField { command: "CPID" });
            }
            match parse_uint(pid) {
                Some(pid) if pid != 0 => Ok(ClientLine::Cpid(pid)),
                _ => Err(ProtocolError::BadCpid),
            }
        }
        b"AUTH" => parse_auth(fields).map(ClientLine::Auth),
        b"CONT" => {
            let id = parse_id(fields.next(), "CONT")?;
            let data = fields.next().ok_or(ProtocolError::MissingField {
                command: "CONT",
                field: "data",
            })?;
            if fields.next().is_some() {
                return Err(ProtocolError::UnexpectedField { command: "CONT" });
            }
            check_base64_alphabet(data, "CONT", id)?;
            Ok(ClientLine::Cont { id, data })
        }
        b"CANCEL" => {
            let id = parse_id(fields.next(), "CANCEL")?;
            if fields.next().is_some() {
                return Err(ProtocolError::UnexpectedField { command: "CANCEL" });
            }
            Ok(ClientLine::Cancel { id })
        }
        other => Err(ProtocolError::UnexpectedCommand {
            command: sanitize(other),
        }),
    }
}

fn parse_auth<'a>(
    mut fields: impl Iterator<Item = &'a [u8]>,
) -> Result<AuthLine<'a>, ProtocolError> {
    let id = parse_id(fields.next(), "AUTH")?;
    let mech = fields.next().ok_or(ProtocolError::MissingField {
        command: "AUTH",
        field: "mechanism",
    })?;
    let mechanism = Mechanism::from_name(mech).ok_or_else(|| ProtocolError::UnknownMechanism {
        mechanism: sanitize(mech),
    })?;
    let mut auth = AuthLine {
        id,
        mechanism,
        service: String::new(),
        local_ip: None,
        remote_ip: None,
        local_port: None,
        remote_port: None,
        secured: false,
        resp: None,
    };
    let mut service = None;
    for param in fields.by_ref() {
        if auth.resp.is_some() {
            // Dovecot requires resp= to be the last parameter.
            return Err(ProtocolError::ParameterAfterResp { id });
        }
        let (key, value) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (&param[..eq], &param[eq + 1..]),
            None => (param, &b""[..]),
        };
        match key {
            b"service" => {
                let value = tab_unescape_bytes(value);
                let text = std::str::from_utf8(&value)
                    .map_err(|_| ProtocolError::NotUtf8 { field: "service" })?;
                service = Some(text.to_owned());
            }
            b"lip" => auth.local_ip = parse_ip(value),
            b"rip" => auth.remote_ip = parse_ip(value),
            b"lport" => auth.local_port = parse_port(value),
            b"rport" => auth.remote_port = parse_port(value),
            // A bare flag; newer Dovecot clients may give it a value (e.g. `secured=tls`).
            b"secured" => auth.secured = true,
            b"resp" => {
                check_base64_alphabet(value, "AUTH", id)?;
                auth.resp = Some(value);
            }
            // Everything else (nologin, session=, local_name=, valid-client-cert, no-penalty,
            // empty fields, ...) is ignored, as the protocol asks for unknown parameters.
            _ => {}
        }
    }
    auth.service = service.ok_or(ProtocolError::MissingService { id })?;
    Ok(auth)
}

/// An unsigned decimal number without sign, as Dovecot's `str_to_uint` accepts.
fn parse_uint(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn parse_id(field: Option<&[u8]>, command: &'static str) -> Result<u32, ProtocolError> {
    let field = field.ok_or(ProtocolError::MissingField {
        command,
        field: "id",
    })?;
    parse_uint(field).ok_or(ProtocolError::BadId { command })
}

/// Parses an address; unparseable or absent addresses are tolerated (Postfix sends `lip=` empty
/// when it cannot determine its own address).
fn parse_ip(value: &[u8]) -> Option<IpAddr> {
    let value = tab_unescape_bytes(value);
    let ip: IpAddr = std::str::from_utf8(&value).ok()?.parse().ok()?;
    Some(ip.to_canonical())
}

fn parse_port(value: &[u8]) -> Option<u16> {
    let n = parse_uint(value)?;
    u16::try_from(n).ok()
}

/// Postfix forwards the SMTP client's base64 after checking it contains only these characters;
/// anything else means the peer is not a working Postfix.
fn check_base64_alphabet(data: &[u8], command: &'static str, id: u32) -> Result<(), ProtocolError> {
    if data
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        Ok(())
    } else {
        Err(ProtocolError::InvalidBase64 { command, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn parse(line: &str) -> Result<ClientLine<'_>, ProtocolError> {
        parse_line(line.as_bytes())
    }

    #[test]
    fn parses_postfix_handshake() {
        assert_eq!(parse("VERSION\t1\t0").unwrap(), ClientLine::Version);
        assert_eq!(parse("VERSION\t1").unwrap(), ClientLine::Version);
        assert_eq!(parse("CPID\t22324").unwrap(), ClientLine::Cpid(22324));
        assert!(matches!(
            parse("VERSION\t2\t0"),
            Err(ProtocolError::VersionMismatch { major }) if major == "2"
        ));
        assert!(matches!(
            parse("VERSION"),
            Err(ProtocolError::MissingField { .. })
        ));
        assert!(matches!(parse("CPID\t0"), Err(ProtocolError::BadCpid)));
        assert!(matches!(parse("CPID\t-1"), Err(ProtocolError::BadCpid)));
        assert!(matches!(
            parse("CPID\t1\t2"),
            Err(ProtocolError::UnexpectedField { .. })
        ));
    }

    #[test]
    fn parses_postfix_auth_line() {
        let line = "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.41\tsecured\tresp=AGFsaWNlAHNlY3JldA==";
        let ClientLine::Auth(auth) = parse(line).unwrap() else {
            panic!("not AUTH");
        };
        assert_eq!(auth.id, 1);
        assert_eq!(auth.mechanism, Mechanism::Plain);
        assert_eq!(auth.service, "smtp");
        assert_eq!(auth.local_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            auth.remote_ip,
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41)))
        );
        assert!(auth.secured);
        assert_eq!(auth.resp, Some(&b"AGFsaWNlAHNlY3JldA=="[..]));
        assert_eq!(auth.local_port, None);
    }

    #[test]
    fn auth_tolerates_what_dovecot_tolerates() {
        let line = "AUTH\t4294967295\tlogin\tservice=sm\u{1}ttp\t\tsession=abc\tlocal_name=mx\tvalid-client-cert\tno-penalty\tlip=\trip=::ffff:192.0.2.1\tlport=587\trport=99999\tsecured=tls";
        let ClientLine::Auth(auth) = parse(line).unwrap() else {
            panic!("not AUTH");
        };
        assert_eq!(auth.id, u32::MAX);
        assert_eq!(auth.mechanism, Mechanism::Login);
        assert_eq!(auth.service, "sm\ttp");
        assert_eq!(auth.local_ip, None);
        assert_eq!(
            auth.remote_ip,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(auth.local_port, Some(587));
        assert_eq!(auth.remote_port, None);
        assert!(auth.secured);
        assert_eq!(auth.resp, None);
        let ClientLine::Auth(auth) =
            parse("AUTH\t0\tPLAIN\tservice=smtp\trip=2001:db8::1").unwrap()
        else {
            panic!("not AUTH");
        };
        assert_eq!(
            auth.remote_ip,
            Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)))
        );
        assert!(!auth.secured);
    }

    #[test]
    fn rejects_malformed_auth() {
        let cases: &[(&[u8], &str)] = &[
            (b"AUTH", "missing id"),
            (b"AUTH\t", "empty id"),
            (b"AUTH\tx\tPLAIN\tservice=smtp", "bad id"),
            (b"AUTH\t+1\tPLAIN\tservice=smtp", "signed id"),
            (b"AUTH\t4294967296\tPLAIN\tservice=smtp", "overflow id"),
            (b"AUTH\t1", "missing mech"),
            (b"AUTH\t1\tCRAM-MD5\tservice=smtp", "unknown mech"),
            (b"AUTH\t1\tPLAIN", "missing service"),
            (b"AUTH\t1\tPLAIN\tservice=\xff", "non-UTF-8 service"),
            (b"AUTH\t1\tPLAIN\tservice=smtp\tresp=a*b", "bad alphabet"),
            (
                b"AUTH\t1\tPLAIN\tservice=smtp\tresp=YQ==\tsecured",
                "after resp",
            ),
        ];
        for (line, what) in cases {
            assert!(parse_line(line).is_err(), "{what} accepted");
        }
        assert!(matches!(
            parse("AUTH\t1\tPLAIN\tservice=smtp\tresp=YQ==\tx"),
            Err(ProtocolError::ParameterAfterResp { id: 1 })
        ));
        assert!(matches!(
            parse("AUTH\t1\tDIGEST-MD5\tservice=smtp"),
            Err(ProtocolError::UnknownMechanism { mechanism }) if mechanism == "DIGEST-MD5"
        ));
    }

    #[test]
    fn parses_cont_and_cancel() {
        assert_eq!(
            parse("CONT\t2\tYWxpY2U=").unwrap(),
            ClientLine::Cont {
                id: 2,
                data: b"YWxpY2U="
            }
        );
        assert_eq!(
            parse("CONT\t3\t").unwrap(),
            ClientLine::Cont { id: 3, data: b"" }
        );
        assert!(matches!(
            parse("CONT\t3"),
            Err(ProtocolError::MissingField { .. })
        ));
        assert!(matches!(
            parse("CONT\t3\tYQ==\tx"),
            Err(ProtocolError::UnexpectedField { .. })
        ));
        assert!(matches!(
            parse("CONT\t3\t YQ=="),
            Err(ProtocolError::InvalidBase64 { .. })
        ));
        assert_eq!(parse("CANCEL\t9").unwrap(), ClientLine::Cancel { id: 9 });
        assert!(parse("CANCEL\t9\t1").is_err());
    }

    #[test]
    fn unknown_commands_are_errors_with_sanitised_names() {
        assert!(matches!(
            parse(""),
            Err(ProtocolError::UnexpectedCommand { command }) if command.is_empty()
        ));
        assert!(matches!(
            parse_line(b"HE\xffLO\tx"),
            Err(ProtocolError::UnexpectedCommand { command }) if command == "HE?LO"
        ));
        assert!(matches!(
            parse("auth\t1\tPLAIN\tservice=smtp"),
            Err(ProtocolError::UnexpectedCommand { .. })
        ));
        assert_eq!(command_name(b"AUTH\t1"), b"AUTH");
        assert_eq!(command_name(b""), b"");
    }

    fn base64_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range('A', 'Z'),
            proptest::char::range('a', 'z'),
            proptest::char::range('0', '9'),
            Just('+'),
            Just('/'),
            Just('=')
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line);
            let _ = command_name(&line);
        }

        #[test]
        fn arbitrary_auth_like_lines_never_panic(
            fields in proptest::collection::vec(
                prop_oneof![
                    Just(b"AUTH".to_vec()), Just(b"CONT".to_vec()), Just(b"1".to_vec()),
                    Just(b"PLAIN".to_vec()), Just(b"service=smtp".to_vec()), Just(b"resp=".to_vec()),
                    Just(b"lip=".to_vec()), Just(b"secured".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..12),
                ],
                0..8,
            )
        ) {
            let line = fields.join(&b'\t');
            let _ = parse_line(&line);
        }

        #[test]
        fn well_formed_auth_round_trips(
            id in any::<u32>(),
            login in any::<bool>(),
            lower in any::<bool>(),
            service in "[a-z]{1,10}",
            rip in any::<[u8; 4]>(),
            lport in any::<u16>(),
            secured in any::<bool>(),
            extra in proptest::collection::vec("[a-z_-]{1,8}(=[a-z0-9]{0,8})?", 0..4),
            resp in proptest::option::of(proptest::collection::vec(base64_char(), 0..40)),
        ) {
            let mechanism = if login { Mechanism::Login } else { Mechanism::Plain };
            let mech_name = if lower { mechanism.name().to_ascii_lowercase() } else { mechanism.name().to_owned() };
            let rip = Ipv4Addr::from(rip);
            let mut line = format!("AUTH\t{id}\t{mech_name}\tservice={service}\trip={rip}\tlport={lport}");
            for e in &extra {
                // Keep the fields this test asserts on from being overridden by a generated one.
                if !["service", "rip", "lip", "lport", "rport", "secured", "resp"]
                    .iter()
                    .any(|k| e == k || e.starts_with(&format!("{k}=")))
                {
                    line.push('\t');
                    line.push_str(e);
                }
            }
            if secured {
                line.push_str("\tsecured");
            }
            let resp: Option<String> = resp.map(|r| r.into_iter().collect());
            if let Some(r) = &resp {
                line.push_str("\tresp=");
                line.push_str(r);
            }
            let parsed = parse_line(line.as_bytes());
            let Ok(ClientLine::Auth(auth)) = parsed else {
                return Err(TestCaseError::fail(format!("{line:?} did not parse: {parsed:?}")));
            };
            prop_assert_eq!(auth.id, id);
            prop_assert_eq!(auth.mechanism, mechanism);
            prop_assert_eq!(auth.service, service);
            prop_assert_eq!(auth.remote_ip, Some(IpAddr::V4(rip)));
            prop_assert_eq!(auth.local_port, Some(lport));
            prop_assert_eq!(auth.secured, secured);
            prop_assert_eq!(auth.resp, resp.as_deref().map(str::as_bytes));
        }
    }
}
