//! HTTP: routing Kubernetes API paths to [`crate::api`], discovery documents, request
//! counters (`/_gitsync/stats`), body limits and content types; fault injection wraps
//! it all (see [`crate::faults`]). Every error is a
//! `Status` object; nothing here panics on input.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Stats;
use crate::api::{self, ListOptions, Target, WriteOptions};
use crate::discovery;
use crate::kinds::Catalog;
use crate::selector::{FieldSelector, Selector};
use crate::status::ApiError;
use crate::store::Store;

/// Largest accepted object, like etcd's request limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared server state.
pub struct Shared {
    pub store: Mutex<Store>,
    pub counters: Counters,
    pub url: String,
    /// The simulated controllers' clock.
    pub clock: crate::clock::SimClock,
    /// Injected latency and failures (see [`crate::faults`]).
    pub faults: crate::faults::State,
}

/// Request counters by verb.
#[derive(Default)]
pub struct Counters {
    counts: Mutex<std::collections::BTreeMap<String, u64>>,
    reads: AtomicU64,
    writes: AtomicU64,
    dry_runs: AtomicU64,
    injected: AtomicU64,
    writes_by_namespace: Mutex<std::collections::BTreeMap<String, u64>>,
    /// API write requests (any method but GET, dry runs too) being handled now, and
    /// the most at once since the last reset: a client's write concurrency.
    writes_in_flight: AtomicU64,
    max_writes_in_flight: AtomicU64,
}

/// One write request in flight, counted until dropped.
pub(crate) struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.writes_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counters {
    fn count(&self, verb: &str, dry_run: bool, namespace: Option<&str>) {
        let read = matches!(verb, "get" | "list" | "watch" | "discovery");
        let kind = match verb {
            _ if read => &self.reads,
            _ if dry_run => &self.dry_runs,
            _ => &self.writes,
        };
        kind.fetch_add(1, Ordering::Relaxed);
        if !read
            && !dry_run
            && let Ok(mut by_ns) = self.writes_by_namespace.lock()
        {
            *by_ns
                .entry(namespace.unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(verb.to_owned()).or_default() += 1;
        }
    }

    /// Counts a write request in flight until the returned guard is dropped.
    pub(crate) fn write_in_flight(&self) -> InFlight<'_> {
        let now = self.writes_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_writes_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    /// A request failed by an injected fault (counted here only).
    pub fn count_injected(&self) {
        self.injected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        Stats {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            dry_run: self.dry_runs.load(Ordering::Relaxed),
            injected: self.injected.load(Ordering::Relaxed),
            max_writes_in_flight: self.max_writes_in_flight.load(Ordering::Relaxed),
            by_verb: self.counts.lock().map(|c| c.clone()).unwrap_or_default(),
            writes_by_namespace: self
                .writes_by_namespace
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
        }
    }

    fn reset(&self) {
        self.reads.store(0, Ordering::Relaxed);
        self.writes.store(0, Ordering::Relaxed);
        self.dry_runs.store(0, Ordering::Relaxed);
        self.injected.store(0, Ordering::Relaxed);
        self.max_writes_in_flight.store(
            self.writes_in_flight.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
        if let Ok(mut counts) = self.writes_by_namespace.lock() {
            counts.clear();
        }
    }
}

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_gitsync/stats",
            axum::routing::get(|State(s): State<Arc<Shared>>| async move {
                axum::Json(s.counters.snapshot())
            })
            .delete(|State(s): State<Arc<Shared>>| async move {
                s.counters.reset();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_gitsync/clock",
            axum::routing::get(|State(s): State<Arc<Shared>>| async move {
                axum::Json(json!({"nowMs": s.clock.now_ms()}))
            })
            .post(advance_clock),
        )
        .merge(crate::faults::routes())
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY * 2))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            crate::faults::inject,
        ))
        .with_state(shared)
}

/// `POST /_gitsync/clock?advance=90s`: moves simulated time forward.
async fn advance_clock(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(text) = query.get("advance") else {
        return ApiError::bad_request("advance=<duration> is required, e.g. advance=90s".into())
            .into_response();
    };
    match gitsync_core::duration::parse(text) {
        Ok(by) => {
            shared.clock.advance(by);
            axum::Json(json!({"nowMs": shared.clock.now_ms()})).into_response()
        }
        Err(e) => ApiError::bad_request(format!("advance: {e}")).into_response(),
    }
}

/// A parsed API path.
enum Route {
    Discovery(Value),
    Resource(Target),
}

/// Routes a path with the kinds served right now (CRDs come and go).
fn resolve(shared: &Shared, path: &str) -> Result<Route, ApiError> {
    let store = shared
        .store
        .lock()
        .map_err(|_| ApiError::internal("store lock poisoned"))?;
    route(path, &shared.url, store.catalog())
}

fn route(path: &str, url: &str, catalog: &Catalog) -> Result<Route, ApiError> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let not_found = || ApiError::no_route(path);
    match parts.as_slice() {
        ["version"] => return Ok(Route::Discovery(discovery::version())),
        ["openapi", "v3"] => return Ok(Route::Discovery(discovery::openapi_index(catalog))),
        ["openapi", "v3", rest @ ..] => {
            return Ok(Route::Discovery(
                discovery::openapi_group(catalog, &rest.join("/")).ok_or_else(not_found)?,
            ));
        }
        ["api"] => return Ok(Route::Discovery(discovery::core_versions(url))),
        ["apis"] => return Ok(Route::Discovery(discovery::groups(catalog))),
        ["api", "v1"] => {
            return Ok(Route::Discovery(
                discovery::resources(catalog, "", "v1").ok_or_else(not_found)?,
            ));
        }
        ["apis", group] => {
            return Ok(Route::Discovery(
                discovery::group(catalog, group).ok_or_else(not_found)?,
            ));
        }
        ["apis", group, version] => {
            return Ok(Route::Discovery(
                discovery::resources(catalog, group, version).ok_or_else(not_found)?,
            ));
        }
        _ => {}
    }
    let crate::path::ResourcePath {
        group,
        version,
        namespace,
        plural,
        name,
        subresource,
    } = crate::path::parse(path).ok_or_else(not_found)?;
    let resource = catalog
        .by_plural(group, version, plural)
        .ok_or_else(not_found)?;
    let served = |s: &str| {
        (s == "status" && resource.has_status)
            || (s == "scale" && crate::kinds::has_scale(resource.kind))
    };
    if subresource.is_some_and(|s| !served(s)) {
        return Err(not_found());
    }
    if namespace.is_some() && !resource.namespaced {
        return Err(not_found());
    }
    Ok(Route::Resource(Target {
        resource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    }))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if method == Method::GET && watching {
        return match watch(&shared, &uri, &query) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => e.into_response(),
        };
    }
    match serve(&shared, &method, &uri, &query, &headers, &body) {
        Ok((code, value)) => (code, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn serve(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let target = match resolve(shared, uri.path())? {
        Route::Discovery(doc) => {
            if *method != Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            shared.counters.count("discovery", false, None);
            return Ok((StatusCode::OK, doc));
        }
        Route::Resource(t) => t,
    };
    if target.resource.namespaced && target.namespace.is_none() {
        // Outside a namespace a namespaced resource only lists (and watches).
        match (method, &target.name) {
            (&Method::GET, None) => {}
            (_, Some(_)) => return Err(ApiError::no_route(uri.path())),
            _ => return Err(ApiError::not_allowed_here()),
        }
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large());
    }
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let options = WriteOptions {
        dry_run,
        manager: query
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| default_manager(headers)),
        force: query.get("force").is_some_and(|v| v == "true"),
        admitted: false,
    };
    let lock = || {
        shared
            .store
            .lock()
            .map_err(|_| ApiError::internal("store lock poisoned"))
    };
    if target.subresource.as_deref() == Some("scale") {
        return scale(shared, method, &target, headers, body, &options);
    }
    let verb;
    let result = match (method.clone(), target.name.is_some()) {
        (Method::GET, true) => {
            verb = "get";
            api::get(&*lock()?, &target).map(|v| (StatusCode::OK, v))
        }
        (Method::GET, false) => {
            verb = "list";
            let options = list_options(query)?;
            api::list(&*lock()?, &target, &options).map(|v| (StatusCode::OK, v))
        }
        (Method::POST, false) => {
            verb = "create";
            let object = parse_object(headers, body)?;
            api::create(&mut *lock()?, &target, object, &options).map(|v| (StatusCode::CREATED, v))
        }
        (Method::PUT, true) => {
            verb = "update";
            let object = parse_object(headers, body)?;
            api::update(&mut *lock()?, &target, object, &options).map(|v| (StatusCode::OK, v))
        }
        (Method::PATCH, true) => {
            let media = media_type(headers);
            match media.as_str() {
                "application/apply-patch+yaml" => {
                    verb = "apply";
                    let config = parse_yaml(body)?;
                    let mut options = options.clone();
                    options.manager = query.get("fieldManager").cloned().unwrap_or_default();
                    let store = &mut *lock()?;
                    let existed = api::get(store, &target).is_ok();
                    api::apply(store, &target, &config, &options).map(|v| {
                        (
                            if existed {
                                StatusCode::OK
                            } else {
                                StatusCode::CREATED
                            },
                            v,
                        )
                    })
                }
                "application/merge-patch+json"
                | "application/strategic-merge-patch+json"
                | "application/json-patch+json" => {
                    verb = "patch";
                    let patch = parse_json(body)?;
                    let kind = match media.as_str() {
                        "application/merge-patch+json" => api::PatchType::Merge,
                        "application/strategic-merge-patch+json" => api::PatchType::Strategic,
                        _ => api::PatchType::Json,
                    };
                    api::patch(&mut *lock()?, &target, &patch, kind, &options)
                        .map(|v| (StatusCode::OK, v))
                }
                other => {
                    verb = "patch";
                    Err(ApiError::unsupported_media_type(other))
                }
            }
        }
        (Method::DELETE, true) => {
            verb = "delete";
            let (delete_options, body_dry_run) = delete_options(query, body)?;
            let mut options = options.clone();
            options.dry_run |= body_dry_run;
            api::delete(&mut *lock()?, &target, &options, &delete_options)
                .map(|v| (StatusCode::OK, v))
        }
        (Method::DELETE, false) => {
            verb = "deletecollection";
            let list = list_options(query)?;
            let (delete_options, body_dry_run) = delete_options(query, body)?;
            let mut options = options.clone();
            options.dry_run |= body_dry_run;
            api::delete_collection(&mut *lock()?, &target, &list, &options, &delete_options)
                .map(|v| (StatusCode::OK, v))
        }
        (other, _) => {
            verb = "unsupported";
            Err(ApiError::method_not_allowed(other.as_str()))
        }
    };
    shared
        .counters
        .count(verb, dry_run, target.namespace.as_deref());
    result
}

/// Starts a watch stream.
fn watch(shared: &Shared, uri: &Uri, query: &HashMap<String, String>) -> Result<Body, ApiError> {
    let Route::Resource(target) = resolve(shared, uri.path())? else {
        return Err(ApiError::method_not_allowed("watch on discovery"));
    };
    if target.name.is_some() || target.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "watch of one object (use fieldSelector=metadata.name=…)",
        ));
    }
    let resource_version = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
        ),
        None => None,
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1_800)
        .min(3_600);
    let options = crate::watch::Options {
        list: list_options(query)?,
        resource_version,
        bookmarks: query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true"),
        timeout: std::time::Duration::from_secs(timeout),
        bookmark_every: std::time::Duration::from_mins(1),
    };
    let store = shared
        .store
        .lock()
        .map_err(|_| ApiError::internal("store lock poisoned"))?;
    shared.counters.count("watch", false, None);
    Ok(crate::watch::start(&store, target, options))
}

/// The `scale` subresource: GET, PUT and PATCH of an `autoscaling/v1` Scale.
fn scale(
    shared: &Shared,
    method: &Method,
    target: &Target,
    headers: &HeaderMap,
    body: &[u8],
    options: &WriteOptions,
) -> Result<(StatusCode, Value), ApiError> {
    let mut store = shared
        .store
        .lock()
        .map_err(|_| ApiError::internal("store lock poisoned"))?;
    let (verb, result) = match *method {
        Method::GET => ("get", api::get_scale(&store, target)),
        Method::PUT => (
            "update",
            parse_json(body).and_then(|s| api::write_scale(&mut store, target, &s, options)),
        ),
        Method::PATCH => {
            let media = media_type(headers);
            let result = parse_json(body).and_then(|patch| {
                let current = api::get_scale(&store, target)?;
                let wanted = match media.as_str() {
                    "application/json-patch+json" => {
                        crate::patch::json_patch(&current, &patch).map_err(ApiError::bad_request)?
                    }
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                        crate::patch::merge(&current, &patch)
                    }
                    other => return Err(ApiError::unsupported_media_type(other)),
                };
                api::write_scale(&mut store, target, &wanted, options)
            });
            ("patch", result)
        }
        _ => (
            "unsupported",
            Err(ApiError::method_not_allowed(method.as_str())),
        ),
    };
    drop(store);
    shared
        .counters
        .count(verb, options.dry_run, target.namespace.as_deref());
    result.map(|v| (StatusCode::OK, v))
}

/// The manager name the API server derives from the user agent (`kubectl/v1.36 …` →
/// `kubectl`) when a write names none.
fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// `DeleteOptions` from the body (as kubectl and kube-rs send them) and the query:
/// propagation policy (or the older `orphanDependents`), preconditions, dry-run.
fn delete_options(
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<(crate::deletion::DeleteOptions, bool), ApiError> {
    use crate::deletion::{DeleteOptions, Propagation};
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(body)?
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| query.get("propagationPolicy").map(String::as_str));
    let orphan = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
    let propagation = match (policy, orphan) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "orphanDependents and propagationPolicy cannot both be set".into(),
            ));
        }
        (Some(p), None) => Some(Propagation::parse(p)?),
        (None, Some(true)) => Some(Propagation::Orphan),
        (None, Some(false)) => Some(Propagation::Background),
        (None, None) => None,
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let dry_run = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok((
        DeleteOptions {
            propagation,
            precondition_uid: text(body.pointer("/preconditions/uid")),
            precondition_resource_version: text(body.pointer("/preconditions/resourceVersion")),
        },
        dry_run,
    ))
}

fn list_options(query: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        labels: Selector::parse(query.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        fields: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        limit: query.get("limit").and_then(|l| l.parse().ok()),
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

/// The request's media type without parameters, lower-cased ("" when absent).
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The body of a create or update, in the formats the API server accepts for every
/// kind: JSON and YAML. Protobuf (what `kubectl create` sends for built-in kinds) is
/// refused with 415, as a server without that serializer does.
fn parse_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    match media_type(headers).as_str() {
        "" | "application/json" => parse_json(body),
        "application/yaml" => parse_yaml(body),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8".into()))?;
    gitsync_core::yaml::parse_documents("request", text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        .into_iter()
        .next()
        .map(|d| d.value)
        .ok_or_else(|| ApiError::bad_request("the request body is empty".into()))
}
