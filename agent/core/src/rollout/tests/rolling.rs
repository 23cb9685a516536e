//! Recreate and ramped off the happy path: missed deadlines with and without a
//! rollback, the default deadline, and a new revision mid-rollout.

use std::time::Duration;

use super::*;

const RAMPED: &str = "  strategy:\n    type: ramped\n    ramped: {progressDeadlineSeconds: 120}\n";
const RECREATE: &str =
    "  strategy:\n    type: recreate\n    recreate: {progressDeadlineSeconds: 120}\n";

#[test]
fn ramped_without_rollback_on_failure_fails_on_the_new_template() {
    let p = policy(&RAMPED.replace('}', ", rollbackOnFailure: false}"));
    let mut sim = Sim::with_stable("web:1", 3);
    let v2 = [deployment("web:2", Some(3)), service()];
    sim.pass(&p, &v2, None, T0).expect("pass");
    let d = sim.pass(&p, &v2, None, T0 + 120_000).expect("pass");
    assert!(
        matches!(d.waiting, Some(Wait::Health(_))),
        "{:?}",
        d.waiting
    );
    let d = sim.pass(&p, &v2, None, T0 + 120_001).expect("pass");
    assert_eq!((sim.phase(), d.waiting.clone()), (Phase::Failed, None));
    assert_eq!(
        d.notes,
        ["web failed: not rolled out within 120 s: 0 of 3 new replicas updated"]
    );
    assert_eq!(
        d.state.reason.as_deref(),
        Some("not rolled out within 120 s: 0 of 3 new replicas updated")
    );
    assert_eq!(sim.image("web"), "web:2", "nothing applied back");
    // Failed stays so until git changes.
    let d = sim.pass(&p, &v2, None, T0 + 200_000).expect("pass");
    assert_eq!((sim.phase(), d.notes.len()), (Phase::Failed, 0));
    assert_eq!(sim.image("web"), "web:2");
}

#[test]
fn recreate_that_misses_its_deadline_fails_and_keeps_the_window_open() {
    let p = policy(RECREATE);
    let mut sim = Sim::with_stable("web:1", 2);
    let v2 = [deployment("web:2", Some(2)), service()];
    sim.pass(&p, &v2, None, T0).expect("pass");
    sim.pass(&p, &v2, None, T0 + 1_000).expect("pass");
    let d = sim.pass(&p, &v2, None, T0 + 120_001).expect("pass");
    assert_eq!((sim.phase(), d.waiting.clone()), (Phase::Failed, None));
    assert!(
        d.notes[0].starts_with("web failed: not rolled out within 120 s"),
        "{:?}",
        d.notes
    );
    assert_eq!(
        sim.image("web"),
        "web:2",
        "recreate has nothing to go back to"
    );
    assert_eq!(
        d.state.downtime,
        Some(Downtime {
            from_ms: T0 + 1_000,
            to_ms: None
        }),
        "no pod available since the old ones went"
    );

    // The controller giving up fails it at once.
    let mut sim = Sim::with_stable("web:1", 2);
    sim.pass(&p, &v2, None, T0).expect("pass");
    sim.stalled("web");
    let d = sim.pass(&p, &v2, None, T0 + 5_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Failed);
    assert!(
        d.notes[0].contains("rollout exceeded its progress deadline"),
        "{:?}",
        d.notes
    );
}

#[test]
fn ramped_waits_600_s_when_the_policy_names_no_deadline() {
    let p = policy("  strategy: {type: ramped}\n");
    assert_eq!(p.progress_deadline, Duration::from_mins(10), "600 s");
    let mut sim = Sim::with_stable("web:1", 3);
    let v2 = [deployment("web:2", Some(3)), service()];
    sim.pass(&p, &v2, None, T0).expect("pass");
    assert_eq!(
        sim.deployment("web")["spec"]["progressDeadlineSeconds"],
        600
    );
    let d = sim.pass(&p, &v2, None, T0 + 600_000).expect("pass");
    assert!(
        matches!(d.waiting, Some(Wait::Health(_))),
        "{:?}",
        d.waiting
    );
    let d = sim.pass(&p, &v2, None, T0 + 600_001).expect("pass");
    assert_eq!(sim.phase(), Phase::RolledBack);
    assert!(d.notes[0].contains("within 600 s"), "{:?}", d.notes);
}

#[test]
fn a_new_revision_mid_ramped_or_recreate_queues_behind_the_rollout() {
    for strategy in [RAMPED, RECREATE] {
        let p = policy(strategy);
        let mut sim = Sim::with_stable("web:1", 3);
        let v2 = [deployment("web:2", Some(3)), service()];
        let v3 = [deployment("web:3", Some(3)), service()];
        sim.pass(&p, &v2, None, T0).expect("pass");
        let d = sim.pass(&p, &v3, None, T0 + 1_000).expect("pass");
        assert!(d.notes.is_empty(), "{strategy}: {:?}", d.notes);
        assert_eq!(sim.image("web"), "web:2", "{strategy}: v2 goes on");
        sim.ready("web");
        let d = sim.pass(&p, &v3, None, T0 + 2_000).expect("pass");
        assert_eq!(
            (d.state.phase, d.waiting),
            (Phase::Completed, Some(Wait::Queued)),
            "{strategy}"
        );
        assert!(
            d.notes[0].contains("rolled out"),
            "{strategy}: {:?}",
            d.notes
        );
        let d = sim.pass(&p, &v3, None, T0 + 3_000).expect("pass");
        assert_eq!(d.state.phase, Phase::Progressing, "{strategy}");
        assert_eq!(sim.image("web"), "web:3", "{strategy}");
        assert_eq!(previous_image(&sim), "web:2", "{strategy}: v2 completed");
    }
}

#[test]
fn a_new_revision_mid_ramped_or_recreate_restarts_from_what_served() {
    for strategy in [RAMPED, RECREATE] {
        let p = policy(&format!("  onNewRevision: restart\n{strategy}"));
        let mut sim = Sim::with_stable("web:1", 3);
        let v2 = [deployment("web:2", Some(3)), service()];
        let v3 = [deployment("web:3", Some(3)), service()];
        sim.pass(&p, &v2, None, T0).expect("pass");
        let d = sim.pass(&p, &v3, None, T0 + 1_000).expect("pass");
        assert_eq!(
            d.notes,
            [
                format!(
                    "a new revision arrived mid-rollout: the {} rollout of web starts over",
                    p.strategy.kind()
                ),
                format!("{} rollout of web started", p.strategy.kind())
            ],
            "{strategy}"
        );
        assert_eq!(
            (d.state.phase, d.state.started_ms),
            (Phase::Progressing, T0 + 1_000),
            "{strategy}"
        );
        assert_eq!(sim.image("web"), "web:3", "{strategy}");
        assert_eq!(
            previous_image(&sim),
            "web:1",
            "{strategy}: v2 never completed"
        );
    }
    // A ramped restart that then fails goes back to what served before both.
    let p = policy(&format!("  onNewRevision: restart\n{RAMPED}"));
    let mut sim = Sim::with_stable("web:1", 3);
    let v3 = [deployment("web:3", Some(3)), service()];
    sim.pass(&p, &[deployment("web:2", Some(3)), service()], None, T0)
        .expect("pass");
    sim.pass(&p, &v3, None, T0 + 1_000).expect("pass");
    sim.pass(&p, &v3, None, T0 + 122_000).expect("pass");
    assert_eq!(
        (sim.phase(), sim.image("web")),
        (Phase::RolledBack, "web:1")
    );
}

/// The rendered Deployment running `image`, rendered from commit `revision`.
fn at_revision(image: &str, revision: &str) -> Manifest {
    let mut object = deployment(image, Some(3)).object;
    object["metadata"]["annotations"][crate::manifest::ANNOTATION_REVISION] = json!(revision);
    manifest(object)
}

#[test]
fn a_ramped_rollback_names_the_revisions_it_went_from_and_to() {
    let p = policy(RAMPED);
    // What serves was applied before the policy was bound: its revision is on it.
    let mut sim = Sim::with_stable("web:1", 3);
    sim.live[0]["metadata"]["annotations"][crate::manifest::ANNOTATION_REVISION] = json!("c1");
    let v2 = [at_revision("web:2", "c2"), service()];
    let d = sim.pass(&p, &v2, None, T0).expect("pass");
    assert_eq!(
        (
            d.state.revision.as_deref(),
            d.state.previous_revision.as_deref()
        ),
        (Some("c2"), Some("c1"))
    );
    sim.stalled("web");
    let d = sim.pass(&p, &v2, None, T0 + 1_000).expect("pass");
    assert_eq!(sim.phase(), Phase::RolledBack);
    assert!(
        d.notes[0].starts_with("web failed (rollout exceeded its progress deadline")
            && d.notes[0].ends_with("); rolled back from revision c2 to revision c1"),
        "{:?}",
        d.notes
    );
    assert_eq!(
        (
            d.state.revision.as_deref(),
            d.state.previous_revision.as_deref()
        ),
        (Some("c2"), Some("c1"))
    );

    // After a rollback the next rollout goes back to the same revision; a restart
    // mid-rollout keeps it.
    let p = policy(&format!("  onNewRevision: restart\n{RAMPED}"));
    let v3 = [at_revision("web:3", "c3"), service()];
    sim.pass(&p, &v3, None, T0 + 2_000).expect("pass");
    let v4 = [at_revision("web:4", "c4"), service()];
    let d = sim.pass(&p, &v4, None, T0 + 3_000).expect("pass");
    assert_eq!(
        (
            d.state.revision.as_deref(),
            d.state.previous_revision.as_deref()
        ),
        (Some("c4"), Some("c1"))
    );
    assert_eq!(previous_image(&sim), "web:1");
    let d = sim.pass(&p, &v4, None, T0 + 124_000).expect("pass");
    assert!(
        d.notes[0].ends_with("rolled back from revision c4 to revision c1"),
        "{:?}",
        d.notes
    );
    assert_eq!(sim.image("web"), "web:1");
}

#[test]
fn a_ramped_rollback_after_a_completed_rollout_goes_back_to_its_revision() {
    let p = policy(RAMPED);
    let mut sim = Sim::default();
    let v1 = [at_revision("web:1", "c1"), service()];
    sim.pass(&p, &v1, None, T0).expect("first deploy");
    sim.ready("web");
    sim.pass(&p, &v1, None, T0 + 1_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Completed);
    // The revision annotation on the live object is not what names the rollback
    // target: the completed rollout's state is.
    sim.live[0]["metadata"]["annotations"][crate::manifest::ANNOTATION_REVISION] =
        json!("unrelated");

    let v2 = [at_revision("web:2", "c2"), service()];
    sim.pass(&p, &v2, None, T0 + 2_000).expect("pass");
    let d = sim.pass(&p, &v2, None, T0 + 200_000).expect("pass");
    assert_eq!(sim.phase(), Phase::RolledBack);
    assert!(
        d.notes[0].ends_with("rolled back from revision c2 to revision c1"),
        "{:?}",
        d.notes
    );
    assert_eq!(sim.image("web"), "web:1");
}

#[test]
fn state_stored_before_the_previous_revision_was_recorded_still_reads() {
    let old = json!({"policy": "p", "strategy": "ramped", "target": "abc", "phase": "RolledBack",
        "revision": "c2", "previous": {"spec": {}}, "startedMs": 1, "stepStartedMs": 1});
    let state: State = serde_json::from_value(old).expect("old state");
    assert_eq!(
        (state.revision.as_deref(), state.previous_revision),
        (Some("c2"), None)
    );
    let recorded = State {
        previous_revision: Some("c1".into()),
        ..state
    };
    let stored = serde_json::to_value(&recorded).expect("json");
    assert_eq!(stored["previousRevision"], "c1");
    assert_eq!(
        serde_json::from_value::<State>(stored).expect("round trip"),
        recorded
    );
}
