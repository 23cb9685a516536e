//! Edits inside workloads: rewriting references to generated ConfigMaps/Secrets,
//! adding common labels to pod templates (never to selectors, which are immutable), and
//! leaving `spec.replicas` to the HorizontalPodAutoscaler that scales a workload.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// The pod template of a workload kind (`None` for a Pod, whose spec is its own).
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn pod_spec<'a>(object: &'a mut Value, kind: &str) -> Option<&'a mut Value> {
    match template_pointer(kind) {
        Some(p) => object.pointer_mut(&format!("{p}/spec")),
        None if kind == "Pod" => object.get_mut("spec"),
        None => None,
    }
}

/// Rewrites ConfigMap and Secret names in the pod spec per `renames`.
pub fn rename_references(object: &mut Value, kind: &str, renames: &BTreeMap<String, String>) {
    if renames.is_empty() {
        return;
    }
    let Some(spec) = pod_spec(object, kind) else {
        return;
    };
    let rename = |v: Option<&mut Value>| {
        if let Some(Value::String(name)) = v
            && let Some(new) = renames.get(name.as_str())
        {
            name.clone_from(new);
        }
    };
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers {
            if let Some(Value::Array(env)) = c.get_mut("env") {
                for e in env {
                    rename(e.pointer_mut("/valueFrom/configMapKeyRef/name"));
                    rename(e.pointer_mut("/valueFrom/secretKeyRef/name"));
                }
            }
            if let Some(Value::Array(env_from)) = c.get_mut("envFrom") {
                for e in env_from {
                    rename(e.pointer_mut("/configMapRef/name"));
                    rename(e.pointer_mut("/secretRef/name"));
                }
            }
        }
    }
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        for v in volumes {
            rename(v.pointer_mut("/configMap/name"));
            rename(v.pointer_mut("/secret/secretName"));
            if let Some(Value::Array(sources)) = v.pointer_mut("/projected/sources") {
                for s in sources {
                    rename(s.pointer_mut("/configMap/name"));
                    rename(s.pointer_mut("/secret/name"));
                }
            }
        }
    }
}

/// Adds `labels` to the pod template's labels.
pub fn add_template_labels(object: &mut Value, kind: &str, labels: &BTreeMap<String, String>) {
    if labels.is_empty() {
        return;
    }
    let Some(pointer) = template_pointer(kind) else {
        return;
    };
    let Some(Value::Object(template)) = object.pointer_mut(pointer) else {
        return;
    };
    let meta = template
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else {
        return;
    };
    let target = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(target) = target {
        for (k, v) in labels {
            target.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

/// A workload an HPA scales: namespace, kind, name.
type Target = (String, String, String);

/// The workloads the rendered HPAs scale (`spec.scaleTargetRef`), in the HPA's
/// namespace (`namespace_of` resolves the app's default).
pub fn autoscaled<'a>(
    objects: impl Iterator<Item = &'a Value>,
    namespace_of: impl Fn(&Value) -> String,
) -> BTreeSet<Target> {
    objects
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("HorizontalPodAutoscaler"))
        .filter_map(|hpa| {
            let target = hpa.pointer("/spec/scaleTargetRef")?;
            Some((
                namespace_of(hpa),
                target.get("kind")?.as_str()?.to_owned(),
                target.get("name")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Removes `spec.replicas` from a workload an HPA scales: the autoscaler owns it, and
/// a sync that kept applying it would fight every scaling decision. (Server-side
/// apply then releases gitsync's ownership of the field instead of resetting it.)
pub fn release_replicas(
    object: &mut Value,
    autoscaled: &BTreeSet<Target>,
    namespace_of: impl Fn(&Value) -> String,
) {
    if autoscaled.is_empty() {
        return;
    }
    let key = (
        namespace_of(object),
        object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    );
    if autoscaled.contains(&key)
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("replicas");
    }
}
