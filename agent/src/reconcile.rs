//! One reconcile pass of one app, reading like the data flow: render (pure), read the
//! live objects (I/O), move the rollouts (their state is I/O, the decision pure), plan
//! (pure), execute (I/O), record (I/O). The CLI's `diff` stops after the plan; `sync`
//! and the agent loop go on to execute the same plan and record it in the app's
//! history. A pass moves each rollout one stretch; while one waits on health or time,
//! the caller runs the pass again (see [`Synced::waiting`]).

use std::collections::BTreeMap;

use futures::StreamExt as _;
use gitsync_core::plan::{self, Plan};
use gitsync_core::render::{self, Context, Rendered};
use gitsync_core::rollout::{Phase, Wait};
use gitsync_core::tree::AppTree;
use gitsync_core::{Manifest, diff, digest, health, manifest};
use serde_json::Value;
use tracing::{debug, warn};

use crate::cluster::{self, Cluster, Event, EventType, ExecuteOptions, LiveCache, Outcome};
use crate::error_chain;
use crate::git::Revision;
use crate::history::{Entry, History, Result as HistoryResult};
use crate::rollouts::{self, Mode, Pass, Rollouts};

/// Why a pass failed before writing anything.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("render failed")]
    Render(#[source] render::Error),
    #[error("cannot read the live state")]
    Live(#[source] cluster::Error),
    #[error(transparent)]
    Rollout(rollouts::Error),
    #[error(transparent)]
    Plan(plan::Error),
}

/// What is being reconciled: an app and how to render and plan it.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// `${VAR}` overrides (win over the app's gitsync.yaml).
    pub vars: BTreeMap<String, String>,
    /// Namespace for objects that name none (wins over the app's gitsync.yaml).
    pub namespace: Option<String>,
    pub options: plan::Options,
    /// How plans are executed (force, health timeout, concurrency).
    pub execute: ExecuteOptions,
    /// Where a sync reads the live objects of the kinds it watches (see
    /// [`LiveCache`]); `None`: every kind is listed.
    pub cache: Option<std::sync::Arc<LiveCache>>,
}

/// What a plan was made of: the rollouts' pass (its `desired` is what the plan
/// applies) and the live objects it was made against.
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    pub pass: Pass,
    pub live: Vec<Value>,
}

/// Renders `tree` at `revision` and plans its sync against the cluster: what the next
/// `sync` would apply, rollouts included (their state read from `rollouts`; a pending
/// promote or abort is not carried out), and with `steps` the steps each rollout will
/// go through ([`Mode::Plan`]).
pub async fn plan(
    cluster: &Cluster,
    app: &App,
    tree: &AppTree,
    revision: Option<&str>,
    rollouts: Option<&Rollouts>,
    steps: bool,
) -> Result<Planned, Error> {
    let rendered = render(app, tree, revision)?;
    let mode = if steps { Mode::Plan } else { Mode::Diff };
    let mut planned = prepare(cluster, app, rendered, None, rollouts, mode).await?;
    // What the prediction calls an update, the API server confirms (a sync does the
    // same in its preflight, with the dry run it makes anyway).
    cluster.confirm(&mut planned.plan, &app.execute).await;
    Ok(planned)
}

fn render(app: &App, tree: &AppTree, revision: Option<&str>) -> Result<Rendered, Error> {
    let context = Context {
        app: app.name.clone(),
        revision: revision.map(str::to_owned),
        vars: app.vars.clone(),
        namespace: app.namespace.clone(),
    };
    render::render(tree, &context).map_err(Error::Render)
}

/// Reads the live state (completing `labelled`, the app's labelled objects when they
/// were read already), moves the rollouts and plans.
async fn prepare(
    cluster: &Cluster,
    app: &App,
    rendered: Rendered,
    labelled: Option<Vec<Value>>,
    rollouts: Option<&Rollouts>,
    mode: Mode,
) -> Result<Planned, Error> {
    let started = std::time::Instant::now();
    let live = match labelled {
        Some(labelled) => cluster.with_unlabelled(labelled, &rendered.manifests).await,
        None => cluster.live_objects(&app.name, &rendered.manifests).await,
    }
    .map_err(Error::Live)?;
    let read = started.elapsed();
    let pass = rollouts::pass(cluster, rollouts, &app.name, rendered, &live, mode)
        .await
        .map_err(Error::Rollout)?;
    let rolled = started.elapsed();
    let plan = plan::plan(&app.name, &pass.desired, &live, app.options).map_err(Error::Plan)?;
    debug!(live = ?read, rollouts = ?rolled.saturating_sub(read),
        plan = ?started.elapsed().saturating_sub(rolled), "planned");
    Ok(Planned { plan, pass, live })
}

/// True when every desired object is live and healthy, judged on the objects the
/// plan already read (no request). Deployments a rollout moves are its to judge.
fn all_healthy(desired: &[Manifest], live: &[Value]) -> bool {
    let live = manifest::index(live);
    desired
        .iter()
        .filter(|m| !gitsync_core::rollout::is_rolled(&m.object))
        .all(|m| health::assess(live.get(&m.id.group_kind_key()).copied()).is_healthy())
}

/// The drift of the live objects from `desired`, what the last sync applied (kept from
/// that sync: a drift check reads and compares, it does not render). One object at a
/// time: each read from the app's watch cache when it holds the object's kind, then
/// compared and let go, so a check of thousands of objects holds a few in memory, not
/// all. Those the cache cannot answer for (a kind not watched yet, an object gone or
/// without the app's label) are read from the API server. A modified object is drift
/// only when the API server confirms it: a dry-run apply answered with the live object
/// as it is means a mutating webhook keeps it so, and re-applying changes nothing.
pub async fn drift(
    cluster: &Cluster,
    app: &App,
    desired: &manifest::Packed,
) -> Result<Vec<gitsync_core::drift::Drift>, Error> {
    let mut drift = Vec::new();
    // Modified objects, to be confirmed: (position, drift, desired, live).
    let mut suspects = Vec::new();
    let mut found = |position: usize, m: &Manifest, live: Option<&Value>| {
        let Some(d) = gitsync_core::drift::of_object(m, live) else {
            return;
        };
        match live {
            Some(live) if d.kind == "modified" => {
                suspects.push((position, d, m.clone(), live.clone()));
            }
            _ => drift.push((position, d)),
        }
    };
    // The objects the cache cannot answer for, and their positions in the render.
    let (mut unseen, mut unseen_at) = (Vec::new(), Vec::new());
    for (position, m) in desired.each().enumerate() {
        // The cache holds only objects carrying this app's label: no owner to check.
        if let Some(Some(live)) = app.cache.as_deref().and_then(|c| c.object(&m.id)) {
            found(position, &m, Some(&live));
        } else {
            unseen.push(m);
            unseen_at.push(position);
        }
    }
    if !unseen.is_empty() {
        let live = cluster
            .with_unlabelled(Vec::new(), &unseen)
            .await
            .map_err(Error::Live)?;
        let live = manifest::index(&live);
        for (m, position) in unseen.iter().zip(unseen_at) {
            let object = live.get(&m.id.group_kind_key()).copied();
            plan::check_owner(&app.name, m, object).map_err(Error::Plan)?;
            found(position, m, object);
        }
    }
    // Forced: a hand edit usually took the field's ownership too, and the question is
    // what re-applying the revision would change, not whether it would conflict.
    let forced = ExecuteOptions {
        force: true,
        ..app.execute.clone()
    };
    let forced = &forced;
    let confirmed: Vec<_> = futures::stream::iter(suspects.into_iter().map(
        |(position, d, m, live)| async move {
            match cluster.dry_apply(&m, forced).await {
                Ok(server) if diff::settles(&live, &server) => None,
                // The fields the server's answer would change, not those predicted.
                Ok(server) => Some((
                    position,
                    gitsync_core::drift::Drift {
                        fields: gitsync_core::drift::between(&live, &server),
                        ..d
                    },
                )),
                Err(_) => Some((position, d)),
            }
        },
    ))
    .buffer_unordered(app.execute.concurrency)
    .filter_map(std::future::ready)
    .collect()
    .await;
    drift.extend(confirmed);
    // In the order of the render.
    drift.sort_by_key(|(position, _)| *position);
    Ok(drift.into_iter().map(|(_, d)| d).collect())
}

/// Where and as whom a sync is recorded.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub history: Option<&'a History>,
    /// Where rollout states are kept (`None`: every rollout starts afresh).
    pub rollouts: Option<&'a Rollouts>,
    /// `cli`, `agent`, `self-heal`, `rollback`, or [`ROLLOUT`].
    pub trigger: &'a str,
    /// The earlier revision this sync restores, when it is a rollback.
    pub rollback_to: Option<&'a str>,
}

/// The trigger of a pass that only moves rollouts on: recorded in the history only
/// when it changes something.
pub const ROLLOUT: &str = "rollout";

/// What one sync rendered, planned and did.
#[derive(Debug)]
pub struct Synced {
    /// What the sync applied: the render with the rollouts' objects in place.
    pub desired: Vec<Manifest>,
    pub plan: Plan,
    pub outcome: Outcome,
    /// The app's rollouts after this pass.
    pub rollouts: Vec<rollouts::Progress>,
}

impl Synced {
    /// What the app's rollouts wait for before the next pass can move them (`None`:
    /// none in progress). A pass after a health or timed wait moves them on; a
    /// `Promote` wait needs `gitsync promote` first.
    pub fn waiting(&self) -> Option<&Wait> {
        let waits = self.rollouts.iter().filter_map(|p| p.wait.as_ref());
        waits.min_by_key(|w| match w {
            Wait::Health(_) | Wait::Queued => 0,
            Wait::Until(_) => 1,
            Wait::Promote => 2,
        })
    }

    /// The first rollout that ended without rolling out (aborted, rolled back,
    /// failed) in this pass, with its reason.
    pub fn failed_rollout(&self) -> Option<&rollouts::Progress> {
        self.rollouts
            .iter()
            .find(|p| !p.notes.is_empty() && p.rollout.state.phase.gave_up())
    }
}

/// Renders, plans and executes one sync, recording it in the app's history (a
/// `Running` entry first, the outcome at the end) and each rollout step as a Kubernetes
/// Event on its Deployment. A plan without changes executes nothing.
pub async fn sync(
    cluster: &Cluster,
    app: &App,
    tree: &AppTree,
    revision: Option<&Revision>,
    record: Record<'_>,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Synced, Error> {
    let mut entry = Entry::start(&app.name, record.trigger, revision);
    entry.rollback_to = record.rollback_to.map(str::to_owned);
    let save = async |entry: &Entry| {
        if let Some(history) = record.history
            && let Err(e) = history.record(entry).await
        {
            warn!(error = %error_chain(&e), "cannot record the sync in the history");
        }
    };
    let quiet = record.trigger == ROLLOUT;
    // The `Running` entry is written while the render runs on a blocking thread.
    let started = std::time::Instant::now();
    let rendering = {
        let (app, tree) = (app.clone(), tree.clone());
        let commit = revision.map(|r| r.commit.clone());
        tokio::task::spawn_blocking(move || render(&app, &tree, commit.as_deref()))
    };
    // So are the app's labelled live objects read (the rest of the live state needs
    // the render).
    let saving = async {
        if !quiet {
            save(&entry).await;
        }
    };
    let reading = async {
        let labelled = cluster.labelled(&app.name, app.cache.as_deref()).await;
        (labelled, started.elapsed())
    };
    let (rendering, (labelled, read), ()) = tokio::join!(rendering, reading, saving);
    let rendered = match rendering {
        Ok(r) => r,
        // Rendering panicked: the same as on this thread, not a silent success.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    debug!(took = ?started.elapsed(), labelled = ?read, "rendered");
    let rendered = match rendered {
        Ok(d) => d,
        Err(e) => {
            entry.fail(HistoryResult::RenderFailed, &error_chain(&e), &[]);
            save(&entry).await;
            return Err(e);
        }
    };
    let secrets: Vec<String> = rendered
        .manifests
        .iter()
        .flat_map(|m| diff::secret_values(&m.object))
        .collect();
    let prepared = match labelled {
        Ok(l) => prepare(cluster, app, rendered, Some(l), record.rollouts, Mode::Sync).await,
        Err(e) => Err(Error::Live(e)),
    };
    let Planned {
        mut plan,
        pass,
        live,
    } = match prepared {
        Ok(p) => p,
        // A pruning guard is not an error here: the plan carries it, and the sync
        // records PruneRefused once it has refused.
        Err(e) => {
            entry.fail(HistoryResult::Failed, &error_chain(&e), &secrets);
            save(&entry).await;
            return Err(e);
        }
    };
    entry.digest = digest::of_render(&pass.desired);
    entry.rollout = pass
        .rollouts
        .iter()
        .flat_map(|p| {
            p.notes
                .iter()
                .map(|n| format!("{}: {n}", p.rollout.workload))
        })
        .collect();
    let record_it = !quiet || plan.has_changes() || !entry.rollout.is_empty();
    if quiet && record_it {
        save(&entry).await;
    }
    // The rollouts' new state is stored before anything is applied: a pass cut off
    // after applying resumes from it.
    if let Some(store) = record.rollouts
        && !pass.rollouts.is_empty()
        && let Err(e) = store.save(&app.name, &pass).await
    {
        let e = Error::Rollout(e);
        entry.fail(HistoryResult::Failed, &error_chain(&e), &secrets);
        save(&entry).await;
        return Err(e);
    }
    // Nothing to change and everything healthy: done without another request.
    // Otherwise execute (for an unchanged plan that only waits for health).
    let must_run = plan.has_changes()
        || (app.execute.health_timeout.is_some() && !all_healthy(&pass.desired, &live));
    let outcome = if must_run {
        let changed = std::sync::Mutex::new(Vec::new());
        let collect = |event: Event<'_>| {
            let change = match event {
                Event::Done(step) => Some((step.diff.id.clone(), step.diff.action, None)),
                Event::Failed(step, message) => Some((
                    step.diff.id.clone(),
                    step.diff.action,
                    Some(message.to_owned()),
                )),
                Event::Started(_) | Event::Waiting(_) => None,
            };
            if let Some(change) = change
                && let Ok(mut changed) = changed.lock()
                && changed.len() < EVENT_LIMIT
            {
                changed.push(change);
            }
            on_event(event);
        };
        let outcome = cluster.execute(&plan, &app.execute, &collect).await;
        settle(&mut plan, &outcome.settled);
        let changed = changed.into_inner().unwrap_or_default();
        report_changes(cluster, &changed, revision, &secrets).await;
        outcome
    } else {
        Outcome {
            unchanged: plan.summary().unchanged,
            health: Some(gitsync_core::health::Health::healthy()),
            ..Outcome::default()
        }
    };
    entry.finish(&outcome, &secrets);
    if record_it {
        save(&entry).await;
    }
    report_rollouts(cluster, &pass).await;
    Ok(Synced {
        desired: pass.desired,
        plan,
        outcome,
        rollouts: pass.rollouts,
    })
}

/// Marks the updates the execution found to change nothing as unchanged, so that the
/// recorded plan shows only what the sync changed.
fn settle(plan: &mut Plan, settled: &[gitsync_core::ObjectId]) {
    if settled.is_empty() {
        return;
    }
    let settled: std::collections::BTreeSet<_> = settled.iter().collect();
    for step in &mut plan.steps {
        if settled.contains(&step.diff.id) {
            step.diff.settle();
        }
    }
}

/// Objects a sync reports Events on, at most: a first sync of thousands of objects must
/// not write thousands of Events.
const EVENT_LIMIT: usize = 50;

/// One Event per object the sync changed (`Synced`, `Pruned`) or failed to
/// (`SyncFailed`, with the server's reason, Secret values scrubbed).
async fn report_changes(
    cluster: &Cluster,
    changed: &[(gitsync_core::ObjectId, diff::Action, Option<String>)],
    revision: Option<&Revision>,
    secrets: &[String],
) {
    let at = revision.map_or_else(
        || "the working tree".to_owned(),
        |r| format!("revision {}", crate::git::short_commit(&r.commit)),
    );
    for (id, action, failure) in changed {
        let (kind, reason, message) = match (failure, action) {
            (Some(message), _) => (
                EventType::Warning,
                "SyncFailed",
                format!(
                    "cannot {} at {at}: {}",
                    action.as_str(),
                    crate::history::scrub(message, secrets)
                ),
            ),
            (None, diff::Action::Prune) => (
                EventType::Normal,
                "Pruned",
                format!("pruned by gitsync: no longer in {at}"),
            ),
            (None, _) => (
                EventType::Normal,
                "Synced",
                format!("{} by gitsync at {at}", action.past_tense()),
            ),
        };
        if let Err(e) = cluster.event(id, kind, reason, &message).await {
            debug!(error = %e, "cannot record the sync event");
        }
    }
}

/// One Kubernetes Event per rollout note, on the rolled Deployment.
async fn report_rollouts(cluster: &Cluster, pass: &Pass) {
    for progress in &pass.rollouts {
        let (kind, reason) = match progress.rollout.state.phase {
            Phase::Progressing | Phase::Paused | Phase::Switched => {
                (EventType::Normal, "RolloutStep")
            }
            Phase::Completed => (EventType::Normal, "RolloutCompleted"),
            Phase::Aborted => (EventType::Warning, "RolloutAborted"),
            Phase::RolledBack => (EventType::Warning, "RolledBack"),
            Phase::Failed => (EventType::Warning, "RolloutFailed"),
        };
        for note in &progress.notes {
            if let Err(e) = cluster
                .event(&progress.deployment, kind, reason, note)
                .await
            {
                debug!(error = %e, "cannot record the rollout event");
            }
        }
    }
}
