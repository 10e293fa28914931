//! The milters: indymilter callbacks and session state, nothing else.

pub mod inbound;
pub mod submission;

use std::ffi::CString;

/// A message's header fields and body as the milter receives them, bounded in size.
#[derive(Debug, Default)]
pub struct MessageBuffer {
    /// Header fields as received (value bytes exactly as Postfix passed them).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// More body arrived than `max` allowed.
    pub truncated: bool,
    /// Whether header values arrive with their leading space (negotiated).
    pub leading_space: bool,
    /// Bytes of the header fields kept.
    header_bytes: usize,
}

/// Header fields kept per message at most.
const MAX_HEADERS: usize = 10_000;

impl MessageBuffer {
    /// Keeps a header field while the fields and the body together stay within `max`
    /// bytes (`max_message_mib`); past it (or past [`MAX_HEADERS`] fields) the message is
    /// `truncated`.
    pub fn header(&mut self, name: &str, value: Vec<u8>, max: usize) {
        let size = name.len() + value.len() + 4;
        if self.headers.len() >= MAX_HEADERS || self.header_bytes + self.body.len() + size > max {
            self.truncated = true;
            return;
        }
        self.header_bytes += size;
        self.headers.push((name.to_string(), value));
    }

    /// Appends a body chunk, keeping the header fields and the body within `max` bytes.
    pub fn body_chunk(&mut self, chunk: &[u8], max: usize) {
        let room = max.saturating_sub(self.header_bytes + self.body.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The message as RFC 5322 text with CRLF line ends (for DKIM and the verifiers).
    pub fn raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 4096);
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            if !self.leading_space {
                out.push(b' ');
            }
            let mut prev = 0u8;
            for &b in value {
                if b == b'\n' && prev != b'\r' {
                    out.push(b'\r');
                }
                out.push(b);
                prev = b;
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Sets the SMTP reply `code xcode text` and returns the matching status (4xx: tempfail,
/// 5xx: reject).
pub fn reply(
    reply: &mut indymilter::SmtpReply,
    code: &str,
    xcode: &str,
    text: &str,
) -> indymilter::Status {
    use indymilter::SetErrorReply;
    if let Err(e) = reply.set_error_reply(code, Some(xcode), [text]) {
        tracing::warn!(error = %e, "could not set the SMTP reply; using the default");
    }
    if code.starts_with('4') {
        indymilter::Status::Tempfail
    } else {
        indymilter::Status::Reject
    }
}

/// A macro's value, if Postfix sent it and it is not empty.
pub fn macro_value(macros: &indymilter::Macros, name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    macros
        .get(&name)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_rebuilds_crlf_text_and_bounds_the_body() {
        let mut m = MessageBuffer::default();
        m.header("Subject", b"folded\n\tline".to_vec(), 100);
        m.header("From", b"a@b.example".to_vec(), 100);
        assert!(!m.truncated);
        // 23 + 19 bytes of fields, room for 58 bytes of body.
        m.body_chunk(&[b'0'; 60], 100);
        m.body_chunk(b"0123456789", 100);
        assert!(m.truncated);
        assert_eq!(m.body.len(), 58);
        m.body.truncate(8);
        m.body.copy_from_slice(b"01234567");
        assert_eq!(
            m.raw(),
            b"Subject: folded\r\n\tline\r\nFrom: a@b.example\r\n\r\n01234567".to_vec()
        );
        let mut lead = MessageBuffer {
            leading_space: true,
            ..Default::default()
        };
        lead.header("X", b" v".to_vec(), 100);
        // Fields alone past the bound: kept no more.
        lead.header("Y", vec![b'y'; 100], 100);
        assert!(lead.truncated);
        assert_eq!(lead.raw(), b"X: v\r\n\r\n".to_vec());
    }
}
