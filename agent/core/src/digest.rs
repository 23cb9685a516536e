//! Content digests: a sha256 over a canonical JSON form of an object.
//!
//! The canonical form sorts map keys and leaves out what changes without the object
//! changing: the `gitsync.dev/revision` and `gitsync.dev/digest` annotations. Two renders
//! of the same object from different commits therefore have the same digest, which is what
//! lets a sync skip objects that did not change.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::manifest::{ANNOTATION_DIGEST, ANNOTATION_REVISION};

/// Hex sha256 of the object's canonical form.
pub fn of_object(object: &Value) -> String {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(1024);
    write_canonical(object, &mut buf, 0);
    hasher.update(&buf);
    hex::encode(hasher.finalize())
}

/// Computes the object's digest and records it in its `gitsync.dev/digest` annotation
/// (replacing a stale one); returns it.
pub fn stamp(object: &mut Value) -> String {
    if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
        annotations.remove(ANNOTATION_DIGEST);
    }
    let sum = of_object(object);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(ANNOTATION_DIGEST.into(), Value::String(sum.clone()));
        }
    }
    sum
}

/// Hex sha256 of a whole render: over its objects' digests, in order.
pub fn of_render(manifests: &[crate::Manifest]) -> String {
    let mut hasher = Sha256::new();
    for m in manifests {
        hasher.update(m.digest.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Hex sha256 of raw bytes (used for generator name suffixes and masked secret values).
pub fn of_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Canonical JSON: keys sorted, no whitespace, tracking annotations left out.
pub fn canonical(object: &Value) -> String {
    let mut buf = Vec::with_capacity(1024);
    write_canonical(object, &mut buf, 0);
    // The writer only emits valid UTF-8 (serde_json string escapes and ASCII).
    String::from_utf8_lossy(&buf).into_owned()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>, depth: usize) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            let mut first = true;
            for key in keys {
                let child = &map[key];
                if depth == 1
                    && key == "annotations"
                    && let Some(ann) = child.as_object()
                {
                    let kept = ann
                        .iter()
                        .filter(|(k, _)| *k != ANNOTATION_REVISION && *k != ANNOTATION_DIGEST)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<serde_json::Map<_, _>>();
                    if kept.is_empty() {
                        continue;
                    }
                    push_key(out, key, &mut first);
                    write_canonical(&Value::Object(kept), out, depth + 1);
                    continue;
                }
                push_key(out, key, &mut first);
                // Only `metadata` at the top level gets the annotation filter.
                let next = if depth == 0 && key == "metadata" {
                    1
                } else {
                    2
                };
                write_canonical(child, out, next);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out, 2);
            }
            out.push(b']');
        }
        scalar => {
            // Serializing a scalar Value to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn push_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_digest() {
        let a = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"b": "2", "a": "1"}});
        let b = json!({"apiVersion": "v1", "data": {"a": "1", "b": "2"}, "kind": "ConfigMap"});
        assert_eq!(of_object(&a), of_object(&b));
        assert_eq!(
            canonical(&a),
            r#"{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap"}"#
        );
    }

    #[test]
    fn tracking_annotations_are_left_out() {
        let a = json!({"metadata": {"name": "x", "annotations": {
            "gitsync.dev/revision": "abc", "gitsync.dev/digest": "d", "keep": "1"}}});
        let b = json!({"metadata": {"name": "x", "annotations": {"keep": "1"}}});
        assert_eq!(of_object(&a), of_object(&b));
        let c = json!({"metadata": {"name": "x", "annotations": {"gitsync.dev/revision": "abc"}}});
        assert_eq!(canonical(&c), r#"{"metadata":{"name":"x"}}"#);
    }

    #[test]
    fn content_changes_change_the_digest() {
        let a = json!({"data": {"a": "1"}});
        let b = json!({"data": {"a": "2"}});
        assert_ne!(of_object(&a), of_object(&b));
    }
}
