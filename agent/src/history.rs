//! Sync history, kept in the cluster so it survives agent restarts and the CLI can read
//! it: one ConfigMap per app, `gitsync-history-<app>` in the agent's namespace, holding
//! the newest entries as JSON: as many as the writer's bound ([`History::with_limit`]:
//! the agent's `historyLimit`, `gitsync sync --history-limit`), which is kept beside
//! them so a writer not given one (another `gitsync` command) keeps the same bound;
//! [`DEFAULT_LIMIT`] when none was ever given.
//!
//! An entry is written when a sync starts (`Running`) and rewritten when it ends, so a
//! sync cut off by a crash stays visible; the next process marks it `Interrupted`.
//! Entries hold counts, revisions and messages, never object contents: failure
//! messages are scrubbed of the app's Secret values before they are stored.
//! Concurrent writers are serialized by the ConfigMap's resourceVersion.

use std::collections::BTreeMap;

use kube::Client;
use serde::{Deserialize, Serialize};

use crate::cluster::Outcome;
use crate::now_ms;
use crate::store::{self, Data, Store};

/// Entries kept per app (oldest dropped first) when no bound was ever set.
pub const DEFAULT_LIMIT: usize = 50;
pub use crate::store::DEFAULT_NAMESPACE;
/// Label on history ConfigMaps naming their app (not `gitsync.dev/app`: a history
/// is not one of the app's objects and must never be pruned with them).
pub const LABEL_HISTORY_OF: &str = "gitsync.dev/history-of";
const KEY: &str = "history.json";
/// The bound the entries were last written with.
const LIMIT_KEY: &str = "limit";

/// Errors reading or writing history.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("the history of {app} is not valid JSON: {message}")]
    Corrupt { app: String, message: String },
}

/// How a recorded sync ended (`Running` while it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Result {
    Running,
    Succeeded,
    Degraded,
    HealthTimeout,
    Failed,
    PruneRefused,
    RenderFailed,
    Superseded,
    /// The process recording it stopped before the sync ended.
    Interrupted,
}

/// One sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Unique per app: the start time in milliseconds and the writer.
    pub id: String,
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// sha256 over the rendered objects' digests.
    #[serde(default)]
    pub digest: String,
    /// Who started it: `cli`, `agent`, `self-heal`.
    pub trigger: String,
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub result: Result,
    #[serde(default)]
    pub created: usize,
    #[serde(default)]
    pub updated: usize,
    #[serde(default)]
    pub replaced: usize,
    #[serde(default)]
    pub pruned: usize,
    #[serde(default)]
    pub unchanged: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the sync's rollouts did (`<workload>: <note>`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<String>,
    /// Set when this sync rolled the app back: the earlier revision whose content it
    /// restored (a revert commit, `gitsync rollback`, or a direct rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
}

impl Entry {
    /// A `Running` entry starting now.
    pub fn start(app: &str, trigger: &str, revision: Option<&crate::git::Revision>) -> Self {
        let ms = now_ms();
        Self {
            id: format!("{ms}-{}", std::process::id()),
            app: app.to_owned(),
            revision: revision.map(|r| r.commit.clone()),
            author: revision.map(|r| r.author.clone()).filter(|a| !a.is_empty()),
            message: revision
                .map(|r| r.message.clone())
                .filter(|m| !m.is_empty()),
            digest: String::new(),
            trigger: trigger.to_owned(),
            started: gitsync_core::time::rfc3339(ms / 1000),
            finished: None,
            result: Result::Running,
            created: 0,
            updated: 0,
            replaced: 0,
            pruned: 0,
            unchanged: 0,
            reason: None,
            rollout: Vec::new(),
            rollback_to: None,
        }
    }

    /// Ends the entry with an execution's outcome.
    pub fn finish(&mut self, outcome: &Outcome, secrets: &[String]) {
        use crate::cluster::SyncResult as R;
        self.result = match outcome.result {
            R::Succeeded => Result::Succeeded,
            R::Degraded => Result::Degraded,
            R::HealthTimeout => Result::HealthTimeout,
            R::Failed => Result::Failed,
            R::PruneRefused => Result::PruneRefused,
            R::Superseded => Result::Superseded,
        };
        self.created = outcome.created;
        self.updated = outcome.updated;
        self.replaced = outcome.replaced;
        self.pruned = outcome.pruned;
        self.unchanged = outcome.unchanged;
        let failures = failures(
            outcome
                .failed
                .iter()
                .map(|f| (f.object.as_str(), f.message.as_str())),
        );
        let health = outcome
            .health
            .as_ref()
            .filter(|h| !h.reason.is_empty())
            .map(|h| h.reason.clone());
        let reason: Vec<String> = failures.into_iter().chain(health).collect();
        self.reason = (!reason.is_empty()).then(|| scrub(&reason.join("; "), secrets));
        self.finished = Some(gitsync_core::time::rfc3339(now_ms() / 1000));
    }

    /// Ends the entry without an execution (the render or the plan failed).
    pub fn fail(&mut self, result: Result, reason: &str, secrets: &[String]) {
        self.result = result;
        self.reason = Some(scrub(reason, secrets));
        self.finished = Some(gitsync_core::time::rfc3339(now_ms() / 1000));
    }
}

/// Objects a reason names for one failure, at most (a refused prune of hundreds of
/// objects must not fill the history's ConfigMap).
const NAMED: usize = 10;

/// `(object, message)` failures as reasons: objects that failed for one reason (a
/// pruning guard's) share it, named up to [`NAMED`].
fn failures<'a>(failed: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    for (object, message) in failed {
        match grouped.iter_mut().find(|(m, _)| *m == message) {
            Some((_, objects)) => objects.push(object),
            None => grouped.push((message, vec![object])),
        }
    }
    grouped
        .into_iter()
        .map(|(message, objects)| {
            let named = objects.len().min(NAMED);
            let more = match objects.len() - named {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            format!("{}{more}: {message}", objects[..named].join(", "))
        })
        .collect()
}

/// Replaces every occurrence of a secret value with `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// The history store of one namespace.
#[derive(Clone)]
pub struct History {
    store: Store,
    /// Entries kept per app (`None`: the bound stored with the history).
    limit: Option<usize>,
}

impl History {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            store: Store::new(client, namespace),
            limit: None,
        }
    }

    /// Keeps at most `limit` entries per app (at least one), and stores that bound for
    /// writers not given one.
    #[must_use]
    pub fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit.map(|l| l.max(1));
        self
    }

    /// The app's entries, newest first (empty when it has none).
    pub async fn list(&self, app: &str) -> std::result::Result<Vec<Entry>, Error> {
        let data = self.store.read(&name(app)).await?;
        data.map_or(Ok(Vec::new()), |d| entries(app, &d))
    }

    /// Adds `entry`, or replaces the entry with its id; keeps the newest (see the
    /// module's documentation for how many).
    pub async fn record(&self, entry: &Entry) -> std::result::Result<(), Error> {
        let label = (LABEL_HISTORY_OF, entry.app.as_str());
        self.store
            .update(&name(&entry.app), label, |data| {
                insert(&data, entry, self.limit)
            })
            .await?;
        Ok(())
    }

    /// Marks the app's `Running` entries written by other processes as `Interrupted`
    /// (their writer is gone: this process just started); returns how many.
    pub async fn interrupt_stale(&self, app: &str) -> std::result::Result<usize, Error> {
        let mine = format!("-{}", std::process::id());
        let stale: Vec<Entry> = self
            .list(app)
            .await?
            .into_iter()
            .filter(|e| e.result == Result::Running && !e.id.ends_with(&mine))
            .collect();
        let count = stale.len();
        for mut entry in stale {
            entry.fail(
                Result::Interrupted,
                "the process running this sync stopped before it ended",
                &[],
            );
            self.record(&entry).await?;
        }
        Ok(count)
    }
}

fn name(app: &str) -> String {
    format!("gitsync-history-{app}")
}

/// `data` with `entry` added (or replacing the entry with its id), newest first, cut
/// at `limit` (else the bound `data` holds, else [`DEFAULT_LIMIT`]).
fn insert(data: &Data, entry: &Entry, limit: Option<usize>) -> Data {
    let limit = limit
        .or_else(|| data.get(LIMIT_KEY)?.parse().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .max(1);
    let mut list = entries(&entry.app, data).unwrap_or_default();
    list.retain(|e| e.id != entry.id);
    list.insert(0, entry.clone());
    list.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    list.truncate(limit);
    let text = serde_json::to_string_pretty(&list).unwrap_or_default();
    BTreeMap::from([
        (KEY.to_owned(), text),
        (LIMIT_KEY.to_owned(), limit.to_string()),
    ])
}

fn entries(app: &str, data: &Data) -> std::result::Result<Vec<Entry>, Error> {
    let Some(text) = data.get(KEY) else {
        return Ok(Vec::new());
    };
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        app: app.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_secret_values_but_not_short_noise() {
        let secrets = vec!["hunter22".to_owned(), "aHVudGVyMjI=".to_owned(), "x".into()];
        assert_eq!(
            scrub("bad value \"hunter22\" (aHVudGVyMjI=) x", &secrets),
            "bad value \"***\" (***) x"
        );
    }

    fn entry_at(second: u64) -> Entry {
        let mut e = Entry::start("demo", "cli", None);
        e.id = format!("{second}-1");
        e.started = gitsync_core::time::rfc3339(1_800_000_000 + second);
        e
    }

    fn ids(data: &Data) -> Vec<String> {
        entries("demo", data)
            .expect("entries")
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn the_newest_entries_up_to_the_bound_are_kept_and_the_bound_with_them() {
        let mut data = Data::new();
        for second in 0..5 {
            data = insert(&data, &entry_at(second), Some(3));
        }
        assert_eq!(ids(&data), ["4-1", "3-1", "2-1"]);
        assert_eq!(data[LIMIT_KEY], "3");

        // A writer given no bound keeps the stored one.
        data = insert(&data, &entry_at(5), None);
        assert_eq!(ids(&data), ["5-1", "4-1", "3-1"]);
        // Rewriting an entry (a sync that ended) replaces it instead of adding one.
        let mut ended = entry_at(5);
        ended.result = Result::Succeeded;
        data = insert(&data, &ended, None);
        assert_eq!(ids(&data), ["5-1", "4-1", "3-1"]);
        // A larger bound keeps more from then on.
        data = insert(&data, &entry_at(6), Some(10));
        assert_eq!(ids(&data).len(), 4);
        assert_eq!(data[LIMIT_KEY], "10");
    }

    #[test]
    fn without_any_bound_the_default_holds() {
        let mut data = Data::new();
        for second in 0..(DEFAULT_LIMIT as u64 + 5) {
            data = insert(&data, &entry_at(second), None);
        }
        assert_eq!(ids(&data).len(), DEFAULT_LIMIT);
        assert_eq!(data[LIMIT_KEY], DEFAULT_LIMIT.to_string());
    }

    #[test]
    fn objects_failing_for_one_reason_share_it_and_are_named_up_to_a_bound() {
        let objects: Vec<String> = (0..12).map(|i| format!("ConfigMap/demo/cm-{i}")).collect();
        let mut failed: Vec<(&str, &str)> = objects
            .iter()
            .map(|o| (o.as_str(), "refusing to prune 12 of 13"))
            .collect();
        failed.push(("Service/demo/web", "port out of range (422)"));
        let reason = failures(failed.into_iter()).join("; ");
        assert_eq!(
            reason,
            "ConfigMap/demo/cm-0, ConfigMap/demo/cm-1, ConfigMap/demo/cm-2, \
             ConfigMap/demo/cm-3, ConfigMap/demo/cm-4, ConfigMap/demo/cm-5, \
             ConfigMap/demo/cm-6, ConfigMap/demo/cm-7, ConfigMap/demo/cm-8, \
             ConfigMap/demo/cm-9 and 2 more: refusing to prune 12 of 13; \
             Service/demo/web: port out of range (422)"
        );
        assert_eq!(reason.matches("refusing").count(), 1, "{reason}");
    }

    #[test]
    fn entries_round_trip_as_json() {
        let mut e = Entry::start("demo", "cli", None);
        e.fail(Result::RenderFailed, "a.yaml:3:1: bad", &[]);
        let text = serde_json::to_string(&e).expect("json");
        assert!(text.contains("\"result\":\"RenderFailed\""), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).expect("back"), e);
    }
}
