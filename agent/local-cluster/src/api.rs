//! The API operations over the store: get, list, create, update, merge patch,
//! server-side apply and delete, each with the conventions of the Kubernetes API
//! (resourceVersion, generation, uid, managedFields, dry-run, Status errors). HTTP is
//! the server's business; this module takes and returns values.

use base64::Engine as _;
use gitsync_core::fields::{self, FieldSet};
use serde_json::{Value, json};

use crate::admit;
use crate::clock;
use crate::deletion::{self, DeleteOptions, Outcome};
use crate::kinds::{self, Resource};
use crate::managed::{self, Entry};
use crate::selector::{FieldSelector, Selector};
use crate::status::{self, ApiError};
use crate::storage;
use crate::store::{Key, Store};
use crate::webhooks;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// What a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub manager: String,
    pub force: bool,
    /// The admission webhooks have seen this write already (the `scale` subresource
    /// shows them a Scale): [`commit`] does not call them again.
    pub admitted: bool,
}

/// List options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: Selector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> Key {
        Key {
            group: self.resource.group.to_owned(),
            plural: self.resource.plural.to_owned(),
            namespace: if self.resource.namespaced {
                self.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    fn name(&self) -> Result<&str> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("this verb without a name"))
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.resource.group, self.resource.plural, name)
    }
}

/// GET one object.
pub fn get(store: &Store, target: &Target) -> Result<Value> {
    let name = target.name()?;
    store
        .get(&target.key(name))
        .ok_or_else(|| target.not_found(name))
}

/// GET a collection: `<Kind>List` with the store's resourceVersion.
pub fn list(store: &Store, target: &Target, options: &ListOptions) -> Result<Value> {
    let res = target.resource;
    let namespace = if res.namespaced {
        target.namespace.as_deref()
    } else {
        None
    };
    let matching: Vec<Value> = store
        .list(res.group, res.plural, namespace)
        .filter(|o| options.labels.matches(o) && options.fields.matches(o))
        .collect();
    let start: usize = match &options.continue_token {
        Some(token) => token
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))?,
        None => 0,
    };
    let end = options
        .limit
        .filter(|l| *l > 0)
        .map_or(matching.len(), |l| (start + l).min(matching.len()));
    let items: Vec<Value> = matching
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|v| (*v).clone())
        .collect();
    let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
    if end < matching.len() {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// POST: create.
pub fn create(
    store: &mut Store,
    target: &Target,
    body: Value,
    options: &WriteOptions,
) -> Result<Value> {
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    check_identity(target, &body, None)?;
    let key = target.key(&name);
    if store.contains(&key) {
        return Err(ApiError::already_exists(
            target.resource.group,
            target.resource.plural,
            &name,
        ));
    }
    let mut entries = Vec::new();
    let changed = managed::changed_fields(None, &body, false);
    managed::record_update(
        &mut entries,
        &options.manager,
        &target.resource.api_version(),
        &clock::now_rfc3339(),
        None,
        &changed,
    );
    commit(store, target, &key, None, body, &entries, options)
}

/// PUT: replace (optimistic concurrency on metadata.resourceVersion).
pub fn update(
    store: &mut Store,
    target: &Target,
    body: Value,
    options: &WriteOptions,
) -> Result<Value> {
    let name = target.name()?.to_owned();
    check_identity(target, &body, Some(&name))?;
    let key = target.key(&name);
    let Some(old) = store.get(&key) else {
        return Err(target.not_found(&name));
    };
    check_resource_version(target, &name, &body, &old)?;
    write_update(store, target, &key, &old, body, options)
}

/// Patch formats `PATCH` accepts besides apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`: lists merged by their patch keys, with
    /// kubectl's directives (see [`crate::strategic`]); built-in kinds only.
    Strategic,
    /// `application/json-patch+json`.
    Json,
}

/// PATCH with a merge, strategic merge or JSON patch.
pub fn patch(
    store: &mut Store,
    target: &Target,
    patch: &Value,
    kind: PatchType,
    options: &WriteOptions,
) -> Result<Value> {
    let name = target.name()?.to_owned();
    let key = target.key(&name);
    let Some(old) = store.get(&key) else {
        return Err(target.not_found(&name));
    };
    if kind != PatchType::Json && !patch.is_object() {
        return Err(ApiError::bad_request(
            "the patch must be a JSON object".into(),
        ));
    }
    let new = match kind {
        PatchType::Merge => crate::patch::merge(&old, patch),
        PatchType::Strategic => {
            if !target.resource.is_builtin() {
                return Err(ApiError::strategic_patch_unsupported());
            }
            crate::strategic::apply(&old, patch)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        PatchType::Json => crate::patch::json_patch(&old, patch).map_err(|e| {
            ApiError::invalid(
                target.resource.group,
                target.resource.kind,
                &name,
                &[(String::new(), e)],
            )
        })?,
    };
    // The patched object carries the patch's resourceVersion, if it named one.
    check_resource_version(target, &name, &new, &old)?;
    check_identity(target, &new, Some(&name))?;
    write_update(store, target, &key, &old, new, options)
}

/// The `autoscaling/v1` Scale of a scalable object.
pub fn get_scale(store: &Store, target: &Target) -> Result<Value> {
    let main = Target {
        subresource: None,
        ..target.clone()
    };
    let object = get(store, &main)?;
    Ok(scale_of(&object))
}

fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// Writes a Scale: the object's `spec.replicas` changes, owned by the writer through
/// the `scale` subresource.
pub fn write_scale(
    store: &mut Store,
    target: &Target,
    scale: &Value,
    options: &WriteOptions,
) -> Result<Value> {
    let name = target.name()?.to_owned();
    let key = target.key(&name);
    let old = store.get(&key).ok_or_else(|| target.not_found(&name))?;
    check_resource_version(target, &name, scale, &old)?;
    // Admission webhooks see the Scale (`autoscaling/v1`) the write makes of the stored
    // one, as `deployments/scale`.
    let old_scale = scale_of(&old);
    let mut new_scale = old_scale.clone();
    new_scale["spec"]["replicas"] = scale
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(Value::Null);
    let mut request = webhooks::Request::write(
        target.resource,
        Some("scale"),
        &key.namespace,
        &name,
        Some(&old_scale),
        options.dry_run,
        &options.manager,
    );
    request.kind = webhooks::Gv::new("autoscaling", "v1", "Scale");
    let plan = webhooks::Plan::load(store, request);
    if let Some(plan) = &plan {
        plan.mutate(Some(&mut new_scale), &mut |_| {})?;
    }
    let replicas = new_scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                &name,
                &[(
                    "spec.replicas".into(),
                    "Invalid value: must be a non-negative integer".into(),
                )],
            )
        })?;
    if let Some(plan) = &plan {
        plan.validate(Some(&new_scale))?;
    }
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(replicas);
    let mut entries = managed::read(&old);
    let changed = managed::changed_fields(Some(&old), &new, false);
    managed::record_update(
        &mut entries,
        &options.manager,
        &target.resource.api_version(),
        &clock::now_rfc3339(),
        Some("scale"),
        &changed,
    );
    let main = Target {
        subresource: None,
        ..target.clone()
    };
    let options = WriteOptions {
        admitted: true,
        ..options.clone()
    };
    let stored = commit(store, &main, &key, Some(&old), new, &entries, &options)?;
    Ok(scale_of(&stored))
}

/// An update by a manager: ownership of changed fields moves to it.
fn write_update(
    store: &mut Store,
    target: &Target,
    key: &Key,
    old: &Value,
    mut new: Value,
    options: &WriteOptions,
) -> Result<Value> {
    let status_write = target.subresource.as_deref() == Some("status");
    if status_write {
        new = status_update(target.resource, old, new);
    }
    let mut entries = managed::read(old);
    let changed = managed::changed_fields(Some(old), &new, status_write);
    managed::record_update(
        &mut entries,
        &options.manager,
        &target.resource.api_version(),
        &clock::now_rfc3339(),
        target.subresource.as_deref(),
        &changed,
    );
    commit(store, target, key, Some(old), new, &entries, options)
}

/// What a write to `/status` keeps of the body, as the API server's status strategies
/// do: a built-in kind takes the status and the metadata but never the spec (nor a
/// Deployment's labels, nor a Pod's ownerReferences); a custom resource takes only the
/// status.
fn status_update(res: &Resource, old: &Value, body: Value) -> Value {
    let status = body.get("status").cloned();
    let mut new = old.clone();
    if res.is_builtin() {
        let mut meta = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let kept: &[&str] = match res.kind {
            "Deployment" => &["labels"],
            "Pod" => &["ownerReferences"],
            _ => &[],
        };
        if let Some(m) = meta.as_object_mut() {
            for field in kept {
                match old.pointer(&format!("/metadata/{field}")) {
                    Some(v) => m.insert((*field).to_owned(), v.clone()),
                    None => m.remove(*field),
                };
            }
        }
        new["metadata"] = meta;
    }
    match status {
        Some(s) => new["status"] = s,
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
    new
}

/// PATCH application/apply-patch+yaml: server-side apply by `options.manager`.
pub fn apply(
    store: &mut Store,
    target: &Target,
    config: &Value,
    options: &WriteOptions,
) -> Result<Value> {
    let name = target.name()?.to_owned();
    if options.manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"
                .into(),
        ));
    }
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object".into(),
        ));
    }
    check_identity(target, config, Some(&name))?;
    let key = target.key(&name);
    let old = store.get(&key);
    let mut entries = old.as_ref().map(managed::read).unwrap_or_default();
    let applied = FieldSet::from_applied(config);
    let api_version = target.resource.api_version();

    if let Some(live) = &old {
        let conflicts = find_conflicts(live, config, &applied, &entries, &options.manager);
        if !conflicts.is_empty() {
            if !options.force {
                let list: Vec<(String, String, String)> = conflicts
                    .iter()
                    .map(|(i, path)| {
                        (
                            entries[*i].manager.clone(),
                            entries[*i].api_version.clone(),
                            path.to_string(),
                        )
                    })
                    .collect();
                return Err(ApiError::apply_conflicts(
                    target.resource.group,
                    target.resource.plural,
                    &name,
                    &list,
                ));
            }
            for (i, path) in &conflicts {
                let mut taken = FieldSet::default();
                taken.insert(path);
                entries[*i].set = entries[*i].set.difference(&taken);
            }
        }
    }

    let base = old.clone().unwrap_or_else(|| json!({}));
    let mut new = fields::merge(&base, config);
    let mine = entries.iter().position(|e| {
        e.manager == options.manager && e.operation == "Apply" && e.subresource.is_none()
    });
    if let Some(i) = mine {
        let others = entries
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .fold(FieldSet::default(), |acc, (_, e)| acc.union(&e.set));
        let dropped = entries[i].set.removable(&applied.union(&others));
        fields::remove(&mut new, &dropped);
        entries[i].set = applied;
        entries[i].time = clock::now_rfc3339();
        entries[i].api_version = api_version;
    } else {
        entries.push(Entry {
            manager: options.manager.clone(),
            operation: "Apply".into(),
            api_version,
            time: clock::now_rfc3339(),
            subresource: None,
            set: applied,
        });
    }
    commit(store, target, &key, old.as_ref(), new, &entries, options)
}

/// Applied leaf fields whose value differs from the live one and that another manager
/// owns: (index of that manager's entry, path).
fn find_conflicts(
    live: &Value,
    config: &Value,
    applied: &FieldSet,
    entries: &[Entry],
    manager: &str,
) -> Vec<(usize, fields::Path)> {
    let mut out = Vec::new();
    for path in applied.leaves() {
        let wanted = fields::get(config, &path);
        let current = fields::get(live, &path);
        if current.is_none() || current == wanted {
            continue;
        }
        // A map or a list item has no value of its own to conflict over: its fields
        // are compared one by one, as structured-merge-diff compares leaves.
        if wanted.is_some_and(Value::is_object) && current.is_some_and(Value::is_object) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if e.manager == manager && e.operation == "Apply" {
                continue;
            }
            if e.set.contains(&path) {
                out.push((i, path.clone()));
            }
        }
    }
    out
}

/// DELETE, with finalizers, propagation and namespace contents as in [`deletion`]: the
/// object (with `deletionTimestamp`) while it is held, a success `Status` once gone.
pub fn delete(
    store: &mut Store,
    target: &Target,
    options: &WriteOptions,
    delete_options: &DeleteOptions,
) -> Result<Value> {
    let name = target.name()?.to_owned();
    let key = target.key(&name);
    if !store.contains(&key) {
        return Err(target.not_found(&name));
    }
    admit_delete(store, target, &key, &name, options, delete_options)?;
    match deletion::delete(store, &key, delete_options, options.dry_run)? {
        Outcome::Pending(object) => Ok(object),
        Outcome::Deleted(old) => {
            let mut out = status::success();
            out["details"] = json!({
                "name": name, "group": target.resource.group, "kind": target.resource.plural,
                "uid": old.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            });
            Ok(out)
        }
    }
}

/// DELETE of a collection (`deletecollection`): every object the selectors match,
/// each deleted as [`delete`] deletes one; the list of them as they were deleted (or,
/// held by a finalizer, as they are now). Namespaces are never deleted this way.
pub fn delete_collection(
    store: &mut Store,
    target: &Target,
    list_options: &ListOptions,
    options: &WriteOptions,
    delete_options: &DeleteOptions,
) -> Result<Value> {
    if !kinds::verbs(target.resource).contains(&"deletecollection") {
        return Err(ApiError::not_allowed_here());
    }
    let every = ListOptions {
        limit: None,
        continue_token: None,
        ..list_options.clone()
    };
    let mut listed = list(store, target, &every)?;
    let matching = listed["items"].as_array().cloned().unwrap_or_default();
    let mut items = Vec::with_capacity(matching.len());
    for object in matching {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let mut key = target.key(name);
        if let Some(ns) = object["metadata"]["namespace"].as_str() {
            ns.clone_into(&mut key.namespace);
        }
        if !store.contains(&key) {
            // Collected with an owner deleted earlier in this pass.
            continue;
        }
        // Each item is admitted as a DELETE without a name, as the API server's
        // deletecollection does.
        admit_delete(store, target, &key, "", options, delete_options)?;
        items.push(
            match deletion::delete(store, &key, delete_options, options.dry_run)? {
                Outcome::Pending(held) => held,
                Outcome::Deleted(old) => old,
            },
        );
    }
    listed["items"] = json!(items);
    listed["metadata"] = json!({"resourceVersion": store.resource_version().to_string()});
    Ok(listed)
}

/// The admission webhooks of a DELETE of the object at `key` (`name` as the request
/// names it): mutating ones (which may not patch) and validating ones see it as
/// `oldObject`.
fn admit_delete(
    store: &Store,
    target: &Target,
    key: &Key,
    name: &str,
    options: &WriteOptions,
    delete_options: &DeleteOptions,
) -> Result<()> {
    let Some(old) = store.get(key) else {
        return Ok(());
    };
    let mut request_options = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
    if let Some(policy) = &delete_options.propagation {
        request_options["propagationPolicy"] = json!(policy.as_str());
    }
    let mut preconditions = serde_json::Map::new();
    if let Some(uid) = &delete_options.precondition_uid {
        preconditions.insert("uid".into(), json!(uid));
    }
    if let Some(rv) = &delete_options.precondition_resource_version {
        preconditions.insert("resourceVersion".into(), json!(rv));
    }
    if !preconditions.is_empty() {
        request_options["preconditions"] = Value::Object(preconditions);
    }
    if options.dry_run {
        request_options["dryRun"] = json!(["All"]);
    }
    let request = webhooks::Request::delete(
        target.resource,
        &key.namespace,
        name,
        old,
        options.dry_run,
        request_options,
    );
    if let Some(plan) = webhooks::Plan::load(store, request) {
        plan.mutate(None, &mut |_| {})?;
        plan.validate(None)?;
    }
    Ok(())
}

/// Optimistic concurrency: a write that names a resourceVersion other than the stored
/// one is a 409 Conflict (an empty or absent one is unconditional).
fn check_resource_version(target: &Target, name: &str, body: &Value, old: &Value) -> Result<()> {
    let version = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(str::to_owned)
    };
    match version(body) {
        Some(rv) if Some(&rv) != version(old).as_ref() => Err(ApiError::conflict(
            target.resource.group,
            target.resource.plural,
            name,
        )),
        _ => Ok(()),
    }
}

/// The body's apiVersion/kind/name/namespace agree with the URL (400 Bad Request
/// otherwise, with the API server's messages). `url_name` is `None` for a create.
fn check_identity(target: &Target, body: &Value, url_name: Option<&str>) -> Result<()> {
    let res = target.resource;
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind {kind:?} of the body does not match {:?} of the URL",
            res.kind
        )));
    }
    if let Some(api) = body.get("apiVersion").and_then(Value::as_str)
        && api != res.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the apiVersion {api:?} of the body does not match {:?} of the URL",
            res.api_version()
        )));
    }
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let (Some(url), Some(name)) = (url_name, text("/metadata/name"))
        && name != url
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({url})"
        )));
    }
    if res.namespaced
        && let Some(ns) = text("/metadata/namespace")
        && Some(ns) != target.namespace.as_deref()
    {
        return Err(ApiError::bad_request(match url_name {
            None => "the namespace of the provided object does not match the namespace sent on the request".to_owned(),
            Some(_) => format!(
                "the namespace of the object ({ns}) does not match the namespace on the request ({})",
                target.namespace.as_deref().unwrap_or_default()
            ),
        }));
    }
    Ok(())
}

/// Validates, defaults, stamps and stores an object.
fn commit(
    store: &mut Store,
    target: &Target,
    key: &Key,
    old: Option<&Value>,
    mut new: Value,
    entries: &[Entry],
    options: &WriteOptions,
) -> Result<Value> {
    let res = target.resource;
    let mut in_terminating_namespace = false;
    if res.namespaced {
        let ns = key.namespace.clone();
        if ns.is_empty() {
            return Err(ApiError::bad_request(
                "the namespace of the object is required".into(),
            ));
        }
        let Some(namespace) = store.get(&Key::namespace(&ns)) else {
            return Err(ApiError::not_found("", "namespaces", &ns));
        };
        in_terminating_namespace = deletion::is_terminating(&namespace);
        if old.is_none() && in_terminating_namespace {
            return Err(ApiError::namespace_terminating(
                res.group, res.plural, &key.name, &ns,
            ));
        }
    }
    let Some(map) = new.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the object must be a JSON object".into(),
        ));
    };
    map.insert("apiVersion".into(), json!(res.api_version()));
    map.insert("kind".into(), json!(res.kind));
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        return Err(ApiError::bad_request("metadata must be an object".into()));
    }
    meta["name"] = json!(key.name);
    if res.namespaced {
        meta["namespace"] = json!(key.namespace);
    } else if let Some(m) = meta.as_object_mut() {
        m.remove("namespace");
    }
    if res.kind == "Secret" {
        fold_string_data(&mut new);
    }
    keep_status(target, old, &mut new);
    let uid = old
        .and_then(|o| o.pointer("/metadata/uid").cloned())
        .unwrap_or_else(|| json!(clock::uid(&format!("{key:?}"))));
    if let Some(o) = old {
        admit::keep_allocated(res, o, &mut new);
    }
    let dry_run = options.dry_run;
    apply_defaults(store, res, &mut new, dry_run);
    let claim = res.kind == "PersistentVolumeClaim" && target.subresource.is_none();
    if claim && old.is_none() {
        storage::admit_create(store, &mut new);
    }
    let plan = if options.admitted {
        None
    } else {
        let request = webhooks::Request::write(
            res,
            target.subresource.as_deref(),
            &key.namespace,
            &key.name,
            old,
            dry_run,
            &options.manager,
        );
        webhooks::Plan::load(store, request)
    };
    if let Some(plan) = &plan {
        // The field manager runs before admission: the webhooks see this write's
        // managedFields, and what they change is no manager's.
        managed::write(&mut new, entries);
        plan.mutate(Some(&mut new), &mut |object| {
            apply_defaults(store, res, object, dry_run);
        })?;
        after_mutation(target, key, old, &mut new)?;
    }
    if old.is_none() && res.kind == "Job" {
        admit::job_selector(&mut new, uid.as_str().unwrap_or_default());
    }
    if let Err(causes) = admit::validate(res, &new, old) {
        return Err(ApiError::invalid(res.group, res.kind, &key.name, &causes));
    }
    if claim && let Some(o) = old {
        storage::admit_update(store, &key.name, o, &new)?;
    }
    // Server-owned metadata.
    let generation = match old {
        None => 1,
        Some(o) => {
            let before = o
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            // A status write never moves it (the status strategies keep it).
            if target.subresource.is_none() && spec_changed(res, o, &new) {
                before + 1
            } else {
                before
            }
        }
    };
    let created = old
        .and_then(|o| o.pointer("/metadata/creationTimestamp").cloned())
        .unwrap_or_else(|| json!(clock::now_rfc3339()));
    new["metadata"]["uid"] = uid;
    new["metadata"]["creationTimestamp"] = created;
    keep_deletion_state(res, key, old, &mut new)?;
    if has_generation(res.kind) {
        new["metadata"]["generation"] = json!(generation);
    } else if let Some(meta) = new["metadata"].as_object_mut() {
        meta.remove("generation");
    }
    managed::write(&mut new, entries);
    if let Some(plan) = &plan {
        plan.validate(Some(&new))?;
    }
    if target.subresource.is_none() {
        admit::simulate_status(res, &mut new);
    }
    if claim {
        storage::settle(store, &mut new);
    }
    if old.is_some_and(|o| unchanged(o, &new)) {
        // A no-op write keeps the stored object and its resourceVersion, as the API
        // server does.
        return Ok(old.cloned().unwrap_or(new));
    }
    if dry_run {
        new["metadata"]["resourceVersion"] = old
            .and_then(|o| o.pointer("/metadata/resourceVersion").cloned())
            .unwrap_or_else(|| json!(""));
        return Ok(new);
    }
    let stored = store
        .put_versioned(key.clone(), new)
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .clone();
    if deletion::is_terminating(&stored) || in_terminating_namespace {
        // A finalizer may have come off: let the collector finish what it can.
        deletion::settle(store)?;
    }
    Ok(stored)
}

/// The defaults of `res` (a Service's cluster IP allocated, but not by a dry run).
fn apply_defaults(store: &mut Store, res: &Resource, object: &mut Value, dry_run: bool) {
    admit::apply_defaults(res, object, || {
        if dry_run {
            "10.96.255.254".into()
        } else {
            store.next_cluster_ip()
        }
    });
}

/// The main resource ignores status when a status subresource exists.
fn keep_status(target: &Target, old: Option<&Value>, new: &mut Value) {
    if !target.resource.has_status || target.subresource.is_some() {
        return;
    }
    match old.and_then(|o| o.get("status")) {
        Some(s) => new["status"] = s.clone(),
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
}

/// What the server makes of an object mutating webhooks patched: its kind as the URL
/// says, status as the write may set it, a Secret's `stringData` folded in. A webhook
/// renaming the object fails the write (the local cluster does not follow it).
fn after_mutation(target: &Target, key: &Key, old: Option<&Value>, new: &mut Value) -> Result<()> {
    let res = target.resource;
    let text = |pointer: &str| {
        new.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let renamed = text("/metadata/name") != key.name
        || (res.namespaced && text("/metadata/namespace") != key.namespace);
    if renamed {
        return Err(ApiError::internal_error(
            "admission webhooks changed the object's name or namespace, which the local cluster does not follow",
        ));
    }
    if let Some(map) = new.as_object_mut() {
        map.insert("apiVersion".into(), json!(res.api_version()));
        map.insert("kind".into(), json!(res.kind));
    }
    if res.kind == "Secret" {
        fold_string_data(new);
    }
    keep_status(target, old, new);
    Ok(())
}

/// `deletionTimestamp` and `deletionGracePeriodSeconds` belong to the server: kept from
/// the stored object, dropped from a client's body. Once deletion has started, no new
/// finalizer may be added.
fn keep_deletion_state(
    res: &Resource,
    key: &Key,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<()> {
    let fields = ["deletionTimestamp", "deletionGracePeriodSeconds"];
    let old_meta = old.and_then(|o| o.get("metadata"));
    if let Some(meta) = new["metadata"].as_object_mut() {
        for field in fields {
            match old_meta.and_then(|m| m.get(field)) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
    }
    let Some(old) = old.filter(|o| deletion::is_terminating(o)) else {
        return Ok(());
    };
    let before = deletion::finalizers(old);
    let added: Vec<String> = deletion::finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        res.group,
        res.kind,
        &key.name,
        &[(
            "metadata.finalizers".to_owned(),
            format!(
                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
            ),
        )],
    ))
}

/// True when only the timestamps of managedFields differ.
fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// Kinds without a spec have no `metadata.generation` on a real server.
fn has_generation(kind: &str) -> bool {
    !matches!(
        kind,
        "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Namespace"
            | "Event"
            | "Endpoints"
            | "Role"
            | "RoleBinding"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "StorageClass"
    )
}

/// Generation moves on changes outside metadata and status (and, for Deployments, on
/// annotation changes too, as the real registry does).
fn spec_changed(res: &Resource, old: &Value, new: &Value) -> bool {
    let body = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    if body(old) != body(new) {
        return true;
    }
    res.kind == "Deployment"
        && old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations")
}

/// `stringData` merged into `data` (base64), as the API server stores Secrets.
fn fold_string_data(secret: &mut Value) {
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default().to_owned();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

/// Creates the namespaces and the default StorageClass every cluster starts with, when
/// missing.
pub fn bootstrap(store: &mut Store) -> Result<()> {
    let namespaces = resource("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces not served"))?;
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let target = Target {
            resource: namespaces,
            namespace: None,
            name: None,
            subresource: None,
        };
        if !store.contains(&target.key(name)) {
            let options = WriteOptions {
                manager: "gitsync-local-cluster".into(),
                ..WriteOptions::default()
            };
            create(
                store,
                &target,
                json!({"metadata": {"name": name}}),
                &options,
            )?;
        }
    }
    // The default StorageClass, as a real cluster's addon manager keeps it
    // (`EnsureExists`): made again when missing, left alone when changed.
    let classes = resource("storage.k8s.io", "v1", "storageclasses")
        .ok_or_else(|| ApiError::internal("storageclasses not served"))?;
    let target = Target {
        resource: classes,
        namespace: None,
        name: None,
        subresource: None,
    };
    let standard = storage::standard_class();
    let name = standard["metadata"]["name"].as_str().unwrap_or_default();
    if !store.contains(&target.key(name)) {
        let options = WriteOptions {
            manager: "gitsync-local-cluster".into(),
            ..WriteOptions::default()
        };
        create(store, &target, standard, &options)?;
    }
    Ok(())
}

/// The built-in resource at group/version/plural.
pub fn resource(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    kinds::by_plural(group, version, plural)
}

#[cfg(test)]
mod tests;
