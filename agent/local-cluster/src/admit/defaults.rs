//! Defaulting: the fields a real API server fills in when a client leaves them out
//! (the API types' `SetDefaults_*` functions and the registries' create strategies), so
//! diffs against the local cluster see the noise they would see in a cluster. Every
//! pod template (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob) gets the
//! same pod-spec defaults as a Pod.

use serde_json::{Map, Value, json};

use crate::kinds::Resource;

/// The map at `key` of `value`, created empty when missing.
fn map<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    child(value.as_object_mut()?, key)
}

/// The map at `key` of a map, created empty when missing.
fn child<'a>(parent: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    parent
        .entry(key.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_owned()).or_insert(value);
}

/// Applies the defaults a real API server applies.
pub fn apply(res: &Resource, object: &mut Value, cluster_ip: impl FnOnce() -> String) {
    match res.kind {
        "Deployment" => deployment(object),
        "ReplicaSet" => {
            if let Some(spec) = map(object, "spec") {
                default(spec, "replicas", json!(1));
            }
            pod_template(object, "/spec/template/spec");
        }
        "StatefulSet" => stateful_set(object),
        "DaemonSet" => daemon_set(object),
        "Job" => job(object),
        "CronJob" => cron_job(object),
        "Pod" => pod_template(object, "/spec"),
        "Service" => service(object, cluster_ip),
        "PersistentVolumeClaim" => {
            if let Some(spec) = map(object, "spec") {
                claim_spec(spec);
            }
        }
        "StorageClass" => {
            if let Some(class) = object.as_object_mut() {
                default(class, "reclaimPolicy", json!("Delete"));
                default(class, "volumeBindingMode", json!("Immediate"));
            }
        }
        "Secret" => {
            if let Some(obj) = object.as_object_mut() {
                default(obj, "type", json!("Opaque"));
            }
        }
        "MutatingWebhookConfiguration" => crate::webhooks::apply_defaults(true, object),
        "ValidatingWebhookConfiguration" => crate::webhooks::apply_defaults(false, object),
        _ => {}
    }
}

fn deployment(object: &mut Value) {
    let Some(spec) = map(object, "spec") else {
        return;
    };
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = child(spec, "strategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default(ru, "maxSurge", json!("25%"));
            default(ru, "maxUnavailable", json!("25%"));
        }
    }
    pod_template(object, "/spec/template/spec");
}

fn stateful_set(object: &mut Value) {
    let Some(spec) = map(object, "spec") else {
        return;
    };
    default(spec, "replicas", json!(1));
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    default(spec, "revisionHistoryLimit", json!(10));
    if let Some(strategy) = child(spec, "updateStrategy") {
        if !strategy.contains_key("type") {
            strategy.insert("type".into(), json!("RollingUpdate"));
            default(strategy, "rollingUpdate", json!({}));
        }
        // An explicit RollingUpdate without rollingUpdate stays without it.
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(Value::Object(ru)) = strategy.get_mut("rollingUpdate")
        {
            default(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default(policy, "whenDeleted", json!("Retain"));
        default(policy, "whenScaled", json!("Retain"));
    }
    if let Some(Value::Array(claims)) = spec.get_mut("volumeClaimTemplates") {
        for claim in claims {
            if let Some(spec) = map(claim, "spec") {
                claim_spec(spec);
            }
        }
    }
    pod_template(object, "/spec/template/spec");
}

fn daemon_set(object: &mut Value) {
    let Some(spec) = map(object, "spec") else {
        return;
    };
    default(spec, "revisionHistoryLimit", json!(10));
    if let Some(strategy) = child(spec, "updateStrategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default(ru, "maxUnavailable", json!(1));
            default(ru, "maxSurge", json!(0));
        }
    }
    pod_template(object, "/spec/template/spec");
}

fn job(object: &mut Value) {
    // A Job without labels takes its pod template's.
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, map(object, "metadata")) {
        let empty = meta
            .get("labels")
            .is_none_or(|l| l.as_object().is_none_or(Map::is_empty));
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
    let Some(spec) = map(object, "spec") else {
        return;
    };
    if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    let per_index = spec.contains_key("backoffLimitPerIndex");
    default(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement = if spec.contains_key("podFailurePolicy") {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default(spec, "podReplacementPolicy", json!(replacement));
    pod_template(object, "/spec/template/spec");
}

fn cron_job(object: &mut Value) {
    let Some(spec) = map(object, "spec") else {
        return;
    };
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    pod_template(object, "/spec/jobTemplate/spec/template/spec");
}

fn service(object: &mut Value, cluster_ip: impl FnOnce() -> String) {
    let Some(spec) = map(object, "spec") else {
        return;
    };
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if !spec.contains_key("clusterIP") {
        let ip = cluster_ip();
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    default(p, "targetPort", port);
                }
            }
        }
    }
}

/// A PersistentVolumeClaim's spec (also each StatefulSet volumeClaimTemplate's).
fn claim_spec(spec: &mut Map<String, Value>) {
    default(spec, "volumeMode", json!("Filesystem"));
}

/// The pod-spec defaults, for the pod spec at `pointer` (a Pod's own or a template's).
fn pod_template(object: &mut Value, pointer: &str) {
    let Some(spec) = object.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        return;
    };
    // A Job's template gets `Always` too, which Job validation then refuses, as the
    // API server does.
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let tag_is_latest = !image.contains('@')
        && image
            .rsplit('/')
            .next()
            .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
    let pull = if tag_is_latest {
        "Always"
    } else {
        "IfNotPresent"
    };
    default(c, "imagePullPolicy", json!(pull));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if let Some(Value::Object(p)) = c.get_mut(probe) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(Value::Object(h)) = p.get_mut("httpGet") {
                default(h, "path", json!("/"));
                default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

/// What the Job registry adds on create unless `spec.manualSelector` is true: the
/// controller-uid and job-name labels on the pod template and a selector on the uid.
pub fn job_selector(job: &mut Value, uid: &str) {
    if job.pointer("/spec/manualSelector") == Some(&Value::Bool(true)) {
        return;
    }
    let name = job
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let Some(spec) = map(job, "spec") else {
        return;
    };
    let labels = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"));
    if let Some(labels) = labels {
        for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
            default(labels, key, json!(uid));
        }
        for key in ["batch.kubernetes.io/job-name", "job-name"] {
            default(labels, key, name.clone());
        }
    }
    if let Some(match_labels) = child(spec, "selector").and_then(|s| child(s, "matchLabels")) {
        default(
            match_labels,
            "batch.kubernetes.io/controller-uid",
            json!(uid),
        );
    }
}
