//! Progressive delivery as a pure state machine: what one pass of a rollout applies,
//! given the workload as rendered, its policy, what is live, the rollout's persisted
//! [`State`], an operator's [`Command`] and the time.
//!
//! A sync calls [`decide`] for every Deployment bound to a strategy policy (see
//! [`crate::policy::select`]), between render and plan: the rendered Deployment (and the
//! Services, Ingresses and HPA that belong to it) are replaced by the objects the
//! strategy wants live at this point of the rollout (a canary Deployment beside the
//! stable one, two blue/green slots with the Service switched to one of them, the
//! Deployment's own strategy fields), and the plan diffs and applies those like any
//! other object. Objects a step no longer wants (the canary after the last step) are
//! pruned like any object no longer rendered. The agent calls the sync again while a
//! rollout waits on health or time; each pass moves the machine as far as the
//! observations allow and says what it waits for.
//!
//! Nothing here reads a clock or the cluster: `now` and the observations are
//! arguments, so every transition is a unit test (`tests.rs`).

mod blue_green;
mod canary;
mod preview;
mod rolling;
mod state;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::digest;
use crate::health;
use crate::manifest::{Key, Manifest, ObjectId};
use crate::policy::{OnNewRevision, Policy, Strategy};
use crate::time;

pub use preview::{Preview, preview};
pub use state::{Downtime, Phase, State};

/// Label on the pods (and selectors) of a canary Deployment: `canary`, or `stable` on
/// the stable pods when an Ingress splits the traffic.
pub const LABEL_TRACK: &str = "gitsync.dev/track";
/// Label on the pods (and selectors) of a blue/green slot: `blue` or `green`.
pub const LABEL_SLOT: &str = "gitsync.dev/slot";
/// Annotation on a Deployment gitsync rolls: the hash of the pod template it carries.
pub const ANNOTATION_TEMPLATE: &str = "gitsync.dev/template";
/// Annotation on the objects a strategy adds: the workload they belong to.
pub const ANNOTATION_ROLLOUT_OF: &str = "gitsync.dev/rollout-of";

/// Why a rollout cannot start: raised before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {workload}: strategy policy {policy:?}: {message}")]
pub struct Error {
    /// Where the workload is defined (file:line:column).
    pub at: String,
    pub workload: String,
    pub policy: String,
    pub message: String,
}

/// An operator's instruction to a rollout in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Past a manual pause (canary) or switch now (blue/green).
    Promote,
    /// Back to the stable version.
    Abort,
}

/// One workload bound to a strategy, with the rendered objects that belong to it.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub policy: &'a Policy,
    /// The rendered Deployment.
    pub deployment: &'a Manifest,
    /// Every rendered object of the app (Services, Ingresses and HPAs are found here).
    pub rendered: &'a [Manifest],
}

/// What is live, as the pass read it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The live objects of the app by identity (see [`crate::manifest::index`]).
    pub live: &'a BTreeMap<Key<'a>, &'a Value>,
    /// Container restarts per Deployment name, summed over its pods.
    pub restarts: &'a BTreeMap<String, u32>,
    /// The answer of the canary's HTTP check, when the policy has one: `Ok` for 2xx.
    pub check: Option<&'a Result<(), String>>,
}

/// What a rollout waits for before its next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Objects to become healthy (the reason names them).
    Health(String),
    /// A timed pause, until this time (milliseconds since the epoch).
    Until(u64),
    /// `gitsync promote`.
    Promote,
    /// The next pass: the rollout just settled and a revision queued behind it
    /// (`onNewRevision: queue`) starts then.
    Queued,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Health(reason) => write!(f, "health: {reason}"),
            Self::Until(ms) => write!(f, "a pause until {}", time::rfc3339(ms / 1000)),
            Self::Promote => f.write_str("`gitsync promote`"),
            Self::Queued => f.write_str("the queued revision to start"),
        }
    }
}

/// The objects one pass wants live for a workload, and the rollout's new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Rendered objects these replace (the Deployment, and the Services, Ingresses or
    /// HPA the strategy rewrites).
    pub replaces: Vec<ObjectId>,
    /// The objects to apply instead, and the objects the strategy adds.
    pub objects: Vec<Value>,
    pub state: State,
    /// What happened this pass, one sentence each (history and Events).
    pub notes: Vec<String>,
    /// `None` when the rollout is settled (completed, aborted or rolled back).
    pub waiting: Option<Wait>,
}

/// The rendered Deployments bound to a strategy policy (see [`crate::policy::select`]),
/// in render order. A workload whose annotation names an unknown policy, or names a
/// policy when it is not a Deployment, is an error naming the workload.
pub fn bound<'a>(
    manifests: &'a [Manifest],
    policies: &'a [Policy],
) -> Result<Vec<(&'a Manifest, &'a Policy)>, Error> {
    let mut out = Vec::new();
    for m in manifests
        .iter()
        .filter(|m| crate::kinds::is_workload(&m.id.kind))
    {
        let named = crate::manifest::annotation(&m.object, crate::manifest::ANNOTATION_STRATEGY);
        let Some(policy) = crate::policy::select(policies, &m.object)
            .map_err(|message| named_error(m, named.unwrap_or_default(), message))?
        else {
            continue;
        };
        match (m.id.kind.as_str(), named) {
            ("Deployment", _) => out.push((m, policy)),
            // A label selector that also matches a StatefulSet or a Job: those keep
            // their native update.
            (_, None) => {}
            (kind, Some(_)) => {
                return Err(error(
                    m,
                    policy,
                    format!("strategies roll Deployments; this is a {kind}"),
                ));
            }
        }
    }
    Ok(out)
}

/// One pass of the workload's rollout. `state` is what the previous pass left (`None`
/// before the first), `now` milliseconds since the epoch.
pub fn decide(
    workload: &Workload<'_>,
    state: Option<&State>,
    observed: &Observed<'_>,
    command: Option<Command>,
    now: u64,
) -> Result<Decision, Error> {
    let ctx = Context::new(workload)?;
    let mut decision = match &workload.policy.strategy {
        Strategy::Recreate | Strategy::Ramped { .. } => rolling::decide(&ctx, state, observed, now),
        Strategy::BlueGreen { .. } => blue_green::decide(&ctx, state, observed, command, now)?,
        Strategy::Canary { .. } => canary::decide(&ctx, state, observed, command, now)?,
    };
    // A rollout that settled in this pass while git moved on: the next pass starts the
    // revision it queued.
    let settled_now = state.is_some_and(State::in_progress) && !decision.state.in_progress();
    if decision.waiting.is_none() && settled_now && decision.state.target != ctx.target {
        decision.waiting = Some(Wait::Queued);
    }
    Ok(decision)
}

/// The workload, read once: names, template, its hash, and the objects around it.
struct Context<'a> {
    policy: &'a Policy,
    deployment: &'a Manifest,
    name: &'a str,
    namespace: Option<&'a str>,
    /// The rendered pod template: the rollout's target.
    template: &'a Value,
    target: String,
    /// Services in the workload's namespace whose selector picks its pods (or the one
    /// the policy names).
    services: Vec<&'a Manifest>,
    /// The HPA scaling the workload, if any.
    hpa: Option<&'a Manifest>,
    rendered: &'a [Manifest],
}

impl<'a> Context<'a> {
    fn new(workload: &Workload<'a>) -> Result<Self, Error> {
        let m = workload.deployment;
        let fail = |message: String| error(m, workload.policy, message);
        if m.id.kind != "Deployment" || m.id.group != "apps" {
            return Err(fail(format!(
                "strategies roll Deployments; this is a {}",
                m.id.kind
            )));
        }
        let template = m
            .object
            .pointer("/spec/template")
            .filter(|t| t.is_object())
            .ok_or_else(|| fail("the Deployment has no spec.template".into()))?;
        let namespace = m.id.namespace.as_deref();
        let rendered: &'a [Manifest] = workload.rendered;
        let in_namespace = |kind: &'static str| {
            rendered
                .iter()
                .filter(move |r| r.id.kind == kind && r.id.namespace.as_deref() == namespace)
        };
        let pod_labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let named = match &workload.policy.strategy {
            Strategy::BlueGreen { service, .. } | Strategy::Canary { service, .. } => {
                service.as_deref()
            }
            _ => None,
        };
        let services: Vec<&Manifest> = match named {
            Some(name) => vec![
                in_namespace("Service")
                    .find(|s| s.id.name == name)
                    .ok_or_else(|| {
                        fail(format!(
                            "names Service {name:?}, which the app does not render in namespace {}",
                            namespace.unwrap_or("default")
                        ))
                    })?,
            ],
            None => in_namespace("Service")
                .filter(|s| selects(selector(&s.object), pod_labels))
                .collect(),
        };
        let target = |h: &Manifest, field: &str| {
            h.object
                .pointer(&format!("/spec/scaleTargetRef/{field}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let hpa = in_namespace("HorizontalPodAutoscaler").find(|h| {
            target(h, "kind").as_deref() == Some("Deployment")
                && target(h, "name").as_deref() == Some(m.id.name.as_str())
        });
        Ok(Self {
            policy: workload.policy,
            deployment: m,
            name: &m.id.name,
            namespace,
            template,
            target: template_hash(template),
            services,
            hpa,
            rendered: workload.rendered,
        })
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        error(self.deployment, self.policy, message.into())
    }

    /// A live Deployment of the workload's namespace.
    fn live<'o>(&self, observed: &Observed<'o>, name: &str) -> Option<&'o Value> {
        observed
            .live
            .get(&("apps", "Deployment", self.namespace, name))
            .copied()
    }

    /// How many pods the workload runs: its rendered replicas, or, under an HPA, what
    /// the HPA scaled the serving Deployments to (at least its minimum).
    fn replicas(&self, serving: &[Option<&Value>]) -> i64 {
        if self.hpa.is_none() {
            return self
                .deployment
                .object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
        }
        let live: i64 = serving
            .iter()
            .flatten()
            .filter_map(|d| d.pointer("/spec/replicas").and_then(Value::as_i64))
            .sum();
        let min = self
            .hpa
            .and_then(|h| h.object.pointer("/spec/minReplicas"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        live.max(min)
    }

    /// The rendered Deployment under another name, running `template`, with `extra`
    /// labels on its selector and pods, and `replicas` (`None`: the HPA's).
    fn deployment(
        &self,
        name: &str,
        template: &Value,
        extra: &[(&str, &str)],
        replicas: Option<i64>,
    ) -> Value {
        let mut object = self.deployment.object.clone();
        object["metadata"]["name"] = json!(name);
        let mut template = template.clone();
        for (key, value) in extra {
            set_label(&mut template, key, value);
            if let Some(Value::Object(match_labels)) =
                object.pointer_mut("/spec/selector/matchLabels")
            {
                match_labels.insert((*key).to_owned(), json!(value));
            }
        }
        let hash = template_hash(&template);
        object["spec"]["template"] = template;
        annotate(&mut object, ANNOTATION_TEMPLATE, &hash);
        if name != self.name {
            annotate(&mut object, ANNOTATION_ROLLOUT_OF, self.name);
        }
        match replicas {
            Some(n) => object["spec"]["replicas"] = json!(n),
            None => {
                if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("replicas");
                }
            }
        }
        object
    }

    /// `replicas` unless an HPA owns the count.
    fn own_replicas(&self, n: i64) -> Option<i64> {
        self.hpa.is_none().then_some(n)
    }

    /// What a pass does with the state the previous one left: go on with it, start
    /// over because a new revision arrived mid-rollout and the policy says `restart`,
    /// or start a new rollout (none before, or the last one is settled and the render
    /// moved on). With `queue`, a rollout in progress goes on with the template it
    /// started with.
    fn resume<'s>(&self, state: Option<&'s State>) -> Resume<'s> {
        match state {
            Some(s) if s.target == self.target => Resume::Continue(s),
            Some(s) if s.in_progress() => match self.policy.on_new_revision {
                OnNewRevision::Queue => Resume::Continue(s),
                OnNewRevision::Restart => Resume::Restart(s),
            },
            previous => Resume::Start(previous),
        }
    }

    fn deadline_passed(&self, since: u64, now: u64) -> bool {
        now.saturating_sub(since) > millis(self.policy.progress_deadline)
    }

    fn state(&self, now: u64) -> State {
        State {
            policy: self.policy.name.clone(),
            strategy: self.policy.strategy.kind().to_owned(),
            target: self.target.clone(),
            template: self.template.clone(),
            revision: crate::manifest::annotation(
                &self.deployment.object,
                crate::manifest::ANNOTATION_REVISION,
            )
            .map(str::to_owned),
            phase: Phase::Progressing,
            step: 0,
            started_ms: now,
            step_started_ms: now,
            ..State::default()
        }
    }
}

/// See [`Context::resume`].
enum Resume<'s> {
    Continue(&'s State),
    /// The rollout in progress, abandoned for the new revision.
    Restart(&'s State),
    /// The previous rollout (settled), if any.
    Start(Option<&'s State>),
}

fn error(deployment: &Manifest, policy: &Policy, message: String) -> Error {
    named_error(deployment, &policy.name, message)
}

fn named_error(deployment: &Manifest, policy: &str, message: String) -> Error {
    Error {
        at: deployment.source.to_string(),
        workload: deployment.id.short(),
        policy: policy.to_owned(),
        message,
    }
}

/// The render with every decision's objects in place of the rendered objects it
/// replaces: what the plan diffs and applies. A rendered object a strategy rewrites
/// (a blue/green Service's selector) keeps its own source (file and line); objects it
/// adds take the workload's; every object a strategy wrote gets a fresh digest.
pub fn effective(rendered: Vec<Manifest>, decisions: &[Decision]) -> Vec<Manifest> {
    let replaced: std::collections::BTreeSet<&ObjectId> =
        decisions.iter().flat_map(|d| &d.replaces).collect();
    let sources: BTreeMap<&ObjectId, &crate::Source> = rendered
        .iter()
        .filter(|m| replaced.contains(&m.id))
        .map(|m| (&m.id, &m.source))
        .collect();
    let mut added = Vec::new();
    for decision in decisions {
        let Some(workload) = decision.replaces.first().and_then(|id| sources.get(id)) else {
            continue;
        };
        for object in &decision.objects {
            let mut object = object.clone();
            let digest = digest::stamp(&mut object);
            if let Some(id) = ObjectId::of(&object) {
                let source = sources.get(&id).unwrap_or(workload);
                added.push(Manifest {
                    id,
                    source: (*source).clone(),
                    object,
                    digest,
                });
            }
        }
    }
    let mut out: Vec<Manifest> = rendered
        .into_iter()
        .filter(|m| !replaced.contains(&m.id))
        .collect();
    out.extend(added);
    out
}

/// Hash of a pod template (12 hex digits of its digest), as [`ANNOTATION_TEMPLATE`]
/// records it.
pub fn template_hash(template: &Value) -> String {
    let mut hash = digest::of_object(template);
    hash.truncate(12);
    hash
}

/// True for a Deployment a strategy rolls (it carries [`ANNOTATION_TEMPLATE`]): the
/// rollout judges its health, step by step, not the sync.
pub fn is_rolled(object: &Value) -> bool {
    live_hash(object).is_some()
}

/// The template hash a live Deployment carries, when gitsync applied it.
fn live_hash(live: &Value) -> Option<&str> {
    crate::manifest::annotation(live, ANNOTATION_TEMPLATE)
}

/// True when the live Deployment runs `template`: it carries the template's hash, or,
/// applied before a strategy was bound, applying the template would change nothing.
fn runs(live: &Value, template: &Value) -> bool {
    match live_hash(live) {
        Some(hash) => hash == template_hash(template),
        None => live
            .pointer("/spec/template")
            .is_some_and(|t| crate::fields::merge_keeps(t, template, "template")),
    }
}

/// Health of a live Deployment that should run `template` with `replicas` pods.
fn rolled(live: Option<&Value>, template_hash_wanted: &str, replicas: i64) -> Result<(), String> {
    let Some(live) = live else {
        return Err("not created yet".into());
    };
    if live_hash(live) != Some(template_hash_wanted) {
        return Err("the new template is not applied yet".into());
    }
    let available = live
        .pointer("/status/availableReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let health = health::assess(Some(live));
    if !health.is_healthy() {
        return Err(health.reason);
    }
    if available < replicas {
        return Err(format!("{available} of {replicas} pods available"));
    }
    Ok(())
}

/// True when the live Deployment gave up: `ProgressDeadlineExceeded`.
fn stalled(live: Option<&Value>) -> Option<String> {
    let health = health::assess(live);
    (live.is_some() && health.status == health::Status::Degraded).then_some(health.reason)
}

fn selector(service: &Value) -> Option<&Map<String, Value>> {
    service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
}

/// True when a Service selector picks pods with these labels.
fn selects(selector: Option<&Map<String, Value>>, labels: Option<&Map<String, Value>>) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn set_label(object: &mut Value, key: &str, value: &str) {
    if !object["metadata"]["labels"].is_object() {
        object["metadata"]["labels"] = json!({});
    }
    object["metadata"]["labels"][key] = json!(value);
}

fn annotate(object: &mut Value, key: &str, value: &str) {
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][key] = json!(value);
}

/// A template with one more pod label.
fn labelled(template: &Value, key: &str, value: &str) -> Value {
    let mut t = template.clone();
    set_label(&mut t, key, value);
    t
}

/// The live Deployment's pod template without a label the strategy sets (its track or
/// slot is the strategy's, not the app's).
fn live_template_without(live: &Value, key: &str) -> Value {
    let mut t = live.pointer("/spec/template").cloned().unwrap_or_default();
    if let Some(Value::Object(labels)) = t.pointer_mut("/metadata/labels") {
        labels.remove(key);
    }
    t
}

/// A Service a strategy adds beside `service` (a canary or preview Service): named
/// `name`, selecting one more label, with an address of its own.
fn derived_service(
    service: &Manifest,
    name: &str,
    key: &str,
    value: &str,
    workload: &str,
) -> Value {
    let mut object = with_selector(&service.object, key, value);
    object["metadata"]["name"] = json!(name);
    annotate(&mut object, ANNOTATION_ROLLOUT_OF, workload);
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        // The server assigns the new Service its own address.
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    object
}

/// A Service's selector with one more label.
fn with_selector(service: &Value, key: &str, value: &str) -> Value {
    let mut service = service.clone();
    service["spec"]["selector"][key] = json!(value);
    service
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The live pod template's value for a label, for error messages.
fn label_of<'v>(template: &'v Value, key: &str) -> Option<&'v str> {
    template
        .pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests;
