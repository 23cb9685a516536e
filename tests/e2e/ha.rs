//! High availability: two agents on one configuration elect one leader through a Lease;
//! only the leader syncs, the follower forwards the API to it, and when the leader dies
//! mid-rollout the follower takes over and finishes the rollout from cluster state.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::rollout_agent::{image, rollout_of};
use crate::rollouts::{CANARY, NS, SERVICE, policy, web};
use crate::service::{secret, serve_on};
use crate::support::{
    Agent, Cluster, commit_all, eventually, free_port, http, http_with, write_files,
};

const WAIT: Duration = Duration::from_mins(1);
const TOKEN: &str = "ha-token";

fn write(repo: &Path, image: &str) {
    write_files(
        &repo.join("apps/ro"),
        &[
            ("ns.yaml", NS),
            ("svc.yaml", SERVICE),
            ("policy.yaml", &policy("careful", CANARY)),
            ("web.yaml", &web(image, 4, "careful", "")),
        ],
    );
    commit_all(repo, image);
}

/// One replica: its agent, base URL and identity.
struct Replica {
    agent: Agent,
    base: String,
    name: &'static str,
}

fn replica(cluster: &Cluster, config: &str, dir: &Path, name: &'static str) -> Replica {
    let port = free_port();
    let advertise = format!("http://127.0.0.1:{port}");
    let work = dir.join(name);
    std::fs::create_dir_all(&work).expect("dir");
    let (agent, base) = serve_on(
        cluster,
        config,
        &work,
        port,
        &[
            "--identity",
            name,
            "--advertise-url",
            &advertise,
            "--lease-duration",
            "3s",
            "--lease-retry",
            "500ms",
        ],
    );
    Replica { agent, base, name }
}

fn leads(r: &Replica) -> Option<bool> {
    let (code, metrics) = http(&r.base, "GET", "/metrics");
    (code == 200).then(|| metrics.contains("\ngitsync_leader 1\n"))
}

/// Objects this replica itself applied, by its own metrics.
fn applied(r: &Replica) -> u64 {
    let (_, metrics) = http(&r.base, "GET", "/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("gitsync_objects_applied_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn lease_holder(cluster: &Cluster) -> Option<String> {
    cluster
        .get("/apis/coordination.k8s.io/v1/namespaces/gitsync-system/leases/gitsync-agent-leader")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

fn promote(base: &str) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    http_with(
        base,
        "POST",
        "/api/v1/apps/ro/promote",
        &[("Authorization", &auth)],
        b"",
    )
}

#[test]
fn one_of_two_agents_leads_and_the_other_takes_over_mid_rollout() {
    let cluster = Cluster::start();
    let (repo, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write(repo.path(), "web:1");
    secret(&cluster, "gitsync-api", &[("token", TOKEN)]);
    let config = format!(
        "leaderElection: true\napi:\n  tokenSecret: {{name: gitsync-api, key: token}}\n\
         apps:\n  - {{name: ro, repo: '{}', path: apps/ro, interval: 1s}}\n",
        repo.path().display()
    );
    // Started at once: both find no Lease and race to create it.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| replica(&cluster, &config, work.path(), "agent-a"));
        let b = s.spawn(|| replica(&cluster, &config, work.path(), "agent-b"));
        (a.join().expect("agent-a"), b.join().expect("agent-b"))
    });
    let a_leads = eventually(WAIT, "one leader", || match (leads(&a), leads(&b)) {
        (Some(x), Some(y)) if x != y => Some(x),
        _ => None,
    });
    let (leader, follower) = if a_leads { (a, b) } else { (b, a) };
    assert_eq!(lease_holder(&cluster).as_deref(), Some(leader.name));
    eventually(WAIT, "v1 synced", || image(&cluster, "web"));
    // The follower answers the API by forwarding to the leader.
    let apps = eventually(WAIT, "v1 synced, seen through the follower", || {
        let (code, body) = http(&follower.base, "GET", "/api/v1/apps");
        let apps: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && apps["apps"][0]["sync"] == "Synced").then_some(apps)
    });
    assert_eq!(apps["agent"]["identity"], leader.name, "{apps}");
    let (code, _) = http(&follower.base, "GET", "/readyz");
    assert_eq!(code, 200, "a follower is ready (it forwards)");
    // Only the leader writes: the follower (its metrics are its own) applied nothing.
    assert!(applied(&leader) > 0);
    assert_eq!(applied(&follower), 0, "the follower wrote");

    // v2 starts a canary that pauses for a promote; the leader dies there.
    write(repo.path(), "web:2");
    eventually(WAIT, "the canary at its manual pause", || {
        rollout_of(&cluster, "web")
            .filter(|r| r["phase"] == "Paused" && r["awaitingPromote"] == true)
    });
    let log = leader.agent.stop();
    assert!(log.contains("became the leader"), "{log}");

    eventually(WAIT, "the follower took the lead", || {
        (leads(&follower) == Some(true) && lease_holder(&cluster).as_deref() == Some(follower.name))
            .then_some(())
    });
    let (code, body) = promote(&follower.base);
    assert_eq!(code, 202, "{body}");
    eventually(
        WAIT,
        "v2 serving alone, rolled out by the new leader",
        || {
            (image(&cluster, "web").as_deref() == Some("web:2")
                && image(&cluster, "web-canary").is_none())
            .then_some(())
        },
    );
    let log = follower.agent.stop();
    assert!(log.contains("became the leader"), "{log}");
}
