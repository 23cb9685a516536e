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
    let (app, tree, revision) = load(args)?;
    let context = Context {
        app: app.clone(),
        revision,
        vars: args.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    let manifests = render::render(&tree, &context)
        .with_context(|| format!("cannot render {}", args.path.display()))?;
    Ok((app, manifests))
}

/// Loads the app directory (refusing paths and symlinks that leave its repository).
pub fn load(args: &RenderArgs) -> anyhow::Result<(String, AppTree, Option<String>)> {
    let path = std::fs::canonicalize(&args.path)
        .with_context(|| format!("cannot read app directory {}", args.path.display()))?;
    let root = tree_fs::find_repo_root(&path);
    let tree = tree_fs::load_app(&root, &path)
        .with_context(|| format!("cannot read app directory {}", args.path.display()))?;
    let app = args.app.clone().unwrap_or_else(|| app_name(&path));
    let revision = args.revision.clone().or_else(|| git::head_commit(&path));
    Ok((app, tree, revision))
}

fn app_name(path: &std::path::Path) -> String {
    path.file_name()
        .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned())
}
