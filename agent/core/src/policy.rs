//! Strategy policies (`kind: StrategyPolicy`, the files in `policies/`): how a workload
//! rolls out (recreate, ramped, blue/green, canary), parsed, validated, and bound to
//! workloads by the `gitsync.dev/strategy` annotation or a label selector.
//!
//! This module only describes and selects strategies; executing them is the agent's.
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::manifest::{ANNOTATION_STRATEGY, annotation};
use crate::{duration, yaml};

/// The only apiVersion and kind a policy file may have.
pub const API_VERSION: &str = "gitsync.dev/v1alpha1";
pub const KIND: &str = "StrategyPolicy";

/// Why a policy file is rejected; always names file, line and column.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] yaml::Error),
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// One strategy policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// Workloads whose labels contain all of these use the policy (the annotation wins).
    pub match_labels: BTreeMap<String, String>,
    /// What a new revision arriving mid-rollout does.
    pub on_new_revision: OnNewRevision,
    /// How long a rollout step may take to become healthy before it has failed.
    pub progress_deadline: Duration,
    pub strategy: Strategy,
}

/// What a new revision arriving mid-rollout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnNewRevision {
    /// Finish the rollout in progress, then roll out the new revision.
    #[default]
    Queue,
    /// Abandon the rollout in progress and start over with the new revision.
    Restart,
}

/// A rollout strategy with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Every old pod terminates before the new version starts.
    Recreate,
    Ramped {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
        min_ready: Duration,
        /// Re-apply the previous template when the rollout misses its deadline.
        rollback_on_failure: bool,
    },
    BlueGreen {
        /// The active Service; `None`: the rendered Service selecting the workload.
        service: Option<String>,
        /// `None`: wait for `gitsync promote`.
        auto_promote_after: Option<Duration>,
        scale_down_after: Duration,
        preview_service: bool,
    },
    Canary {
        /// The Service both tracks share; `None`: the one selecting the workload.
        service: Option<String>,
        steps: Vec<CanaryStep>,
        max_restarts: u32,
        /// Every step also waits for this URL to answer 2xx.
        check_url: Option<String>,
        traffic: Traffic,
    },
}

impl Strategy {
    /// The name used in policy files (`type:`), status and history.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Recreate => "recreate",
            Self::Ramped { .. } => "ramped",
            Self::BlueGreen { .. } => "blueGreen",
            Self::Canary { .. } => "canary",
        }
    }
}

/// `3` or `"25%"`, as in a Deployment's rolling update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u8),
}

impl IntOrPercent {
    /// As a Deployment spec writes it.
    pub fn to_value(self) -> Value {
        match self {
            Self::Int(n) => Value::from(n),
            Self::Percent(p) => Value::String(format!("{p}%")),
        }
    }
}

/// One step of a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryStep {
    /// Send this percentage of traffic to the canary.
    Weight(u8),
    /// Wait this long, or for `gitsync promote` when `None`.
    Pause(Option<Duration>),
}

/// How canary weights are realised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Through an ingress-nginx canary Ingress when the Service has an nginx Ingress,
    /// by replica counts otherwise.
    Auto,
    /// Approximated by replica counts.
    Replicas,
    /// Exact, with ingress-nginx canary annotations.
    IngressNginx,
}

/// The policies every app can name without carrying them: the files in `policies/`.
pub fn built_in() -> Vec<Policy> {
    const FILES: [(&str, &str); 4] = [
        (
            "policies/recreate.yaml",
            include_str!("../../../policies/recreate.yaml"),
        ),
        (
            "policies/ramped.yaml",
            include_str!("../../../policies/ramped.yaml"),
        ),
        (
            "policies/blue-green.yaml",
            include_str!("../../../policies/blue-green.yaml"),
        ),
        (
            "policies/canary.yaml",
            include_str!("../../../policies/canary.yaml"),
        ),
    ];
    FILES
        .iter()
        .flat_map(|(file, text)| match parse(file, text) {
            Ok(policies) => policies,
            // Shipped files are parsed by a unit test: this cannot happen in a release.
            Err(e) => panic!("built-in policy {file}: {e}"),
        })
        .collect()
}

/// The app's own policies over the built-in ones: an app policy with a built-in name
/// replaces it.
pub fn with_built_in(app: Vec<Policy>) -> Vec<Policy> {
    let mut all = app;
    for policy in built_in() {
        if !all.iter().any(|p| p.name == policy.name) {
            all.push(policy);
        }
    }
    all
}

/// Parses every policy document of one file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Policy>, Error> {
    yaml::parse_documents(file, text)?
        .iter()
        .map(|doc| from_document(file, doc))
        .collect()
}

/// True for a document that is a strategy policy (by apiVersion group and kind), not
/// a Kubernetes object: render keeps these apart from the manifests.
pub fn is_policy(document: &Value) -> bool {
    let field = |k: &str| document.get(k).and_then(Value::as_str);
    field("kind") == Some(KIND)
        && field("apiVersion").is_some_and(|v| v.split('/').next() == Some("gitsync.dev"))
}

/// Parses one policy document of `file`; errors name the document's line and column.
pub fn from_document(file: &str, doc: &yaml::Document) -> Result<Policy, Error> {
    let invalid = |message: String| Error::Invalid {
        file: file.to_owned(),
        line: doc.line,
        column: doc.column,
        message,
    };
    let raw: raw::Policy = serde_json::from_value(doc.value.clone())
        .map_err(|e| invalid(format!("not a valid StrategyPolicy: {e}")))?;
    raw.validate().map_err(invalid)
}

/// The policy for a workload: the one its `gitsync.dev/strategy` annotation names, else
/// the first whose selector matches its labels, else `None` (the workload's native
/// rolling update). An annotation naming no known policy is an error.
pub fn select<'a>(policies: &'a [Policy], workload: &Value) -> Result<Option<&'a Policy>, String> {
    if let Some(name) = annotation(workload, ANNOTATION_STRATEGY) {
        return policies
            .iter()
            .find(|p| p.name == name)
            .map(Some)
            .ok_or_else(|| format!("{ANNOTATION_STRATEGY}: no strategy policy named {name:?}"));
    }
    let labels = workload
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    Ok(policies.iter().find(|p| {
        !p.match_labels.is_empty()
            && p.match_labels.iter().all(|(k, v)| {
                labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v.as_str())
            })
    }))
}

/// The YAML shape, before validation.
mod raw {
    use super::{
        BTreeMap, CanaryStep, Deserialize, Duration, IntOrPercent, OnNewRevision, Strategy,
        Traffic, duration,
    };
    use serde_json::Value;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct Policy {
        api_version: String,
        kind: String,
        metadata: Metadata,
        spec: Spec,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Metadata {
        name: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Spec {
        selector: Option<Selector>,
        on_new_revision: Option<String>,
        strategy: StrategySpec,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Selector {
        #[serde(default)]
        match_labels: BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct StrategySpec {
        #[serde(rename = "type")]
        kind: String,
        recreate: Option<Recreate>,
        ramped: Option<Ramped>,
        blue_green: Option<BlueGreen>,
        canary: Option<Canary>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Recreate {
        progress_deadline_seconds: Option<u64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Ramped {
        max_surge: Option<Value>,
        max_unavailable: Option<Value>,
        min_ready_seconds: Option<u64>,
        progress_deadline_seconds: Option<u64>,
        rollback_on_failure: Option<bool>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct BlueGreen {
        service: Option<String>,
        auto_promote_after: Option<String>,
        scale_down_after: Option<String>,
        preview_service: Option<bool>,
        progress_deadline_seconds: Option<u64>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Canary {
        service: Option<String>,
        steps: Vec<Step>,
        health: Option<Health>,
        traffic_routing: Option<String>,
        progress_deadline_seconds: Option<u64>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Step {
        #[serde(alias = "setWeight")]
        weight: Option<u8>,
        /// `1m`, `{duration: 1m}`, or `{}` (wait for `gitsync promote`).
        pause: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Health {
        max_restarts: Option<u32>,
        url: Option<String>,
    }

    const DEADLINE: u64 = 600;
    const SCALE_DOWN_AFTER: Duration = Duration::from_secs(30);

    impl Policy {
        pub fn validate(self) -> Result<super::Policy, String> {
            if self.api_version != super::API_VERSION || self.kind != super::KIND {
                return Err(format!(
                    "expected apiVersion {} and kind {}, found {} {}",
                    super::API_VERSION,
                    super::KIND,
                    self.api_version,
                    self.kind
                ));
            }
            let on_new_revision = match self.spec.on_new_revision.as_deref() {
                None | Some("queue") => OnNewRevision::Queue,
                Some("restart") => OnNewRevision::Restart,
                Some(other) => {
                    return Err(format!(
                        "unknown onNewRevision {other:?}: use queue or restart"
                    ));
                }
            };
            let s = self.spec.strategy;
            let (strategy, deadline) = match s.kind.as_str() {
                "recreate" => {
                    let r = s.recreate.unwrap_or_default();
                    (Strategy::Recreate, r.progress_deadline_seconds)
                }
                "ramped" => {
                    let r = s.ramped.unwrap_or_default();
                    let max_surge = int_or_percent(r.max_surge.as_ref(), "maxSurge", 25)?;
                    let max_unavailable =
                        int_or_percent(r.max_unavailable.as_ref(), "maxUnavailable", 25)?;
                    if is_zero(max_surge) && is_zero(max_unavailable) {
                        return Err("maxSurge and maxUnavailable cannot both be 0".into());
                    }
                    let strategy = Strategy::Ramped {
                        max_surge,
                        max_unavailable,
                        min_ready: Duration::from_secs(r.min_ready_seconds.unwrap_or(0)),
                        rollback_on_failure: r.rollback_on_failure.unwrap_or(true),
                    };
                    (strategy, r.progress_deadline_seconds)
                }
                "blueGreen" => {
                    let b = s.blue_green.unwrap_or_default();
                    let strategy = Strategy::BlueGreen {
                        service: b.service,
                        auto_promote_after: b
                            .auto_promote_after
                            .as_deref()
                            .map(|d| {
                                duration::parse(d).map_err(|e| format!("autoPromoteAfter: {e}"))
                            })
                            .transpose()?,
                        scale_down_after: b
                            .scale_down_after
                            .as_deref()
                            .map(|d| duration::parse(d).map_err(|e| format!("scaleDownAfter: {e}")))
                            .transpose()?
                            .unwrap_or(SCALE_DOWN_AFTER),
                        preview_service: b.preview_service.unwrap_or(true),
                    };
                    (strategy, b.progress_deadline_seconds)
                }
                "canary" => {
                    let c = s
                        .canary
                        .ok_or("type canary needs a canary section with steps")?;
                    let deadline = c.progress_deadline_seconds;
                    (canary(c)?, deadline)
                }
                other => {
                    return Err(format!(
                        "unknown strategy type {other:?}: use recreate, ramped, blueGreen or canary"
                    ));
                }
            };
            let deadline = deadline.unwrap_or(DEADLINE);
            if deadline == 0 {
                return Err("progressDeadlineSeconds must be greater than zero".into());
            }
            Ok(super::Policy {
                name: self.metadata.name,
                match_labels: self
                    .spec
                    .selector
                    .map(|s| s.match_labels)
                    .unwrap_or_default(),
                on_new_revision,
                progress_deadline: Duration::from_secs(deadline),
                strategy,
            })
        }
    }

    fn is_zero(value: IntOrPercent) -> bool {
        matches!(value, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    fn canary(spec: Canary) -> Result<Strategy, String> {
        if spec.steps.is_empty() {
            return Err("a canary needs at least one step".into());
        }
        let mut steps = Vec::with_capacity(spec.steps.len());
        let mut last_weight = 0;
        for (i, step) in spec.steps.into_iter().enumerate() {
            let n = i + 1;
            match (step.weight, step.pause) {
                (Some(w), None) => {
                    if w == 0 || w > 100 {
                        return Err(format!("step {n}: weight {w} must be between 1 and 100"));
                    }
                    if w < last_weight {
                        return Err(format!(
                            "step {n}: weight {w} goes down from {last_weight}: a canary's weights only grow (abort to go back)"
                        ));
                    }
                    last_weight = w;
                    steps.push(CanaryStep::Weight(w));
                }
                (None, Some(pause)) => {
                    let text = match &pause {
                        Value::String(d) => Some(d.as_str()),
                        Value::Number(_) => {
                            return Err(format!(
                                "step {n}: pause: write a duration with its unit, e.g. 30s or 1m"
                            ));
                        }
                        Value::Object(fields) => match fields.get("duration") {
                            None if fields.is_empty() => None,
                            Some(Value::String(d)) if fields.len() == 1 => Some(d.as_str()),
                            _ => {
                                return Err(format!(
                                    "step {n}: pause takes a duration (pause: 1m), {{duration: 1m}}, or {{}} to wait for `gitsync promote`"
                                ));
                            }
                        },
                        _ => {
                            return Err(format!(
                                "step {n}: pause takes a duration (pause: 1m), or {{}} to wait for `gitsync promote`"
                            ));
                        }
                    };
                    let d = text
                        .map(|d| duration::parse(d).map_err(|e| format!("step {n}: pause: {e}")))
                        .transpose()?;
                    steps.push(CanaryStep::Pause(d));
                }
                _ => return Err(format!("step {n}: give exactly one of weight or pause")),
            }
        }
        let traffic = match spec.traffic_routing.as_deref() {
            None | Some("auto") => Traffic::Auto,
            Some("replicas") => Traffic::Replicas,
            Some("ingress-nginx") => Traffic::IngressNginx,
            Some(other) => {
                return Err(format!(
                    "unknown trafficRouting {other:?}: use auto, replicas or ingress-nginx"
                ));
            }
        };
        let health = spec.health.unwrap_or(Health {
            max_restarts: None,
            url: None,
        });
        if let Some(url) = &health.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "health.url {url:?}: give an http:// or https:// URL"
            ));
        }
        Ok(Strategy::Canary {
            service: spec.service,
            steps,
            max_restarts: health.max_restarts.unwrap_or(0),
            check_url: health.url,
            traffic,
        })
    }

    fn int_or_percent(
        value: Option<&Value>,
        field: &str,
        default_percent: u8,
    ) -> Result<IntOrPercent, String> {
        match value {
            None => Ok(IntOrPercent::Percent(default_percent)),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(IntOrPercent::Int)
                .ok_or_else(|| format!("{field}: {n} is not a non-negative integer")),
            Some(Value::String(s)) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<u8>().ok())
                .filter(|p| *p <= 100)
                .map(IntOrPercent::Percent)
                .ok_or_else(|| format!("{field}: {s:?} is not an integer or a percentage")),
            Some(other) => Err(format!(
                "{field}: {other} is not an integer or a percentage"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
