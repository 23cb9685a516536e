//! `gitsync diff` and `gitsync sync`: render, read the live state, plan; diff prints the
//! plan, sync executes it.

use std::process::ExitCode;

use anyhow::Context as _;
use gitsync_agent::cluster::{Cluster, Event};
use gitsync_core::diff::Action;
use gitsync_core::plan::{self, Plan};
use serde::Serialize;

use super::render::load_and_render;
use crate::args::{Format, PlanArgs};
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
    let options = plan::Options {
        prune: !args.no_prune,
        force_prune: args.force_prune,
        ..plan::Options::default()
    };
    let plan = plan::plan(&app, &desired, &live, options)?;
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
                text.push_str(&format!("=== keep {} ({})\n", kept.id.short(), kept.reason));
            }
            let s = plan.summary();
            text.push_str(&format!(
                "{} to create, {} to update, {} to prune, {} unchanged\n",
                s.create, s.update, s.prune, s.unchanged
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

/// `gitsync sync`: apply the plan; exit 0 on success, 2 when any object failed.
pub async fn sync(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (cluster, plan) = prepare(args).await?;
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
        _ => {}
    };
    let outcome = if plan.has_changes() {
        cluster.execute(&plan, &on_event).await
    } else {
        gitsync_agent::cluster::Outcome {
            unchanged: plan.summary().unchanged,
            ..Default::default()
        }
    };
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
            } else if outcome.is_success() {
                output::line(&format!(
                    "{}: synced: {} created, {} updated, {} pruned, {} unchanged",
                    plan.app, outcome.created, outcome.updated, outcome.pruned, outcome.unchanged
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
    let details: Vec<String> = outcome
        .failed
        .iter()
        .map(|f| format!("  {}: {}", f.object, f.message))
        .collect();
    let nothing = if outcome.nothing_written {
        "; nothing was changed (the API server rejected the dry run)"
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
        Action::Prune => "pruned",
        Action::Unchanged => "unchanged",
    }
}
