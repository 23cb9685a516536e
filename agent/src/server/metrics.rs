//! `/metrics`: every app's counters, histograms and gauges, and the webhook receivers',
//! in Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::daemon::Hub;
use crate::metrics::{Histogram, family, labels};
use crate::registry::{AgentStatus, AppStatus};

pub async fn handler(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    let agent = hub.env.registry.agent();
    let out = hub.env.registry.with_apps(|apps| text(apps, &agent));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The exposition of `apps` and the agent-wide figures.
fn text(apps: &[&AppStatus], agent: &AgentStatus) -> String {
    let mut out = String::new();
    let per_app = |out: &mut String,
                   name: &'static str,
                   kind: &str,
                   help: &str,
                   value: &dyn Fn(&AppStatus) -> u64| {
        let mut f = family(out, name, kind, help);
        for app in apps {
            f.sample(&labels(&[("app", &app.name)]), value(app));
        }
    };
    let per_app_histogram = |out: &mut String,
                             name: &'static str,
                             help: &str,
                             of: &dyn Fn(&AppStatus) -> &Histogram| {
        let mut f = family(out, name, "histogram", help);
        for app in apps {
            f.histogram(&[("app", &app.name)], of(app));
        }
    };
    per_app_histogram(
        &mut out,
        "gitsync_sync_duration_seconds",
        "Time a sync took, from render to healthy (or failed).",
        &|a| &a.counters.sync_seconds,
    );
    {
        let mut f = family(
            &mut out,
            "gitsync_syncs_total",
            "counter",
            "Syncs by result (Succeeded, Degraded, HealthTimeout, Failed, PruneRefused, Superseded).",
        );
        for app in apps {
            for (result, n) in &app.counters.syncs {
                f.sample(&labels(&[("app", &app.name), ("result", result)]), n);
            }
        }
    }
    {
        let mut f = family(
            &mut out,
            "gitsync_objects",
            "gauge",
            "Managed objects by state at the last sync or drift check.",
        );
        for app in apps {
            for (state, n) in &app.objects {
                f.sample(&labels(&[("app", &app.name), ("state", state)]), n);
            }
        }
    }
    per_app(
        &mut out,
        "gitsync_drifted_objects",
        "gauge",
        "Objects that differ from the synced revision.",
        &|a| a.drift.len() as u64,
    );
    per_app(
        &mut out,
        "gitsync_last_successful_sync_timestamp_seconds",
        "gauge",
        "When the app last synced successfully (0: never).",
        &|a| a.last_success.unwrap_or(0),
    );
    per_app(
        &mut out,
        "gitsync_app_stale",
        "gauge",
        "1 while Git cannot be reached and the last good state is kept.",
        &|a| u64::from(a.stale.is_some()),
    );
    per_app(
        &mut out,
        "gitsync_app_suspended",
        "gauge",
        "1 while automatic sync is suspended.",
        &|a| u64::from(a.suspended.is_some()),
    );
    per_app(
        &mut out,
        "gitsync_objects_applied_total",
        "counter",
        "Objects created or updated.",
        &|a| a.counters.objects_applied,
    );
    per_app(
        &mut out,
        "gitsync_objects_pruned_total",
        "counter",
        "Objects pruned.",
        &|a| a.counters.objects_pruned,
    );
    per_app(
        &mut out,
        "gitsync_drift_checks_total",
        "counter",
        "Drift checks run.",
        &|a| a.counters.drift_checks,
    );
    per_app(
        &mut out,
        "gitsync_self_heals_total",
        "counter",
        "Drift healed by re-applying the synced revision.",
        &|a| a.counters.self_heals,
    );
    per_app(
        &mut out,
        "gitsync_git_fetch_failures_total",
        "counter",
        "Fetches that failed.",
        &|a| a.counters.fetch_failures,
    );
    per_app_histogram(
        &mut out,
        "gitsync_git_fetch_duration_seconds",
        "Time a fetch of the tracked ref took.",
        &|a| &a.counters.fetch_seconds,
    );
    {
        let mut f = family(
            &mut out,
            "gitsync_webhook_requests_total",
            "counter",
            "Webhook requests by receiver and result.",
        );
        for ((receiver, result), n) in &agent.webhooks {
            f.sample(&labels(&[("receiver", receiver), ("result", result)]), n);
        }
    }
    family(
        &mut out,
        "gitsync_leader",
        "gauge",
        "1 when this replica leads (only the leader writes).",
    )
    .sample("", u64::from(agent.leader));
    out
}
