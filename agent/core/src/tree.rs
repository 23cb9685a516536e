//! An app's files as values: relative `/`-separated paths to bytes, in sorted order.
//! The agent fills it from a directory or straight from a Git tree; render reads it.

use std::collections::BTreeMap;

/// Largest manifest file gitsync reads (8 MiB); larger files are refused unread.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// The files of one app, keyed by path relative to the app root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppTree {
    files: BTreeMap<String, Vec<u8>>,
}

impl AppTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a file.
    pub fn insert(&mut self, path: impl Into<String>, bytes: Vec<u8>) {
        self.files.insert(path.into(), bytes);
    }

    /// The bytes of a file.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// All paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// All files, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
