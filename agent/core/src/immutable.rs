//! Fields the API server refuses to change after creation, and which of them a planned
//! update would change.
//!
//! An update that touches one of these cannot be applied: the object must be deleted
//! and created again (a *replace*). The plan marks such updates, and a sync performs
//! the replace only when the object opts in with `gitsync.dev/replace: "true"`.
//!
//! The list follows the API server's validation for the kinds gitsync handles:
//! workload selectors, a Service's `clusterIP`, a Job's template and selector, a
//! StatefulSet's identity fields, a PersistentVolumeClaim's spec apart from its
//! requested storage, and the data of a ConfigMap or Secret marked `immutable`. Pure.

use serde_json::Value;

/// The immutable fields (as `.spec.selector` paths) whose value differs between the
/// `live` object and the `after` object a sync would leave.
pub fn changed(kind: &str, live: &Value, after: &Value) -> Vec<String> {
    let differs = |pointer: &str| live.pointer(pointer) != after.pointer(pointer);
    let mut fields: Vec<String> = paths(kind)
        .iter()
        .filter(|p| differs(p))
        .map(|p| dotted(p))
        .collect();
    match kind {
        "Service" => {
            // The server assigns clusterIP; a render that leaves it out keeps it.
            let ip = |o: &Value| {
                o.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .filter(|ip| !ip.is_empty())
                    .map(str::to_owned)
            };
            if let (Some(a), Some(b)) = (ip(live), ip(after))
                && a != b
            {
                fields.push(".spec.clusterIP".into());
            }
        }
        "PersistentVolumeClaim" => {
            let spec = |o: &Value| {
                let mut spec = o.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(requests) = spec
                    .pointer_mut("/resources/requests")
                    .and_then(Value::as_object_mut)
                {
                    requests.remove("storage");
                }
                if let Some(map) = spec.as_object_mut() {
                    // Set by the binder and by the volume attributes class controller.
                    map.remove("volumeName");
                    map.remove("volumeAttributesClassName");
                }
                spec
            };
            if spec(live) != spec(after) {
                fields.push(".spec (apart from resources.requests.storage)".into());
            }
        }
        "ConfigMap" | "Secret" if live.get("immutable") == Some(&Value::Bool(true)) => {
            for key in ["data", "binaryData", "stringData"] {
                if live.get(key) != after.get(key) {
                    fields.push(format!(".{key} (the object is immutable)"));
                }
            }
        }
        _ => {}
    }
    fields
}

/// JSON pointers of the fields immutable for a kind (beyond the special cases above).
fn paths(kind: &str) -> &'static [&'static str] {
    match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => &["/spec/selector"],
        "StatefulSet" => &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/podManagementPolicy",
        ],
        "Job" => &["/spec/selector", "/spec/template", "/spec/completionMode"],
        _ => &[],
    }
}

fn dotted(pointer: &str) -> String {
    pointer.replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_selector_change_is_immutable_but_image_is_not() {
        let live = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        let mut after = live.clone();
        after["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(changed("Deployment", &live, &after).is_empty());
        after["spec"]["selector"]["matchLabels"]["app"] = json!("b");
        assert_eq!(changed("Deployment", &live, &after), [".spec.selector"]);
    }

    #[test]
    fn service_cluster_ip_only_when_both_sides_set_it() {
        let live = json!({"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}});
        let same = json!({"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 81}]}});
        assert!(changed("Service", &live, &same).is_empty());
        let other = json!({"spec": {"clusterIP": "10.96.0.11"}});
        assert_eq!(changed("Service", &live, &other), [".spec.clusterIP"]);
    }

    #[test]
    fn pvc_storage_request_may_change_but_access_modes_may_not() {
        let live = json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-1",
            "resources": {"requests": {"storage": "1Gi"}}}});
        let mut after = live.clone();
        after["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(changed("PersistentVolumeClaim", &live, &after).is_empty());
        after["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(changed("PersistentVolumeClaim", &live, &after).len(), 1);
    }

    #[test]
    fn job_template_and_immutable_config_maps() {
        let live =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
        let after =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}}});
        assert_eq!(changed("Job", &live, &after), [".spec.template"]);

        let cm = json!({"immutable": true, "data": {"k": "1"}});
        let edited = json!({"immutable": true, "data": {"k": "2"}});
        assert_eq!(changed("ConfigMap", &cm, &edited).len(), 1);
        let mutable = json!({"data": {"k": "1"}});
        assert!(changed("ConfigMap", &mutable, &edited).is_empty());
    }
}
