//! render, diff, sync, status and pruning on example-repo.

use serde_json::Value;

use crate::support::{Cluster, copy_dir, example_repo, gitsync};

const NS: &str = "/api/v1/namespaces/pgk";
const DEPLOY: &str = "/apis/apps/v1/namespaces/pgk/deployments";

#[test]
fn render_is_deterministic_and_tracks_every_object() {
    let first = gitsync(&["render", "example-repo", "--revision", "HEAD"]);
    assert_eq!(first.code, 0, "{first:?}");
    let second = gitsync(&["render", "example-repo", "--revision", "HEAD"]);
    assert_eq!(
        first.stdout, second.stdout,
        "render is byte-for-byte deterministic"
    );
    for kind in [
        "Namespace",
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "ConfigMap",
        "Secret",
    ] {
        assert!(
            first.stdout.contains(&format!("kind: {kind}")),
            "missing {kind}:\n{}",
            first.stdout
        );
    }
    let head = crate::support::git_head(&crate::support::workspace());
    assert!(
        first
            .stdout
            .contains(&format!("gitsync.dev/revision: {head}"))
    );
    assert!(
        first
            .stdout
            .contains("app.kubernetes.io/managed-by: gitsync")
    );
}

#[test]
fn sync_creates_every_object_with_tracking_metadata_then_changes_nothing() {
    let cluster = Cluster::start();
    let diff = cluster.gitsync(&["diff", "example-repo"]);
    assert_eq!(diff.code, 1, "changes pending: {diff:?}");
    assert!(
        diff.stdout
            .contains("=== create Deployment/pgk/pgk-front-deployment"),
        "{diff:?}"
    );

    let sync = cluster.gitsync(&["sync", "example-repo"]);
    assert_eq!(sync.code, 0, "{sync:?}");
    assert!(sync.stdout.contains("synced"), "{sync:?}");

    for path in [
        NS.to_owned(),
        format!("{DEPLOY}/pgk-front-deployment"),
        format!("{DEPLOY}/pgk-back-deployment"),
        format!("{NS}/services/front-end"),
        format!("{NS}/services/back-end"),
        format!("{NS}/persistentvolumeclaims/logclaim"),
        "/apis/networking.k8s.io/v1/namespaces/pgk/ingresses/pgk-ingress".to_owned(),
        "/apis/autoscaling/v2/namespaces/pgk/horizontalpodautoscalers/pgk-hpa".to_owned(),
    ] {
        let object = cluster
            .get(&path)
            .unwrap_or_else(|| panic!("{path} missing"));
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gitsync", "{path}");
        assert_eq!(labels["gitsync.dev/app"], "example-repo", "{path}");
        let digest = object["metadata"]["annotations"]["gitsync.dev/digest"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(digest.len(), 64, "{path}: digest annotation");
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["manager"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            managers.contains(&"gitsync"),
            "{path}: managers {managers:?}"
        );
    }
    // Generated config: the hashed name is referenced from the pod template.
    let front = cluster
        .get(&format!("{DEPLOY}/pgk-front-deployment"))
        .expect("deployment");
    let cm_name = front["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"]
        .as_str()
        .expect("configMapKeyRef");
    assert!(cm_name.starts_with("pgk-config-"), "{cm_name}");
    assert!(cluster.get(&format!("{NS}/configmaps/{cm_name}")).is_some());

    // A second sync writes nothing and says so.
    cluster.reset_stats();
    let again = cluster.gitsync(&["sync", "example-repo"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("in sync, nothing to do"), "{again:?}");
    assert_eq!(cluster.writes(), 0, "second sync sent write requests");
    let diff = cluster.gitsync(&["diff", "example-repo"]);
    assert_eq!(diff.code, 0, "no changes after sync: {diff:?}");

    let status = cluster.gitsync(&["status", "-o", "json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let rows = status.json();
    let rows = rows["objects"].as_array().expect("rows");
    assert!(rows.len() >= 10, "{rows:?}");
    assert!(rows.iter().all(|r| r["state"] == "Synced"), "{rows:?}");
}

#[test]
fn diff_masks_secrets_and_speaks_json() {
    let cluster = Cluster::start();
    let diff = cluster.gitsync(&[
        "diff",
        "example-repo",
        "--var",
        "DB_PASSWORD=hunter2-secret",
    ]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(
        diff.stdout.contains("=== create Secret/pgk/pgk-secret-"),
        "{diff:?}"
    );
    assert!(!diff.stdout.contains("hunter2"), "secret value leaked");
    assert!(
        !diff.stdout.contains("aHVudGVyMi1zZWNyZXQ="),
        "base64 secret leaked"
    );
    assert!(diff.stdout.contains("<masked sha256:"));

    let json = cluster.gitsync(&[
        "diff",
        "example-repo",
        "-o",
        "json",
        "--var",
        "DB_PASSWORD=hunter2-secret",
    ]);
    assert_eq!(json.code, 1, "{json:?}");
    assert!(!json.stdout.contains("hunter2") && !json.stdout.contains("aHVudGVyMi1zZWNyZXQ="));
    let plan = json.json();
    let steps = plan["steps"].as_array().expect("steps");
    assert!(steps.iter().all(|s| s["action"] == "create"), "{plan}");
    assert!(
        steps
            .iter()
            .any(|s| s["id"]["kind"] == "Deployment" && s["id"]["name"] == "pgk-front-deployment")
    );
}

#[test]
fn changed_and_deleted_files_update_and_prune() {
    let cluster = Cluster::start();
    let app = tempfile::tempdir().expect("tmp");
    let dir = app.path().join("shop");
    copy_dir(&example_repo(), &dir);
    let dir_s = dir.to_str().expect("utf-8");
    assert_eq!(cluster.gitsync(&["sync", dir_s]).code, 0);

    // An image bump is an update of exactly that Deployment.
    let path = dir.join("front-end/deployment.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("front-end:${FRONT_TAG}", "front-end:2.0.0"),
    )
    .expect("write");
    let ingress = dir.join("front-end/ingress.yaml");
    std::fs::remove_file(&ingress).expect("delete");

    let diff = cluster.gitsync(&["diff", dir_s]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(
        diff.stdout
            .contains("=== update Deployment/pgk/pgk-front-deployment"),
        "{diff:?}"
    );
    assert!(
        diff.stdout
            .contains("+        image: k8s-real-demo/front-end:2.0.0"),
        "{diff:?}"
    );
    assert!(
        diff.stdout.contains("=== prune Ingress/pgk/pgk-ingress"),
        "{diff:?}"
    );

    let sync = cluster.gitsync(&["sync", dir_s]);
    assert_eq!(sync.code, 0, "{sync:?}");
    assert!(
        cluster
            .get("/apis/networking.k8s.io/v1/namespaces/pgk/ingresses/pgk-ingress")
            .is_none(),
        "ingress pruned"
    );
    let pruned = event(&cluster, "pgk", "pgk-ingress", "Pruned");
    assert_eq!(pruned["type"], "Normal");
    assert_eq!(pruned["involvedObject"]["kind"], "Ingress");
    assert!(
        pruned["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("pruned by gitsync: no longer in")),
        "{pruned}"
    );
    let front = cluster
        .get(&format!("{DEPLOY}/pgk-front-deployment"))
        .expect("deployment");
    assert_eq!(
        front["spec"]["template"]["spec"]["containers"][0]["image"],
        "k8s-real-demo/front-end:2.0.0"
    );

    // Removing the PVC's file keeps the claim (PVCs are pruned only when annotated).
    std::fs::remove_file(dir.join("back-end/pvc.yaml")).expect("delete");
    let sync = cluster.gitsync(&["sync", dir_s]);
    assert_eq!(sync.code, 0, "{sync:?}");
    assert!(
        sync.stdout
            .contains("kept PersistentVolumeClaim/pgk/logclaim"),
        "{sync:?}"
    );
    assert!(
        cluster
            .get(&format!("{NS}/persistentvolumeclaims/logclaim"))
            .is_some()
    );
}

#[test]
fn an_empty_render_never_prunes() {
    let cluster = Cluster::start();
    let app = tempfile::tempdir().expect("tmp");
    let dir = app.path().join("shop");
    copy_dir(&example_repo(), &dir);
    let dir_s = dir.to_str().expect("utf-8");
    assert_eq!(cluster.gitsync(&["sync", dir_s]).code, 0);
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            std::fs::remove_dir_all(entry.path()).expect("rm");
        } else {
            std::fs::remove_file(entry.path()).expect("rm");
        }
    }
    cluster.reset_stats();
    let sync = cluster.gitsync(&["sync", dir_s]);
    assert_eq!(sync.code, 2, "{sync:?}");
    assert!(
        sync.stderr.contains("empty") && sync.stderr.contains("refusing to prune"),
        "{sync:?}"
    );
    assert_eq!(cluster.writes(), 0);
    assert!(
        cluster
            .get(&format!("{DEPLOY}/pgk-front-deployment"))
            .is_some()
    );
}

#[test]
fn drift_made_by_hand_is_reported_and_reverted() {
    let cluster = Cluster::start();
    assert_eq!(cluster.gitsync(&["sync", "example-repo"]).code, 0);
    // Someone edits a field gitsync owns, with a merge patch as `kubectl edit` would.
    let patched = crate::support::http_patch(
        &cluster.url,
        &format!("{DEPLOY}/pgk-front-deployment?fieldManager=kubectl-edit"),
        r#"{"spec":{"replicas":7}}"#,
    );
    assert_eq!(patched, 200);
    // The status row of the front-end Deployment, with or without the app directory.
    let front_row = |args: &[&str]| -> Value {
        let rows: Value = cluster.gitsync(args).json();
        rows["objects"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["object"]["name"] == "pgk-front-deployment")
            .expect("row")
            .clone()
    };
    let front = front_row(&["status", "-o", "json"]);
    assert_eq!(front["state"], "Drifted", "{front}");
    assert!(
        front["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("kubectl-edit")
    );

    let row = front_row(&["status", "example-repo", "-o", "json"]);
    assert_eq!(row["state"], "OutOfSync", "{row}");
    assert_eq!(
        row["detail"], "Deployment/pgk/pgk-front-deployment: .spec.replicas (kubectl-edit)",
        "{row}"
    );

    let diff = cluster.gitsync(&["diff", "example-repo"]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(
        diff.stdout.contains("-  replicas: 7") && diff.stdout.contains("+  replicas: 2"),
        "{diff:?}"
    );
    // The edit made kubectl-edit the owner of .spec.replicas: a sync without force
    // fails on the conflict, naming the manager and the field, and writes nothing.
    cluster.reset_stats();
    let refused = cluster.gitsync(&["sync", "example-repo"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("kubectl-edit")
            && refused.stderr.contains(".spec.replicas")
            && refused.stderr.contains("--force"),
        "{refused:?}"
    );
    assert_eq!(cluster.writes(), 0, "the conflict is found by the dry run");
    let forced = cluster.gitsync(&["sync", "example-repo", "--force"]);
    assert_eq!(forced.code, 0, "{forced:?}");
    let dep = cluster
        .get(&format!("{DEPLOY}/pgk-front-deployment"))
        .expect("deployment");
    assert_eq!(dep["spec"]["replicas"], 2);
}

#[test]
fn a_terminal_gets_a_colored_diff_and_progress_per_object() {
    const GREEN: &str = "\x1b[32m+";
    let cluster = Cluster::start();
    // Piped: no color unless asked; asked: headers bold, additions green.
    let piped = cluster.gitsync(&["diff", "example-repo"]);
    assert_eq!(piped.code, 1, "{piped:?}");
    assert!(!piped.stdout.contains('\x1b'), "{:?}", piped.stdout);
    let always = cluster.gitsync(&["diff", "example-repo", "--color", "always"]);
    assert!(
        always
            .stdout
            .contains("\x1b[1m=== create Deployment/pgk/pgk-front-deployment"),
        "{:?}",
        always.stdout
    );
    assert!(always.stdout.contains(GREEN), "{:?}", always.stdout);

    // On a terminal: colored by default, and never with --color never.
    let (code, diff) = cluster.gitsync_on_a_terminal(&["diff", "example-repo"]);
    assert_eq!(code, 1, "{diff}");
    assert!(diff.contains(GREEN), "{diff:?}");
    let (_, plain) = cluster.gitsync_on_a_terminal(&["diff", "example-repo", "--color", "never"]);
    assert!(!plain.contains('\x1b'), "{plain:?}");

    // A sync on a terminal says what it did to each object as it goes, then sums up.
    let (code, sync) = cluster.gitsync_on_a_terminal(&["sync", "example-repo", "--no-wait"]);
    assert_eq!(code, 0, "{sync}");
    for object in [
        "created Namespace/pgk",
        "created Deployment/pgk/pgk-front-deployment",
        "created PersistentVolumeClaim/pgk/logclaim",
    ] {
        assert!(sync.contains(object), "no {object:?} in:\n{sync}");
    }
    assert!(
        sync.contains("synced: ") && sync.contains(" created, 0 updated, 0 replaced, 0 pruned"),
        "{sync}"
    );
    let piped = cluster.gitsync(&["sync", "example-repo", "--no-wait"]);
    assert!(
        !piped.stderr.contains("  created ") && !piped.stderr.contains("  updated "),
        "per-object progress is for terminals: {piped:?}"
    );
}

/// The Event with `reason` on object `name` in `namespace`.
fn event(cluster: &Cluster, namespace: &str, name: &str, reason: &str) -> Value {
    let events = cluster
        .get(&format!("/api/v1/namespaces/{namespace}/events"))
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default();
    events
        .iter()
        .find(|e| e["reason"] == reason && e["involvedObject"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {reason} Event on {name}: {events:#?}"))
}

#[test]
fn an_object_the_server_rejects_gets_a_sync_failed_event() {
    let cluster = Cluster::start();
    let app = crate::support::app_dir(&[
        (
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: evfail\n",
        ),
        (
            "web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: evfail\nspec:\n  \
             selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    \
             spec:\n      containers: [{name: web, image: web:1}]\n",
        ),
    ]);
    // The dry run passes; the real write is refused (as an admission webhook might).
    cluster.faults(&serde_json::json!({"rules": [
        {"status": 403, "verbs": ["patch"], "resource": "deployments", "dryRun": false}
    ]}));
    let run = cluster.gitsync(&["sync", app.path().to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    let failed = event(&cluster, "evfail", "web", "SyncFailed");
    assert_eq!(failed["type"], "Warning");
    assert_eq!(failed["involvedObject"]["kind"], "Deployment");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("cannot create at the working tree:"),
        "{failed}"
    );
}
