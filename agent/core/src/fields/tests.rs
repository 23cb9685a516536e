use super::*;
use serde_json::json;

fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                "name": "web", "image": image,
                "ports": [{"containerPort": 8080}],
                "env": [{"name": "A", "value": "1"}]
            }]}}
        },
        "status": {"replicas": 1}
    })
}

#[test]
fn applied_fields_match_what_the_api_server_records() {
    let set = FieldSet::from_applied(&deployment("web:1"));
    let v1 = set.to_fields_v1();
    assert_eq!(
        v1,
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:selector": {"f:matchLabels": {"f:app": {}}},
                "f:template": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {
                        ".": {}, "f:name": {}, "f:image": {},
                        "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                        "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}}
                    }
                }}}
            }
        })
    );
    assert_eq!(FieldSet::from_fields_v1(&v1).expect("valid"), set);
}

#[test]
fn paths_print_like_kubernetes_conflict_messages() {
    let set = FieldSet::from_applied(&deployment("web:1"));
    let printed: Vec<String> = set.leaves().iter().map(ToString::to_string).collect();
    assert!(printed.contains(&".spec.template.spec.containers[name=\"web\"].image".to_owned()));
    assert!(printed.contains(&".metadata.labels.app".to_owned()));
}

#[test]
fn merge_keeps_fields_others_set_and_merges_list_maps_by_key() {
    let mut live = deployment("web:1");
    live["spec"]["replicas"] = json!(5);
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    let merged = merge(&live, &deployment("web:2"));
    let c = &merged["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "web:2");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(merged["spec"]["replicas"], 5);
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn atomic_lists_are_replaced() {
    let live = json!({"spec": {"args": ["a", "b"]}});
    let merged = merge(&live, &json!({"spec": {"args": ["c"]}}));
    assert_eq!(merged, json!({"spec": {"args": ["c"]}}));
}

#[test]
fn removing_a_field_no_longer_applied() {
    let old = deployment("web:1");
    let mut new_config = deployment("web:1");
    new_config["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("object")
        .remove("env");
    let dropped = FieldSet::from_applied(&old).difference(&FieldSet::from_applied(&new_config));
    let mut merged = merge(&old, &new_config);
    remove(&mut merged, &dropped);
    assert!(
        merged["spec"]["template"]["spec"]["containers"][0]
            .get("env")
            .is_none()
    );
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:1"
    );
}

#[test]
fn changed_reports_leaf_fields() {
    let a = deployment("web:1");
    let mut b = deployment("web:2");
    b["spec"]["replicas"] = json!(3);
    let paths: Vec<String> = changed(&a, &b)
        .leaves()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        paths,
        vec![
            ".spec.replicas".to_owned(),
            ".spec.template.spec.containers[name=\"web\"].image".to_owned()
        ]
    );
    assert!(changed(&a, &a).is_empty());
}

#[test]
fn set_algebra() {
    let a = FieldSet::from_applied(&json!({"data": {"a": "1", "b": "2"}}));
    let b = FieldSet::from_applied(&json!({"data": {"b": "2", "c": "3"}}));
    let leaves = |s: &FieldSet| {
        s.leaves()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(leaves(&a.intersection(&b)), vec![".data.b"]);
    assert_eq!(leaves(&a.difference(&b)), vec![".data.a"]);
    assert_eq!(leaves(&a.union(&b)), vec![".data.a", ".data.b", ".data.c"]);
    assert!(a.difference(&a).is_empty());
    let p = &a.leaves()[0];
    assert!(a.contains(p) && a.overlaps(p) && !b.contains(p));
    assert_eq!(get(&json!({"data": {"a": "1"}}), p), Some(&json!("1")));
}

#[test]
fn rejects_malformed_fields_v1() {
    assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_err());
    assert!(FieldSet::from_fields_v1(&json!({"f:a": 3})).is_err());
}

#[test]
fn a_map_applied_empty_then_with_keys_is_not_removable() {
    let before = FieldSet::from_applied(&json!({"metadata": {"annotations": {}}}));
    let after = FieldSet::from_applied(&json!({"metadata": {"annotations": {"k": "v"}}}));
    assert!(!before.difference(&after).is_empty(), "a set difference");
    assert!(before.removable(&after).is_empty(), "but nothing to remove");
    let gone = FieldSet::from_applied(&json!({"metadata": {"labels": {"a": "b"}}}));
    assert_eq!(
        before.removable(&gone),
        before,
        "no descendant kept: removed"
    );
}

mod laws {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z]{0,4}".prop_map(|s| json!(s)),
            any::<bool>().prop_map(|b| json!(b)),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-z]{1,3}", inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..3).prop_map(|m| json!({
                    "containers": m.into_iter().map(|(k, v)| json!({"name": k, "x": v})).collect::<Vec<_>>()
                })),
            ]
        })
    }

    proptest! {
        #[test]
        fn fields_v1_round_trips(v in arb_value()) {
            let set = FieldSet::from_applied(&json!({"spec": v}));
            prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).expect("valid"), set);
        }

        #[test]
        fn merge_keeps_says_whether_the_merge_changes_anything(a in arb_value(), b in arb_value()) {
            let (live, config) = (json!({"spec": a}), json!({"spec": b}));
            prop_assert_eq!(merge_keeps(&live, &config, ""), merge(&live, &config) == live);
            prop_assert!(merge_keeps(&live, &live, ""));
            // Merging again what was merged is a no-op, and says so.
            let merged = merge(&live, &config);
            prop_assert!(merge_keeps(&merged, &config, ""));
            prop_assert_eq!(merge(&merged, &config), merged);
        }

        #[test]
        fn covers_fields_v1_is_the_subset_test(a in arb_value(), b in arb_value()) {
            let (sa, sb) = (
                FieldSet::from_applied(&json!({"spec": a})),
                FieldSet::from_applied(&json!({"spec": b})),
            );
            prop_assert_eq!(sa.covers_fields_v1(&sb.to_fields_v1()), sb.difference(&sa).is_empty());
            prop_assert!(sa.covers_fields_v1(&sa.to_fields_v1()));
        }

        #[test]
        fn merging_an_object_with_itself_changes_nothing(v in arb_value()) {
            let obj = json!({"spec": v});
            prop_assert_eq!(merge(&obj, &obj), obj.clone());
            prop_assert!(changed(&obj, &obj).is_empty());
        }
    }
}
