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
            replace: 0,
            prune: 5,
            unchanged: 0
        }
    );
}

fn config_maps(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| obj("ConfigMap", n)).collect()
}

fn pruned_names(plan: &Plan) -> Vec<&str> {
    plan.steps
        .iter()
        .filter(|s| s.diff.action == Action::Prune)
        .map(|s| s.diff.id.name.as_str())
        .collect()
}

#[test]
fn empty_render_lists_its_prunes_but_blocks_them_even_with_force() {
    let live = config_maps(&["a", "b"]);
    for force_prune in [false, true] {
        let options = Options {
            force_prune,
            ..Options::default()
        };
        let plan = plan("demo", &[], &live, options).expect("plan");
        assert_eq!(plan.prune_guard, Some(Guard::EmptyRender { managed: 2 }));
        assert_eq!(pruned_names(&plan).len(), 2);
        assert_eq!(plan.blocked().count(), 2);
        assert!(plan.has_changes());
        let refusal = plan.refusal().expect("refused").to_string();
        assert!(refusal.contains("is empty"), "{refusal}");
        assert!(
            plan.blocked().all(|(_, reason)| reason == refusal),
            "{plan:?}"
        );
    }
}

#[test]
fn pruning_most_of_an_app_is_listed_blocked_until_forced() {
    let desired = vec![manifest(obj("ConfigMap", "keep"))];
    let live = config_maps(&["keep", "a", "b", "c"]);
    let refused = plan("demo", &desired, &live, Options::default()).expect("plan");
    assert_eq!(
        refused.prune_guard,
        Some(Guard::PruneShare {
            prune: 3,
            managed: 4,
            max_percent: 50
        })
    );
    let mut blocked: Vec<&str> = refused
        .blocked()
        .map(|(s, _)| s.diff.id.name.as_str())
        .collect();
    blocked.sort_unstable();
    assert_eq!(blocked, ["a", "b", "c"]);
    let reason = refused.blocked().next().expect("blocked").1;
    assert!(
        reason.contains("refusing to prune 3 of 4") && reason.contains("--force-prune"),
        "{reason}"
    );
    assert_eq!(
        refused.summary().prune,
        3,
        "still counted as planned prunes"
    );

    let forced = plan(
        "demo",
        &desired,
        &live,
        Options {
            force_prune: true,
            ..Options::default()
        },
    )
    .expect("plan");
    assert_eq!(forced.summary().prune, 3);
    assert_eq!(forced.prune_guard, None);
    assert_eq!(forced.blocked().count(), 0);
}

/// The share applies to small apps as to large ones: removing 1 of 2 objects is 50%,
/// 2 of 2 is 100%, whatever else the render holds.
#[test]
fn the_share_guard_holds_at_every_size() {
    // (live objects, of which pruned, max percent, refused)
    let cases: &[(usize, usize, u8, bool)] = &[
        (1, 1, 50, true),
        (2, 1, 50, false),
        (2, 2, 50, true),
        (3, 2, 50, true),
        (3, 1, 50, false),
        (4, 2, 50, false),
        (11, 8, 50, true),
        (11, 8, 80, false),
        (1, 1, 100, false),
        (5, 1, 0, true),
    ];
    for &(managed, pruned, max_prune_percent, refused) in cases {
        let names: Vec<String> = (0..managed).map(|i| format!("cm-{i}")).collect();
        let live: Vec<Value> = names.iter().map(|n| obj("ConfigMap", n)).collect();
        // What remains rendered, plus a new object so the render is never empty.
        let mut desired: Vec<Manifest> = names[pruned..]
            .iter()
            .map(|n| manifest(obj("ConfigMap", n)))
            .collect();
        desired.push(manifest(obj("ConfigMap", "new")));
        let options = Options {
            max_prune_percent,
            ..Options::default()
        };
        let plan = plan("demo", &desired, &live, options).expect("plan");
        let case = format!("{pruned} of {managed} at {max_prune_percent}%");
        assert_eq!(plan.summary().prune, pruned, "{case}");
        assert_eq!(plan.prune_guard.is_some(), refused, "{case}");
        assert_eq!(
            plan.blocked().count(),
            if refused { pruned } else { 0 },
            "{case}"
        );
    }
}

#[test]
fn objects_kept_by_annotation_count_in_the_share_but_are_not_pruned() {
    let desired = vec![manifest(obj("ConfigMap", "new"))];
    let mut stay = obj("ConfigMap", "stay");
    stay["metadata"]["annotations"] = json!({"gitsync.dev/prune": "false"});
    // 1 prune of 2 live objects: 50%, not more.
    let plan = plan(
        "demo",
        &desired,
        &[obj("ConfigMap", "old"), stay],
        Options::default(),
    )
    .expect("plan");
    assert_eq!(plan.prune_guard, None);
    assert_eq!(pruned_names(&plan), ["old"]);
    assert_eq!(plan.kept.len(), 1);
}

#[test]
fn a_refused_plan_serializes_its_guard_and_each_blocked_prune() {
    let desired = vec![manifest(obj("ConfigMap", "keep"))];
    let plan = plan(
        "demo",
        &desired,
        &config_maps(&["keep", "a", "b"]),
        Options::default(),
    )
    .expect("plan");
    let json = serde_json::to_value(&plan).expect("json");
    assert_eq!(
        json["prune_guard"],
        json!({"guard": "prune_share", "prune": 2, "managed": 3, "max_percent": 50})
    );
    let prunes: Vec<&Value> = json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["action"] == "prune")
        .collect();
    assert_eq!(prunes.len(), 2);
    assert!(
        prunes.iter().all(|s| s["blocked"]
            .as_str()
            .is_some_and(|b| b.contains("refusing to prune 2 of 3"))),
        "{json}"
    );
    let allowed = super::plan(
        "demo",
        &desired,
        &config_maps(&["keep"]),
        Options::default(),
    )
    .expect("plan");
    let json = serde_json::to_value(&allowed).expect("json");
    assert!(json.get("prune_guard").is_none(), "{json}");
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

#[test]
fn namespaces_and_crds_are_pruned_only_when_opted_in() {
    let desired = vec![manifest(obj("ConfigMap", "keep"))];
    let ns = obj("Namespace", "old");
    let mut crd = obj("CustomResourceDefinition", "widgets.example.com");
    crd["apiVersion"] = json!("apiextensions.k8s.io/v1");
    crd["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("namespace");
    let mut ns_opt_in = obj("Namespace", "scratch");
    ns_opt_in["metadata"]["annotations"] = json!({"gitsync.dev/prune": "true"});
    let live = vec![
        obj("ConfigMap", "keep"),
        obj("ConfigMap", "keep2"),
        obj("ConfigMap", "keep3"),
        ns,
        crd,
        ns_opt_in,
    ];
    let plan = plan("demo", &desired, &live, Options::default()).expect("plan");
    let mut kept: Vec<String> = plan.kept.iter().map(|k| k.id.short()).collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            "CustomResourceDefinition/widgets.example.com",
            "Namespace/old"
        ]
    );
    assert!(
        plan.kept
            .iter()
            .all(|k| k.reason.contains("gitsync.dev/prune"))
    );
}

#[test]
fn an_object_of_another_app_fails_the_plan_naming_the_owner() {
    let mut theirs = obj("ConfigMap", "shared");
    theirs["metadata"]["labels"] = json!({"gitsync.dev/app": "billing"});
    let err = plan(
        "demo",
        &[manifest(obj("ConfigMap", "shared"))],
        &[theirs],
        Options::default(),
    )
    .expect_err("owned elsewhere");
    let text = err.to_string();
    assert!(text.contains("owned by app \"billing\""), "{text}");
    assert!(
        text.contains("ConfigMap/demo/shared (a.yaml:1:1)"),
        "{text}"
    );
}

#[test]
fn waves_order_before_kinds_and_must_be_integers() {
    let mut early = obj("Deployment", "db");
    early["metadata"]["annotations"] = json!({"gitsync.dev/wave": "-1"});
    let desired = vec![
        manifest(obj("ConfigMap", "cfg")),
        manifest(early),
        manifest(obj("Namespace", "demo")),
    ];
    let plan = plan("demo", &desired, &[], Options::default()).expect("plan");
    let order: Vec<(i32, String)> = plan
        .steps
        .iter()
        .map(|s| (s.wave, s.diff.id.kind.clone()))
        .collect();
    assert_eq!(
        order,
        vec![
            (-1, "Deployment".into()),
            (0, "Namespace".into()),
            (0, "ConfigMap".into())
        ]
    );

    let mut bad = obj("ConfigMap", "x");
    bad["metadata"]["annotations"] = json!({"gitsync.dev/wave": "soon"});
    let err = super::plan("demo", &[manifest(bad)], &[], Options::default()).expect_err("bad");
    assert!(err.to_string().contains("must be an integer"), "{err}");
}

#[test]
fn an_immutable_change_is_a_replace_blocked_unless_opted_in() {
    let deploy = |app: &str| {
        let mut d = obj("Deployment", "web");
        d["spec"] = json!({"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}}});
        d
    };
    let live = deploy("web");
    let plan_for = |desired: Value| {
        super::plan(
            "demo",
            &[manifest(desired)],
            std::slice::from_ref(&live),
            Options::default(),
        )
        .expect("plan")
    };
    let blocked = plan_for(deploy("web2"));
    let step = &blocked.steps[0];
    assert_eq!(step.diff.action, Action::Replace);
    assert_eq!(step.diff.immutable, vec![".spec.selector"]);
    let reason = step.blocked.as_deref().expect("blocked");
    assert!(
        reason.contains(".spec.selector is immutable") && reason.contains("gitsync.dev/replace"),
        "{reason}"
    );
    assert_eq!(blocked.blocked().count(), 1);

    let mut opted = deploy("web2");
    opted["metadata"]["annotations"] = json!({"gitsync.dev/replace": "true"});
    let allowed = plan_for(opted);
    assert_eq!(allowed.steps[0].diff.action, Action::Replace);
    assert!(allowed.steps[0].blocked.is_none());
    assert_eq!(allowed.summary().replace, 1);
}
