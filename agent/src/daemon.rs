//! The `gitsync-agent` daemon: fetch the tracked ref every interval, and when the tree
//! of the app's path changed, render, plan and sync it. One pass at a time; an error in
//! a pass is logged and retried on the next tick, never fatal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{Instrument as _, error, info, info_span, warn};

use crate::cluster::{Cluster, Event, Outcome, Target};
use crate::git::{self, Mirror, Revision};
use crate::history::History;
use crate::reconcile::{self, App, Record};
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
    /// Run one pass and return (for jobs and tests).
    pub once: bool,
}

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
    let mut last_synced: Option<Revision> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                info!("shutting down");
                return Ok(());
            }
            _ = ticker.tick() => {
                let result = pass(&cluster, &mirror, &history, &config.app, last_synced.as_ref())
                    .instrument(info_span!("reconcile", app = %config.app.name))
                    .await;
                record(&status, &result);
                match result {
                    Ok(Some((rev, _))) => last_synced = Some(rev),
                    Ok(None) => {}
                    Err(message) => error!(error = %message, "sync failed; retrying next interval"),
                }
                if config.once {
                    return Ok(());
                }
            }
        }
    }
}

/// Folds one pass's result into the server's status.
fn record(status: &server::Shared, result: &Result<Option<(Revision, Outcome)>, String>) {
    let Ok(mut s) = status.write() else {
        return;
    };
    s.passes_total += 1;
    match result {
        Ok(Some((rev, outcome))) => {
            s.syncs_total += 1;
            s.synced_commit = Some(rev.commit.clone());
            s.last_error = None;
            s.objects_applied_total += (outcome.created + outcome.updated) as u64;
            s.objects_pruned_total += outcome.pruned as u64;
        }
        Ok(None) => s.last_error = None,
        Err(message) => {
            s.failures_total += 1;
            s.last_error = Some(message.clone());
        }
    }
}

/// One pass: fetch, and sync if the app's tree changed since `last`. Returns the
/// revision synced and what it did, `None` when there was nothing to do.
async fn pass(
    cluster: &Cluster,
    mirror: &Arc<std::sync::Mutex<Mirror>>,
    history: &History,
    app: &App,
    last: Option<&Revision>,
) -> Result<Option<(Revision, Outcome)>, String> {
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

    let on_event = |event: Event<'_>| {
        if let Event::Failed(step, message) = event {
            warn!(object = %step.diff.id.short(), error = message, "write failed");
        }
    };
    let record = Record {
        history: Some(history),
        trigger: "agent",
    };
    let (plan, outcome) = reconcile::sync(cluster, app, &tree, Some(&fetched), record, &on_event)
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
    let summary = plan.summary();
    if outcome.is_success() {
        info!(commit = %fetched.commit, created = outcome.created, updated = outcome.updated,
            pruned = outcome.pruned, unchanged = summary.unchanged, "synced");
        Ok(Some((fetched, outcome)))
    } else {
        Err(format!(
            "{} object(s) failed at commit {}: {}",
            outcome.failed.len(),
            fetched.commit,
            outcome
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.object, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}
