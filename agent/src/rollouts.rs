//! Rollouts as a sync runs them: the I/O around core's pure [`rollout`] machine.
//!
//! Between render and plan, a pass binds the rendered Deployments to their strategy
//! policies (the app's own `StrategyPolicy` documents over the built-in ones), reads each
//! rollout's state and any pending `gitsync promote` / `gitsync abort` from the
//! ConfigMap `gitsync-rollouts-<app>` in the agent's namespace, observes what the
//! machine needs beyond the live objects (container restarts of the canary's pods, the
//! policy's HTTP check), and asks [`rollout::decide`] what each workload should look
//! like now. The plan then applies that instead of the render. The new states are
//! stored before anything is applied, so a rollout survives an agent restart, and the
//! CLI reads them for `gitsync status`.

use std::collections::BTreeMap;

use gitsync_core::manifest::{self, Manifest, ObjectId};
use gitsync_core::policy::{self, CanaryStep, Policy, Strategy};
use gitsync_core::render::Rendered;
use gitsync_core::rollout::{self, Command, Decision, Observed, Phase, State, Wait};
use gitsync_core::time;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::now_ms;
use crate::store::{self, Data, Store};

/// Label on the rollout ConfigMaps naming their app (not `gitsync.dev/app`: the state
/// is not one of the app's objects and is never pruned with them).
pub const LABEL_ROLLOUTS_OF: &str = "gitsync.dev/rollouts-of";
const STATE_KEY: &str = "rollouts.json";
const REQUEST_KEY: &str = "request.json";
/// Notes kept per rollout (oldest dropped first).
const LOG_LIMIT: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A workload cannot be rolled as its policy says (an unknown policy, a missing
    /// Service…): found before anything changes, named with its file and line.
    #[error(transparent)]
    Invalid(rollout::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("the rollout state of {app} is not valid JSON: {message}")]
    Corrupt { app: String, message: String },
    #[error("{app} has no rollout in progress to {command}")]
    NothingInProgress { app: String, command: &'static str },
    #[error("cannot read the pods of {workload}")]
    Pods {
        workload: String,
        #[source]
        source: kube::Error,
    },
}

/// One workload's rollout, as stored in the cluster and shown by `gitsync status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `Deployment/<namespace>/<name>`.
    pub workload: String,
    #[serde(flatten)]
    pub state: State,
    /// Canary: how many steps the policy has.
    #[serde(default)]
    pub steps: usize,
    /// How far the rollout is, 0–100.
    #[serde(default)]
    pub progress: u8,
    /// What the last pass waited for, in words (`None`: settled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// True when it waits for `gitsync promote`.
    #[serde(default)]
    pub awaiting_promote: bool,
    /// The gates of the current step, as the last pass saw them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Gate>,
    /// What happened so far, oldest first: `<time> <note>`.
    #[serde(default)]
    pub log: Vec<String>,
    /// When a pass last changed it (RFC 3339).
    #[serde(default)]
    pub updated: String,
}

impl Rollout {
    /// Equal but for when it was written.
    fn same_as(&self, other: &Self) -> bool {
        Self {
            updated: other.updated.clone(),
            ..self.clone()
        } == *other
    }

    pub fn in_progress(&self) -> bool {
        self.state.in_progress()
    }

    /// Why the rollout gave up (aborted, rolled back, failed), in one line; `None`
    /// while it runs or once it completed.
    pub fn failure(&self) -> Option<String> {
        let st = &self.state;
        st.phase.gave_up().then(|| {
            format!(
                "rollout of {} ended {:?}: {}",
                self.workload,
                st.phase,
                st.reason.as_deref().unwrap_or_default()
            )
        })
    }
}

/// One condition a step waits on, and whether it held at the last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// An operator's `gitsync promote` or `gitsync abort`, kept until a pass carries it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    /// `promote` or `abort`.
    pub command: String,
    pub at: String,
}

impl Request {
    fn command(&self) -> Option<Command> {
        match self.command.as_str() {
            "promote" => Some(Command::Promote),
            "abort" => Some(Command::Abort),
            _ => None,
        }
    }
}

/// The rollout store of one namespace.
#[derive(Clone)]
pub struct Rollouts {
    store: Store,
}

impl Rollouts {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            store: Store::new(client, namespace),
        }
    }

    /// The app's rollouts (empty when it never had one).
    pub async fn list(&self, app: &str) -> Result<Vec<Rollout>, Error> {
        Ok(self.load(app).await?.0)
    }

    async fn load(&self, app: &str) -> Result<(Vec<Rollout>, Option<Request>), Error> {
        let data = self.store.read(&name(app)).await?.unwrap_or_default();
        decode(app, &data)
    }

    /// Asks the app's rollouts in progress to promote or abort; the next pass (the
    /// agent's, within seconds, or the next `gitsync sync`) carries it out.
    pub async fn request(&self, app: &str, command: Command) -> Result<Request, Error> {
        let word = match command {
            Command::Promote => "promote",
            Command::Abort => "abort",
        };
        if !self.list(app).await?.iter().any(Rollout::in_progress) {
            return Err(Error::NothingInProgress {
                app: app.to_owned(),
                command: word,
            });
        }
        let ms = now_ms();
        let request = Request {
            id: format!("{ms}-{}", std::process::id()),
            command: word.to_owned(),
            at: time::rfc3339(ms / 1000),
        };
        let text = serde_json::to_string(&request).unwrap_or_default();
        self.store
            .update(&name(app), (LABEL_ROLLOUTS_OF, app), |mut data| {
                data.insert(REQUEST_KEY.to_owned(), text.clone());
                data
            })
            .await?;
        Ok(request)
    }

    /// Stores a pass's rollouts (replacing the app's earlier ones) and drops the request
    /// it carried out, unless a newer one arrived meanwhile. A pass that changed
    /// nothing writes nothing.
    pub async fn save(&self, app: &str, pass: &Pass) -> Result<(), Error> {
        if !pass.changed {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(
            &pass.rollouts.iter().map(|p| &p.rollout).collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let consumed = pass.consumed.as_deref();
        self.store
            .update(&name(app), (LABEL_ROLLOUTS_OF, app), |mut data| {
                data.insert(STATE_KEY.to_owned(), text.clone());
                let pending = data
                    .get(REQUEST_KEY)
                    .and_then(|t| serde_json::from_str::<Request>(t).ok());
                if pending.is_some_and(|r| Some(r.id.as_str()) == consumed) {
                    data.remove(REQUEST_KEY);
                }
                data
            })
            .await?;
        Ok(())
    }
}

fn name(app: &str) -> String {
    format!("gitsync-rollouts-{app}")
}

fn decode(app: &str, data: &Data) -> Result<(Vec<Rollout>, Option<Request>), Error> {
    let corrupt = |e: serde_json::Error| Error::Corrupt {
        app: app.to_owned(),
        message: e.to_string(),
    };
    let rollouts = match data.get(STATE_KEY) {
        Some(text) => serde_json::from_str(text).map_err(corrupt)?,
        None => Vec::new(),
    };
    // A request that does not parse is dropped rather than blocking the rollouts.
    let request = data
        .get(REQUEST_KEY)
        .and_then(|text| serde_json::from_str(text).ok());
    Ok((rollouts, request))
}

/// One workload's rollout after a pass.
#[derive(Debug, Clone)]
pub struct Progress {
    pub rollout: Rollout,
    /// The rolled Deployment as rendered (Events are recorded on it).
    pub deployment: ObjectId,
    /// What happened in this pass.
    pub notes: Vec<String>,
    pub wait: Option<Wait>,
}

/// What a pass decided.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// The render with every rollout's objects in place of the workload's: what the
    /// plan applies.
    pub desired: Vec<Manifest>,
    pub rollouts: Vec<Progress>,
    /// A [`Mode::Plan`] pass: the steps each rollout will go through from here.
    pub previews: Vec<rollout::Preview>,
    /// True when the rollouts differ from the stored ones (or a request was carried
    /// out): only then does [`Rollouts::save`] write.
    changed: bool,
    /// The request this pass carried out.
    consumed: Option<String>,
}

/// What a pass is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A sync: carries out a pending promote or abort.
    Sync,
    /// A diff: leaves requests alone.
    Diff,
    /// `gitsync plan`: a diff that also walks each rollout to its end.
    Plan,
}

/// Binds, observes and decides every rollout of the rendered app against `live` (the
/// app's live objects). With `store`, states and requests are read from it (`None`:
/// every rollout is seen as starting).
pub async fn pass(
    cluster: &Cluster,
    store: Option<&Rollouts>,
    app: &str,
    rendered: Rendered,
    live: &[Value],
    mode: Mode,
) -> Result<Pass, Error> {
    let policies = policy::with_built_in(rendered.policies);
    let manifests = rendered.manifests;
    let bound = rollout::bound(&manifests, &policies).map_err(Error::Invalid)?;
    if bound.is_empty() {
        return Ok(Pass {
            desired: manifests,
            ..Pass::default()
        });
    }
    let (stored, request) = match store {
        Some(s) => s.load(app).await?,
        None => (Vec::new(), None),
    };
    let command = request
        .as_ref()
        .filter(|_| mode == Mode::Sync)
        .and_then(Request::command);
    let live_index = manifest::index(live);
    let now = now_ms();
    let mut decisions: Vec<Decision> = Vec::new();
    let mut rollouts = Vec::new();
    let mut previews = Vec::new();
    // Workloads no longer bound drop out of the stored list.
    let mut changed = stored.len() != bound.len();
    for (deployment, policy) in bound {
        let workload = deployment.id.short();
        let previous = stored.iter().find(|r| r.workload == workload);
        let state = previous.map(|r| &r.state);
        let canary = canary_observations(cluster, policy, deployment, &live_index).await?;
        let observed = Observed {
            live: &live_index,
            restarts: &canary.restarts,
            check: canary.check.as_ref(),
        };
        let in_progress = state.is_some_and(State::in_progress);
        let workload_ref = rollout::Workload {
            policy,
            deployment,
            rendered: &manifests,
        };
        if mode == Mode::Plan {
            previews
                .push(rollout::preview(&workload_ref, live, state, now).map_err(Error::Invalid)?);
        }
        let decision = rollout::decide(
            &workload_ref,
            state,
            &observed,
            command.filter(|_| in_progress),
            now,
        )
        .map_err(Error::Invalid)?;
        let mut log = previous.map(|r| r.log.clone()).unwrap_or_default();
        let stamp = time::rfc3339(now / 1000);
        log.extend(decision.notes.iter().map(|n| format!("{stamp} {n}")));
        let excess = log.len().saturating_sub(LOG_LIMIT);
        log.drain(..excess);
        let mut rollout = Rollout {
            workload,
            steps: steps(policy),
            progress: progress(policy, &decision.state, deployment, &live_index),
            waiting: decision.waiting.as_ref().map(ToString::to_string),
            awaiting_promote: decision.waiting == Some(Wait::Promote),
            gates: gates(policy, &decision, deployment, &canary, &live_index),
            log,
            updated: stamp,
            state: decision.state.clone(),
        };
        // A pass that only waited changes nothing worth a write.
        if let Some(p) = previous
            && rollout.same_as(p)
        {
            rollout.updated.clone_from(&p.updated);
        } else {
            changed = true;
        }
        rollouts.push(Progress {
            rollout,
            deployment: deployment.id.clone(),
            notes: decision.notes.clone(),
            wait: decision.waiting.clone(),
        });
        decisions.push(decision);
    }
    Ok(Pass {
        desired: rollout::effective(manifests, &decisions),
        rollouts,
        previews,
        changed: changed || command.is_some(),
        consumed: command.and(request.map(|r| r.id)),
    })
}

/// What a canary's gates read beyond the live objects.
#[derive(Default)]
struct CanaryObservations {
    /// Container restarts of the canary's pods, by Deployment name.
    restarts: BTreeMap<String, u32>,
    check: Option<Result<(), String>>,
}

/// Restarts of the canary's pods and the policy's HTTP check, read only while a canary
/// Deployment is live (nothing else is gated on them).
async fn canary_observations(
    cluster: &Cluster,
    policy: &Policy,
    deployment: &Manifest,
    live: &BTreeMap<manifest::Key<'_>, &Value>,
) -> Result<CanaryObservations, Error> {
    let Strategy::Canary { check_url, .. } = &policy.strategy else {
        return Ok(CanaryObservations::default());
    };
    let canary = format!("{}-canary", deployment.id.name);
    let namespace = deployment.id.namespace.as_deref();
    let Some(live_canary) = live.get(&("apps", "Deployment", namespace, canary.as_str())) else {
        return Ok(CanaryObservations::default());
    };
    let selector = live_canary
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace.unwrap_or("default"));
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Pods {
            workload: canary.clone(),
            source,
        })?;
    let restarts: u32 = list
        .items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
        .sum();
    let check = match check_url {
        Some(url) => Some(crate::probe::check(url).await),
        None => None,
    };
    Ok(CanaryObservations {
        restarts: BTreeMap::from([(canary, restarts)]),
        check,
    })
}

fn steps(policy: &Policy) -> usize {
    match &policy.strategy {
        Strategy::Canary { steps, .. } => steps.len(),
        _ => 0,
    }
}

/// How far a rollout is, 0–100: a canary by its steps, blue/green by its phases, a
/// rolling update by the pods already on the new template.
fn progress(
    policy: &Policy,
    state: &State,
    deployment: &Manifest,
    live: &BTreeMap<manifest::Key<'_>, &Value>,
) -> u8 {
    if state.phase == Phase::Completed {
        return 100;
    }
    let percent = |done: usize, of: usize| {
        u8::try_from((done * 100).checked_div(of).unwrap_or(0).min(100)).unwrap_or(100)
    };
    match &policy.strategy {
        Strategy::Canary { steps, .. } => percent(state.step, steps.len() + 1),
        Strategy::BlueGreen { .. } => match (state.phase, state.ready_ms) {
            (Phase::Switched, _) => 75,
            (_, Some(_)) => 50,
            _ => 25,
        },
        Strategy::Recreate | Strategy::Ramped { .. } => {
            let id = &deployment.id;
            let live = live.get(&id.group_kind_key());
            let count = |field: &str| {
                live.and_then(|d| d.pointer(&format!("/status/{field}")))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            let wanted = live
                .and_then(|d| d.pointer("/spec/replicas"))
                .and_then(Value::as_u64)
                .unwrap_or(1);
            percent(
                usize::try_from(count("updatedReplicas").min(count("availableReplicas")))
                    .unwrap_or(0),
                usize::try_from(wanted).unwrap_or(1),
            )
        }
    }
}

/// The gates of a canary step as the pass saw them.
fn gates(
    policy: &Policy,
    decision: &Decision,
    deployment: &Manifest,
    canary: &CanaryObservations,
    live: &BTreeMap<manifest::Key<'_>, &Value>,
) -> Vec<Gate> {
    let Strategy::Canary {
        steps,
        max_restarts,
        check_url,
        ..
    } = &policy.strategy
    else {
        return Vec::new();
    };
    let state = &decision.state;
    if !state.in_progress() || !matches!(steps.get(state.step), Some(CanaryStep::Weight(_))) {
        return Vec::new();
    }
    let name = format!("{}-canary", deployment.id.name);
    let namespace = deployment.id.namespace.as_deref();
    let live_canary = live.get(&("apps", "Deployment", namespace, name.as_str()));
    let field = |path: &str| {
        live_canary
            .and_then(|d| d.pointer(path))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let (available, wanted) = (field("/status/availableReplicas"), field("/spec/replicas"));
    let restarts = canary.restarts.get(&name).copied().unwrap_or(0);
    let mut gates = vec![
        Gate {
            name: "available".into(),
            passed: live_canary.is_some() && available >= wanted.max(1),
            detail: format!("{available} of {wanted} canary pods available"),
        },
        Gate {
            name: "restarts".into(),
            passed: restarts <= *max_restarts,
            detail: format!("{restarts} restarts (at most {max_restarts})"),
        },
    ];
    if let Some(url) = check_url {
        gates.push(Gate {
            name: "http".into(),
            passed: matches!(canary.check, Some(Ok(()))),
            detail: match &canary.check {
                Some(Ok(())) => format!("GET {url}: 2xx"),
                Some(Err(e)) => e.clone(),
                None => format!("GET {url}: not checked yet"),
            },
        });
    }
    gates
}
