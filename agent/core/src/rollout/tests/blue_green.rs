//! Blue/green transitions off the happy path: abort and a stalled slot before the
//! switch, and a new revision mid-rollout.

use super::*;

/// v1 serves from `web-blue` (3 pods, ready); v2 has just gone to `web-green`.
fn green_rolling_out(p: &Policy) -> (Sim, [Manifest; 2]) {
    let mut sim = Sim::default();
    sim.pass(p, &[deployment("web:1", Some(3)), service()], None, T0)
        .expect("first deploy");
    sim.ready("web-blue");
    let v2 = [deployment("web:2", Some(3)), service()];
    sim.pass(p, &v2, None, T0 + 1_000).expect("pass");
    assert_eq!(sim.image("web-green"), "web:2");
    (sim, v2)
}

#[test]
fn blue_green_abort_before_the_switch_scales_the_new_slot_to_zero() {
    let p = policy(BLUE_GREEN);
    let (mut sim, v2) = green_rolling_out(&p);
    sim.ready("web-green");
    let d = sim.pass(&p, &v2, None, T0 + 2_000).expect("pass");
    assert_eq!(d.waiting, Some(Wait::Promote));
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");

    let d = sim
        .pass(&p, &v2, Some(Command::Abort), T0 + 3_000)
        .expect("pass");
    assert_eq!((sim.phase(), d.waiting), (Phase::Aborted, None));
    assert_eq!(
        d.notes,
        ["blue/green aborted: aborted by `gitsync abort` before the switch"]
    );
    assert_eq!(
        d.state.reason.as_deref(),
        Some("aborted by `gitsync abort` before the switch")
    );
    assert_eq!(
        sim.selector("web")["gitsync.dev/slot"],
        "blue",
        "the Service never moved"
    );
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:1", Some(3))
    );
    assert_eq!(
        (sim.image("web-green"), sim.replicas("web-green")),
        ("web:2", Some(0)),
        "the new slot scaled to zero"
    );

    // Aborted stays so for this revision: no more notes, nothing moves.
    let before = sim.live.clone();
    let d = sim.pass(&p, &v2, None, T0 + 60_000).expect("pass");
    assert_eq!(
        (sim.phase(), d.waiting, d.notes.len()),
        (Phase::Aborted, None, 0)
    );
    assert_eq!(sim.live, before);
}

#[test]
fn blue_green_never_switches_to_a_slot_whose_controller_gave_up() {
    let p = policy(BLUE_GREEN);
    let (mut sim, v2) = green_rolling_out(&p);
    sim.stalled("web-green");
    // Well before the policy's 300 s: the controller's ProgressDeadlineExceeded decides.
    let d = sim.pass(&p, &v2, None, T0 + 2_000).expect("pass");
    assert_eq!((sim.phase(), d.waiting), (Phase::Aborted, None));
    assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    assert!(
        d.notes[0]
            .starts_with("blue/green aborted: web-green rollout exceeded its progress deadline")
            && d.notes[0].contains("ReplicaSet web-x has timed out progressing")
            && d.notes[0].ends_with("the Service never switched"),
        "{:?}",
        d.notes
    );
    assert!(
        d.state
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("exceeded its progress deadline")),
        "{:?}",
        d.state.reason
    );
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");
    assert_eq!(sim.replicas("web-green"), Some(0));
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:1", Some(3))
    );

    // A promote after it gave up switches nothing.
    let d = sim
        .pass(&p, &v2, Some(Command::Promote), T0 + 3_000)
        .expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert_eq!(
        d.notes,
        ["`gitsync promote`: no blue/green rollout waits for it"]
    );
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");
}

#[test]
fn a_new_revision_before_the_switch_restarts_in_the_same_idle_slot() {
    let p = policy(&format!("  onNewRevision: restart\n{BLUE_GREEN}"));
    let (mut sim, _) = green_rolling_out(&p);
    let v3 = [deployment("web:3", Some(3)), service()];
    let d = sim.pass(&p, &v3, None, T0 + 2_000).expect("pass");
    assert_eq!(
        d.notes[0],
        "a new revision arrived mid-rollout: blue/green starts over"
    );
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(d.state.started_ms, T0 + 2_000);
    assert_eq!(
        (sim.image("web-green"), sim.replicas("web-green")),
        ("web:3", Some(3)),
        "the idle slot takes the new revision"
    );
    assert_eq!(sim.image("web-blue"), "web:1");
    assert_eq!(previous_image(&sim), "web:1", "v2 never served");
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");

    sim.ready("web-green");
    sim.pass(&p, &v3, Some(Command::Promote), T0 + 3_000)
        .expect("pass");
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "green");
    let d = sim.pass(&p, &v3, None, T0 + 33_000).expect("pass");
    assert_eq!((sim.phase(), d.waiting), (Phase::Completed, None));
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:1", Some(0))
    );
}

#[test]
fn a_new_revision_after_the_switch_restarts_in_the_old_slot() {
    let p = policy(&format!("  onNewRevision: restart\n{BLUE_GREEN}"));
    let (mut sim, v2) = green_rolling_out(&p);
    sim.ready("web-green");
    sim.pass(&p, &v2, Some(Command::Promote), T0 + 2_000)
        .expect("pass");
    assert_eq!(sim.phase(), Phase::Switched);

    let v3 = [deployment("web:3", Some(3)), service()];
    let d = sim.pass(&p, &v3, None, T0 + 3_000).expect("pass");
    assert_eq!(
        d.notes[0],
        "a new revision arrived mid-rollout: blue/green starts over"
    );
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(
        sim.selector("web")["gitsync.dev/slot"],
        "green",
        "v2 keeps serving"
    );
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:3", Some(3)),
        "the old slot takes the new revision"
    );
    assert_eq!(previous_image(&sim), "web:2");
}

#[test]
fn a_new_revision_mid_blue_green_queues_behind_the_rollout() {
    let p = policy(BLUE_GREEN);
    let (mut sim, _) = green_rolling_out(&p);
    let v3 = [deployment("web:3", Some(3)), service()];
    let d = sim.pass(&p, &v3, None, T0 + 2_000).expect("pass");
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    assert_eq!(
        sim.image("web-green"),
        "web:2",
        "queue: the rollout in progress goes on"
    );
    sim.ready("web-green");
    sim.pass(&p, &v3, Some(Command::Promote), T0 + 3_000)
        .expect("pass");
    assert_eq!(
        (
            sim.selector("web")["gitsync.dev/slot"].clone(),
            sim.image("web-green")
        ),
        (json!("green"), "web:2")
    );
    let d = sim.pass(&p, &v3, None, T0 + 33_000).expect("pass");
    assert_eq!(
        (d.state.phase, d.waiting),
        (Phase::Completed, Some(Wait::Queued))
    );

    // The queued revision starts at the next pass, in the slot now idle.
    let d = sim.pass(&p, &v3, None, T0 + 34_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Progressing);
    assert!(d.notes[0].contains("goes to web-blue"), "{:?}", d.notes);
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:3", Some(3))
    );
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "green");
    assert_eq!(previous_image(&sim), "web:2");
}
