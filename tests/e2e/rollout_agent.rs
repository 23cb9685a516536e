//! Rollouts driven by `gitsync-agent` from a git repository: every strategy at once in
//! one app, a rollout that outlives its agent, a second commit queued behind a rollout
//! in progress, and `gitsync promote` carried out by the agent.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::rollouts::{CANARY, NS, SERVICE, policy, web};
use crate::support::{
    Agent, Cluster, commit_all, commit_worktree, eventually, history, write_files,
};

pub const WAIT: Duration = Duration::from_mins(1);

/// The app's rollouts as the agent stored them.
fn rollouts(cluster: &Cluster) -> Vec<Value> {
    let path = "/api/v1/namespaces/gitsync-system/configmaps/gitsync-rollouts-ro";
    cluster.get(path).map_or_else(Vec::new, |cm| {
        serde_json::from_str(cm["data"]["rollouts.json"].as_str().unwrap_or("[]"))
            .expect("rollouts JSON")
    })
}

pub fn rollout_of(cluster: &Cluster, workload: &str) -> Option<Value> {
    rollouts(cluster)
        .into_iter()
        .find(|r| r["workload"] == format!("Deployment/ro/{workload}"))
}

pub fn image(cluster: &Cluster, name: &str) -> Option<String> {
    let d = cluster.get(&format!("/apis/apps/v1/namespaces/ro/deployments/{name}"))?;
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .map(str::to_owned)
}

/// A Deployment of two pods and its Service, named `name`, rolled by `policy`; `pod`
/// adds pod-template annotations (the simulator's failure injection).
pub fn workload(name: &str, image: &str, policy: &str, pod: &str) -> String {
    let deployment = web(image, 2, policy, pod).replace("web", name);
    let service = SERVICE.replace("web", name);
    format!("{deployment}---\n{service}")
}

pub fn start(cluster: &Cluster, repo: &Path, cache: &Path) -> Agent {
    Agent::for_app(cluster, repo, "apps/ro", cache, &[])
}

#[test]
fn the_agent_rolls_every_strategy_in_one_app() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let app = repo.path().join("apps/ro");
    let policies = [
        ("rc", "  strategy:\n    type: recreate\n"),
        (
            "rp",
            "  strategy:\n    type: ramped\n    ramped: {maxSurge: 1, maxUnavailable: 0}\n",
        ),
        (
            "bg",
            "  strategy:\n    type: blueGreen\n    blueGreen: {autoPromoteAfter: 1s, scaleDownAfter: 1s}\n",
        ),
        (
            "cn",
            "  strategy:\n    type: canary\n    canary:\n      steps: [{weight: 50}, {pause: 1s}, {weight: 100}]\n",
        ),
    ];
    let files = |tag: &str| -> Vec<(String, String)> {
        let mut files = vec![("ns.yaml".to_owned(), NS.to_owned())];
        for (name, strategy) in policies {
            files.push((
                format!("{name}-policy.yaml"),
                policy(&format!("p-{name}"), strategy),
            ));
            files.push((
                format!("{name}.yaml"),
                workload(name, &format!("{name}:{tag}"), &format!("p-{name}"), ""),
            ));
        }
        files
    };
    let write = |tag: &str| {
        let files = files(tag);
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        write_files(&app, &refs);
    };
    write("1");
    commit_all(repo.path(), "v1");
    let cache = tempfile::tempdir().expect("tmp");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the first sync", || image(&cluster, "bg-blue"));

    write("2");
    commit_all(repo.path(), "v2");
    let serving = [("rc", "rc"), ("rp", "rp"), ("bg", "bg-green"), ("cn", "cn")];
    eventually(WAIT, "every rollout completed at v2", || {
        serving
            .iter()
            .all(|(name, deployment)| {
                rollout_of(&cluster, name).is_some_and(|r| r["phase"] == "Completed")
                    && image(&cluster, deployment).as_deref() == Some(&format!("{name}:2"))
            })
            .then_some(())
    });
    // The rollouts' state is stored before the pass applies it (a cut-off pass resumes
    // from it), so the canary's removal lands just after "Completed" shows.
    eventually(WAIT, "canary removed", || {
        image(&cluster, "cn-canary").is_none().then_some(())
    });
    let bg = cluster
        .get("/api/v1/namespaces/ro/services/bg")
        .expect("service");
    assert_eq!(bg["spec"]["selector"]["gitsync.dev/slot"], "green");
    // Recreate stops every pod first (the downtime window is recorded when a pass
    // sees it; the agent passes every 2 s).
    let rc = rollout_of(&cluster, "rc").expect("recreate");
    assert!(
        rc["log"]
            .to_string()
            .contains("recreate rollout of rc started"),
        "{rc}"
    );
    // Rollout passes are recorded when they change something, by trigger `rollout`.
    let entries = history(&cluster, "ro");
    assert!(
        entries
            .iter()
            .any(|e| e["trigger"] == "rollout" && e["rollout"].is_array()),
        "{entries:#?}"
    );
    drop(agent);
}

#[test]
fn a_rollout_outlives_its_agent_and_a_new_commit_waits_its_turn() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let app = repo.path().join("apps/ro");
    let write = |image: &str| write_canary_app(&app, image);
    write("web:1");
    commit_all(repo.path(), "v1");
    let cache = tempfile::tempdir().expect("tmp");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the first sync", || image(&cluster, "web"));

    write("web:2");
    commit_all(repo.path(), "v2");
    let paused = |cluster: &Cluster| {
        rollout_of(cluster, "web")
            .filter(|r| r["phase"] == "Paused" && r["awaitingPromote"] == true)
    };
    eventually(WAIT, "the canary at its manual pause", || paused(&cluster));
    assert_eq!(image(&cluster, "web-canary").as_deref(), Some("web:2"));

    // The agent goes away mid-rollout; a new commit lands meanwhile.
    drop(agent);
    write("web:3");
    commit_all(repo.path(), "v3");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the new agent synced v3", || {
        history(&cluster, "ro")
            .iter()
            .any(|e| e["message"] == "v3" && e["result"] == "Succeeded")
            .then_some(())
    });
    // onNewRevision: queue — the rollout in progress goes on with v2.
    let state = paused(&cluster).expect("still paused");
    assert_eq!(
        image(&cluster, "web-canary").as_deref(),
        Some("web:2"),
        "{state}"
    );
    assert_eq!(image(&cluster, "web").as_deref(), Some("web:1"));

    // The CLI asks; the agent carries it out, then rolls the queued v3.
    let promote = cluster.gitsync(&["promote", "ro"]);
    assert_eq!(promote.code, 0, "{promote:?}");
    eventually(WAIT, "v2 promoted, then v3's canary", || {
        (image(&cluster, "web-canary").as_deref() == Some("web:3")).then_some(())
    });
    let log = history(&cluster, "ro");
    assert!(
        log.iter().any(|e| e["rollout"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("web promoted"))))),
        "{log:#?}"
    );
    eventually(WAIT, "v3 at its manual pause", || paused(&cluster));
    assert_eq!(cluster.gitsync(&["promote", "ro"]).code, 0);
    eventually(WAIT, "v3 serving alone", || {
        (image(&cluster, "web").as_deref() == Some("web:3")
            && image(&cluster, "web-canary").is_none())
        .then_some(())
    });
    drop(agent);
}

/// Writes app `ro` into `app`: Deployment `web` (4 pods of `image`) rolled by the canary
/// policy `careful`, its Service and Namespace.
fn write_canary_app(app: &Path, image: &str) {
    write_files(
        app,
        &[
            ("ns.yaml", NS),
            ("svc.yaml", SERVICE),
            ("policy.yaml", &policy("careful", CANARY)),
            ("web.yaml", &web(image, 4, "careful", "")),
        ],
    );
}

#[test]
fn plan_by_app_name_previews_a_pull_request_branch_before_it_is_merged() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let app = repo.path().join("apps/ro");
    let write = |image: &str| write_canary_app(&app, image);
    write("web:1");
    commit_all(repo.path(), "v1");
    let cache = tempfile::tempdir().expect("tmp");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the first sync", || {
        history(&cluster, "ro")
            .iter()
            .any(|e| e["result"] == "Succeeded")
            .then_some(())
    });

    // The tracked ref is what is live: nothing to do.
    let diff = cluster.gitsync(&["diff", "ro"]);
    assert_eq!(diff.code, 0, "{diff:?}");
    // A pull request's branch bumps the image: its rollout, step by step, before
    // anything is merged or applied.
    write("web:2");
    let git = git2::Repository::open(repo.path()).expect("repo");
    commit_worktree(
        &git,
        "refs/heads/bump-web",
        Some("refs/heads/main"),
        "web 2",
    );
    let plan = cluster.gitsync(&["plan", "ro", "--revision", "bump-web"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    for step in [
        "=== rollout Deployment/ro/web (policy careful, canary)",
        "apply Deployment web-canary: 1 pod, image web:2",
        "wait for `gitsync promote`",
    ] {
        assert!(plan.stdout.contains(step), "{step:?} missing: {plan:?}");
    }
    assert_eq!(image(&cluster, "web").as_deref(), Some("web:1"));
    assert!(image(&cluster, "web-canary").is_none(), "the preview wrote");
    let unknown = cluster.gitsync(&["plan", "nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("neither an app directory nor an app"),
        "{unknown:?}"
    );
    drop(agent);
}
