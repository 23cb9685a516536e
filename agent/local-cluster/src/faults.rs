//! Fault and latency injection on the Kubernetes API paths (`/api`, `/apis`), for the
//! sync engine's retry tests and latency benchmarks (and the count of writes in flight
//! at once, taken here so that it spans the added latency): an added delay before every API
//! request, and rules that fail matching requests with a `Status` (429, 500, 503, 409,
//! …) or by closing the connection. Configured by `GITSYNC_LOCAL_CLUSTER_LATENCY_MS` at
//! start, `LocalCluster::set_faults` and `/_gitsync/faults`.
//!
//! It owns the matching only: a failed request never reaches `crate::api`, so it
//! changes no object. It must not touch `/_gitsync/*`, `/version`, `/openapi` or any
//! other path outside `/api` and `/apis`, and discovery documents are delayed but never
//! failed.
//!
//! A `disconnect` rule answers with a body that fails before its first byte, so hyper
//! drops the connection with nothing written: the client sees the connection closed
//! before the message completed (hyper's `IncompleteMessage`), as when an API server
//! restarts, not a refused connection. Note for tests: `kube::Client` retries 429, 503
//! and 504 itself (up to 15 times with backoff, honouring `Retry-After`) unless its
//! config's `default_retry` is off, so such a rule with a small count is absorbed by the
//! client and only shows in the `injected` counter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{self, Query, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::server::{MAX_BODY, Shared};
use crate::status::ApiError;

/// The verbs a rule may name (Kubernetes' RBAC verbs; server-side apply is `patch`).
const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The whole fault configuration: what `POST /_gitsync/faults` takes and `GET` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Milliseconds every API request waits before it is handled (0: none).
    #[serde(default)]
    pub latency_ms: u64,
    /// Tried in order; the first unspent rule that matches a request fails it.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// One injected failure: what it does (`status` or `disconnect`), how many times
/// (`count`) and to which requests (the other fields; an absent one matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// The HTTP code (400–599) of the `Status` returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Close the connection without a response instead (the client sees it closed
    /// before the message completed, as when an API server or proxy goes away).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disconnect: bool,
    /// How many matching requests fail before the rule is spent; absent: all, until
    /// the faults are cleared. `GET /_gitsync/faults` reports what remains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch` (server-side apply too),
    /// `delete`, `deletecollection`; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// The plural (`configmaps`), or `plural/subresource` (`deployments/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The object's name (from the path, or from the body of a JSON create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sent as the `Retry-After` header and `details.retryAfterSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// `true`: dry-run requests only; `false`: the others only; absent: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// A configuration that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rules[{index}]: {problem}")]
    InvalidRule { index: usize, problem: String },
}

impl Faults {
    /// Checks every rule; the first problem found.
    pub fn validate(&self) -> Result<(), Error> {
        for (index, rule) in self.rules.iter().enumerate() {
            let invalid = |problem: String| Error::InvalidRule { index, problem };
            match (rule.status, rule.disconnect) {
                (Some(_), true) => {
                    return Err(invalid("set either status or disconnect, not both".into()));
                }
                (None, false) => return Err(invalid("status or disconnect is required".into())),
                (Some(code), false) if !(400..=599).contains(&code) => {
                    return Err(invalid(format!("status {code} is not between 400 and 599")));
                }
                _ => {}
            }
            if rule.disconnect && rule.retry_after_seconds.is_some() {
                return Err(invalid("retryAfterSeconds needs a status".into()));
            }
            if let Some(verb) = rule.verbs.iter().find(|v| !VERBS.contains(&v.as_str())) {
                return Err(invalid(format!(
                    "unknown verb {verb:?} (one of {})",
                    VERBS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The live configuration, rule counts decremented as they fire.
#[derive(Default)]
pub(crate) struct State {
    faults: tokio::sync::Mutex<Faults>,
}

impl State {
    /// Starts with `latency_ms` of added latency and no rules.
    pub(crate) fn new(latency_ms: u64) -> Self {
        Self {
            faults: tokio::sync::Mutex::new(Faults {
                latency_ms,
                rules: Vec::new(),
            }),
        }
    }

    pub(crate) async fn get(&self) -> Faults {
        self.faults.lock().await.clone()
    }

    /// No latency, no rules.
    pub(crate) async fn clear(&self) {
        *self.faults.lock().await = Faults::default();
    }

    pub(crate) async fn set(&self, faults: Faults) -> Result<(), Error> {
        faults.validate()?;
        *self.faults.lock().await = faults;
        Ok(())
    }
}

/// What the server makes of an API path: the attributes rules match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Info {
    pub verb: &'static str,
    pub group: String,
    /// `plural` or `plural/subresource`.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The verb, resource and name of a request to `path`; `None` for discovery, paths
/// outside `/api` and `/apis`, and methods no verb maps to. The path is split as the
/// server splits it ([`crate::path`]), without asking which kinds are served.
pub(crate) fn describe(
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Option<Info> {
    let parsed = crate::path::parse(path)?;
    let resource = match parsed.subresource {
        Some(sub) => format!("{}/{sub}", parsed.plural),
        None => parsed.plural.to_owned(),
    };
    let name = parsed.name.map(str::to_owned);
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => return None,
    };
    Some(Info {
        verb,
        group: parsed.group.to_owned(),
        resource,
        namespace: parsed.namespace.map(str::to_owned),
        name,
    })
}

/// Whether `path` is a Kubernetes API path (the only ones faults apply to).
fn is_api(path: &str) -> bool {
    ["/api", "/apis"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    })
}

fn matches(rule: &FaultRule, info: &Info, dry_run: bool) -> bool {
    rule.count != Some(0)
        && (rule.verbs.is_empty() || rule.verbs.iter().any(|v| v == info.verb))
        && rule.resource.as_deref().is_none_or(|r| r == info.resource)
        && rule
            .name
            .as_deref()
            .is_none_or(|n| info.name.as_deref() == Some(n))
        && rule.dry_run.is_none_or(|d| d == dry_run)
}

/// The middleware: waits the added latency, then fails the request if a rule matches.
pub(crate) async fn inject(
    extract::State(shared): extract::State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_api(request.uri().path()) {
        return next.run(request).await;
    }
    let _in_flight = (request.method() != Method::GET).then(|| shared.counters.write_in_flight());
    let (latency_ms, any_rules) = {
        let faults = shared.faults.faults.lock().await;
        let unspent = faults.rules.iter().any(|r| r.count != Some(0));
        (faults.latency_ms, unspent)
    };
    let mut request = request;
    let mut fired = None;
    if any_rules {
        let described;
        (request, described) = match classify(request).await {
            Ok(classified) => classified,
            Err(e) => return e.into_response(),
        };
        if let Some((info, dry_run)) = described {
            fired = fire(&shared, &info, dry_run).await.map(|rule| (rule, info));
        }
    }
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let Some((rule, info)) = fired else {
        return next.run(request).await;
    };
    shared.counters.count_injected();
    tracing::debug!(verb = info.verb, resource = %info.resource, name = ?info.name,
        status = ?rule.status, disconnect = rule.disconnect, "injected failure");
    failure(&rule, &info)
}

/// What a request is for and whether it is a dry run; the request, rebuilt when its
/// body had to be read (the name of a create and the dry-run flag of a delete are
/// there, not in the path).
async fn classify(request: Request) -> Result<(Request, Option<(Info, bool)>), ApiError> {
    let (parts, body) = request.into_parts();
    let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let Some(mut info) = describe(&parts.method, parts.uri.path(), &query) else {
        return Ok((Request::from_parts(parts, body), None));
    };
    let reads_body =
        (info.verb == "create" && info.name.is_none()) || info.verb.starts_with("delete");
    let (body, parsed) = if reads_body {
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::too_large())?;
        let parsed = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (Body::from(bytes), parsed)
    } else {
        (body, Value::Null)
    };
    if info.name.is_none() && info.verb == "create" {
        info.name = parsed
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All")
        || parsed
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok((Request::from_parts(parts, body), Some((info, dry_run))))
}

/// Takes one from the first unspent matching rule; that rule as it was.
async fn fire(shared: &Shared, info: &Info, dry_run: bool) -> Option<FaultRule> {
    let mut faults = shared.faults.faults.lock().await;
    let rule = faults
        .rules
        .iter_mut()
        .find(|r| matches(r, info, dry_run))?;
    let fired = rule.clone();
    if let Some(count) = &mut rule.count {
        *count -= 1;
    }
    Some(fired)
}

/// The response of a fired rule.
fn failure(rule: &FaultRule, info: &Info) -> Response {
    let Some(code) = rule.status.filter(|_| !rule.disconnect) else {
        return disconnect();
    };
    let mut details = json!({"group": info.group, "kind": info.resource});
    if let Some(name) = &info.name {
        details["name"] = json!(name);
    }
    if let Some(seconds) = rule.retry_after_seconds {
        details["retryAfterSeconds"] = json!(seconds);
    }
    let error = ApiError {
        code,
        reason: reason(code),
        message: format!(
            "injected by the local cluster's fault rules (/_gitsync/faults): {code} for {} {}{}",
            info.verb,
            info.resource,
            info.name
                .as_deref()
                .map(|n| format!(" \"{n}\""))
                .unwrap_or_default(),
        ),
        details: Some(details),
        custom_reason: None,
    };
    let mut response = error.into_response();
    if let Some(seconds) = rule.retry_after_seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// A response hyper cannot send: its body fails before the first byte, so the
/// connection is closed with nothing written (not even the status line).
fn disconnect() -> Response {
    let body = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("injected disconnect"))
    });
    Response::new(Body::from_stream(body))
}

/// The `Status` reason Kubernetes gives an HTTP code.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// `GET`, `POST` and `DELETE /_gitsync/faults`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route(
        "/_gitsync/faults",
        axum::routing::get(
            |extract::State(s): extract::State<Arc<Shared>>| async move {
                axum::Json(s.faults.get().await)
            },
        )
        .post(replace)
        .delete(
            |extract::State(s): extract::State<Arc<Shared>>| async move {
                s.faults.clear().await;
                StatusCode::NO_CONTENT
            },
        ),
    )
}

/// `POST /_gitsync/faults`: replaces the configuration; echoes it.
async fn replace(extract::State(shared): extract::State<Arc<Shared>>, body: Bytes) -> Response {
    let faults = match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => f,
        Err(e) => {
            return ApiError::bad_request(format!("the fault configuration is invalid: {e}"))
                .into_response();
        }
    };
    match shared.faults.set(faults.clone()).await {
        Ok(()) => axum::Json(faults).into_response(),
        Err(e) => ApiError::bad_request(format!("the fault configuration is invalid: {e}"))
            .into_response(),
    }
}

#[cfg(test)]
mod tests;
