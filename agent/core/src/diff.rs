//! Three-way diff of one object: what gitsync applied last, what it renders now, and
//! what is live, with `kubectl apply --server-side` semantics.
//!
//! The last-applied state is gitsync's own `managedFields` entry on the live object. The
//! diff predicts the object a server-side apply of the desired manifest would leave (the
//! same merge the API server does, see [`crate::fields`]) and compares it with the live
//! object after [`normalize`]: so a field gitsync set before and no longer renders shows
//! as removed, a field someone else set is left alone, server-populated metadata and
//! `status` are ignored, and defaulted fields never show as changes.
//!
//! Secret values never leave this module in clear: [`normalize`] replaces each value of
//! `data`/`stringData` with a short hash. Pure: no I/O.

mod mask;

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use crate::fields::{self, FieldSet};
use crate::manifest::{ANNOTATION_REVISION, FIELD_MANAGER, Manifest, ObjectId, Source};
use crate::yaml;

pub use mask::{mask_secret, secret_values};

/// What a sync would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    /// An update that changes an immutable field: delete, then create.
    Replace,
    Prune,
    Unchanged,
}

impl Action {
    /// Lowercase name, as printed in diff headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Replace => "replace",
            Self::Prune => "prune",
            Self::Unchanged => "unchanged",
        }
    }
}

/// The diff of one object, with both sides normalized and secrets masked.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDiff {
    pub id: ObjectId,
    pub action: Action,
    /// Where the desired object was defined (absent for prunes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Live object as YAML (empty when it does not exist).
    pub before: String,
    /// Object after the sync as YAML (empty for prunes). Both are empty when the
    /// object is unchanged: there is nothing to show, and re-syncs stay cheap.
    pub after: String,
    /// For a replace: the immutable fields that change (see [`crate::immutable`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub immutable: Vec<String>,
}

impl ObjectDiff {
    /// Unified diff text (uncolored) of `before` → `after`, with `---`/`+++` headers
    /// naming the object; empty when unchanged.
    pub fn unified(&self) -> String {
        if self.action == Action::Unchanged {
            return String::new();
        }
        let name = self.id.short();
        TextDiff::from_lines(&self.before, &self.after)
            .unified_diff()
            .context_radius(3)
            .header(&format!("live/{name}"), &format!("desired/{name}"))
            .to_string()
    }
}

/// Diffs one object. `desired` absent means the object would be pruned; `live` absent
/// means it would be created.
pub fn object(desired: Option<&Manifest>, live: Option<&Value>) -> Option<ObjectDiff> {
    let (id, source) = match (desired, live) {
        (Some(m), _) => (m.id.clone(), Some(m.source.clone())),
        (None, Some(l)) => (ObjectId::of(l)?, None),
        (None, None) => return None,
    };
    let mut immutable = Vec::new();
    let (action, before, after) = match (desired, live) {
        (Some(m), None) => (
            Action::Create,
            Value::Null,
            normalize(&fold_string_data(&m.object)),
        ),
        (Some(m), Some(l)) => {
            let before = normalize(l);
            let after = normalize(&predict(&m.object, l));
            if before == after {
                return Some(ObjectDiff {
                    id,
                    action: Action::Unchanged,
                    source,
                    before: String::new(),
                    after: String::new(),
                    immutable,
                });
            }
            immutable = crate::immutable::changed(&id.kind, &before, &after);
            let action = if immutable.is_empty() {
                Action::Update
            } else {
                Action::Replace
            };
            (action, before, after)
        }
        (None, Some(l)) => (Action::Prune, normalize(l), Value::Null),
        (None, None) => return None,
    };
    Some(ObjectDiff {
        id,
        action,
        source,
        before: to_text(&before),
        after: to_text(&after),
        immutable,
    })
}

/// The object a server-side apply of `desired` by gitsync would leave, given `live`.
///
/// Fields gitsync owned (its `managedFields` Apply entry) and no longer renders are
/// removed unless another manager also owns them; everything else is the apply merge.
pub fn predict(desired: &Value, live: &Value) -> Value {
    let desired = fold_string_data(desired);
    let (ours, others) = ownership(live);
    let mut merged = fields::merge(live, &desired);
    let dropped = ours
        .difference(&FieldSet::from_applied(&desired))
        .difference(&others);
    fields::remove(&mut merged, &dropped);
    merged
}

/// gitsync's applied fields and everyone else's, from the live `managedFields`.
fn ownership(live: &Value) -> (FieldSet, FieldSet) {
    let mut ours = FieldSet::default();
    let mut others = FieldSet::default();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for entry in entries {
        let Some(set) = entry
            .get("fieldsV1")
            .and_then(|v| FieldSet::from_fields_v1(v).ok())
        else {
            continue;
        };
        let manager = entry.get("manager").and_then(Value::as_str);
        let operation = entry.get("operation").and_then(Value::as_str);
        if manager == Some(FIELD_MANAGER) && operation == Some("Apply") {
            ours = ours.union(&set);
        } else {
            others = others.union(&set);
        }
    }
    (ours, others)
}

/// A Secret's `stringData` written into `data` (base64), as the API server stores it.
fn fold_string_data(object: &Value) -> Value {
    let mut object = object.clone();
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return object;
    }
    let Some(map) = object.as_object_mut() else {
        return object;
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        use base64::Engine as _;
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (key, value) in string_data {
                let text = value.as_str().unwrap_or_default();
                let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                data.insert(key, Value::String(encoded));
            }
        }
    }
    object
}

/// Server-populated metadata that is never a change: identity the server assigns,
/// bookkeeping, and `status`.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The object as compared and shown: server-populated metadata and `status` removed,
/// the revision annotation removed (it changes with every commit without the object
/// changing), Secret values masked.
pub fn normalize(object: &Value) -> Value {
    let mut out = object.clone();
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    map.remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for key in SERVER_METADATA {
            meta.remove(*key);
        }
        if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
            annotations.remove(ANNOTATION_REVISION);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    mask_secret(&mut out);
    out
}

fn to_text(value: &Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        yaml::to_yaml(value)
    }
}

#[cfg(test)]
mod tests;
