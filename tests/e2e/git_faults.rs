//! The agent when Git misbehaves: a server that is gone or hangs keeps the last synced
//! state and marks the app Stale until it is back; a force-pushed branch is followed;
//! a hanging fetch does not hold the agent past SIGTERM.

use std::time::Duration;

use crate::service::serve;
use crate::support::{Cluster, commit_all, commit_worktree, eventually, http, write_files};

const WAIT: Duration = Duration::from_mins(1);

fn write(repo: &std::path::Path, ns: &str, v: &str) -> String {
    write_files(
        repo,
        &[
            (
                "app/ns.yaml",
                &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
            ),
            (
                "app/cm.yaml",
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: {ns}\ndata:\n  v: \"{v}\"\n"
                ),
            ),
        ],
    );
    commit_all(repo, &format!("{ns} {v}"))
}

fn value(cluster: &Cluster, ns: &str) -> Option<String> {
    cluster
        .get(&format!("/api/v1/namespaces/{ns}/configmaps/cm"))
        .and_then(|cm| cm["data"]["v"].as_str().map(str::to_owned))
}

fn app(base: &str, name: &str) -> serde_json::Value {
    let (_, body) = http(base, "GET", &format!("/api/v1/apps/{name}"));
    serde_json::from_str(&body).unwrap_or_default()
}

#[test]
fn a_server_gone_or_hanging_keeps_the_last_state_and_a_force_push_is_followed() {
    let cluster = Cluster::start();
    let (tmp, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("dir");
    write(&repo, "gone", "1");
    // A "server" that accepts connections and never answers.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_url = format!("http://{}/repo.git", hanging.local_addr().expect("addr"));
    let config = format!(
        "apps:\n  - {{name: gone, repo: '{}', path: app, interval: 1s}}\n  \
         - {{name: hangs, repo: '{hanging_url}', path: app, interval: 1s, gitTimeout: 3s}}\n",
        repo.display()
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    // Alive at once; ready only once every app's first sync was attempted, which for
    // the hanging server's app takes its whole Git timeout.
    assert_eq!(http(&base, "GET", "/healthz"), (200, "ok".to_owned()));
    let (code, body) = http(&base, "GET", "/readyz");
    assert_eq!((code, body.as_str()), (503, "first sync not attempted yet"));
    eventually(WAIT, "ready", || {
        (http(&base, "GET", "/readyz").0 == 200).then_some(())
    });
    eventually(WAIT, "gone synced", || {
        (value(&cluster, "gone").as_deref() == Some("1")).then_some(())
    });

    // The hanging server: a timeout, the app Stale, the others untouched.
    let hangs = eventually(WAIT, "the hanging server's app marked Stale", || {
        let a = app(&base, "hangs");
        a["stale"]
            .as_str()
            .is_some_and(|s| s.contains("did not answer within 3s"))
            .then_some(a)
    });
    assert_eq!(
        hangs["sync"], "Unknown",
        "a transient failure is not a failed sync: {hangs}"
    );

    // The server goes away: Stale, the last synced state kept.
    let moved = tmp.path().join("moved");
    std::fs::rename(&repo, &moved).expect("take the repository away");
    let gone = eventually(WAIT, "gone marked Stale", || {
        let a = app(&base, "gone");
        a["stale"].is_string().then_some(a)
    });
    assert_eq!(gone["sync"], "Synced", "{gone}");
    assert_eq!(value(&cluster, "gone").as_deref(), Some("1"));
    let (_, metrics) = http(&base, "GET", "/metrics");
    assert!(
        metrics.contains("gitsync_app_stale{app=\"gone\"} 1"),
        "{metrics}"
    );

    // Back, with its history rewritten (force-pushed): the new tip is synced.
    std::fs::rename(&moved, &repo).expect("bring it back");
    let git = git2::Repository::open(&repo).expect("repo");
    let rewritten = {
        write_files(
            &repo,
            &[(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: gone\ndata:\n  v: \"rewritten\"\n",
            )],
        );
        // A root commit: the old tip is no ancestor of the new one.
        commit_worktree(&git, "refs/heads/main", None, "rewritten")
    };
    // Synced means applied and healthy: the revision moves when the sync is done.
    let gone = eventually(WAIT, "the force-pushed tip synced", || {
        let a = app(&base, "gone");
        (a["revision"]["commit"] == rewritten.as_str()).then_some(a)
    });
    assert!(gone["stale"].is_null(), "{gone}");
    assert_eq!(value(&cluster, "gone").as_deref(), Some("rewritten"));
    drop(hanging);
    drop(agent);
}

#[test]
fn sigterm_ends_the_agent_while_a_fetch_hangs() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().expect("tmp");
    // A server that accepts and never answers, behind the default one-minute timeout.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/repo.git", hanging.local_addr().expect("addr"));
    let config = format!("apps:\n  - {{name: hangs, repo: '{url}', path: app}}\n");
    let (agent, _base) = serve(&cluster, &config, work.path(), &[]);
    let (_held, _) = hanging.accept().expect("the agent's fetch connects");
    // The fetch now blocks a thread for up to a minute; the kubelet's SIGTERM must end
    // the agent well inside its 30 s grace period all the same.
    let status = agent.terminate(Duration::from_secs(20));
    assert!(
        status.is_some(),
        "the agent did not exit within 20 s of SIGTERM while a fetch hung"
    );
}
