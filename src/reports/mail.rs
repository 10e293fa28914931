//! Getting a report to its destinations: gzip, the MIME message of RFC 7489 section
//! 7.2.1.1, the external destination check of section 7.1, and Postfix's sendmail.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::authn::{Dns, LookupFailure, PublicSuffixes};

/// The report XML, gzipped.
pub fn gzip(xml: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// What the message says about its report.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub org_name: &'a str,
    pub policy_domain: &'a str,
    pub report_id: &'a str,
    /// The attachment's name: `<receiver>!<policy-domain>!<begin>!<end>.xml.gz`.
    pub filename: &'a str,
    pub begin: i64,
    pub end: i64,
    /// Unix seconds, for the Date field.
    pub date: i64,
    /// For Message-ID and the MIME boundary.
    pub unique: &'a str,
}

/// A header field value without line breaks or other control characters, RFC 2047
/// encoded when it is not ASCII.
fn header_text(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() {
        clean
    } else {
        format!("=?utf-8?b?{}?=", BASE64.encode(clean.as_bytes()))
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An RFC 5322 date (UTC) of a Unix time.
pub fn rfc5322_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The report as a MIME message (RFC 7489 section 7.2.1.1): a text part and the gzipped
/// XML as an `application/gzip` attachment, base64, CRLF line ends.
pub fn message(env: &Envelope<'_>, gz: &[u8]) -> Vec<u8> {
    let boundary = format!("=_postwarden_{}", env.unique);
    let host = env.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut m = String::new();
    let mut h = |name: &str, value: String| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(&value);
        m.push_str("\r\n");
    };
    h("From", format!("<{}>", env.from));
    h(
        "To",
        env.to
            .iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    h(
        "Subject",
        header_text(&format!(
            "Report Domain: {} Submitter: {} Report-ID: <{}>",
            env.policy_domain, env.org_name, env.report_id
        )),
    );
    h("Date", rfc5322_date(env.date));
    h(
        "Message-ID",
        format!("<dmarc-report.{}@{host}>", env.unique),
    );
    h("MIME-Version", "1.0".into());
    h(
        "Content-Type",
        format!("multipart/mixed; boundary=\"{boundary}\""),
    );
    m.push_str("\r\n");
    m.push_str("This is a DMARC aggregate report (RFC 7489) in MIME format.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n");
    m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
    m.push_str(&format!(
        "This is an aggregate report from {} for {}.\r\n\r\nReport-ID: {}\r\nPeriod: {} to {} (Unix seconds, UTC)\r\n\r\n",
        header_text(env.org_name),
        env.policy_domain,
        env.report_id,
        env.begin,
        env.end
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: application/gzip; name=\"{}\"\r\n",
        env.filename
    ));
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{}\"\r\n\r\n",
        env.filename
    ));
    let b64 = BASE64.encode(gz);
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Submits `message` through `sendmail -i -f <from> -- <rcpts>`. A failure names the
/// command and what it said.
pub fn sendmail(
    sendmail: &Path,
    from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<(), String> {
    let shown = format!("{} -i -f {from} -- {}", sendmail.display(), rcpts.join(" "));
    let mut child = Command::new(sendmail)
        .args(["-i", "-f", from, "--"])
        .args(rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e} (check dmarc_reports.sendmail)"))?;
    let written = child.stdin.take().expect("piped stdin").write_all(message);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            if said.is_empty() {
                "no message on stderr"
            } else {
                &said
            }
        ));
    }
    written.map_err(|e| format!("`{shown}`: writing the message: {e}"))
}

/// Whether `address_domain` has the same organizational domain (Public Suffix List) as
/// the policy domain: such destinations need no permission (RFC 7489 section 7.1).
pub fn same_organization(psl: &PublicSuffixes, policy_domain: &str, address_domain: &str) -> bool {
    let p = policy_domain.trim_end_matches('.').to_ascii_lowercase();
    let a = address_domain.trim_end_matches('.').to_ascii_lowercase();
    psl.organizational_domain(&p) == psl.organizational_domain(&a)
}

/// Whether a report about `policy_domain` may go to `address` (RFC 7489 section 7.1):
/// yes within the policy domain's organization; otherwise only if
/// `<policy-domain>._report._dmarc.<address-domain>` has a TXT record starting with
/// `v=DMARC1`. `Err` on a temporary DNS failure (try again later).
pub async fn destination_allowed(
    dns: &Dns,
    psl: &PublicSuffixes,
    policy_domain: &str,
    address: &str,
) -> Result<Result<(), String>, String> {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return Ok(Err(format!("{address} is not a mail address")));
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if same_organization(psl, policy_domain, &domain) {
        return Ok(Ok(()));
    }
    let name = format!("{policy_domain}._report._dmarc.{domain}");
    match dns.txt_records(&name).await {
        Ok(txts) if txts.iter().any(|t| t.trim_start().starts_with("v=DMARC1")) => Ok(Ok(())),
        Ok(_) | Err(LookupFailure::NotFound) => Ok(Err(format!(
            "external destination not verified: {name} has no TXT record starting v=DMARC1 (RFC 7489 section 7.1)"
        ))),
        Err(LookupFailure::Temporary(e)) => Err(format!(
            "temporary DNS failure verifying the external destination {address} ({name}): {e}"
        )),
    }
}
