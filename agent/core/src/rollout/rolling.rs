//! Recreate and ramped: the Deployment's own strategy, set from the policy, and watched
//! to its end. Recreate records the window without an available pod; ramped, when it
//! misses its deadline, applies the previous template again (`rollbackOnFailure`).

use serde_json::{Value, json};

use super::{
    Context, Decision, Downtime, Observed, Phase, Resume, State, Wait, rolled, runs, stalled,
};
use crate::policy::Strategy;

pub(super) fn decide(
    ctx: &Context<'_>,
    state: Option<&State>,
    observed: &Observed<'_>,
    now: u64,
) -> Decision {
    let live = ctx.live(observed, ctx.name);
    let replicas = ctx.replicas(&[live]);
    let mut notes = Vec::new();
    let mut state = match ctx.resume(state) {
        Resume::Continue(s) => s.clone(),
        Resume::Restart(s) => {
            notes.push(format!(
                "a new revision arrived mid-rollout: the {} rollout of {} starts over",
                ctx.policy.strategy.kind(),
                ctx.name
            ));
            start(ctx, Some(s), live, now, &mut notes)
        }
        Resume::Start(previous) => start(ctx, previous, live, now, &mut notes),
    };
    let target_hash = super::template_hash(&state.template);
    let mut waiting = None;
    if state.phase == Phase::Progressing {
        if matches!(ctx.policy.strategy, Strategy::Recreate) && !state.previous.is_null() {
            track_downtime(&mut state, live, now);
        }
        match rolled(live, &target_hash, replicas) {
            Ok(()) => {
                state.settle(Phase::Completed, now);
                notes.push(format!(
                    "{} rolled out in {} s{}",
                    ctx.name,
                    now.saturating_sub(state.started_ms) / 1000,
                    state.downtime.map_or_else(String::new, |d| format!(
                        ", {} ms without an available pod",
                        d.to_ms.unwrap_or(now).saturating_sub(d.from_ms)
                    ))
                ));
            }
            Err(reason) => {
                let failed = stalled(live).or_else(|| {
                    ctx.deadline_passed(state.started_ms, now).then(|| {
                        format!(
                            "not rolled out within {} s: {reason}",
                            ctx.policy.progress_deadline.as_secs()
                        )
                    })
                });
                if let Some(why) = failed {
                    let rollback = matches!(
                        ctx.policy.strategy,
                        Strategy::Ramped {
                            rollback_on_failure: true,
                            ..
                        }
                    ) && !state.previous.is_null();
                    let phase = if rollback {
                        Phase::RolledBack
                    } else {
                        Phase::Failed
                    };
                    state.stop(phase, &why, now);
                    notes.push(if rollback {
                        format!("{} failed ({why}); {}", ctx.name, rolled_back(&state))
                    } else {
                        format!("{} failed: {why}", ctx.name)
                    });
                } else {
                    waiting = Some(Wait::Health(format!("{}: {reason}", ctx.name)));
                }
            }
        }
    }
    let template = if state.phase == Phase::RolledBack {
        &state.previous
    } else {
        &state.template
    };
    let mut object = ctx.deployment(ctx.name, template, &[], ctx.own_replicas(replicas));
    set_strategy(ctx, &mut object);
    Decision {
        replaces: vec![ctx.deployment.id.clone()],
        objects: vec![object],
        state,
        notes,
        waiting,
    }
}

/// A new rollout from what runs now (none to do on the first deploy, or when the
/// Deployment already runs the target).
fn start(
    ctx: &Context<'_>,
    previous: Option<&State>,
    live: Option<&Value>,
    now: u64,
    notes: &mut Vec<String>,
) -> State {
    let mut fresh = ctx.state(now);
    match live {
        Some(live) if runs(live, ctx.template) => fresh.settle(Phase::Completed, now),
        Some(live) => {
            (fresh.previous, fresh.previous_revision) = serving(previous, live);
            notes.push(format!(
                "{} rollout of {} started",
                ctx.policy.strategy.kind(),
                ctx.name
            ));
        }
        None => {}
    }
    fresh
}

/// The template serving now, to roll back to, and the commit it comes from: what
/// gitsync last completed (or went back to) when the live Deployment still carries it,
/// else the live template and the revision it was applied from.
fn serving(previous: Option<&State>, live: &Value) -> (Value, Option<String>) {
    match previous {
        Some(p) if p.in_progress() || p.phase == Phase::RolledBack => {
            (p.previous.clone(), p.previous_revision.clone())
        }
        Some(p) if super::live_hash(live) == Some(p.target.as_str()) => {
            (p.template.clone(), p.revision.clone())
        }
        _ => (
            live.pointer("/spec/template").cloned().unwrap_or_default(),
            crate::manifest::annotation(live, crate::manifest::ANNOTATION_REVISION)
                .map(str::to_owned),
        ),
    }
}

/// What a rollback did, naming the revisions it went from and to when they are known.
fn rolled_back(state: &State) -> String {
    match (
        state.revision.as_deref(),
        state.previous_revision.as_deref(),
    ) {
        (Some(from), Some(to)) => format!("rolled back from revision {from} to revision {to}"),
        (Some(from), None) => format!("rolled back from revision {from} to the previous template"),
        (None, Some(to)) => format!("rolled back to revision {to}"),
        (None, None) => "rolled back to the previous template".to_owned(),
    }
}

/// Notes when no pod was available, and when one was again.
fn track_downtime(state: &mut State, live: Option<&Value>, now: u64) {
    let available = live
        .and_then(|l| l.pointer("/status/availableReplicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match (&mut state.downtime, available) {
        (None, 0) => {
            state.downtime = Some(Downtime {
                from_ms: now,
                to_ms: None,
            });
        }
        (Some(d), n) if n > 0 && d.to_ms.is_none() => d.to_ms = Some(now),
        _ => {}
    }
}

/// The policy's strategy fields on the Deployment.
fn set_strategy(ctx: &Context<'_>, object: &mut Value) {
    let deadline = ctx.policy.progress_deadline.as_secs();
    object["spec"]["progressDeadlineSeconds"] = json!(deadline);
    match &ctx.policy.strategy {
        Strategy::Recreate => object["spec"]["strategy"] = json!({"type": "Recreate"}),
        Strategy::Ramped {
            max_surge,
            max_unavailable,
            min_ready,
            ..
        } => {
            object["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": max_surge.to_value(),
                "maxUnavailable": max_unavailable.to_value(),
            }});
            object["spec"]["minReadySeconds"] = json!(min_ready.as_secs());
        }
        _ => {}
    }
}
