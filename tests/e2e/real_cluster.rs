//! Against a real kube-apiserver: set GITSYNC_TEST_KUBECONFIG to a kubeconfig whose
//! current context may be written to (a throwaway kind or k3d cluster). Skipped, saying
//! so, when it is unset.

use crate::support::{gitsync, workspace};

fn kubeconfig() -> Option<String> {
    let path = std::env::var("GITSYNC_TEST_KUBECONFIG")
        .ok()
        .filter(|p| !p.is_empty());
    if path.is_none() {
        eprintln!(
            "skipped: GITSYNC_TEST_KUBECONFIG is not set (no real API server to test against)"
        );
    }
    path
}

#[test]
fn example_repo_syncs_to_a_real_cluster_and_a_second_sync_changes_nothing() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let _ = workspace();
    let args = ["--kubeconfig", kubeconfig.as_str(), "--app", "gitsync-e2e"];
    let sync = gitsync(&[&["sync", "example-repo"][..], &args[..]].concat());
    assert_eq!(sync.code, 0, "{sync:?}");
    let again = gitsync(&[&["sync", "example-repo"][..], &args[..]].concat());
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("in sync, nothing to do"), "{again:?}");
    let diff = gitsync(&[&["diff", "example-repo"][..], &args[..]].concat());
    assert_eq!(diff.code, 0, "no diff noise from server defaults: {diff:?}");
}
