//! Admission webhooks (`admissionregistration.k8s.io/v1`): the
//! MutatingWebhookConfigurations and ValidatingWebhookConfigurations stored in the
//! cluster are called on writes as a real API server calls them (see "Dynamic Admission
//! Control" in the Kubernetes documentation, and the apiserver's webhook dispatchers).
//!
//! - Order of a create or update (main resource or subresource, patches and server-side
//!   apply included): defaults, then the mutating webhooks (configurations by name, then
//!   their webhooks in order, each seeing the result of the one before, with the
//!   object's defaults applied again after each patch; a webhook with
//!   `reinvocationPolicy: IfNeeded` is called once more when a later one changed the
//!   object), then built-in validation, then the validating webhooks (all called; the
//!   first refusal wins), then storage. The field manager has run before: the webhooks
//!   see the write's managedFields, and what they change belongs to no manager. A
//!   DELETE calls both kinds with `oldObject` and no `object` (a mutating webhook that
//!   answers with a patch then fails the request). A write to a webhook configuration
//!   calls no webhook.
//! - Matching: `rules` (operations, apiGroups, apiVersions, resources with `*`, `*/*`,
//!   `pods/*` and `*/status` forms, scope), `namespaceSelector` (the labels of the
//!   object's Namespace, or of a Namespace object itself), `objectSelector` (the new or
//!   the old object), and `matchPolicy: Equivalent` across the served versions of a
//!   custom resource. Patches and applies are `UPDATE`, or `CREATE` when they create.
//! - The call: an `AdmissionReview` (`v1`, or `v1beta1` when the webhook lists it
//!   first) POSTed to `clientConfig.url` over HTTPS with `?timeout=<n>s`, trusting
//!   `clientConfig.caBundle` (or the system's roots when it is empty) by the rule of
//!   `gitsync-tls`, within `timeoutSeconds`. A `clientConfig.service` cannot be reached
//!   from a cluster without Services of its own: the call fails, saying to use `url`.
//! - Outcomes: a refusal fails the write with the webhook's `status` (code 400 when it
//!   gives none below 400) and `admission webhook "<name>" denied the request: <message>`;
//!   a failed call (unreachable, refused certificate, timeout, bad answer) fails it with
//!   500 `Internal error occurred: failed calling webhook "<name>": …` under
//!   `failurePolicy: Fail` and is skipped under `Ignore`. A dry run reaches a webhook
//!   (with `dryRun: true`) only when its `sideEffects` is `None` or `NoneOnDryRun`, and
//!   is refused with 400 `admission webhook "<name>" does not support dry run` otherwise.
//! - The configurations are defaulted (`failurePolicy: Fail`, `matchPolicy: Equivalent`,
//!   `timeoutSeconds: 10`, empty selectors, rule `scope: "*"`, `reinvocationPolicy:
//!   Never`, service port 443) and validated as the API server validates them.
//!
//! Where this emulator differs: a webhook is called synchronously while the store's lock
//! is held (the whole API waits for it, up to its timeout); the simulated controllers'
//! own writes (ReplicaSets, Pods, Endpoints) call no webhooks; `matchConditions` (CEL)
//! are refused when a configuration is written; the `scale` subresource's validating
//! webhooks are called before the Deployment's own validation rather than after; a
//! webhook may not rename the object.

mod call;
mod config;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::kinds::Resource;
use crate::status::ApiError;
use crate::store::{Key, Store};

pub use config::{apply_defaults, validate as validate_configuration};

/// The API group of the webhook configurations.
pub const GROUP: &str = "admissionregistration.k8s.io";
const MUTATING: &str = "mutatingwebhookconfigurations";
const VALIDATING: &str = "validatingwebhookconfigurations";

/// Who every request is made by: the local cluster authenticates no one.
const USERNAME: &str = "system:anonymous";
const USER_GROUPS: &[&str] = &["system:unauthenticated"];

/// The AdmissionReview versions this server sends.
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// What a request does, as admission names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// A group, a version and a kind (or a resource: a plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gv {
    pub group: String,
    pub version: String,
    /// The kind, or the resource (plural).
    pub name: String,
}

impl Gv {
    pub fn new(group: &str, version: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            name: name.to_owned(),
        }
    }

    fn kind_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "kind": self.name})
    }

    fn resource_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "resource": self.name})
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One write or delete as admission sees it (`admission.Attributes`); the new object
/// travels beside it, since mutating webhooks change it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The kind of the object sent (`autoscaling/v1 Scale` for the scale subresource).
    pub kind: Gv,
    pub resource: Gv,
    /// `""`, `status` or `scale`.
    pub subresource: String,
    pub name: String,
    /// The object's namespace; a Namespace's own name; `""` for other cluster-scoped
    /// objects.
    pub namespace: String,
    pub operation: Operation,
    pub dry_run: bool,
    /// `CreateOptions`, `UpdateOptions` or `DeleteOptions`.
    pub options: Value,
    pub old_object: Option<Value>,
}

impl Request {
    /// A create (`old` is `None`) or an update of `res`, through `subresource`.
    pub fn write(
        res: &Resource,
        subresource: Option<&str>,
        namespace: &str,
        name: &str,
        old: Option<&Value>,
        dry_run: bool,
        manager: &str,
    ) -> Self {
        let operation = if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        };
        let mut options = json!({
            "kind": if old.is_some() { "UpdateOptions" } else { "CreateOptions" },
            "apiVersion": "meta.k8s.io/v1",
        });
        if dry_run {
            options["dryRun"] = json!(["All"]);
        }
        if !manager.is_empty() {
            options["fieldManager"] = json!(manager);
        }
        Self::new(
            res,
            subresource,
            namespace,
            name,
            operation,
            dry_run,
            options,
        )
        .with_old(old.cloned())
    }

    /// A DELETE of `old` (`name` is `""` for a deletecollection, as the API server
    /// leaves it); `options` is the request's `DeleteOptions`.
    pub fn delete(
        res: &Resource,
        namespace: &str,
        name: &str,
        old: Value,
        dry_run: bool,
        options: Value,
    ) -> Self {
        Self::new(
            res,
            None,
            namespace,
            name,
            Operation::Delete,
            dry_run,
            options,
        )
        .with_old(Some(old))
    }

    fn new(
        res: &Resource,
        subresource: Option<&str>,
        namespace: &str,
        name: &str,
        operation: Operation,
        dry_run: bool,
        options: Value,
    ) -> Self {
        let is_namespace = res.group.is_empty() && res.plural == "namespaces";
        Self {
            kind: Gv::new(res.group, res.version, res.kind),
            resource: Gv::new(res.group, res.version, res.plural),
            subresource: subresource.unwrap_or_default().to_owned(),
            name: name.to_owned(),
            namespace: if is_namespace {
                name.to_owned()
            } else if res.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            operation,
            dry_run,
            options,
            old_object: None,
        }
    }

    fn with_old(mut self, old: Option<Value>) -> Self {
        self.old_object = old;
        self
    }

    fn is_namespace(&self) -> bool {
        self.resource.group.is_empty() && self.resource.name == "namespaces"
    }

    /// Writes to the webhook configurations themselves call no webhook
    /// (`IsExemptAdmissionConfigurationResource`).
    fn exempt(&self) -> bool {
        self.kind.group == GROUP
            && matches!(
                self.kind.name.as_str(),
                "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration"
            )
    }
}

/// What a failed call does (`failurePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailurePolicy {
    /// The request fails.
    Fail,
    /// The webhook is skipped.
    Ignore,
}

/// Whether rules match other versions of the same resource (`matchPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchPolicy {
    Exact,
    Equivalent,
}

/// One webhook of a stored configuration, defaulted.
#[derive(Debug, Clone)]
pub struct Hook {
    pub configuration: String,
    pub name: String,
    pub mutating: bool,
    rules: Vec<Value>,
    failure_policy: FailurePolicy,
    match_policy: MatchPolicy,
    namespace_selector: Value,
    object_selector: Value,
    side_effects: String,
    pub timeout: Duration,
    review_versions: Vec<String>,
    reinvoke: bool,
    pub client_config: Value,
}

impl Hook {
    /// The webhooks of a stored configuration.
    fn of_configuration(configuration: &Value, mutating: bool) -> Vec<Self> {
        let mut configuration = configuration.clone();
        apply_defaults(mutating, &mut configuration);
        let config_name = text(&configuration, "/metadata/name");
        let list = configuration
            .get("webhooks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        list.iter()
            .map(|w| Self {
                configuration: config_name.clone(),
                name: text(w, "/name"),
                mutating,
                rules: w
                    .get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                failure_policy: if text(w, "/failurePolicy") == "Ignore" {
                    FailurePolicy::Ignore
                } else {
                    FailurePolicy::Fail
                },
                match_policy: if text(w, "/matchPolicy") == "Exact" {
                    MatchPolicy::Exact
                } else {
                    MatchPolicy::Equivalent
                },
                namespace_selector: w.get("namespaceSelector").cloned().unwrap_or_default(),
                object_selector: w.get("objectSelector").cloned().unwrap_or_default(),
                side_effects: text(w, "/sideEffects"),
                timeout: Duration::from_secs(
                    w.get("timeoutSeconds")
                        .and_then(Value::as_u64)
                        .unwrap_or(10),
                ),
                review_versions: w
                    .get("admissionReviewVersions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                reinvoke: text(w, "/reinvocationPolicy") == "IfNeeded",
                client_config: w.get("clientConfig").cloned().unwrap_or_default(),
            })
            .collect()
    }
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The resource and kind a webhook is called with (another version than the request's
/// when it matched through `matchPolicy: Equivalent`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invocation {
    resource: Gv,
    kind: Gv,
}

/// Posts an `AdmissionReview` to a webhook: its answer, or why the call failed (the
/// reason of a failed call, e.g. `failed to call webhook: Post "…": …`).
pub type Caller<'a> = dyn Fn(&Hook, &Value) -> Result<Value, String> + 'a;

/// Why a webhook did not let the request through.
#[derive(Debug)]
enum Failure {
    /// The call failed (`ErrCallingWebhook`): the failure policy decides.
    Calling(String),
    /// A refusal or an error the failure policy does not excuse.
    Status(ApiError),
}

/// The webhooks a request may call, and what matching them needs, read from the store
/// once.
#[derive(Debug)]
pub struct Plan {
    request: Request,
    mutating: Vec<Hook>,
    validating: Vec<Hook>,
    /// The labels of the request's namespace (of the Namespace itself for one) as
    /// stored.
    namespace_labels: Option<Value>,
    /// The other served versions of the request's resource, with their kinds.
    equivalents: Vec<Invocation>,
}

impl Plan {
    /// The plan for `request`, or `None` when no webhook is configured or the request
    /// is exempt.
    pub fn load(store: &Store, request: Request) -> Option<Self> {
        if request.exempt() {
            return None;
        }
        let hooks = |plural: &str, mutating: bool| -> Vec<Hook> {
            let mut configurations: Vec<Value> = store.list(GROUP, plural, None).collect();
            configurations.sort_by_key(|c| text(c, "/metadata/name"));
            configurations
                .iter()
                .flat_map(|c| Hook::of_configuration(c, mutating))
                .collect()
        };
        let mutating = hooks(MUTATING, true);
        let validating = hooks(VALIDATING, false);
        if mutating.is_empty() && validating.is_empty() {
            return None;
        }
        let namespace_labels = (!request.namespace.is_empty())
            .then(|| store.get(&Key::namespace(&request.namespace)))
            .flatten()
            .and_then(|ns| ns.pointer("/metadata/labels").cloned());
        let equivalents = store
            .catalog()
            .all()
            .filter(|r| {
                r.group == request.resource.group
                    && r.plural == request.resource.name
                    && r.version != request.resource.version
            })
            .map(|r| Invocation {
                resource: Gv::new(r.group, r.version, r.plural),
                kind: if request.subresource == "scale" {
                    request.kind.clone()
                } else {
                    Gv::new(r.group, r.version, r.kind)
                },
            })
            .collect();
        Some(Self {
            request,
            mutating,
            validating,
            namespace_labels,
            equivalents,
        })
    }

    /// Calls the mutating webhooks over HTTPS; see [`Plan::mutate_with`].
    pub fn mutate(
        &self,
        object: Option<&mut Value>,
        redefault: &mut dyn FnMut(&mut Value),
    ) -> Result<(), ApiError> {
        self.mutate_with(object, redefault, &call::post_review)
    }

    /// Calls the validating webhooks over HTTPS; see [`Plan::validate_with`].
    pub fn validate(&self, object: Option<&Value>) -> Result<(), ApiError> {
        self.validate_with(object, &call::post_review)
    }

    /// The mutating webhooks, in order, each patching `object` (`None` for a DELETE);
    /// `redefault` applies the kind's defaults after each patch. Those with
    /// `reinvocationPolicy: IfNeeded` that saw the object before a later webhook changed
    /// it are called once more, in order.
    pub fn mutate_with(
        &self,
        mut object: Option<&mut Value>,
        redefault: &mut dyn FnMut(&mut Value),
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let mut invoked_reinvocable: Vec<usize> = Vec::new();
        let mut reinvoke: BTreeSet<usize> = BTreeSet::new();
        for round in 0..2 {
            if round == 1 && reinvoke.is_empty() {
                break;
            }
            for (i, hook) in self.mutating.iter().enumerate() {
                if round == 1 && !reinvoke.contains(&i) {
                    continue;
                }
                let Some(invocation) = self.invocation(hook, object.as_deref()) else {
                    continue;
                };
                match self.call(hook, &invocation, object.as_deref(), caller) {
                    Ok(Some(patched)) => {
                        if let Some(object) = object.as_deref_mut() {
                            let changed = patched != *object;
                            *object = patched;
                            redefault(object);
                            if changed && round == 0 {
                                reinvoke.extend(invoked_reinvocable.iter().copied());
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(failure) => fail(hook, failure)?,
                }
                if round == 0 && hook.reinvoke {
                    invoked_reinvocable.push(i);
                }
            }
        }
        Ok(())
    }

    /// The validating webhooks, every one that matches (a real server calls them at
    /// once): the first refusal or failure, in order, fails the request.
    pub fn validate_with(&self, object: Option<&Value>, caller: &Caller) -> Result<(), ApiError> {
        let mut first = None;
        for hook in &self.validating {
            let Some(invocation) = self.invocation(hook, object) else {
                continue;
            };
            if let Err(failure) = self.call(hook, &invocation, object, caller)
                && let Err(e) = fail(hook, failure)
            {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Whether `hook` is called for this request and `object`, and with what resource
    /// and kind (`ShouldCallHook`).
    fn invocation(&self, hook: &Hook, object: Option<&Value>) -> Option<Invocation> {
        let request = &self.request;
        if !self.namespace_matches(hook, object) {
            return None;
        }
        if !object_selector_matches(&hook.object_selector, object, request.old_object.as_ref()) {
            return None;
        }
        let own = Invocation {
            resource: request.resource.clone(),
            kind: request.kind.clone(),
        };
        if hook
            .rules
            .iter()
            .any(|r| rule_matches(r, request, &own.resource))
        {
            return Some(own);
        }
        if hook.match_policy == MatchPolicy::Exact {
            return None;
        }
        hook.rules.iter().find_map(|r| {
            self.equivalents
                .iter()
                .find(|e| rule_matches(r, request, &e.resource))
                .cloned()
        })
    }

    /// `namespaceSelector`: the labels of the request's namespace (of a Namespace being
    /// created or updated, its own new labels); cluster-scoped objects other than
    /// Namespaces always match.
    fn namespace_matches(&self, hook: &Hook, object: Option<&Value>) -> bool {
        let request = &self.request;
        if request.namespace.is_empty() && !request.is_namespace() {
            return true;
        }
        let own_labels = request.is_namespace()
            && request.subresource.is_empty()
            && request.operation != Operation::Delete;
        let labels = if own_labels {
            object.and_then(|o| o.pointer("/metadata/labels"))
        } else {
            self.namespace_labels.as_ref()
        };
        crate::selector::label_selector_matches(Some(&hook.namespace_selector), labels)
    }

    /// Calls one webhook: the patched object (mutating webhooks that sent a patch), or
    /// nothing.
    fn call(
        &self,
        hook: &Hook,
        invocation: &Invocation,
        object: Option<&Value>,
        caller: &Caller,
    ) -> Result<Option<Value>, Failure> {
        let request = &self.request;
        if request.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(Failure::Status(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            ))));
        }
        let Some(version) = hook
            .review_versions
            .iter()
            .find(|v| REVIEW_VERSIONS.contains(&v.as_str()))
        else {
            return Err(Failure::Calling(
                "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)".into(),
            ));
        };
        let uid = crate::clock::uid(&format!("admission/{}", hook.name));
        let sent = object.map(|o| convert(o, &invocation.kind, request));
        let old = request
            .old_object
            .as_ref()
            .map(|o| convert(o, &invocation.kind, request));
        let review = review(
            request,
            invocation,
            sent.as_ref(),
            old.as_ref(),
            version,
            &uid,
        );
        let response = caller(hook, &review).map_err(Failure::Calling)?;
        let verdict = verify(&response, &uid, version, hook.mutating)
            .map_err(|e| Failure::Calling(format!("received invalid webhook response: {e}")))?;
        if !verdict.allowed {
            return Err(Failure::Status(denial(&hook.name, verdict.status.as_ref())));
        }
        let Some(patch) = verdict.patch else {
            return Ok(None);
        };
        let ops: Value = serde_json::from_slice(&patch).map_err(|e| {
            Failure::Calling(format!(
                "received undecodable patch in webhook response: {e}"
            ))
        })?;
        if !ops.is_array() {
            return Err(Failure::Calling(
                "received undecodable patch in webhook response: a JSON patch must be an array of operations".into(),
            ));
        }
        if ops.as_array().is_some_and(Vec::is_empty) {
            return Ok(None);
        }
        let Some(sent) = sent else {
            return Err(Failure::Status(ApiError::internal_error(&format!(
                "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                hook.name
            ))));
        };
        if verdict.patch_type != "JSONPatch" {
            return Err(Failure::Calling(format!(
                "unsupported patch type {:?}",
                verdict.patch_type
            )));
        }
        let patched = crate::patch::json_patch(&sent, &ops)
            .map_err(|e| Failure::Status(ApiError::internal_error(&e)))?;
        if !patched.is_object() {
            return Err(Failure::Status(ApiError::internal_error(&format!(
                "admission webhook {:?} patched the object into something that is not an object",
                hook.name
            ))));
        }
        Ok(Some(convert(&patched, &request.kind, request)))
    }
}

/// A failure, through the webhook's failure policy: `Ok` when it is ignored.
fn fail(hook: &Hook, failure: Failure) -> Result<(), ApiError> {
    match failure {
        Failure::Calling(reason) if hook.failure_policy == FailurePolicy::Ignore => {
            tracing::warn!(configuration = %hook.configuration, webhook = %hook.name, %reason, "failed calling webhook, failing open");
            Ok(())
        }
        Failure::Calling(reason) => Err(ApiError::internal_error(&format!(
            "failed calling webhook {:?}: {reason}",
            hook.name
        ))),
        Failure::Status(e) => Err(e),
    }
}

/// The object as the version `kind` names (custom resources convert by apiVersion
/// alone; a Scale is always `autoscaling/v1`).
fn convert(object: &Value, kind: &Gv, request: &Request) -> Value {
    let mut object = object.clone();
    if request.subresource != "scale"
        && let Some(map) = object.as_object_mut()
    {
        map.insert("apiVersion".into(), json!(kind.api_version()));
    }
    object
}

/// One rule of a webhook against the request (`rules.Matcher`), for `resource` (the
/// request's or an equivalent one).
fn rule_matches(rule: &Value, request: &Request, resource: &Gv) -> bool {
    let list = |field: &str| -> Vec<&str> {
        rule.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let exact_or_wildcard = |field: &str, wanted: &str| {
        list(field)
            .iter()
            .any(|item| *item == "*" || *item == wanted)
    };
    let scope = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "*" => true,
        "Namespaced" => !request.is_namespace() && !request.namespace.is_empty(),
        "Cluster" => request.is_namespace() || request.namespace.is_empty(),
        _ => false,
    };
    let resource_matches = list("resources").iter().any(|item| {
        let (res, sub) = item.split_once('/').unwrap_or((item, ""));
        (res == "*" || res == resource.name) && (sub == "*" || sub == request.subresource)
    });
    scope
        && exact_or_wildcard("operations", request.operation.as_str())
        && exact_or_wildcard("apiGroups", &resource.group)
        && exact_or_wildcard("apiVersions", &resource.version)
        && resource_matches
}

/// `objectSelector`: the new or the old object's labels match; no object never matches
/// a selector that is not empty.
fn object_selector_matches(selector: &Value, object: Option<&Value>, old: Option<&Value>) -> bool {
    let empty = selector.is_null() || selector.as_object().is_some_and(serde_json::Map::is_empty);
    if empty {
        return true;
    }
    [object, old].into_iter().flatten().any(|o| {
        crate::selector::label_selector_matches(Some(selector), o.pointer("/metadata/labels"))
    })
}

/// The `AdmissionReview` sent to a webhook.
fn review(
    request: &Request,
    invocation: &Invocation,
    object: Option<&Value>,
    old: Option<&Value>,
    version: &str,
    uid: &str,
) -> Value {
    let mut body = json!({
        "uid": uid,
        "kind": invocation.kind.kind_json(),
        "resource": invocation.resource.resource_json(),
        "requestKind": request.kind.kind_json(),
        "requestResource": request.resource.resource_json(),
        "operation": request.operation.as_str(),
        "userInfo": {"username": USERNAME, "groups": USER_GROUPS},
        "object": object.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": request.dry_run,
        "options": request.options,
    });
    for (field, value) in [
        ("subResource", &request.subresource),
        ("requestSubResource", &request.subresource),
        ("name", &request.name),
        ("namespace", &request.namespace),
    ] {
        if !value.is_empty() {
            body[field] = json!(value);
        }
    }
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": body,
    })
}

/// What a webhook answered (`VerifyAdmissionResponse`).
#[derive(Debug, PartialEq)]
struct Verdict {
    allowed: bool,
    status: Option<Value>,
    /// The decoded `patch`, when one was sent.
    patch: Option<Vec<u8>>,
    patch_type: String,
}

/// Checks an answer as the API server does: a `response` with the request's `uid`, in
/// the version sent (`v1`), a patch only from a mutating webhook and only with its
/// type.
fn verify(review: &Value, uid: &str, version: &str, mutating: bool) -> Result<Verdict, String> {
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".into());
    };
    let patch_text = response.get("patch").and_then(Value::as_str);
    let patch = patch_text
        .filter(|p| !p.is_empty())
        .map(|p| {
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("response.patch is not base64: {e}"))
        })
        .transpose()?;
    let patch_type = response.get("patchType").and_then(Value::as_str);
    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let status = response.get("status").filter(|s| s.is_object()).cloned();
    if version == "v1beta1" {
        // Neither the uid nor the patch type was checked in v1beta1.
        let patch = if mutating { patch } else { None };
        let patch_type = if patch.is_some() { "JSONPatch" } else { "" };
        return Ok(Verdict {
            allowed,
            status,
            patch,
            patch_type: patch_type.into(),
        });
    }
    let got_uid = response
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = review
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{version}, Kind={kind}"
        ));
    }
    if mutating {
        match (&patch, patch_type) {
            (Some(_), None) => {
                return Err("webhook returned response.patch but not response.patchType".into());
            }
            (None, Some(_)) => {
                return Err("webhook returned response.patchType but not response.patch".into());
            }
            (_, Some("")) => {
                return Err("webhook returned invalid response.patchType of \"\"".into());
            }
            _ => {}
        }
    } else {
        if patch.is_some() {
            return Err("validating webhook may not return response.patch".into());
        }
        if patch_type.is_some() {
            return Err("validating webhook may not return response.patchType".into());
        }
    }
    Ok(Verdict {
        allowed,
        status,
        patch,
        patch_type: patch_type.unwrap_or_default().to_owned(),
    })
}

/// A webhook's refusal as the API server returns it (`ToStatusErr`): the webhook's
/// status, at least 400, its message prefixed with who denied the request.
fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let empty = json!({});
    let status = status.unwrap_or(&empty);
    let denied = format!("admission webhook {webhook:?} denied the request");
    let field = |name: &str| status.get(name).and_then(Value::as_str).unwrap_or_default();
    let message = match (field("message"), field("reason")) {
        (m, _) if !m.is_empty() => format!("{denied}: {m}"),
        (_, r) if !r.is_empty() => format!("{denied}: {r}"),
        _ => format!("{denied} without explanation"),
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    ApiError {
        code,
        reason: "",
        message,
        details: status.get("details").filter(|d| !d.is_null()).cloned(),
        custom_reason: Some(field("reason").to_owned()),
    }
}

#[cfg(test)]
mod tests;
