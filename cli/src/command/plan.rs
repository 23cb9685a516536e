//! `gitsync diff` (and `gitsync plan`) and `gitsync sync`: render, read the live state,
//! move the rollouts, plan; diff prints the plan (and the steps of each rollout), sync
//! executes it, and follows rollouts in progress until they end or wait for
//! `gitsync promote`. `diff` and `plan` also take an app's name: the app as its agent
//! serves it, at `--revision` (a pull request's branch, say) or its tracked ref.

use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context as _;
use gitsync_agent::cluster::{Cluster, Event, SyncResult};
use gitsync_agent::control::Control;
use gitsync_agent::history::History;
use gitsync_agent::reconcile::{self, App, Planned, Record};
use gitsync_agent::rollouts::{Progress, Rollouts};
use gitsync_core::plan::{self, Plan};
use gitsync_core::rollout::{Preview, Wait};
use serde::Serialize;

use super::published;
use super::render::{Loaded, load, vars};
use crate::args::{Format, PlanArgs, SyncArgs};
use crate::output;

/// The app to reconcile, as the flags describe it.
fn app(args: &PlanArgs, loaded: &Loaded, sync: Option<&SyncArgs>) -> App {
    App {
        name: loaded.app.clone(),
        vars: vars(&args.render),
        namespace: None,
        options: args.prune.plan_options(),
        execute: sync
            .map(|s| s.execute.execute_options())
            .unwrap_or_default(),
        cache: None,
    }
}

/// What `diff` and `plan` look at: the app directory given, or, given an app's name
/// (a single word that is not a directory), the app as its agent serves it, read at
/// `--revision` (a commit, tag or branch, e.g. a pull request's) or its tracked ref.
async fn target(args: &PlanArgs, cluster: &Cluster) -> anyhow::Result<(Loaded, App)> {
    let path = &args.render.path;
    if path.is_dir() || path.components().count() != 1 {
        let loaded = load(&args.render)?;
        let app = app(args, &loaded, None);
        return Ok((loaded, app));
    }
    let name = path.to_string_lossy().into_owned();
    let control = Control::new(cluster.client().clone(), &args.history.namespace);
    let source = control.source(&name).await?.with_context(|| {
        format!(
            "{name} is neither an app directory nor an app an agent serves \
             (no source published in namespace {})",
            args.history.namespace
        )
    })?;
    let fetched = published::fetch(&source, args.render.revision.as_deref()).await?;
    let loaded = Loaded {
        app: name,
        tree: fetched.tree,
        revision: Some(fetched.revision),
    };
    let mut app = app(args, &loaded, None);
    app.namespace.clone_from(&source.namespace);
    let mut vars = source.vars.clone();
    vars.extend(app.vars);
    app.vars = vars;
    Ok((loaded, app))
}

#[derive(Serialize)]
struct DiffReport<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rollouts: &'a [Preview],
}

/// `gitsync diff` and `gitsync plan`: exit 0 when nothing would change, 1 when
/// something would.
pub async fn diff(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    if let Some(agent) = args.agent.client() {
        return diff_through_agent(&agent, args).await;
    }
    let cluster = Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")?;
    let rollouts = Rollouts::new(cluster.client().clone(), &args.history.namespace);
    let (loaded, app) = target(args, &cluster).await?;
    let commit = loaded.revision.as_ref().map(|r| r.commit.as_str());
    let Planned { plan, pass, .. } = reconcile::plan(
        &cluster,
        &app,
        &loaded.tree,
        commit,
        Some(&rollouts),
        args.strategy,
    )
    .await
    .with_context(|| format!("cannot plan {}", app.name))?;
    match args.output {
        Format::Json => output::json(&DiffReport {
            plan: &plan,
            rollouts: &pass.previews,
        }),
        Format::Text => {
            let color = output::use_color(args.color);
            let mut text = String::new();
            for preview in &pass.previews {
                text.push_str(&preview_text(preview));
            }
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
            let guarded = if plan.prune_guard.is_some() {
                " (all blocked by a pruning guard)"
            } else {
                ""
            };
            text.push_str(&summary_line(
                [s.create, s.update, s.replace, s.prune, s.unchanged],
                guarded,
            ));
            text.push('\n');
            output::text(&text);
        }
    }
    Ok(if plan.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A rollout's steps, numbered.
fn preview_text(preview: &Preview) -> String {
    let mut text = format!(
        "=== rollout {} (policy {}, {})\n",
        preview.workload, preview.policy, preview.strategy
    );
    if !preview.changes {
        text.push_str("  the pod template does not change: nothing to roll out\n");
    }
    for (i, step) in preview.steps.iter().enumerate() {
        text.push_str(&format!("  {:>2}. {step}\n", i + 1));
    }
    text
}

#[derive(Serialize)]
struct SyncReport<'a> {
    app: &'a str,
    plan: plan::Summary,
    outcome: &'a gitsync_agent::cluster::Outcome,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rollouts: &'a [gitsync_agent::rollouts::Rollout],
}

/// How often `sync` passes a rollout in progress again.
const ROLLOUT_POLL: Duration = Duration::from_secs(1);

/// `N to create, N to update, N to replace, N to prune{after_prune}, N unchanged`.
fn summary_line(
    [create, update, replace, prune, unchanged]: [usize; 5],
    after_prune: &str,
) -> String {
    format!(
        "{create} to create, {update} to update, {replace} to replace, {prune} to prune{after_prune}, {unchanged} unchanged"
    )
}

/// `gitsync diff APP --agent URL`: what the agent's next sync of the app's tracked ref
/// would change now (it fetches, renders and plans it; Secrets masked).
async fn diff_through_agent(
    agent: &gitsync_agent::client::Agent,
    args: &PlanArgs,
) -> anyhow::Result<ExitCode> {
    if args.strategy {
        anyhow::bail!(
            "the rollout steps are planned from an app directory; through the agent, \
             `gitsync diff APP --agent URL` shows the changes and `gitsync status APP` the \
             rollout in progress"
        );
    }
    let app = args.render.path.to_string_lossy();
    let answer = agent.get(&format!("/api/v1/apps/{app}/diff")).await?;
    let changes = answer["changes"].as_bool().unwrap_or(true);
    match args.output {
        Format::Json => output::json(&answer),
        Format::Text => {
            let revision = answer["revision"]["commit"].as_str().unwrap_or("?");
            let counts = ["create", "update", "replace", "prune", "unchanged"].map(|key| {
                answer["summary"][key]
                    .as_u64()
                    .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
            });
            output::text(answer["diff"].as_str().unwrap_or_default());
            output::line(&format!(
                "{app} at {revision}: {}",
                summary_line(counts, "")
            ));
        }
    }
    Ok(if changes {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `gitsync sync`: apply the plan, then follow the app's rollouts until they end (or
/// wait for `gitsync promote`, or `--detach`); exit 0 on success, 2 when any object
/// failed, the app did not become healthy, or a rollout was aborted or rolled back.
pub async fn sync(sync_args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let args = &sync_args.plan;
    if let Some(agent) = args.agent.client() {
        let app = args.render.path.to_string_lossy();
        let answer = agent
            .post(&format!("/api/v1/apps/{app}/sync"), &serde_json::json!({}))
            .await?;
        match args.output {
            Format::Json => output::json(&answer),
            Format::Text => output::line(&format!("{app}: sync: {answer}")),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let loaded = load(&args.render)?;
    let cluster = Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")?;
    let history = History::new(cluster.client().clone(), &args.history.namespace)
        .with_limit(sync_args.history_limit);
    let rollouts = Rollouts::new(cluster.client().clone(), &args.history.namespace);
    let app = app(args, &loaded, Some(sync_args));
    let progress = args.output == Format::Text && output::stderr_is_terminal();
    let on_event = |event: Event<'_>| match event {
        Event::Done(step) if progress => {
            output::note(&format!(
                "  {} {}",
                step.diff.action.past_tense(),
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
    let mut trigger = "cli";
    let mut last_wait = String::new();
    let synced = loop {
        let record = Record {
            history: Some(&history),
            rollouts: Some(&rollouts),
            trigger,
            rollback_to: None,
        };
        let synced = reconcile::sync(
            &cluster,
            &app,
            &loaded.tree,
            loaded.revision.as_ref(),
            record,
            &on_event,
        )
        .await
        .with_context(|| format!("sync of {} failed", app.name))?;
        if args.output == Format::Text {
            if trigger == "cli" {
                report_first(&synced);
            }
            print_rollout_notes(&synced.rollouts);
        }
        // The first pass is the sync; later passes only move its rollouts on.
        trigger = reconcile::ROLLOUT;
        let wait = match synced.waiting() {
            Some(w)
                if *w != Wait::Promote && !sync_args.detach && synced.outcome.failed.is_empty() =>
            {
                w.to_string()
            }
            _ => break synced,
        };
        if args.output == Format::Text && wait != last_wait {
            output::note(&format!("  rollout waits for {wait}"));
            last_wait = wait;
        }
        tokio::time::sleep(ROLLOUT_POLL).await;
    };
    if args.output == Format::Json {
        let states: Vec<_> = synced.rollouts.iter().map(|p| p.rollout.clone()).collect();
        output::json(&SyncReport {
            app: &synced.plan.app,
            plan: synced.plan.summary(),
            outcome: &synced.outcome,
            rollouts: &states,
        });
    }
    finish(&app.name, &synced)
}

/// The summary of the first pass (the sync proper).
fn report_first(synced: &reconcile::Synced) {
    let (plan, outcome) = (&synced.plan, &synced.outcome);
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

/// One line per rollout note of a pass.
fn print_rollout_notes(rollouts: &[Progress]) {
    for p in rollouts {
        for note in &p.notes {
            output::line(&format!("rollout {}: {note}", p.rollout.workload));
        }
    }
}

/// The exit code of a sync, and its error.
fn finish(app: &str, synced: &reconcile::Synced) -> anyhow::Result<ExitCode> {
    let outcome = &synced.outcome;
    if outcome.failed.is_empty()
        && let Some(failure) = synced.failed_rollout().and_then(|p| p.rollout.failure())
    {
        anyhow::bail!("{failure}");
    }
    if let Some(p) = synced.rollouts.iter().find(|p| p.rollout.awaiting_promote) {
        output::line(&format!(
            "rollout {}: paused; run `gitsync promote {app}` to go on, `gitsync abort {app}` to stop",
            p.rollout.workload
        ));
    }
    if outcome.is_success() {
        return Ok(ExitCode::SUCCESS);
    }
    if outcome.result == SyncResult::PruneRefused
        && let Some(refusal) = synced.plan.refusal()
    {
        let refusal = refusal.to_string();
        let details: Vec<String> = outcome
            .failed
            .iter()
            .map(|f| {
                if f.message == refusal {
                    format!("  not pruned: {}", f.object)
                } else {
                    format!("  {}: {}", f.object, f.message)
                }
            })
            .collect();
        anyhow::bail!(
            "sync of {app} refused: {refusal}; nothing was changed:\n{}",
            details.join("\n")
        );
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
        anyhow::bail!("{app} applied, but the app {what}");
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
        "sync of {app} failed for {} object(s){nothing}:\n{}",
        outcome.failed.len(),
        details.join("\n")
    )
}
