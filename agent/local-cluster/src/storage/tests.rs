use serde_json::{Value, json};

use super::*;
use crate::api::{self, Target, WriteOptions};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::load(dir.path()).expect("store");
    api::bootstrap(&mut store).expect("bootstrap");
    (dir, store)
}

fn target(group: &str, plural: &str, ns: Option<&str>) -> Target {
    Target {
        resource: api::resource(group, "v1", plural).expect("served"),
        namespace: ns.map(str::to_owned),
        name: None,
        subresource: None,
    }
}

fn opts() -> WriteOptions {
    WriteOptions {
        manager: "test".into(),
        ..WriteOptions::default()
    }
}

fn create_class(s: &mut Store, class: Value) -> Value {
    api::create(s, &target(GROUP, PLURAL, None), class, &opts()).expect("class")
}

fn create_claim(s: &mut Store, name: &str, class: Option<&str>) -> Value {
    let mut claim = json!({"metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(class) = class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    let t = target("", "persistentvolumeclaims", Some("default"));
    api::create(s, &t, claim, &opts()).expect("claim")
}

fn claim(s: &Store, name: &str) -> Value {
    s.get(&Key {
        group: String::new(),
        plural: "persistentvolumeclaims".into(),
        namespace: "default".into(),
        name: name.into(),
    })
    .expect("claim stored")
}

fn reasons(s: &Store) -> Vec<(String, String)> {
    s.list("", "events", Some("default"))
        .map(|e| {
            (
                e["involvedObject"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn wffc(name: &str) -> Value {
    json!({"metadata": {"name": name}, "provisioner": "example.com/disk",
        "volumeBindingMode": "WaitForFirstConsumer"})
}

#[test]
fn a_fresh_cluster_has_the_standard_default_class() {
    let (_d, s) = store();
    let class = default_class(&s).expect("a default class");
    assert_eq!(class["metadata"]["name"], "standard");
    assert_eq!(class["volumeBindingMode"], "Immediate");
    assert_eq!(class["reclaimPolicy"], "Delete");
}

#[test]
fn the_newest_default_class_wins_then_the_first_by_name() {
    let (_d, mut s) = store();
    for name in ["zeta", "alpha"] {
        let mut class = wffc(name);
        class["metadata"]["annotations"] = json!({DEFAULT_CLASS: "true"});
        create_class(&mut s, class);
    }
    // Created within the same second as each other (and maybe as `standard`).
    let chosen = default_class(&s).expect("default");
    assert!(
        matches!(
            chosen["metadata"]["name"].as_str(),
            Some("alpha" | "standard")
        ),
        "{chosen}"
    );
    let created = create_claim(&mut s, "data", None);
    assert_eq!(
        created["spec"]["storageClassName"],
        chosen["metadata"]["name"]
    );
}

#[test]
fn an_immediate_claim_binds_as_it_is_created() {
    let (_d, mut s) = store();
    let created = create_claim(&mut s, "data", None);
    assert_eq!(created["spec"]["storageClassName"], "standard");
    assert_eq!(created["status"]["phase"], "Bound");
    assert_eq!(created["status"]["capacity"]["storage"], "1Gi");
    let uid = created["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(created["spec"]["volumeName"], format!("pvc-{uid}"));
    let annotations = &created["metadata"]["annotations"];
    assert_eq!(annotations["pv.kubernetes.io/bind-completed"], "yes");
    assert_eq!(
        annotations["volume.kubernetes.io/storage-provisioner"],
        PROVISIONER
    );
}

#[test]
fn a_claim_waits_for_its_first_consumer() {
    let (_d, mut s) = store();
    create_class(&mut s, wffc("wffc"));
    let created = create_claim(&mut s, "data", Some("wffc"));
    assert_eq!(created["status"]["phase"], "Pending");
    reconcile(&mut s, 1_000).expect("reconcile");
    reconcile(&mut s, 2_000).expect("reconcile again");
    assert_eq!(claim(&s, "data")["status"]["phase"], "Pending");
    assert_eq!(
        reasons(&s),
        vec![("data".to_owned(), "WaitForFirstConsumer".to_owned())],
        "one event, however many passes"
    );
    let pod = json!({"metadata": {"name": "user"}, "spec": {
        "containers": [{"name": "c", "image": "c:1"}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}});
    api::create(&mut s, &target("", "pods", Some("default")), pod, &opts()).expect("pod");
    reconcile(&mut s, 3_000).expect("reconcile");
    let bound = claim(&s, "data");
    assert_eq!(bound["status"]["phase"], "Bound");
    assert_eq!(
        bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        NODE
    );
}

#[test]
fn a_claim_of_a_missing_class_waits_until_the_class_exists() {
    let (_d, mut s) = store();
    let created = create_claim(&mut s, "data", Some("fast"));
    assert_eq!(created["status"]["phase"], "Pending");
    reconcile(&mut s, 1_000).expect("reconcile");
    let event = s
        .list("", "events", Some("default"))
        .next()
        .expect("an event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "ProvisioningFailed");
    assert_eq!(
        event["message"],
        "storageclass.storage.k8s.io \"fast\" not found"
    );
    create_class(
        &mut s,
        json!({"metadata": {"name": "fast"}, "provisioner": "example.com/disk"}),
    );
    reconcile(&mut s, 2_000).expect("reconcile");
    assert_eq!(claim(&s, "data")["status"]["phase"], "Bound");
}

#[test]
fn no_class_at_all_stays_pending_and_a_later_default_is_assigned() {
    let (_d, mut s) = store();
    let created = create_claim(&mut s, "static", Some(""));
    assert_eq!(created["status"]["phase"], "Pending");
    api::delete(
        &mut s,
        &Target {
            name: Some("standard".into()),
            ..target(GROUP, PLURAL, None)
        },
        &opts(),
        &crate::deletion::DeleteOptions::default(),
    )
    .expect("delete the default");
    let created = create_claim(&mut s, "later", None);
    assert!(
        created["spec"].get("storageClassName").is_none(),
        "{created}"
    );
    assert_eq!(created["status"]["phase"], "Pending");
    reconcile(&mut s, 1_000).expect("reconcile");
    assert!(reasons(&s).contains(&("static".to_owned(), "FailedBinding".to_owned())));
    let mut class = wffc("new-default");
    class["volumeBindingMode"] = json!("Immediate");
    class["metadata"]["annotations"] = json!({DEFAULT_CLASS: "true"});
    create_class(&mut s, class);
    reconcile(&mut s, 2_000).expect("reconcile");
    let later = claim(&s, "later");
    assert_eq!(later["spec"]["storageClassName"], "new-default");
    assert_eq!(later["status"]["phase"], "Bound");
    let unclassed = claim(&s, "static");
    assert_eq!(
        unclassed["spec"]["storageClassName"], "",
        "an empty class is a choice"
    );
    assert_eq!(unclassed["status"]["phase"], "Pending");
}
