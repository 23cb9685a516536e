//! Health of live objects: is a Deployment rolled out, a Job complete, a PVC bound.
//!
//! Reads the `status` the controllers write on one live object (as the API server returns
//! it) and answers Healthy, Progressing, Degraded or Missing with a short reason, by the
//! rules `kubectl rollout status` and Argo CD's built-in health checks use. A sync waits
//! for every object of a wave to be healthy before it starts the next one; [`worst`]
//! folds the objects of a wave or an app into one answer.
//!
//! This module only looks at the object it is given: no I/O, no clock, no events, no
//! owned objects (a Deployment's pods are not read). Kinds it does not know are healthy
//! unless they report a `Ready` condition.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::manifest::{annotation, split_api_version};

/// How healthy an object is. Ordered by severity: `Healthy < Progressing < Missing <
/// Degraded`, so the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Status {
    /// Rolled out, bound, complete, or nothing to wait for.
    Healthy,
    /// Not there yet, but no sign that it will not get there.
    Progressing,
    /// The object does not exist in the cluster.
    Missing,
    /// Failed, or stuck in a way that needs someone to act.
    Degraded,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Healthy => "Healthy",
            Self::Progressing => "Progressing",
            Self::Missing => "Missing",
            Self::Degraded => "Degraded",
        })
    }
}

/// The health of one object (or of several, see [`worst`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: Status,
    /// Why it is not healthy, as a sentence fragment naming counts: `1 of 3 new replicas
    /// updated`. Empty when Healthy.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Health {
    /// Healthy, with no reason.
    pub fn healthy() -> Self {
        Self {
            status: Status::Healthy,
            reason: String::new(),
        }
    }

    /// True when the status is [`Status::Healthy`].
    pub fn is_healthy(&self) -> bool {
        self.status == Status::Healthy
    }

    fn progressing(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Progressing,
            reason: reason.into(),
        }
    }

    fn degraded(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Degraded,
            reason: reason.into(),
        }
    }
}

/// Health of a live object (`None` = the object does not exist → Missing).
///
/// A Pending PersistentVolumeClaim is Progressing here; see
/// [`assess_pvc_with_binding_mode`] for claims of a `WaitForFirstConsumer` class.
pub fn assess(live: Option<&Value>) -> Health {
    match live {
        Some(live) => assess_object(live, false),
        None => Health {
            status: Status::Missing,
            reason: "object does not exist".to_owned(),
        },
    }
}

/// Like [`assess`], for a claim whose storage class binding mode the caller knows.
///
/// With `wait_for_first_consumer`, a Pending claim is Healthy (with no reason): it binds
/// only once the first pod that uses it is scheduled, so waiting for it before the pod's
/// wave would wait forever. Bound and Lost claims, and other kinds, are assessed as
/// [`assess`] does.
pub fn assess_pvc_with_binding_mode(live: &Value, wait_for_first_consumer: bool) -> Health {
    assess_object(live, wait_for_first_consumer)
}

/// The worst of several (Degraded > Missing > Progressing > Healthy), with the distinct
/// reasons of the worst joined by `"; "` in the order given. Healthy when empty.
pub fn worst<'a>(items: impl IntoIterator<Item = &'a Health>) -> Health {
    let mut status = Status::Healthy;
    let mut reasons: Vec<&str> = Vec::new();
    for item in items {
        if item.status > status {
            status = item.status;
            reasons.clear();
        }
        if item.status == status && !item.reason.is_empty() && !reasons.contains(&&*item.reason) {
            reasons.push(&item.reason);
        }
    }
    Health {
        status,
        reason: reasons.join("; "),
    }
}

fn assess_object(live: &Value, wait_for_first_consumer: bool) -> Health {
    if let Some(deleting) = being_deleted(live) {
        return deleting;
    }
    let (group, _) = split_api_version(text(live, "/apiVersion"));
    match (group, text(live, "/kind")) {
        ("apps", "Deployment") => deployment(live),
        ("apps", "StatefulSet") => stateful_set(live),
        ("apps", "DaemonSet") => daemon_set(live),
        ("apps", "ReplicaSet") => replica_set(live),
        ("batch", "Job") => job(live),
        ("batch", "CronJob") => Health::healthy(),
        ("", "Pod") => pod(live),
        ("", "PersistentVolumeClaim") => claim(live, wait_for_first_consumer),
        ("", "Service") => service(live),
        ("", "Namespace") => namespace(live),
        ("networking.k8s.io", "Ingress") => ingress(live),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaler(live),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(live),
        _ => other(live),
    }
}

/// Progressing while `metadata.deletionTimestamp` is set, naming the finalizers that
/// hold the object.
fn being_deleted(live: &Value) -> Option<Health> {
    if live
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
    {
        return None;
    }
    let finalizers: Vec<&str> = live
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(Health::progressing(if finalizers.is_empty() {
        "being deleted".to_owned()
    } else {
        format!("being deleted (finalizers: {})", finalizers.join(", "))
    }))
}

/// Progressing while the controller has not seen the latest spec yet.
fn not_observed(live: &Value) -> Option<Health> {
    let generation = live.pointer("/metadata/generation")?.as_i64()?;
    let observed = int(live, "/status/observedGeneration", 0);
    (generation > observed).then(|| {
        Health::progressing(format!(
            "waiting for the rollout to be observed (generation {generation}, observed {observed})"
        ))
    })
}

fn deployment(live: &Value) -> Health {
    if flag(live, "/spec/paused") {
        return Health::progressing("rollout paused");
    }
    if let Some(waiting) = not_observed(live) {
        return waiting;
    }
    if let Some(c) = condition(live, "Progressing")
        && has_status(c, "False")
        && text(c, "/reason") == "ProgressDeadlineExceeded"
    {
        return Health::degraded(with_detail(
            "rollout exceeded its progress deadline",
            text(c, "/message"),
        ));
    }
    let desired = int(live, "/spec/replicas", 1);
    let replicas = int(live, "/status/replicas", 0);
    let updated = int(live, "/status/updatedReplicas", 0);
    let available = int(live, "/status/availableReplicas", 0);
    if updated < desired {
        return Health::progressing(format!("{updated} of {desired} new replicas updated"));
    }
    if replicas > updated {
        let old = replicas - updated;
        let noun = if old == 1 { "replica" } else { "replicas" };
        return Health::progressing(format!("{old} old {noun} pending termination"));
    }
    if available < updated {
        return Health::progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Health::healthy()
}

/// With `OnDelete` pods are only replaced when someone deletes them, so only readiness
/// is waited for, not the update.
fn stateful_set(live: &Value) -> Health {
    if let Some(waiting) = not_observed(live) {
        return waiting;
    }
    let desired = int(live, "/spec/replicas", 1);
    let ready = int(live, "/status/readyReplicas", 0);
    if ready < desired {
        return Health::progressing(format!("{ready} of {desired} pods ready"));
    }
    if text(live, "/spec/updateStrategy/type") == "OnDelete" {
        return Health::healthy();
    }
    let partition = int(live, "/spec/updateStrategy/rollingUpdate/partition", 0);
    let target = (desired - partition).max(0);
    let updated = int(live, "/status/updatedReplicas", 0);
    if updated < target {
        return Health::progressing(format!("{updated} of {target} pods updated"));
    }
    let current = text(live, "/status/currentRevision");
    let update = text(live, "/status/updateRevision");
    if partition == 0 && !current.is_empty() && !update.is_empty() && current != update {
        return Health::progressing(format!(
            "waiting for the update to revision {update} to finish"
        ));
    }
    Health::healthy()
}

fn daemon_set(live: &Value) -> Health {
    if let Some(waiting) = not_observed(live) {
        return waiting;
    }
    let desired = int(live, "/status/desiredNumberScheduled", 0);
    let updated = int(live, "/status/updatedNumberScheduled", 0);
    let available = int(live, "/status/numberAvailable", 0);
    if text(live, "/spec/updateStrategy/type") != "OnDelete" && updated < desired {
        return Health::progressing(format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return Health::progressing(format!("{available} of {desired} pods available"));
    }
    Health::healthy()
}

fn replica_set(live: &Value) -> Health {
    if let Some(waiting) = not_observed(live) {
        return waiting;
    }
    if let Some(c) = condition(live, "ReplicaFailure")
        && has_status(c, "True")
    {
        return Health::degraded(with_detail("cannot create pods", &explain(c)));
    }
    let desired = int(live, "/spec/replicas", 1);
    let available = int(live, "/status/availableReplicas", 0);
    if available < desired {
        return Health::progressing(format!("{available} of {desired} replicas available"));
    }
    Health::healthy()
}

fn job(live: &Value) -> Health {
    if condition(live, "Complete").is_some_and(|c| has_status(c, "True")) {
        return Health::healthy();
    }
    if let Some(c) = condition(live, "Failed")
        && has_status(c, "True")
    {
        return Health::degraded(with_detail("job failed", &explain(c)));
    }
    if flag(live, "/spec/suspend") {
        return Health::progressing("suspended");
    }
    let completions = int(live, "/spec/completions", 1);
    let succeeded = int(live, "/status/succeeded", 0);
    Health::progressing(format!(
        "{succeeded} of {completions} completions succeeded"
    ))
}

/// A pod that runs to completion (`restartPolicy` Never or OnFailure) is Progressing
/// until it has succeeded, ready or not.
fn pod(live: &Value) -> Health {
    match text(live, "/status/phase") {
        "Succeeded" => return Health::healthy(),
        "Failed" => return Health::degraded(pod_failure(live)),
        _ => {}
    }
    let stuck = stuck_containers(live);
    if !stuck.is_empty() {
        return Health::degraded(stuck.join("; "));
    }
    let restart_policy = text(live, "/spec/restartPolicy");
    if text(live, "/status/phase") == "Running" && matches!(restart_policy, "Never" | "OnFailure") {
        return Health::progressing("pod is running to completion");
    }
    let ready = condition(live, "Ready");
    if ready.is_some_and(|c| has_status(c, "True")) {
        return Health::healthy();
    }
    if let Some(c) = condition(live, "PodScheduled")
        && has_status(c, "False")
    {
        return Health::progressing(with_detail("pod not scheduled", text(c, "/message")));
    }
    Health::progressing(with_detail(
        "pod not ready",
        ready.map_or("", |c| text(c, "/reason")),
    ))
}

/// Why a Failed pod failed: its own reason and message (`Evicted`), else the first
/// container that exited non-zero.
fn pod_failure(live: &Value) -> String {
    let own = explain(live.get("status").unwrap_or(&Value::Null));
    if !own.is_empty() {
        return own;
    }
    container_statuses(live)
        .find_map(|(kind, c)| {
            let code = int(c, "/state/terminated/exitCode", 0);
            (code != 0).then(|| format!("{kind} {} exited with code {code}", text(c, "/name")))
        })
        .unwrap_or_else(|| "pod failed".to_owned())
}

/// Containers waiting for a reason that will not go away by itself: a crash loop, an
/// image that cannot be pulled, a missing ConfigMap or Secret.
fn stuck_containers(live: &Value) -> Vec<String> {
    container_statuses(live)
        .filter_map(|(kind, c)| {
            let reason = text(c, "/state/waiting/reason");
            let stuck = reason == "InvalidImageName"
                || reason.starts_with("Err")
                || reason.ends_with("Error")
                || reason.ends_with("BackOff");
            stuck.then(|| {
                let what = format!("{kind} {}: {reason}", text(c, "/name"));
                with_detail(&what, text(c, "/state/waiting/message"))
            })
        })
        .collect()
}

/// Init container statuses, then container statuses, each with what to call it.
fn container_statuses(live: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
    let list = |pointer: &str| {
        live.pointer(pointer)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
    };
    list("/status/initContainerStatuses")
        .map(|c| ("init container", c))
        .chain(list("/status/containerStatuses").map(|c| ("container", c)))
}

fn claim(live: &Value, wait_for_first_consumer: bool) -> Health {
    match text(live, "/status/phase") {
        "Bound" => Health::healthy(),
        "Lost" => Health::degraded("the claim lost its volume"),
        _ if wait_for_first_consumer => Health::healthy(),
        _ => Health::progressing("waiting for the claim to be bound"),
    }
}

fn service(live: &Value) -> Health {
    if text(live, "/spec/type") == "LoadBalancer" && !has_load_balancer_address(live) {
        return Health::progressing("waiting for a load-balancer address");
    }
    Health::healthy()
}

fn ingress(live: &Value) -> Health {
    if has_load_balancer_address(live) {
        Health::healthy()
    } else {
        Health::progressing("waiting for an address from the ingress controller")
    }
}

fn has_load_balancer_address(live: &Value) -> bool {
    live.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn namespace(live: &Value) -> Health {
    if text(live, "/status/phase") == "Terminating" {
        Health::progressing("namespace is terminating")
    } else {
        Health::healthy()
    }
}

/// autoscaling/v2 keeps its conditions in `status.conditions`; autoscaling/v1 in a JSON
/// annotation.
fn autoscaler(live: &Value) -> Health {
    let conditions = match live.pointer("/status/conditions").and_then(Value::as_array) {
        Some(conditions) => conditions.clone(),
        None => annotation(live, "autoscaling.alpha.kubernetes.io/conditions")
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default(),
    };
    if conditions.is_empty() {
        return Health::progressing("waiting for the autoscaler to report");
    }
    let find = |kind: &str| conditions.iter().find(|c| text(c, "/type") == kind);
    if let Some(c) = find("AbleToScale")
        && has_status(c, "False")
    {
        return Health::degraded(with_detail("cannot scale", &explain(c)));
    }
    if let Some(c) = find("ScalingActive")
        && has_status(c, "False")
        && ["Failed", "Invalid"]
            .iter()
            .any(|p| text(c, "/reason").starts_with(p))
    {
        return Health::degraded(with_detail("cannot compute a replica count", &explain(c)));
    }
    Health::healthy()
}

fn crd(live: &Value) -> Health {
    if condition(live, "Established").is_some_and(|c| has_status(c, "True")) {
        return Health::healthy();
    }
    if let Some(c) = condition(live, "NamesAccepted")
        && has_status(c, "False")
    {
        return Health::degraded(with_detail("names not accepted", &explain(c)));
    }
    Health::progressing("waiting for the CRD to be established")
}

/// Any other kind: healthy unless it reports a `Ready` condition that is not True.
fn other(live: &Value) -> Health {
    match condition(live, "Ready") {
        Some(c) if !has_status(c, "True") => {
            let message = text(c, "/message");
            let detail = if message.is_empty() {
                text(c, "/reason")
            } else {
                message
            };
            Health::progressing(with_detail("not ready", detail))
        }
        _ => Health::healthy(),
    }
}

/// The condition of `kind` in `status.conditions`.
fn condition<'a>(live: &'a Value, kind: &str) -> Option<&'a Value> {
    live.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| text(c, "/type") == kind)
}

fn has_status(condition: &Value, status: &str) -> bool {
    text(condition, "/status") == status
}

/// `reason: message` of a condition (or a pod status), or whichever of them is set.
fn explain(of: &Value) -> String {
    with_detail(text(of, "/reason"), text(of, "/message"))
}

/// `what: detail`, or `what` alone when there is no detail (and the reverse).
fn with_detail(what: &str, detail: &str) -> String {
    match (what.is_empty(), detail.is_empty()) {
        (_, true) => what.to_owned(),
        (true, false) => detail.to_owned(),
        (false, false) => format!("{what}: {detail}"),
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(value: &Value, pointer: &str, default: i64) -> i64 {
    value
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn flag(value: &Value, pointer: &str) -> bool {
    value
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
