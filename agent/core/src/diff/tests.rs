use super::*;
use serde_json::json;

fn manifest(object: Value) -> Manifest {
    Manifest {
        id: ObjectId::of(&object).expect("identity"),
        source: Source {
            file: "app.yaml".into(),
            line: 1,
            column: 1,
        },
        digest: crate::digest::of_object(&object),
        object,
    }
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "demo"}, "data": data})
}

/// The live object as the API server would store it after gitsync applied `applied`.
fn live_after_apply(applied: &Value) -> Value {
    let mut live = applied.clone();
    live["metadata"]["uid"] = json!("1234");
    live["metadata"]["resourceVersion"] = json!("7");
    live["metadata"]["managedFields"] = json!([{
        "manager": "gitsync", "operation": "Apply", "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": FieldSet::from_applied(applied).to_fields_v1()
    }]);
    live
}

#[test]
fn missing_live_object_is_a_create() {
    let d = object(Some(&manifest(config_map(json!({"a": "1"})))), None).expect("diff");
    assert_eq!(d.action, Action::Create);
    assert!(d.before.is_empty());
    assert!(
        d.unified().contains("+  a: '1'") || d.unified().contains("+  a: \"1\""),
        "{}",
        d.unified()
    );
}

#[test]
fn same_object_is_unchanged_despite_server_metadata_and_defaults() {
    let desired = config_map(json!({"a": "1"}));
    let mut live = live_after_apply(&desired);
    live["metadata"]["creationTimestamp"] = json!("2026-11-23T00:00:00Z");
    let d = object(Some(&manifest(desired)), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Unchanged, "{}", d.unified());
    assert_eq!(d.unified(), "");
}

#[test]
fn field_we_stopped_rendering_is_removed() {
    let live = live_after_apply(&config_map(json!({"a": "1", "b": "2"})));
    let d = object(Some(&manifest(config_map(json!({"a": "1"})))), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Update);
    assert!(d.unified().contains("-  b:"), "{}", d.unified());
}

#[test]
fn field_someone_else_set_is_left_alone() {
    let desired = config_map(json!({"a": "1"}));
    let mut live = live_after_apply(&desired);
    live["data"]["other"] = json!("x");
    live["metadata"]["managedFields"]
        .as_array_mut()
        .expect("array")
        .push(
            json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:other": {}}}}),
        );
    let d = object(Some(&manifest(desired)), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Unchanged, "{}", d.unified());
}

#[test]
fn drift_on_a_field_we_own_is_an_update() {
    let desired = config_map(json!({"a": "1"}));
    let mut live = live_after_apply(&desired);
    live["data"]["a"] = json!("changed by hand");
    let d = object(Some(&manifest(desired)), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Update);
    assert!(d.unified().contains("changed by hand"));
}

#[test]
fn an_update_the_server_answers_with_the_live_object_is_unchanged() {
    // A mutating webhook rewrites the image gitsync sets to a mirror: the prediction
    // says update, the server's dry-run answer is the live object as it is.
    let desired = config_map(json!({"image": "nginx:1.27"}));
    let mut live = live_after_apply(&desired);
    live["data"]["image"] = json!("mirror.local/nginx:1.27");
    let mut d = object(Some(&manifest(desired)), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Update);
    let mut server = live.clone();
    server["metadata"]["resourceVersion"] = json!("8");
    server["metadata"]["annotations"] = json!({"gitsync.dev/revision": "abc"});
    assert!(settles(&live, &server));
    d.confirm(&server);
    assert_eq!(d.action, Action::Unchanged);
    assert_eq!(
        (d.before.as_str(), d.after.as_str(), d.unified()),
        ("", "", String::new())
    );
}

#[test]
fn a_confirmed_update_shows_what_the_server_would_store() {
    let desired = config_map(json!({"a": "2"}));
    let mut live = live_after_apply(&desired);
    live["data"]["a"] = json!("1");
    let mut d = object(Some(&manifest(desired.clone())), Some(&live)).expect("diff");
    let mut server = live.clone();
    server["data"] = json!({"a": "2", "injected": "by a webhook"});
    assert!(!settles(&live, &server));
    d.confirm(&server);
    assert_eq!(d.action, Action::Update);
    assert!(
        d.unified().contains("+  injected: by a webhook"),
        "{}",
        d.unified()
    );
    // Creates are never confirmed (the server's defaults would flood them).
    let mut create = object(Some(&manifest(desired)), None).expect("diff");
    let shown = create.after.clone();
    create.confirm(&server);
    assert_eq!((create.action, create.after), (Action::Create, shown));
}

#[test]
fn revision_annotation_alone_is_not_a_change() {
    let mut desired = config_map(json!({"a": "1"}));
    let live = live_after_apply(&desired);
    desired["metadata"]["annotations"] = json!({"gitsync.dev/revision": "abc"});
    let d = object(Some(&manifest(desired)), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Unchanged);
}

#[test]
fn prune_shows_the_live_object() {
    let live = live_after_apply(&config_map(json!({"a": "1"})));
    let d = object(None, Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Prune);
    assert!(d.after.is_empty());
    assert!(!d.before.contains("managedFields"));
}

#[test]
fn secrets_never_show_their_values() {
    let desired = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "demo"}, "stringData": {"password": "hunter2"}});
    let mut applied = desired.clone();
    applied["data"] = json!({"password": "b2xkLXZhbHVl"}); // "old-value"
    applied
        .as_object_mut()
        .expect("object")
        .remove("stringData");
    let live = live_after_apply(&applied);
    let d = object(Some(&manifest(desired)), Some(&live)).expect("diff");
    assert_eq!(d.action, Action::Update);
    let text = format!(
        "{}{}",
        d.unified(),
        serde_json::to_string(&d).expect("json")
    );
    assert!(
        !text.contains("hunter2") && !text.contains("b2xkLXZhbHVl"),
        "{text}"
    );
    assert!(text.contains("<masked sha256:"));
}

mod laws {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The diff of any object with itself (as applied by gitsync) is empty.
        #[test]
        fn diff_of_an_object_with_itself_is_empty(
            data in prop::collection::btree_map("[a-z]{1,8}", "[ -~]{0,12}", 0..8),
            labels in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..4),
        ) {
            let mut cm = config_map(json!(data));
            cm["metadata"]["labels"] = json!(labels);
            let live = live_after_apply(&cm);
            let d = object(Some(&manifest(cm)), Some(&live)).expect("diff");
            prop_assert_eq!(d.action, Action::Unchanged);
            prop_assert_eq!(d.unified(), "");
        }

        /// The allocation-free check agrees with the full prediction whenever it says
        /// "unchanged", including after another manager edited the live object.
        #[test]
        fn the_fast_unchanged_check_never_hides_a_change(
            applied in prop::collection::btree_map("[a-c]", "[x-z]", 0..4),
            desired in prop::collection::btree_map("[a-c]", "[x-z]", 0..4),
            edits in prop::collection::btree_map("[a-d]", prop::option::of("[x-z]"), 0..3),
            revision in "[0-9a-f]{2}",
        ) {
            let mut live = live_after_apply(&config_map(json!(applied)));
            for (key, value) in &edits {
                match value {
                    Some(v) => live["data"][key] = json!(v),
                    None => { live["data"].as_object_mut().expect("data").remove(key); }
                }
            }
            let mut desired = config_map(json!(desired));
            desired["metadata"]["annotations"] = json!({ANNOTATION_REVISION: revision});
            if certainly_unchanged(&desired, &live) {
                prop_assert_eq!(normalize(&live), normalize(&predict(&desired, &live)));
            }
        }
    }
}

#[test]
fn an_object_as_gitsync_applied_it_takes_the_fast_path() {
    let mut desired = config_map(json!({"a": "1"}));
    desired["metadata"]["annotations"] = json!({ANNOTATION_REVISION: "abc"});
    let mut live = live_after_apply(&desired);
    assert!(certainly_unchanged(&desired, &live));
    // A new commit with the same object: only the revision differs.
    live["metadata"]["annotations"][ANNOTATION_REVISION] = json!("def");
    assert!(certainly_unchanged(&desired, &live));
    // A value someone changed, and a field gitsync owns but no longer renders.
    live["data"]["a"] = json!("2");
    assert!(!certainly_unchanged(&desired, &live));
    let owns_more = live_after_apply(&config_map(json!({"a": "1", "b": "2"})));
    assert!(!certainly_unchanged(
        &config_map(json!({"a": "1"})),
        &owns_more
    ));
}
