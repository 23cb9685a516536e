//! An app as its agent serves it, for commands given an app name instead of a
//! directory: the source the agent published in the cluster (repository, ref, path,
//! target namespace, `${VAR}` values, shared policies), fetched into a scratch clone
//! and read at the tracked ref or at a given revision (a commit, a tag, a pull
//! request's branch), policies included, ready to render as the agent would.

use std::path::PathBuf;

use anyhow::Context as _;
use gitsync_agent::control::AppSource;
use gitsync_agent::git::{Access, Mirror, Revision, Source};
use gitsync_core::tree::AppTree;

/// The app's files at one revision of its repository.
pub struct Fetched {
    pub revision: Revision,
    pub tree: AppTree,
}

/// Fetches `source`'s repository (no credentials of its own: a public or local
/// repository) and reads the app at `revision` (`None`: the tracked ref's tip).
pub async fn fetch(source: &AppSource, revision: Option<&str>) -> anyhow::Result<Fetched> {
    let scratch = scratch()?;
    let src = Source {
        url: source.repo.clone(),
        reference: source.reference.clone(),
        path: PathBuf::from(&source.path),
        access: Access::default(),
    };
    let wanted = revision.map(str::to_owned);
    let policies = source.policies.clone();
    let dir = scratch.path().to_path_buf();
    let (revision, tree) = tokio::task::spawn_blocking(move || {
        let mirror = Mirror::open(&dir, src.clone()).map_err(anyhow::Error::new)?;
        let tip = mirror.fetch().map_err(anyhow::Error::new)?;
        let (mirror, revision) = match &wanted {
            None => (mirror, tip),
            // In the tracked ref's history (a sha, `main~2`), or a tag fetched.
            Some(spec) if let Ok(revision) = mirror.at(spec) => (mirror, revision),
            // Another branch or tag (a pull request's): fetched as its own ref.
            Some(spec) => {
                let other = Source {
                    reference: spec.clone(),
                    ..src
                };
                let mirror = Mirror::open(&dir, other).map_err(anyhow::Error::new)?;
                let revision = mirror.fetch().map_err(anyhow::Error::new)?;
                (mirror, revision)
            }
        };
        let mut tree = mirror.read_app(&revision).map_err(anyhow::Error::new)?;
        gitsync_agent::policies::add(&mirror, &revision, &mut tree, &policies)
            .map_err(anyhow::Error::msg)?;
        Ok::<_, anyhow::Error>((revision, tree))
    })
    .await?
    .with_context(|| {
        format!(
            "cannot read {} at {}",
            source.repo,
            revision.unwrap_or(&source.reference)
        )
    })?;
    Ok(Fetched { revision, tree })
}

/// A scratch directory for a clone, removed when dropped.
pub fn scratch() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("gitsync-")
        .tempdir()
        .context("cannot create a scratch directory")
}
