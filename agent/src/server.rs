//! The agent's HTTP server, one port for everything: liveness (`/healthz`), readiness
//! (`/readyz`: every app's first sync was attempted), Prometheus metrics (`/metrics`),
//! the JSON API (`/api/v1/apps…`), webhooks (`/hooks/…`) and the status page (`/`).
//!
//! Reads are open (they never show a manifest or a Secret value: diffs are masked).
//! Every `POST /api/v1/…` needs `Authorization: Bearer <token>`, the token read from
//! the Secret the configuration names (`api.tokenSecret`); without one configured they
//! are refused. Bodies are limited to 1 MiB (413 beyond). A replica that does not lead
//! forwards everything but health, readiness and metrics to the leader.

mod api;
mod forward;
mod hooks;
mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::daemon::Hub;

/// Largest request body accepted (webhooks, API requests).
pub const BODY_LIMIT: usize = 1 << 20;

/// The router over the agent's hub.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::handler))
        .route("/api/v1/apps", get(api::apps))
        .route("/api/v1/apps/{app}", get(api::app))
        .route("/api/v1/apps/{app}/history", get(api::history))
        .route("/api/v1/apps/{app}/diff", get(api::diff))
        .route("/api/v1/apps/{app}/{action}", post(api::action))
        .route("/hooks/{receiver}", post(hooks::receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            forward::to_leader,
        ))
        .with_state(hub)
}

async fn ready(State(hub): State<Arc<Hub>>) -> Response {
    let leadership = hub.leadership.borrow().clone();
    if !leadership.leading {
        return match leadership.leader {
            Some(leader) => (StatusCode::OK, format!("following {leader}")).into_response(),
            None => (StatusCode::SERVICE_UNAVAILABLE, "no leader yet").into_response(),
        };
    }
    if hub.env.registry.all_attempted() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first sync not attempted yet",
        )
            .into_response()
    }
}

async fn page(State(hub): State<Arc<Hub>>) -> Response {
    let agent = hub.env.registry.agent();
    let html = hub
        .env
        .registry
        .with_apps(|apps| crate::page::render(&agent, apps));
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// A JSON error body `{"error": …}` with `code`.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        axum::Json(serde_json::json!({"error": message.into()})),
    )
        .into_response()
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_by_every_byte() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
