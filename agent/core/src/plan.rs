//! The sync plan: which objects to create, update, leave alone and prune, in the order
//! a sync must touch them, with the pruning guards of the design applied.
//!
//! Order: Namespaces, CRDs, ServiceAccounts/RBAC, ConfigMaps/Secrets, PVCs, Services,
//! workloads, HPAs, Ingresses, the rest ([`crate::kinds::apply_rank`]); prunes come
//! after every apply, in reverse order. `gitsync diff` prints a plan; `gitsync sync`
//! executes the same plan. Pure: no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::diff::{self, Action, ObjectDiff};
use crate::kinds;
use crate::manifest::{ANNOTATION_PRUNE, LABEL_APP, Manifest, ObjectId, annotation, label};

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the render of app {app:?} is empty: refusing to prune its {managed} live objects \
         (an empty render is treated as a mistake; delete the app's objects explicitly)"
    )]
    EmptyRender { app: String, managed: usize },
    #[error(
        "refusing to prune {prune} of {managed} live objects of app {app:?} (more than \
         {max_percent}%); check the render, then pass --force-prune if this is intended"
    )]
    PruneShare {
        app: String,
        prune: usize,
        managed: usize,
        max_percent: u8,
    },
}

/// Plan options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Delete live objects of the app that are no longer rendered.
    pub prune: bool,
    /// Prune even past `max_prune_percent`.
    pub force_prune: bool,
    /// Largest share of the app's live objects one sync may prune without force.
    pub max_prune_percent: u8,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prune: true,
            force_prune: false,
            max_prune_percent: 50,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub diff: ObjectDiff,
    /// What to apply (creates and updates).
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// A live object of the app that will not be pruned, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub id: ObjectId,
    pub reason: &'static str,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub prune: usize,
    pub unchanged: usize,
}

/// The ordered steps of one sync of one app.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub app: String,
    pub steps: Vec<Step>,
    /// Live objects left in place although no longer rendered.
    pub kept: Vec<Kept>,
}

impl Plan {
    /// Counts per action.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for step in &self.steps {
            match step.diff.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Prune => s.prune += 1,
                Action::Unchanged => s.unchanged += 1,
            }
        }
        s
    }

    /// True when executing the plan would change the cluster.
    pub fn has_changes(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.diff.action != Action::Unchanged)
    }
}

/// Plans the sync of `app`: `desired` is the render, `live` every live object that
/// carries the app's label or shares an identity with a desired object.
pub fn plan(
    app: &str,
    desired: &[Manifest],
    live: &[Value],
    options: Options,
) -> Result<Plan, Error> {
    let mut live_by_key: BTreeMap<(String, String, Option<String>, String), &Value> = live
        .iter()
        .filter_map(|object| {
            let id = ObjectId::of(object)?;
            Some((key(&id), object))
        })
        .collect();

    let mut applies: Vec<Step> = desired
        .iter()
        .filter_map(|m| {
            let live = live_by_key.remove(&key(&m.id));
            let diff = diff::object(Some(m), live)?;
            Some(Step {
                diff,
                manifest: Some(m.clone()),
            })
        })
        .collect();
    applies.sort_by(|a, b| order(&a.diff.id).cmp(&order(&b.diff.id)));

    let managed = live
        .iter()
        .filter(|o| label(o, LABEL_APP) == Some(app) && !is_owned(o))
        .count();
    let mut prunes = Vec::new();
    let mut kept = Vec::new();
    if options.prune {
        for object in live_by_key.into_values() {
            if label(object, LABEL_APP) != Some(app) || is_owned(object) {
                continue;
            }
            let Some(id) = ObjectId::of(object) else {
                continue;
            };
            if let Some(reason) = prune_guard(&id, object) {
                kept.push(Kept { id, reason });
                continue;
            }
            if let Some(diff) = diff::object(None, Some(object)) {
                prunes.push(Step {
                    diff,
                    manifest: None,
                });
            }
        }
    }
    if !prunes.is_empty() {
        if desired.is_empty() {
            return Err(Error::EmptyRender {
                app: app.to_owned(),
                managed,
            });
        }
        let over_share =
            prunes.len() * 100 > usize::from(options.max_prune_percent) * managed.max(1);
        if over_share && !options.force_prune && managed > 2 {
            return Err(Error::PruneShare {
                app: app.to_owned(),
                prune: prunes.len(),
                managed,
                max_percent: options.max_prune_percent,
            });
        }
    }
    prunes.sort_by(|a, b| order(&b.diff.id).cmp(&order(&a.diff.id)));
    applies.extend(prunes);
    Ok(Plan {
        app: app.to_owned(),
        steps: applies,
        kept,
    })
}

/// Identity without the version: the same object served at two versions is one object.
fn key(id: &ObjectId) -> (String, String, Option<String>, String) {
    (
        id.group.clone(),
        id.kind.clone(),
        id.namespace.clone(),
        id.name.clone(),
    )
}

fn order(id: &ObjectId) -> (u8, &str, Option<&str>, &str) {
    (
        kinds::apply_rank(&id.kind),
        &id.kind,
        id.namespace.as_deref(),
        &id.name,
    )
}

/// Why a live object of the app must not be pruned, if it must not.
fn prune_guard(id: &ObjectId, object: &Value) -> Option<&'static str> {
    let opt = annotation(object, ANNOTATION_PRUNE);
    if opt == Some("false") {
        return Some("annotated gitsync.dev/prune: \"false\"");
    }
    if id.kind == "PersistentVolumeClaim" && opt != Some("true") {
        return Some("PersistentVolumeClaims are pruned only with gitsync.dev/prune: \"true\"");
    }
    None
}

/// Objects a controller made (ownerReferences) are the controller's to delete, even if
/// they copied the app label from a template.
fn is_owned(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| !refs.is_empty())
}

#[cfg(test)]
mod tests;
