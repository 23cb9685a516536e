//! StorageClasses and the claims that use them, as the API server's storage admission
//! plugins and the PersistentVolume controller treat them:
//!
//! - **DefaultStorageClass** (on create): a claim that names no class gets the default
//!   one's (annotated `storageclass.kubernetes.io/is-default-class: "true"`; the
//!   newest, then the first by name, when several are).
//! - **PersistentVolumeClaimResize** (on update): a bigger `resources.requests.storage`
//!   only for a bound claim whose class has `allowVolumeExpansion: true` (403 otherwise).
//! - **Binding** (the controller, every tick, and at once on a write): a claim of an
//!   `Immediate` class is provisioned and bound; one of a `WaitForFirstConsumer` class
//!   stays `Pending` until a Pod mounts it (`spec.volumes[].persistentVolumeClaim`),
//!   then binds on the node the Pod runs on; one whose class does not exist, or with no
//!   class at all, stays `Pending`. Each wait is an Event with the reason and message
//!   the real controller records. A claim created before any default class existed
//!   gets the default's name once one does (retroactive default class assignment).
//!
//! Provisioning is instant and never fails, and no PersistentVolume objects are served:
//! a bound claim names the volume (`pvc-<uid>`) the provisioner would have made.

mod quantity;

pub use quantity::of as quantity;

use serde_json::{Value, json};

use crate::events::{self, Note, Type};
use crate::status::ApiError;
use crate::store::{Key, Store};

/// The annotation that makes a class the default.
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The class a claim asked for before `spec.storageClassName` existed.
const BETA_CLAIM_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
const GROUP: &str = "storage.k8s.io";
const PLURAL: &str = "storageclasses";
/// The default class's provisioner, and the node every pod runs on.
const PROVISIONER: &str = "local-cluster.gitsync.dev/hostpath";
const NODE: &str = "local-node";
const CONTROLLER: &str = "persistentvolume-controller";

/// The class every fresh cluster has, as minikube's `standard`. It binds claims
/// `Immediate`ly, unlike kind's `WaitForFirstConsumer` default: a claim on its own is
/// `Bound` at once, so an app whose claim sits in an early wave (or with no Pod
/// mounting it) syncs healthy, as it always has on the local cluster. It allows
/// expansion, as the cloud providers' default classes do, so a claim grown in Git
/// resizes; tests of the other modes create their own classes.
pub fn standard_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    })
}

fn class_key(name: &str) -> Key {
    Key {
        group: GROUP.into(),
        plural: PLURAL.into(),
        namespace: String::new(),
        name: name.to_owned(),
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn annotation<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// The default class (`GetDefaultClass`): of the classes annotated as default, the
/// newest; between equally new ones, the first by name.
pub fn default_class(store: &Store) -> Option<Value> {
    let mut defaults: Vec<Value> = store
        .list(GROUP, PLURAL, None)
        .filter(|c| {
            annotation(c, DEFAULT_CLASS) == Some("true")
                || annotation(c, BETA_DEFAULT_CLASS) == Some("true")
        })
        .collect();
    let created = |c: &Value| {
        crate::clock::parse_rfc3339(text(c, "/metadata/creationTimestamp")).unwrap_or(0)
    };
    defaults.sort_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| text(a, "/metadata/name").cmp(text(b, "/metadata/name")))
    });
    defaults.into_iter().next()
}

/// True when the claim asked for a class, even `""` (no class).
fn names_class(claim: &Value) -> bool {
    claim
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
        || annotation(claim, BETA_CLAIM_CLASS).is_some()
}

/// The claim's class (`""`: none).
fn class_of(claim: &Value) -> &str {
    claim
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .or_else(|| annotation(claim, BETA_CLAIM_CLASS))
        .unwrap_or_default()
}

/// DefaultStorageClass: a claim created without a class gets the default's name.
pub fn admit_create(store: &Store, claim: &mut Value) {
    if names_class(claim) {
        return;
    }
    let Some(class) = default_class(store) else {
        return;
    };
    if let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("storageClassName".into(), class["metadata"]["name"].clone());
    }
}

/// PersistentVolumeClaimResize: growing the requested storage needs a bound claim and
/// a class (the same before and after) that allows expansion; 403 Forbidden otherwise.
pub fn admit_update(store: &Store, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let size = |c: &Value| quantity::of(c.pointer("/spec/resources/requests/storage"));
    let (Some(after), before) = (size(new), size(old)) else {
        return Ok(());
    };
    if before.is_some_and(|b| after <= b) {
        return Ok(());
    }
    let forbidden = |message: &str| {
        Err(ApiError::forbidden(
            "",
            "persistentvolumeclaims",
            name,
            message,
        ))
    };
    if text(old, "/status/phase") != "Bound" {
        return forbidden("Only bound persistent volume claims can be expanded");
    }
    let class = class_of(new);
    let allowed = !class.is_empty()
        && class == class_of(old)
        && store
            .get(&class_key(class))
            .is_some_and(|c| c["allowVolumeExpansion"] == true);
    if allowed {
        Ok(())
    } else {
        forbidden(
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        )
    }
}

/// What the controller does with an unbound claim.
enum Decision {
    Bind(Value),
    Wait(Option<Note>),
}

fn decide(store: &Store, claim: &Value) -> Decision {
    if !text(claim, "/spec/volumeName").is_empty() {
        // Asks for a PersistentVolume of its own, and none exist here.
        return Decision::Wait(None);
    }
    let name = class_of(claim);
    if name.is_empty() {
        return Decision::Wait(Some(Note {
            kind: Type::Normal,
            reason: "FailedBinding",
            message: "no persistent volumes available for this claim and no storage class is set"
                .into(),
        }));
    }
    let Some(class) = store.get(&class_key(name)) else {
        return Decision::Wait(Some(Note {
            kind: Type::Warning,
            reason: "ProvisioningFailed",
            message: format!("storageclass.storage.k8s.io {name:?} not found"),
        }));
    };
    if class["volumeBindingMode"] == "WaitForFirstConsumer" && !has_consumer(store, claim) {
        return Decision::Wait(Some(Note {
            kind: Type::Normal,
            reason: "WaitForFirstConsumer",
            message: "waiting for first consumer to be created before binding".into(),
        }));
    }
    Decision::Bind(class)
}

/// A running (or starting) Pod in the claim's namespace mounts it.
fn has_consumer(store: &Store, claim: &Value) -> bool {
    let name = text(claim, "/metadata/name");
    store
        .list("", "pods", Some(text(claim, "/metadata/namespace")))
        .filter(|p| {
            !crate::deletion::is_terminating(p)
                && !matches!(text(p, "/status/phase"), "Succeeded" | "Failed")
        })
        .any(|p| {
            p.pointer("/spec/volumes")
                .and_then(Value::as_array)
                .is_some_and(|volumes| {
                    volumes
                        .iter()
                        .any(|v| text(v, "/persistentVolumeClaim/claimName") == name)
                })
        })
}

/// Provisions and binds: the volume's name in the spec, the binder's annotations, and
/// a `Bound` status with the requested size.
fn bind(claim: &mut Value, class: &Value) {
    let uid = text(claim, "/metadata/uid").to_owned();
    let provisioner = class["provisioner"].clone();
    let wait = class["volumeBindingMode"] == "WaitForFirstConsumer";
    if let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("volumeName".into(), json!(format!("pvc-{uid}")));
    }
    if let Some(meta) = claim.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert("pv.kubernetes.io/bind-completed".into(), json!("yes"));
            a.insert("pv.kubernetes.io/bound-by-controller".into(), json!("yes"));
            a.insert(
                "volume.beta.kubernetes.io/storage-provisioner".into(),
                provisioner.clone(),
            );
            a.insert(
                "volume.kubernetes.io/storage-provisioner".into(),
                provisioner,
            );
            if wait {
                // The scheduler's choice, which a delayed binding provisions on.
                a.insert("volume.kubernetes.io/selected-node".into(), json!(NODE));
            }
        }
    }
    claim["status"] = bound_status(claim);
}

fn bound_status(claim: &Value) -> Value {
    let storage = claim
        .pointer("/spec/resources/requests/storage")
        .cloned()
        .unwrap_or(json!("1Gi"));
    let modes = claim
        .pointer("/spec/accessModes")
        .cloned()
        .unwrap_or(json!(["ReadWriteOnce"]));
    json!({"phase": "Bound", "accessModes": modes, "capacity": {"storage": storage}})
}

/// Binds an unbound claim if it can, else marks it `Pending`; what to record about
/// the wait, if anything.
fn bind_or_wait(store: &Store, claim: &mut Value) -> Option<Note> {
    match decide(store, claim) {
        Decision::Bind(class) => {
            bind(claim, &class);
            None
        }
        Decision::Wait(note) => {
            claim["status"] = json!({"phase": "Pending"});
            note
        }
    }
}

/// A claim's status as it is written: a bound claim stays bound, its capacity
/// following an expansion at once; an unbound one binds now if it can, else `Pending`.
pub fn settle(store: &Store, claim: &mut Value) {
    if text(claim, "/status/phase") == "Bound" {
        claim["status"] = bound_status(claim);
    } else {
        // The controller's pass records why it waits.
        bind_or_wait(store, claim);
    }
}

/// The PersistentVolume controller's pass: unbound claims get the default class if
/// they name none, bind when they can, and say why they wait.
pub fn reconcile(store: &mut Store, now_ms: u64) -> std::io::Result<()> {
    let claims: Vec<Value> = store
        .list("", "persistentvolumeclaims", None)
        .filter(|c| {
            text(c, "/status/phase") != "Bound"
                && text(c, "/status/phase") != "Lost"
                && !crate::deletion::is_terminating(c)
        })
        .collect();
    for claim in claims {
        let mut next = claim.clone();
        admit_create(store, &mut next);
        if let Some(note) = bind_or_wait(store, &mut next) {
            events::record(store, &next, CONTROLLER, &note, now_ms)?;
        }
        if next != claim {
            let key = Key {
                group: String::new(),
                plural: "persistentvolumeclaims".into(),
                namespace: text(&claim, "/metadata/namespace").to_owned(),
                name: text(&claim, "/metadata/name").to_owned(),
            };
            store.put_versioned(key, next)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
