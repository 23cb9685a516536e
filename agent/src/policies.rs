//! An app's shared strategy policies: directories of its repository (the app's
//! `policies` setting, e.g. the repository's `policies/`) whose `StrategyPolicy`
//! documents the app may use beside the built-in ones and its own. They join the app's
//! tree under [`PREFIX`] so that rendering reads them like the app's own policy files;
//! anything in them that is not a StrategyPolicy is refused with its file and line, so
//! a shared directory can never add objects to an app.

use std::path::PathBuf;

use gitsync_core::tree::AppTree;

use crate::git::{Mirror, Revision};

/// Where shared policy files appear in the app's tree (and in error messages).
pub const PREFIX: &str = "shared-policies";

/// Adds the StrategyPolicy files of `paths` at `revision` to `tree`.
pub fn add(
    mirror: &Mirror,
    revision: &Revision,
    tree: &mut AppTree,
    paths: &[PathBuf],
) -> Result<(), String> {
    for path in paths {
        let shared = mirror
            .read_path(revision, path)
            .map_err(|e| format!("policies {}: {}", path.display(), crate::error_chain(&e)))?;
        for (file, bytes) in shared.files() {
            if !gitsync_core::render::is_manifest(file) {
                continue;
            }
            let name = format!("{PREFIX}/{}/{file}", path.display());
            let text = String::from_utf8_lossy(bytes);
            let documents =
                gitsync_core::yaml::parse_documents(&name, &text).map_err(|e| e.to_string())?;
            if let Some(other) = documents
                .iter()
                .find(|d| !gitsync_core::policy::is_policy(&d.value))
            {
                let kind = other
                    .value
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or("document without a kind");
                return Err(format!(
                    "{name}:{}:{}: a shared policies directory holds only StrategyPolicy documents, not a {kind}",
                    other.line, other.column
                ));
            }
            tree.insert(name, bytes.to_vec());
        }
    }
    Ok(())
}
