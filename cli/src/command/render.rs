//! `gitsync render`: load an app directory, render it, print YAML.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use gitsync_agent::{git, tree_fs};
use gitsync_core::Manifest;
use gitsync_core::render::{self, Context};
use gitsync_core::tree::AppTree;

use crate::args::RenderArgs;
use crate::output;

pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (_, manifests) = load_and_render(args)?;
    output::text(&render::to_yaml_stream(&manifests));
    Ok(ExitCode::SUCCESS)
}

/// The app name, its files, and its render: shared by render, diff, sync and status.
pub fn load_and_render(args: &RenderArgs) -> anyhow::Result<(String, Vec<Manifest>)> {
    let loaded = load(args)?;
    let context = Context {
        app: loaded.app.clone(),
        revision: loaded.revision.as_ref().map(|r| r.commit.clone()),
        vars: vars(args),
        namespace: None,
    };
    let manifests = render::render(&loaded.tree, &context)
        .with_context(|| format!("cannot render {}", args.path.display()))?
        .manifests;
    Ok((loaded.app, manifests))
}

/// `--var` flags as a map.
pub fn vars(args: &RenderArgs) -> BTreeMap<String, String> {
    args.vars.iter().cloned().collect()
}

/// An app's files and where they come from.
pub struct Loaded {
    pub app: String,
    pub tree: AppTree,
    /// The commit rendered: `--revision`, else the enclosing repository's HEAD.
    pub revision: Option<git::Revision>,
}

/// Loads the app: the working directory's files, or with `--revision` the files of
/// that commit in the enclosing Git repository (refusing paths and symlinks that
/// leave the repository either way).
pub fn load(args: &RenderArgs) -> anyhow::Result<Loaded> {
    let path = std::fs::canonicalize(&args.path)
        .with_context(|| format!("cannot read app directory {}", args.path.display()))?;
    let app = args.app.clone().unwrap_or_else(|| app_name(&path));
    let repo = git::Mirror::enclosing(&path).ok();
    if let Some(spec) = &args.revision {
        let repo = repo.with_context(|| {
            format!(
                "--revision needs {} to be inside a Git repository",
                args.path.display()
            )
        })?;
        let revision = repo
            .at(spec)
            .with_context(|| format!("cannot resolve revision {spec:?}"))?;
        let tree = repo
            .read_app(&revision)
            .with_context(|| format!("cannot read {} at {spec}", args.path.display()))?;
        return Ok(Loaded {
            app,
            tree,
            revision: Some(revision),
        });
    }
    let root = tree_fs::find_repo_root(&path);
    let tree = tree_fs::load_app(&root, &path)
        .with_context(|| format!("cannot read app directory {}", args.path.display()))?;
    let revision = repo.and_then(|r| r.at("HEAD").ok());
    Ok(Loaded {
        app,
        tree,
        revision,
    })
}

fn app_name(path: &std::path::Path) -> String {
    path.file_name()
        .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned())
}
