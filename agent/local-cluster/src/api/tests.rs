use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::load(dir.path()).expect("store");
    bootstrap(&mut store).expect("bootstrap");
    (dir, store)
}

fn target(
    plural: &str,
    group: &str,
    version: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Target {
    Target {
        resource: resource(group, version, plural).expect("served"),
        namespace: ns.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: None,
    }
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": data})
}

fn opts(manager: &str) -> WriteOptions {
    WriteOptions {
        manager: manager.into(),
        ..WriteOptions::default()
    }
}

#[test]
fn create_get_conflict_and_missing_namespace() {
    let (_d, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), None);
    let created = create(&mut s, &t, cm(json!({"a": "1"})), &opts("test")).expect("created");
    assert!(
        created["metadata"].get("generation").is_none(),
        "ConfigMaps have no generation"
    );
    assert_eq!(created["metadata"]["uid"].as_str().map(str::len), Some(36));
    let again = create(&mut s, &t, cm(json!({})), &opts("test")).expect_err("exists");
    assert_eq!((again.code, again.reason), (409, "AlreadyExists"));
    let missing = target("configmaps", "", "v1", Some("nope"), None);
    let mut obj = cm(json!({}));
    obj["metadata"]["namespace"] = json!("nope");
    let err = create(&mut s, &missing, obj, &opts("test")).expect_err("no namespace");
    assert_eq!(err.code, 404);
    assert!(
        err.message.contains("namespaces \"nope\" not found"),
        "{}",
        err.message
    );
}

#[test]
fn stale_resource_version_is_a_conflict() {
    let (_d, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), None);
    let created = create(&mut s, &t, cm(json!({"a": "1"})), &opts("test")).expect("created");
    let named = target("configmaps", "", "v1", Some("default"), Some("c"));
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let err = update(&mut s, &named, stale, &opts("test")).expect_err("stale");
    assert_eq!((err.code, err.reason), (409, "Conflict"));
    let mut fresh = created;
    fresh["data"]["a"] = json!("2");
    let updated = update(&mut s, &named, fresh, &opts("test")).expect("updated");
    assert_eq!(updated["data"]["a"], "2");
}

#[test]
fn server_side_apply_conflicts_force_and_removal() {
    let (_d, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), Some("c"));
    let first = apply(
        &mut s,
        &t,
        &cm(json!({"a": "1", "b": "2"})),
        &opts("gitsync"),
    )
    .expect("apply");
    let rv = first["metadata"]["resourceVersion"].clone();
    // Re-applying the same config is a no-op: same resourceVersion.
    let again = apply(
        &mut s,
        &t,
        &cm(json!({"a": "1", "b": "2"})),
        &opts("gitsync"),
    )
    .expect("apply");
    assert_eq!(again["metadata"]["resourceVersion"], rv);
    // Another manager with the same value shares; with a different value conflicts.
    apply(&mut s, &t, &cm(json!({"a": "1"})), &opts("other")).expect("shared");
    let err = apply(&mut s, &t, &cm(json!({"b": "3"})), &opts("other")).expect_err("conflict");
    assert_eq!((err.code, err.reason), (409, "Conflict"));
    assert!(
        err.message
            .contains("conflict with \"gitsync\" using v1: .data.b"),
        "{}",
        err.message
    );
    assert_eq!(
        err.details.as_ref().expect("details")["causes"][0]["field"],
        ".data.b"
    );
    let mut force = opts("other");
    force.force = true;
    let forced = apply(&mut s, &t, &cm(json!({"b": "3"})), &force).expect("forced");
    assert_eq!(forced["data"]["b"], "3");
    // `other` no longer applies a, so gitsync owns it alone; when gitsync stops
    // applying it too, it is removed. b was taken by force and stays.
    let after = apply(&mut s, &t, &cm(json!({})), &opts("gitsync")).expect("apply");
    assert_eq!(after["data"], json!({"b": "3"}));
    // `other` stops applying b, which it solely owns: removed.
    let after = apply(&mut s, &t, &cm(json!({"a": "1"})), &opts("other")).expect("apply");
    assert_eq!(after["data"], json!({"a": "1"}));
    let err = apply(&mut s, &t, &cm(json!({})), &opts("")).expect_err("manager required");
    assert_eq!(err.code, 400);
}

#[test]
fn updates_take_ownership_and_dry_run_stores_nothing() {
    let (_d, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), Some("c"));
    apply(&mut s, &t, &cm(json!({"a": "1"})), &opts("gitsync")).expect("apply");
    patch(
        &mut s,
        &t,
        &json!({"data": {"a": "edited"}}),
        PatchType::Merge,
        &opts("kubectl-edit"),
    )
    .expect("patch");
    let live = get(&s, &t).expect("get");
    let managers: Vec<(&str, &str)> = live["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or(""),
                e["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        managers,
        vec![("kubectl-edit", "Update")],
        "gitsync lost .data.a"
    );

    let mut dry = opts("gitsync");
    dry.dry_run = true;
    let err = apply(&mut s, &t, &cm(json!({"a": "1"})), &dry).expect_err("conflict with the edit");
    assert_eq!(err.code, 409);
    dry.force = true;
    let would = apply(&mut s, &t, &cm(json!({"a": "1", "z": "9"})), &dry).expect("dry run");
    assert_eq!(would["data"]["z"], "9");
    assert!(
        get(&s, &t).expect("get")["data"].get("z").is_none(),
        "nothing stored"
    );
}

#[test]
fn lists_filter_by_labels_and_page() {
    let (_d, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), None);
    for (i, app) in ["a", "b", "a"].iter().enumerate() {
        let mut o = cm(json!({}));
        o["metadata"]["name"] = json!(format!("c{i}"));
        o["metadata"]["labels"] = json!({"app": app});
        create(&mut s, &t, o, &opts("t")).expect("create");
    }
    let only_a = ListOptions {
        labels: Selector::parse("app=a").expect("sel"),
        ..ListOptions::default()
    };
    let l = list(&s, &t, &only_a).expect("list");
    assert_eq!(l["kind"], "ConfigMapList");
    assert_eq!(l["items"].as_array().map(Vec::len), Some(2));
    let page = ListOptions {
        limit: Some(2),
        ..ListOptions::default()
    };
    let first = list(&s, &t, &page).expect("list");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_owned();
    let rest = list(
        &s,
        &t,
        &ListOptions {
            continue_token: Some(token),
            ..page
        },
    )
    .expect("list");
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn state_survives_a_restart_and_namespace_deletion_takes_contents() {
    let (dir, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), None);
    create(&mut s, &t, cm(json!({"a": "1"})), &opts("t")).expect("create");
    let rv = s.resource_version();
    drop(s);
    let mut s = Store::load(dir.path()).expect("reload");
    assert!(s.resource_version() >= rv);
    let named = target("configmaps", "", "v1", Some("default"), Some("c"));
    assert_eq!(get(&s, &named).expect("persisted")["data"]["a"], "1");
    let ns = target("namespaces", "", "v1", None, Some("default"));
    delete(&mut s, &ns, &opts("t"), &DeleteOptions::default()).expect("delete");
    assert!(get(&s, &named).is_err());
}

#[test]
fn secrets_store_string_data_as_data() {
    let (_d, mut s) = store();
    let t = target("secrets", "", "v1", Some("default"), Some("s"));
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": "hunter2"}});
    let stored = apply(&mut s, &t, &secret, &opts("gitsync")).expect("apply");
    assert_eq!(stored["data"]["p"], "aHVudGVyMg==");
    assert!(stored.get("stringData").is_none());
    assert_eq!(stored["type"], "Opaque");
}

fn deployment(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

#[test]
fn generation_moves_on_spec_changes_only_and_scale_takes_ownership() {
    let (_d, mut s) = store();
    let t = target("deployments", "apps", "v1", Some("default"), Some("d"));
    let first = apply(&mut s, &t, &deployment("web:1"), &opts("gitsync")).expect("apply");
    assert_eq!(first["metadata"]["generation"], 1);
    assert_eq!(first["spec"]["replicas"], 1, "defaulted");
    let mut labelled = deployment("web:1");
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let second = apply(&mut s, &t, &labelled, &opts("gitsync")).expect("apply");
    assert_eq!(
        second["metadata"]["generation"], 1,
        "labels do not bump generation"
    );
    let mut scale_target = t.clone();
    scale_target.subresource = Some("scale".into());
    let scale = get_scale(&s, &scale_target).expect("scale");
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=d");
    let mut wanted = scale;
    wanted["spec"]["replicas"] = json!(4);
    write_scale(&mut s, &scale_target, &wanted, &opts("kubectl")).expect("scaled");
    let live = get(&s, &t).expect("get");
    assert_eq!(live["spec"]["replicas"], 4);
    assert_eq!(live["metadata"]["generation"], 2);
    let scaler = live["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["manager"] == "kubectl")
        .expect("kubectl entry")
        .clone();
    assert_eq!(scaler["subresource"], "scale");
    assert_eq!(scaler["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let err = apply(
        &mut s,
        &t,
        &deployment("web:2").tap_selector("other"),
        &opts("gitsync"),
    )
    .expect_err("immutable");
    assert_eq!(err.code, 422);
}

trait TapSelector {
    fn tap_selector(self, app: &str) -> Value;
}

impl TapSelector for Value {
    fn tap_selector(mut self, app: &str) -> Value {
        self["spec"]["selector"]["matchLabels"]["app"] = json!(app);
        self["spec"]["template"]["metadata"]["labels"]["app"] = json!(app);
        self
    }
}

#[test]
fn json_patch_through_the_api() {
    let (_d, mut s) = store();
    let t = target("configmaps", "", "v1", Some("default"), Some("c"));
    apply(&mut s, &t, &cm(json!({"a": "1"})), &opts("gitsync")).expect("apply");
    let out = patch(
        &mut s,
        &t,
        &json!([{"op": "add", "path": "/data/b", "value": "2"}]),
        PatchType::Json,
        &opts("kubectl-patch"),
    )
    .expect("patch");
    assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
    let err = patch(
        &mut s,
        &t,
        &json!([{"op": "remove", "path": "/data/zzz"}]),
        PatchType::Json,
        &opts("x"),
    )
    .expect_err("bad op");
    assert_eq!(err.code, 422);
}

#[test]
fn applying_the_values_an_update_wrote_shares_list_items_without_conflict() {
    let (_d, mut s) = store();
    let t = target("deployments", "apps", "v1", Some("default"), Some("d"));
    let create_target = Target {
        name: None,
        ..t.clone()
    };
    // As `kubectl apply` (client-side) creates it: an Update owning each container.
    create(
        &mut s,
        &create_target,
        deployment("web:1"),
        &opts("kubectl-client-side-apply"),
    )
    .expect("create");
    apply(&mut s, &t, &deployment("web:1"), &opts("kubectl")).expect("same values, no conflict");
    let err = apply(&mut s, &t, &deployment("web:2"), &opts("kubectl")).expect_err("new image");
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains(".image") && !err.message.contains("containers[name=\"c\"]\n"),
        "only the image conflicts: {}",
        err.message
    );
}
