//! What the API server does to an object before storing it: validation (names, required
//! fields, immutable fields) and defaulting of the fields a real server defaults, so
//! diffs against the local cluster see the same noise they would see in a cluster.
//!
//! First cut: the kinds gitsync's example app uses; where this cannot be exact it errs
//! toward rejecting.

use serde_json::{Map, Value, json};

use crate::kinds::Resource;

/// One invalid field: (path, message).
pub type Cause = (String, String);

/// DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253.
fn is_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_label_chars)
}

fn is_label_chars(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !part.starts_with('-')
        && !part.ends_with('-')
}

/// DNS-1123 label: like a subdomain part, at most 63.
fn is_label(name: &str) -> bool {
    name.len() <= 63 && is_label_chars(name)
}

/// Validates an object about to be stored (`old` is the stored version, if any).
pub fn validate(res: &Resource, object: &Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
    let mut causes = Vec::new();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let label_kinds = ["Namespace", "Service"];
    if name.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
    } else if label_kinds.contains(&res.kind) && !is_label(name) {
        causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")));
    } else if !is_subdomain(name) {
        causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
    }
    match res.kind {
        "Deployment" => validate_deployment(object, old, &mut causes),
        "Service" => {
            validate_service_ports(object, &mut causes);
            if let (Some(old), Some(new)) = (
                old,
                object.pointer("/spec/clusterIP").and_then(Value::as_str),
            ) {
                let before = old.pointer("/spec/clusterIP").and_then(Value::as_str);
                if before.is_some_and(|b| b != new) {
                    causes.push((
                        "spec.clusterIP".into(),
                        "Invalid value: field is immutable".into(),
                    ));
                }
            }
        }
        "CustomResourceDefinition" => validate_crd(name, object, &mut causes),
        "Job" => {
            // A Job's pod template and selector cannot change once created.
            if let Some(old) = old {
                for (field, pointer) in [
                    ("spec.template", "/spec/template"),
                    ("spec.selector", "/spec/selector"),
                ] {
                    if old.pointer(pointer) != object.pointer(pointer) {
                        causes.push((field.into(), "Invalid value: field is immutable".into()));
                    }
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(old) = old {
                let strip = |v: &Value| {
                    let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                    if let Some(r) = spec.pointer_mut("/resources/requests")
                        && let Some(m) = r.as_object_mut()
                    {
                        m.remove("storage");
                    }
                    spec
                };
                if strip(old) != strip(object) {
                    causes.push(("spec".into(), "Forbidden: spec is immutable after creation except resources.requests for bound claims".into()));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

fn validate_crd(name: &str, crd: &Value, causes: &mut Vec<Cause>) {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (group, plural, kind) = (
        text("/spec/group"),
        text("/spec/names/plural"),
        text("/spec/names/kind"),
    );
    if group.is_empty() {
        causes.push(("spec.group".into(), "Required value".into()));
    }
    if plural.is_empty() {
        causes.push(("spec.names.plural".into(), "Required value".into()));
    }
    if kind.is_empty() {
        causes.push(("spec.names.kind".into(), "Required value".into()));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !matches!(text("/spec/scope"), "Namespaced" | "Cluster") {
        causes.push((
            "spec.scope".into(),
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"".into(),
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count()
        != 1
    {
        causes.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
}

/// Service ports as the API server checks them: required (except for ExternalName and
/// headless Services), numbers within 1–65535.
fn validate_service_ports(object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec");
    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
    let kind = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let headless = spec
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        == Some("None");
    if ports.is_none_or(Vec::is_empty) && kind != "ExternalName" && !headless {
        causes.push(("spec.ports".into(), "Required value".into()));
    }
    let in_range = |v: &Value| v.as_i64().is_some_and(|n| (1..=65_535).contains(&n));
    for (i, port) in ports.into_iter().flatten().enumerate() {
        match port.get("port") {
            Some(p) if in_range(p) => {}
            Some(p) => causes.push((
                format!("spec.ports[{i}].port"),
                format!("Invalid value: {p}: must be between 1 and 65535, inclusive"),
            )),
            None => causes.push((format!("spec.ports[{i}].port"), "Required value".into())),
        }
        if let Some(target) = port.get("targetPort")
            && target.is_number()
            && !in_range(target)
        {
            causes.push((
                format!("spec.ports[{i}].targetPort"),
                format!("Invalid value: {target}: must be between 1 and 65535, inclusive"),
            ));
        }
    }
}

fn validate_deployment(object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let selector = object.pointer("/spec/selector");
    if selector.is_none_or(Value::is_null) {
        causes.push(("spec.selector".into(), "Required value".into()));
    }
    let match_labels = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(ml) = match_labels {
        let ok = ml
            .iter()
            .all(|(k, v)| template_labels.and_then(|t| t.get(k)) == Some(v));
        if !ok {
            causes.push((
                "spec.template.metadata.labels".into(),
                "Invalid value: `selector` does not match template `labels`".into(),
            ));
        }
    }
    let containers = object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array);
    match containers {
        None => causes.push((
            "spec.template.spec.containers".into(),
            "Required value".into(),
        )),
        Some(list) if list.is_empty() => causes.push((
            "spec.template.spec.containers".into(),
            "Required value".into(),
        )),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push((
                        format!("spec.template.spec.containers[{i}].name"),
                        "Required value".into(),
                    ));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push((
                        format!("spec.template.spec.containers[{i}].image"),
                        "Required value".into(),
                    ));
                }
            }
        }
    }
    if let Some(old) = old
        && old.pointer("/spec/selector") != selector
    {
        causes.push((
            "spec.selector".into(),
            "Invalid value: field is immutable".into(),
        ));
    }
}

fn map<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let obj = value.as_object_mut()?;
    obj.entry(key.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_owned()).or_insert(value);
}

/// Applies the defaults a real API server applies.
pub fn apply_defaults(res: &Resource, object: &mut Value, cluster_ip: impl FnOnce() -> String) {
    match res.kind {
        "Deployment" => {
            let Some(spec) = map(object, "spec") else {
                return;
            };
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
            if let Some(s) = strategy.as_object_mut() {
                default(s, "type", json!("RollingUpdate"));
                if s.get("type") == Some(&json!("RollingUpdate")) {
                    let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        default(ru, "maxSurge", json!("25%"));
                        default(ru, "maxUnavailable", json!("25%"));
                    }
                }
            }
            if let Some(pod) = object.pointer_mut("/spec/template/spec") {
                default_pod_spec(pod);
            }
        }
        "Pod" => {
            if let Some(pod) = object.get_mut("spec") {
                default_pod_spec(pod);
            }
        }
        "Service" => {
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
        "PersistentVolumeClaim" => {
            if let Some(spec) = map(object, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        "Secret" => {
            if let Some(obj) = object.as_object_mut() {
                default(obj, "type", json!("Opaque"));
            }
        }
        _ => {}
    }
}

fn default_pod_spec(pod: &mut Value) {
    let Some(spec) = pod.as_object_mut() else {
        return;
    };
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers {
                let Some(c) = c.as_object_mut() else { continue };
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let tag_is_latest = !image.contains('@')
                    && image
                        .rsplit('/')
                        .next()
                        .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
                default(
                    c,
                    "imagePullPolicy",
                    json!(if tag_is_latest {
                        "Always"
                    } else {
                        "IfNotPresent"
                    }),
                );
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports {
                        if let Some(p) = p.as_object_mut() {
                            default(p, "protocol", json!("TCP"));
                        }
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
        }
    }
}

/// Status a controller would have written by now (first cut: instant readiness).
pub fn simulate_status(res: &Resource, object: &mut Value) {
    match res.kind {
        "PersistentVolumeClaim" => {
            let storage = object
                .pointer("/spec/resources/requests/storage")
                .cloned()
                .unwrap_or(json!("1Gi"));
            let modes = object
                .pointer("/spec/accessModes")
                .cloned()
                .unwrap_or(json!(["ReadWriteOnce"]));
            object["status"] =
                json!({"phase": "Bound", "accessModes": modes, "capacity": {"storage": storage}});
        }
        "Namespace" if object.pointer("/metadata/deletionTimestamp").is_none() => {
            object["status"] = json!({"phase": "Active"});
        }
        "CustomResourceDefinition" => {
            // Names are accepted and the kind is served at once (the catalog follows
            // the store).
            let names = object.pointer("/spec/names").cloned().unwrap_or(json!({}));
            let versions: Vec<Value> = object
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect();
            if let Some(conditions) = object.pointer("/status/conditions").cloned() {
                object["status"] = json!({"acceptedNames": names, "storedVersions": versions, "conditions": conditions});
                return;
            }
            let now = crate::clock::now_rfc3339();
            let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now});
            object["status"] = json!({
                "acceptedNames": names,
                "storedVersions": versions,
                "conditions": [
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::by_plural;

    #[test]
    fn names_follow_dns_rules() {
        assert!(is_subdomain("a.b-c"));
        assert!(!is_subdomain("A"));
        assert!(!is_subdomain("-a"));
        assert!(!is_label("a.b"));
        let svc = by_plural("", "v1", "services").expect("svc");
        let bad = json!({"metadata": {"name": "a.b"}});
        assert!(validate(svc, &bad, None).is_err());
    }

    #[test]
    fn deployment_selector_is_immutable_and_must_match() {
        let deploy = by_plural("apps", "v1", "deployments").expect("deploy");
        let d = |sel: &str, lbl: &str| {
            json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": sel}},
            "template": {"metadata": {"labels": {"app": lbl}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        };
        assert!(validate(deploy, &d("a", "a"), None).is_ok());
        assert!(validate(deploy, &d("a", "b"), None).is_err());
        let err = validate(deploy, &d("b", "b"), Some(&d("a", "a"))).expect_err("immutable");
        assert!(
            err.iter()
                .any(|(f, m)| f == "spec.selector" && m.contains("immutable"))
        );
    }

    #[test]
    fn defaults_like_a_real_server() {
        let deploy = by_plural("apps", "v1", "deployments").expect("deploy");
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "web:1", "ports": [{"containerPort": 80}]}]}}}});
        apply_defaults(deploy, &mut d, || unreachable!());
        assert_eq!(
            d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            Some(&json!("25%"))
        );
        assert_eq!(
            d.pointer("/spec/template/spec/containers/0/imagePullPolicy"),
            Some(&json!("IfNotPresent"))
        );
        assert_eq!(
            d.pointer("/spec/template/spec/containers/0/ports/0/protocol"),
            Some(&json!("TCP"))
        );
        let svc = by_plural("", "v1", "services").expect("svc");
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply_defaults(svc, &mut s, || "10.96.0.1".into());
        assert_eq!(s.pointer("/spec/clusterIP"), Some(&json!("10.96.0.1")));
        assert_eq!(s.pointer("/spec/ports/0/targetPort"), Some(&json!(80)));
    }
}
