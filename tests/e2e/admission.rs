//! A mutating admission webhook that rewrites what gitsync applies (every image to a
//! registry mirror) is not a change and not drift: `gitsync diff` shows nothing, a
//! second sync writes nothing, and the agent's drift check stays quiet, while a hand
//! edit of the same Deployment is still reported. The API server's dry-run answer is
//! what tells the two apart.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{
    Agent, Cluster, Fixture, app_dir, await_listen, commit_all, eventually, free_port, http,
    http_json, http_patch, self_signed_certificate, write_files,
};

const DEPLOY: &str = "/apis/apps/v1/namespaces/mirrored/deployments/web";

const APP: &[(&str, &str)] = &[
    (
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: mirrored\n",
    ),
    (
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: mirrored\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: main\n          image: nginx:1.27\n",
    ),
];

/// Registers the image-mirror webhook (tests/e2e/fixtures/admission_webhook.py) with
/// the cluster; returns the running webhook.
fn mirror_webhook(cluster: &Cluster, dir: &std::path::Path) -> Fixture {
    let (cert, key) = self_signed_certificate(dir);
    let webhook = Fixture::start("admission_webhook.py", &[&cert, &key]);
    let pem = std::fs::read(&cert).expect("cert");
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "image-mirror"},
        "webhooks": [{
            "name": "mirror.images.example.com",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}/mutate", webhook.1),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(pem),
            },
            "rules": [{
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
            }],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    });
    let (code, body) = http_json(
        &cluster.url,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        &config.to_string(),
    );
    assert_eq!(code, 201, "{body}");
    webhook
}

fn image(cluster: &Cluster) -> Option<String> {
    cluster.get(DEPLOY)?["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_webhook_rewriting_what_gitsync_applies_is_neither_a_change_nor_drift() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let _webhook = mirror_webhook(&cluster, tmp.path());
    let app = app_dir(APP);
    let dir = app.path().to_str().expect("utf-8");

    let first = cluster.gitsync(&["sync", dir, "--app", "mirrored"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(image(&cluster).as_deref(), Some("mirror.local/nginx:1.27"));

    // The prediction alone would set the image back; the server's dry run says the
    // apply changes nothing.
    let diff = cluster.gitsync(&["diff", dir, "--app", "mirrored"]);
    assert_eq!(diff.code, 0, "no changes expected: {diff:?}");
    assert!(!diff.stdout.contains("image"), "{diff:?}");
    cluster.reset_stats();
    let again = cluster.gitsync(&["sync", dir, "--app", "mirrored"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(cluster.writes(), 0, "a second sync wrote: {again:?}");

    // A real change is still one, shown as the server would store it.
    write_files(
        app.path(),
        &[("web.yaml", &APP[1].1.replace("nginx:1.27", "nginx:1.28"))],
    );
    let diff = cluster.gitsync(&["diff", dir, "--app", "mirrored"]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(
        diff.stdout
            .contains("+      - image: mirror.local/nginx:1.28"),
        "{diff:?}"
    );
}

#[test]
fn the_agent_reports_a_hand_edit_but_not_the_webhook() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let _webhook = mirror_webhook(&cluster, tmp.path());
    let (repo, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write_files(&repo.path().join("app"), APP);
    commit_all(repo.path(), "mirrored app");
    let listen = format!("127.0.0.1:{}", free_port());
    let agent = Agent::for_app(
        &cluster,
        repo.path(),
        "app",
        cache.path(),
        &["--listen", &listen, "--drift-interval", "1s"],
    );
    let base = format!("http://{listen}");
    await_listen(&listen);
    let status = || -> Value {
        let (_, body) = http(&base, "GET", "/api/v1/apps/app");
        serde_json::from_str(&body).unwrap_or_default()
    };
    eventually(Duration::from_secs(30), "the first sync", || {
        (status()["sync"] == "Synced").then_some(())
    });
    assert_eq!(image(&cluster).as_deref(), Some("mirror.local/nginx:1.27"));

    // Several drift checks later, and after watch events on the Deployment (its
    // rollout status moves), nothing is reported.
    std::thread::sleep(Duration::from_secs(4));
    let quiet = status();
    assert!(
        quiet["drift"].as_array().is_none_or(Vec::is_empty),
        "{quiet}"
    );
    assert_eq!(quiet["sync"], "Synced", "{quiet}");

    // A hand edit of a field gitsync owns is drift all the same.
    let code = http_patch(
        &cluster.url,
        &format!("{DEPLOY}?fieldManager=kubectl-edit"),
        r#"{"spec":{"replicas":3}}"#,
    );
    assert_eq!(code, 200);
    let drifted = eventually(Duration::from_secs(30), "the hand edit reported", || {
        let s = status();
        s["drift"][0].as_str().is_some().then_some(s)
    });
    assert_eq!(
        drifted["drift"][0], "Deployment/mirrored/web: .spec.replicas (kubectl-edit)",
        "{drifted}"
    );
    drop(agent);
}
