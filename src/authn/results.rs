//! The Authentication-Results header (RFC 8601): composing ours, and recognizing headers
//! from outside that claim to be ours (forgeries, removed by the milter).

use super::{Disposition, Outcome, SpfVerdict, Verdicts};
use crate::config::Config;

/// This machine's host name (the default authserv-id, and the SPF `%{r}` macro).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The authserv-id in effect: the configured one or the host name.
pub fn authserv_id(cfg: &Config) -> String {
    if cfg.inbound.authserv_id.is_empty() {
        hostname()
    } else {
        cfg.inbound.authserv_id.clone()
    }
}

/// The Authentication-Results header **value** (RFC 8601), e.g.
/// `mx.example; spf=pass smtp.mailfrom=a@b.example; dkim=pass header.d=b.example
/// header.s=sel header.a=rsa-sha256 header.b=abcd1234; dmarc=pass (p=reject dis=none)
/// header.from=b.example`.
///
/// Each result after the authserv-id starts a folded line: the separator is `;` + LF +
/// TAB, the milter convention for multi-line header values (Postfix writes CRLF on the
/// wire). For a raw RFC 5322 header, replace `"\n"` with `"\r\n"`. Order: SPF for MAIL
/// FROM (or `smtp.helo` for a null sender), SPF for HELO when it gave a result (each with
/// what decided it in a comment after the property, e.g. `smtp.mailfrom=a@b.example
/// (mechanism ip4:192.0.2.0/24 matched)`), one `dkim=` per signature (`dkim=none` without
/// any; each with `header.d`, `header.i` if given, `header.s`, `header.a` and `header.b`,
/// after a comment saying why it did not pass, or what to know about a pass, e.g.
/// `(l=120: 40 bytes after the signed body)`), `dmarc=`. Values that are not
/// RFC 2045 tokens are quoted; comments are restricted to safe characters.
pub fn authentication_results(authserv_id: &str, v: &Verdicts) -> String {
    let mut entries: Vec<String> = Vec::new();

    // `spf=RESULT (what failed) PROPERTY=VALUE (what decided it)`.
    let spf = |s: &SpfVerdict, property: &str, value: &str| {
        let failure = match s.result {
            Outcome::TempError => " (temporary DNS failure)".to_string(),
            Outcome::PermError => " (broken SPF record)".to_string(),
            _ => String::new(),
        };
        // What decided it, after the property: the mechanism that matched, or the error.
        let cause = match (&s.cause, s.result) {
            (None, _) => String::new(),
            (Some(cause), Outcome::Pass | Outcome::Fail | Outcome::SoftFail | Outcome::Neutral) => {
                format!(" (mechanism {} matched)", comment(cause))
            }
            (Some(cause), _) => format!(" ({})", comment(cause)),
        };
        format!(
            "spf={}{failure} {property}={}{cause}",
            s.result,
            pvalue(value)
        )
    };
    if v.mail_from.is_empty() {
        entries.push(spf(&v.spf_helo, "smtp.helo", &v.helo));
    } else {
        entries.push(spf(&v.spf_mail_from, "smtp.mailfrom", &v.mail_from));
        if v.spf_helo.result != Outcome::None {
            entries.push(spf(&v.spf_helo, "smtp.helo", &v.helo));
        }
    }

    if v.dkim.is_empty() {
        entries.push("dkim=none".to_string());
    }
    for d in &v.dkim {
        let mut e = format!("dkim={}", d.result);
        // Why it did not pass, or a remark on a pass (such as content after `l=`).
        let remark = match d.result {
            Outcome::Pass => d.note.as_deref(),
            _ => d.reason.as_deref(),
        };
        if let Some(remark) = remark {
            e.push_str(&format!(" ({})", comment(remark)));
        }
        if !d.domain.is_empty() {
            e.push_str(&format!(" header.d={}", pvalue(&d.domain)));
        }
        if let Some(i) = &d.identity {
            e.push_str(&format!(" header.i={}", pvalue(i)));
        }
        if !d.selector.is_empty() {
            e.push_str(&format!(" header.s={}", pvalue(&d.selector)));
        }
        if !d.algorithm.is_empty() {
            e.push_str(&format!(" header.a={}", pvalue(&d.algorithm)));
        }
        if !d.b_prefix.is_empty() {
            e.push_str(&format!(" header.b={}", pvalue(&d.b_prefix)));
        }
        entries.push(e);
    }

    if v.arc.result != Outcome::None {
        let mut e = format!("arc={}", v.arc.result);
        let mut notes = Vec::new();
        if let Some(reason) = v.arc.reason.as_deref() {
            notes.push(comment(reason));
        }
        if let Some(sealer) = v.arc.sealer.as_deref() {
            notes.push(format!(
                "i={} sealed by {}",
                v.arc.instances,
                comment(sealer)
            ));
        }
        if !notes.is_empty() {
            e.push_str(&format!(" ({})", notes.join(", ")));
        }
        e.push_str(&format!(
            " smtp.remote-ip={}",
            pvalue(&v.client_ip.to_string())
        ));
        entries.push(e);
    }

    let m = &v.dmarc;
    let mut e = format!("dmarc={}", m.result);
    if let (Some(record), Some(policy)) = (&m.record, m.policy) {
        let dis = match v.dmarc_disposition() {
            Disposition::Accept => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        };
        let pct = match (record.pct, m.sampled_out) {
            (100, _) => String::new(),
            (pct, false) => format!(" pct={pct}"),
            (pct, true) => format!(" pct={pct} sampled-out"),
        };
        e.push_str(&format!(
            " (p={} sp={}{pct} applied={policy} dis={dis})",
            record.p, record.sp
        ));
    } else if let Some(reason) = m.reason.as_deref() {
        e.push_str(&format!(" ({})", comment(reason)));
    }
    if !m.from_domain.is_empty() {
        e.push_str(&format!(" header.from={}", pvalue(&m.from_domain)));
    }
    entries.push(e);

    let mut out = sanitize_authserv_id(authserv_id);
    for e in entries {
        out.push_str(";\n\t");
        out.push_str(&e);
    }
    out
}

/// Whether an Authentication-Results header value claims to come from `authserv_id`:
/// its first token (before any `;`, after leading whitespace and comments; a quoted
/// string counts too) equals `authserv_id`, ignoring ASCII case and a trailing dot.
/// Such a header arriving from outside is a forgery and should be removed.
pub fn claims_authserv_id(header_value: &str, authserv_id: &str) -> bool {
    let wanted = authserv_id.trim().trim_end_matches('.');
    if wanted.is_empty() {
        return false;
    }
    let Some(first) = first_token(header_value) else {
        return false;
    };
    first.trim_end_matches('.').eq_ignore_ascii_case(wanted)
}

/// The authserv-id of an Authentication-Results value: skips CFWS (nested comments
/// included), then reads a quoted string or a run of characters up to whitespace, `;`
/// or `(`.
fn first_token(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut i = 0;
    // Skip whitespace and (possibly nested) comments.
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'(' {
            let mut depth = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if depth != 0 {
                return None;
            }
            continue;
        }
        break;
    }
    if i >= bytes.len() {
        return None;
    }
    if bytes[i] == b'"' {
        let mut token = Vec::new();
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if i + 1 < bytes.len() => {
                    token.push(bytes[i + 1]);
                    i += 2;
                }
                b'"' => return String::from_utf8(token).ok(),
                b => {
                    token.push(b);
                    i += 1;
                }
            }
        }
        return None;
    }
    let start = i;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b';' | b'(') {
        i += 1;
    }
    let token = &value[start..i];
    (!token.is_empty()).then(|| token.to_string())
}

/// The authserv-id as written: a token if possible, otherwise quoted.
fn sanitize_authserv_id(id: &str) -> String {
    let id = id.trim();
    if id.is_empty() {
        return "localhost".to_string();
    }
    pvalue(id)
}

/// A property value: as is when it is a token (plus `@`, which RFC 8601 allows in
/// addresses), otherwise a quoted string with `"` and `\` escaped and control
/// characters dropped.
fn pvalue(value: &str) -> String {
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~@/=".contains(c) || !c.is_ascii();
    if !value.is_empty() && value.chars().all(is_token_char) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c.is_control() {
            continue;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Comment text: printable ASCII without parentheses or backslashes, at most 120
/// characters.
fn comment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\') {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut out = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 120 {
        out.truncate(117);
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::verdicts;
    use super::super::DmarcVerdict;
    use super::*;

    #[test]
    fn authentication_results_text() {
        let v = verdicts();
        let ar = authentication_results("mx.example", &v);
        assert_eq!(
            ar,
            "mx.example;\n\tspf=pass smtp.mailfrom=a@b.example;\n\t\
             dkim=pass header.d=b.example header.s=sel header.a=rsa-sha256 header.b=abcd1234;\n\t\
             dmarc=pass (p=reject sp=reject applied=reject dis=none) header.from=b.example"
        );
        assert!(claims_authserv_id(&ar, "MX.example"));
        for line in ar.lines() {
            assert!(line.len() < 100, "{line}");
        }
    }

    #[test]
    fn authentication_results_spf_cause() {
        let mut v = verdicts();
        v.spf_mail_from.cause = Some("ip4:192.0.2.0/24".into());
        v.spf_helo.result = Outcome::PermError;
        v.spf_helo.cause = Some("invalid SPF record found".into());
        let ar = authentication_results("mx.example", &v);
        assert!(
            ar.contains("spf=pass smtp.mailfrom=a@b.example (mechanism ip4:192.0.2.0/24 matched);"),
            "{ar}"
        );
        assert!(
            ar.contains(
                "spf=permerror (broken SPF record) smtp.helo=mail.b.example \
                 (invalid SPF record found);"
            ),
            "{ar}"
        );
    }

    #[test]
    fn authentication_results_null_sender_failures_and_quoting() {
        let mut v = verdicts();
        v.mail_from.clear();
        v.spf_helo.result = Outcome::TempError;
        v.spf_mail_from = v.spf_helo.clone();
        v.dkim[0].result = Outcome::Fail;
        v.dkim[0].reason = Some("body hash (mismatch)\r\nX-Injected: 1".into());
        v.dkim[0].identity = Some("\"we ird\"@b.example".into());
        v.dmarc = DmarcVerdict {
            result: Outcome::TempError,
            reason: Some("temporary DNS failure".into()),
            ..DmarcVerdict::none()
        };
        v.dmarc.from_domain = "b.example".into();
        let ar = authentication_results("mx.example", &v);
        assert!(ar.contains("spf=temperror (temporary DNS failure) smtp.helo=mail.b.example"));
        assert!(!ar.contains("smtp.mailfrom"));
        assert!(ar.contains("dkim=fail (body hash mismatch X-Injected: 1) header.d=b.example"));
        assert!(ar.contains(r#"header.i="\"we ird\"@b.example""#), "{ar}");
        assert!(ar.contains("dmarc=temperror (temporary DNS failure) header.from=b.example"));
        assert!(!ar.contains('\r'));
        assert_eq!(
            ar.matches('\n').count(),
            3,
            "only the folding newlines: {ar}"
        );

        v.dkim.clear();
        let ar = authentication_results("mx.example", &v);
        assert!(ar.contains(";\n\tdkim=none;"));
    }

    #[test]
    fn authentication_results_dkim_remarks() {
        let mut v = verdicts();
        v.dkim[0].note = Some("l=120: 40 bytes after the signed body".into());
        v.dkim[0].reason = Some("not shown on a pass".into());
        let ar = authentication_results("mx.example", &v);
        assert!(
            ar.contains(
                "dkim=pass (l=120: 40 bytes after the signed body) header.d=b.example \
                 header.s=sel header.a=rsa-sha256 header.b=abcd1234;"
            ),
            "{ar}"
        );
        v.dkim[0].result = Outcome::Neutral;
        v.dkim[0].reason = Some("body length limit l= not accepted by local policy".into());
        let ar = authentication_results("mx.example", &v);
        assert!(
            ar.contains(
                "dkim=neutral (body length limit l= not accepted by local policy) \
                 header.d=b.example header.s=sel"
            ),
            "{ar}"
        );
    }

    #[test]
    fn claims_authserv_id_cases() {
        assert!(claims_authserv_id("mx.example; spf=pass", "mx.example"));
        assert!(claims_authserv_id("MX.Example.; none", "mx.example"));
        assert!(claims_authserv_id(
            "  (comment (nested)) mx.example 1; dkim=pass",
            "mx.example"
        ));
        assert!(claims_authserv_id(
            "\r\n\tmx.example;spf=pass",
            "mx.example"
        ));
        assert!(claims_authserv_id("\"mx.example\"; none", "mx.example"));
        assert!(claims_authserv_id("mx.example(c); none", "mx.example"));
        assert!(claims_authserv_id("mx.example", "mx.example"));
        assert!(!claims_authserv_id(
            "mx.example.evil; spf=pass",
            "mx.example"
        ));
        assert!(!claims_authserv_id(
            "other.example; mx.example",
            "mx.example"
        ));
        assert!(!claims_authserv_id(
            "x; spf=pass smtp.mailfrom=mx.example",
            "mx.example"
        ));
        assert!(!claims_authserv_id("", "mx.example"));
        assert!(!claims_authserv_id(
            "(unterminated mx.example",
            "mx.example"
        ));
        assert!(!claims_authserv_id("mx.example; none", ""));
        assert!(!claims_authserv_id("\"mx.example; none", "mx.example"));
    }

    #[test]
    fn value_and_comment_quoting() {
        assert_eq!(pvalue("a@b.example"), "a@b.example");
        assert_eq!(pvalue("a b"), "\"a b\"");
        assert_eq!(pvalue(""), "\"\"");
        assert_eq!(comment("a(b)c\\d\x01e"), "a b c d e");
        assert_eq!(comment(&"x".repeat(200)).len(), 120);
    }

    #[test]
    fn authserv_id_defaults_to_the_host_name() {
        let cfg = Config::parse("[inbound]\nauthserv_id = \"mx.example\"\n", "test").unwrap();
        assert_eq!(authserv_id(&cfg), "mx.example");
        let cfg = Config::parse("", "test").unwrap();
        assert_eq!(authserv_id(&cfg), hostname());
        assert!(!hostname().is_empty());
    }
}
