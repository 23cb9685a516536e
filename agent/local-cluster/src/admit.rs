//! What the API server does to an object before storing it: validation (names, required
//! fields, immutable fields, a Job template's restart policy), defaulting of the fields a
//! real server defaults (see `defaults`: the workloads, Pods, Services, claims,
//! Secrets), and values it keeps across updates (a Service's clusterIP), so diffs
//! against the local cluster see the same noise they would see in a cluster.
//!
//! Validation covers the kinds gitsync's example app uses; where this cannot be exact it
//! errs toward rejecting.

mod defaults;

use serde_json::{Value, json};

use crate::kinds::Resource;

pub use defaults::{apply as apply_defaults, job_selector};

/// One invalid field: (path, message).
pub type Cause = (String, String);

/// DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253.
pub(crate) fn is_subdomain(name: &str) -> bool {
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
            validate_job_restart_policy(object, "/spec/template/spec", "spec", &mut causes);
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
        "CronJob" => validate_job_restart_policy(
            object,
            "/spec/jobTemplate/spec/template/spec",
            "spec.jobTemplate.spec",
            &mut causes,
        ),
        "PersistentVolumeClaim" => {
            if let Some(old) = old {
                validate_claim_update(old, object, &mut causes);
            }
        }
        "StorageClass" => validate_storage_class(object, old, &mut causes),
        "MutatingWebhookConfiguration" => {
            crate::webhooks::validate_configuration(true, object, &mut causes);
        }
        "ValidatingWebhookConfiguration" => {
            crate::webhooks::validate_configuration(false, object, &mut causes);
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// A claim's spec is fixed once created, but for what its binder and the API allow:
/// the volume's name set once, a class set where none was named (retroactive default
/// class), and, once bound, the requested storage; which never drops to the capacity
/// it has (`ValidatePersistentVolumeClaimUpdate`).
fn validate_claim_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let spec = |v: &Value| v.get("spec").cloned().unwrap_or(Value::Null);
    let (mut before, mut after) = (spec(old), spec(new));
    let unset = |v: &Value, field: &str| v.get(field).is_none_or(|f| f.is_null() || f == "");
    if unset(&before, "volumeName")
        && let (Some(b), Some(name)) = (before.as_object_mut(), after.get("volumeName"))
    {
        b.insert("volumeName".into(), name.clone());
    }
    let beta_class = old
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .is_some();
    if !beta_class
        && before.get("storageClassName").is_none_or(Value::is_null)
        && let Some(a) = after.as_object_mut()
    {
        a.remove("storageClassName");
    }
    if new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound") {
        for s in [&mut before, &mut after] {
            if let Some(r) = s
                .pointer_mut("/resources/requests")
                .and_then(Value::as_object_mut)
            {
                r.remove("storage");
            }
        }
    }
    if before != after {
        causes.push(("spec".into(), "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into()));
    }
    let size = |v: &Value, pointer: &str| crate::storage::quantity(v.pointer(pointer));
    let requested = "/spec/resources/requests/storage";
    if let (Some(new_size), Some(old_size)) = (size(new, requested), size(old, requested))
        && new_size < old_size
        && size(old, "/status/capacity/storage").is_none_or(|capacity| new_size <= capacity)
    {
        causes.push((
            "spec.resources.requests.storage".into(),
            "Forbidden: field can not be less than status.capacity".into(),
        ));
    }
    let mode = |v: &Value| {
        v.pointer("/spec/volumeMode")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let Some(m) = mode(new).filter(|m| Some(m) != mode(old).as_ref()) {
        // The API server names this field without its `spec.`.
        causes.push((
            "volumeMode".into(),
            format!("Invalid value: {m:?}: field is immutable"),
        ));
    }
}

/// A StorageClass (`ValidateStorageClass`, `ValidateStorageClassUpdate`): a
/// provisioner named as a qualified name, the supported policies and modes; once
/// created, only `allowVolumeExpansion`, `mountOptions` and metadata change.
fn validate_storage_class(class: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_owned);
    match text(class, "provisioner") {
        None => causes.push(("provisioner".into(), "Required value".into())),
        Some(p) if p.is_empty() => causes.push(("provisioner".into(), "Required value".into())),
        Some(p) => {
            if let Err(why) = qualified_name(&p.to_lowercase()) {
                causes.push(("provisioner".into(), format!("Invalid value: {p:?}: {why}")));
            }
        }
    }
    let one_of = |field: &str, allowed: &[&str], causes: &mut Vec<Cause>| {
        if let Some(v) = text(class, field).filter(|v| !allowed.contains(&v.as_str())) {
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            causes.push((
                field.into(),
                format!(
                    "Unsupported value: {v:?}: supported values: {}",
                    list.join(", ")
                ),
            ));
        }
    };
    one_of("reclaimPolicy", &["Delete", "Retain"], causes);
    one_of(
        "volumeBindingMode",
        &["Immediate", "WaitForFirstConsumer"],
        causes,
    );
    let Some(old) = old else {
        return;
    };
    let empty = json!({});
    let parameters = |v: &Value| {
        v.get("parameters")
            .filter(|p| !p.is_null())
            .unwrap_or(&empty)
            .clone()
    };
    if parameters(class) != parameters(old) {
        causes.push((
            "parameters".into(),
            "Forbidden: updates to parameters are forbidden.".into(),
        ));
    }
    for field in ["provisioner", "reclaimPolicy"] {
        if text(class, field) != text(old, field) {
            causes.push((
                field.into(),
                format!("Forbidden: updates to {field} are forbidden."),
            ));
        }
    }
    if let Some(mode) = text(class, "volumeBindingMode")
        && text(old, "volumeBindingMode").as_ref() != Some(&mode)
    {
        causes.push((
            "volumeBindingMode".into(),
            format!("Invalid value: {mode:?}: field is immutable"),
        ));
    }
}

/// A qualified name (`IsQualifiedName`): an optional DNS subdomain prefix and `/`, then
/// a name of at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
pub(crate) fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix
        && !is_subdomain(prefix)
    {
        return Err("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
    }
    if !name.is_empty() && is_label_value(name) {
        Ok(())
    } else {
        Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into())
    }
}

/// A label value (`IsValidLabelValue`): empty, or at most 63 alphanumerics, `-`, `_`
/// and `.`, alphanumeric at both ends (a qualified name's name part, but for empty).
pub(crate) fn is_label_value(value: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= 63
            && edge(value.chars().next())
            && edge(value.chars().last())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// What `IsValidLabelValue` says of a bad value.
pub(crate) const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// A Job's pods restart `OnFailure` or `Never`; `Always` (what pod-spec defaulting
/// gives a template that names none) is refused.
fn validate_job_restart_policy(object: &Value, pod: &str, at: &str, causes: &mut Vec<Cause>) {
    let policy = object
        .pointer(&format!("{pod}/restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !matches!(policy, "OnFailure" | "Never") {
        causes.push((
            format!("{at}.template.spec.restartPolicy"),
            format!("Unsupported value: {policy:?}: supported values: \"OnFailure\", \"Never\""),
        ));
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

/// Values the server allocated that an update leaves out are kept, as the Service REST
/// storage does (`patchAllocatedValues`): a Service's `clusterIP` and `clusterIPs`.
pub fn keep_allocated(res: &Resource, old: &Value, new: &mut Value) {
    let external =
        |v: &Value| v.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    if res.kind != "Service" || external(old) || external(new) {
        return;
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let unset = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    for field in ["clusterIP", "clusterIPs"] {
        if unset(spec.get(field))
            && let Some(v) = old.pointer(&format!("/spec/{field}"))
        {
            spec.insert(field.to_owned(), v.clone());
        }
    }
}

/// Status a controller would have written by now (claims: see `storage::settle`).
pub fn simulate_status(res: &Resource, object: &mut Value) {
    match res.kind {
        "Namespace" if object.pointer("/metadata/deletionTimestamp").is_none() => {
            object["status"] = json!({"phase": "Active"});
        }
        "CustomResourceDefinition" => {
            // Names are accepted at once; the kind is served once the establishing
            // controller marks it Established, on the controllers' next pass (as on a
            // real server, a client must wait for that before creating resources).
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
            let condition = |kind: &str, status: &str, reason: &str, message: &str| json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
            object["status"] = json!({
                "acceptedNames": names,
                "storedVersions": versions,
                "conditions": [
                    condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                    condition("Established", "False", "Installing", "the initial names have been accepted"),
                ],
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
