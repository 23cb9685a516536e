//! Followers forward to the leader. Every replica sits behind the same Service, so a
//! webhook, an API request or the status page may reach one that does not lead (its
//! workers are stopped and its registry is empty). Such a request is relayed to the
//! leader's address from the Lease and the leader's answer returned as it is. Health,
//! readiness and metrics stay local: they describe this replica.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{BODY_LIMIT, error};
use crate::daemon::Hub;

/// Marks a forwarded request, so it is never forwarded twice (a stale Lease naming
/// this replica, or two replicas that each think the other leads).
const FORWARDED: &str = "x-gitsync-forwarded";

/// One client (and its pool of connections to the leader) for every forwarded request.
static CLIENT: std::sync::OnceLock<Client<HttpConnector, Full<Bytes>>> = std::sync::OnceLock::new();

/// How long the leader may take (an API sync waits for health).
const TIMEOUT: Duration = Duration::from_mins(15);

pub async fn to_leader(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let local = matches!(path, "/healthz" | "/readyz" | "/metrics")
        || request.headers().contains_key(FORWARDED);
    let leadership = hub.leadership.borrow().clone();
    if local || leadership.leading {
        return next.run(request).await;
    }
    let Some(address) = leadership.address else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this replica does not lead, and the leader ({}) has no address to forward to",
                leadership.leader.as_deref().unwrap_or("none yet")
            ),
        );
    };
    forward(&address, request).await
}

async fn forward(address: &str, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB");
    };
    let target = format!(
        "{}{}",
        address.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let Ok(uri) = target.parse::<hyper::Uri>() else {
        return error(
            StatusCode::BAD_GATEWAY,
            format!("bad leader address {address:?}"),
        );
    };
    parts.uri = uri;
    parts.headers.remove(hyper::header::HOST);
    parts
        .headers
        .insert(FORWARDED, hyper::header::HeaderValue::from_static("1"));
    let client = CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build_http());
    let request = hyper::Request::from_parts(parts, Full::new(body));
    match tokio::time::timeout(TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) => {
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(collected) => {
                    Response::from_parts(parts, Body::from(collected.to_bytes())).into_response()
                }
                Err(e) => error(StatusCode::BAD_GATEWAY, format!("leader at {address}: {e}")),
            }
        }
        Ok(Err(e)) => error(
            StatusCode::BAD_GATEWAY,
            format!(
                "cannot reach the leader at {address}: {}",
                crate::error_chain(&e)
            ),
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the leader at {address} did not answer"),
        ),
    }
}
