//! The optional `gitsync.yaml` at an app's root: default namespace, common labels,
//! variables, and ConfigMap/Secret generators. Unknown fields are errors, so a typo
//! never silently does nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::Problem;
use crate::tree::AppTree;
use crate::yaml;

/// The options file's name at the app root.
pub const OPTIONS_FILE: &str = "gitsync.yaml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    pub namespace: Option<String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub config_map_generator: Vec<Generator>,
    #[serde(default)]
    pub secret_generator: Vec<Generator>,
}

/// One generated ConfigMap or Secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Generator {
    pub name: String,
    /// `path` (key = file name) or `key=path`, relative to the app root.
    #[serde(default)]
    pub files: Vec<String>,
    /// `KEY=value`.
    #[serde(default)]
    pub literals: Vec<String>,
    /// Secret type (default `Opaque`).
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
}

impl Generator {
    /// `(key, path)` of each file entry.
    pub fn file_entries(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.files.iter().map(|entry| {
            if let Some((key, path)) = entry.split_once('=') {
                (key.to_owned(), path.to_owned())
            } else {
                let key = entry.rsplit('/').next().unwrap_or(entry).to_owned();
                (key, entry.clone())
            }
        })
    }
}

impl Options {
    /// Files read by generators: they are data, not manifests.
    pub fn generator_files(&self) -> BTreeSet<&str> {
        self.config_map_generator
            .iter()
            .chain(&self.secret_generator)
            .flat_map(|g| {
                g.files
                    .iter()
                    .map(|e| e.split_once('=').map_or(e.as_str(), |(_, p)| p))
            })
            .collect()
    }
}

/// Reads `gitsync.yaml` if the app has one.
pub fn load(tree: &AppTree) -> Result<Options, Problem> {
    let Some(bytes) = tree.get(OPTIONS_FILE) else {
        return Ok(Options::default());
    };
    let text = std::str::from_utf8(bytes).map_err(|_| Problem {
        file: OPTIONS_FILE.into(),
        line: 1,
        column: 1,
        message: "file is not UTF-8 text".into(),
    })?;
    if text.trim().is_empty() {
        return Ok(Options::default());
    }
    yaml::parse_typed::<Options>(OPTIONS_FILE, text).map_err(Problem::from)
}
