//! Rollouts off the happy path, driven by `gitsync-agent` from a git repository: a new
//! version that never becomes ready (ramped rolls back, blue/green never switches, the
//! canary stops at its first gate), rollouts a new agent finishes from what the old one
//! left in the cluster, a second commit mid-rollout (queued behind the rollout in
//! flight, or restarting it), and `gitsync abort` carried out by the agent.

use std::path::Path;

use serde_json::Value;

use crate::rollout_agent::{WAIT, image, rollout_of, start, workload};
use crate::rollouts::{CANARY, NS, policy};
use crate::support::{Cluster, commit_all, eventually, history, write_files};

const RAMPED: &str = "  strategy:\n    type: ramped\n    ramped: {maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 6, rollbackOnFailure: true}\n";
const RECREATE: &str = "  strategy:\n    type: recreate\n";
/// Blue/green switching on `gitsync promote` only.
const BLUE_GREEN: &str = "  strategy:\n    type: blueGreen\n    blueGreen: {scaleDownAfter: 1s}\n";

const NEVER_READY: &str = "local-cluster.gitsync.dev/never-ready: \"true\"";
/// Pods ready after 12 s: a rollout slow enough to stop an agent, or commit again, in
/// the middle of it.
const SLOW: &str = "local-cluster.gitsync.dev/start-seconds: \"12\"";
/// The simulator's default start (1 s), spelled out so that the pod template's
/// annotations are never an empty map: the local cluster's server-side apply drops a
/// map applied empty when it is next applied with keys (see
/// `rollouts::a_pod_annotation_added_to_an_empty_map_is_applied_in_one_pass`).
const QUICK: &str = "local-cluster.gitsync.dev/start-seconds: \"1\"";

/// One workload of the app: its name, its policy's `spec:` body, and pod-template
/// annotations.
type Spec<'a> = (&'a str, &'a str, &'a str);

/// Writes app `apps/ro` of `repo` (a namespace, and for each workload a policy
/// `p-<name>`, a Deployment of image `<name>:<tag>` and a Service), commits it as
/// `message` and returns the commit.
fn commit(repo: &Path, tag: &str, workloads: &[Spec<'_>], message: &str) -> String {
    let mut files = vec![("ns.yaml".to_owned(), NS.to_owned())];
    for (name, strategy, pod) in workloads {
        let policy_name = format!("p-{name}");
        files.push((
            format!("{name}-policy.yaml"),
            policy(&policy_name, strategy),
        ));
        files.push((
            format!("{name}.yaml"),
            workload(name, &format!("{name}:{tag}"), &policy_name, pod),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_files(&repo.join("apps/ro"), &refs);
    commit_all(repo, message)
}

fn deployment(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster.get(&format!("/apis/apps/v1/namespaces/ro/deployments/{name}"))
}

/// `spec.replicas` and `status.availableReplicas` of a Deployment.
fn pods(cluster: &Cluster, name: &str) -> (i64, i64) {
    let d = deployment(cluster, name).unwrap_or_else(|| panic!("no Deployment {name}"));
    let count = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    (count("/spec/replicas"), count("/status/availableReplicas"))
}

/// The slot a Service selects.
fn slot(cluster: &Cluster, service: &str) -> Value {
    let path = format!("/api/v1/namespaces/ro/services/{service}");
    let service = cluster
        .get(&path)
        .unwrap_or_else(|| panic!("no Service {service}"));
    service["spec"]["selector"]["gitsync.dev/slot"].clone()
}

/// The rollout of `workload` once `ready` holds for it.
fn when(cluster: &Cluster, workload: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, &format!("{workload}: {what}"), || {
        rollout_of(cluster, workload).filter(|r| ready(r))
    })
}

/// The rollout's notes, oldest first, without their time stamps.
fn notes(rollout: &Value) -> Vec<String> {
    rollout["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|line| {
            line.split_once(' ')
                .map_or(line, |(_, note)| note)
                .to_owned()
        })
        .collect()
}

/// Index of the first note containing `text` at or after `from`.
fn note_at(notes: &[String], from: usize, text: &str) -> Option<usize> {
    notes
        .iter()
        .skip(from)
        .position(|n| n.contains(text))
        .map(|i| i + from)
}

/// Seconds a "<name> rolled out in N s" note reports.
fn rolled_out_seconds(note: &str) -> u64 {
    note.split(" rolled out in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a rolled-out note: {note}"))
}

#[test]
fn the_agent_rolls_back_or_aborts_a_version_that_never_becomes_ready() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    // Even promoting on its own after 1 s, blue/green never switches to a slot that is
    // not ready.
    let auto = "  strategy:\n    type: blueGreen\n    blueGreen: {autoPromoteAfter: 1s, scaleDownAfter: 1s, progressDeadlineSeconds: 6}\n";
    let app = |pod| [("rp", RAMPED, pod), ("bg", auto, pod), ("cn", CANARY, pod)];
    let v1 = commit(repo.path(), "1", &app(QUICK), "v1");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the first sync", || {
        ["rp", "bg", "cn"]
            .iter()
            .all(|w| rollout_of(&cluster, w).is_some_and(|r| r["phase"] == "Completed"))
            .then_some(())
    });

    let v2 = commit(repo.path(), "2", &app(NEVER_READY), "v2");

    // Ramped misses its deadline and applies v1's template again.
    let rp = when(&cluster, "rp", "rolled back", |r| {
        r["phase"] == "RolledBack"
    });
    assert_eq!(rp["revision"], v2.as_str(), "{rp}");
    // Whichever sees the deadline first: the Deployment's own (the policy sets it) or
    // the rollout's.
    assert!(
        rp["reason"].as_str().is_some_and(|r| {
            r.starts_with("rollout exceeded its progress deadline")
                || r.starts_with("not rolled out within 6 s")
        }),
        "{rp}"
    );
    let rolled_back = format!("rolled back from revision {v2} to revision {v1}");
    assert!(
        notes(&rp).iter().any(|n| n.contains(&rolled_back)),
        "{rolled_back:?} missing: {rp:#}"
    );
    eventually(WAIT, "rp serving v1 with every pod again", || {
        (image(&cluster, "rp").as_deref() == Some("rp:1") && pods(&cluster, "rp") == (2, 2))
            .then_some(())
    });

    // Blue/green: the bad slot is only ever previewed.
    let bg = when(&cluster, "bg", "aborted", |r| r["phase"] == "Aborted");
    assert!(
        bg["reason"].as_str().is_some_and(
            |r| r.starts_with("bg-green") && r.ends_with("; the Service never switched")
        ),
        "{bg}"
    );
    assert!(
        !notes(&bg).iter().any(|n| n.contains("switched Service")),
        "{bg:#}"
    );
    assert_eq!(slot(&cluster, "bg"), "blue");
    assert_eq!(slot(&cluster, "bg-preview"), "green");
    assert_eq!(image(&cluster, "bg-green").as_deref(), Some("bg:2"));
    assert_eq!(image(&cluster, "bg-blue").as_deref(), Some("bg:1"));
    assert_eq!(pods(&cluster, "bg-blue"), (2, 2), "blue still serves");

    // The canary stops at its first gate; stable serves alone.
    let cn = when(&cluster, "cn", "aborted", |r| r["phase"] == "Aborted");
    assert_eq!(cn["step"], 0, "the first step: {cn}");
    assert!(
        cn["reason"]
            .as_str()
            .is_some_and(|r| r.contains("canary not healthy within 6 s")),
        "{cn}"
    );
    assert!(
        notes(&cn)
            .iter()
            .any(|n| n.starts_with("canary aborted at step 1")),
        "{cn:#}"
    );
    eventually(WAIT, "the canary removed, stable at full size", || {
        (deployment(&cluster, "cn-canary").is_none() && pods(&cluster, "cn") == (2, 2))
            .then_some(())
    });
    assert_eq!(image(&cluster, "cn").as_deref(), Some("cn:1"));

    // The history says so.
    let recorded: Vec<String> = history(&cluster, "ro")
        .iter()
        .flat_map(|e| e["rollout"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    for (workload, text) in [
        ("rp", rolled_back.as_str()),
        ("bg", "the Service never switched"),
        ("cn", "canary aborted at step 1"),
    ] {
        let prefix = format!("Deployment/ro/{workload}: ");
        assert!(
            recorded
                .iter()
                .any(|n| n.starts_with(&prefix) && n.contains(text)),
            "{prefix}{text:?} not in the history: {recorded:#?}"
        );
    }
    drop(agent);
}

#[test]
fn a_new_agent_finishes_the_rollouts_its_predecessor_started() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let ramped = RAMPED.replace("progressDeadlineSeconds: 6", "progressDeadlineSeconds: 60");
    let app = |pod| {
        [
            ("bg", BLUE_GREEN, QUICK),
            ("rp", &*ramped, pod),
            ("rc", RECREATE, pod),
        ]
    };
    commit(repo.path(), "1", &app(QUICK), "v1");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the first sync", || {
        ["bg", "rp", "rc"]
            .iter()
            .all(|w| rollout_of(&cluster, w).is_some_and(|r| r["phase"] == "Completed"))
            .then_some(())
    });

    let v2 = commit(repo.path(), "2", &app(SLOW), "v2");
    let of_v2 = |r: &Value| r["revision"] == v2.as_str();
    let bg = when(&cluster, "bg", "waits for promote", |r| {
        of_v2(r) && r["awaitingPromote"] == true
    });
    let rp = when(&cluster, "rp", "rolling v2", |r| {
        of_v2(r) && r["phase"] == "Progressing"
    });
    // Recreate has stopped every old pod: the new ones take 12 s.
    let rc = when(&cluster, "rc", "down, rolling v2", |r| {
        of_v2(r) && r["phase"] == "Progressing" && r["downtime"]["fromMs"].is_u64()
    });
    drop(agent);
    assert_eq!(image(&cluster, "rp").as_deref(), Some("rp:2"));
    let (_, available) = pods(&cluster, "rc");
    assert_eq!(available, 0, "recreate is mid-way");
    // Asked while no agent runs: the request waits in the cluster.
    let promote = cluster.gitsync(&["promote", "ro"]);
    assert_eq!(promote.code, 0, "{promote:?}");

    let agent = start(&cluster, repo.path(), cache.path());
    let done = |r: &Value| of_v2(r) && r["phase"] == "Completed";
    let bg_done = when(&cluster, "bg", "completed", done);
    let rp_done = when(&cluster, "rp", "completed", done);
    let rc_done = when(&cluster, "rc", "completed", done);
    // Each rollout went on from where it was: same start, started once.
    for (before, after, started) in [
        (&bg, &bg_done, "blue/green rollout of bg started"),
        (&rp, &rp_done, "ramped rollout of rp started"),
        (&rc, &rc_done, "recreate rollout of rc started"),
    ] {
        assert_eq!(before["startedMs"], after["startedMs"], "{after:#}");
        let count = notes(after).iter().filter(|n| n.contains(started)).count();
        assert_eq!(count, 1, "{after:#}");
    }
    assert!(
        notes(&bg_done)
            .iter()
            .any(|n| n.starts_with("switched Service bg to bg-green (gitsync promote)")),
        "{bg_done:#}"
    );
    assert_eq!(slot(&cluster, "bg"), "green");
    assert_eq!(image(&cluster, "bg-green").as_deref(), Some("bg:2"));
    // The downtime the first agent saw begin, the second saw end.
    let rolled = notes(&rc_done)
        .into_iter()
        .rfind(|n| n.starts_with("rc rolled out in"))
        .expect("rc rolled out");
    assert!(rolled.ends_with(" ms without an available pod"), "{rolled}");
    assert!(rc_done["downtime"]["toMs"].is_u64(), "{rc_done:#}");
    for name in ["rp", "rc"] {
        assert_eq!(image(&cluster, name), Some(format!("{name}:2")));
        assert_eq!(pods(&cluster, name), (2, 2), "{name}");
    }
    drop(agent);
}

#[test]
fn a_second_commit_mid_rollout_waits_its_turn_or_restarts_it_and_the_agent_aborts() {
    let cluster = Cluster::start();
    let repo = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let restart = BLUE_GREEN.replace("  strategy:", "  onNewRevision: restart\n  strategy:");
    let ramped = RAMPED.replace("progressDeadlineSeconds: 6", "progressDeadlineSeconds: 60");
    let app = |pod| {
        [
            ("bg", BLUE_GREEN, QUICK),
            ("bgr", &*restart, QUICK),
            ("rp", &*ramped, pod),
            ("rc", RECREATE, pod),
        ]
    };
    commit(repo.path(), "1", &app(QUICK), "v1");
    let agent = start(&cluster, repo.path(), cache.path());
    eventually(WAIT, "the first sync", || {
        ["bg", "bgr", "rp", "rc"]
            .iter()
            .all(|w| rollout_of(&cluster, w).is_some_and(|r| r["phase"] == "Completed"))
            .then_some(())
    });

    let v2 = commit(repo.path(), "2", &app(SLOW), "v2");
    let at = |rev: &str, r: &Value| r["revision"] == rev;
    let awaiting = |r: &Value| r["awaitingPromote"] == true;
    when(&cluster, "bg", "v2 waits for promote", |r| {
        at(&v2, r) && awaiting(r)
    });
    when(&cluster, "bgr", "v2 waits for promote", |r| {
        at(&v2, r) && awaiting(r)
    });
    when(&cluster, "rp", "rolling v2", |r| {
        at(&v2, r) && r["phase"] == "Progressing"
    });

    // v3 lands mid-rollout. `restart`: blue/green starts over with it.
    let v3 = commit(repo.path(), "3", &app(QUICK), "v3");
    let bgr = when(&cluster, "bgr", "v3 waits for promote", |r| {
        at(&v3, r) && awaiting(r)
    });
    assert!(
        notes(&bgr)
            .iter()
            .any(|n| n == "a new revision arrived mid-rollout: blue/green starts over"),
        "{bgr:#}"
    );
    assert_eq!(image(&cluster, "bgr-green").as_deref(), Some("bgr:3"));
    assert_eq!(slot(&cluster, "bgr"), "blue", "never switched to v2");
    // `queue` (the default): the rollouts in flight go on with v2.
    let bg = rollout_of(&cluster, "bg").expect("bg");
    assert!(at(&v2, &bg) && awaiting(&bg), "{bg:#}");
    assert_eq!(image(&cluster, "bg-green").as_deref(), Some("bg:2"));
    let rp = rollout_of(&cluster, "rp").expect("rp");
    assert!(at(&v2, &rp) && rp["phase"] == "Progressing", "{rp:#}");
    assert_eq!(image(&cluster, "rp").as_deref(), Some("rp:2"));

    // One promote moves both blue/green rollouts: bg's v2 switches, then its queued v3
    // goes to the idle slot; bgr's v3 switches.
    assert_eq!(cluster.gitsync(&["promote", "ro"]).code, 0);
    let bg = when(&cluster, "bg", "v3 waits for promote", |r| {
        at(&v3, r) && awaiting(r)
    });
    let bg_notes = notes(&bg);
    let switched = note_at(&bg_notes, 0, "switched Service bg to bg-green").expect("switched");
    let scaled = note_at(&bg_notes, switched, "bg-blue scaled to zero").expect("scaled");
    note_at(
        &bg_notes,
        scaled,
        "rollout of bg started: the new version goes to bg-blue",
    )
    .unwrap_or_else(|| panic!("v3 did not follow v2: {bg_notes:#?}"));
    assert_eq!(slot(&cluster, "bg"), "green");
    assert_eq!(image(&cluster, "bg-blue").as_deref(), Some("bg:3"));
    when(&cluster, "bgr", "v3 completed", |r| {
        at(&v3, r) && r["phase"] == "Completed"
    });
    assert_eq!(slot(&cluster, "bgr"), "green");

    // Ramped and recreate finish v2 (its slow pods), then roll v3.
    for (name, kind) in [("rp", "ramped"), ("rc", "recreate")] {
        let done = when(&cluster, name, "v3 completed", |r| {
            at(&v3, r) && r["phase"] == "Completed"
        });
        let log = notes(&done);
        let started = format!("{kind} rollout of {name} started");
        let rolled = format!("{name} rolled out in ");
        let first = note_at(&log, 0, &started).expect("v2 started");
        let v2_done = note_at(&log, first, &rolled).expect("v2 rolled out");
        let second = note_at(&log, v2_done, &started).expect("v3 started after v2");
        note_at(&log, second, &rolled).expect("v3 rolled out");
        assert!(
            rolled_out_seconds(&log[v2_done]) >= 12,
            "v2 ran its own slow pods: {log:#?}"
        );
        assert!(!log.iter().any(|n| n.contains("starts over")), "{log:#?}");
        assert_eq!(image(&cluster, name), Some(format!("{name}:3")));
    }

    // `gitsync abort` asks; the agent aborts bg's v3 before the switch.
    let abort = cluster.gitsync(&["abort", "ro"]);
    assert_eq!(abort.code, 0, "{abort:?}");
    let bg = when(&cluster, "bg", "aborted", |r| r["phase"] == "Aborted");
    assert_eq!(
        bg["reason"], "aborted by `gitsync abort` before the switch",
        "{bg:#}"
    );
    eventually(WAIT, "bg-blue scaled to zero", || {
        (pods(&cluster, "bg-blue").0 == 0).then_some(())
    });
    assert_eq!(slot(&cluster, "bg"), "green");
    assert_eq!(image(&cluster, "bg-green").as_deref(), Some("bg:2"));
    assert_eq!(pods(&cluster, "bg-green"), (2, 2));
    drop(agent);
}
