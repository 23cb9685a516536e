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

#[test]
fn local_cluster_start_status_kubeconfig_stop() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    let start = crate::support::gitsync(&["local-cluster", "start", "--local-dir", d]);
    assert_eq!(start.code, 0, "{start:?}");
    let kubeconfig = start.stdout.trim().to_owned();
    assert!(std::path::Path::new(&kubeconfig).exists(), "{start:?}");
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
    let reset = crate::support::gitsync(&["local-cluster", "reset", "--local-dir", d]);
    assert_eq!(reset.code, 0, "{reset:?}");
    assert!(!dir.path().join("objects/core/namespaces").exists());
}
