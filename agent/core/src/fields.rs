//! Field sets and the server-side apply merge, as Kubernetes' structured-merge-diff
//! defines them.
//!
//! A [`FieldSet`] is a set of paths into an object, stored as a trie keyed exactly like
//! `managedFields[].fieldsV1` (`f:spec`, `k:{"name":"web"}`, `v:"x"`, `i:0`, and `.` for
//! "this node itself"). The same algebra serves the local cluster (recording ownership,
//! finding conflicts) and the three-way diff (predicting what an apply does).
//!
//! Which lists are maps keyed by some of their items' fields comes from [`schema`]; every
//! other list is atomic (replaced whole), as Kubernetes treats lists without a list type.
//! Pure: no I/O.

pub mod schema;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Errors reading a `fieldsV1` document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fieldsV1 is not an object at {path}")]
    NotAnObject { path: String },
    #[error("fieldsV1 has an unknown key {key:?} at {path}")]
    UnknownKey { key: String, path: String },
}

/// A set of field paths (a trie keyed like fieldsV1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The path ending at this node is itself in the set.
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

/// One path into an object: the fieldsV1 keys from the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<String>);

impl fmt::Display for Path {
    /// `.spec.template.spec.containers[name="web"].image`, as Kubernetes prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for key in &self.0 {
            if let Some(name) = key.strip_prefix("f:") {
                write!(f, ".{name}")?;
            } else if let Some(json) = key.strip_prefix("k:") {
                let fields: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))?;
            } else if let Some(value) = key.strip_prefix("v:") {
                write!(f, "[={value}]")?;
            } else if let Some(index) = key.strip_prefix("i:") {
                write!(f, "[{index}]")?;
            }
        }
        Ok(())
    }
}

/// Metadata fields the API server strips from applied configurations before computing
/// ownership.
pub const STRIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl FieldSet {
    /// The fields an applied configuration sets, as the API server records them for the
    /// applier: `apiVersion`, `kind`, identity and server-owned metadata, and `status`
    /// are not fields anyone applies.
    pub fn from_applied(object: &Value) -> Self {
        let mut set = Self::default();
        let Some(map) = object.as_object() else {
            return set;
        };
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    let mut meta = Self::default();
                    if let Some(fields) = value.as_object() {
                        for (k, v) in fields {
                            if STRIPPED_METADATA.contains(&k.as_str()) {
                                continue;
                            }
                            meta.children
                                .insert(format!("f:{k}"), Self::of_value(v, k, None));
                        }
                    }
                    if !meta.is_empty() {
                        set.children.insert("f:metadata".into(), meta);
                    }
                }
                _ => {
                    set.children
                        .insert(format!("f:{key}"), Self::of_value(value, key, None));
                }
            }
        }
        set
    }

    /// Field set of one value found under field `name` (inside list `within`, if any).
    fn of_value(value: &Value, name: &str, within: Option<&str>) -> Self {
        match value {
            Value::Object(map) if !map.is_empty() => {
                let mut node = Self::default();
                for (k, v) in map {
                    node.children
                        .insert(format!("f:{k}"), Self::of_value(v, k, within));
                }
                node
            }
            Value::Array(items) => match schema::list_keys(name, within) {
                Some(keys) => {
                    let mut node = Self::default();
                    for item in items {
                        let Some(key) = item_key(item, keys) else {
                            continue;
                        };
                        let mut child = Self::of_value(item, name, Some(name));
                        child.member = true;
                        node.children.insert(key, child);
                    }
                    if node.children.is_empty() {
                        node.member = true;
                    }
                    node
                }
                None => Self::leaf(),
            },
            _ => Self::leaf(),
        }
    }

    fn leaf() -> Self {
        Self {
            member: true,
            children: BTreeMap::new(),
        }
    }

    /// Reads a `managedFields[].fieldsV1` document.
    pub fn from_fields_v1(value: &Value) -> Result<Self, Error> {
        Self::read_v1(value, &mut Vec::new())
    }

    fn read_v1(value: &Value, path: &mut Vec<String>) -> Result<Self, Error> {
        let map = value.as_object().ok_or_else(|| Error::NotAnObject {
            path: Path(path.clone()).to_string(),
        })?;
        let mut node = Self::default();
        if map.is_empty() {
            node.member = true;
            return Ok(node);
        }
        for (key, child) in map {
            if key == "." {
                node.member = true;
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| key.starts_with(p)) {
                return Err(Error::UnknownKey {
                    key: key.clone(),
                    path: Path(path.clone()).to_string(),
                });
            }
            path.push(key.clone());
            let read = Self::read_v1(child, path);
            path.pop();
            node.children.insert(key.clone(), read?);
        }
        Ok(node)
    }

    /// The set as a `fieldsV1` document.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            map.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(Self::is_empty)
    }

    /// Paths in either set.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        out.member |= other.member;
        for (key, child) in &other.children {
            let merged = match out.children.get(key) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(key.clone(), merged);
        }
        out
    }

    /// Paths in `self` that are not in `other`.
    #[must_use]
    pub fn difference(&self, other: &Self) -> Self {
        self.without(other, false)
    }

    /// The paths of `self` to remove from an object when `kept` stays applied: those
    /// not in `kept` and with no descendant in it. A map applied empty
    /// (`annotations: {}`) and then with keys is still there, not a field to remove.
    #[must_use]
    pub fn removable(&self, kept: &Self) -> Self {
        self.without(kept, true)
    }

    /// [`difference`](Self::difference); with `parents_kept`, a path with a descendant
    /// in `other` counts as in it.
    fn without(&self, other: &Self, parents_kept: bool) -> Self {
        let kept = if parents_kept {
            !other.is_empty()
        } else {
            other.member
        };
        let mut out = Self {
            member: self.member && !kept,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(theirs) => child.without(theirs, parents_kept),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(key.clone(), rest);
            }
        }
        out
    }

    /// Paths in both sets.
    #[must_use]
    pub fn intersection(&self, other: &Self) -> Self {
        let mut out = Self {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(key.clone(), both);
                }
            }
        }
        out
    }

    /// Every path in the set, in key order.
    pub fn leaves(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Path>) {
        if self.member && !prefix.is_empty() {
            out.push(Path(prefix.clone()));
        }
        for (key, child) in &self.children {
            prefix.push(key.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Adds one path.
    pub fn insert(&mut self, path: &Path) {
        let mut node = self;
        for key in &path.0 {
            node = node.children.entry(key.clone()).or_default();
        }
        node.member = true;
    }

    /// True when `path` is in the set.
    pub fn contains(&self, path: &Path) -> bool {
        let mut node = self;
        for key in &path.0 {
            match node.children.get(key) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member
    }

    /// True when every path of the `fieldsV1` document `v1` is in the set (an owner's
    /// recorded fields are a subset of these), read without building a set.
    pub fn covers_fields_v1(&self, v1: &Value) -> bool {
        let Some(map) = v1.as_object() else {
            return false;
        };
        if map.is_empty() {
            return self.member;
        }
        map.iter().all(|(key, child)| {
            if key == "." {
                self.member
            } else {
                self.children
                    .get(key)
                    .is_some_and(|c| c.covers_fields_v1(child))
            }
        })
    }

    /// True when `path` or any path below or above it on the same branch is in the set:
    /// owning `.spec.ports` (atomic) overlaps `.spec.ports[0].port` and vice versa.
    pub fn overlaps(&self, path: &Path) -> bool {
        let mut node = self;
        for key in &path.0 {
            if node.member {
                return true;
            }
            match node.children.get(key) {
                Some(child) => node = child,
                None => return false,
            }
        }
        !node.is_empty()
    }
}

/// The fieldsV1 key of a list-map item (`k:{"name":"web"}`), or `None` when the item
/// lacks a key field. Missing `protocol` keys default to `TCP`, as the API server does.
fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    if !has_key(item, keys) {
        return None;
    }
    let key: Map<String, Value> = keys
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), key_field(item, k)?.clone())))
        .collect();
    // A map of strings and numbers always serializes.
    Some(format!(
        "k:{}",
        serde_json::to_string(&key).unwrap_or_default()
    ))
}

/// Server-side apply merge of an applied `config` over the `live` object: maps merge
/// field by field, list-maps merge item by item on their keys, every other list and every
/// scalar is replaced. A `null` in the config removes the field.
pub fn merge(live: &Value, config: &Value) -> Value {
    let mut out = live.clone();
    merge_into(&mut out, config, "", None);
    out
}

fn merge_into(live: &mut Value, config: &Value, name: &str, within: Option<&str>) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (key, cv) in c {
                if cv.is_null() {
                    l.remove(key);
                    continue;
                }
                match l.get_mut(key) {
                    Some(lv) => merge_into(lv, cv, key, within),
                    None => {
                        l.insert(key.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) => match schema::list_keys(name, within) {
            Some(keys) => {
                for item in c {
                    let slot = has_key(item, keys)
                        .then(|| l.iter().position(|o| same_key(o, item, keys)))
                        .flatten();
                    match slot {
                        Some(i) => merge_into(&mut l[i], item, name, Some(name)),
                        None => l.push(item.clone()),
                    }
                }
            }
            None => l.clone_from(c),
        },
        (live, _) => *live = config.clone(),
    }
}

/// True when [`merge`] of `config` over `live`, which sits under field `name`, gives
/// `live` back unchanged. Allocates nothing: the fast way to tell that an apply is a
/// no-op.
pub fn merge_keeps(live: &Value, config: &Value, name: &str) -> bool {
    keeps_at(live, config, name, None)
}

fn keeps_at(live: &Value, config: &Value, name: &str, within: Option<&str>) -> bool {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => c.iter().all(|(key, cv)| match l.get(key) {
            None => cv.is_null(),
            Some(lv) => !cv.is_null() && keeps_at(lv, cv, key, within),
        }),
        (Value::Array(l), Value::Array(c)) => match schema::list_keys(name, within) {
            Some(keys) => c.iter().all(|item| {
                has_key(item, keys)
                    && l.iter()
                        .find(|o| same_key(o, item, keys))
                        .is_some_and(|o| keeps_at(o, item, name, Some(name)))
            }),
            None => l == c,
        },
        _ => live == config,
    }
}

/// `protocol`, the one list-map key field the API server defaults when it is absent.
static DEFAULT_PROTOCOL: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::String("TCP".into()));

/// The value of key field `name` of a list-map item, as [`item_key`] reads it.
fn key_field<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    match item.get(name) {
        Some(v) if !v.is_null() => Some(v),
        _ if name == "protocol" => Some(&DEFAULT_PROTOCOL),
        _ => None,
    }
}

/// True when the item has every key field (it has an [`item_key`]).
fn has_key(item: &Value, keys: &[&str]) -> bool {
    item.is_object() && keys.iter().all(|k| key_field(item, k).is_some())
}

/// True when both items have the same [`item_key`], without building it.
fn same_key(a: &Value, b: &Value, keys: &[&str]) -> bool {
    a.is_object()
        && b.is_object()
        && keys
            .iter()
            .all(|k| matches!((key_field(a, k), key_field(b, k)), (Some(x), Some(y)) if x == y))
}

/// Removes every path of `set` from `value` (fields a manager stopped applying).
pub fn remove(value: &mut Value, set: &FieldSet) {
    remove_at(value, set, "", None);
}

fn remove_at(value: &mut Value, set: &FieldSet, name: &str, within: Option<&str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in &set.children {
                let Some(field) = key.strip_prefix("f:") else {
                    continue;
                };
                if child.member {
                    map.remove(field);
                } else if let Some(v) = map.get_mut(field) {
                    remove_at(v, child, field, within);
                    if is_empty_collection(v) {
                        map.remove(field);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(keys) = schema::list_keys(name, within) else {
                return;
            };
            for (key, child) in &set.children {
                let Some(i) = items
                    .iter()
                    .position(|item| item_key(item, keys).as_deref() == Some(key.as_str()))
                else {
                    continue;
                };
                if child.member {
                    items.remove(i);
                } else {
                    remove_at(&mut items[i], child, name, Some(name));
                }
            }
        }
        _ => {}
    }
}

/// Maps and lists emptied by a removal are removed too.
fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Fields whose value differs between `old` and `new` (added, changed or removed), at the
/// granularity ownership is recorded: leaf fields, list-map items, atomic lists.
pub fn changed(old: &Value, new: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    changed_at(old, new, "", None, &mut set);
    set.member = false;
    set
}

fn changed_at(old: &Value, new: &Value, name: &str, within: Option<&str>, out: &mut FieldSet) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for key in keys {
                let mut child = FieldSet::default();
                match (o.get(key.as_str()), n.get(key.as_str())) {
                    (Some(a), Some(b)) => changed_at(a, b, key, within, &mut child),
                    _ => child.member = true,
                }
                if !child.is_empty() {
                    out.children.insert(format!("f:{key}"), child);
                }
            }
        }
        (Value::Array(o), Value::Array(n)) => match schema::list_keys(name, within) {
            Some(keys) => {
                let index = |items: &[Value]| -> BTreeMap<String, usize> {
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| item_key(item, keys).map(|k| (k, i)))
                        .collect()
                };
                let (oi, ni) = (index(o), index(n));
                let all: std::collections::BTreeSet<&String> = oi.keys().chain(ni.keys()).collect();
                for key in all {
                    let mut child = FieldSet::default();
                    match (oi.get(key), ni.get(key)) {
                        (Some(&a), Some(&b)) => {
                            changed_at(&o[a], &n[b], name, Some(name), &mut child);
                        }
                        _ => child.member = true,
                    }
                    if !child.is_empty() {
                        out.children.insert(key.clone(), child);
                    }
                }
            }
            None => out.member = true,
        },
        _ => out.member = true,
    }
}

/// The value at `path`, if present.
pub fn get<'a>(value: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut current = value;
    let mut name = "";
    let mut within: Option<&str> = None;
    for key in &path.0 {
        if let Some(field) = key.strip_prefix("f:") {
            current = current.as_object()?.get(field)?;
            name = field;
        } else if key.starts_with("k:") {
            let keys = schema::list_keys(name, within)?;
            current = current
                .as_array()?
                .iter()
                .find(|item| item_key(item, keys).as_deref() == Some(key.as_str()))?;
            within = Some(name);
        } else if let Some(index) = key.strip_prefix("i:") {
            current = current.as_array()?.get(index.parse::<usize>().ok()?)?;
        } else {
            return None;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests;
