//! Masking of Secret values: every value of a Secret's `data` and `stringData` becomes
//! `<masked sha256:…>` over its decoded bytes, so a diff shows that a key changed without
//! showing the value. The `kubectl.kubernetes.io/last-applied-configuration` annotation
//! of a Secret holds its data in clear and is masked whole.

use base64::Engine as _;
use serde_json::Value;

use crate::digest;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The values of a Secret (each `data` value as stored and decoded, each
/// `stringData` value), to keep them out of text that leaves the process. Empty for
/// other kinds.
pub fn secret_values(object: &Value) -> Vec<String> {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (field, encoded) in [("data", true), ("stringData", false)] {
        for value in object
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(Value::as_str)
        {
            out.push(value.to_owned());
            if encoded
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value)
                && let Ok(text) = String::from_utf8(bytes)
            {
                out.push(text);
            }
        }
    }
    out
}

/// Masks a Secret's values in place; other kinds are left as they are.
pub fn mask_secret(object: &mut Value) {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    for (field, encoded) in [("data", true), ("stringData", false)] {
        if let Some(Value::Object(values)) = map.get_mut(field) {
            for value in values.values_mut() {
                let text = value.as_str().unwrap_or_default();
                let bytes = if encoded {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap_or_else(|_| text.as_bytes().to_vec())
                } else {
                    text.as_bytes().to_vec()
                };
                *value = Value::String(masked(&bytes));
            }
        }
    }
    if let Some(Value::Object(annotations)) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        && let Some(value) = annotations.get_mut(LAST_APPLIED)
    {
        let text = value.as_str().unwrap_or_default().to_owned();
        *value = Value::String(masked(text.as_bytes()));
    }
}

/// `<masked sha256:0123456789>`: ten hex digits of the value's sha256.
fn masked(bytes: &[u8]) -> String {
    let hash = digest::of_bytes(bytes);
    format!("<masked sha256:{}>", &hash[..10])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_and_string_data_mask_to_the_same_hash() {
        let mut a = json!({"kind": "Secret", "data": {"k": "c2VjcmV0"}});
        let mut b = json!({"kind": "Secret", "stringData": {"k": "secret"}});
        mask_secret(&mut a);
        mask_secret(&mut b);
        assert_eq!(a["data"]["k"], b["stringData"]["k"]);
        let shown = a.to_string();
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("secret\""),
            "{shown}"
        );
    }

    #[test]
    fn other_kinds_are_untouched() {
        let mut cm = json!({"kind": "ConfigMap", "data": {"k": "v"}});
        mask_secret(&mut cm);
        assert_eq!(cm["data"]["k"], "v");
    }

    #[test]
    fn last_applied_annotation_of_a_secret_is_masked() {
        let mut s = json!({"kind": "Secret", "metadata": {"annotations": {
            LAST_APPLIED: "{\"data\":{\"k\":\"c2VjcmV0\"}}"}}});
        mask_secret(&mut s);
        assert!(!s.to_string().contains("c2VjcmV0"));
    }
}
