//! The sync plan: which objects to create, update, replace, leave alone and prune, in
//! the order a sync must touch them, with the pruning guards of the design applied.
//!
//! Order: by wave (`gitsync.dev/wave: "<int>"`, default 0), then Namespaces, CRDs,
//! ServiceAccounts/RBAC, ConfigMaps/Secrets, PVCs, Services, workloads, HPAs,
//! Ingresses, the rest ([`crate::kinds::apply_rank`]); prunes come after every apply,
//! in reverse order.
//!
//! Guards: nothing is pruned on an empty render, nor more than a share of the app
//! without force; PersistentVolumeClaims, Namespaces and CRDs only with
//! `gitsync.dev/prune: "true"`; nothing annotated `gitsync.dev/prune: "false"`; an
//! object another app owns fails the plan. An update of an immutable field is a
//! replace, blocked unless the object carries `gitsync.dev/replace: "true"`.
//!
//! A guard that stops the prunes does not fail the plan: the plan still lists every
//! prune, each blocked with the guard's reason, and names the guard
//! ([`Plan::prune_guard`]), so `gitsync diff` shows what would go and why it will not;
//! executing a plan with a blocked step writes nothing.
//!
//! The share guard counts the app's live objects (those carrying its label that no
//! controller made), at every size: removing 1 of 2 objects is 50% (allowed at the
//! default), 2 of 2 is 100% (refused). A render that replaced every object of a small
//! app (a wrong path, a renamed app) is the case the guard is for; the empty-render
//! guard only covers a render with nothing in it, and holds even with force.
//!
//! `gitsync diff` prints a plan; `gitsync sync` executes the same plan. Pure: no I/O.

use serde::Serialize;
use serde_json::Value;

use crate::diff::{self, Action, ObjectDiff};
use crate::kinds;
use crate::manifest::{
    self, ANNOTATION_PRUNE, ANNOTATION_REPLACE, ANNOTATION_WAVE, LABEL_APP, Manifest, ObjectId,
    Source, annotation, label,
};

/// Why a plan cannot be made, or (the first two) why a sync of it refuses to prune.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not returned by [`plan`]: what [`Plan::refusal`] gives for [`Guard::EmptyRender`].
    #[error(
        "the render of app {app:?} is empty: refusing to prune its {managed} live objects \
         (an empty render is treated as a mistake; delete the app's objects explicitly)"
    )]
    EmptyRender { app: String, managed: usize },
    /// Not returned by [`plan`]: what [`Plan::refusal`] gives for [`Guard::PruneShare`].
    #[error(
        "refusing to prune {prune} of {managed} live objects of app {app:?} (more than \
         {max_percent}%); check the render, then pass --force-prune (the agent: \
         forcePrune in its configuration) if this is intended"
    )]
    PruneShare {
        app: String,
        prune: usize,
        managed: usize,
        max_percent: u8,
    },
    #[error(
        "{object} ({file}) is owned by app {owner:?}, not {app:?}: two apps cannot \
         manage one object (remove it from one of them)"
    )]
    OwnedByOtherApp {
        app: String,
        object: String,
        file: Source,
        owner: String,
    },
    #[error("{object} ({file}): gitsync.dev/wave must be an integer, got {value:?}")]
    BadWave {
        object: String,
        file: Source,
        value: String,
    },
}

/// A pruning guard that stops every prune of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub enum Guard {
    /// The render is empty while the app has live objects (even with force).
    EmptyRender { managed: usize },
    /// More than `max_percent` of the app's `managed` live objects would go, without
    /// force.
    PruneShare {
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
    /// The object's wave: every wave is applied, and healthy, before the next.
    pub wave: i32,
    /// Why this step may not run (a replace the object did not opt into, a prune a
    /// guard stops); a plan with a blocked step fails before writing anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// A Deployment a strategy rolls: its rollout judges its health, not the sync.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rolled: bool,
    /// What to apply: creates, updates and replaces (`None` for unchanged objects and
    /// prunes).
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
    pub replace: usize,
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
    /// The guard that stops every prune of this plan (each prune step is blocked with
    /// its reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_guard: Option<Guard>,
}

impl Plan {
    /// Counts per action.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for step in &self.steps {
            match step.diff.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
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

    /// The steps that cannot run, with why.
    pub fn blocked(&self) -> impl Iterator<Item = (&Step, &str)> {
        self.steps
            .iter()
            .filter_map(|s| s.blocked.as_deref().map(|b| (s, b)))
    }

    /// Why a sync of this plan refuses to prune, when a guard stops its prunes.
    pub fn refusal(&self) -> Option<Error> {
        self.prune_guard.map(|guard| guard.refusal(&self.app))
    }
}

impl Guard {
    /// Why a sync of `app` that this guard stops refuses to prune.
    fn refusal(self, app: &str) -> Error {
        let app = app.to_owned();
        match self {
            Self::EmptyRender { managed } => Error::EmptyRender { app, managed },
            Self::PruneShare {
                prune,
                managed,
                max_percent,
            } => Error::PruneShare {
                app,
                prune,
                managed,
                max_percent,
            },
        }
    }
}

/// Fails when `live`, the live version of `desired`, carries another app's label.
pub fn check_owner(app: &str, desired: &Manifest, live: Option<&Value>) -> Result<(), Error> {
    match live.and_then(|l| label(l, LABEL_APP)) {
        Some(owner) if owner != app => Err(Error::OwnedByOtherApp {
            app: app.to_owned(),
            object: desired.id.short(),
            file: desired.source.clone(),
            owner: owner.to_owned(),
        }),
        _ => Ok(()),
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
    let mut live_by_key = manifest::index(live);

    let mut applies = Vec::with_capacity(desired.len());
    for m in desired {
        let live = live_by_key.remove(&m.id.group_kind_key());
        check_owner(app, m, live)?;
        let Some(diff) = diff::object(Some(m), live) else {
            continue;
        };
        let blocked = (diff.action == Action::Replace
            && annotation(&m.object, ANNOTATION_REPLACE) != Some("true"))
        .then(|| {
            format!(
                "{} cannot be updated in place: {} {} immutable; annotate the object with \
                 gitsync.dev/replace: \"true\" to delete and recreate it",
                m.id.short(),
                diff.immutable.join(", "),
                if diff.immutable.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            )
        });
        applies.push(Step {
            manifest: (diff.action != Action::Unchanged).then(|| m.clone()),
            diff,
            wave: wave(m)?,
            blocked,
            rolled: crate::rollout::is_rolled(&m.object),
        });
    }
    applies.sort_by(|a, b| order(a).cmp(&order(b)));

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
                    wave: annotation(object, ANNOTATION_WAVE)
                        .and_then(|w| w.trim().parse().ok())
                        .unwrap_or(0),
                    blocked: None,
                    rolled: false,
                    manifest: None,
                });
            }
        }
    }
    let prune_guard = prune_guard_of(desired.is_empty(), prunes.len(), managed, options);
    if let Some(guard) = prune_guard {
        let reason = guard.refusal(app).to_string();
        for step in &mut prunes {
            step.blocked = Some(reason.clone());
        }
    }
    prunes.sort_by(|a, b| order(b).cmp(&order(a)));
    applies.extend(prunes);
    Ok(Plan {
        app: app.to_owned(),
        steps: applies,
        kept,
        prune_guard,
    })
}

/// The guard that stops `prune` prunes of an app with `managed` live objects, if one
/// does (see the module's documentation for the rule).
fn prune_guard_of(
    empty_render: bool,
    prune: usize,
    managed: usize,
    options: Options,
) -> Option<Guard> {
    if prune == 0 {
        return None;
    }
    if empty_render {
        return Some(Guard::EmptyRender { managed });
    }
    let over_share = prune * 100 > usize::from(options.max_prune_percent) * managed;
    (over_share && !options.force_prune).then_some(Guard::PruneShare {
        prune,
        managed,
        max_percent: options.max_prune_percent,
    })
}

fn order(step: &Step) -> (i32, u8, &str, Option<&str>, &str) {
    let id = &step.diff.id;
    (
        step.wave,
        kinds::apply_rank(&id.kind),
        &id.kind,
        id.namespace.as_deref(),
        &id.name,
    )
}

/// The wave a manifest declares (0 without the annotation).
fn wave(m: &Manifest) -> Result<i32, Error> {
    match annotation(&m.object, ANNOTATION_WAVE) {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| Error::BadWave {
            object: m.id.short(),
            file: m.source.clone(),
            value: text.to_owned(),
        }),
    }
}

/// Why a live object of the app must not be pruned, if it must not.
fn prune_guard(id: &ObjectId, object: &Value) -> Option<&'static str> {
    let opt = annotation(object, ANNOTATION_PRUNE);
    if opt == Some("false") {
        return Some("annotated gitsync.dev/prune: \"false\"");
    }
    if opt == Some("true") {
        return None;
    }
    match id.kind.as_str() {
        "PersistentVolumeClaim" => {
            Some("PersistentVolumeClaims are pruned only with gitsync.dev/prune: \"true\"")
        }
        "Namespace" => Some("Namespaces are pruned only with gitsync.dev/prune: \"true\""),
        "CustomResourceDefinition" => {
            Some("CustomResourceDefinitions are pruned only with gitsync.dev/prune: \"true\"")
        }
        _ => None,
    }
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
