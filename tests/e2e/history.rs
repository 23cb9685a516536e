//! Sync history in the cluster: what `gitsync sync` and the agent record, `gitsync
//! history`, `gitsync diff --revision`, and an agent killed mid-sync.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Agent, Cluster, commit_all, eventually, history, write_files};

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: hist\n";

fn config_map(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: hist\ndata:\n  level: \"{value}\"\n"
    )
}

#[test]
fn syncs_are_recorded_and_an_older_revision_can_be_previewed() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let app = repo.path().join("app");
    write_files(&app, &[("ns.yaml", NS), ("cm.yaml", &config_map("1"))]);
    let first = commit_all(repo.path(), "level 1");
    write_files(&app, &[("cm.yaml", &config_map("2"))]);
    let second = commit_all(repo.path(), "raise the level to 2");
    let app_s = app.to_str().expect("utf-8");

    let run = cluster.gitsync(&["sync", app_s]);
    assert_eq!(run.code, 0, "{run:?}");
    let entries = history(&cluster, "app");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["result"], "Succeeded");
    assert_eq!(e["revision"], second.as_str());
    assert_eq!(e["author"], "test <test@example.com>");
    assert_eq!(e["message"], "raise the level to 2");
    assert_eq!(e["trigger"], "cli");
    assert_eq!(e["created"], 2);
    assert_eq!(e["digest"].as_str().map(str::len), Some(64));
    assert!(e["finished"].is_string());

    // Preview a rollback to the first commit: the files of that commit, not the disk.
    let diff = cluster.gitsync(&["diff", app_s, "--revision", &first[..10]]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(
        diff.stdout.contains("-  level: '2'") || diff.stdout.contains("-  level: \"2\""),
        "{diff:?}"
    );
    assert!(diff.stdout.contains("+  level: '1'") || diff.stdout.contains("+  level: \"1\""));
    let unknown = cluster.gitsync(&["diff", app_s, "--revision", "no-such-rev"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("no-such-rev"), "{unknown:?}");

    // A broken render is recorded too, with the file and line.
    write_files(
        &app,
        &[(
            "broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
        )],
    );
    assert_eq!(cluster.gitsync(&["sync", app_s]).code, 2);
    let listed = cluster.gitsync(&["history", "app", "-o", "json"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let entries: Value = listed.json();
    let entries = entries.as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["result"], "RenderFailed");
    assert!(
        entries[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("broken.yaml:3")),
        "{entries:?}"
    );
    let table = cluster.gitsync(&["history", "app"]);
    assert!(
        table.stdout.contains("RenderFailed") && table.stdout.contains("Succeeded"),
        "{table:?}"
    );
}

#[test]
fn an_agent_killed_mid_sync_finishes_it_after_a_restart() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    // Pods that take a few seconds to start keep the sync waiting for health.
    let slow = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slow\n  namespace: hist\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: slow}\n  template:\n    metadata:\n      labels: {app: slow}\n      annotations: {local-cluster.gitsync.dev/start-seconds: \"4\"}\n    spec:\n      containers:\n        - name: main\n          image: nginx:1.27\n";
    write_files(
        &repo.path().join("app"),
        &[
            ("ns.yaml", NS),
            ("cm.yaml", &config_map("1")),
            ("slow.yaml", slow),
        ],
    );
    let commit = commit_all(repo.path(), "first");
    let cache = tempfile::tempdir().expect("tmp");
    let agent = Agent::for_app(&cluster, repo.path(), "app", cache.path(), &[]);
    eventually(Duration::from_secs(30), "a running sync", || {
        let entries = history(&cluster, "app");
        (entries.first()?["result"] == "Running"
            && cluster
                .get("/apis/apps/v1/namespaces/hist/deployments/slow")
                .is_some())
        .then_some(())
    });
    drop(agent); // SIGKILL: no chance to record anything

    let agent = Agent::for_app(&cluster, repo.path(), "app", cache.path(), &[]);
    let entries = eventually(Duration::from_mins(1), "the sync to finish", || {
        let entries = history(&cluster, "app");
        (entries.first()?["result"] == "Succeeded").then_some(entries)
    });
    let log = agent.stop();
    assert_eq!(entries.len(), 2, "{entries:?}\n{log}");
    assert_eq!(entries[1]["result"], "Interrupted", "{entries:?}");
    assert_eq!(entries[0]["revision"], commit.as_str());
    assert_eq!(entries[0]["trigger"], "agent");
    let slow = cluster
        .get("/apis/apps/v1/namespaces/hist/deployments/slow")
        .expect("deployment");
    assert_eq!(slow["status"]["availableReplicas"], 2);
    assert!(
        cluster
            .get("/api/v1/namespaces/hist/configmaps/settings")
            .is_some()
    );
}
