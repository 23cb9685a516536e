//! The local cluster serves kubectl through an ordinary kubeconfig (skipped, saying so,
//! when kubectl is not installed).

use std::process::Command;
use std::time::Duration;

use crate::support::{Cluster, Run};

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A started local cluster and its kubeconfig, or `None` (saying so) without kubectl.
fn cluster_for_kubectl() -> Option<(Cluster, std::path::PathBuf)> {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed");
        return None;
    }
    let cluster = Cluster::start();
    let kubeconfig = cluster.kubeconfig();
    Some((cluster, kubeconfig))
}

/// The container names of Deployment `default/web`, as kubectl prints them.
fn container_names(kubeconfig: &std::path::Path) -> String {
    kubectl(
        kubeconfig,
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
}

#[test]
fn kubectl_reads_what_gitsync_synced() {
    let Some((cluster, kubeconfig)) = cluster_for_kubectl() else {
        return;
    };
    assert_eq!(cluster.gitsync(&["sync", "example-repo"]).code, 0);
    let stdout = kubectl(
        &kubeconfig,
        &["get", "deploy", "-n", "pgk", "-o", "name"],
        "",
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
    let run = kubectl_run(kubeconfig, args, stdin);
    assert_eq!(run.code, 0, "kubectl {args:?}: {run:?}");
    run.stdout
}

/// Runs kubectl against `kubeconfig`, feeding `stdin`, whatever its exit code.
fn kubectl_run(kubeconfig: &std::path::Path, args: &[&str], stdin: &str) -> Run {
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
    Run::from(&child.wait_with_output().expect("kubectl output"))
}

/// A Deployment manifest whose pod template has these containers.
fn deployment(containers: &[&str]) -> String {
    let list: String = containers.iter().fold(String::new(), |mut out, c| {
        out.push_str(&format!("      - {{name: {c}, image: \"{c}:1\"}}\n"));
        out
    });
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n{list}"
    )
}

#[test]
fn kubectl_client_side_apply_adds_removes_and_reorders_containers() {
    let Some((_cluster, kubeconfig)) = cluster_for_kubectl() else {
        return;
    };
    let names = || container_names(&kubeconfig);
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

/// A ConfigMap `web` in `default` with `color`.
fn config_map(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web, namespace: default}}\ndata: {{color: {color}}}\n"
    )
}

#[test]
fn kubectl_server_side_apply_shares_equal_values_and_conflicts_on_others() {
    let Some((_cluster, kubeconfig)) = cluster_for_kubectl() else {
        return;
    };
    let apply = |manager: &str, color: &str, extra: &[&str]| {
        let mut args = vec![
            "apply",
            "--server-side",
            "--field-manager",
            manager,
            "-f",
            "-",
        ];
        args.extend(extra);
        kubectl_run(&kubeconfig, &args, &config_map(color))
    };
    let first = apply("first", "blue", &[]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("configmap/web serverside-applied"),
        "{first:?}"
    );
    let same = apply("second", "blue", &[]);
    assert_eq!(same.code, 0, "the same value is shared: {same:?}");
    let conflict = apply("second", "red", &[]);
    assert_eq!(conflict.code, 1, "{conflict:?}");
    assert!(
        conflict.stderr.contains(
            "Apply failed with 1 conflict: conflict with \"first\" using v1: .data.color"
        ),
        "{conflict:?}"
    );
    assert!(
        conflict.stderr.contains("--force-conflicts"),
        "kubectl explains the way out: {conflict:?}"
    );
    let color = || {
        kubectl(
            &kubeconfig,
            &[
                "get",
                "configmap",
                "web",
                "-n",
                "default",
                "-o",
                "jsonpath={.data.color}",
            ],
            "",
        )
    };
    assert_eq!(color(), "blue", "nothing changed");
    let forced = apply("second", "red", &["--force-conflicts"]);
    assert_eq!(forced.code, 0, "{forced:?}");
    assert_eq!(color(), "red");
    let managers = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "web",
            "-n",
            "default",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
        "",
    );
    assert!(managers.contains("second"), "{managers}");
}

#[test]
fn kubectl_diff_exits_by_whether_the_cluster_differs() {
    let Some((_cluster, kubeconfig)) = cluster_for_kubectl() else {
        return;
    };
    let applied = deployment(&["a", "b"]);
    kubectl(&kubeconfig, &["apply", "-f", "-"], &applied);
    for side in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["diff", "-f", "-"];
        args.extend(side);
        let equal = kubectl_run(&kubeconfig, &args, &applied);
        assert_eq!(equal.code, 0, "{side:?}: {equal:?}");
        assert_eq!(equal.stdout, "", "{side:?}");
        // Reordered, and one more: a strategic merge patch with `$setElementOrder`.
        let changed = kubectl_run(&kubeconfig, &args, &deployment(&["b", "a", "c"]));
        assert_eq!(changed.code, 1, "{side:?}: {changed:?}");
        assert!(
            changed.stdout.contains("+        name: c"),
            "{side:?}: {changed:?}"
        );
        assert!(
            changed.stdout.contains("+      - image: c:1"),
            "{side:?}: {changed:?}"
        );
        assert!(
            !changed.stdout.contains('$'),
            "no patch directive: {changed:?}"
        );
    }
    let live = container_names(&kubeconfig);
    assert_eq!(live, "a b", "a diff changes nothing");
}

#[test]
fn kubectl_delete_removes_objects_and_what_they_own() {
    let Some((cluster, kubeconfig)) = cluster_for_kubectl() else {
        return;
    };
    kubectl(&kubeconfig, &["apply", "-f", "-"], &deployment(&["a"]));
    kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", "-"],
        &config_map("blue"),
    );
    let pods = || {
        cluster
            .get("/api/v1/namespaces/default/pods")
            .and_then(|l| l["items"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    crate::support::eventually(Duration::from_secs(10), "the Deployment's pod", || {
        (pods() > 0).then_some(())
    });
    let deleted = kubectl(&kubeconfig, &["delete", "-f", "-"], &deployment(&["a"]));
    assert!(
        deleted.contains("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
    let gone = kubectl_run(&kubeconfig, &["get", "deploy", "web", "-n", "default"], "");
    assert_eq!(gone.code, 1, "{gone:?}");
    assert!(
        gone.stderr
            .contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{gone:?}"
    );
    crate::support::eventually(
        Duration::from_secs(10),
        "its ReplicaSet and pods are collected",
        || (pods() == 0).then_some(()),
    );
    let by_name = kubectl(
        &kubeconfig,
        &["delete", "configmap", "web", "-n", "default"],
        "",
    );
    assert!(by_name.contains("configmap \"web\" deleted"), "{by_name}");
    let missing = kubectl_run(
        &kubeconfig,
        &["delete", "configmap", "web", "-n", "default"],
        "",
    );
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("NotFound"), "{missing:?}");
}

#[test]
fn kubectl_get_watch_receives_added_and_deleted_events() {
    let Some((_cluster, kubeconfig)) = cluster_for_kubectl() else {
        return;
    };
    kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", "-"],
        &config_map("blue"),
    );
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "configmaps",
            "-n",
            "default",
            "--watch",
            "--output-watch-events",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let read = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        for line in read.map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut wait_for = |event: &str, name: &str| {
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let hit = words.first() == Some(&event) && words.get(1) == Some(&name);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(e) => panic!("no {event} {name} within 20 s ({e}); kubectl printed {seen:#?}"),
            }
        }
    };
    // The list it starts from, then what happens after.
    wait_for("ADDED", "web");
    let watched =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: default}\n";
    kubectl(&kubeconfig, &["apply", "--server-side", "-f", "-"], watched);
    wait_for("ADDED", "watched");
    kubectl(
        &kubeconfig,
        &["delete", "configmap", "watched", "-n", "default"],
        "",
    );
    wait_for("DELETED", "watched");
    let _ = watch.kill();
    let _ = watch.wait();
}
