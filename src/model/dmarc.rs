//! DMARC aggregate reporting (RFC 7489 section 7.2): the DMARC result of one inbound
//! message as kept for the reports, and the record of a report sent.

use serde::{Deserialize, Serialize};

/// The DMARC evaluation of one message, as an aggregate report needs it. The inbound
/// milter makes one per message whose applicable DMARC record asks for aggregate
/// reports (`rua=`); `postwarden dmarc report` groups them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcRow {
    /// Unix seconds.
    pub time: i64,
    /// Where the DMARC record was found (lower case).
    pub policy_domain: String,
    /// The record's tags: `p=`, `sp=`, `pct=`, `adkim=`, `aspf=`, `fo=`.
    pub published: PublishedTags,
    /// The RFC 5322 From domain.
    pub header_from: String,
    /// The RFC 5321 MAIL FROM domain, or the HELO domain for a null sender.
    pub envelope_from: String,
    /// The connecting client's address.
    pub source_ip: String,
    /// What was done: `none`, `quarantine` or `reject`.
    pub disposition: String,
    /// DMARC's DKIM result: `pass` (an aligned DKIM pass) or `fail`.
    pub dkim_aligned: String,
    /// DMARC's SPF result: `pass` (an aligned SPF pass) or `fail`.
    pub spf_aligned: String,
    /// Why the disposition differs from the published policy, if it does.
    pub reasons: Vec<PolicyOverride>,
    /// Every DKIM signature's result.
    pub dkim: Vec<DkimAuth>,
    /// The SPF result DMARC used (MAIL FROM, or HELO for a null sender).
    pub spf: Vec<SpfAuth>,
    /// The record's `rua=` destinations.
    pub rua: Vec<ReportUri>,
}

/// One `rua=` destination (RFC 7489 section 6.2): a mailto: address and its size limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReportUri {
    /// The address, `mailto:` stripped.
    pub address: String,
    /// The largest report (bytes) the address takes: the `!10m` suffix (units k, m, g, t
    /// as powers of 1024); 0 = no limit.
    pub max_size: u64,
}

/// The published tags of the DMARC record that applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedTags {
    pub p: String,
    pub sp: String,
    pub pct: u8,
    /// `r` or `s`.
    pub adkim: String,
    /// `r` or `s`.
    pub aspf: String,
    pub fo: String,
}

/// A policy override reason (RFC 7489 `PolicyOverrideReason`): `sampled_out`,
/// `mailing_list`, `trusted_forwarder`, `local_policy`, ... with an optional comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyOverride {
    #[serde(rename = "type")]
    pub kind: String,
    pub comment: Option<String>,
}

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DkimAuth {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    pub result: String,
}

/// One SPF result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpfAuth {
    pub domain: String,
    /// `mfrom` or `helo`.
    pub scope: String,
    pub result: String,
}

/// An aggregate report that was sent, so a rerun for the same period does not send it
/// again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentReport {
    pub policy_domain: String,
    /// The period's first second (Unix).
    pub begin: i64,
    /// The period's last second (Unix).
    pub end: i64,
    pub report_id: String,
    /// The addresses it went to.
    pub recipients: Vec<String>,
    /// When it was sent.
    pub sent: i64,
}
