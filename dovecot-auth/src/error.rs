//! Why a connection was closed.

use std::fmt;

/// Why [`serve_connection`](crate::serve_connection) closed a connection.
///
/// Most variants are protocol violations by the client (a well-behaved Postfix never causes one).
/// The `Verifier*` variants are internal faults reported by (or observed on) the caller's
/// [`Verifier`](crate::Verifier); they close the connection on purpose, because that is the only
/// way to make Postfix answer `454 4.7.0` (temporary failure) instead of `535`.
///
/// The `Display` text names what was wrong without quoting credentials: it contains at most a
/// sanitised, truncated command or mechanism name and request ids.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Reading from or writing to the client failed.
    Io(std::io::Error),
    /// A line exceeded [`ServerConfig::max_line_length`](crate::ServerConfig::max_line_length).
    LineTooLong {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The client did not send `VERSION` and `CPID` within the handshake timeout.
    HandshakeTimeout,
    /// Writing one reply line took longer than the write timeout.
    WriteTimeout,
    /// The client's first line was not `VERSION` (for example `AUTH` before `VERSION`).
    ExpectedVersion {
        /// The command that came instead (sanitised).
        got: String,
    },
    /// The client speaks another major version of the protocol, or sent a malformed version.
    VersionMismatch {
        /// The major version the client sent (sanitised).
        major: String,
    },
    /// The client's second line was not `CPID`.
    ExpectedCpid {
        /// The command that came instead (sanitised).
        got: String,
    },
    /// `CPID` did not carry a non-zero decimal process id.
    BadCpid,
    /// An unknown command, or a known one where it is not allowed (such as a second `VERSION`).
    UnexpectedCommand {
        /// The command name (sanitised).
        command: String,
    },
    /// A required field of a command is missing.
    MissingField {
        /// The command.
        command: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A command carried more fields than it has.
    UnexpectedField {
        /// The command.
        command: &'static str,
    },
    /// A request id was not an unsigned 32-bit decimal number.
    BadId {
        /// The command that carried it.
        command: &'static str,
    },
    /// A field that must be text was not valid UTF-8.
    NotUtf8 {
        /// The field.
        field: &'static str,
    },
    /// `AUTH` named a mechanism this server does not offer.
    UnknownMechanism {
        /// The mechanism name (sanitised).
        mechanism: String,
    },
    /// `AUTH` had no `service=` parameter (Dovecot requires one too).
    MissingService {
        /// The request id.
        id: u32,
    },
    /// `AUTH` had parameters after `resp=`, which must be the last one (as in Dovecot).
    ParameterAfterResp {
        /// The request id.
        id: u32,
    },
    /// A base64 field contained characters outside the base64 alphabet. Postfix filters these out
    /// before forwarding anything from the SMTP client, so only a broken peer sends them.
    /// (Alphabet-clean but undecodable data comes from the SMTP client and only fails the request.)
    InvalidBase64 {
        /// The command that carried it.
        command: &'static str,
        /// The request id.
        id: u32,
    },
    /// `AUTH` reused the id of a request that is still pending.
    DuplicateId {
        /// The request id.
        id: u32,
    },
    /// `CONT` for an id that was never started (or was already answered).
    UnknownId {
        /// The request id.
        id: u32,
    },
    /// `CONT` for a request that is not waiting for one (its credentials are being verified).
    UnexpectedContinuation {
        /// The request id.
        id: u32,
    },
    /// The verifier returned [`Verdict::Fault`](crate::Verdict::Fault) (or `Ok` with an empty
    /// user name, which is treated as a fault).
    VerifierFault {
        /// The request id.
        id: u32,
        /// The verifier's message (for the operator's log; never sent to the client).
        message: String,
    },
    /// The verifier panicked.
    VerifierPanicked,
    /// The verifier did not answer within the verify timeout.
    VerifyTimeout {
        /// The request id.
        id: u32,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::LineTooLong { limit } => write!(f, "line longer than {limit} bytes"),
            Self::HandshakeTimeout => f.write_str("client did not complete the handshake in time"),
            Self::WriteTimeout => f.write_str("timed out writing a reply to the client"),
            Self::ExpectedVersion { got } => {
                write!(f, "expected VERSION as the first line, got `{got}`")
            }
            Self::VersionMismatch { major } => {
                write!(
                    f,
                    "unsupported protocol major version `{major}` (expected 1)"
                )
            }
            Self::ExpectedCpid { got } => {
                write!(f, "expected CPID after VERSION, got `{got}`")
            }
            Self::BadCpid => f.write_str("CPID without a valid non-zero process id"),
            Self::UnexpectedCommand { command } => write!(f, "unexpected command `{command}`"),
            Self::MissingField { command, field } => write!(f, "{command} without {field}"),
            Self::UnexpectedField { command } => write!(f, "{command} with too many fields"),
            Self::BadId { command } => {
                write!(
                    f,
                    "{command} with an id that is not an unsigned 32-bit number"
                )
            }
            Self::NotUtf8 { field } => write!(f, "{field} is not valid UTF-8"),
            Self::UnknownMechanism { mechanism } => {
                write!(f, "unsupported mechanism `{mechanism}`")
            }
            Self::MissingService { id } => write!(f, "AUTH {id} without service="),
            Self::ParameterAfterResp { id } => {
                write!(f, "AUTH {id} has parameters after resp=")
            }
            Self::InvalidBase64 { command, id } => {
                write!(
                    f,
                    "{command} {id} carries characters outside the base64 alphabet"
                )
            }
            Self::DuplicateId { id } => write!(f, "AUTH reuses the id {id} of a pending request"),
            Self::UnknownId { id } => write!(f, "CONT for unknown request id {id}"),
            Self::UnexpectedContinuation { id } => {
                write!(f, "CONT for request {id}, which is not waiting for one")
            }
            Self::VerifierFault { id, message } => {
                write!(f, "verifier fault on request {id}: {message}")
            }
            Self::VerifierPanicked => f.write_str("verifier panicked"),
            Self::VerifyTimeout { id } => write!(f, "verifier did not answer request {id} in time"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ProtocolError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Renders untrusted bytes for an error message: at most 32 bytes, printable ASCII kept, anything
/// else shown as `?`.
pub(crate) fn sanitize(bytes: &[u8]) -> String {
    const MAX: usize = 32;
    let mut out: String = bytes
        .iter()
        .take(MAX)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}
