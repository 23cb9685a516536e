//! What a rollout will go through, before it runs (`gitsync plan`): the machine itself,
//! walked against a simulated cluster in which every applied Deployment becomes
//! available, every pause ends and every manual pause is promoted. The steps shown are
//! the ones the sync will take, not a separate description that could drift from them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Command, Decision, Error, Observed, State, Wait, Workload, decide, effective};

/// Passes a preview walks at most (a canary of 20 steps takes about 60).
const MAX_PASSES: usize = 200;

/// The steps of one workload's rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// `Deployment/<namespace>/<name>`.
    pub workload: String,
    pub policy: String,
    pub strategy: &'static str,
    /// False when the pod template does not change: nothing to roll out.
    pub changes: bool,
    /// In order: what is applied, what each step waits for, what it decides.
    pub steps: Vec<String>,
}

/// Walks `workload`'s rollout from `state` and the app's `live` objects to its end.
pub fn preview(
    workload: &Workload<'_>,
    live: &[Value],
    state: Option<&State>,
    now: u64,
) -> Result<Preview, Error> {
    let mut sim = Simulation {
        live: live.to_vec(),
        state: state.cloned(),
    };
    let mut steps = Vec::new();
    let mut shown: Vec<String> = live.iter().filter_map(describe).collect();
    let (mut t, mut command, mut changes) = (now, None, false);
    for _ in 0..MAX_PASSES {
        let decision = sim.pass(workload, command.take(), t, &BTreeMap::new(), Some(&Ok(())))?;
        changes |= !decision.notes.is_empty() || decision.waiting.is_some();
        steps.extend(decision.notes.iter().cloned());
        for line in decision.objects.iter().filter_map(describe) {
            if !shown.contains(&line) {
                steps.push(format!("apply {line}"));
                shown.push(line);
            }
        }
        match decision.waiting {
            None => break,
            Some(Wait::Promote) => {
                steps.push("wait for `gitsync promote`".into());
                command = Some(Command::Promote);
            }
            Some(Wait::Until(ms)) => {
                steps.push(format!("pause {} s", ms.saturating_sub(t).div_ceil(1000)));
                t = ms;
            }
            Some(Wait::Health(_) | Wait::Queued) => {
                sim.ready_all();
                t += 1000;
            }
        }
    }
    Ok(Preview {
        workload: workload.deployment.id.short(),
        policy: workload.policy.name.clone(),
        strategy: workload.policy.strategy.kind(),
        changes,
        steps,
    })
}

/// One line per object a rollout writes that a person cares about: Deployments with
/// their pods and images, Service selectors, canary Ingress weights.
fn describe(object: &Value) -> Option<String> {
    let kind = object.get("kind")?.as_str()?;
    let name = object.pointer("/metadata/name")?.as_str()?;
    match kind {
        "Deployment" => {
            let pods = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .map_or_else(|| "pods scaled by its HPA".to_owned(), |n| plural(n, "pod"));
            let images: Vec<&str> = object
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("image")?.as_str())
                .collect();
            Some(format!(
                "Deployment {name}: {pods}, image {}",
                images.join(", ")
            ))
        }
        "Service" => {
            let selector = object.pointer("/spec/selector")?.as_object()?;
            let labels: Vec<String> = selector
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            Some(format!("Service {name}: selects {}", labels.join(",")))
        }
        "Ingress" => {
            let weight =
                crate::manifest::annotation(object, "nginx.ingress.kubernetes.io/canary-weight")?;
            Some(format!("Ingress {name}: canary weight {weight}%"))
        }
        _ => None,
    }
}

fn plural(n: i64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A cluster as far as a rollout sees it: what the passes applied (and pruned), with
/// pods becoming available only when told.
#[derive(Debug, Default)]
pub(super) struct Simulation {
    pub live: Vec<Value>,
    pub state: Option<State>,
}

impl Simulation {
    /// One pass: decide, then apply the effective render and prune what it no longer
    /// has, as a sync does. A Deployment keeps its status while its template is the
    /// same (the controller has not moved it yet).
    pub fn pass(
        &mut self,
        workload: &Workload<'_>,
        command: Option<Command>,
        now: u64,
        restarts: &BTreeMap<String, u32>,
        check: Option<&Result<(), String>>,
    ) -> Result<Decision, Error> {
        let live = crate::manifest::index(&self.live);
        let observed = Observed {
            live: &live,
            restarts,
            check,
        };
        let decision = decide(workload, self.state.as_ref(), &observed, command, now)?;
        self.state = Some(decision.state.clone());
        let applied: Vec<Value> =
            effective(workload.rendered.to_vec(), std::slice::from_ref(&decision))
                .into_iter()
                .map(|m| m.object)
                .collect();
        self.live.retain(|l| applied.iter().any(|a| same(a, l)));
        for object in &applied {
            let previous = self.live.iter().position(|l| same(l, object));
            let previous = previous.map(|i| self.live.remove(i));
            let mut object = object.clone();
            if let Some(previous) = &previous
                && object.pointer("/spec/replicas").is_none()
                && let Some(n) = previous.pointer("/spec/replicas")
            {
                object["spec"]["replicas"] = n.clone();
            }
            let same_template = previous
                .as_ref()
                .is_some_and(|p| super::live_hash(p) == super::live_hash(&object));
            if let Some(status) = previous.and_then(|p| p.get("status").cloned())
                && same_template
            {
                object["status"] = status;
            }
            self.live.push(object);
        }
        Ok(decision)
    }

    /// The controller rolled every Deployment: all their pods are available.
    pub fn ready_all(&mut self) {
        for object in &mut self.live {
            if object.get("kind").and_then(Value::as_str) == Some("Deployment") {
                let n = object
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                *object = available(object.clone(), n);
            }
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    a.get("kind") == b.get("kind")
        && a.pointer("/metadata/namespace") == b.pointer("/metadata/namespace")
        && a.pointer("/metadata/name") == b.pointer("/metadata/name")
}

/// A Deployment whose `n` pods are all updated and available.
pub(super) fn available(mut live: Value, n: i64) -> Value {
    live["metadata"]["generation"] = json!(1);
    live["status"] = json!({"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
        "readyReplicas": n, "availableReplicas": n,
        "conditions": [{"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
    live
}
