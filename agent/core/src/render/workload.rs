//! Edits inside workloads' pod templates: rewriting references to generated
//! ConfigMaps/Secrets, and adding common labels to pod templates (never to selectors,
//! which are immutable).

use std::collections::BTreeMap;

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
