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
