//! Dovecot's "tab-escaping" of parameter values.
//!
//! Every value the protocol carries sits between TABs on a line that ends with LF, so a value must
//! never contain a raw TAB, LF or CR. Dovecot escapes them with the byte `\x01` followed by one
//! letter (`str_append_tabescaped` in Dovecot's `lib/strescape.c`):
//!
//! | raw      | escaped     |
//! |----------|-------------|
//! | `\x01`   | `\x01` `1`  |
//! | TAB      | `\x01` `t`  |
//! | CR       | `\x01` `r`  |
//! | LF       | `\x01` `n`  |
//! | NUL      | `\x01` `0`  |
//!
//! NUL is escaped as current Dovecot versions do: Postfix handles replies as C strings, so a raw NUL
//! would silently cut a value short. Unescaping maps `\x01` + any other character to that
//! character and drops a trailing lone `\x01`, as Dovecot does.
//!
//! Note that Postfix does not unescape: it shows the escaped form, with `\x01` replaced by `?`.

use std::borrow::Cow;

/// The escape character of Dovecot's tab-escaping.
const ESCAPE: u8 = 0x01;

fn needs_escape(b: u8) -> bool {
    matches!(b, 0 | ESCAPE | b'\t' | b'\r' | b'\n')
}

/// Escapes `value` so that it can be sent as one protocol field: the result contains no TAB, LF,
/// CR or NUL byte. Borrows when nothing needs escaping.
pub fn tab_escape(value: &str) -> Cow<'_, str> {
    if !value.bytes().any(needs_escape) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\u{1}' => out.push_str("\u{1}1"),
            '\t' => out.push_str("\u{1}t"),
            '\r' => out.push_str("\u{1}r"),
            '\n' => out.push_str("\u{1}n"),
            '\0' => out.push_str("\u{1}0"),
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

/// Reverses [`tab_escape`]. Borrows when `value` contains no escape character.
pub fn tab_unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('\u{1}') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('\u{1}'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => break,
        }
    }
    Cow::Owned(out)
}

/// Byte-level [`tab_unescape`] for fields that have not been checked for UTF-8 yet. Unescaping
/// valid UTF-8 this way yields valid UTF-8 (only ASCII bytes are removed or replaced).
pub(crate) fn tab_unescape_bytes(value: &[u8]) -> Cow<'_, [u8]> {
    if !value.contains(&ESCAPE) {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.iter().copied();
    while let Some(b) = bytes.next() {
        if b != ESCAPE {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'1') => out.push(ESCAPE),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'0') => out.push(0),
            Some(other) => out.push(other),
            None => break,
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_like_dovecot() {
        assert_eq!(tab_escape("alice@example.test"), "alice@example.test");
        assert!(matches!(tab_escape("plain"), Cow::Borrowed(_)));
        assert_eq!(tab_escape("a\tb"), "a\u{1}tb");
        assert_eq!(tab_escape("a\nb\rc"), "a\u{1}nb\u{1}rc");
        assert_eq!(tab_escape("\u{1}"), "\u{1}1");
        assert_eq!(tab_escape("x\0y"), "x\u{1}0y");
        assert_eq!(tab_escape("é\té"), "é\u{1}té");
    }

    #[test]
    fn unescapes_like_dovecot() {
        assert_eq!(
            tab_unescape("a\u{1}tb\u{1}nc\u{1}rd\u{1}1e\u{1}0"),
            "a\tb\nc\rd\u{1}e\0"
        );
        // Unknown escapes stand for the character itself; a trailing escape byte is dropped.
        assert_eq!(tab_unescape("\u{1}x\u{1}é\u{1}"), "xé");
        assert_eq!(&*tab_unescape_bytes(b"a\x01tb\x01"), b"a\tb");
        assert_eq!(&*tab_unescape_bytes(b"\x01\xff"), b"\xff");
    }

    proptest! {
        #[test]
        fn escape_round_trips(s in any::<String>()) {
            let escaped = tab_escape(&s);
            prop_assert!(!escaped.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0)));
            prop_assert_eq!(tab_unescape(&escaped), s.as_str());
            prop_assert_eq!(&*tab_unescape_bytes(escaped.as_bytes()), s.as_bytes());
        }

        #[test]
        fn escape_round_trips_control_heavy(v in proptest::collection::vec(
            prop_oneof![Just('\t'), Just('\n'), Just('\r'), Just('\0'), Just('\u{1}'),
                        Just('1'), Just('t'), Just('n'), any::<char>()], 0..40)) {
            let s: String = v.into_iter().collect();
            let escaped = tab_escape(&s);
            prop_assert_eq!(tab_unescape(&escaped), s.as_str());
        }

        #[test]
        fn unescape_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = tab_unescape_bytes(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let unescaped = tab_unescape(s);
                prop_assert_eq!(unescaped.as_bytes(), &*tab_unescape_bytes(&bytes));
            }
        }
    }
}
