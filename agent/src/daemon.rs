//! The `gitsync-agent` daemon: fetch the tracked ref every interval, and when the tree
//! of the app's path changed, render, plan and sync it. While a rollout is in progress
//! the synced revision is passed again every [`ROLLOUT_TICK`] (to move it on, and to
//! carry out `gitsync promote` and `gitsync abort`). One pass at a time; an error in a
//! pass is logged and retried on the next tick, never fatal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use std::collections::BTreeSet;

use gitsync_core::Manifest;
use gitsync_core::drift::Drift;
use gitsync_core::plan::Plan;
use gitsync_core::tree::AppTree;

use crate::cluster::{Cancel, Cluster, Event, EventType, Outcome, SyncResult, Target};
use crate::git::{self, Mirror, Revision};
use crate::history::History;
use crate::reconcile::{self, App, Record};
use crate::rollouts::{Rollout, Rollouts};
use crate::server;

/// Errors that stop the daemon before its loop starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the cluster")]
    Cluster(#[source] crate::cluster::Error),
    #[error("cannot prepare the git cache")]
    Git(#[source] git::Error),
    #[error("the git worker stopped unexpectedly")]
    Worker(#[source] tokio::task::JoinError),
}

/// Daemon configuration, validated before any I/O.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: git::Source,
    pub cache_dir: PathBuf,
    pub app: App,
    pub target: Target,
    pub interval: Duration,
    /// Namespace of the sync history (the agent's own).
    pub history_namespace: String,
    /// How often live objects are compared with the last synced revision (watch
    /// events on the app's objects also trigger a check).
    pub drift_interval: Duration,
    /// Re-apply the synced revision when drift is found (after `self_heal_delay`);
    /// without it drift is only reported.
    pub self_heal: bool,
    pub self_heal_delay: Duration,
    /// Run one pass and return (for jobs and tests).
    pub once: bool,
}

/// What the last successful sync left, for drift checks and rollout passes.
struct Synced {
    revision: Revision,
    tree: AppTree,
    /// What the sync applied: drift checks compare with it without rendering again.
    desired: Vec<Manifest>,
    /// The app's rollouts after the last pass.
    rollouts: Vec<Rollout>,
    /// True while a rollout waits for anything (health, time, `gitsync promote`, a
    /// queued revision): the revision is passed again every [`ROLLOUT_TICK`].
    waiting: bool,
}

impl Synced {
    /// Keeps what a sync of this revision applied and where its rollouts are, and logs
    /// what they did; returns the sync's plan and outcome.
    fn absorb(&mut self, synced: reconcile::Synced) -> (Plan, Outcome) {
        self.waiting = synced.waiting().is_some();
        for progress in &synced.rollouts {
            for note in &progress.notes {
                info!(workload = %progress.rollout.workload, "{note}");
            }
        }
        self.desired = synced.desired;
        self.rollouts = synced.rollouts.into_iter().map(|p| p.rollout).collect();
        (synced.plan, synced.outcome)
    }
}

/// The stores of the agent's namespace.
#[derive(Clone, Copy)]
struct Stores<'a> {
    history: &'a History,
    rollouts: &'a Rollouts,
}

/// How often a rollout in progress is passed again.
pub const ROLLOUT_TICK: Duration = Duration::from_secs(2);

/// Changes seen by the watches are checked this long after the first one (a rollout
/// or a burst of edits makes many).
const DRIFT_DEBOUNCE: Duration = Duration::from_secs(3);

/// Runs until `shutdown` flips to true (or after one pass with `once`).
pub async fn run(
    config: Config,
    status: server::Shared,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    if let Ok(mut s) = status.write() {
        s.app.clone_from(&config.app.name);
    }
    let cluster = Cluster::connect(&config.target)
        .await
        .map_err(Error::Cluster)?;
    let cache_dir = config.cache_dir.clone();
    let source = config.source.clone();
    let mirror = tokio::task::spawn_blocking(move || Mirror::open(&cache_dir, source))
        .await
        .map_err(Error::Worker)?
        .map_err(Error::Git)?;
    let mirror = Arc::new(std::sync::Mutex::new(mirror));
    let history = History::new(cluster.client().clone(), &config.history_namespace);
    let rollouts = Rollouts::new(cluster.client().clone(), &config.history_namespace);
    let stores = Stores {
        history: &history,
        rollouts: &rollouts,
    };
    match history.interrupt_stale(&config.app.name).await {
        Ok(0) => {}
        Ok(n) => warn!(count = n, "an earlier sync was interrupted; syncing again"),
        Err(e) => {
            let error = format!("{:#}", anyhow::Error::new(e));
            warn!(error, "cannot read the sync history");
        }
    }
    info!(url = %config.source.url, reference = %config.source.reference,
        path = %config.source.path.display(), cluster = cluster.url(), "agent started");

    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut drift_ticker = tokio::time::interval(config.drift_interval);
    drift_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut synced: Option<Synced> = None;
    let mut changes: Option<tokio::sync::mpsc::Receiver<()>> = None;
    let mut drift_due: Option<tokio::time::Instant> = None;
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut rollout_due: Option<tokio::time::Instant> = None;
    loop {
        let next_change = async {
            match changes.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let due = sleep_until(drift_due);
        let rollout_tick = sleep_until(rollout_due);
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                info!("shutting down");
                return Ok(());
            }
            _ = ticker.tick() => {
                let last = synced.as_ref().map(|s| &s.revision);
                let result = pass(&cluster, &mirror, stores, &config.app, last, config.interval)
                    .instrument(info_span!("reconcile", app = %config.app.name))
                    .await;
                record(
                    &status,
                    result.as_ref().map(|r| r.as_ref().map(|(d, o)| (d, o))).map_err(String::as_str),
                );
                match result {
                    Ok(Some((done, _))) => {
                        changes = Some(cluster.watch_app(&config.app.name, &done.desired).await);
                        rollout_due = done.waiting.then(|| tokio::time::Instant::now() + ROLLOUT_TICK);
                        synced = Some(done);
                        drift_due = None;
                        reported.clear();
                    }
                    Ok(None) => {}
                    Err(message) => error!(error = %message, "sync failed; retrying next interval"),
                }
                if config.once {
                    return Ok(());
                }
            }
            () = rollout_tick => {
                rollout_due = None;
                if let Some(done) = synced.as_mut() {
                    let result = roll_on(&cluster, stores, &config.app, done)
                        .instrument(info_span!("rollout", app = %config.app.name))
                        .await;
                    record(&status, result.as_ref().map(|o| Some((&*done, o))).map_err(String::as_str));
                    if let Err(message) = result {
                        error!(error = %message, "rollout pass failed; retrying");
                    }
                    rollout_due = done.waiting.then(|| tokio::time::Instant::now() + ROLLOUT_TICK);
                }
            }
            _ = drift_ticker.tick() => drift_due = Some(tokio::time::Instant::now()),
            Some(()) = next_change => {
                drift_due.get_or_insert_with(|| tokio::time::Instant::now() + DRIFT_DEBOUNCE);
            }
            () = due => {
                drift_due = None;
                if let Some(done) = &synced {
                    check_drift(&cluster, stores, &config, done, &status, &mut reported)
                        .instrument(info_span!("drift", app = %config.app.name))
                        .await;
                }
            }
        }
    }
}

/// Compares the live objects with the synced revision; reports drift (status, log,
/// an Event per newly drifted object) and, with self-heal, re-applies the revision.
async fn check_drift(
    cluster: &Cluster,
    stores: Stores<'_>,
    config: &Config,
    done: &Synced,
    status: &server::Shared,
    reported: &mut BTreeSet<String>,
) {
    let drift = match reconcile::drift(cluster, &config.app, &done.desired).await {
        Ok(d) => d,
        Err(e) => {
            let error = format!("{:#}", anyhow::Error::new(e));
            warn!(error, "drift check failed");
            return;
        }
    };
    let summaries: Vec<String> = drift.iter().map(Drift::summary).collect();
    if let Ok(mut s) = status.write() {
        s.drift.clone_from(&summaries);
        s.drift_checks_total += 1;
    }
    if drift.is_empty() {
        reported.clear();
        return;
    }
    for d in &drift {
        let summary = d.summary();
        if reported.insert(summary.clone()) {
            warn!(drift = %summary, "drift");
            let message = format!(
                "live object differs from revision {}: {summary}",
                done.revision.commit
            );
            if let Err(e) = cluster
                .event(&d.object, EventType::Warning, "Drifted", &message)
                .await
            {
                debug!(error = %e, "cannot record the drift event");
            }
        }
    }
    if !config.self_heal {
        return;
    }
    tokio::time::sleep(config.self_heal_delay).await;
    let mut healing = config.app.clone();
    // Git wins over whoever changed the fields.
    healing.execute.force = true;
    let record = Record {
        history: Some(stores.history),
        rollouts: Some(stores.rollouts),
        trigger: "self-heal",
    };
    match reconcile::sync(
        cluster,
        &healing,
        &done.tree,
        Some(&done.revision),
        record,
        &|_| {},
    )
    .await
    {
        Ok(healed) if healed.outcome.failed.is_empty() => {
            info!(objects = drift.len(), "drift healed");
            for d in &drift {
                let _ = cluster
                    .event(
                        &d.object,
                        EventType::Normal,
                        "DriftHealed",
                        &format!("re-applied revision {}", done.revision.commit),
                    )
                    .await;
            }
            reported.clear();
            if let Ok(mut s) = status.write() {
                s.drift.clear();
                s.self_heals_total += 1;
            }
        }
        Ok(healed) => warn!(failed = healed.outcome.failed.len(), "self-heal failed"),
        Err(e) => {
            let error = format!("{:#}", anyhow::Error::new(e));
            warn!(error, "self-heal failed");
        }
    }
}

/// Folds one pass's result into the server's status.
fn record(status: &server::Shared, result: Result<Option<(&Synced, &Outcome)>, &str>) {
    let Ok(mut s) = status.write() else {
        return;
    };
    s.passes_total += 1;
    match result {
        Ok(Some((done, outcome))) => {
            s.syncs_total += 1;
            s.synced_commit = Some(done.revision.commit.clone());
            s.objects_applied_total += (outcome.created + outcome.updated) as u64;
            s.objects_pruned_total += outcome.pruned as u64;
            s.rollouts.clone_from(&done.rollouts);
            // A rollout that gave up is the app's error until the next one.
            s.last_error = done.rollouts.iter().find_map(Rollout::failure);
        }
        Ok(None) => {}
        Err(message) => {
            s.failures_total += 1;
            s.last_error = Some(message.to_owned());
        }
    }
}

/// Passes the synced revision again to move its rollouts on; the result is what that
/// pass applied.
async fn roll_on(
    cluster: &Cluster,
    stores: Stores<'_>,
    app: &App,
    done: &mut Synced,
) -> Result<Outcome, String> {
    let record = Record {
        history: Some(stores.history),
        rollouts: Some(stores.rollouts),
        trigger: reconcile::ROLLOUT,
    };
    let synced = reconcile::sync(
        cluster,
        app,
        &done.tree,
        Some(&done.revision),
        record,
        &log_failures,
    )
    .await
    .map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
    let (_, outcome) = done.absorb(synced);
    if outcome.failed.is_empty() {
        Ok(outcome)
    } else {
        Err(failures(&outcome, &done.revision.commit))
    }
}

/// Logs every write that failed.
fn log_failures(event: Event<'_>) {
    if let Event::Failed(step, message) = event {
        warn!(object = %step.diff.id.short(), error = message, "write failed");
    }
}

/// The failed writes of an outcome, in one line.
fn failures(outcome: &Outcome, commit: &str) -> String {
    format!(
        "{} object(s) failed at commit {commit}: {}",
        outcome.failed.len(),
        outcome
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.object, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// Sleeps until `at`, forever when `None`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One pass: fetch, and sync if the app's tree changed since `last`. Returns the
/// revision synced and what it did, `None` when there was nothing to do.
async fn pass(
    cluster: &Cluster,
    mirror: &Arc<std::sync::Mutex<Mirror>>,
    stores: Stores<'_>,
    app: &App,
    last: Option<&Revision>,
    interval: Duration,
) -> Result<Option<(Synced, Outcome)>, String> {
    let m = Arc::clone(mirror);
    let fetched = tokio::task::spawn_blocking(move || {
        let mirror = m.lock().map_err(|_| "git cache lock poisoned".to_owned())?;
        let rev = mirror
            .fetch()
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
        Ok::<_, String>(rev)
    })
    .await
    .map_err(|e| e.to_string())??;
    if last.is_some_and(|l| l.tree == fetched.tree) {
        info!(commit = %fetched.commit, "app tree unchanged; nothing to do");
        return Ok(None);
    }
    let m = Arc::clone(mirror);
    let rev = fetched.clone();
    let tree = tokio::task::spawn_blocking(move || {
        let mirror = m.lock().map_err(|_| "git cache lock poisoned".to_owned())?;
        mirror
            .read_app(&rev)
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
    })
    .await
    .map_err(|e| e.to_string())??;

    let record = Record {
        history: Some(stores.history),
        rollouts: Some(stores.rollouts),
        trigger: "agent",
    };
    // A newer commit of the app supersedes this sync (it may be retrying for a long
    // time against a busy API server): keep fetching meanwhile.
    let mut app = app.clone();
    app.execute.cancel = Cancel::default();
    let watcher = tokio::spawn(watch_for_newer(
        Arc::clone(mirror),
        fetched.tree.clone(),
        app.execute.cancel.clone(),
        interval,
    ));
    let synced = reconcile::sync(cluster, &app, &tree, Some(&fetched), record, &log_failures).await;
    watcher.abort();
    let synced = synced.map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
    let mut done = Synced {
        revision: fetched,
        tree,
        desired: Vec::new(),
        rollouts: Vec::new(),
        waiting: false,
    };
    let (plan, outcome) = done.absorb(synced);
    let commit = &done.revision.commit;
    if outcome.result == SyncResult::Superseded {
        return Err(format!(
            "the sync of commit {commit} was superseded by a newer commit"
        ));
    }
    if outcome.is_success() {
        info!(%commit, created = outcome.created, updated = outcome.updated,
            pruned = outcome.pruned, unchanged = plan.summary().unchanged, "synced");
        Ok(Some((done, outcome)))
    } else if outcome.failed.is_empty() {
        Err(format!(
            "commit {commit} applied, but the app is not healthy ({:?}): {}",
            outcome.result,
            outcome.health.map(|h| h.reason).unwrap_or_default()
        ))
    } else {
        Err(failures(&outcome, commit))
    }
}

/// Fetches every `interval` until the app's tree differs from `tree`, then cancels.
async fn watch_for_newer(
    mirror: Arc<std::sync::Mutex<Mirror>>,
    tree: String,
    cancel: Cancel,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let m = Arc::clone(&mirror);
        let fetched = tokio::task::spawn_blocking(move || m.lock().ok()?.fetch().ok()).await;
        if let Ok(Some(rev)) = fetched
            && rev.tree != tree
        {
            info!(commit = %rev.commit, "a newer commit supersedes the running sync");
            cancel.cancel();
            return;
        }
    }
}
