//! Strategic merge patch (`application/strategic-merge-patch+json`) as the API server
//! applies it to built-in kinds, the format of `kubectl apply` (client-side),
//! `kubectl edit` and `kubectl patch`.
//!
//! Maps merge key by key (`null` deletes). A list merges item by item on its patch
//! merge key (containers by `name`, container ports by `containerPort`, Service ports
//! by `port`, …), a few lists of scalars merge as sets (`metadata.finalizers`), and every
//! other list is replaced. The directives are interpreted and never stored:
//!
//! - `$patch: replace` (a map or a list is replaced by the rest of the patch) and
//!   `$patch: delete` (a map, or the list items with the given merge key, go);
//! - `$retainKeys: [..]` clears the map's fields that are not listed;
//! - `$setElementOrder/<list>: [..]` orders the list: listed items in that order, items
//!   only the server has kept in their place relative to the others;
//! - `$deleteFromPrimitiveList/<list>: [..]` removes those values from a set.
//!
//! The merge keys are those of the Kubernetes API types (their `patchMergeKey` tags),
//! which are not always the server-side apply list keys (`gitsync_core::fields::schema`):
//! container ports merge on `containerPort` alone here. Custom resources do not take
//! this format (the server answers 415); that is the caller's business. Pure.

use serde_json::{Map, Value};

/// A strategic merge patch the API server refuses (400 Bad Request).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the patch must be a JSON object")]
    NotAnObject,
    #[error("unknown patch type: {value} in {field}")]
    UnknownPatchType { value: String, field: String },
    #[error("merging lists cannot yet be specified in the patch ({field})")]
    MergeDirectiveInList { field: String },
    #[error("an item of {field} does not contain declared merge key: {key}")]
    NoMergeKey { field: String, key: &'static str },
    #[error("invalid patch format of retainKeys in {field}: {reason}")]
    RetainKeys { field: String, reason: &'static str },
    #[error("invalid patch format of {directive}/{field}: it must be a list")]
    NotAList {
        directive: &'static str,
        field: String,
    },
    #[error("the order in the patch list {field} does not match its $setElementOrder list")]
    OrderMismatch { field: String },
    #[error("$patch: delete cannot delete the whole object")]
    DeleteObject,
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// Replaced by the patch's list (no patch strategy).
    Replace,
    /// A set of scalars (`patchStrategy: merge` without a key).
    Set,
    /// Items merged on this key (`patchStrategy: merge`, `patchMergeKey`).
    Keyed(&'static str),
}

impl ListKind {
    fn key(self) -> Option<&'static str> {
        match self {
            Self::Keyed(key) => Some(key),
            Self::Replace | Self::Set => None,
        }
    }
}

/// Where a field sits: the field (map key or list) it is directly inside, and the
/// nearest list around it.
#[derive(Debug, Clone, Copy)]
struct Ctx<'a> {
    parent: &'a str,
    within: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    const ROOT: Ctx<'static> = Ctx {
        parent: "",
        within: None,
    };

    /// Inside the map value of field `name`.
    fn field(self, name: &'a str) -> Self {
        Self {
            parent: name,
            within: self.within,
        }
    }

    /// Inside an item of the list `name`.
    fn item(name: &'a str) -> Self {
        Self {
            parent: name,
            within: Some(name),
        }
    }

    /// How the list `name` found here merges (the API types' patch tags).
    fn list_kind(self, name: &str) -> ListKind {
        let in_container = matches!(
            self.within,
            Some("containers" | "initContainers" | "ephemeralContainers")
        );
        match name {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets"
            | "schedulingGates"
            | "resourceClaims" => ListKind::Keyed("name"),
            "env" if in_container => ListKind::Keyed("name"),
            "ports" if in_container => ListKind::Keyed("containerPort"),
            // A Service's spec.ports.
            "ports" if self.parent == "spec" && self.within.is_none() => ListKind::Keyed("port"),
            "volumeMounts" if in_container => ListKind::Keyed("mountPath"),
            "volumeDevices" if in_container => ListKind::Keyed("devicePath"),
            "hostAliases" | "podIPs" | "hostIPs" => ListKind::Keyed("ip"),
            "topologySpreadConstraints" => ListKind::Keyed("topologyKey"),
            "conditions" => ListKind::Keyed("type"),
            "ownerReferences" if self.parent == "metadata" => ListKind::Keyed("uid"),
            "finalizers" if self.parent == "metadata" => ListKind::Set,
            // A Mutating/ValidatingWebhookConfiguration's webhooks.
            "webhooks" if self.parent.is_empty() && self.within.is_none() => {
                ListKind::Keyed("name")
            }
            _ => ListKind::Replace,
        }
    }
}

/// Applies a strategic merge `patch` to the `live` object.
pub fn apply(live: &Value, patch: &Value) -> Result<Value, Error> {
    let Value::Object(patch) = patch else {
        return Err(Error::NotAnObject);
    };
    let base = live.as_object().cloned().unwrap_or_default();
    merge_map(base, patch, Ctx::ROOT)?
        .map(Value::Object)
        .ok_or(Error::DeleteObject)
}

/// Merges a patch map into `orig`; `None` when the patch deletes the map.
fn merge_map<'a>(
    mut orig: Map<String, Value>,
    patch: &'a Map<String, Value>,
    ctx: Ctx<'a>,
) -> Result<Option<Map<String, Value>>, Error> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                let rest: Map<String, Value> = patch
                    .iter()
                    .filter(|(k, _)| *k != PATCH)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                // The replacement may itself carry directives (nested deletes, orders).
                merge_map(Map::new(), &rest, ctx).map(|m| Some(m.unwrap_or_default()))
            }
            Some("delete") => Ok(None),
            _ => Err(Error::UnknownPatchType {
                value: directive.to_string(),
                field: ctx.parent.to_owned(),
            }),
        };
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut orig, patch, keys, ctx)?;
    }
    // Lists with a $setElementOrder are merged and ordered first.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let not_a_list = || Error::NotAList {
            directive: "$setElementOrder",
            field: field.to_owned(),
        };
        let order = order.as_array().ok_or_else(not_a_list)?;
        let kind = ctx.list_kind(field);
        let patch_list = match patch.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => return Err(not_a_list()),
        };
        check_order(patch_list, order, kind.key(), field)?;
        let live_list = orig.get(field).and_then(Value::as_array).cloned();
        let merged = match (&live_list, patch_list) {
            (None, None) => {
                ordered.push(field);
                continue;
            }
            (Some(live), None) => live.clone(),
            (live, Some(items)) => {
                merge_list(live.clone().unwrap_or_default(), items, kind, field)?
            }
        };
        let live_list = live_list.unwrap_or_default();
        orig.insert(
            field.to_owned(),
            Value::Array(reorder(merged, order, &live_list, kind.key())),
        );
        ordered.push(field);
    }
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let gone = value.as_array().ok_or_else(|| Error::NotAList {
                directive: "$deleteFromPrimitiveList",
                field: field.to_owned(),
            })?;
            if let Some(Value::Array(items)) = orig.get_mut(field) {
                items.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with('$') || ordered.contains(&key.as_str()) {
            // An unknown directive is dropped, as the typed API objects drop it.
            continue;
        }
        if value.is_null() {
            orig.remove(key);
            continue;
        }
        let merged = match (orig.remove(key), value) {
            (Some(Value::Object(live)), Value::Object(p)) => {
                merge_map(live, p, ctx.field(key))?.map(Value::Object)
            }
            (Some(Value::Array(live)), Value::Array(p)) => {
                Some(Value::Array(merge_list(live, p, ctx.list_kind(key), key)?))
            }
            (_, Value::Object(p)) => merge_map(Map::new(), p, ctx.field(key))?.map(Value::Object),
            (_, Value::Array(p)) => Some(Value::Array(merge_list(
                Vec::new(),
                p,
                ctx.list_kind(key),
                key,
            )?)),
            (_, scalar) => Some(scalar.clone()),
        };
        if let Some(v) = merged {
            orig.insert(key.clone(), v);
        }
    }
    Ok(Some(orig))
}

/// `$retainKeys`: every field the patch sets must be listed; live fields not listed go.
fn retain_keys(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
    ctx: Ctx<'_>,
) -> Result<(), Error> {
    let field = || ctx.parent.to_owned();
    let keys: Vec<&str> = keys
        .as_array()
        .ok_or_else(|| Error::RetainKeys {
            field: field(),
            reason: "it must be a list of field names",
        })?
        .iter()
        .map(|k| {
            k.as_str().ok_or_else(|| Error::RetainKeys {
                field: field(),
                reason: "it must be a list of field names",
            })
        })
        .collect::<Result<_, _>>()?;
    let unlisted = patch
        .iter()
        .any(|(k, v)| !v.is_null() && !k.starts_with('$') && !keys.contains(&k.as_str()));
    if unlisted {
        return Err(Error::RetainKeys {
            field: field(),
            reason: "the patch sets a field the list does not retain",
        });
    }
    orig.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// Merges a patch list into the live one.
fn merge_list<'a>(
    live: Vec<Value>,
    patch: &'a [Value],
    kind: ListKind,
    field: &'a str,
) -> Result<Vec<Value>, Error> {
    let ctx = Ctx::item(field);
    let all_maps = patch.iter().chain(&live).all(Value::is_object);
    let key = match kind {
        ListKind::Keyed(key) if all_maps => key,
        ListKind::Keyed(_) | ListKind::Set => return Ok(merge_set(live, patch)),
        ListKind::Replace => return fresh_items(patch, ctx),
    };
    let mut live = live;
    let mut items: Vec<&'a Map<String, Value>> = Vec::new();
    let mut replace = false;
    for item in patch.iter().filter_map(Value::as_object) {
        let Some(directive) = item.get(PATCH) else {
            items.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = item.get(key).ok_or_else(|| Error::NoMergeKey {
                    field: field.to_owned(),
                    key,
                })?;
                live.retain(|o| o.get(key) != Some(value));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(Error::MergeDirectiveInList {
                    field: field.to_owned(),
                });
            }
            _ => {
                return Err(Error::UnknownPatchType {
                    value: directive.to_string(),
                    field: field.to_owned(),
                });
            }
        }
    }
    if replace {
        let kept: Vec<Value> = items.iter().map(|m| Value::Object((*m).clone())).collect();
        return fresh_items(&kept, ctx);
    }
    let before = live.clone();
    let mut merged = live;
    for &item in &items {
        let value = item.get(key).ok_or_else(|| Error::NoMergeKey {
            field: field.to_owned(),
            key,
        })?;
        match merged.iter().position(|o| o.get(key) == Some(value)) {
            Some(i) => {
                // Every item is a map here (`all_maps`).
                if let Value::Object(o) = std::mem::take(&mut merged[i]) {
                    merged[i] = Value::Object(merge_map(o, item, ctx)?.unwrap_or_default());
                }
            }
            None => {
                if let Some(fresh) = merge_map(Map::new(), item, ctx)? {
                    merged.push(Value::Object(fresh));
                }
            }
        }
    }
    let order: Vec<Value> = items.iter().map(|m| Value::Object((*m).clone())).collect();
    Ok(reorder(merged, &order, &before, Some(key)))
}

/// A set of scalars: the union, the patch's values in its order among the live ones.
fn merge_set(live: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::with_capacity(live.len() + patch.len());
    for v in live.iter().chain(patch) {
        if !merged.contains(v) {
            merged.push(v.clone());
        }
    }
    reorder(merged, patch, &live, None)
}

/// The items of a list that has nothing to merge with, with their directives taken out.
fn fresh_items(items: &[Value], ctx: Ctx<'_>) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(m) if m.contains_key(PATCH) => {}
            Value::Object(m) => {
                if let Some(fresh) = merge_map(Map::new(), m, ctx)? {
                    out.push(Value::Object(fresh));
                }
            }
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

/// Identity of a list item: its merge key's value, or the scalar itself.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => item.get(k),
        None => Some(item),
    }
}

fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key)?;
    list.iter().position(|o| identity(o, key) == Some(id))
}

/// The `$setElementOrder` list must hold the patch's items (deletions aside) in the
/// same relative order.
fn check_order(
    patch: Option<&Vec<Value>>,
    order: &[Value],
    key: Option<&str>,
    field: &str,
) -> Result<(), Error> {
    let Some(patch) = patch else {
        return Ok(());
    };
    let items: Vec<&Value> = patch.iter().filter(|v| v.get(PATCH).is_none()).collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if identity(items[p], key).is_some() && identity(items[p], key) == identity(&order[o], key)
        {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() && !order.is_empty() {
        return Err(Error::OrderMismatch {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Orders merged items: those named in `patch_order` in that order, the others (only
/// the server has them) in their `live` order, the two interleaved by where they stood
/// in the live list.
fn reorder(
    merged: Vec<Value>,
    patch_order: &[Value],
    live: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(patch_order, v, key).is_some());
    named.sort_by_key(|v| position(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(live, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(n)) => matches!(
                (position(live, s, key), position(live, n, key)),
                (Some(si), Some(ni)) if si < ni
            ),
        };
        let next = if take_server {
            server_only.next()
        } else {
            named.next()
        };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests;
