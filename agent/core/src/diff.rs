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

    /// What was done, as progress lines and Events say it (`created`, `pruned`).
    pub fn past_tense(self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Update => "updated",
            Self::Replace => "replaced",
            Self::Prune => "pruned",
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
    /// Takes `server`, the API server's answer to a dry-run apply of the desired
    /// object, as what the sync would leave: the update is [`Action::Unchanged`] when
    /// that equals the live object (what the prediction changed, a mutating admission
    /// webhook sets back: an image rewritten to a mirror, an injected default), and the
    /// after side is the server's own otherwise. Only updates are confirmed.
    pub fn confirm(&mut self, server: &Value) {
        if self.action != Action::Update {
            return;
        }
        let after = to_text(&normalize(server));
        if after == self.before {
            self.settle();
        } else {
            self.after = after;
        }
    }

    /// Whether [`confirm`](Self::confirm) with `server` would make this update
    /// unchanged (the diff itself left as it is).
    pub fn settled_by(&self, server: &Value) -> bool {
        self.action == Action::Update && to_text(&normalize(server)) == self.before
    }

    /// Marks an update found to change nothing: unchanged, with nothing to show.
    pub fn settle(&mut self) {
        self.action = Action::Unchanged;
        self.before.clear();
        self.after.clear();
    }

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
    let (before, after) = match (desired, live) {
        (Some(m), None) => (Value::Null, normalize(&fold_string_data(&m.object))),
        (Some(m), Some(l)) if certainly_unchanged(&m.object, l) => (Value::Null, Value::Null),
        (Some(m), Some(l)) => (normalize(l), normalize(&predict(&m.object, l))),
        (None, Some(l)) => (normalize(l), Value::Null),
        (None, None) => return None,
    };
    let mut immutable = Vec::new();
    let action = match (desired, live) {
        (_, None) => Action::Create,
        (None, _) => Action::Prune,
        _ if before == after => Action::Unchanged,
        _ => {
            immutable = crate::immutable::changed(&id.kind, &before, &after);
            if immutable.is_empty() {
                Action::Update
            } else {
                Action::Replace
            }
        }
    };
    let text = |value: &Value| match action {
        Action::Unchanged => String::new(),
        _ => to_text(value),
    };
    Some(ObjectDiff {
        before: text(&before),
        after: text(&after),
        id,
        action,
        source,
        immutable,
    })
}

/// True when a server-side apply of `desired` certainly changes nothing that is
/// compared: the merge keeps every field `desired` sets (but the revision annotation,
/// server metadata and `status`, which are not compared), and gitsync owns no field
/// `desired` no longer sets, so the apply removes nothing. Allocates only the applied
/// field set. `false` means "maybe": [`predict`] decides.
fn certainly_unchanged(desired: &Value, live: &Value) -> bool {
    let (Some(d), Some(l)) = (desired.as_object(), live.as_object()) else {
        return false;
    };
    // A Secret's stringData lands in data: only the full prediction folds it.
    if d.contains_key("stringData") {
        return false;
    }
    let keeps =
        |live: &serde_json::Map<String, Value>, key: &str, config: &Value| match live.get(key) {
            None => config.is_null(),
            Some(value) => !config.is_null() && fields::merge_keeps(value, config, key),
        };
    let metadata_keeps = |config: &Value| {
        let (Some(config), Some(live)) = (
            config.as_object(),
            l.get("metadata").and_then(Value::as_object),
        ) else {
            return false;
        };
        config.iter().all(|(key, value)| match key.as_str() {
            k if SERVER_METADATA.contains(&k) => true,
            "annotations" => {
                let (Some(config), Some(live)) = (
                    value.as_object(),
                    live.get("annotations").and_then(Value::as_object),
                ) else {
                    return false;
                };
                config
                    .iter()
                    .all(|(k, v)| k == ANNOTATION_REVISION || keeps(live, k, v))
            }
            _ => keeps(live, key, value),
        })
    };
    d.iter().all(|(key, value)| match key.as_str() {
        "status" => true,
        "metadata" => metadata_keeps(value),
        _ => keeps(l, key, value),
    }) && owns_only_applied(desired, live)
}

/// True when every field gitsync's Apply entries own on `live` is one `desired` sets.
fn owns_only_applied(desired: &Value, live: &Value) -> bool {
    let mut ours = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|entry| is_ours(entry))
        .peekable();
    if ours.peek().is_none() {
        return true;
    }
    let applied = FieldSet::from_applied(desired);
    ours.all(|entry| {
        entry
            .get("fieldsV1")
            .is_some_and(|v1| applied.covers_fields_v1(v1))
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

/// True when `server`, the API server's answer to a dry-run apply, leaves `live` as it
/// is (compared as diffs compare: server metadata, `status` and the revision annotation
/// aside): the apply would change nothing, whatever the prediction said.
pub fn settles(live: &Value, server: &Value) -> bool {
    normalize(live) == normalize(server)
}

/// True for a `managedFields` entry of gitsync's server-side applies.
pub(crate) fn is_ours(entry: &Value) -> bool {
    entry.get("manager").and_then(Value::as_str) == Some(FIELD_MANAGER)
        && entry.get("operation").and_then(Value::as_str) == Some("Apply")
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
        if is_ours(entry) {
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
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out: serde_json::Map<String, Value> = map
        .iter()
        .filter(|(key, _)| *key != "status" && *key != "metadata")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if let Some(meta) = map.get("metadata") {
        out.insert("metadata".into(), normalize_metadata(meta));
    }
    let mut out = Value::Object(out);
    mask_secret(&mut out);
    out
}

/// Metadata without what the server populates and without the revision annotation
/// (and without `annotations` when nothing else is left in it).
fn normalize_metadata(meta: &Value) -> Value {
    let Some(meta) = meta.as_object() else {
        return meta.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in meta {
        if SERVER_METADATA.contains(&key.as_str()) {
            continue;
        }
        if key == "annotations"
            && let Some(annotations) = value.as_object()
        {
            let kept: serde_json::Map<String, Value> = annotations
                .iter()
                .filter(|(k, _)| *k != ANNOTATION_REVISION)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !kept.is_empty() {
                out.insert(key.clone(), Value::Object(kept));
            }
            continue;
        }
        out.insert(key.clone(), value.clone());
    }
    Value::Object(out)
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
