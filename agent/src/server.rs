//! The agent's HTTP server: liveness (`/healthz`), readiness (`/readyz`: the first sync
//! has succeeded), Prometheus metrics (`/metrics`) and the last pass as JSON
//! (`/api/v1/status`). No request ever sees a manifest or a Secret.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

/// What the reconcile loop reports to the server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub app: String,
    /// The last commit synced successfully.
    pub synced_commit: Option<String>,
    /// The error of the last pass, if it failed.
    pub last_error: Option<String>,
    pub passes_total: u64,
    pub syncs_total: u64,
    pub failures_total: u64,
    pub objects_applied_total: u64,
    pub objects_pruned_total: u64,
    /// Objects that differ from the synced revision at the last drift check, one line
    /// each (`Deployment/demo/web: .spec.replicas (kubectl-edit)`).
    pub drift: Vec<String>,
    pub drift_checks_total: u64,
    pub self_heals_total: u64,
    /// The app's rollouts after the last pass.
    pub rollouts: Vec<crate::rollouts::Rollout>,
}

/// Shared, updated by the loop, read by the handlers.
pub type Shared = Arc<RwLock<Status>>;

/// The router (tested with `oneshot` requests).
pub fn router(status: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status_json))
        .with_state(status)
}

async fn ready(State(status): State<Shared>) -> impl IntoResponse {
    let synced = status.read().is_ok_and(|s| s.synced_commit.is_some());
    if synced {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not synced yet")
    }
}

async fn status_json(State(status): State<Shared>) -> impl IntoResponse {
    let snapshot = status.read().map(|s| s.clone()).unwrap_or_default();
    axum::Json(snapshot)
}

async fn metrics(State(status): State<Shared>) -> impl IntoResponse {
    let s = status.read().map(|s| s.clone()).unwrap_or_default();
    let app = s.app.replace(['"', '\\', '\n'], "_");
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{app=\"{app}\"}} {value}\n"
        ));
    };
    counter(
        "gitsync_passes_total",
        "Reconcile passes run.",
        s.passes_total,
    );
    counter(
        "gitsync_syncs_total",
        "Passes that synced a new revision.",
        s.syncs_total,
    );
    counter(
        "gitsync_sync_failures_total",
        "Passes that failed.",
        s.failures_total,
    );
    counter(
        "gitsync_objects_applied_total",
        "Objects created or updated.",
        s.objects_applied_total,
    );
    counter(
        "gitsync_objects_pruned_total",
        "Objects pruned.",
        s.objects_pruned_total,
    );
    counter(
        "gitsync_drift_checks_total",
        "Drift checks run.",
        s.drift_checks_total,
    );
    counter(
        "gitsync_self_heals_total",
        "Drift healed by re-applying the synced revision.",
        s.self_heals_total,
    );
    out.push_str(&format!(
        "# HELP gitsync_drifted_objects Objects that differ from the synced revision.\n\
         # TYPE gitsync_drifted_objects gauge\ngitsync_drifted_objects{{app=\"{app}\"}} {}\n",
        s.drift.len()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get_text(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let code = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readiness_follows_the_first_sync() {
        let status: Shared = Arc::default();
        assert_eq!(
            get_text(router(status.clone()), "/healthz").await.0,
            StatusCode::OK
        );
        assert_eq!(
            get_text(router(status.clone()), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        status.write().expect("lock").synced_commit = Some("abc".into());
        assert_eq!(get_text(router(status), "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let status: Shared = Arc::default();
        {
            let mut s = status.write().expect("lock");
            s.app = "demo".into();
            s.syncs_total = 3;
        }
        let (code, body) = get_text(router(status), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.contains("gitsync_syncs_total{app=\"demo\"} 3"),
            "{body}"
        );
    }
}
