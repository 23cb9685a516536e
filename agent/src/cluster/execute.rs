//! Executing a plan: server-side apply (field manager `gitsync`) wave by wave and kind
//! rank by rank, waiting for health where the order depends on it, then prunes in
//! reverse order.
//!
//! 1. **Preflight**: a plan with a blocked step (an immutable change the object did
//!    not opt into replacing, a prune a pruning guard stops) fails here (a refused
//!    prune as [`SyncResult::PruneRefused`]), and every write is sent once with
//!    `dryRun=All`; if the API server rejects any, nothing is written. An update whose
//!    dry run the server answers with the live object as it is (a mutating admission
//!    webhook sets back what gitsync would change) is not written: it is unchanged.
//! 2. **Apply**: waves in order; within a wave, kind ranks in order, each rank's
//!    objects concurrently (bounded). CRDs must be established before the next rank
//!    (their custom resources) goes; each wave must be healthy before the next starts.
//!    A replace deletes the object, waits until it is gone, and creates it again.
//! 3. **Prune** in the plan's (reverse) order, only when every write succeeded.
//! 4. **Health**: with a timeout set, waits until every object of the app is healthy;
//!    the outcome records what was not. A Pending PersistentVolumeClaim whose
//!    StorageClass binds on first consumer counts as healthy ([`storage_class`]); when
//!    the cluster does not serve StorageClasses or forbids reading them, the claim
//!    waits to be bound.
//!
//! Conflicts with other field managers fail the object naming them, unless `force` (for
//! the app) or the object's `gitsync.dev/force-conflicts: "true"`.
//! 429s, 5xx, connection errors and resourceVersion conflicts are retried with capped
//! exponential backoff and jitter; a cancelled execution (a newer revision arrived)
//! stops between requests.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use gitsync_core::diff::Action;
use gitsync_core::health::{self, Health, Status};
use gitsync_core::kinds;
use gitsync_core::manifest::{ANNOTATION_FORCE, FIELD_MANAGER, LABEL_APP, Manifest, ObjectId};
use gitsync_core::plan::{Plan, Step};
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::Value;

use super::Cluster;

mod storage_class;

/// How an execution runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Take fields other managers own instead of failing on the conflict.
    pub force: bool,
    /// Wait until the app is healthy, at most this long (`None`: do not wait at the
    /// end; waves and CRDs are still waited for, with [`DEFAULT_HEALTH_TIMEOUT`]).
    pub health_timeout: Option<Duration>,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Set when a newer revision supersedes this execution.
    pub cancel: Cancel,
}

/// The per-app health timeout when none is configured.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_mins(10);

impl Default for Options {
    fn default() -> Self {
        Self {
            force: false,
            health_timeout: Some(DEFAULT_HEALTH_TIMEOUT),
            concurrency: 32,
            cancel: Cancel::default(),
        }
    }
}

/// A flag that stops an execution between requests.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Progress of an execution.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// About to write this step.
    Started(&'a Step),
    /// The step's write succeeded.
    Done(&'a Step),
    /// The step failed with this message.
    Failed(&'a Step, &'a str),
    /// Waiting for health; what is not healthy yet.
    Waiting(&'a str),
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum SyncResult {
    /// Everything applied and healthy (or not waited for).
    #[default]
    Succeeded,
    /// Everything applied, but an object is degraded (a rollout past its progress
    /// deadline, a failed Job, a crash-looping Pod…).
    Degraded,
    /// Everything applied, but not all of it was healthy when the health timeout ran
    /// out (still progressing: an Ingress without an address, a slow rollout…).
    HealthTimeout,
    /// A write failed or was rejected.
    Failed,
    /// The plan's pruning guards refused it; nothing was written.
    PruneRefused,
    /// A newer revision arrived before this one finished.
    Superseded,
}

/// What an execution did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub result: SyncResult,
    pub created: usize,
    pub updated: usize,
    pub replaced: usize,
    pub pruned: usize,
    pub unchanged: usize,
    /// Objects that failed, with the API server's message. Non-empty means the sync
    /// failed.
    pub failed: Vec<Failure>,
    /// True when the failure was found before any write and nothing was written.
    pub nothing_written: bool,
    /// The app's health when the execution ended (`None` when not waited for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Objects that were not healthy when the execution ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<Unhealthy>,
    /// Updates the API server's dry run showed to change nothing, so not written
    /// (counted in `unchanged`).
    #[serde(skip)]
    pub settled: Vec<ObjectId>,
}

/// One object that could not be written.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub object: String,
    /// Where the object is defined (file:line:column), when it is rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub message: String,
}

/// One object that was not healthy.
#[derive(Debug, Clone, Serialize)]
pub struct Unhealthy {
    pub object: String,
    #[serde(flatten)]
    pub health: Health,
}

impl Outcome {
    /// True when every step succeeded.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.result == SyncResult::Succeeded
    }

    fn fail(&mut self, step: &Step, message: String) {
        self.failed.push(Failure {
            object: step.diff.id.short(),
            source: step.diff.source.as_ref().map(ToString::to_string),
            message,
        });
        self.result = SyncResult::Failed;
    }

    fn count(&mut self, action: Action) {
        match action {
            Action::Create => self.created += 1,
            Action::Update => self.updated += 1,
            Action::Replace => self.replaced += 1,
            Action::Prune => self.pruned += 1,
            Action::Unchanged => self.unchanged += 1,
        }
    }
}

/// The objects the plan keeps (everything but prunes), of one wave or of all, whose
/// health the sync waits for: not the Deployments a rollout moves (it judges them, step
/// by step, within its policy's deadline).
fn kept(plan: &Plan, wave: Option<i32>) -> Vec<&ObjectId> {
    plan.steps
        .iter()
        .filter(|s| s.diff.action != Action::Prune && wave.is_none_or(|w| s.wave == w))
        .filter(|s| !s.rolled)
        .map(|s| &s.diff.id)
        .collect()
}

/// How often health is polled while waiting.
const POLL: Duration = Duration::from_millis(500);

impl Cluster {
    /// Executes `plan`, reporting progress through `on_event`.
    pub async fn execute(
        &self,
        plan: &Plan,
        options: &Options,
        on_event: &(dyn Fn(Event<'_>) + Sync),
    ) -> Outcome {
        let mut outcome = self.run(plan, options, on_event).await;
        // A write that failed because its retries were cut short failed for that reason.
        if options.cancel.is_cancelled() && outcome.result != SyncResult::Succeeded {
            outcome.result = SyncResult::Superseded;
        }
        outcome
    }

    async fn run(
        &self,
        plan: &Plan,
        options: &Options,
        on_event: &(dyn Fn(Event<'_>) + Sync),
    ) -> Outcome {
        let mut outcome = Outcome {
            unchanged: plan.summary().unchanged,
            ..Outcome::default()
        };
        let mut writes: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.diff.action,
                    Action::Create | Action::Update | Action::Replace
                )
            })
            .collect();

        // 1. Preflight.
        for (step, reason) in plan.blocked() {
            outcome.fail(step, reason.to_owned());
        }
        if plan.prune_guard.is_some() {
            outcome.result = SyncResult::PruneRefused;
        }
        // The API server judges what goes into a namespace only once it exists: the
        // namespaces this sync creates are created first, empty, and deleted again when
        // the dry run refuses anything, so that a refused sync leaves the cluster as it
        // was.
        let mut created = Vec::new();
        if outcome.failed.is_empty() {
            let namespaces: Vec<&Step>;
            (namespaces, writes) = writes.iter().partition(|s| {
                s.diff.id.kind == "Namespace"
                    && s.diff.id.group.is_empty()
                    && s.diff.action == Action::Create
            });
            for step in namespaces {
                match self.apply(step, options).await {
                    Ok(()) => created.push(step),
                    Err(message) => {
                        outcome.fail(step, message);
                        outcome.result = SyncResult::Failed;
                    }
                }
            }
        }
        if outcome.failed.is_empty() {
            let (failures, settled) = self.dry_run(&writes, options).await;
            for failure in failures {
                outcome.failed.push(failure);
                outcome.result = SyncResult::Failed;
            }
            outcome.unchanged += settled.len();
            writes.retain(|s| !settled.contains(&s.diff.id));
            outcome.settled = settled.into_iter().cloned().collect();
        }
        if !outcome.failed.is_empty() {
            for step in &created {
                if let Err(message) = self.delete(&step.diff.id, options).await {
                    tracing::warn!(namespace = %step.diff.id.name, %message,
                        "cannot delete the namespace created for the dry run");
                }
            }
            outcome.nothing_written = true;
            return outcome;
        }
        for step in created {
            on_event(Event::Started(step));
            on_event(Event::Done(step));
            outcome.count(Action::Create);
        }

        // 2. Apply, wave by wave, rank by rank.
        let waves = group_by(&writes, |s| s.wave);
        let last_wave = waves.last().map(|w| w[0].wave);
        for wave in waves {
            for rank in group_by(&wave, |s| kinds::apply_rank(&s.diff.id.kind)) {
                if options.cancel.is_cancelled() {
                    outcome.result = SyncResult::Superseded;
                    return outcome;
                }
                self.apply_group(&rank, options, on_event, &mut outcome)
                    .await;
                if !outcome.failed.is_empty() {
                    // Later ranks depend on this one; prunes never follow a failed apply.
                    return outcome;
                }
                if rank[0].diff.id.kind == "CustomResourceDefinition" {
                    let crds: Vec<&ObjectId> = rank.iter().map(|s| &s.diff.id).collect();
                    if !self
                        .settle(
                            plan,
                            &crds,
                            DEFAULT_HEALTH_TIMEOUT,
                            options,
                            on_event,
                            &mut outcome,
                        )
                        .await
                    {
                        return outcome;
                    }
                }
            }
            if Some(wave[0].wave) != last_wave {
                let ids = kept(plan, Some(wave[0].wave));
                let timeout = options.health_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT);
                if !self
                    .settle(plan, &ids, timeout, options, on_event, &mut outcome)
                    .await
                {
                    return outcome;
                }
            }
        }

        // 3. Prune, in the plan's (reverse) order.
        for step in plan.steps.iter().filter(|s| s.diff.action == Action::Prune) {
            if options.cancel.is_cancelled() {
                outcome.result = SyncResult::Superseded;
                return outcome;
            }
            on_event(Event::Started(step));
            match self.delete(&step.diff.id, options).await {
                Ok(()) => {
                    on_event(Event::Done(step));
                    outcome.count(Action::Prune);
                }
                Err(message) => {
                    on_event(Event::Failed(step, &message));
                    outcome.fail(step, message);
                }
            }
        }

        // 4. Health of the whole app.
        if outcome.failed.is_empty()
            && let Some(timeout) = options.health_timeout
        {
            let ids = kept(plan, None);
            self.settle(plan, &ids, timeout, options, on_event, &mut outcome)
                .await;
        }
        outcome
    }

    /// Dry-runs every write that the API server can judge before the sync starts:
    /// not objects in namespaces that the same sync creates (when they are not created
    /// first), nor custom resources of CRDs it creates, nor replaces (their new version
    /// conflicts with the old by definition). Returns the refusals, and the updates the
    /// server's answer shows to change nothing.
    async fn dry_run<'a>(
        &self,
        writes: &[&'a Step],
        options: &Options,
    ) -> (Vec<Failure>, BTreeSet<&'a ObjectId>) {
        let new_namespaces: BTreeSet<&str> = writes
            .iter()
            .filter(|s| s.diff.id.kind == "Namespace" && s.diff.action == Action::Create)
            .map(|s| s.diff.id.name.as_str())
            .collect();
        let new_kinds: BTreeSet<(&str, &str)> = writes
            .iter()
            .filter(|s| s.diff.id.kind == "CustomResourceDefinition")
            .filter_map(|s| {
                let crd = &s.manifest.as_ref()?.object;
                Some((
                    crd.pointer("/spec/group")?.as_str()?,
                    crd.pointer("/spec/names/kind")?.as_str()?,
                ))
            })
            .collect();
        let checkable = writes.iter().copied().filter(|s| {
            let id = &s.diff.id;
            s.diff.action != Action::Replace
                && id
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| !new_namespaces.contains(ns))
                && !new_kinds.contains(&(id.group.as_str(), id.kind.as_str()))
        });
        let answers: Vec<(&Step, Result<Value, String>)> =
            futures::stream::iter(checkable.filter_map(|step| {
                let manifest = step.manifest.as_ref()?;
                Some(async move { (step, self.dry_apply(manifest, options).await) })
            }))
            .buffer_unordered(options.concurrency)
            .collect()
            .await;
        let (mut failures, mut settled) = (Vec::new(), BTreeSet::new());
        for (step, answer) in answers {
            match answer {
                Err(message) => failures.push(Failure {
                    object: step.diff.id.short(),
                    source: step.diff.source.as_ref().map(ToString::to_string),
                    message,
                }),
                Ok(server) if step.diff.settled_by(&server) => {
                    settled.insert(&step.diff.id);
                }
                Ok(_) => {}
            }
        }
        (failures, settled)
    }

    /// Confirms each update of `plan` with the API server (see [`ObjectDiff::confirm`]):
    /// a dry-run apply whose answer is the live object as it is makes the step
    /// unchanged, and the server's answer is the after side of the others. A dry run
    /// the server refuses leaves the step as predicted (the sync's preflight reports
    /// the refusal).
    ///
    /// [`ObjectDiff::confirm`]: gitsync_core::diff::ObjectDiff::confirm
    pub async fn confirm(&self, plan: &mut Plan, options: &Options) {
        let answers: Vec<(usize, Option<Value>)> = futures::stream::iter(
            plan.steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.diff.action == Action::Update && s.blocked.is_none())
                .filter_map(|(i, step)| {
                    let manifest = step.manifest.as_ref()?;
                    Some(async move { (i, self.dry_apply(manifest, options).await.ok()) })
                }),
        )
        .buffer_unordered(options.concurrency)
        .collect()
        .await;
        for (i, answer) in answers {
            let Some(server) = answer else { continue };
            let step = &mut plan.steps[i];
            step.diff.confirm(&server);
            if step.diff.action == Action::Unchanged {
                step.manifest = None;
            }
        }
    }

    /// The API server's answer to a dry-run apply of `manifest` now.
    pub async fn dry_apply(&self, manifest: &Manifest, options: &Options) -> Result<Value, String> {
        let answer = self.server_side_apply(manifest, true, options).await?;
        serde_json::to_value(answer).map_err(|e| e.to_string())
    }

    /// Writes one group of steps concurrently.
    async fn apply_group(
        &self,
        steps: &[&Step],
        options: &Options,
        on_event: &(dyn Fn(Event<'_>) + Sync),
        outcome: &mut Outcome,
    ) {
        let results: Vec<(&Step, Result<(), String>)> =
            futures::stream::iter(steps.iter().map(|step| async move {
                on_event(Event::Started(step));
                let result = if step.diff.action == Action::Replace {
                    self.replace(step, options).await
                } else {
                    self.apply(step, options).await
                };
                (*step, result)
            }))
            .buffer_unordered(options.concurrency)
            .collect()
            .await;
        for (step, result) in results {
            match result {
                Ok(()) => {
                    on_event(Event::Done(step));
                    outcome.count(step.diff.action);
                }
                Err(message) => {
                    on_event(Event::Failed(step, &message));
                    outcome.fail(step, message);
                }
            }
        }
    }

    /// Server-side apply of one step's manifest (none: nothing to write); the error is
    /// the API server's message.
    async fn apply(&self, step: &Step, options: &Options) -> Result<(), String> {
        match &step.manifest {
            Some(manifest) => self
                .server_side_apply(manifest, false, options)
                .await
                .map(drop),
            None => Ok(()),
        }
    }

    /// Server-side apply (field manager `gitsync`): the API server's answer, or its
    /// message.
    async fn server_side_apply(
        &self,
        manifest: &Manifest,
        dry_run: bool,
        options: &Options,
    ) -> Result<kube::api::DynamicObject, String> {
        let id = &manifest.id;
        let (_, api) = self
            .api(id, id.namespace.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = options.force
            || gitsync_core::manifest::annotation(&manifest.object, ANNOTATION_FORCE)
                == Some("true");
        params.dry_run = dry_run;
        let patch = Patch::Apply(&manifest.object);
        retry(&options.cancel, || api.patch(&id.name, &params, &patch))
            .await
            .map_err(|e| describe(&e))
    }

    /// Delete, wait until gone, create: for a change to immutable fields.
    async fn replace(&self, step: &Step, options: &Options) -> Result<(), String> {
        let id = &step.diff.id;
        self.delete(id, options).await?;
        let deadline = Instant::now() + DEFAULT_HEALTH_TIMEOUT;
        while self.get(id).await.map_err(|e| e.to_string())?.is_some() {
            if Instant::now() > deadline || options.cancel.is_cancelled() {
                return Err(format!(
                    "{} was deleted for a replace but did not go away",
                    id.short()
                ));
            }
            tokio::time::sleep(POLL / 5).await;
        }
        self.apply(step, options).await
    }

    /// Deletes one object (background propagation); already gone is success.
    async fn delete(&self, id: &ObjectId, options: &Options) -> Result<(), String> {
        let (_, api) = self
            .api(id, id.namespace.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match retry(&options.cancel, || api.delete(&id.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Waits until `ids` are healthy, degraded, or `timeout` passes; records the
    /// result in `outcome`. True when they are all healthy.
    async fn settle(
        &self,
        plan: &Plan,
        ids: &[&ObjectId],
        timeout: Duration,
        options: &Options,
        on_event: &(dyn Fn(Event<'_>) + Sync),
        outcome: &mut Outcome,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut last_report = String::new();
        let mut classes = None;
        loop {
            let unhealthy = match self.health_of(&plan.app, ids, &mut classes).await {
                Ok(u) => u,
                Err(e) => vec![Unhealthy {
                    object: plan.app.clone(),
                    health: Health {
                        status: Status::Progressing,
                        reason: format!("cannot read the live state: {e}"),
                    },
                }],
            };
            if unhealthy.is_empty() {
                outcome.health = Some(Health::healthy());
                outcome.unhealthy.clear();
                return true;
            }
            let overall = worst_named(&unhealthy);
            let degraded = overall.status == Status::Degraded;
            if degraded || Instant::now() >= deadline {
                outcome.result = if degraded {
                    SyncResult::Degraded
                } else {
                    SyncResult::HealthTimeout
                };
                outcome.health = Some(if degraded {
                    overall
                } else {
                    Health {
                        status: overall.status,
                        reason: format!(
                            "not healthy after {}s: {}",
                            timeout.as_secs(),
                            overall.reason
                        ),
                    }
                });
                outcome.unhealthy = unhealthy;
                return false;
            }
            if options.cancel.is_cancelled() {
                outcome.result = SyncResult::Superseded;
                return false;
            }
            let report = unhealthy
                .iter()
                .map(|u| format!("{}: {}", u.object, u.health.reason))
                .collect::<Vec<_>>()
                .join("; ");
            if report != last_report {
                on_event(Event::Waiting(&report));
                last_report = report;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The objects of `ids` that are not healthy now: one list per kind, by the app's
    /// label (every rendered object carries it). A claim that is not bound is judged by
    /// its class's binding mode, the classes read once into `classes`.
    async fn health_of(
        &self,
        app: &str,
        ids: &[&ObjectId],
        classes: &mut Option<Vec<Value>>,
    ) -> super::Result<Vec<Unhealthy>> {
        let mut by_kind: BTreeMap<(&str, &str, &str), Vec<&ObjectId>> = BTreeMap::new();
        for id in ids {
            by_kind
                .entry((&id.group, &id.version, &id.kind))
                .or_default()
                .push(id);
        }
        let selector = format!("{LABEL_APP}={app}");
        let mut unhealthy = Vec::new();
        for ((_, _, _), ids) in by_kind {
            let Ok((ar, _)) = self.resolve(ids[0]).await else {
                continue;
            };
            let live = self.list(&ar, &selector).await?;
            let by_name: BTreeMap<(Option<&str>, &str), &Value> = live
                .iter()
                .filter_map(|o| {
                    let meta = o.get("metadata")?;
                    Some((
                        (
                            meta.get("namespace").and_then(Value::as_str),
                            meta.get("name")?.as_str()?,
                        ),
                        o,
                    ))
                })
                .collect();
            for id in ids {
                let object = by_name.get(&(id.namespace.as_deref(), id.name.as_str()));
                let mut health = health::assess(object.copied());
                if let Some(claim) = object
                    && !health.is_healthy()
                    && id.group.is_empty()
                    && id.kind == "PersistentVolumeClaim"
                    && storage_class::waits_for_first_consumer(claim, self.classes(classes).await)
                {
                    health = health::assess_pvc_with_binding_mode(claim, true);
                }
                if !health.is_healthy() {
                    unhealthy.push(Unhealthy {
                        object: id.short(),
                        health,
                    });
                }
            }
        }
        Ok(unhealthy)
    }
}

impl Cluster {
    /// The StorageClasses, read into `classes` on first use (one list request, or
    /// none when the cluster does not serve `storage.k8s.io/v1`); empty when the
    /// cluster does not serve them, forbids reading them, or the read failed: claims
    /// then wait to be bound.
    async fn classes<'a>(&self, classes: &'a mut Option<Vec<Value>>) -> &'a [Value] {
        if classes.is_none() {
            *classes = Some(self.read_classes().await);
        }
        classes.as_deref().unwrap_or_default()
    }

    async fn read_classes(&self) -> Vec<Value> {
        let id = ObjectId {
            group: "storage.k8s.io".into(),
            version: "v1".into(),
            kind: "StorageClass".into(),
            namespace: None,
            name: String::new(),
        };
        let Ok((ar, _)) = self.resolve(&id).await else {
            tracing::debug!("StorageClasses are not served; claims wait to be bound");
            return Vec::new();
        };
        // Cluster-scoped: one list across the cluster, even when confined to namespaces.
        match self.list_one(&ar, None, "").await {
            Ok(list) => list,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read StorageClasses; claims wait to be bound");
                Vec::new()
            }
        }
    }
}

/// The worst health among `unhealthy`, its reason naming each object in that state.
fn worst_named(unhealthy: &[Unhealthy]) -> Health {
    let status = health::worst(unhealthy.iter().map(|u| &u.health)).status;
    let reason = unhealthy
        .iter()
        .filter(|u| u.health.status == status)
        .map(|u| format!("{}: {}", u.object, u.health.reason))
        .collect::<Vec<_>>()
        .join("; ");
    Health { status, reason }
}

/// Consecutive runs of `items` with the same key (the items are sorted by it).
fn group_by<'a, K: PartialEq>(items: &[&'a Step], key: impl Fn(&Step) -> K) -> Vec<Vec<&'a Step>> {
    let mut groups: Vec<Vec<&Step>> = Vec::new();
    for item in items {
        match groups.last_mut() {
            Some(group) if key(group[0]) == key(item) => group.push(item),
            _ => groups.push(vec![item]),
        }
    }
    groups
}

/// Attempts for a request that fails transiently.
const ATTEMPTS: u32 = 10;
/// First backoff; doubled each attempt up to [`MAX_BACKOFF`], with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Runs `request`, retrying transient failures (see [`is_transient`]) with capped
/// exponential backoff and jitter, until it succeeds, fails for good, runs out of
/// attempts, or the execution is cancelled.
pub(crate) async fn retry<T, F, Fut>(cancel: &Cancel, request: F) -> Result<T, kube::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match request().await {
            Err(e) if attempt + 1 < ATTEMPTS && is_transient(&e) && !cancel.is_cancelled() => {
                let wait = retry_after(&e).unwrap_or_else(|| backoff(attempt));
                let until = tokio::time::Instant::now() + wait;
                while tokio::time::Instant::now() < until && !cancel.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(50).min(wait)).await;
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The wait before retry `attempt` (0-based): 100 ms doubling to 8 s, each drawn
/// between half and all of that so many clients do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    full.mul_f64(fraction)
}

/// The wait the API server asked for (`Status.details.retryAfterSeconds`, sent with
/// 429s by API priority and fairness), capped at [`MAX_BACKOFF`].
fn retry_after(error: &kube::Error) -> Option<Duration> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    let seconds = status.details.as_ref()?.retry_after_seconds;
    (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)).min(MAX_BACKOFF))
}

/// 429, 5xx, connection errors, and a 409 on a stale resourceVersion (not a field
/// manager conflict, which no retry resolves).
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.code == 429
                || status.code >= 500
                || (status.code == 409 && status.message.contains("the object has been modified"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The API server's own message for API errors, the error chain otherwise. A field
/// manager conflict says how to take the fields over.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 409 && status.message.contains("conflict") => {
            format!(
                "{} ({}); another field manager owns these fields: set `force: true` for the \
                 app (or pass --force) to take them over",
                status.message, status.code
            )
        }
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => crate::error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        for attempt in 0..12 {
            let wait = backoff(attempt);
            let full = FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(MAX_BACKOFF);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
    }
}
