//! The milters: indymilter callbacks and session state, nothing else.

pub mod inbound;
pub mod submission;

use std::ffi::CString;

/// A message's header fields and body as the milter receives them, bounded in size.
///
/// The message is kept once, as the RFC 5322 text the verifiers and the signer read (CRLF
/// line ends): each header field is appended to it as it arrives, then the blank line, then
/// the body chunks; [`raw`](Self::raw) lends it without a copy. The fields are also kept
/// one by one for the sender rule.
#[derive(Debug, Default)]
pub struct MessageBuffer {
    /// Header fields as received (value bytes exactly as Postfix passed them).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The header fields as CRLF text, then (from `body_start`) the blank line and the body.
    text: Vec<u8>,
    /// Where the blank line after the header fields starts in `text`, once written.
    body_start: Option<usize>,
    /// More body arrived than `max` allowed.
    pub truncated: bool,
    /// Whether header values arrive with their leading space (negotiated).
    pub leading_space: bool,
}

/// Header fields kept per message at most.
const MAX_HEADERS: usize = 10_000;

impl MessageBuffer {
    /// Keeps a header field while the fields and the body together stay within `max`
    /// bytes (`max_message_mib`); past it (or past [`MAX_HEADERS`] fields) the message is
    /// `truncated`. A field after the end of the header is ignored.
    pub fn header(&mut self, name: &str, value: Vec<u8>, max: usize) {
        let size = name.len() + value.len() + 4;
        if self.body_start.is_some()
            || self.headers.len() >= MAX_HEADERS
            || self.text.len() + size > max
        {
            self.truncated = true;
            return;
        }
        let out = &mut self.text;
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        if !self.leading_space {
            out.push(b' ');
        }
        let mut prev = 0u8;
        for &b in &value {
            if b == b'\n' && prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            prev = b;
        }
        out.extend_from_slice(b"\r\n");
        self.headers.push((name.to_string(), value));
    }

    /// Ends the header: writes the blank line (once).
    pub fn end_headers(&mut self) {
        if self.body_start.is_none() {
            self.body_start = Some(self.text.len());
            self.text.extend_from_slice(b"\r\n");
        }
    }

    /// Appends a body chunk, keeping the header fields and the body within `max` bytes.
    pub fn body_chunk(&mut self, chunk: &[u8], max: usize) {
        self.end_headers();
        let room = max.saturating_sub(self.text.len() - 2);
        if chunk.len() > room {
            self.truncated = true;
        }
        self.text.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The body received so far.
    pub fn body(&self) -> &[u8] {
        self.body_start.map_or(&[], |at| &self.text[at + 2..])
    }

    /// The message as RFC 5322 text with CRLF line ends (for DKIM and the verifiers):
    /// lent as kept once the header has ended, else a copy with the blank line.
    pub fn raw(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.body_start.is_some() {
            std::borrow::Cow::Borrowed(&self.text)
        } else {
            let mut out = self.text.clone();
            out.extend_from_slice(b"\r\n");
            std::borrow::Cow::Owned(out)
        }
    }

    /// Takes the message text out (for work on another thread), leaving the buffer empty.
    pub fn take_raw(&mut self) -> Vec<u8> {
        self.end_headers();
        self.body_start = None;
        self.headers.clear();
        std::mem::take(&mut self.text)
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
        assert_eq!(
            &m.raw()[..],
            b"Subject: folded\r\n\tline\r\nFrom: a@b.example\r\n\r\n"
        );
        // 43 bytes of fields (as CRLF text), room for 57 bytes of body.
        m.body_chunk(&[b'0'; 50], 100);
        m.body_chunk(b"0123456789", 100);
        assert!(m.truncated);
        assert_eq!(m.body().len(), 57);
        assert_eq!(&m.body()[48..], b"000123456");
        let raw = m.raw();
        assert!(matches!(raw, std::borrow::Cow::Borrowed(_)), "copied");
        assert!(raw.starts_with(b"Subject: folded\r\n\tline\r\nFrom: a@b.example\r\n\r\n00"));
        assert_eq!(raw.len(), 100 + 2);
        // A field after the body started is not part of the header.
        m.header("Late", b"x".to_vec(), 1000);
        assert!(!m.raw().windows(4).any(|w| w == b"Late"));
        let taken = m.take_raw();
        assert_eq!(taken.len(), 102);
        assert!(m.raw().is_empty() || &m.raw()[..] == b"\r\n");

        let mut lead = MessageBuffer {
            leading_space: true,
            ..Default::default()
        };
        lead.header("X", b" v".to_vec(), 100);
        // Fields alone past the bound: kept no more.
        lead.header("Y", vec![b'y'; 100], 100);
        assert!(lead.truncated);
        assert_eq!(&lead.raw()[..], b"X: v\r\n\r\n");
        lead.end_headers();
        lead.end_headers();
        assert_eq!(&lead.raw()[..], b"X: v\r\n\r\n");
        assert!(lead.body().is_empty());
    }
}
