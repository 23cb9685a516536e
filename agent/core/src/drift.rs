//! Drift: live objects that no longer match what gitsync last applied, with the fields
//! that differ and the field managers that changed them.
//!
//! A plan made for the revision already synced has no changes unless something changed
//! the cluster: every create, update or replace in it is drift. For each, the fields
//! are those where the live object differs from what a sync would leave (so fields
//! other managers own, like an HPA's `spec.replicas`, never count), and the managers
//! are the other `managedFields` entries that own those fields now. Pure.

use serde::Serialize;
use serde_json::Value;

use crate::diff::{self, Action};
use crate::fields::{self, FieldSet};
use crate::manifest::{self, FIELD_MANAGER, Manifest, ObjectId};
use crate::plan::Plan;

/// One drifted object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub object: ObjectId,
    /// `deleted` when the object is gone, else `modified`.
    pub kind: &'static str,
    pub fields: Vec<Field>,
}

/// One drifted field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`.
    pub path: String,
    /// Managers other than gitsync that own the field now (empty when none does, e.g.
    /// a field someone removed).
    pub managers: Vec<String>,
}

impl Drift {
    /// One line: `Deployment/demo/web: .spec.replicas (kubectl-edit)`.
    pub fn summary(&self) -> String {
        if self.kind == "deleted" {
            return format!("{}: deleted", self.object.short());
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                if f.managers.is_empty() {
                    f.path.clone()
                } else {
                    format!("{} ({})", f.path, f.managers.join(", "))
                }
            })
            .collect();
        format!("{}: {}", self.object.short(), fields.join(", "))
    }
}

/// The drift a plan for the already-synced revision shows; `live` is what it was made
/// against.
pub fn detect(plan: &Plan, live: &[Value]) -> Vec<Drift> {
    let live = manifest::index(live);
    plan.steps
        .iter()
        .filter_map(|step| {
            let desired = step.manifest.as_ref()?;
            let object = live.get(&step.diff.id.group_kind_key()).copied();
            drifted(&step.diff.id, step.diff.action, desired, object)
        })
        .collect()
}

/// The drift of one object as synced, `desired`, from its `live` version (`None`:
/// gone): what [`detect`] finds for it, without a plan of the whole app, so that a
/// drift check can look at thousands of objects one at a time.
pub fn of_object(desired: &Manifest, live: Option<&Value>) -> Option<Drift> {
    let diff = diff::object(Some(desired), live)?;
    drifted(&diff.id, diff.action, desired, live)
}

fn drifted(
    id: &ObjectId,
    action: Action,
    desired: &Manifest,
    live: Option<&Value>,
) -> Option<Drift> {
    match action {
        Action::Create => Some(Drift {
            object: id.clone(),
            kind: "deleted",
            fields: Vec::new(),
        }),
        Action::Update | Action::Replace => Some(Drift {
            object: id.clone(),
            kind: "modified",
            fields: explain(live?, desired),
        }),
        Action::Unchanged | Action::Prune => None,
    }
}

/// The fields where `live` differs from what applying `desired` would leave, and who
/// owns each now.
pub fn explain(live: &Value, desired: &Manifest) -> Vec<Field> {
    between(live, &diff::predict(&desired.object, live))
}

/// The fields where `live` differs from `after` (what a sync would leave: predicted,
/// or the API server's answer to a dry-run apply), and who owns each now.
pub fn between(live: &Value, after: &Value) -> Vec<Field> {
    let before = diff::normalize(live);
    let after = diff::normalize(after);
    let owners = other_managers(live);
    fields::changed(&before, &after)
        .leaves()
        .into_iter()
        .map(|path| Field {
            managers: owners
                .iter()
                .filter(|(_, set)| set.overlaps(&path))
                .map(|(manager, _)| manager.clone())
                .collect(),
            path: path.to_string(),
        })
        .collect()
}

/// Every manager other than gitsync with the fields it owns.
fn other_managers(live: &Value) -> Vec<(String, FieldSet)> {
    let mut out: Vec<(String, FieldSet)> = Vec::new();
    for entry in live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(manager) = entry.get("manager").and_then(Value::as_str) else {
            continue;
        };
        let Some(set) = entry
            .get("fieldsV1")
            .and_then(|f| FieldSet::from_fields_v1(f).ok())
        else {
            continue;
        };
        if manager == FIELD_MANAGER {
            continue;
        }
        match out.iter_mut().find(|(m, _)| m == manager) {
            Some((_, existing)) => *existing = existing.union(&set),
            None => out.push((manager.to_owned(), set)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Options, plan};
    use serde_json::json;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            id: ObjectId::of(&object).expect("identity"),
            source: crate::Source {
                file: "web.yaml".into(),
                line: 1,
                column: 1,
            },
            digest: crate::digest::of_object(&object),
            object,
        }
    }

    fn desired() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"gitsync.dev/app": "demo"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}})
    }

    /// The plan of [`desired`] against `live`.
    fn plan_against(live: &[Value]) -> Plan {
        plan("demo", &[manifest(desired())], live, Options::default()).expect("plan")
    }

    #[test]
    fn names_the_field_and_the_manager_that_changed_it() {
        let mut live = desired();
        live["spec"]["replicas"] = json!(7);
        live["metadata"]["managedFields"] = json!([
            {"manager": "gitsync", "operation": "Apply", "fieldsV1": {"f:spec": {
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
            {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        let p = plan_against(std::slice::from_ref(&live));
        let drift = detect(&p, std::slice::from_ref(&live));
        assert_eq!(drift.len(), 1);
        assert_eq!(
            drift[0].fields,
            vec![Field {
                path: ".spec.replicas".into(),
                managers: vec!["kubectl-edit".into()]
            }]
        );
        assert_eq!(
            drift[0].summary(),
            "Deployment/demo/web: .spec.replicas (kubectl-edit)"
        );
    }

    #[test]
    fn no_drift_when_live_matches_and_a_deleted_object_is_reported() {
        let live = desired();
        let p = plan_against(std::slice::from_ref(&live));
        assert!(detect(&p, &[live]).is_empty());
        let p = plan_against(&[]);
        let drift = detect(&p, &[]);
        assert_eq!(drift[0].summary(), "Deployment/demo/web: deleted");
    }

    #[test]
    fn one_object_at_a_time_finds_what_the_plan_finds() {
        let mut edited = desired();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:hacked");
        let mut scaled = desired();
        scaled["spec"]["replicas"] = json!(3);
        let cases = [None, Some(desired()), Some(edited), Some(scaled)];
        for live in cases {
            let live: Vec<Value> = live.into_iter().collect();
            let p = plan_against(&live);
            assert_eq!(
                of_object(&manifest(desired()), live.first())
                    .into_iter()
                    .collect::<Vec<_>>(),
                detect(&p, &live),
                "{live:?}"
            );
        }
    }
}
