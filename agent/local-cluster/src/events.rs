//! Events as the simulated controllers record them (core `v1` Events, what `kubectl
//! describe` lists under "Events:"). An event is recorded once per object and reason:
//! a real recorder aggregates the repeats of a periodic resync into a count, which
//! nothing here needs.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::clock;
use crate::store::{Key, Store};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: Type,
    pub reason: &'static str,
    pub message: String,
}

/// Records `note` about the namespaced `object` (of `api_version`/`kind`) as
/// `component`, unless an event with that reason and message is already recorded for
/// this object.
pub fn record(
    store: &mut Store,
    object: &Value,
    component: &str,
    note: &Note,
    now_ms: u64,
) -> std::io::Result<()> {
    let meta = &object["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (name, namespace, uid) = (
        text(&meta["name"]),
        text(&meta["namespace"]),
        text(&meta["uid"]),
    );
    // Real event names are `<object>.<hex>`; a digest of what is recorded keeps them
    // unique per object, reason and message, so a repeat finds the first.
    let digest = hex::encode(Sha256::digest(
        format!("{uid}/{}/{}", note.reason, note.message).as_bytes(),
    ));
    let key = Key {
        group: String::new(),
        plural: "events".into(),
        namespace: namespace.clone(),
        name: format!("{name}.{}", &digest[..16]),
    };
    if store.contains(&key) || namespace.is_empty() {
        return Ok(());
    }
    let now = clock::rfc3339(now_ms / 1000);
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": key.name, "namespace": namespace,
            "uid": clock::uid(&key.name), "creationTimestamp": now},
        "involvedObject": {"apiVersion": object["apiVersion"], "kind": object["kind"],
            "namespace": namespace, "name": name, "uid": uid,
            "resourceVersion": meta["resourceVersion"]},
        "reason": note.reason, "message": note.message, "type": note.kind.as_str(),
        "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "eventTime": null, "reportingComponent": component, "reportingInstance": "",
    });
    store.put_versioned(key, event)?;
    Ok(())
}
