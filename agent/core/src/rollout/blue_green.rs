//! Blue/green: two Deployments, `<name>-blue` and `<name>-green`, whose pods (and
//! selectors) carry `gitsync.dev/slot`. The Service selects the active slot; a new
//! version goes to the idle one at full size, reachable through `<service>-preview`.
//! Once the idle slot is ready, `gitsync promote` (or `autoPromoteAfter`) switches the
//! Service; the old slot keeps running for `scaleDownAfter` (an abort then switches
//! back at once), then scales to zero. An HPA follows the active slot, and a count the
//! HPA set is never applied over: a slot it scaled is left its count, and removed
//! instead of scaled to zero.

use serde_json::{Value, json};

use super::{
    Command, Context, Decision, LABEL_SLOT, Observed, Phase, Resume, State, Wait, annotate,
    derived_service, labelled, live_template_without, millis, rolled, runs, stalled, template_hash,
    with_selector,
};
use crate::policy::Strategy;

const BLUE: &str = "blue";
const GREEN: &str = "green";

fn other(slot: &str) -> &'static str {
    if slot == BLUE { GREEN } else { BLUE }
}

pub(super) fn decide(
    ctx: &Context<'_>,
    state: Option<&State>,
    observed: &Observed<'_>,
    command: Option<Command>,
    now: u64,
) -> Result<Decision, super::Error> {
    let Strategy::BlueGreen {
        auto_promote_after,
        scale_down_after,
        preview_service,
        ..
    } = &ctx.policy.strategy
    else {
        unreachable!("blue_green::decide is called for blue/green policies");
    };
    if ctx.services.is_empty() {
        return Err(ctx.fail(
            "blue/green switches the Service that selects the workload, and the app renders none",
        ));
    }
    if let Some(s) = ctx
        .services
        .iter()
        .find(|s| super::selector(&s.object).is_some_and(|sel| sel.contains_key(LABEL_SLOT)))
    {
        return Err(ctx.fail(format!(
            "Service {} selects by {LABEL_SLOT}, the label gitsync switches",
            s.id.name
        )));
    }
    let slot_name = |slot: &str| format!("{}-{slot}", ctx.name);
    let live = |slot: &str| ctx.live(observed, &slot_name(slot));
    // A slot whose `spec.replicas` the HPA took (it scaled the slot while it was active).
    let hpas = |slot: &str| ctx.hpa.is_some() && replicas_owned_elsewhere(live(slot));

    let mut notes = Vec::new();
    let mut st = match ctx.resume(state) {
        Resume::Continue(s) => s.clone(),
        Resume::Restart(s) => {
            notes.push("a new revision arrived mid-rollout: blue/green starts over".to_owned());
            let mut from = s.clone();
            if s.phase == Phase::Progressing {
                // Not switched yet: the active slot still runs the previous template.
                from.template = s.previous.clone();
                from.target = template_hash(&s.previous);
            }
            from.phase = Phase::Completed;
            start(ctx, Some(&from), observed, now, &mut notes)
        }
        Resume::Start(previous) => start(ctx, previous, observed, now, &mut notes),
    };
    let active = st.active_slot.clone().unwrap_or_else(|| BLUE.to_owned());
    let n = ctx.replicas(&[live(&active)]);

    let mut waiting = None;
    match st.phase {
        Phase::Progressing => {
            let idle = other(&active);
            let hash = template_hash(&labelled(&st.template, LABEL_SLOT, idle));
            if command == Some(Command::Abort) {
                abort(
                    &mut st,
                    "aborted by `gitsync abort` before the switch",
                    now,
                    &mut notes,
                );
            } else if let Err(reason) = rolled(live(idle), &hash, n) {
                let failed = stalled(live(idle)).or_else(|| {
                    ctx.deadline_passed(st.started_ms, now).then(|| {
                        format!(
                            "not ready within {} s: {reason}",
                            ctx.policy.progress_deadline.as_secs()
                        )
                    })
                });
                match failed {
                    Some(why) => abort(
                        &mut st,
                        &format!("{} {why}; the Service never switched", slot_name(idle)),
                        now,
                        &mut notes,
                    ),
                    None => {
                        waiting = Some(Wait::Health(format!("{}: {reason}", slot_name(idle))));
                    }
                }
            } else {
                let ready = *st.ready_ms.get_or_insert_with(|| {
                    notes.push(format!(
                        "{} ready with {n} pods{}",
                        slot_name(idle),
                        if *preview_service {
                            format!("; preview at Service {}-preview", ctx.services[0].id.name)
                        } else {
                            String::new()
                        }
                    ));
                    now
                });
                let auto = auto_promote_after.map(|d| ready + millis(d));
                if command == Some(Command::Promote) || auto.is_some_and(|t| now >= t) {
                    st.active_slot = Some(idle.to_owned());
                    st.switched_ms = Some(now);
                    st.phase = Phase::Switched;
                    notes.push(format!(
                        "switched Service {} to {} ({}); {} stays up for {} s",
                        ctx.services[0].id.name,
                        slot_name(idle),
                        if command == Some(Command::Promote) {
                            "gitsync promote"
                        } else {
                            "autoPromoteAfter"
                        },
                        slot_name(&active),
                        scale_down_after.as_secs()
                    ));
                    waiting = Some(Wait::Until(now + millis(*scale_down_after)));
                } else {
                    waiting = Some(auto.map_or(Wait::Promote, Wait::Until));
                }
            }
        }
        Phase::Switched => {
            let old = other(&active);
            if command == Some(Command::Abort) {
                st.active_slot = Some(old.to_owned());
                abort(
                    &mut st,
                    &format!(
                        "aborted by `gitsync abort`: switched back to {}",
                        slot_name(old)
                    ),
                    now,
                    &mut notes,
                );
                st.switched_ms = Some(now);
            } else {
                let until = st.switched_ms.unwrap_or(now) + millis(*scale_down_after);
                if now >= until {
                    st.settle(Phase::Completed, now);
                    notes.push(if hpas(old) {
                        format!(
                            "{} removed (its replica count is the HPA's to set)",
                            slot_name(old)
                        )
                    } else {
                        format!("{} scaled to zero", slot_name(old))
                    });
                } else {
                    waiting = Some(Wait::Until(until));
                }
            }
        }
        _ => {}
    }
    if command == Some(Command::Promote) && st.phase != Phase::Switched {
        if waiting.is_some() {
            notes.push("`gitsync promote`: the new slot is not ready yet".into());
        } else if notes.is_empty() {
            notes.push("`gitsync promote`: no blue/green rollout waits for it".into());
        }
    }

    let active = st.active_slot.clone().unwrap_or_else(|| BLUE.to_owned());
    let idle = other(&active);
    // Which template each slot runs, and how many pods.
    let (active_template, idle_template, idle_pods) = match st.phase {
        Phase::Progressing => (&st.previous, &st.template, n),
        Phase::Switched => (&st.template, &st.previous, n),
        Phase::Aborted => (&st.previous, &st.template, 0),
        _ => (&st.template, &st.previous, 0),
    };
    // Under an HPA, gitsync applies no count to a slot whose count the HPA took: it never
    // undoes a scaling decision, and, owning the field no more, leaving it out resets
    // nothing. A slot gitsync alone sized (the new one, just switched to) keeps its
    // count until the HPA takes it: leaving out a field only gitsync owns would drop the
    // Deployment to one pod. The old slot the HPA scaled keeps the HPA's count through
    // the rollback window, and is then removed: scaling it to zero would take the field
    // back from the HPA (a conflict).
    let mut objects = vec![ctx.deployment(
        &slot_name(&active),
        active_template,
        &[(LABEL_SLOT, active.as_str())],
        (!hpas(&active)).then_some(n),
    )];
    let idle_hpas = hpas(idle);
    let idle_kept = idle_pods > 0 || (live(idle).is_some() && !idle_hpas);
    if idle_kept && !idle_template.is_null() {
        let replicas = if idle_hpas && st.phase == Phase::Switched {
            None
        } else {
            Some(idle_pods)
        };
        let mut slot = ctx.deployment(
            &slot_name(idle),
            idle_template,
            &[(LABEL_SLOT, idle)],
            replicas,
        );
        // A count for a slot the HPA scaled while it was active (a restart in the
        // rollback window): the HPA targets the other slot now, so gitsync takes the
        // field back, forcing this one object.
        if idle_hpas && replicas.is_some() {
            annotate(&mut slot, crate::manifest::ANNOTATION_FORCE, "true");
        }
        objects.push(slot);
    }
    let mut replaces = vec![ctx.deployment.id.clone()];
    for service in &ctx.services {
        replaces.push(service.id.clone());
        objects.push(with_selector(&service.object, LABEL_SLOT, &active));
    }
    if *preview_service {
        let service = ctx.services[0];
        let mut preview = derived_service(
            service,
            &format!("{}-preview", service.id.name),
            LABEL_SLOT,
            idle,
            ctx.name,
        );
        if let Some(spec) = preview.get_mut("spec").and_then(Value::as_object_mut) {
            // A preview is for testing from inside: never another load balancer.
            spec.insert("type".into(), json!("ClusterIP"));
            spec.remove("loadBalancerIP");
        }
        objects.push(preview);
    }
    if let Some(hpa) = ctx.hpa {
        replaces.push(hpa.id.clone());
        let mut hpa = hpa.object.clone();
        hpa["spec"]["scaleTargetRef"]["name"] = json!(slot_name(&active));
        objects.push(hpa);
    }
    Ok(Decision {
        replaces,
        objects,
        state: st,
        notes,
        waiting,
    })
}

/// A new rollout: the target goes to the idle slot, or, on the first deploy, straight
/// to blue.
fn start(
    ctx: &Context<'_>,
    previous: Option<&State>,
    observed: &Observed<'_>,
    now: u64,
    notes: &mut Vec<String>,
) -> State {
    let mut st = ctx.state(now);
    let live = |slot: &str| ctx.live(observed, &format!("{}-{slot}", ctx.name));
    let active = previous.and_then(|p| p.active_slot.clone()).or_else(|| {
        // No state: the slot with pods serves.
        [BLUE, GREEN]
            .into_iter()
            .find(|s| {
                live(s)
                    .is_some_and(|d| d.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0))
            })
            .map(str::to_owned)
    });
    let Some(active) = active else {
        st.active_slot = Some(BLUE.to_owned());
        st.settle(Phase::Completed, now);
        notes.push(format!(
            "{}-blue deployed; the Service selects it",
            ctx.name
        ));
        return st;
    };
    st.active_slot = Some(active.clone());
    let serving = live(&active);
    if serving.is_some_and(|d| runs(d, &labelled(ctx.template, LABEL_SLOT, &active))) {
        st.settle(Phase::Completed, now);
        st.previous = previous.map(|p| p.previous.clone()).unwrap_or_default();
        return st;
    }
    st.previous = match previous {
        Some(p) if p.phase == Phase::Aborted => p.previous.clone(),
        Some(p) => p.template.clone(),
        None => serving
            .map(|d| live_template_without(d, LABEL_SLOT))
            .unwrap_or_default(),
    };
    notes.push(format!(
        "blue/green rollout of {} started: the new version goes to {}-{}",
        ctx.name,
        ctx.name,
        other(&active)
    ));
    st
}

fn abort(st: &mut State, why: &str, now: u64, notes: &mut Vec<String>) {
    st.stop(Phase::Aborted, why, now);
    notes.push(format!("blue/green aborted: {why}"));
}

/// True when a manager other than gitsync's applies owns the live Deployment's
/// `spec.replicas`: an HPA that scaled it (an Update through the scale subresource takes
/// a field from every other manager when it changes its value).
fn replicas_owned_elsewhere(live: Option<&Value>) -> bool {
    live.and_then(|l| l.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|entry| !crate::diff::is_ours(entry))
        .any(|entry| entry.pointer("/fieldsV1/f:spec/f:replicas").is_some())
}
