//! One reconcile pass of one app, reading like the data flow: render (pure), read the
//! live objects (I/O), plan (pure), execute (I/O). The CLI's `diff` stops after the plan;
//! `sync` and the agent loop go on to execute the same plan.

use std::collections::BTreeMap;

use gitsync_core::plan::{self, Plan};
use gitsync_core::render::{self, Context};
use gitsync_core::tree::AppTree;

use crate::cluster::{self, Cluster, Event, ExecuteOptions, Outcome};

/// Why a pass failed before writing anything.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("render failed")]
    Render(#[source] render::Error),
    #[error("cannot read the live state")]
    Live(#[source] cluster::Error),
    #[error(transparent)]
    Plan(plan::Error),
}

/// What is being reconciled: an app and how to render and plan it.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// `${VAR}` overrides (win over the app's gitsync.yaml).
    pub vars: BTreeMap<String, String>,
    pub options: plan::Options,
    /// How plans are executed (force, health timeout, concurrency).
    pub execute: ExecuteOptions,
}

/// Renders `tree` at `revision` and plans its sync against the cluster.
pub async fn plan(
    cluster: &Cluster,
    app: &App,
    tree: &AppTree,
    revision: Option<&str>,
) -> Result<Plan, Error> {
    let context = Context {
        app: app.name.clone(),
        revision: revision.map(str::to_owned),
        vars: app.vars.clone(),
    };
    let desired = render::render(tree, &context).map_err(Error::Render)?;
    let live = cluster
        .live_objects(&app.name, &desired)
        .await
        .map_err(Error::Live)?;
    plan::plan(&app.name, &desired, &live, app.options).map_err(Error::Plan)
}

/// Plans and executes one sync.
pub async fn sync(
    cluster: &Cluster,
    app: &App,
    tree: &AppTree,
    revision: Option<&str>,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(Plan, Outcome), Error> {
    let plan = plan(cluster, app, tree, revision).await?;
    let outcome = cluster.execute(&plan, &app.execute, on_event).await;
    Ok((plan, outcome))
}
