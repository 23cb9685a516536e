//! The local cluster serves kubectl through an ordinary kubeconfig (skipped, saying so,
//! when kubectl is not installed).

use std::process::Command;

use crate::support::Cluster;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn kubectl_reads_what_gitsync_synced() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let cluster = Cluster::start();
    assert_eq!(cluster.gitsync(&["sync", "example-repo"]).code, 0);
    let kubeconfig = cluster.dir.path().join("kubeconfig");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "deploy", "-n", "pgk", "-o", "name"])
        .output()
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("deployment.apps/pgk-front-deployment"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deployment.apps/pgk-back-deployment"),
        "{stdout}"
    );
}

/// Runs kubectl against `kubeconfig`, feeding `stdin`; panics when it fails.
fn kubectl(kubeconfig: &std::path::Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("kubectl output");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Deployment manifest whose pod template has these containers.
fn deployment(containers: &[&str]) -> String {
    let list: String = containers
        .iter()
        .map(|c| format!("      - {{name: {c}, image: \"{c}:1\"}}\n"))
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n{list}"
    )
}

#[test]
fn kubectl_client_side_apply_adds_removes_and_reorders_containers() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let cluster = Cluster::start();
    let kubeconfig = cluster.kubeconfig();
    let names = || {
        kubectl(
            &kubeconfig,
            &[
                "get",
                "deploy",
                "web",
                "-n",
                "default",
                "-o",
                "jsonpath={.spec.template.spec.containers[*].name}",
            ],
            "",
        )
    };
    // kubectl computes a strategic merge patch with $setElementOrder and $patch: delete.
    for (manifest, expected) in [
        (&["a", "b"][..], "a b"),
        (&["a", "b", "c"], "a b c"),
        (&["a", "c"], "a c"),
        (&["c", "a"], "c a"),
    ] {
        kubectl(&kubeconfig, &["apply", "-f", "-"], &deployment(manifest));
        assert_eq!(names(), expected, "after applying {manifest:?}");
    }
    let stored = kubectl(
        &kubeconfig,
        &["get", "deploy", "web", "-n", "default", "-o", "json"],
        "",
    );
    assert!(!stored.contains("$setElementOrder"), "{stored}");
    assert!(!stored.contains("$patch"), "{stored}");
}

#[test]
fn local_cluster_start_status_kubeconfig_stop_reset() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    let url = || {
        std::fs::read_to_string(dir.path().join("server.url"))
            .expect("server.url")
            .trim()
            .to_owned()
    };
    let start = crate::support::gitsync(&["local-cluster", "start", "--local-dir", d]);
    assert_eq!(start.code, 0, "{start:?}");
    let kubeconfig = start.stdout.trim().to_owned();
    assert!(std::path::Path::new(&kubeconfig).exists(), "{start:?}");
    let (code, body) = crate::support::http_json(
        &url(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"before-reset"}}"#,
    );
    assert_eq!(code, 201, "{body}");
    let status = crate::support::gitsync(&["local-cluster", "status", "--local-dir", d]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("running at http://127.0.0.1:"),
        "{status:?}"
    );
    let again = crate::support::gitsync(&["local-cluster", "kubeconfig", "--local-dir", d]);
    assert_eq!(again.stdout.trim(), kubeconfig);
    let stop = crate::support::gitsync(&["local-cluster", "stop", "--local-dir", d]);
    assert_eq!(stop.code, 0, "{stop:?}");
    let status = crate::support::gitsync(&["local-cluster", "status", "--local-dir", d]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(status.stdout.contains("not running"), "{status:?}");
    let journal = dir.path().join("store.jsonl");
    let journal_len = || std::fs::metadata(&journal).map_or(0, |m| m.len());
    assert!(journal_len() > 0, "the ConfigMap was persisted");

    let reset = crate::support::gitsync(&["local-cluster", "reset", "--local-dir", d]);
    assert_eq!(reset.code, 0, "{reset:?}");
    assert_eq!(journal_len(), 0, "the journal is gone");
    assert!(
        std::path::Path::new(&kubeconfig).exists(),
        "the kubeconfig is kept"
    );

    // Started again, the cluster has its namespaces but not the object made before.
    let start = crate::support::gitsync(&["local-cluster", "start", "--local-dir", d]);
    assert_eq!(start.code, 0, "{start:?}");
    let (gone, _) = crate::support::http(
        &url(),
        "GET",
        "/api/v1/namespaces/default/configmaps/before-reset",
    );
    let (default_ns, _) = crate::support::http(&url(), "GET", "/api/v1/namespaces/default");
    let stop = crate::support::gitsync(&["local-cluster", "stop", "--local-dir", d]);
    assert_eq!(stop.code, 0, "{stop:?}");
    assert_eq!(gone, 404, "the object made before the reset is gone");
    assert_eq!(default_ns, 200, "the cluster bootstraps again");
}
