//! `metadata.managedFields` bookkeeping: reading and writing the entries, and moving
//! ownership on updates (the updater takes the fields it changed from everyone else),
//! as the API server's field manager does.

use gitsync_core::fields::{self, FieldSet};
use serde_json::{Value, json};

/// One managedFields entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

/// The entries of an object (malformed ones are dropped).
pub fn read(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_owned(),
                operation: e.get("operation")?.as_str()?.to_owned(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("v1")
                    .to_owned(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                set: FieldSet::from_fields_v1(e.get("fieldsV1")?).ok()?,
            })
        })
        .collect()
}

/// Writes the entries (empty ones dropped) into the object.
pub fn write(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": e.set.to_fields_v1(),
            });
            if let Some(sub) = &e.subresource {
                v["subresource"] = Value::String(sub.clone());
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The object as ownership sees it: no apiVersion/kind, no server-owned metadata.
pub fn owned_view(object: &Value, with_status: bool) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if !with_status {
            map.remove("status");
        }
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for &k in fields::STRIPPED_METADATA {
                meta.remove(k);
            }
        }
    }
    v
}

/// Records an Update by `manager`: the fields that changed between `old` and `new` are
/// now its own and no one else's.
pub fn record_update(
    entries: &mut Vec<Entry>,
    manager: &str,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
    changed: &FieldSet,
) {
    if changed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.set = e.set.difference(changed);
    }
    let position = entries.iter().position(|e| {
        e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == subresource
    });
    match position {
        Some(i) => {
            entries[i].set = entries[i].set.union(changed);
            time.clone_into(&mut entries[i].time);
            api_version.clone_into(&mut entries[i].api_version);
        }
        None => entries.push(Entry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version: api_version.to_owned(),
            time: time.to_owned(),
            subresource: subresource.map(str::to_owned),
            set: changed.clone(),
        }),
    }
    entries.retain(|e| !e.set.is_empty());
}

/// Fields that differ between two objects, as ownership records them.
pub fn changed_fields(old: Option<&Value>, new: &Value, with_status: bool) -> FieldSet {
    let new_view = owned_view(new, with_status);
    match old {
        Some(old) => fields::changed(&owned_view(old, with_status), &new_view),
        None => FieldSet::from_applied(new),
    }
}
