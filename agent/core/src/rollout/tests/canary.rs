//! `gitsync promote` sent to a canary that is not at a pause.

use super::*;

#[test]
fn promote_ends_only_the_pause_a_canary_is_at() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", Some(4)), service()];
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&p, &rendered, None, T0).expect("pass");

    // Step 1 waits on health: nothing to promote, nothing moves.
    let before = sim.live.clone();
    let d = sim
        .pass(&p, &rendered, Some(Command::Promote), T0 + 1_000)
        .expect("pass");
    assert_eq!(
        d.notes,
        ["`gitsync promote`: the canary is not at a pause; nothing to promote"]
    );
    assert!(
        matches!(d.waiting, Some(Wait::Health(_))),
        "{:?}",
        d.waiting
    );
    assert_eq!((d.state.phase, d.state.step), (Phase::Progressing, 0));
    assert_eq!(sim.live, before);

    // Step 1 turns healthy in the pass that carries the promote: the pause after it
    // still runs its minute.
    sim.ready("web-canary");
    let d = sim
        .pass(&p, &rendered, Some(Command::Promote), T0 + 2_000)
        .expect("pass");
    assert_eq!(
        d.notes,
        [
            "step 1: weight 25%: canary healthy (1 of 4 pods)",
            "`gitsync promote`: the canary is not at a pause; nothing to promote"
        ]
    );
    assert_eq!((d.state.phase, d.state.step), (Phase::Paused, 1));
    assert_eq!(d.waiting, Some(Wait::Until(T0 + 2_000 + MINUTE)));

    // At the pause, a promote ends it before its time.
    let d = sim
        .pass(&p, &rendered, Some(Command::Promote), T0 + 3_000)
        .expect("pass");
    assert_eq!(d.notes, ["step 2: pause ended by `gitsync promote`"]);
    assert_eq!((d.state.phase, d.state.step), (Phase::Progressing, 2));
    assert_eq!(sim.replicas("web-canary"), Some(2), "weight 50");
}
