//! Which StorageClass a PersistentVolumeClaim binds through, and whether that class
//! waits for the first consumer (`volumeBindingMode: WaitForFirstConsumer`): such a
//! claim stays Pending until a pod that uses it is scheduled, so a sync must not hold
//! the claim's wave for it. Pure: the caller reads the StorageClasses (and falls back
//! to waiting for the claim to be bound when it cannot).

use gitsync_core::manifest::annotation;
use serde_json::Value;

/// The annotation that marks the cluster's default class, and its beta spelling the
/// API server still honours.
const DEFAULT_CLASS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// The class `claim` binds through, among `classes` (StorageClass objects):
/// `spec.storageClassName` when set (an empty name asks for no class: `None`), else the
/// default class; with several defaults, the newest, as the API server's admission
/// picks it (then the first by name, for a stable answer).
pub fn of_claim<'a>(claim: &Value, classes: &'a [Value]) -> Option<&'a Value> {
    match claim.pointer("/spec/storageClassName") {
        Some(Value::String(name)) if name.is_empty() => None,
        Some(Value::String(name)) => classes.iter().find(|c| text(c, "/metadata/name") == name),
        _ => classes.iter().filter(|c| is_default(c)).max_by(|a, b| {
            let created = "/metadata/creationTimestamp";
            text(a, created)
                .cmp(text(b, created))
                .then_with(|| text(b, "/metadata/name").cmp(text(a, "/metadata/name")))
        }),
    }
}

/// True when `claim` binds through a class of `classes` that waits for the first
/// consumer. False when its class is not among them (the claim then waits to be bound,
/// as without this check).
pub fn waits_for_first_consumer(claim: &Value, classes: &[Value]) -> bool {
    of_claim(claim, classes)
        .is_some_and(|class| text(class, "/volumeBindingMode") == "WaitForFirstConsumer")
}

fn is_default(class: &Value) -> bool {
    DEFAULT_CLASS
        .iter()
        .any(|key| annotation(class, key) == Some("true"))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, mode: Option<&str>, default: Option<&str>, created: &str) -> Value {
        let mut c = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "creationTimestamp": created},
            "provisioner": "example.com/disk"});
        if let Some(mode) = mode {
            c["volumeBindingMode"] = json!(mode);
        }
        if let Some(annotation) = default {
            c["metadata"]["annotations"] = json!({annotation: "true"});
        }
        c
    }

    fn claim(class: Option<&str>) -> Value {
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "demo"},
            "spec": {"accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Pending"}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    }

    fn name(class: Option<&Value>) -> Option<&str> {
        class.map(|c| text(c, "/metadata/name"))
    }

    const DEFAULT: Option<&str> = Some("storageclass.kubernetes.io/is-default-class");
    const BETA: Option<&str> = Some("storageclass.beta.kubernetes.io/is-default-class");
    const WFFC: Option<&str> = Some("WaitForFirstConsumer");

    #[test]
    fn a_named_class_is_the_one_with_that_name() {
        let classes = [
            class("fast", WFFC, None, "2026-01-01T00:00:00Z"),
            class(
                "standard",
                Some("Immediate"),
                DEFAULT,
                "2026-01-01T00:00:00Z",
            ),
        ];
        assert_eq!(name(of_claim(&claim(Some("fast")), &classes)), Some("fast"));
        assert!(waits_for_first_consumer(&claim(Some("fast")), &classes));
        assert!(!waits_for_first_consumer(
            &claim(Some("standard")),
            &classes
        ));
        // A class the cluster does not have: none (the claim waits to be bound).
        assert_eq!(of_claim(&claim(Some("gone")), &classes), None);
        assert!(!waits_for_first_consumer(&claim(Some("gone")), &classes));
    }

    #[test]
    fn an_empty_class_name_asks_for_no_class_not_the_default() {
        let classes = [class("local", WFFC, DEFAULT, "2026-01-01T00:00:00Z")];
        assert_eq!(of_claim(&claim(Some("")), &classes), None);
        assert!(!waits_for_first_consumer(&claim(Some("")), &classes));
    }

    #[test]
    fn without_a_name_the_default_class_counts_the_newest_of_several() {
        let classes = [
            class(
                "old-default",
                Some("Immediate"),
                DEFAULT,
                "2025-01-01T00:00:00Z",
            ),
            class("plain", WFFC, None, "2026-06-01T00:00:00Z"),
            class("new-default", WFFC, BETA, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(name(of_claim(&claim(None), &classes)), Some("new-default"));
        assert!(waits_for_first_consumer(&claim(None), &classes));

        let tie = [
            class("b", WFFC, DEFAULT, "2026-01-01T00:00:00Z"),
            class("a", Some("Immediate"), DEFAULT, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(name(of_claim(&claim(None), &tie)), Some("a"));
    }

    #[test]
    fn no_default_or_no_classes_means_waiting_to_be_bound() {
        let not_default = [class("fast", WFFC, None, "2026-01-01T00:00:00Z")];
        assert_eq!(of_claim(&claim(None), &not_default), None);
        assert!(!waits_for_first_consumer(&claim(None), &not_default));
        assert!(!waits_for_first_consumer(&claim(Some("fast")), &[]));
        let mut off = class("fast", WFFC, None, "2026-01-01T00:00:00Z");
        off["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "false"});
        assert!(!waits_for_first_consumer(&claim(None), &[off]));
    }

    #[test]
    fn the_binding_mode_defaults_to_immediate() {
        let classes = [class("std", None, DEFAULT, "2026-01-01T00:00:00Z")];
        assert_eq!(name(of_claim(&claim(None), &classes)), Some("std"));
        assert!(!waits_for_first_consumer(&claim(None), &classes));
    }
}
