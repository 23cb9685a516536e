//! `gitsync status`: the objects gitsync manages and their sync state.
//!
//! With an app directory, each object is compared with its render: Synced, OutOfSync
//! (with the fields that differ and the managers that changed them), Missing
//! (rendered, not live) or Orphan (live, no longer rendered). Without one, every
//! object labelled `app.kubernetes.io/managed-by: gitsync` is listed, with the app and
//! revision it came from and whether someone else changed fields since (Drifted).
//! For one app (a directory, an app name, or `--app`), its rollouts follow: strategy,
//! step, weight, gates, what it waits for, with a progress bar on a terminal.

use std::process::ExitCode;

use anyhow::Context as _;
use gitsync_agent::cluster::Cluster;
use gitsync_agent::reconcile::{self, App, Planned};
use gitsync_agent::rollouts::{Rollout, Rollouts};
use gitsync_core::diff::Action;
use gitsync_core::manifest::{
    ANNOTATION_REVISION, FIELD_MANAGER, LABEL_APP, LABEL_MANAGED_BY, MANAGED_BY, ObjectId,
    annotation, label,
};
use gitsync_core::plan;
use serde::Serialize;
use serde_json::Value;

use super::render::load;
use crate::args::{Format, RenderArgs, StatusArgs};
use crate::output;

#[derive(Debug, Serialize)]
struct Row {
    object: ObjectId,
    app: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    objects: Vec<Row>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rollouts: Vec<Rollout>,
    /// Set while the agent's automatic sync of the app is suspended.
    #[serde(skip_serializing_if = "Option::is_none")]
    suspended: Option<gitsync_agent::control::Suspension>,
}

pub async fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(agent) = args.agent.client() {
        let app = args
            .path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| args.app.clone());
        return through_agent(&agent, app.as_deref(), args.output).await;
    }
    let cluster = Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")?;
    let store = Rollouts::new(cluster.client().clone(), &args.history.namespace);
    // A positional argument that is not a directory names an app.
    let (dir, name) = match &args.path {
        Some(path) if !path.is_dir() => (None, Some(path.to_string_lossy().into_owned())),
        Some(path) => (Some(path), args.app.clone()),
        None => (None, args.app.clone()),
    };
    let (rows, app) = match dir {
        Some(path) => {
            let render = RenderArgs {
                path: path.clone(),
                app: name,
                vars: Vec::new(),
                revision: None,
            };
            let (rows, app) = app_rows(&cluster, &store, &render).await?;
            (rows, Some(app))
        }
        None => (managed_rows(&cluster, name.as_deref()).await?, name),
    };
    let rollouts = match &app {
        Some(app) => store.list(app).await?,
        None => Vec::new(),
    };
    let control =
        gitsync_agent::control::Control::new(cluster.client().clone(), &args.history.namespace);
    let suspended = match &app {
        Some(app) => control.suspension(app).await?,
        None => None,
    };
    match args.output {
        Format::Json => output::json(&Report {
            objects: rows,
            rollouts,
            suspended,
        }),
        Format::Text => {
            print_table(&rows);
            if let (Some(s), Some(app)) = (&suspended, &app) {
                output::text(&format!(
                    "\nautomatic sync suspended since {}: {} (gitsync resume {app})",
                    s.since, s.reason
                ));
            }
            let bar = output::stdout_is_terminal();
            for r in &rollouts {
                output::text(&rollout_text(r, bar));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gitsync status [APP] --agent URL`: the apps as the agent serving them reports them
/// (sync, health, revision, drift, errors; for one app, its rollouts too).
async fn through_agent(
    agent: &gitsync_agent::client::Agent,
    app: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let path = app.map_or_else(
        || "/api/v1/apps".to_owned(),
        |a| format!("/api/v1/apps/{a}"),
    );
    let answer = agent.get(&path).await?;
    if format == Format::Json {
        output::json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let apps = match app {
        Some(_) => vec![answer.clone()],
        None => answer["apps"].as_array().cloned().unwrap_or_default(),
    };
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or("-").to_owned();
    let mut out = format!(
        "{:<20}  {:<10}  {:<12}  {:<8}  {:>5}  {}\n",
        "APP", "SYNC", "HEALTH", "REVISION", "DRIFT", "SOURCE"
    );
    for a in &apps {
        let commit = a["revision"]["commit"].as_str().unwrap_or("-");
        out.push_str(&format!(
            "{:<20}  {:<10}  {:<12}  {:<8}  {:>5}  {} @ {} · {}\n",
            text(a, "name"),
            text(a, "sync"),
            text(a, "health"),
            &commit[..commit.len().min(8)],
            a["drift"].as_array().map_or(0, Vec::len),
            text(a, "repo"),
            text(a, "ref"),
            text(a, "path"),
        ));
    }
    if app.is_some() {
        let a = &answer;
        for (label, key) in [("stale", "stale"), ("last error", "lastError")] {
            if let Some(v) = a[key].as_str() {
                out.push_str(&format!("\n{label}: {v}\n"));
            }
        }
        if let Some(s) = a["suspended"].as_object() {
            out.push_str(&format!(
                "\nautomatic sync suspended since {}: {}\n",
                s.get("since").and_then(Value::as_str).unwrap_or("?"),
                s.get("reason").and_then(Value::as_str).unwrap_or("?")
            ));
        }
        for d in a["drift"].as_array().into_iter().flatten() {
            out.push_str(&format!("drifted: {}\n", d.as_str().unwrap_or_default()));
        }
        let rollouts: Vec<Rollout> =
            serde_json::from_value(a["rollouts"].clone()).unwrap_or_default();
        let bar = output::stdout_is_terminal();
        for r in &rollouts {
            out.push_str(&rollout_text(r, bar));
        }
    }
    output::text(&out);
    Ok(ExitCode::SUCCESS)
}

/// A rollout in a few lines: strategy and phase, step and weight, progress, what it
/// waits for, its gates, its last notes.
fn rollout_text(r: &Rollout, bar: bool) -> String {
    let st = &r.state;
    let mut text = format!(
        "\nrollout {}: {} (policy {}), {:?}",
        r.workload, st.strategy, st.policy, st.phase
    );
    if st.strategy == "canary" && r.steps > 0 {
        text.push_str(&format!(
            ", step {} of {}, weight {}%",
            (st.step + 1).min(r.steps),
            r.steps,
            st.weight
        ));
    }
    if let Some(slot) = &st.active_slot {
        text.push_str(&format!(", serving {slot}"));
    }
    text.push('\n');
    if st.in_progress() {
        if bar {
            let filled = usize::from(r.progress) / 5;
            text.push_str(&format!(
                "  [{}{}] {}%\n",
                "#".repeat(filled),
                "-".repeat(20 - filled),
                r.progress
            ));
        } else {
            text.push_str(&format!("  progress: {}%\n", r.progress));
        }
    }
    if let Some(waiting) = &r.waiting {
        text.push_str(&format!("  waiting for: {waiting}\n"));
    }
    if let Some(reason) = st.reason.as_deref().filter(|_| st.phase.gave_up()) {
        text.push_str(&format!("  reason: {reason}\n"));
    }
    for g in &r.gates {
        let mark = if g.passed { "ok  " } else { "wait" };
        text.push_str(&format!("  gate {mark} {}: {}\n", g.name, g.detail));
    }
    for line in r.log.iter().rev().take(5).rev() {
        text.push_str(&format!("  {line}\n"));
    }
    text
}

async fn app_rows(
    cluster: &Cluster,
    store: &Rollouts,
    render: &RenderArgs,
) -> anyhow::Result<(Vec<Row>, String)> {
    let loaded = load(render)?;
    let app = App {
        name: loaded.app.clone(),
        vars: std::collections::BTreeMap::new(),
        namespace: None,
        options: plan::Options {
            force_prune: true,
            ..plan::Options::default()
        },
        execute: gitsync_agent::cluster::ExecuteOptions::default(),
        cache: None,
    };
    let commit = loaded.revision.as_ref().map(|r| r.commit.as_str());
    // What the next sync would apply (rollouts' objects included), against live.
    let Planned { plan, live, .. } =
        reconcile::plan(cluster, &app, &loaded.tree, commit, Some(store), false).await?;
    let app = app.name;
    // Which fields differ, and who changed them, for each out-of-sync object.
    let drift: Vec<gitsync_core::drift::Drift> = gitsync_core::drift::detect(&plan, &live);
    let rows = plan
        .steps
        .iter()
        .map(|step| Row {
            object: step.diff.id.clone(),
            app: app.clone(),
            state: match step.diff.action {
                Action::Unchanged => "Synced",
                Action::Update | Action::Replace => "OutOfSync",
                Action::Create => "Missing",
                Action::Prune => "Orphan",
            },
            revision: None,
            detail: drift
                .iter()
                .find(|d| d.object == step.diff.id && d.kind == "modified")
                .map(gitsync_core::drift::Drift::summary)
                .or_else(|| step.diff.source.as_ref().map(ToString::to_string))
                .unwrap_or_default(),
        })
        .collect();
    Ok((rows, app))
}

async fn managed_rows(cluster: &Cluster, app: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let mut selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
    if let Some(app) = app {
        selector.push_str(&format!(",{LABEL_APP}={app}"));
    }
    let mut rows: Vec<Row> = cluster
        .list_labeled(&selector)
        .await?
        .iter()
        .filter_map(|object| {
            let id = ObjectId::of(object)?;
            let drift = drifted_by(object);
            Some(Row {
                app: label(object, LABEL_APP).unwrap_or_default().to_owned(),
                state: if drift.is_empty() {
                    "Synced"
                } else {
                    "Drifted"
                },
                revision: annotation(object, ANNOTATION_REVISION)
                    .map(|r| r.chars().take(12).collect()),
                detail: drift,
                object: id,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (
            &a.app,
            gitsync_core::kinds::apply_rank(&a.object.kind),
            &a.object,
        )
            .cmp(&(
                &b.app,
                gitsync_core::kinds::apply_rank(&b.object.kind),
                &b.object,
            ))
    });
    Ok(rows)
}

/// Managers other than gitsync and the cluster's own controllers that changed spec or
/// data fields with an Update (e.g. `kubectl edit`, `kubectl scale`).
fn drifted_by(object: &Value) -> String {
    const CONTROLLERS: &[&str] = &[
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "gitsync-local-cluster",
    ];
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    let mut managers: Vec<String> = entries
        .into_iter()
        .flatten()
        .filter(|e| e.get("operation").and_then(Value::as_str) == Some("Update"))
        .filter(|e| e.get("subresource").and_then(Value::as_str) != Some("status"))
        .filter_map(|e| {
            let manager = e.get("manager")?.as_str()?;
            if manager == FIELD_MANAGER || CONTROLLERS.contains(&manager) {
                return None;
            }
            let fields = e.get("fieldsV1")?.as_object()?;
            let touches_content = fields.keys().any(|k| k != "f:metadata" && k != "f:status");
            touches_content.then(|| manager.to_owned())
        })
        .collect();
    managers.dedup();
    if managers.is_empty() {
        String::new()
    } else {
        format!("changed by {}", managers.join(", "))
    }
}

fn print_table(rows: &[Row]) {
    if rows.is_empty() {
        output::line("no objects managed by gitsync");
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.object.short().len())
        .max()
        .unwrap_or(0)
        .max(6);
    output::line(&format!(
        "{:<width$}  {:<12}  {:<10}  {:<12}  DETAIL",
        "OBJECT", "APP", "STATE", "REVISION"
    ));
    for r in rows {
        output::line(&format!(
            "{:<width$}  {:<12}  {:<10}  {:<12}  {}",
            r.object.short(),
            r.app,
            r.state,
            r.revision.as_deref().unwrap_or("-"),
            r.detail
        ));
    }
}
