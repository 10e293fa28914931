//! The daemon's log lines, safe from the values clients control.
//!
//! A login, a HELO name, an address or a header field comes from the network. Written
//! raw, a line feed in an AUTH username would start a made-up second log line, and
//! escape sequences would reach the administrator's terminal. Every field value and
//! message of every log line therefore goes through [`escape`] ([`EscapingFields`],
//! installed by `postwarden run`), and `postwarden log` prints stored events the same way.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Whether `c` must not reach a log line as it is: C0 controls (line feed, escape, bell,
/// ...), DEL, C1 controls, the backslash (so that escapes are unambiguous) and the
/// Unicode characters that reorder displayed text (bidi embeddings, overrides, isolates
/// and marks).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\\'
        | '\u{061c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` with every character of [`needs_escape`] written as an escape: `\n`, `\r`, `\t`,
/// `\\`, `\xNN` for other controls up to U+00FF, `\u{NNNN}` for the bidi characters.
/// Borrowed when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) && (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Formats the fields of log lines like tracing's default (`message key=value ...`), with
/// every value escaped.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapingFields;

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn put(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let value = escape(value);
        self.result = if field.name() == "message" {
            write!(self.writer, "{sep}{value}")
        } else {
            write!(self.writer, "{sep}{}={value}", field.name())
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_backslashes_and_bidi_characters_are_escaped() {
        assert!(matches!(escape("alice@example.org"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(escape("\r\t\\"), "\\r\\t\\\\");
        assert_eq!(escape("\u{1b}[31mred\u{7}"), "\\x1b[31mred\\x07");
        assert_eq!(escape("\u{0}\u{7f}\u{85}\u{9b}"), "\\x00\\x7f\\x85\\x9b");
        assert_eq!(
            escape("user\u{202e}gpj.exe\u{2066}\u{200f}"),
            "user\\u{202e}gpj.exe\\u{2066}\\u{200f}"
        );
        // Ordinary non-ASCII text stays readable.
        assert_eq!(escape("jörg@bücher.example"), "jörg@bücher.example");
    }

    #[test]
    fn log_lines_carry_escaped_values() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapingFields)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let login = "x\nINFO postwarden::auth: login ok login=admin";
            tracing::info!(login = %login, helo = "h\u{1b}]0;pwned\u{7}", "login failed");
            tracing::info!("a message with {}", "a\rb");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("login failed login=x\\nINFO postwarden::auth: login ok login=admin"),
            "{text}"
        );
        assert!(text.contains("helo=h\\x1b]0;pwned\\x07"), "{text}");
        assert!(text.contains("a message with a\\rb"), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
    }
}
