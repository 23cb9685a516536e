use serde_json::json;

use super::*;

/// No key anywhere in `value` starts with `$`.
fn assert_no_directive(value: &Value) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(!k.starts_with('$'), "directive {k} stored in {value}");
                assert_no_directive(v);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_directive),
        _ => {}
    }
}

fn patched(live: &Value, patch: &Value) -> Value {
    let out = apply(live, patch).expect("patch applies");
    assert_no_directive(&out);
    out
}

/// A Deployment whose pod template has the named containers (image `<name>:1`).
fn deployment(names: &[&str]) -> Value {
    let containers: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "image": format!("{n}:1"), "imagePullPolicy": "IfNotPresent"}))
        .collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "default"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
}

fn names(object: &Value) -> Vec<&str> {
    object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

// The next three patches are what kubectl 1.32's client-side `kubectl apply` sent to
// this emulator when a manifest's containers [a, b] became [a, b, c], [a, c] and
// [c, a] (the last-applied annotation shortened).

#[test]
fn kubectl_apply_adding_a_container() {
    let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "..."}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"image": "c:1", "name": "c"}]}}}});
    let out = patched(&deployment(&["a", "b"]), &patch);
    assert_eq!(names(&out), ["a", "b", "c"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][2],
        json!({"image": "c:1", "name": "c"})
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent",
        "live fields of other containers kept"
    );
}

#[test]
fn kubectl_apply_removing_a_container() {
    let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "..."}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
            "containers": [{"$patch": "delete", "name": "b"}]}}}});
    let out = patched(&deployment(&["a", "b", "c"]), &patch);
    assert_eq!(names(&out), ["a", "c"]);
}

#[test]
fn kubectl_apply_reordering_containers() {
    let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "..."}},
        "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}}}});
    let out = patched(&deployment(&["a", "c"]), &patch);
    assert_eq!(names(&out), ["c", "a"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "c:1"
    );
}

#[test]
fn kubectl_apply_adding_removing_reordering_and_editing_env_at_once() {
    // kubectl's patch for [a, b{env X, W}, c] -> [b{env Z, X}, a, d].
    let mut live = deployment(&["a", "b", "c"]);
    live["spec"]["template"]["spec"]["containers"][1]["env"] =
        json!([{"name": "X", "value": "1"}, {"name": "W", "value": "2"}]);
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "d"}],
        "containers": [
            {"$setElementOrder/env": [{"name": "Z"}, {"name": "X"}],
             "env": [{"name": "Z", "value": "3"}, {"$patch": "delete", "name": "W"}], "name": "b"},
            {"image": "d:1", "name": "d"},
            {"$patch": "delete", "name": "c"}]}}}});
    let out = patched(&live, &patch);
    assert_eq!(names(&out), ["b", "a", "d"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "Z", "value": "3"}, {"name": "X", "value": "1"}])
    );
}

#[test]
fn set_element_order_keeps_server_only_items_in_place() {
    // A sidecar only the server has (injected) stays between the items around it.
    let live = deployment(&["a", "sidecar", "b"]);
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "containers": [{"name": "c", "image": "c:1"}]}}}});
    assert_eq!(names(&patched(&live, &patch)), ["a", "sidecar", "b", "c"]);
}

#[test]
fn set_element_order_of_scalars_and_a_mismatched_order_is_refused() {
    let live = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let out = patched(
        &live,
        &json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c", "a"]));
    let bad = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:2"}]}}}});
    assert_eq!(
        apply(&deployment(&["a", "b"]), &bad),
        Err(Error::OrderMismatch {
            field: "containers".into()
        })
    );
}

#[test]
fn kubectl_apply_deleting_from_a_set_and_retaining_keys() {
    // kubectl's patch when finalizers [a, b] became [b] and the strategy
    // RollingUpdate{maxSurge: 1} became Recreate.
    let live = json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}}});
    let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "$setElementOrder/finalizers": ["example.com/b"]},
        "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
    let out = patched(&live, &patch);
    assert_eq!(out["metadata"]["finalizers"], json!(["example.com/b"]));
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_clears_unlisted_fields_and_refuses_a_patch_that_sets_one() {
    let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}, "extra": 1}}});
    let out = patched(
        &live,
        &json!({"spec": {"strategy": {"$retainKeys": ["type", "rollingUpdate"], "type": "RollingUpdate"}}}),
    );
    assert_eq!(
        out["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    );
    let err = apply(
        &live,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}),
    );
    assert!(matches!(err, Err(Error::RetainKeys { .. })), "{err:?}");
}

#[test]
fn delete_from_primitive_list_removes_every_copy_and_ignores_a_missing_list() {
    let live = json!({"metadata": {"finalizers": ["a", "b", "a"]}});
    let out = patched(
        &live,
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    let out = patched(
        &json!({"metadata": {}}),
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"], json!({}));
}

#[test]
fn patch_delete_in_a_map_removes_it() {
    let live =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = patched(
        &live,
        &json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "RollingUpdate"}));
    assert_eq!(
        apply(&live, &json!({"$patch": "delete"})),
        Err(Error::DeleteObject)
    );
}

#[test]
fn patch_replace_in_a_map_replaces_it_whole() {
    let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
    let out = patched(
        &live,
        &json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
}

#[test]
fn patch_replace_in_a_list_replaces_it_whole() {
    let live = deployment(&["a", "b"]);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "z", "image": "z:1"}, {"$patch": "replace"}]}}}});
    let out = patched(&live, &patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "z", "image": "z:1"}])
    );
}

#[test]
fn patch_merge_and_unknown_directives_are_refused() {
    let live = deployment(&["a"]);
    let in_list =
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}}});
    assert!(matches!(
        apply(&live, &in_list),
        Err(Error::MergeDirectiveInList { .. })
    ));
    let in_map = json!({"spec": {"$patch": "merge"}});
    assert!(matches!(
        apply(&live, &in_map),
        Err(Error::UnknownPatchType { .. })
    ));
    let no_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    assert_eq!(
        apply(&live, &no_key),
        Err(Error::NoMergeKey {
            field: "containers".into(),
            key: "name"
        })
    );
}

#[test]
fn lists_merge_on_the_api_types_patch_keys() {
    let live = json!({"spec": {
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
        "template": {"spec": {
            "containers": [{"name": "web", "image": "w:1",
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                "volumeMounts": [{"mountPath": "/a", "name": "a"}],
                "args": ["--x"]}],
            "tolerations": [{"key": "a"}]}}}});
    let patch = json!({"spec": {
        "ports": [{"port": 80, "targetPort": 9090}, {"port": 443}],
        "template": {"spec": {
            "containers": [{"name": "web",
                "ports": [{"containerPort": 80, "name": "web"}],
                "volumeMounts": [{"mountPath": "/b", "name": "b"}],
                "args": ["--y"]}],
            "tolerations": [{"key": "b"}]}}}});
    let out = patched(&live, &patch);
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 9090}, {"port": 443}])
    );
    let web = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        web["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "web"}])
    );
    // Without $setElementOrder an item the live list lacks goes before the live-only
    // ones, as apimachinery's mergeSortedSlice places it.
    assert_eq!(
        web["volumeMounts"],
        json!([{"mountPath": "/b", "name": "b"}, {"mountPath": "/a", "name": "a"}])
    );
    assert_eq!(
        web["args"],
        json!(["--y"]),
        "lists without a patch key are replaced"
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b"}])
    );
}

#[test]
fn finalizers_merge_as_a_set_and_nulls_delete() {
    let live = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}});
    let out = patched(
        &live,
        &json!({"metadata": {"finalizers": ["b", "a"], "labels": {"x": null, "z": null}}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
}

#[test]
fn directives_in_new_content_are_not_stored() {
    // A list or map the live object lacks still has its directives taken out.
    let live = json!({"spec": {"template": {"spec": {}}}});
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "a", "image": "a:1", "$setElementOrder/env": [{"name": "E"}],
            "env": [{"name": "E", "value": "1"}, {"name": "F", "$patch": "delete"}]}],
        "strategy": {"$retainKeys": ["type"], "type": "Recreate", "x": null}}}}});
    let out = patched(&live, &patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "a:1", "env": [{"name": "E", "value": "1"}]}])
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    assert_eq!(apply(&live, &json!([1])), Err(Error::NotAnObject));
}
