//! `gitsync diff` and `gitsync sync`: render, read the live state, plan; diff prints the
//! plan, sync executes it.

use std::process::ExitCode;

use anyhow::Context as _;
use gitsync_agent::cluster::{Cluster, Event, SyncResult};
use gitsync_agent::history::History;
use gitsync_agent::reconcile::{self, App, Record};
use gitsync_core::diff::Action;
use gitsync_core::plan::{self, Plan};
use serde::Serialize;

use super::render::{load, load_and_render, vars};
use crate::args::{Format, PlanArgs, SyncArgs};
use crate::output;

/// Renders, connects and plans.
async fn prepare(args: &PlanArgs) -> anyhow::Result<(Cluster, Plan)> {
    let (app, desired) = load_and_render(&args.render)?;
    let cluster = Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")?;
    let live = cluster
        .live_objects(&app, &desired)
        .await
        .context("cannot read the live state")?;
    let plan = plan::plan(&app, &desired, &live, args.prune.plan_options())?;
    Ok((cluster, plan))
}

/// `gitsync diff`: exit 0 when nothing would change, 1 when something would.
pub async fn diff(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (_cluster, plan) = prepare(args).await?;
    match args.output {
        Format::Json => output::json(&plan),
        Format::Text => {
            let color = output::use_color(args.color);
            let mut text = String::new();
            for step in &plan.steps {
                text.push_str(&output::object_diff(&step.diff, color));
            }
            for kept in &plan.kept {
                text.push_str(&format!(
                    "=== keep {} (not pruned: {})\n",
                    kept.id.short(),
                    kept.reason
                ));
            }
            for (step, reason) in plan.blocked() {
                text.push_str(&format!("=== blocked {}: {reason}\n", step.diff.id.short()));
            }
            let s = plan.summary();
            text.push_str(&format!(
                "{} to create, {} to update, {} to replace, {} to prune, {} unchanged\n",
                s.create, s.update, s.replace, s.prune, s.unchanged
            ));
            output::text(&text);
        }
    }
    Ok(if plan.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Serialize)]
struct SyncReport<'a> {
    app: &'a str,
    plan: plan::Summary,
    outcome: &'a gitsync_agent::cluster::Outcome,
}

/// `gitsync sync`: apply the plan; exit 0 on success, 2 when any object failed or the
/// app did not become healthy.
pub async fn sync(sync_args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let args = &sync_args.plan;
    let loaded = load(&args.render)?;
    let cluster = Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")?;
    let history = History::new(cluster.client().clone(), &sync_args.history.namespace);
    let app = App {
        name: loaded.app.clone(),
        vars: vars(&args.render),
        options: args.prune.plan_options(),
        execute: sync_args.execute.execute_options(),
    };
    let progress = args.output == Format::Text && output::stderr_is_terminal();
    let on_event = |event: Event<'_>| match event {
        Event::Done(step) if progress => {
            output::note(&format!(
                "  {} {}",
                past_tense(step.diff.action),
                step.diff.id.short()
            ));
        }
        Event::Failed(step, message) => {
            output::note(&format!("  failed {}: {message}", step.diff.id.short()));
        }
        Event::Waiting(what) if progress => {
            output::note(&format!("  waiting for health: {what}"));
        }
        _ => {}
    };
    let record = Record {
        history: Some(&history),
        trigger: "cli",
    };
    let reconcile::Synced { plan, outcome, .. } = reconcile::sync(
        &cluster,
        &app,
        &loaded.tree,
        loaded.revision.as_ref(),
        record,
        &on_event,
    )
    .await
    .with_context(|| format!("sync of {} failed", app.name))?;
    match args.output {
        Format::Json => output::json(&SyncReport {
            app: &plan.app,
            plan: plan.summary(),
            outcome: &outcome,
        }),
        Format::Text => {
            if !plan.has_changes() {
                output::line(&format!(
                    "{}: in sync, nothing to do ({} objects unchanged)",
                    plan.app, outcome.unchanged
                ));
            } else if outcome.failed.is_empty() {
                let verb = if outcome.is_success() {
                    "synced"
                } else {
                    "applied"
                };
                output::line(&format!(
                    "{}: {verb}: {} created, {} updated, {} replaced, {} pruned, {} unchanged",
                    plan.app,
                    outcome.created,
                    outcome.updated,
                    outcome.replaced,
                    outcome.pruned,
                    outcome.unchanged
                ));
            }
            for kept in &plan.kept {
                output::line(&format!("kept {} ({})", kept.id.short(), kept.reason));
            }
        }
    }
    if outcome.is_success() {
        return Ok(ExitCode::SUCCESS);
    }
    if outcome.failed.is_empty() {
        let health = outcome
            .health
            .as_ref()
            .map(|h| h.reason.clone())
            .unwrap_or_default();
        let what = match outcome.result {
            SyncResult::Superseded => "was superseded".to_owned(),
            SyncResult::Degraded => format!("is degraded: {health}"),
            _ => format!("is not healthy: {health}"),
        };
        anyhow::bail!("{} applied, but the app {what}", plan.app);
    }
    let details: Vec<String> = outcome
        .failed
        .iter()
        .map(|f| match &f.source {
            Some(source) => format!("  {} ({source}): {}", f.object, f.message),
            None => format!("  {}: {}", f.object, f.message),
        })
        .collect();
    let nothing = if outcome.nothing_written {
        "; nothing was changed"
    } else {
        ""
    };
    anyhow::bail!(
        "sync of {} failed for {} object(s){nothing}:\n{}",
        plan.app,
        outcome.failed.len(),
        details.join("\n")
    )
}

fn past_tense(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Prune => "pruned",
        Action::Unchanged => "unchanged",
    }
}
