//! Drift: the agent notices a hand edit of a managed object through its watch (or,
//! when no watch gets through, its periodic check), reports it (status API, metric,
//! Kubernetes Event naming the field and the manager) and, with self-heal, re-applies
//! the synced revision.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    Agent, Cluster, commit_all, eventually, free_port, history, http, http_patch, http_with,
    write_files,
};

const CM: &str = "/api/v1/namespaces/drift/configmaps/settings";

fn repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tmp");
    write_files(
        &repo.path().join("app"),
        &[
            (
                "ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: drift\n",
            ),
            (
                "cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: drift\ndata:\n  level: \"1\"\n",
            ),
        ],
    );
    commit_all(repo.path(), "first");
    repo
}

fn start(
    cluster: &Cluster,
    repo: &tempfile::TempDir,
    cache: &tempfile::TempDir,
    extra: &[&str],
) -> Agent {
    let mut flags = vec!["--drift-interval", "1h"];
    flags.extend(extra);
    Agent::for_app(cluster, repo.path(), "app", cache.path(), &flags)
}

fn level(cluster: &Cluster) -> Option<String> {
    cluster.get(CM)?["data"]["level"]
        .as_str()
        .map(str::to_owned)
}

fn edit_by_hand(cluster: &Cluster) {
    let code = http_patch(
        &cluster.url,
        &format!("{CM}?fieldManager=kubectl-edit"),
        r#"{"data":{"level":"9"}}"#,
    );
    assert_eq!(code, 200);
}

fn drift_events(cluster: &Cluster, reason: &str) -> Vec<Value> {
    cluster
        .get("/api/v1/namespaces/drift/events")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["reason"] == reason && e["involvedObject"]["name"] == "settings")
        .collect()
}

#[test]
fn drift_is_reported_with_field_and_manager_and_left_alone_without_self_heal() {
    let cluster = Cluster::start();
    let (repo, cache) = (repo(), tempfile::tempdir().expect("tmp"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let agent = start(&cluster, &repo, &cache, &["--listen", &listen]);
    eventually(Duration::from_secs(30), "the first sync", || {
        (level(&cluster).as_deref() == Some("1")).then_some(())
    });
    let base = format!("http://{listen}");
    eventually(Duration::from_secs(10), "the agent to be ready", || {
        (http(&base, "GET", "/readyz").0 == 200).then_some(())
    });

    edit_by_hand(&cluster);
    let events = eventually(Duration::from_secs(30), "a Drifted event", || {
        let e = drift_events(&cluster, "Drifted");
        (!e.is_empty()).then_some(e)
    });
    let message = events[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(".data.level") && message.contains("kubectl-edit"),
        "{message}"
    );
    assert_eq!(events[0]["type"], "Warning");
    let (_, body) = http(&base, "GET", "/api/v1/apps/app");
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(
        status["drift"][0], "ConfigMap/drift/settings: .data.level (kubectl-edit)",
        "{status}"
    );
    let (_, metrics) = http(&base, "GET", "/metrics");
    assert!(
        metrics.contains("gitsync_drifted_objects{app=\"app\"} 1"),
        "{metrics}"
    );
    // Reported, not reverted.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(level(&cluster).as_deref(), Some("9"));

    // Deleted by hand: gone from the watch, read from the API server, reported.
    let (code, _) = http_with(&cluster.url, "DELETE", CM, &[], b"");
    assert_eq!(code, 200);
    eventually(Duration::from_secs(30), "the deletion as drift", || {
        let (_, body) = http(&base, "GET", "/api/v1/apps/app");
        let status: Value = serde_json::from_str(&body).ok()?;
        (status["drift"][0] == "ConfigMap/drift/settings: deleted").then_some(())
    });
    drop(agent);
}

#[test]
fn self_heal_reapplies_the_synced_revision() {
    let cluster = Cluster::start();
    let (repo, cache) = (repo(), tempfile::tempdir().expect("tmp"));
    let agent = start(
        &cluster,
        &repo,
        &cache,
        &["--self-heal", "--self-heal-delay", "1s"],
    );
    eventually(Duration::from_secs(30), "the first sync", || {
        (level(&cluster).as_deref() == Some("1")).then_some(())
    });
    edit_by_hand(&cluster);
    eventually(Duration::from_secs(30), "self-heal", || {
        (level(&cluster).as_deref() == Some("1")).then_some(())
    });
    // The heal is recorded once it has ended (the write lands before the record).
    eventually(
        Duration::from_secs(30),
        "the self-heal in the history",
        || {
            let entries = history(&cluster, "app");
            let first = entries.first()?;
            (first["trigger"] == "self-heal" && first["result"] == "Succeeded").then_some(())
        },
    );
    eventually(Duration::from_secs(10), "a DriftHealed event", || {
        (!drift_events(&cluster, "DriftHealed").is_empty()).then_some(())
    });
    let log = agent.stop();
    assert!(!drift_events(&cluster, "Drifted").is_empty(), "{log}");
}

#[test]
fn the_periodic_check_finds_drift_no_watch_reported() {
    let cluster = Cluster::start();
    let (repo, cache) = (repo(), tempfile::tempdir().expect("tmp"));
    // No watch ever gets through: drift can only be found by the periodic check.
    cluster.faults(&serde_json::json!({"rules": [{"status": 500, "verbs": ["watch"]}]}));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let agent = Agent::for_app(
        &cluster,
        repo.path(),
        "app",
        cache.path(),
        &["--drift-interval", "2s", "--listen", &listen],
    );
    eventually(Duration::from_secs(30), "the first sync", || {
        (level(&cluster).as_deref() == Some("1")).then_some(())
    });
    edit_by_hand(&cluster);
    let base = format!("http://{listen}");
    eventually(Duration::from_secs(30), "the drift found", || {
        let (_, body) = http(&base, "GET", "/api/v1/apps/app");
        let status: Value = serde_json::from_str(&body).ok()?;
        (status["drift"][0] == "ConfigMap/drift/settings: .data.level (kubectl-edit)").then_some(())
    });
    drop(agent);
}
