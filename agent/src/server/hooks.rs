//! `POST /hooks/{github,gitlab,generic}`: a webhook is only a hint. It is
//! authenticated (before its body is parsed), matched to the apps that follow the
//! pushed repository and ref, and wakes their workers, which fetch and verify the ref
//! themselves. Hints coalesce: a burst of pushes while a fetch runs makes one more,
//! and a push of the commit the app is already at makes none.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::debug;

use super::error;
use crate::daemon::Hub;
use crate::webhook::{self, Hint, Provider};

pub async fn receive(
    State(hub): State<Arc<Hub>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let (provider, config) = match receiver.as_str() {
        "github" => (Provider::GitHub, &hub.settings.webhooks.github),
        "gitlab" => (Provider::GitLab, &hub.settings.webhooks.gitlab),
        "generic" => (Provider::Generic, &hub.settings.webhooks.generic),
        _ => return error(StatusCode::NOT_FOUND, format!("no receiver {receiver:?}")),
    };
    let count = |result: &str| hub.env.registry.count_webhook(&receiver, result);
    let Some(config) = config else {
        count("disabled");
        return error(
            StatusCode::NOT_FOUND,
            format!("the {receiver} receiver is not enabled (webhooks.{receiver}.secret)"),
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let code = rejection.status();
            count(if code == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "malformed"
            });
            return error(code, rejection.body_text());
        }
    };
    let secret = match hub.env.secrets.key(&config.secret).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            count("misconfigured");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the {receiver} webhook secret {}/{} is missing or empty",
                    config.secret.name, config.secret.key
                ),
            );
        }
        Err(e) => {
            count("error");
            return error(StatusCode::BAD_GATEWAY, crate::error_chain(&e));
        }
    };
    let hint = match webhook::receive(provider, &secret, &headers, &body) {
        Ok(h) => h,
        Err(rejection) => {
            let code = rejection.status();
            count(if code == StatusCode::UNAUTHORIZED {
                "unauthorized"
            } else {
                "malformed"
            });
            debug!(%receiver, reason = %rejection, "webhook rejected");
            return error(code, rejection.to_string());
        }
    };
    match hint {
        Hint::Ping => {
            count("ping");
            Json(json!({"pong": true})).into_response()
        }
        Hint::Ignored(event) => {
            count("ignored");
            (StatusCode::ACCEPTED, Json(json!({"ignored": event}))).into_response()
        }
        Hint::Push(push) => {
            let mut woken = Vec::new();
            for app in &hub.settings.apps {
                let same_repo = push.repos.iter().any(|r| webhook::same_repo(r, &app.repo));
                let same_ref = push
                    .reference
                    .as_deref()
                    .is_none_or(|r| webhook::ref_matches(r, &app.reference));
                // Already at the pushed commit: nothing to fetch (a redelivery, or a
                // burst for one push).
                let current =
                    push.after.is_some() && hub.env.registry.revision(&app.name) == push.after;
                if same_repo
                    && same_ref
                    && !current
                    && let Some(handle) = hub.handle(&app.name)
                {
                    handle.fetch.notify_one();
                    woken.push(app.name.clone());
                }
            }
            count(if woken.is_empty() {
                "ignored"
            } else {
                "accepted"
            });
            debug!(%receiver, reference = ?push.reference, apps = ?woken, "push received");
            (StatusCode::ACCEPTED, Json(json!({"apps": woken}))).into_response()
        }
    }
}
