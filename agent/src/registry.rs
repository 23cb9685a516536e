//! What the agent knows about its apps right now, shared by the per-app workers (which
//! write it), the HTTP API, the status page and `/metrics` (which read it). Every
//! field is safe to show: no manifest, no Secret value (diffs are masked before they
//! get here).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::metrics::{ByLabel, Histogram};
use crate::rollouts::Rollout;

/// One app as the API and the page show it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub name: String,
    pub repo: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub path: String,
    /// The revision last synced successfully.
    pub revision: Option<Revision>,
    /// `Synced`, `OutOfSync` (drift), `Syncing`, `Failed`, `Unknown` (not yet).
    pub sync: String,
    /// `Healthy`, `Progressing`, `Degraded`, `Unknown`.
    pub health: String,
    /// Set while Git cannot be reached: the last good state is kept and retried.
    pub stale: Option<String>,
    /// Set while automatic sync is off (`gitsync rollback --direct`, `suspend`).
    pub suspended: Option<crate::control::Suspension>,
    /// Drifted objects at the last check, one line each.
    pub drift: Vec<String>,
    pub rollouts: Vec<Rollout>,
    pub last_error: Option<String>,
    /// The last sync attempt's start (RFC 3339).
    pub last_attempt: Option<String>,
    /// The last successful sync (seconds since the epoch).
    pub last_success: Option<u64>,
    /// The last syncs that changed something since the agent started, newest first,
    /// with what they applied.
    pub recent: Vec<RecentSync>,
    /// Objects by state at the last sync or drift check (`synced`, `drifted`).
    pub objects: BTreeMap<String, u64>,
    /// True once the first sync was attempted (readiness).
    pub attempted: bool,
    #[serde(skip)]
    pub counters: Counters,
}

/// The revision an app is at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub commit: String,
    pub author: String,
    pub message: String,
}

impl From<&crate::git::Revision> for Revision {
    fn from(r: &crate::git::Revision) -> Self {
        Self {
            commit: r.commit.clone(),
            author: r.author.clone(),
            message: r.message.clone(),
        }
    }
}

/// A sync that changed something, as the status page shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentSync {
    pub commit: String,
    pub trigger: String,
    /// `Succeeded`, `Degraded`, `Failed`…
    pub result: String,
    /// RFC 3339.
    pub at: String,
    /// `2 created, 1 updated, 0 pruned`.
    pub summary: String,
    /// Unified diffs per object, Secrets masked, uncolored; deflated, as it is held
    /// until five more syncs changed something.
    pub diff: gitsync_core::deflated::DeflatedText,
}

/// How many recent syncs each app keeps.
pub const RECENT: usize = 5;

/// Per-app counters and histograms for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub syncs: ByLabel,
    pub sync_seconds: Histogram,
    pub fetch_seconds: Histogram,
    pub fetch_failures: u64,
    pub drift_checks: u64,
    pub self_heals: u64,
    pub objects_applied: u64,
    pub objects_pruned: u64,
}

/// Agent-wide facts.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// This replica's identity and whether it leads (only the leader writes).
    pub identity: String,
    pub leader: bool,
    /// The current leader, when known.
    pub leader_identity: Option<String>,
    #[serde(skip)]
    pub webhooks: BTreeMap<(String, String), u64>,
}

/// The shared registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    apps: Arc<RwLock<BTreeMap<String, AppStatus>>>,
    agent: Arc<RwLock<AgentStatus>>,
}

impl Registry {
    /// Adds an app (not yet synced).
    pub fn add(&self, status: AppStatus) {
        if let Ok(mut apps) = self.apps.write() {
            apps.insert(status.name.clone(), status);
        }
    }

    /// Changes one app's status.
    pub fn update(&self, app: &str, change: impl FnOnce(&mut AppStatus)) {
        if let Ok(mut apps) = self.apps.write()
            && let Some(status) = apps.get_mut(app)
        {
            change(status);
        }
    }

    /// A copy of one app's status.
    pub fn app(&self, app: &str) -> Option<AppStatus> {
        self.apps.read().ok()?.get(app).cloned()
    }

    /// What `look` makes of every app's status, by name, read in place (a status
    /// holds its recent diffs: readers must not copy them all).
    pub fn with_apps<T>(&self, look: impl FnOnce(&[&AppStatus]) -> T) -> T {
        match self.apps.read() {
            Ok(apps) => look(&apps.values().collect::<Vec<_>>()),
            Err(_) => look(&[]),
        }
    }

    /// The commit the app last synced successfully.
    pub fn revision(&self, app: &str) -> Option<String> {
        let apps = self.apps.read().ok()?;
        apps.get(app)?.revision.as_ref().map(|r| r.commit.clone())
    }

    /// Every app was attempted at least once.
    pub fn all_attempted(&self) -> bool {
        self.apps
            .read()
            .is_ok_and(|a| a.values().all(|s| s.attempted))
    }

    pub fn agent(&self) -> AgentStatus {
        self.agent.read().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn update_agent(&self, change: impl FnOnce(&mut AgentStatus)) {
        if let Ok(mut a) = self.agent.write() {
            change(&mut a);
        }
    }

    /// Counts a webhook request by receiver and result (`accepted`, `ignored`,
    /// `unauthorized`, `malformed`, `too_large`, `disabled`).
    pub fn count_webhook(&self, receiver: &str, result: &str) {
        self.update_agent(|a| {
            *a.webhooks
                .entry((receiver.to_owned(), result.to_owned()))
                .or_default() += 1;
        });
    }
}
