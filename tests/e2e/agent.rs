//! gitsync-agent: clone, sync, poll, and apply a new commit within one interval.

use std::time::Duration;

use crate::support::{
    Agent, Cluster, commit_all, copy_dir, eventually, example_repo, free_port, http,
};

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

    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let agent = Agent::for_app(
        &cluster,
        repo.path(),
        "apps/pgk",
        cache.path(),
        &["--listen", &listen],
    );
    let first = eventually(Duration::from_secs(30), "the first sync", || {
        image(&cluster)
    });
    assert_eq!(first, "k8s-real-demo/front-end:1.0.0");
    let dep = cluster.get(FRONT).expect("deployment");
    assert_eq!(dep["metadata"]["labels"]["gitsync.dev/app"], "pgk");
    synced_at(&cluster, None);

    // A commit outside the app is fetched and changes nothing: not a write, not even a
    // history entry.
    let fetches_before = fetches(&base);
    cluster.reset_stats();
    std::fs::write(repo.path().join("README.md"), "ops repo, edited\n").expect("write");
    commit_all(repo.path(), "docs only");
    eventually(Duration::from_secs(30), "two fetches after it", || {
        (fetches(&base) >= fetches_before + 2).then_some(())
    });
    assert_eq!(cluster.stats()["writes"], 0, "{}", cluster.stats());

    // An image bump is applied.
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
    synced_at(&cluster, Some(&commit));
    // The agent re-executed itself (same process) with its allocator settings.
    let environment = agent.environment();
    assert!(
        environment.iter().any(|e| e == "MIMALLOC_PURGE_DELAY=0"),
        "{environment:?}"
    );
    assert!(
        environment
            .iter()
            .any(|e| e == "MIMALLOC_GENERIC_COLLECT=1"),
        "{environment:?}"
    );
    assert!(
        environment
            .iter()
            .any(|e| e.starts_with("GLIBC_TUNABLES=") && e.contains("glibc.malloc.arena_max=2")),
        "{environment:?}"
    );
    let log = agent.stop();
    assert!(log.contains("synced"), "{log}");
}

/// How many fetches the agent has made (its fetch-duration histogram's count).
fn fetches(base: &str) -> u64 {
    let (_, metrics) = http(base, "GET", "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gitsync_git_fetch_duration_seconds_count{app=\"pgk\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the app's latest recorded sync succeeded (at `commit`, if given).
fn synced_at(cluster: &Cluster, commit: Option<&str>) {
    eventually(Duration::from_secs(30), "a finished sync", || {
        let entries = crate::support::history(cluster, "pgk");
        let first = entries.first()?;
        (first["result"] == "Succeeded" && commit.is_none_or(|c| first["revision"] == c))
            .then_some(())
    });
}

#[test]
fn a_newer_commit_supersedes_a_sync_stuck_retrying() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: sup\n";
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: sup\ndata:\n  k: v\n"
        )
    };
    crate::support::write_files(
        &repo.path().join("app"),
        &[("ns.yaml", ns), ("stuck.yaml", &cm("stuck"))],
    );
    commit_all(repo.path(), "first");
    // Every real write of `stuck` fails with 500: the sync keeps retrying.
    cluster.faults(&serde_json::json!({"rules": [
        {"status": 500, "verbs": ["patch"], "resource": "configmaps", "name": "stuck", "dryRun": false}
    ]}));
    let cache = tempfile::tempdir().expect("tmp");
    let agent = Agent::for_app(&cluster, repo.path(), "app", cache.path(), &[]);
    eventually(Duration::from_secs(30), "the stuck sync", || {
        (cluster.stats()["injected"].as_u64()? > 0).then_some(())
    });
    // The fix lands: `stuck` is gone, `fine` is new.
    crate::support::write_files(
        &repo.path().join("app"),
        &[("stuck.yaml", ""), ("fine.yaml", &cm("fine"))],
    );
    let second = commit_all(repo.path(), "drop stuck");
    let entries = eventually(Duration::from_secs(20), "the newer commit synced", || {
        let entries = crate::support::history(&cluster, "app");
        (entries.first()?["result"] == "Succeeded").then_some(entries)
    });
    let log = agent.stop();
    assert_eq!(
        entries[0]["revision"],
        second.as_str(),
        "{entries:?}\n{log}"
    );
    assert!(
        entries.iter().any(|e| e["result"] == "Superseded"),
        "{entries:?}\n{log}"
    );
    assert!(
        cluster
            .get("/api/v1/namespaces/sup/configmaps/fine")
            .is_some()
    );
}
