//! Canary: `<name>-canary` runs the new template beside the stable Deployment, both
//! selected by the app's Service through the labels they share; the canary's pods (and
//! selector) also carry `gitsync.dev/track: canary`. A weight becomes replica counts
//! (the seeds' 1 canary of 4 pods = 25%: `ceil(n × weight / 100)`, at least one), or,
//! when the Service has an ingress-nginx Ingress, an exact weight through a canary
//! Ingress and a canary Service. Every weight step waits until the canary is available
//! with no more restarts than allowed (and the HTTP check, if any, answers 2xx); a
//! failed gate or `gitsync abort` removes the canary. After the last step the stable
//! Deployment takes the new template, then the canary goes.

use serde_json::{Value, json};

use super::{
    ANNOTATION_ROLLOUT_OF, Command, Context, Decision, LABEL_TRACK, Observed, Phase, Resume, State,
    Wait, derived_service, label_of, labelled, live_template_without, millis, rolled, runs,
    stalled, template_hash, with_selector,
};
use crate::Manifest;
use crate::policy::{CanaryStep, Strategy, Traffic};

pub(super) fn decide(
    ctx: &Context<'_>,
    state: Option<&State>,
    observed: &Observed<'_>,
    command: Option<Command>,
    now: u64,
) -> Result<Decision, super::Error> {
    let Strategy::Canary {
        steps,
        max_restarts,
        check_url,
        traffic,
        ..
    } = &ctx.policy.strategy
    else {
        unreachable!("canary::decide is called for canary policies");
    };
    let service = *ctx.services.first().ok_or_else(|| {
        ctx.fail("a canary needs a Service selecting the workload's pods, and the app renders none")
    })?;
    let ingresses = nginx_ingresses(ctx, service);
    let by_ingress = match traffic {
        Traffic::Replicas => false,
        Traffic::Auto => !ingresses.is_empty(),
        Traffic::IngressNginx if ingresses.is_empty() => {
            return Err(ctx.fail(format!(
                "trafficRouting ingress-nginx, but no Ingress of class nginx routes to Service {}",
                service.id.name
            )));
        }
        Traffic::IngressNginx => true,
    };
    let stable_name = ctx.name;
    let canary_name = format!("{stable_name}-canary");
    let stable_live = ctx.live(observed, stable_name);
    let canary_live = ctx.live(observed, &canary_name);
    check_shared_labels(ctx, service, stable_live)?;
    let n = ctx.replicas(&[stable_live]);

    let mut notes = Vec::new();
    let mut st = match ctx.resume(state) {
        Resume::Continue(s) => s.clone(),
        Resume::Restart(s) => {
            notes.push(format!(
                "a new revision arrived mid-rollout: the canary of {} starts over",
                s.revision.as_deref().unwrap_or("the previous template")
            ));
            start(ctx, Some(s), stable_live, now, &mut notes)
        }
        Resume::Start(previous) => start(ctx, previous, stable_live, now, &mut notes),
    };
    let canary_template = labelled(&st.template, LABEL_TRACK, "canary");
    let canary_hash = template_hash(&canary_template);

    let mut waiting = None;
    // `gitsync promote` ends the pause the rollout is at when the pass begins, and only
    // that one: a promote sent while a weight step waits on health does not skip the
    // pause after it, however soon the step turns healthy.
    let promote_at =
        (command == Some(Command::Promote) && st.phase == Phase::Paused).then_some(st.step);
    let mut promoted = false;
    if command == Some(Command::Abort) && st.in_progress() {
        abort(&mut st, "aborted by `gitsync abort`", now, &mut notes);
    }
    while st.in_progress() {
        let Some(step) = steps.get(st.step) else {
            // Past the last step: stable takes the new template, the canary stays
            // until stable is rolled out.
            let stable_hash = template_hash(&stable_template(&st.template, by_ingress));
            match rolled(stable_live, &stable_hash, n) {
                Ok(()) => {
                    st.settle(Phase::Completed, now);
                    notes.push(format!(
                        "{stable_name} promoted: stable runs the new template; canary removed"
                    ));
                }
                Err(reason) => waiting = Some(Wait::Health(format!("{stable_name}: {reason}"))),
            }
            break;
        };
        match *step {
            CanaryStep::Weight(weight) => {
                st.phase = Phase::Progressing;
                st.weight = weight;
                let pods = canary_replicas(n, weight);
                let restarts = observed.restarts.get(&canary_name).copied().unwrap_or(0);
                if restarts > *max_restarts {
                    let why = format!(
                        "canary containers restarted {restarts} times (maxRestarts {max_restarts})"
                    );
                    abort(&mut st, &why, now, &mut notes);
                    break;
                }
                if let Some(why) = stalled(canary_live) {
                    abort(&mut st, &format!("canary failed: {why}"), now, &mut notes);
                    break;
                }
                if let Err(reason) = rolled(canary_live, &canary_hash, pods) {
                    if ctx.deadline_passed(st.step_started_ms, now) {
                        let why = format!(
                            "canary not healthy within {} s: {reason}",
                            ctx.policy.progress_deadline.as_secs()
                        );
                        abort(&mut st, &why, now, &mut notes);
                    } else {
                        waiting = Some(Wait::Health(format!("{canary_name}: {reason}")));
                    }
                    break;
                }
                if check_url.is_some() {
                    match observed.check {
                        Some(Ok(())) => {}
                        Some(Err(e)) => {
                            abort(&mut st, &format!("HTTP check failed: {e}"), now, &mut notes);
                            break;
                        }
                        None => {
                            waiting = Some(Wait::Health("the HTTP check".into()));
                            break;
                        }
                    }
                }
                notes.push(format!(
                    "step {}: weight {weight}%: canary healthy ({pods} of {} pods)",
                    st.step + 1,
                    total(ctx, n, pods)
                ));
                advance(&mut st, now);
            }
            CanaryStep::Pause(duration) => {
                st.phase = Phase::Paused;
                if promote_at == Some(st.step) {
                    promoted = true;
                    notes.push(format!(
                        "step {}: pause ended by `gitsync promote`",
                        st.step + 1
                    ));
                    advance(&mut st, now);
                    continue;
                }
                match duration {
                    Some(d) if now >= st.step_started_ms + millis(d) => {
                        notes.push(format!(
                            "step {}: pause of {} s over",
                            st.step + 1,
                            d.as_secs()
                        ));
                        advance(&mut st, now);
                    }
                    Some(d) => {
                        waiting = Some(Wait::Until(st.step_started_ms + millis(d)));
                        break;
                    }
                    None => {
                        waiting = Some(Wait::Promote);
                        break;
                    }
                }
            }
        }
    }
    if command == Some(Command::Promote) && !promoted {
        notes.push("`gitsync promote`: the canary is not at a pause; nothing to promote".into());
    }

    let mut replaces = vec![ctx.deployment.id.clone()];
    let mut objects = Vec::new();
    let stable_carries_track = stable_live
        .and_then(|l| l.pointer("/spec/template"))
        .and_then(|t| label_of(t, LABEL_TRACK))
        == Some("stable");
    let settled = match st.phase {
        Phase::Completed => Some(&st.template),
        Phase::Aborted | Phase::RolledBack | Phase::Failed => Some(&st.previous),
        Phase::Progressing | Phase::Paused | Phase::Switched => None,
    };
    if let Some(template) = settled {
        objects.push(ctx.deployment(
            stable_name,
            &stable_template(template, by_ingress),
            &[],
            ctx.own_replicas(n),
        ));
    } else {
        let pods = if st.weight == 0 {
            0
        } else {
            canary_replicas(n, st.weight)
        };
        let promoting = st.step >= steps.len();
        let (template, stable_pods) = if promoting {
            (&st.template, n)
        } else {
            (&st.previous, (n - pods).max(0))
        };
        objects.push(ctx.deployment(
            stable_name,
            &stable_template(template, by_ingress),
            &[],
            ctx.own_replicas(stable_pods),
        ));
        if pods > 0 {
            objects.push(ctx.deployment(
                &canary_name,
                &st.template,
                &[(LABEL_TRACK, "canary")],
                Some(pods),
            ));
            if by_ingress {
                objects.push(derived_service(
                    service,
                    &format!("{}-canary", service.id.name),
                    LABEL_TRACK,
                    "canary",
                    ctx.name,
                ));
                for ingress in &ingresses {
                    objects.push(canary_ingress(ingress, service, st.weight, ctx.name));
                }
            }
        }
    }
    if by_ingress && stable_carries_track {
        replaces.push(service.id.clone());
        objects.push(with_selector(&service.object, LABEL_TRACK, "stable"));
    }
    Ok(Decision {
        replaces,
        objects,
        state: st,
        notes,
        waiting,
    })
}

/// A new rollout from what serves now (or none to do: the first deploy, or stable
/// already runs the target).
fn start(
    ctx: &Context<'_>,
    previous: Option<&State>,
    stable_live: Option<&Value>,
    now: u64,
    notes: &mut Vec<String>,
) -> State {
    let mut st = ctx.state(now);
    match stable_live {
        Some(live) if !runs(live, &stable_template_of(live, ctx.template)) => {
            st.previous = match previous {
                Some(p) if p.in_progress() || p.phase != Phase::Completed => p.previous.clone(),
                Some(p) => p.template.clone(),
                None => live_template_without(live, LABEL_TRACK),
            };
            notes.push(format!("canary rollout of {} started", ctx.name));
        }
        _ => {
            st.settle(Phase::Completed, now);
        }
    }
    st
}

/// The target template as the live stable would carry it (with its track label, if
/// the live one has it), to tell whether stable already runs it.
fn stable_template_of(live: &Value, template: &Value) -> Value {
    match live
        .pointer("/spec/template")
        .and_then(|t| label_of(t, LABEL_TRACK))
    {
        Some(track) => labelled(template, LABEL_TRACK, track),
        None => template.clone(),
    }
}

/// The stable Deployment's template: with `gitsync.dev/track: stable` when an Ingress
/// splits the traffic (the stable Service must not select canary pods).
fn stable_template(template: &Value, by_ingress: bool) -> Value {
    if by_ingress {
        labelled(template, LABEL_TRACK, "stable")
    } else {
        template.clone()
    }
}

fn advance(st: &mut State, now: u64) {
    st.step += 1;
    st.step_started_ms = now;
}

fn abort(st: &mut State, why: &str, now: u64, notes: &mut Vec<String>) {
    st.stop(Phase::Aborted, why, now);
    notes.push(format!(
        "canary aborted at step {}: {why}; stable keeps serving",
        st.step + 1
    ));
}

/// Canary pods for a weight: the share of `n` rounded up, at least one.
pub(super) fn canary_replicas(n: i64, weight: u8) -> i64 {
    let share = (n * i64::from(weight) + 99) / 100;
    share.clamp(1, n.max(1))
}

/// Pods serving in all, for notes: `n` (the canary's come out of stable's count), or
/// `n + canary` under an HPA (which keeps scaling stable).
fn total(ctx: &Context<'_>, n: i64, pods: i64) -> i64 {
    if ctx.hpa.is_some() { n + pods } else { n }
}

/// Every Service selector label must be one stable and canary pods share: a label the
/// versions set differently would leave one of them out of the Service.
fn check_shared_labels(
    ctx: &Context<'_>,
    service: &Manifest,
    stable_live: Option<&Value>,
) -> Result<(), super::Error> {
    let Some(selector) = super::selector(&service.object) else {
        return Err(ctx.fail(format!(
            "Service {} has no selector: a canary needs one both tracks match",
            service.id.name
        )));
    };
    if selector.contains_key(LABEL_TRACK) {
        return Err(ctx.fail(format!(
            "Service {} selects by {LABEL_TRACK}, the label gitsync uses to tell the canary apart",
            service.id.name
        )));
    }
    for (key, value) in selector {
        let new = label_of(ctx.template, key);
        if new != value.as_str() {
            return Err(ctx.fail(format!(
                "Service {} selects {key}={}, which the new pods (labelled {key}={}) do not carry",
                service.id.name,
                value.as_str().unwrap_or_default(),
                new.unwrap_or("<none>")
            )));
        }
        let old = stable_live
            .and_then(|l| l.pointer("/spec/template"))
            .map(|t| label_of(t, key));
        if let Some(old) = old
            && old != new
        {
            return Err(ctx.fail(format!(
                "Service {} selects by label {key}, which the canary cannot share: stable pods \
                 carry {key}={}, new ones {key}={}; select by labels both versions keep",
                service.id.name,
                old.unwrap_or("<none>"),
                new.unwrap_or("<none>")
            )));
        }
    }
    Ok(())
}

/// Rendered Ingresses of class nginx that route to the Service.
fn nginx_ingresses<'a>(ctx: &Context<'a>, service: &Manifest) -> Vec<&'a Manifest> {
    ctx.rendered
        .iter()
        .filter(|m| m.id.kind == "Ingress" && m.id.namespace == service.id.namespace)
        .filter(|m| {
            let class = m
                .object
                .pointer("/spec/ingressClassName")
                .and_then(Value::as_str)
                .or_else(|| crate::manifest::annotation(&m.object, "kubernetes.io/ingress.class"));
            class == Some("nginx") && routes_to(&m.object, &service.id.name)
        })
        .collect()
}

fn routes_to(ingress: &Value, service: &str) -> bool {
    fn name(backend: &Value) -> Option<&str> {
        backend.pointer("/service/name").and_then(Value::as_str)
    }
    let default = ingress
        .pointer("/spec/defaultBackend")
        .is_some_and(|b| name(b) == Some(service));
    default
        || ingress
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.pointer("/http/paths").and_then(Value::as_array))
            .flatten()
            .any(|p| p.get("backend").is_some_and(|b| name(b) == Some(service)))
}

/// `<ingress>-canary`: the same routes to the canary Service, with ingress-nginx's
/// canary weight.
fn canary_ingress(ingress: &Manifest, service: &Manifest, weight: u8, workload: &str) -> Value {
    let canary_service = format!("{}-canary", service.id.name);
    let mut text = ingress.object.clone();
    text["metadata"]["name"] = json!(format!("{}-canary", ingress.id.name));
    rename_backends(&mut text, &service.id.name, &canary_service);
    super::annotate(&mut text, "nginx.ingress.kubernetes.io/canary", "true");
    super::annotate(
        &mut text,
        "nginx.ingress.kubernetes.io/canary-weight",
        &weight.to_string(),
    );
    super::annotate(&mut text, ANNOTATION_ROLLOUT_OF, workload);
    text
}

fn rename_backends(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some(from) && map.contains_key("port") {
                map.insert("name".into(), json!(to));
            }
            for (_, child) in map.iter_mut() {
                rename_backends(child, from, to);
            }
        }
        Value::Array(items) => {
            for item in items {
                rename_backends(item, from, to);
            }
        }
        _ => {}
    }
}
