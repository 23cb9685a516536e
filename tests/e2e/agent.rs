//! gitsync-agent: clone, sync, poll, and apply a new commit within one interval.

use std::time::Duration;

use crate::support::{Agent, Cluster, commit_all, copy_dir, eventually, example_repo};

const FRONT: &str = "/apis/apps/v1/namespaces/pgk/deployments/pgk-front-deployment";

fn image(cluster: &Cluster) -> Option<String> {
    let dep = cluster.get(FRONT)?;
    dep["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn agent_syncs_a_repo_and_applies_a_new_commit() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    copy_dir(&example_repo(), &repo.path().join("apps/pgk"));
    std::fs::write(repo.path().join("README.md"), "ops repo\n").expect("write");
    commit_all(repo.path(), "first");
    let cache = tempfile::tempdir().expect("tmp");

    let agent = Agent::start(&[
        "--repo",
        repo.path().to_str().expect("utf-8"),
        "--ref",
        "main",
        "--path",
        "apps/pgk",
        "--interval",
        "1s",
        "--cache-dir",
        cache.path().to_str().expect("utf-8"),
        "--cluster",
        "local",
        "--local-dir",
        cluster.dir.path().to_str().expect("utf-8"),
    ]);
    let first = eventually(Duration::from_secs(30), "the first sync", || {
        image(&cluster)
    });
    assert_eq!(first, "k8s-real-demo/front-end:1.0.0");
    let dep = cluster.get(FRONT).expect("deployment");
    assert_eq!(dep["metadata"]["labels"]["gitsync.dev/app"], "pgk");

    // A commit outside the app changes nothing; an image bump is applied.
    cluster.reset_stats();
    std::fs::write(repo.path().join("README.md"), "ops repo, edited\n").expect("write");
    commit_all(repo.path(), "docs only");
    let gitsync_yaml = repo.path().join("apps/pgk/gitsync.yaml");
    let text = std::fs::read_to_string(&gitsync_yaml).expect("read");
    std::fs::write(
        &gitsync_yaml,
        text.replace("FRONT_TAG: \"1.0.0\"", "FRONT_TAG: \"1.1.0\""),
    )
    .expect("write");
    let commit = commit_all(repo.path(), "bump front-end to 1.1.0");
    eventually(Duration::from_secs(30), "the image bump", || {
        (image(&cluster).as_deref() == Some("k8s-real-demo/front-end:1.1.0")).then_some(())
    });
    let dep = cluster.get(FRONT).expect("deployment");
    assert_eq!(
        dep["metadata"]["annotations"]["gitsync.dev/revision"],
        commit.as_str()
    );
    let log = agent.stop();
    assert!(log.contains("synced"), "{log}");
}
