//! The names the store accepts, checked the same way whatever the backend.

use super::{refused, Result};

/// Organization names: 1-64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_org_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        refused(format!(
            "invalid organization name {name:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// DKIM selectors: 1-63 letters, digits or inner hyphens (one DNS label).
pub fn validate_selector(selector: &str) -> Result<()> {
    let ok = !selector.is_empty()
        && selector.len() <= 63
        && selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !selector.starts_with('-')
        && !selector.ends_with('-');
    if ok {
        Ok(())
    } else {
        refused(format!(
            "invalid selector {selector:?}: use 1-63 letters, digits or inner hyphens"
        ))
    }
}

/// Credential labels: 1-64 printable characters, no control characters.
pub fn validate_label(label: &str) -> Result<()> {
    if label.trim().is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control)
    {
        return refused(format!(
            "invalid label {label:?}: use 1-64 printable characters"
        ));
    }
    Ok(())
}
