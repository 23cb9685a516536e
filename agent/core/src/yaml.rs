//! YAML in and out, with serde-saphyr: multi-document parsing into `serde_json::Value`
//! with the position of every document, bounded against hostile input (aliases, nesting,
//! size), and deterministic block YAML output.
//!
//! JSON is YAML, so `.json` manifests parse here too. Pure: no I/O.

use std::fmt;

use serde_json::Value;
use serde_saphyr::{Budget, Options, Spanned};

/// Deepest nesting accepted; Kubernetes objects (CRD schemas included) stay far below.
pub const MAX_DEPTH: usize = 64;
/// Most alias (`*ref`) uses accepted in one file.
pub const MAX_ALIASES: usize = 1_000;
/// Most parser events (nodes) in one file: bounds what aliases can expand to.
pub const MAX_EVENTS: usize = 2_000_000;

/// A parse error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for Error {}

/// One document of a file and where its root node starts (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    pub line: usize,
    pub column: usize,
}

fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = MAX_ALIASES;
    budget.max_events = MAX_EVENTS;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options
}

/// Parses every document of `text`; empty (null) documents are skipped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, Error> {
    let docs: Vec<Option<Spanned<Value>>> =
        serde_saphyr::from_multiple_with_options(text, options())
            .map_err(|e| from_saphyr(file, &e))?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|d| !d.value.is_null())
        .map(|d| Document {
            line: to_usize(d.referenced.line()),
            column: to_usize(d.referenced.column()),
            value: d.value,
        })
        .collect())
}

/// Deserializes one document into a typed value (used for `gitsync.yaml`).
pub fn parse_typed<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| from_saphyr(file, &e))
}

fn from_saphyr(file: &str, error: &serde_saphyr::Error) -> Error {
    let (line, column) = error
        .location()
        .map_or((1, 1), |l| (to_usize(l.line()), to_usize(l.column())));
    let message = error.to_string();
    // serde-saphyr may append its own position; ours leads the message already.
    let message = message.lines().next().unwrap_or_default().trim().to_owned();
    Error {
        file: file.to_owned(),
        line: line.max(1),
        column: column.max(1),
        message,
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Block YAML for a value, keys in sorted order: deterministic byte for byte.
pub fn to_yaml(value: &Value) -> String {
    // Serializing a JSON value (string keys, finite numbers) cannot fail.
    serde_saphyr::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests;
