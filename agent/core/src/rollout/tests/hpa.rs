//! Blue/green under an HPA, with `spec.replicas` owned as server-side apply owns it: the
//! HPA scales through the scale subresource (an Update that takes the field from every
//! other manager when it changes the count), gitsync applies.

use super::*;

/// The manager of the HPA's writes through the scale subresource.
const HPA_MANAGER: &str = "kube-controller-manager";

fn owns_replicas(manager: &str, operation: &str) -> Value {
    json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}})
}

/// Whether gitsync's applies, and whether another manager, own `spec.replicas`.
fn replicas_owners(live: &Value) -> (bool, bool) {
    let entries = live["metadata"]["managedFields"].as_array().cloned();
    let owned_by = |ours: bool| {
        entries.iter().flatten().any(|e| {
            (e["manager"] == crate::manifest::FIELD_MANAGER && e["operation"] == "Apply") == ours
                && e.pointer("/fieldsV1/f:spec/f:replicas").is_some()
        })
    };
    (owned_by(true), owned_by(false))
}

impl Sim {
    /// A pass whose applies keep `spec.replicas` ownership as server-side apply does: a
    /// count gitsync sets becomes its own (shared at the same value with a manager that
    /// owns it; another value is a conflict, which fails the test: a fight); a count it
    /// leaves out after owning it alone is removed, and the Deployment falls back to one
    /// pod.
    fn apply(
        &mut self,
        policy: &Policy,
        rendered: &[Manifest],
        command: Option<Command>,
        now: u64,
    ) -> Decision {
        let before: Vec<(String, (bool, bool), Option<i64>)> = self
            .live
            .iter()
            .filter(|l| kind(l) == "Deployment")
            .map(|l| {
                let replicas = l["spec"]["replicas"].as_i64();
                (name(l).to_owned(), replicas_owners(l), replicas)
            })
            .collect();
        let d = self.pass(policy, rendered, command, now).expect("pass");
        for applied in d.objects.iter().filter(|o| kind(o) == "Deployment") {
            let slot = name(applied);
            let prior = before.iter().find(|(n, ..)| n == slot);
            let ((mut ours, mut others), count) =
                prior.map_or(((false, false), None), |p| (p.1, p.2));
            let live = self.deployment_mut(slot);
            let forced = crate::manifest::annotation(applied, crate::manifest::ANNOTATION_FORCE)
                == Some("true");
            if let Some(n) = applied["spec"]["replicas"].as_i64() {
                assert!(
                    forced || !others || count == Some(n),
                    "conflict: gitsync applies {slot} spec.replicas {n}, which \
                     {HPA_MANAGER} set to {count:?}"
                );
                // A forced apply takes the field from the other managers.
                others &= !forced || count == Some(n);
                ours = true;
            } else {
                if ours && !others {
                    live["spec"]["replicas"] = json!(1);
                }
                ours = false;
            }
            let mut entries = Vec::new();
            if ours {
                entries.push(owns_replicas(crate::manifest::FIELD_MANAGER, "Apply"));
            }
            if others {
                entries.push(owns_replicas(HPA_MANAGER, "Update"));
            }
            live["metadata"]["managedFields"] = json!(entries);
        }
        d
    }

    /// The HPA scales a Deployment to `n` (a new count): the field is the HPA's alone.
    fn hpa_scales(&mut self, deployment: &str, n: i64) {
        let live = self.deployment_mut(deployment);
        assert_ne!(
            live["spec"]["replicas"],
            json!(n),
            "the HPA writes a change"
        );
        live["spec"]["replicas"] = json!(n);
        live["metadata"]["managedFields"] = json!([owns_replicas(HPA_MANAGER, "Update")]);
    }

    fn hpa_target(&self) -> &Value {
        &self.find("HorizontalPodAutoscaler", "web").expect("hpa")["spec"]["scaleTargetRef"]["name"]
    }
}

/// The Deployment a pass applied.
fn applied<'a>(d: &'a Decision, deployment: &str) -> &'a Value {
    d.objects
        .iter()
        .find(|o| kind(o) == "Deployment" && name(o) == deployment)
        .unwrap_or_else(|| panic!("{deployment} not applied"))
}

/// The count a pass applied to a Deployment: `None` when it left it out.
fn applied_replicas(d: &Decision, deployment: &str) -> Option<i64> {
    applied(d, deployment)["spec"]["replicas"].as_i64()
}

#[test]
fn blue_green_leaves_the_hpa_its_count_before_during_and_after_the_switch() {
    let p = policy(BLUE_GREEN);
    let v1 = [deployment("web:1", None), service(), hpa()];
    let mut sim = Sim::default();
    let d = sim.apply(&p, &v1, None, T0);
    assert_eq!(
        applied_replicas(&d, "web-blue"),
        Some(2),
        "the HPA's minimum to start"
    );
    assert_eq!(sim.hpa_target(), "web-blue");
    sim.ready("web-blue");

    // Before: the HPA scales the active slot; gitsync applies no count over it.
    sim.hpa_scales("web-blue", 5);
    let d = sim.apply(&p, &v1, None, T0 + 1_000);
    assert_eq!(applied_replicas(&d, "web-blue"), None);
    assert_eq!(sim.replicas("web-blue"), Some(5));

    // During: the new slot comes up at the HPA's count, which gitsync sets (the HPA does
    // not target it), and follows it.
    let v2 = [deployment("web:2", None), service(), hpa()];
    let d = sim.apply(&p, &v2, None, T0 + 2_000);
    assert_eq!(
        (
            applied_replicas(&d, "web-blue"),
            applied_replicas(&d, "web-green")
        ),
        (None, Some(5))
    );
    assert_eq!(sim.hpa_target(), "web-blue");
    sim.hpa_scales("web-blue", 6);
    let d = sim.apply(&p, &v2, None, T0 + 3_000);
    assert_eq!(applied_replicas(&d, "web-green"), Some(6));
    sim.ready("web-green");
    let d = sim.apply(&p, &v2, None, T0 + 4_000);
    assert_eq!(d.waiting, Some(Wait::Promote));

    // The switch: the HPA follows the active slot. gitsync keeps the new slot's count
    // until the HPA takes it (left out now, it would drop to one pod); the old slot
    // keeps the HPA's count through the rollback window.
    let d = sim.apply(&p, &v2, Some(Command::Promote), T0 + 5_000);
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "green");
    assert_eq!(sim.hpa_target(), "web-green");
    assert_eq!(
        (
            applied_replicas(&d, "web-green"),
            applied_replicas(&d, "web-blue")
        ),
        (Some(6), None)
    );
    assert_eq!(
        (sim.replicas("web-green"), sim.replicas("web-blue")),
        (Some(6), Some(6))
    );

    // After: the HPA scales the new active slot; gitsync leaves both counts alone.
    sim.hpa_scales("web-green", 8);
    let d = sim.apply(&p, &v2, None, T0 + 6_000);
    assert_eq!(
        (
            applied_replicas(&d, "web-green"),
            applied_replicas(&d, "web-blue")
        ),
        (None, None)
    );
    assert_eq!(
        (sim.replicas("web-green"), sim.replicas("web-blue")),
        (Some(8), Some(6))
    );

    // The window over: the old slot, whose count is the HPA's, is removed rather than
    // scaled to zero (that would take the field back from the HPA).
    let d = sim.apply(&p, &v2, None, T0 + 35_000);
    assert_eq!((sim.phase(), d.waiting), (Phase::Completed, None));
    assert_eq!(
        d.notes,
        ["web-blue removed (its replica count is the HPA's to set)"]
    );
    assert!(sim.find("Deployment", "web-blue").is_none());
    assert_eq!(
        (sim.image("web-green"), sim.replicas("web-green")),
        ("web:2", Some(8))
    );
    assert_eq!(sim.hpa_target(), "web-green");
    let before = sim.live.clone();
    let d = sim.apply(&p, &v2, None, T0 + 40_000);
    assert_eq!((d.notes.len(), &sim.live), (0, &before));

    // The next revision brings the removed slot back at the HPA's count.
    let v3 = [deployment("web:3", None), service(), hpa()];
    let d = sim.apply(&p, &v3, None, T0 + 41_000);
    assert_eq!(
        (
            applied_replicas(&d, "web-blue"),
            applied_replicas(&d, "web-green")
        ),
        (Some(8), None)
    );
    assert_eq!(sim.image("web-blue"), "web:3");
}

#[test]
fn blue_green_under_an_hpa_that_never_rescaled_keeps_its_counts() {
    // The HPA agrees with the counts gitsync set: the slots stay gitsync's, sized and
    // scaled to zero as without an HPA.
    let p = policy(BLUE_GREEN);
    let mut sim = Sim::default();
    sim.apply(&p, &[deployment("web:1", None), service(), hpa()], None, T0);
    sim.ready("web-blue");
    let v2 = [deployment("web:2", None), service(), hpa()];
    sim.apply(&p, &v2, None, T0 + 1_000);
    sim.ready("web-green");
    let d = sim.apply(&p, &v2, Some(Command::Promote), T0 + 2_000);
    assert_eq!(
        (
            applied_replicas(&d, "web-green"),
            applied_replicas(&d, "web-blue")
        ),
        (Some(2), Some(2))
    );
    let d = sim.apply(&p, &v2, None, T0 + 32_000);
    assert_eq!(d.notes, ["web-blue scaled to zero"]);
    assert_eq!(
        (sim.replicas("web-green"), sim.replicas("web-blue")),
        (Some(2), Some(0))
    );
}

#[test]
fn blue_green_abort_after_the_switch_under_an_hpa_hands_the_count_back() {
    let p = policy(BLUE_GREEN);
    let mut sim = Sim::default();
    sim.apply(&p, &[deployment("web:1", None), service(), hpa()], None, T0);
    sim.ready("web-blue");
    sim.hpa_scales("web-blue", 4);
    let v2 = [deployment("web:2", None), service(), hpa()];
    sim.apply(&p, &v2, None, T0 + 1_000);
    sim.ready("web-green");
    sim.apply(&p, &v2, Some(Command::Promote), T0 + 2_000);
    sim.hpa_scales("web-green", 7);

    let d = sim.apply(&p, &v2, Some(Command::Abort), T0 + 3_000);
    assert_eq!(sim.phase(), Phase::Aborted);
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");
    assert_eq!(sim.hpa_target(), "web-blue");
    assert_eq!(applied_replicas(&d, "web-blue"), None, "the HPA's count");
    assert_eq!(sim.replicas("web-blue"), Some(4));
    assert!(
        sim.find("Deployment", "web-green").is_none(),
        "the slot the HPA scaled is removed, not scaled to zero against it"
    );
}

#[test]
fn blue_green_restarting_after_the_switch_takes_the_old_slots_count_back_from_the_hpa() {
    let p = policy(&format!("  onNewRevision: restart\n{BLUE_GREEN}"));
    let v1 = [deployment("web:1", None), service(), hpa()];
    let mut sim = Sim::default();
    sim.apply(&p, &v1, None, T0);
    sim.ready("web-blue");
    sim.hpa_scales("web-blue", 5);
    let v2 = [deployment("web:2", None), service(), hpa()];
    sim.apply(&p, &v2, None, T0 + 1_000);
    sim.ready("web-green");
    sim.apply(&p, &v2, Some(Command::Promote), T0 + 2_000);
    assert_eq!(sim.hpa_target(), "web-green");
    sim.hpa_scales("web-green", 7);

    // In the rollback window, blue still runs under the count the HPA gave it. A new
    // revision restarts there at full size: the HPA no longer targets blue, so gitsync
    // takes the field back (a forced apply of that one object), not a conflict.
    let v3 = [deployment("web:3", None), service(), hpa()];
    let d = sim.apply(&p, &v3, None, T0 + 3_000);
    let blue = applied(&d, "web-blue");
    assert_eq!(
        crate::manifest::annotation(blue, crate::manifest::ANNOTATION_FORCE),
        Some("true")
    );
    assert_eq!(
        applied_replicas(&d, "web-blue"),
        Some(7),
        "the HPA's count now"
    );
    assert_eq!(sim.image("web-blue"), "web:3");
    assert_eq!(
        replicas_owners(sim.deployment_mut("web-blue")),
        (true, false)
    );
    // The active slot stays the HPA's, and is never forced.
    let green = applied(&d, "web-green");
    assert_eq!(
        crate::manifest::annotation(green, crate::manifest::ANNOTATION_FORCE),
        None
    );
    assert_eq!(sim.hpa_target(), "web-green");
}
