//! `gitsync-agent --watch DIR`: local development. Syncs a working directory once, then
//! again after every save (file events from `notify`, debounced so that an editor's
//! burst of writes, or a `git checkout`, makes one sync). A broken file fails that
//! sync with its file and line and leaves the cluster as it was; the next save tries
//! again.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::cluster::{Cluster, Target};
use crate::history::History;
use crate::reconcile::{self, App, Record};
use crate::rollouts::Rollouts;

/// Quiet time after the last file event before syncing.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Runs until `shutdown` flips to true.
pub async fn run(
    dir: &Path,
    app: App,
    target: &Target,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", dir.display()))?;
    let cluster = Cluster::connect(target).await?;
    let namespace = crate::config::agent_namespace();
    let history = History::new(cluster.client().clone(), &namespace);
    let rollouts = Rollouts::new(cluster.client().clone(), &namespace);
    let (tx, mut events) = mpsc::channel::<()>(64);
    let ignored = dir.join(".git");
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| !p.starts_with(&ignored))
            && !event.kind.is_access()
        {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    info!(dir = %dir.display(), app = %app.name, "watching; syncing on every save");
    let record = Record {
        history: Some(&history),
        rollouts: Some(&rollouts),
        trigger: "watch",
        rollback_to: None,
    };
    sync_dir(&cluster, &app, &dir, record).await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            Some(()) = events.recv() => {
                // Debounce: wait until the directory is quiet.
                loop {
                    tokio::select! {
                        Some(()) = events.recv() => {}
                        () = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
                sync_dir(&cluster, &app, &dir, record).await;
            }
        }
    }
}

async fn sync_dir(cluster: &Cluster, app: &App, dir: &Path, record: Record<'_>) {
    let root = crate::tree_fs::find_repo_root(dir);
    let tree = match crate::tree_fs::load_app(&root, dir) {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %crate::error_chain(&e), "cannot read the directory");
            return;
        }
    };
    match reconcile::sync(cluster, app, &tree, None, record, &|_| {}).await {
        Ok(synced) if synced.outcome.is_success() => {
            let o = &synced.outcome;
            info!(
                created = o.created,
                updated = o.updated,
                pruned = o.pruned,
                unchanged = o.unchanged,
                "synced"
            );
        }
        Ok(synced) => {
            let failed: Vec<String> = synced
                .outcome
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.object, f.message))
                .collect();
            warn!(result = ?synced.outcome.result, failed = ?failed, "sync did not succeed");
        }
        Err(e) => warn!(error = %crate::error_chain(&e), "sync failed"),
    }
}
