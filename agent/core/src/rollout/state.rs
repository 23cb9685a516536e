//! A rollout's persisted state: what it rolls out, where it is, and since when. Stored
//! by the agent in the cluster (JSON) so a rollout survives restarts, and shown by
//! `gitsync status`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Phase {
    /// Applying a step and waiting for it to become healthy.
    #[default]
    Progressing,
    /// At a pause: timed, or waiting for `gitsync promote`.
    Paused,
    /// Blue/green: switched; the old slot stays up for the rollback window.
    Switched,
    /// Done: the new version serves alone.
    Completed,
    /// Stopped by `gitsync abort` or a failed gate: the previous version serves.
    Aborted,
    /// Ramped: missed its deadline; the previous template was applied again.
    RolledBack,
    /// Missed its deadline with nothing to go back to (recreate, or ramped without
    /// `rollbackOnFailure`).
    Failed,
}

impl Phase {
    /// True while the rollout still has work to do.
    pub fn in_progress(self) -> bool {
        matches!(self, Self::Progressing | Self::Paused | Self::Switched)
    }

    /// True when the rollout ended without the new version serving (aborted, rolled
    /// back or failed).
    pub fn gave_up(self) -> bool {
        matches!(self, Self::Aborted | Self::RolledBack | Self::Failed)
    }
}

/// When a recreate had no pod available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Downtime {
    pub from_ms: u64,
    /// `None` while it lasts.
    pub to_ms: Option<u64>,
}

/// One workload's rollout.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct State {
    pub policy: String,
    /// `recreate`, `ramped`, `blueGreen` or `canary`.
    pub strategy: String,
    /// Hash of the pod template rolled out (see [`super::template_hash`]).
    pub target: String,
    /// The pod template rolled out: kept, so a rollout finishes what it started while
    /// git moves on (`onNewRevision: queue`).
    pub template: Value,
    /// The commit the template comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The template serving before: a canary's stable template, a ramped rollout's
    /// rollback target.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub previous: Value,
    /// Recreate and ramped: the commit `previous` comes from, when known (a rollback
    /// names it). Absent from state stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    pub phase: Phase,
    /// Canary: index of the current step.
    pub step: usize,
    /// Canary: the weight applied now (percent of traffic to the canary).
    pub weight: u8,
    pub started_ms: u64,
    pub step_started_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Blue/green: the slot the Service selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_slot: Option<String>,
    /// Blue/green: when the new slot was first ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<u64>,
    /// Blue/green: when the Service switched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switched_ms: Option<u64>,
    /// Recreate: the window without an available pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,
    /// Why it was aborted, rolled back or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl State {
    /// True while the rollout still has work to do.
    pub fn in_progress(&self) -> bool {
        self.phase.in_progress()
    }

    /// Ends the rollout in `phase` at `now`.
    pub(super) fn settle(&mut self, phase: Phase, now: u64) {
        self.phase = phase;
        self.finished_ms = Some(now);
    }

    /// Ends the rollout in `phase` (aborted, rolled back, failed) for a reason.
    pub(super) fn stop(&mut self, phase: Phase, why: &str, now: u64) {
        self.settle(phase, now);
        self.reason = Some(why.to_owned());
    }
}
