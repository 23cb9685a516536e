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
    pub strategy: Strategy,
}

/// A rollout strategy with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Recreate {
        progress_deadline: Duration,
    },
    Ramped {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
        min_ready: Duration,
        progress_deadline: Duration,
        rollback_on_failure: bool,
    },
    BlueGreen {
        /// `None`: wait for `gitsync promote`.
        auto_promote_after: Option<Duration>,
        scale_down_after: Duration,
        preview_service: bool,
    },
    Canary {
        steps: Vec<CanaryStep>,
        max_restarts: u32,
        traffic: Traffic,
    },
}

/// `3` or `"25%"`, as in a Deployment's rolling update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u8),
}

/// One step of a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryStep {
    /// Send this percentage of traffic to the canary.
    SetWeight(u8),
    /// Wait this long, or for `gitsync promote` when `None`.
    Pause(Option<Duration>),
}

/// How canary weights are realised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Approximated by replica counts.
    Replicas,
    /// Exact, with ingress-nginx canary annotations.
    IngressNginx,
}

/// Parses every policy document of one file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Policy>, Error> {
    yaml::parse_documents(file, text)?
        .into_iter()
        .map(|doc| {
            let invalid = |message: String| Error::Invalid {
                file: file.to_owned(),
                line: doc.line,
                column: doc.column,
                message,
            };
            let raw: raw::Policy = serde_json::from_value(doc.value.clone())
                .map_err(|e| invalid(format!("not a valid StrategyPolicy: {e}")))?;
            raw.validate().map_err(invalid)
        })
        .collect()
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
    use super::{BTreeMap, CanaryStep, Deserialize, IntOrPercent, Strategy, Traffic, duration};

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
    #[serde(deny_unknown_fields)]
    struct Spec {
        selector: Option<Selector>,
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
        max_surge: Option<serde_json::Value>,
        max_unavailable: Option<serde_json::Value>,
        min_ready_seconds: Option<u64>,
        progress_deadline_seconds: Option<u64>,
        rollback_on_failure: Option<bool>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct BlueGreen {
        auto_promote_after: Option<String>,
        scale_down_after: Option<String>,
        preview_service: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Canary {
        steps: Vec<Step>,
        health: Option<Health>,
        traffic_routing: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Step {
        set_weight: Option<u8>,
        pause: Option<Pause>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pause {
        duration: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Health {
        max_restarts: Option<u32>,
    }

    const DEADLINE: u64 = 600;

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
            let s = self.spec.strategy;
            let strategy = match s.kind.as_str() {
                "recreate" => {
                    let r = s.recreate.unwrap_or_default();
                    Strategy::Recreate {
                        progress_deadline: secs(r.progress_deadline_seconds.unwrap_or(DEADLINE)),
                    }
                }
                "ramped" => {
                    let r = s.ramped.unwrap_or_default();
                    let max_surge = int_or_percent(r.max_surge.as_ref(), "maxSurge", 25)?;
                    let max_unavailable =
                        int_or_percent(r.max_unavailable.as_ref(), "maxUnavailable", 25)?;
                    if max_surge == IntOrPercent::Int(0) && max_unavailable == IntOrPercent::Int(0)
                    {
                        return Err("maxSurge and maxUnavailable cannot both be 0".into());
                    }
                    Strategy::Ramped {
                        max_surge,
                        max_unavailable,
                        min_ready: secs(r.min_ready_seconds.unwrap_or(0)),
                        progress_deadline: secs(r.progress_deadline_seconds.unwrap_or(DEADLINE)),
                        rollback_on_failure: r.rollback_on_failure.unwrap_or(true),
                    }
                }
                "blueGreen" => {
                    let b = s.blue_green.unwrap_or_default();
                    Strategy::BlueGreen {
                        auto_promote_after: b
                            .auto_promote_after
                            .as_deref()
                            .map(|d| {
                                duration::parse(d).map_err(|e| format!("autoPromoteAfter: {e}"))
                            })
                            .transpose()?,
                        scale_down_after: duration::parse(
                            b.scale_down_after.as_deref().unwrap_or("10m"),
                        )
                        .map_err(|e| format!("scaleDownAfter: {e}"))?,
                        preview_service: b.preview_service.unwrap_or(false),
                    }
                }
                "canary" => {
                    let c = s
                        .canary
                        .ok_or("type canary needs a canary section with steps")?;
                    canary(c)?
                }
                other => {
                    return Err(format!(
                        "unknown strategy type {other:?}: use recreate, ramped, blueGreen or canary"
                    ));
                }
            };
            Ok(super::Policy {
                name: self.metadata.name,
                match_labels: self
                    .spec
                    .selector
                    .map(|s| s.match_labels)
                    .unwrap_or_default(),
                strategy,
            })
        }
    }

    fn canary(c: Canary) -> Result<Strategy, String> {
        if c.steps.is_empty() {
            return Err("a canary needs at least one step".into());
        }
        let mut steps = Vec::with_capacity(c.steps.len());
        let mut last_weight = 0;
        for (i, step) in c.steps.into_iter().enumerate() {
            let n = i + 1;
            match (step.set_weight, step.pause) {
                (Some(w), None) => {
                    if w == 0 || w > 100 || w < last_weight {
                        return Err(format!(
                            "step {n}: setWeight {w} must be 1–100 and not below the previous weight"
                        ));
                    }
                    last_weight = w;
                    steps.push(CanaryStep::SetWeight(w));
                }
                (None, Some(p)) => {
                    let d = p
                        .duration
                        .as_deref()
                        .map(|d| duration::parse(d).map_err(|e| format!("step {n}: pause: {e}")))
                        .transpose()?;
                    steps.push(CanaryStep::Pause(d));
                }
                _ => return Err(format!("step {n}: give exactly one of setWeight or pause")),
            }
        }
        let traffic = match c.traffic_routing.as_deref() {
            None | Some("replicas") => Traffic::Replicas,
            Some("ingress-nginx") => Traffic::IngressNginx,
            Some(other) => {
                return Err(format!(
                    "unknown trafficRouting {other:?}: use replicas or ingress-nginx"
                ));
            }
        };
        Ok(Strategy::Canary {
            steps,
            max_restarts: c.health.and_then(|h| h.max_restarts).unwrap_or(0),
            traffic,
        })
    }

    fn int_or_percent(
        value: Option<&serde_json::Value>,
        field: &str,
        default_percent: u8,
    ) -> Result<IntOrPercent, String> {
        match value {
            None => Ok(IntOrPercent::Percent(default_percent)),
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(IntOrPercent::Int)
                .ok_or_else(|| format!("{field}: {n} is not a non-negative integer")),
            Some(serde_json::Value::String(s)) => s
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

    fn secs(n: u64) -> std::time::Duration {
        std::time::Duration::from_secs(n)
    }
}

#[cfg(test)]
mod tests;
