//! Sync history in the cluster: what `gitsync sync` and the agent record, `gitsync
//! history`, `gitsync diff --revision`, and an agent killed mid-sync.

use std::time::Duration;

use serde_json::Value;

use base64::Engine as _;

use crate::support::{Agent, Cluster, app_dir, bin, commit_all, eventually, history, write_files};

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

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn the_history_keeps_the_newest_entries_up_to_its_limit() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let app = repo.path().join("app");
    write_files(&app, &[("ns.yaml", NS), ("cm.yaml", &config_map("1"))]);
    commit_all(repo.path(), "level 1");
    let app_s = app.to_str().expect("utf-8");

    let mut recorded = Vec::new();
    for _ in 0..5 {
        let run = cluster.gitsync(&["sync", app_s, "--history-limit", "3"]);
        assert_eq!(run.code, 0, "{run:?}");
        recorded.insert(0, ids(&history(&cluster, "app"))[0].clone());
    }
    let entries = history(&cluster, "app");
    assert_eq!(
        ids(&entries),
        recorded[..3],
        "the newest 3 of 5, newest first"
    );

    // A sync not given a limit keeps the one the history holds.
    assert_eq!(cluster.gitsync(&["sync", app_s]).code, 0);
    assert_eq!(history(&cluster, "app").len(), 3);
    let bad = cluster.gitsync(&["sync", app_s, "--history-limit", "0"]);
    assert_eq!(bad.code, 2, "{bad:?}");

    // The agent's configuration sets it too.
    let work = tempfile::tempdir().expect("tmp");
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "historyLimit: 2\napps:\n  - name: app\n    repo: {}\n    path: app\n",
            repo.path().display()
        ),
    )
    .expect("write config");
    let agent = std::process::Command::new(bin("gitsync-agent"))
        .args(["--config", config.to_str().expect("utf-8"), "--once"])
        .args([
            "--cache-dir",
            work.path().join("cache").to_str().expect("utf-8"),
        ])
        .args(cluster.flags())
        .output()
        .expect("run gitsync-agent");
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );
    let entries = history(&cluster, "app");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["trigger"], "agent", "{entries:?}");
}

#[test]
fn failed_degraded_and_refused_syncs_are_recorded_with_their_reason() {
    let cluster = Cluster::start();
    let config_maps: Vec<(String, String)> = (0..4)
        .map(|i| {
            (
                format!("cm-{i}.yaml"),
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: hist\ndata:\n  k: v\n"
                ),
            )
        })
        .collect();
    let mut files: Vec<(&str, &str)> = config_maps
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    files.push(("ns.yaml", NS));
    let app = app_dir(&files);
    let app_s = app.path().to_str().expect("utf-8");
    let sync = || cluster.gitsync(&["sync", app_s, "--app", "rec", "--health-timeout", "20s"]);
    assert_eq!(sync().code, 0);
    let last = || history(&cluster, "rec").remove(0);

    // Failed: the API server rejects an object.
    let bad = "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: hist\nspec:\n  ports:\n    - port: 700000\n";
    write_files(app.path(), &[("bad.yaml", bad)]);
    assert_eq!(sync().code, 2);
    let entry = last();
    assert_eq!(entry["result"], "Failed", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Service/hist/bad: ")),
        "{entry}"
    );
    write_files(app.path(), &[("bad.yaml", "")]);

    // Degraded: a rollout past its progress deadline.
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck\n  namespace: hist\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {app: stuck}\n  template:\n    metadata:\n      labels: {app: stuck}\n      annotations: {local-cluster.gitsync.dev/never-ready: \"true\"}\n    spec:\n      containers:\n        - name: main\n          image: nginx:1.27\n";
    write_files(app.path(), &[("stuck.yaml", stuck)]);
    let run = sync();
    assert_eq!(run.code, 2, "{run:?}");
    let entry = last();
    assert_eq!(entry["result"], "Degraded", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Deployment/hist/stuck: ")),
        "{entry}"
    );

    // PruneRefused: 4 of the app's 6 objects leave the render.
    let gone: Vec<(&str, &str)> = config_maps.iter().map(|(p, _)| (p.as_str(), "")).collect();
    write_files(app.path(), &gone);
    assert_eq!(sync().code, 2);
    let entry = last();
    assert_eq!(entry["result"], "PruneRefused", "{entry}");
    assert_eq!(entry["pruned"], 0, "{entry}");
    let reason = entry["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with(
            "ConfigMap/hist/cm-3, ConfigMap/hist/cm-2, ConfigMap/hist/cm-1, ConfigMap/hist/cm-0: \
             refusing to prune 4 of 6 live objects of app \"rec\""
        ),
        "{reason}"
    );
    assert!(
        cluster
            .get("/api/v1/namespaces/hist/configmaps/cm-0")
            .is_some()
    );

    let table = cluster.gitsync(&["history", "rec"]);
    for result in ["Succeeded", "Failed", "Degraded", "PruneRefused"] {
        assert!(table.stdout.contains(result), "{result}: {table:?}");
    }
}

#[test]
fn a_secret_value_never_reaches_the_history() {
    let cluster = Cluster::start();
    let value = "hunter2-correct-horse-battery";
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: hist\nstringData:\n  password: ${DB_PASSWORD}\n";
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("secret.yaml", secret),
        ("cm.yaml", &config_map("1")),
    ]);
    let app_s = app.path().to_str().expect("utf-8");
    let var = format!("DB_PASSWORD={value}");
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", app_s, "--app", "sec", "--var", &var];
        args.extend(extra);
        cluster.gitsync(&args)
    };

    assert_eq!(sync(&[]).code, 0);
    let live = cluster
        .get("/api/v1/namespaces/hist/secrets/db")
        .expect("secret");
    assert_eq!(
        live["data"]["password"],
        encoded.as_str(),
        "the value was applied"
    );
    // A failed sync beside the Secret, and a refused prune.
    let bad = "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: hist\nspec:\n  ports:\n    - port: 700000\n";
    write_files(app.path(), &[("bad.yaml", bad)]);
    assert_eq!(sync(&[]).code, 2);
    write_files(app.path(), &[("bad.yaml", ""), ("cm.yaml", "")]);
    assert_eq!(sync(&["--max-prune-percent", "10"]).code, 2);

    let entries = history(&cluster, "sec");
    let results: Vec<&str> = entries
        .iter()
        .map(|e| e["result"].as_str().expect("result"))
        .collect();
    assert_eq!(results, ["PruneRefused", "Failed", "Succeeded"]);
    let stored = cluster
        .get("/api/v1/namespaces/gitsync-system/configmaps/gitsync-history-sec")
        .expect("history")
        .to_string();
    let listed = cluster.gitsync(&["history", "sec", "-o", "json"]).stdout;
    for text in [&stored, &listed] {
        assert!(!text.contains(value) && !text.contains(&encoded), "{text}");
    }
}
