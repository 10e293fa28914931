//! How a command ends: its error and exit code, and what it prints (one JSON document with
//! `--json`, otherwise text or a table), with the formatting helpers the tables share.

use serde::Serialize;
use serde_json::{json, Value};

use crate::address::display_domain;
use crate::model::format_time;
use crate::store::StoreError;

/// How a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Refused by a rule or a store fault: exit 1.
    Refused(String),
    /// Bad usage or configuration: exit 2.
    Usage(String),
    /// A refusal whose result the command has already printed (explain, dns-check): exit 1.
    Reported(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused(_) | CliError::Reported(_) => 1,
            CliError::Usage(_) => 2,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            CliError::Refused(m) | CliError::Usage(m) | CliError::Reported(m) => m,
        }
    }

    /// With --json, the error as the one JSON document on stdout (unless the command has
    /// printed its own).
    pub fn json(&self) -> Option<Value> {
        match self {
            CliError::Reported(_) => None,
            other => Some(json!({"error": other.message(), "exit_code": other.exit_code()})),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Refused(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

pub(super) fn emit(json: bool, value: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(&value).expect("json"));
    } else {
        let t = text();
        if !t.is_empty() {
            println!("{}", t.trim_end());
        }
    }
}

/// A list: `value` with --json, otherwise a table with one row per item.
pub(super) fn emit_table<T>(
    json: bool,
    value: Value,
    headers: &[&str],
    items: &[T],
    row: impl Fn(&T) -> Vec<String>,
) {
    emit(json, value, || {
        table(headers, items.iter().map(row).collect())
    })
}

/// A list whose JSON document is the items themselves; otherwise a table as [`emit_table`].
pub(super) fn emit_list<T: Serialize>(
    json: bool,
    items: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    let value = serde_json::to_value(items).expect("json");
    emit_table(json, value, headers, items, row)
}

/// Left-aligned columns separated by two spaces.
pub(super) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

pub(super) fn opt_time(t: Option<i64>) -> String {
    t.map(format_time).unwrap_or_else(|| "-".into())
}

/// A domain's (or its accounts') state as the tables and messages word it.
pub(super) fn active_text(active: bool) -> &'static str {
    if active {
        "active"
    } else {
        "inactive"
    }
}

pub(super) fn domain_text(a_label: &str) -> String {
    let readable = display_domain(a_label);
    if readable == a_label {
        readable
    } else {
        format!("{readable} ({a_label})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let t = table(&["A", "BB"], vec![vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x");
    }
}
