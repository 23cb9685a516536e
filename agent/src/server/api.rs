//! `/api/v1/apps…`: the apps' state as JSON, and the operator's actions on them.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gitsync_core::rollout::Command;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::{error, same_secret};
use crate::control::Suspension;
use crate::daemon::Hub;
use crate::worker::{Reply, Request};

/// How long a request that syncs waits for the worker (a sync waits for health).
const ACTION_TIMEOUT: Duration = Duration::from_mins(15);

pub async fn apps(State(hub): State<Arc<Hub>>) -> Response {
    let agent = hub.env.registry.agent();
    hub.env
        .registry
        .with_apps(|apps| Json(json!({"agent": agent, "apps": apps})).into_response())
}

pub async fn app(State(hub): State<Arc<Hub>>, Path(app): Path<String>) -> Response {
    match hub.env.registry.app(&app) {
        Some(status) => Json(status).into_response(),
        None => unknown(&app),
    }
}

pub async fn history(State(hub): State<Arc<Hub>>, Path(app): Path<String>) -> Response {
    if hub.spec(&app).is_none() {
        return unknown(&app);
    }
    match hub.env.history.list(&app).await {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, crate::error_chain(&e)),
    }
}

/// What a sync of the tracked ref would change now (fetched, rendered and planned
/// against the live objects by the app's worker).
pub async fn diff(State(hub): State<Arc<Hub>>, Path(app): Path<String>) -> Response {
    if hub.spec(&app).is_none() {
        return unknown(&app);
    }
    ask(&hub, &app, Request::Diff).await
}

fn unknown(app: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no app named {app:?}"))
}

/// The body of `POST …/rollback` (`to` required) and `…/suspend` (`reason`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    to: Option<String>,
    #[serde(default)]
    direct: bool,
    reason: Option<String>,
}

/// `POST /api/v1/apps/{app}/{sync|promote|abort|rollback|suspend|resume}`.
pub async fn action(
    State(hub): State<Arc<Hub>>,
    Path((app, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = authorize(&hub, &headers).await {
        return refused;
    }
    if hub.spec(&app).is_none() {
        return unknown(&app);
    }
    let body: Body = if body.is_empty() {
        Body::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
        }
    };
    match action.as_str() {
        "sync" => ask(&hub, &app, Request::Sync).await,
        "promote" => request(&hub, &app, Command::Promote).await,
        "abort" => request(&hub, &app, Command::Abort).await,
        "suspend" => suspend(&hub, &app, body.reason).await,
        "resume" => resume(&hub, &app).await,
        "rollback" => {
            let Some(to) = body.to else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "rollback needs {\"to\": \"<revision>\"}",
                );
            };
            if body.direct {
                ask(&hub, &app, |reply| Request::RollbackDirect { to, reply }).await
            } else {
                ask(&hub, &app, |reply| Request::Revert { to, reply }).await
            }
        }
        other => error(
            StatusCode::NOT_FOUND,
            format!("unknown action {other:?}: sync, promote, abort, rollback, suspend, resume"),
        ),
    }
}

/// Checks the bearer token against the configured Secret.
async fn authorize(hub: &Hub, headers: &HeaderMap) -> Result<(), Response> {
    let Some(key) = &hub.settings.api.token_secret else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "the API takes no actions: no token is configured (api.tokenSecret)",
        ));
    };
    let token = match hub.env.secrets.key(key).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "the API token Secret {}/{} is missing or empty",
                    key.name, key.key
                ),
            ));
        }
        Err(e) => return Err(error(StatusCode::BAD_GATEWAY, crate::error_chain(&e))),
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if same_secret(given.as_bytes(), trim_newline(&token)) => Ok(()),
        Some(_) => Err(error(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token>",
        )),
    }
}

/// Secrets created from files often end in a newline.
fn trim_newline(token: &[u8]) -> &[u8] {
    token.strip_suffix(b"\n").unwrap_or(token)
}

/// Sends a request to the app's worker and waits for its answer.
async fn ask(hub: &Hub, app: &str, make: impl FnOnce(Reply) -> Request) -> Response {
    let Some(handle) = hub.handle(app) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica does not lead: ask the leader",
        );
    };
    let (tx, rx) = oneshot::channel();
    if handle.requests.send(make(tx)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the app's worker stopped");
    }
    match tokio::time::timeout(ACTION_TIMEOUT, rx).await {
        Ok(Ok(Ok(value))) => Json(value).into_response(),
        Ok(Ok(Err(message))) => error(StatusCode::CONFLICT, message),
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the app's worker stopped"),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "still running; see the app's status",
        ),
    }
}

/// Records a promote or abort in the cluster and wakes the worker to carry it out.
async fn request(hub: &Hub, app: &str, command: Command) -> Response {
    match hub.env.rollouts.request(app, command).await {
        Ok(request) => {
            if let Some(handle) = hub.handle(app) {
                handle.roll.notify_one();
            }
            (StatusCode::ACCEPTED, Json(request)).into_response()
        }
        Err(e @ crate::rollouts::Error::NothingInProgress { .. }) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, crate::error_chain(&e)),
    }
}

async fn suspend(hub: &Hub, app: &str, reason: Option<String>) -> Response {
    let suspension = Suspension::new(
        reason.unwrap_or_else(|| "suspended through the API".into()),
        None,
    );
    match hub.env.control.set_suspension(app, Some(&suspension)).await {
        Ok(()) => {
            let shown = suspension.clone();
            hub.env.registry.update(app, |s| s.suspended = Some(shown));
            Json(json!({"suspended": suspension})).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, crate::error_chain(&e)),
    }
}

async fn resume(hub: &Hub, app: &str) -> Response {
    match hub.env.control.set_suspension(app, None).await {
        Ok(()) => {
            hub.env.registry.update(app, |s| s.suspended = None);
            if let Some(handle) = hub.handle(app) {
                handle.fetch.notify_one();
            }
            Json(json!({"resumed": app})).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, crate::error_chain(&e)),
    }
}
