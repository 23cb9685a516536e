//! Executing a plan: server-side apply of creates and updates (field manager `gitsync`,
//! conflicts forced: Git is the source of truth), then prunes in reverse order.
//!
//! Before writing anything, every create and update is sent once with `dryRun=All`, so
//! an object the API server rejects fails the sync with nothing changed. Objects of one
//! kind rank are applied concurrently (bounded); ranks run in order. Transient errors
//! (429, 5xx) are retried with backoff.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use gitsync_core::diff::Action;
use gitsync_core::kinds;
use gitsync_core::manifest::{FIELD_MANAGER, ObjectId};
use gitsync_core::plan::{Plan, Step};
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;

use super::{Cluster, api_for};

/// Applies in flight at once.
const CONCURRENCY: usize = 8;
/// Attempts for a request that fails transiently.
const ATTEMPTS: u32 = 4;

/// Progress of an execution, reported per object.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// About to write this step.
    Started(&'a Step),
    /// The step's write succeeded.
    Done(&'a Step),
    /// The step failed with this message.
    Failed(&'a Step, &'a str),
}

/// What an execution did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub created: usize,
    pub updated: usize,
    pub pruned: usize,
    pub unchanged: usize,
    /// Objects that failed, with the API server's message. Non-empty means the sync
    /// failed.
    pub failed: Vec<Failure>,
    /// True when the failure was found by the dry run and nothing was written.
    pub nothing_written: bool,
}

/// One object that could not be written.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub object: String,
    pub message: String,
}

impl Outcome {
    /// True when every step succeeded.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Cluster {
    /// Executes `plan`, reporting progress through `on_event`.
    pub async fn execute(&self, plan: &Plan, on_event: &(dyn Fn(Event<'_>) + Sync)) -> Outcome {
        let mut outcome = Outcome {
            unchanged: plan.summary().unchanged,
            ..Outcome::default()
        };
        let writes: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| matches!(s.diff.action, Action::Create | Action::Update))
            .collect();

        // 1. Validate every write with a server-side dry run.
        let new_namespaces: BTreeSet<&str> = writes
            .iter()
            .filter(|s| s.diff.id.kind == "Namespace" && s.diff.action == Action::Create)
            .map(|s| s.diff.id.name.as_str())
            .collect();
        let checkable = writes.iter().copied().filter(|s| {
            s.diff
                .id
                .namespace
                .as_deref()
                .is_none_or(|ns| !new_namespaces.contains(ns))
        });
        let rejected: Vec<Failure> = futures::stream::iter(checkable.map(|step| async move {
            self.apply(step, true).await.err().map(|message| Failure {
                object: step.diff.id.short(),
                message,
            })
        }))
        .buffer_unordered(CONCURRENCY)
        .filter_map(|f| async move { f })
        .collect()
        .await;
        if !rejected.is_empty() {
            outcome.failed = rejected;
            outcome.nothing_written = true;
            return outcome;
        }

        // 2. Apply, rank by rank.
        let mut start = 0;
        while start < writes.len() {
            let rank = kinds::apply_rank(&writes[start].diff.id.kind);
            let end = writes[start..]
                .iter()
                .position(|s| kinds::apply_rank(&s.diff.id.kind) != rank)
                .map_or(writes.len(), |n| start + n);
            let results: Vec<(&Step, Result<(), String>)> =
                futures::stream::iter(writes[start..end].iter().map(|step| async move {
                    on_event(Event::Started(step));
                    (*step, self.apply(step, false).await)
                }))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for (step, result) in results {
                match result {
                    Ok(()) => {
                        on_event(Event::Done(step));
                        if step.diff.action == Action::Create {
                            outcome.created += 1;
                        } else {
                            outcome.updated += 1;
                        }
                    }
                    Err(message) => {
                        on_event(Event::Failed(step, &message));
                        outcome.failed.push(Failure {
                            object: step.diff.id.short(),
                            message,
                        });
                    }
                }
            }
            if !outcome.failed.is_empty() {
                // Later ranks depend on this one; prunes never follow a failed apply.
                return outcome;
            }
            start = end;
        }

        // 3. Prune, in the plan's (reverse) order.
        for step in plan.steps.iter().filter(|s| s.diff.action == Action::Prune) {
            on_event(Event::Started(step));
            match self.delete(&step.diff.id).await {
                Ok(()) => {
                    on_event(Event::Done(step));
                    outcome.pruned += 1;
                }
                Err(message) => {
                    on_event(Event::Failed(step, &message));
                    outcome.failed.push(Failure {
                        object: step.diff.id.short(),
                        message,
                    });
                }
            }
        }
        outcome
    }

    /// Server-side apply of one step's manifest; the error is the API server's message.
    async fn apply(&self, step: &Step, dry_run: bool) -> Result<(), String> {
        let Some(manifest) = &step.manifest else {
            return Ok(());
        };
        let id = &manifest.id;
        let (ar, caps) = self.resolve(id).await.map_err(|e| e.to_string())?;
        let api = api_for(&self.client, &ar, &caps, id.namespace.as_deref());
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        let patch = Patch::Apply(&manifest.object);
        retry(|| api.patch(&id.name, &params, &patch))
            .await
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    /// Deletes one object (background propagation); already gone is success.
    async fn delete(&self, id: &ObjectId) -> Result<(), String> {
        let (ar, caps) = self.resolve(id).await.map_err(|e| e.to_string())?;
        let api = api_for(&self.client, &ar, &caps, id.namespace.as_deref());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match retry(|| api.delete(&id.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// Runs `request`, retrying 429 and 5xx answers and connection errors with backoff.
async fn retry<T, F, Fut>(request: F) -> Result<T, kube::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match request().await {
            Err(e) if attempt + 1 < ATTEMPTS && is_transient(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
            }
            other => return other,
        }
    }
}

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The API server's own message for API errors, the error chain otherwise.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}
