//! Patch formats other than server-side apply: JSON merge patch (RFC 7386) and JSON
//! patch (RFC 6902). Strategic merge patch has its own module (`strategic`).

use serde_json::{Value, json};

/// RFC 7386: maps merge recursively, `null` deletes, everything else replaces.
pub fn merge(target: &Value, patch: &Value) -> Value {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            let mut out = t.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge(t.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, Value::Object(_)) => merge(&json!({}), patch),
        _ => patch.clone(),
    }
}

/// RFC 6902: applies every operation in order, or none.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        let field = |name: &str| {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation {i}: missing {name}"))
        };
        let kind = field("op")?;
        let path = field("path")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {i}: missing value"))
        };
        match kind {
            "add" => add(&mut doc, path, value()?),
            "remove" => remove(&mut doc, path).map(|_| ()),
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)
            }
            "move" => {
                let from = field("from")?;
                let moved = remove(&mut doc, from)?;
                add(&mut doc, path, moved)
            }
            "copy" => {
                let from = field("from")?;
                let copied = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("path {from} does not exist"))?;
                add(&mut doc, path, copied)
            }
            "test" => {
                if doc.pointer(path) == Some(&value()?) {
                    Ok(())
                } else {
                    Err(format!("test operation failed at {path}"))
                }
            }
            other => Err(format!("unknown operation {other:?}")),
        }
        .map_err(|e| format!("operation {i} ({kind} {path}): {e}"))?;
    }
    Ok(doc)
}

/// Splits `/a/b/c` into (`/a/b`, `c`), unescaping `~1` and `~0`.
fn split(path: &str) -> Result<(&str, String), String> {
    let at = path
        .rfind('/')
        .ok_or_else(|| format!("invalid path {path:?}"))?;
    let last = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..at], last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split(path)?;
    match doc
        .pointer_mut(parent)
        .ok_or_else(|| format!("path {parent} does not exist"))?
    {
        Value::Object(map) => {
            map.insert(key, value);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let i: usize = key.parse().map_err(|_| format!("invalid index {key:?}"))?;
            if i > items.len() {
                return Err(format!("index {i} is out of bounds"));
            }
            items.insert(i, value);
            Ok(())
        }
        _ => Err(format!("{parent} is not a container")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split(path)?;
    match doc
        .pointer_mut(parent)
        .ok_or_else(|| format!("path {parent} does not exist"))?
    {
        Value::Object(map) => map
            .remove(&key)
            .ok_or_else(|| format!("path {path} does not exist")),
        Value::Array(items) => {
            let i: usize = key.parse().map_err(|_| format!("invalid index {key:?}"))?;
            if i >= items.len() {
                return Err(format!("index {i} is out of bounds"));
            }
            Ok(items.remove(i))
        }
        _ => Err(format!("{parent} is not a container")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_deletes_with_null() {
        let out = merge(
            &json!({"a": 1, "b": {"c": 2, "d": 3}}),
            &json!({"b": {"c": null}, "e": [1]}),
        );
        assert_eq!(out, json!({"a": 1, "b": {"d": 3}, "e": [1]}));
    }

    #[test]
    fn json_patch_operations() {
        let doc =
            json!({"spec": {"replicas": 1, "args": ["a"]}, "metadata": {"labels": {"x/y": "1"}}});
        let ops = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/args/-", "value": "b"},
            {"op": "add", "path": "/spec/args/0", "value": "z"},
            {"op": "remove", "path": "/metadata/labels/x~1y"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"},
            {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
            {"op": "test", "path": "/spec/moved", "value": 3},
        ]);
        let out = json_patch(&doc, &ops).expect("applies");
        assert_eq!(
            out,
            json!({"spec": {"replicas": 3, "args": ["z", "a", "b"], "moved": 3}, "metadata": {"labels": {}}})
        );
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/spec/replicas", "value": 9}])
            )
            .is_err()
        );
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
