//! Deletion as the API server and its controllers do it.
//!
//! - An object with `metadata.finalizers` is not removed: it gets `deletionTimestamp`
//!   and stays until the last finalizer is taken off (by an update), then goes.
//! - `propagationPolicy` decides what happens to dependents (objects whose
//!   `ownerReferences` name the deleted object's uid): `Background` (the default)
//!   removes the owner now and the garbage collector deletes dependents left without
//!   any live owner; `Foreground` keeps the owner (finalizer `foregroundDeletion`) until
//!   its blocking dependents are gone, deleting them in foreground too; `Orphan` keeps
//!   the owner (finalizer `orphan`) until the dependents' references to it are removed.
//! - A Namespace turns `Terminating`; its contents are deleted, and the Namespace goes
//!   once they are all gone (contents with finalizers hold it). Nothing new may be
//!   created in it meanwhile.
//!
//! The garbage collector and namespace controller run synchronously after each delete
//! or finalizer change (`settle`), so their effects are visible as soon as the request
//! returns — sooner than on a real cluster, never differently.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::clock;
use crate::status::ApiError;
use crate::store::{Facts, Key, Store};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    Orphan,
    #[default]
    Background,
    Foreground,
}

impl Propagation {
    /// The `propagationPolicy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "Orphan",
            Self::Background => "Background",
            Self::Foreground => "Foreground",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "Orphan" => Ok(Self::Orphan),
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }
}

/// The body and query of a DELETE (`DeleteOptions`).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// What a delete did.
#[derive(Debug)]
pub enum Outcome {
    /// Removed; the object as it was.
    Deleted(Value),
    /// Held by finalizers (or a terminating namespace's contents); the object now.
    Pending(Value),
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

pub fn is_terminating(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `metadata.finalizers`.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(object: &mut Value, list: &[String]) {
    if list.is_empty() {
        if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        object["metadata"]["finalizers"] = json!(list);
    }
}

fn io(e: &std::io::Error) -> ApiError {
    ApiError::internal(&e.to_string())
}

/// DELETE of the object at `key` (which exists).
pub fn delete(
    store: &mut Store,
    key: &Key,
    options: &DeleteOptions,
    dry_run: bool,
) -> Result<Outcome, ApiError> {
    let object = store
        .get(key)
        .ok_or_else(|| ApiError::internal("delete of a missing object"))?;
    check_preconditions(key, &object, options)?;
    let outcome = mark(
        store,
        key,
        &object,
        options.propagation.unwrap_or_default(),
        dry_run,
    )?;
    if dry_run {
        return Ok(outcome);
    }
    settle(store)?;
    Ok(match store.get(key) {
        Some(now) if meta_str(&now, "uid") == meta_str(&object, "uid") => Outcome::Pending(now),
        _ => Outcome::Deleted(object),
    })
}

fn check_preconditions(key: &Key, object: &Value, options: &DeleteOptions) -> Result<(), ApiError> {
    let failed = |what: &str, wanted: &str, actual: &str| {
        Err(ApiError::conflict_message(
            &key.group,
            &key.plural,
            &key.name,
            format!(
                "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
            ),
        ))
    };
    if let Some(uid) = &options.precondition_uid {
        let actual = meta_str(object, "uid").unwrap_or_default();
        if uid != actual {
            return failed("UID", uid, actual);
        }
    }
    if let Some(rv) = &options.precondition_resource_version {
        let actual = meta_str(object, "resourceVersion").unwrap_or_default();
        if rv != actual {
            return failed("ResourceVersion", rv, actual);
        }
    }
    Ok(())
}

/// Removes the object, or marks it terminating when something must happen first.
fn mark(
    store: &mut Store,
    key: &Key,
    object: &Value,
    policy: Propagation,
    dry_run: bool,
) -> Result<Outcome, ApiError> {
    if is_terminating(object) {
        return Ok(Outcome::Pending(object.clone()));
    }
    let mut list = finalizers(object);
    let extra = match policy {
        Propagation::Orphan => Some(ORPHAN),
        Propagation::Foreground => Some(FOREGROUND),
        Propagation::Background => None,
    };
    if let Some(f) = extra
        && !list.iter().any(|x| x == f)
    {
        list.push(f.to_owned());
    }
    if list.is_empty() && !key.is_namespace() {
        if !dry_run {
            store.remove(key).map_err(|e| io(&e))?;
        }
        return Ok(Outcome::Deleted(object.clone()));
    }
    let mut marked = object.clone();
    marked["metadata"]["deletionTimestamp"] = json!(clock::now_rfc3339());
    marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    set_finalizers(&mut marked, &list);
    if key.is_namespace() {
        marked["status"]["phase"] = json!("Terminating");
    }
    if !dry_run {
        marked = store
            .put_versioned(key.clone(), marked)
            .map_err(|e| io(&e))?
            .clone();
    }
    Ok(Outcome::Pending(marked))
}

/// Runs the garbage collector and namespace controller until nothing changes.
pub fn settle(store: &mut Store) -> Result<(), ApiError> {
    // Each round removes or rewrites at least one object, so this terminates; the bound
    // is a guard against a bug looping forever.
    for _ in 0..10_000 {
        if !round(store)? {
            return Ok(());
        }
    }
    Err(ApiError::internal("garbage collection did not settle"))
}

/// Copies of the stored objects whose key and facts pass `keep` (collection looks at
/// a few, and parses only those).
fn pick(store: &Store, keep: impl Fn(&Key, &Facts) -> bool) -> Vec<(Key, Value)> {
    store
        .facts()
        .filter(|(k, f)| keep(k, f))
        .map(|(k, _)| k.clone())
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|k| store.get(&k).map(|v| (k, v)))
        .collect()
}

/// One pass; true when it changed something.
fn round(store: &mut Store) -> Result<bool, ApiError> {
    let uids: HashSet<String> = store.facts().map(|(_, f)| String::from(&*f.uid)).collect();
    let terminating = pick(store, |_, f| f.terminating);
    let dependents = pick(store, |_, f| !f.owners.is_empty());
    let dependents_of = |uid: &str| -> Vec<&(Key, Value)> {
        dependents
            .iter()
            .filter(|(_, v)| owner_uids(v).any(|o| o == uid))
            .collect()
    };
    for (key, object) in &terminating {
        let uid = meta_str(object, "uid").unwrap_or_default();
        let mut list = finalizers(object);
        let before = list.len();
        if list.iter().any(|f| f == ORPHAN) {
            for (dep_key, dep) in dependents_of(uid) {
                let mut dep = dep.clone();
                drop_owner_refs(&mut dep, |o| o == uid);
                write(store, dep_key, dep)?;
            }
            list.retain(|f| f != ORPHAN);
        }
        if list.iter().any(|f| f == FOREGROUND) {
            let dependents = dependents_of(uid);
            for (dep_key, dep) in &dependents {
                mark(store, dep_key, dep, Propagation::Foreground, false)?;
            }
            let blocking = dependents.iter().any(|(_, d)| blocks_owner(d, uid));
            if !blocking {
                list.retain(|f| f != FOREGROUND);
            }
        }
        let mut held = false;
        if key.is_namespace() {
            for (inner_key, inner) in pick(store, |k, _| k.namespace == key.name) {
                held = true;
                if !is_terminating(&inner) {
                    mark(store, &inner_key, &inner, Propagation::Background, false)?;
                }
            }
        }
        if list.is_empty() && !held {
            store.remove(key).map_err(|e| io(&e))?;
            return Ok(true);
        }
        if list.len() != before {
            let mut object = object.clone();
            set_finalizers(&mut object, &list);
            write(store, key, object)?;
            return Ok(true);
        }
    }
    // Dependents whose owners are gone: deleted when no owner is left, else the
    // dangling references are dropped.
    for (key, object) in &dependents {
        let owners: Vec<&str> = owner_uids(object).collect();
        if owners.iter().all(|o| uids.contains(*o)) || is_terminating(object) {
            continue;
        }
        if owners.iter().all(|o| !uids.contains(*o)) {
            mark(store, key, object, Propagation::Background, false)?;
        } else {
            let mut object = object.clone();
            drop_owner_refs(&mut object, |o| !uids.contains(o));
            write(store, key, object)?;
        }
        return Ok(true);
    }
    Ok(false)
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

fn blocks_owner(dependent: &Value, owner_uid: &str) -> bool {
    dependent
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| {
            r.get("uid").and_then(Value::as_str) == Some(owner_uid)
                && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
        })
}

fn drop_owner_refs(object: &mut Value, drop: impl Fn(&str) -> bool) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Array(refs)) = meta.get_mut("ownerReferences") {
        refs.retain(|r| !r.get("uid").and_then(Value::as_str).is_some_and(&drop));
        if refs.is_empty() {
            meta.remove("ownerReferences");
        }
    }
}

/// A controller's write: new resourceVersion, stored, watchers told.
fn write(store: &mut Store, key: &Key, object: Value) -> Result<(), ApiError> {
    store
        .put_versioned(key.clone(), object)
        .map(|_| ())
        .map_err(|e| io(&e))
}
