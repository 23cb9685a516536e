//! One reconcile pass of one app, reading like the data flow: render (pure), read the
//! live objects (I/O), plan (pure), execute (I/O), record (I/O). The CLI's `diff` stops
//! after the plan; `sync` and the agent loop go on to execute the same plan and record
//! it in the app's history.

use std::collections::BTreeMap;

use gitsync_core::plan::{self, Plan};
use gitsync_core::render::{self, Context};
use gitsync_core::tree::AppTree;
use gitsync_core::{Manifest, diff, digest, health, manifest};
use serde_json::Value;
use tracing::warn;

use crate::cluster::{self, Cluster, Event, ExecuteOptions, Outcome};
use crate::error_chain;
use crate::git::Revision;
use crate::history::{Entry, History, Result as HistoryResult};

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
    let desired = render(app, tree, revision)?;
    plan_rendered(cluster, app, &desired)
        .await
        .map(|(plan, _)| plan)
}

fn render(app: &App, tree: &AppTree, revision: Option<&str>) -> Result<Vec<Manifest>, Error> {
    let context = Context {
        app: app.name.clone(),
        revision: revision.map(str::to_owned),
        vars: app.vars.clone(),
    };
    render::render(tree, &context).map_err(Error::Render)
}

/// The plan, and the live objects it was made against.
async fn plan_rendered(
    cluster: &Cluster,
    app: &App,
    desired: &[Manifest],
) -> Result<(Plan, Vec<Value>), Error> {
    let live = cluster
        .live_objects(&app.name, desired)
        .await
        .map_err(Error::Live)?;
    let plan = plan::plan(&app.name, desired, &live, app.options).map_err(Error::Plan)?;
    Ok((plan, live))
}

/// True when every desired object is live and healthy, judged on the objects the
/// plan already read (no request).
fn all_healthy(desired: &[Manifest], live: &[Value]) -> bool {
    let live = manifest::index(live);
    desired
        .iter()
        .all(|m| health::assess(live.get(&m.id.group_kind_key()).copied()).is_healthy())
}

/// The drift of the live objects from `desired`, the render of the revision last
/// synced (kept from that sync: a drift check reads and compares, it does not render).
pub async fn drift(
    cluster: &Cluster,
    app: &App,
    desired: &[Manifest],
) -> Result<Vec<gitsync_core::drift::Drift>, Error> {
    let (plan, live) = plan_rendered(cluster, app, desired).await?;
    Ok(gitsync_core::drift::detect(&plan, &live))
}

/// Where and as whom a sync is recorded.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub history: Option<&'a History>,
    /// `cli`, `agent`, `self-heal`.
    pub trigger: &'a str,
}

/// What one sync rendered, planned and did.
#[derive(Debug)]
pub struct Synced {
    pub desired: Vec<Manifest>,
    pub plan: Plan,
    pub outcome: Outcome,
}

/// Renders, plans and executes one sync, recording it in the app's history (a
/// `Running` entry first, the outcome at the end). A plan without changes executes
/// nothing.
pub async fn sync(
    cluster: &Cluster,
    app: &App,
    tree: &AppTree,
    revision: Option<&Revision>,
    record: Record<'_>,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Synced, Error> {
    let mut entry = Entry::start(&app.name, record.trigger, revision);
    let save = async |entry: &Entry| {
        if let Some(history) = record.history
            && let Err(e) = history.record(entry).await
        {
            warn!(error = %error_chain(&e), "cannot record the sync in the history");
        }
    };
    save(&entry).await;
    let desired = match render(app, tree, revision.map(|r| r.commit.as_str())) {
        Ok(d) => d,
        Err(e) => {
            entry.fail(HistoryResult::RenderFailed, &error_chain(&e), &[]);
            save(&entry).await;
            return Err(e);
        }
    };
    entry.digest = digest::of_render(&desired);
    let secrets: Vec<String> = desired
        .iter()
        .flat_map(|m| diff::secret_values(&m.object))
        .collect();
    let (plan, live) = match plan_rendered(cluster, app, &desired).await {
        Ok(p) => p,
        Err(e) => {
            let result = match &e {
                Error::Plan(plan::Error::EmptyRender { .. } | plan::Error::PruneShare { .. }) => {
                    HistoryResult::PruneRefused
                }
                _ => HistoryResult::Failed,
            };
            entry.fail(result, &error_chain(&e), &secrets);
            save(&entry).await;
            return Err(e);
        }
    };
    // Nothing to change and everything healthy: done without another request.
    // Otherwise execute (for an unchanged plan that only waits for health).
    let must_run = plan.has_changes()
        || (app.execute.health_timeout.is_some() && !all_healthy(&desired, &live));
    let outcome = if must_run {
        cluster.execute(&plan, &app.execute, on_event).await
    } else {
        Outcome {
            unchanged: plan.summary().unchanged,
            health: Some(gitsync_core::health::Health::healthy()),
            ..Outcome::default()
        }
    };
    entry.finish(&outcome, &secrets);
    save(&entry).await;
    Ok(Synced {
        desired,
        plan,
        outcome,
    })
}
