use super::*;
use crate::manifest::Source;
use serde_json::json;

fn obj(kind: &str, name: &str) -> Value {
    let api = match kind {
        "Deployment" => "apps/v1",
        "Ingress" => "networking.k8s.io/v1",
        _ => "v1",
    };
    let mut o = json!({"apiVersion": api, "kind": kind,
        "metadata": {"name": name, "labels": {"gitsync.dev/app": "demo"}}});
    if kind != "Namespace" {
        o["metadata"]["namespace"] = json!("demo");
    }
    o
}

fn manifest(object: Value) -> Manifest {
    Manifest {
        id: ObjectId::of(&object).expect("identity"),
        source: Source {
            file: "a.yaml".into(),
            line: 1,
            column: 1,
        },
        digest: crate::digest::of_object(&object),
        object,
    }
}

fn kinds_in_order(plan: &Plan) -> Vec<(String, Action)> {
    plan.steps
        .iter()
        .map(|s| (s.diff.id.kind.clone(), s.diff.action))
        .collect()
}

#[test]
fn applies_in_dependency_order_and_prunes_last_in_reverse() {
    let desired: Vec<Manifest> = ["Ingress", "Deployment", "Service", "Namespace", "ConfigMap"]
        .iter()
        .map(|k| manifest(obj(k, if *k == "Namespace" { "demo" } else { "x" })))
        .collect();
    let live = vec![
        obj("Secret", "gone"),
        obj("Ingress", "gone"),
        obj("ConfigMap", "old"),
        obj("Deployment", "old2"),
        obj("Service", "old3"),
    ];
    let plan = plan(
        "demo",
        &desired,
        &live,
        Options {
            force_prune: true,
            ..Options::default()
        },
    )
    .expect("plan");
    let order = kinds_in_order(&plan);
    assert_eq!(
        order,
        vec![
            ("Namespace".into(), Action::Create),
            ("ConfigMap".into(), Action::Create),
            ("Service".into(), Action::Create),
            ("Deployment".into(), Action::Create),
            ("Ingress".into(), Action::Create),
            ("Ingress".into(), Action::Prune),
            ("Deployment".into(), Action::Prune),
            ("Service".into(), Action::Prune),
            ("Secret".into(), Action::Prune),
            ("ConfigMap".into(), Action::Prune),
        ]
    );
    assert_eq!(
        plan.summary(),
        Summary {
            create: 5,
            update: 0,
            prune: 5,
            unchanged: 0
        }
    );
}

#[test]
fn empty_render_never_prunes() {
    let err = plan("demo", &[], &[obj("ConfigMap", "a")], Options::default()).expect_err("refused");
    assert!(
        matches!(err, Error::EmptyRender { managed: 1, .. }),
        "{err}"
    );
}

#[test]
fn pruning_most_of_an_app_needs_force() {
    let desired = vec![manifest(obj("ConfigMap", "keep"))];
    let live: Vec<Value> = ["keep", "a", "b", "c"]
        .iter()
        .map(|n| obj("ConfigMap", n))
        .collect();
    let err = plan("demo", &desired, &live, Options::default()).expect_err("refused");
    assert!(err.to_string().contains("--force-prune"), "{err}");
    let forced = plan(
        "demo",
        &desired,
        &live,
        Options {
            force_prune: true,
            ..Options::default()
        },
    );
    assert_eq!(forced.expect("plan").summary().prune, 3);
}

#[test]
fn guarded_objects_are_kept() {
    let desired = vec![manifest(obj("ConfigMap", "keep"))];
    let mut pvc = obj("PersistentVolumeClaim", "data");
    pvc["apiVersion"] = json!("v1");
    let mut opted_out = obj("ConfigMap", "stay");
    opted_out["metadata"]["annotations"] = json!({"gitsync.dev/prune": "false"});
    let mut owned = obj("Pod", "web-abc");
    owned["metadata"]["ownerReferences"] =
        json!([{"uid": "1", "kind": "ReplicaSet", "name": "web", "apiVersion": "apps/v1"}]);
    let mut pvc_opt_in = obj("PersistentVolumeClaim", "scratch");
    pvc_opt_in["metadata"]["annotations"] = json!({"gitsync.dev/prune": "true"});
    let live = vec![obj("ConfigMap", "keep"), pvc, opted_out, owned, pvc_opt_in];
    let plan = plan("demo", &desired, &live, Options::default()).expect("plan");
    let kept: Vec<&str> = plan.kept.iter().map(|k| k.id.name.as_str()).collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&"data") && kept.contains(&"stay"));
    let pruned: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.diff.action == Action::Prune)
        .map(|s| s.diff.id.name.as_str())
        .collect();
    assert_eq!(pruned, vec!["scratch"]);
}

#[test]
fn other_apps_objects_are_never_pruned() {
    let mut other = obj("ConfigMap", "theirs");
    other["metadata"]["labels"] = json!({"gitsync.dev/app": "other"});
    let plan = plan(
        "demo",
        &[manifest(obj("ConfigMap", "a"))],
        &[other],
        Options::default(),
    )
    .expect("plan");
    assert_eq!(plan.summary().prune, 0);
}
