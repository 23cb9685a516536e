//! Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
//! comma = AND) and the `metadata.name` / `metadata.namespace` field selectors, as the
//! API server parses them from `labelSelector` / `fieldSelector`.

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized set of values, found {text:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

impl Selector {
    /// Parses a `labelSelector` value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_terms(text) {
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_owned())
            } else if let Some(open) = term.find('(') {
                // `key in (a,b)`, `key notin (a)`; kubectl passes `key in(a)` as typed.
                let (head, set) = term.split_at(open);
                let mut words = head.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(k), Some("in"), None) => Requirement::In(k.to_owned(), set_values(set)?),
                    (Some(k), Some("notin"), None) => {
                        Requirement::NotIn(k.to_owned(), set_values(set)?)
                    }
                    _ => return Err(format!("unable to parse requirement: {term:?}")),
                }
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if term.contains(|c: char| c.is_whitespace() || "()".contains(c)) {
                return Err(format!("unable to parse requirement: {term:?}"));
            } else {
                Requirement::Exists(term.to_owned())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// The requirements of a `metav1.LabelSelector` object: `matchLabels` as equalities,
    /// `matchExpressions` as set requirements; `None` for an unknown operator.
    fn of_object(selector: &Value) -> Option<Self> {
        let entries = |field: &str| {
            selector
                .get(field)
                .into_iter()
                .flat_map(|v| v.as_object().into_iter().flatten())
        };
        let mut reqs: Vec<Requirement> = entries("matchLabels")
            .map(|(k, v)| Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().into()))
            .collect();
        let expressions = selector.get("matchExpressions").and_then(Value::as_array);
        for e in expressions.into_iter().flatten() {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            reqs.push(match e.get("operator").and_then(Value::as_str)? {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::NotExists(key),
                _ => return None,
            });
        }
        Some(Self(reqs))
    }

    /// True when the object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.matches_labels(object.pointer("/metadata/labels"))
    }

    /// True when `labels` (a label map, or none) satisfy every requirement.
    fn matches_labels(&self, labels: Option<&Value>) -> bool {
        let labels = labels.and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// True when `labels` satisfy a `metav1.LabelSelector` object (`matchLabels` and
/// `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`, all ANDed). An empty
/// or absent selector matches everything; an unknown operator matches nothing (validation
/// refuses one before it is stored).
pub fn label_selector_matches(selector: Option<&Value>, labels: Option<&Value>) -> bool {
    match selector.filter(|s| !s.is_null()) {
        None => true,
        Some(selector) => Selector::of_object(selector).is_some_and(|s| s.matches_labels(labels)),
    }
}

/// A parsed `fieldSelector` on metadata.name and metadata.namespace.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in split_terms(text) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector {term:?}"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = if field == "metadata.name" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            let actual = object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "tier in (front, back)",
            "tier notin (db)",
            "tier in(front)",
            "tier  notin  ( db , x )",
            "app",
            "!missing",
            "app=web,tier in (front)",
            "missing notin (x)",
            "",
        ];
        for s in yes {
            assert!(Selector::parse(s).expect(s).matches(&o), "{s}");
        }
        let no = [
            "app=db",
            "tier in (back)",
            "tier notin (front)",
            "missing",
            "!app",
            "app=web,tier=back",
        ];
        for s in no {
            assert!(!Selector::parse(s).expect(s).matches(&o), "{s}");
        }
        assert!(Selector::parse("app in front").is_err());
    }

    #[test]
    fn label_selector_objects() {
        let labels = json!({"app": "web", "tier": "front"});
        let yes = [
            json!({}),
            json!({"matchLabels": {"app": "web"}}),
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}),
            json!({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}),
        ];
        for s in &yes {
            assert!(label_selector_matches(Some(s), Some(&labels)), "{s}");
        }
        assert!(label_selector_matches(None, None));
        let no = [
            json!({"matchLabels": {"app": "db"}}),
            json!({"matchLabels": {"missing": ""}}),
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}),
            json!({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "Matches"}]}),
        ];
        for s in &no {
            assert!(!label_selector_matches(Some(s), Some(&labels)), "{s}");
        }
        assert!(!label_selector_matches(
            Some(&json!({"matchLabels": {"a": "b"}})),
            None
        ));
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=x")
                .expect("ok")
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace!=ns")
                .expect("ok")
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.nodeName=a").is_err());
    }
}
