//! Pauses under a controlled schedule, placed by construction: a seed whose fault plan
//! stops buyer 0 inside its critical section (at `read`) and spares buyer 1, under a
//! non-preemptive schedule (buyer 0 runs until it is frozen, then buyer 1). The lease of
//! the `lease` backends is 500 ms: a 700 ms stop outlives it, a 100 ms stop ends inside
//! it. A kill of a lease holder is no stale lock: its lease expires and buyer 1 takes
//! over.

use crate::common;

use oversell::testing::{Checked, HarnessConfig, Point, Runner, StoreMode};
use oversell::{FindingKind, LockKind, Schedule, Trial};

use common::BIN;

/// Two buyers, one ticket, buyer 0 stopped for `ms` at `read` (holding the lock).
pub fn stop_buyer0_holding(lock: LockKind, ms: u32) -> Trial {
    let mut t = Trial::new(lock, 2, 1);
    t.schedule = Schedule::Exhaustive { preemptions: 0 };
    t.store = StoreMode::Atomic;
    t.faults.stop = 0.5;
    t.faults.stop_ms = ms;
    for seed in 0..100_000u64 {
        t.seed = seed;
        if t.fault_plan(0).stop_at == Some((Point::Read, ms)) && t.fault_plan(1).stop_at.is_none() {
            return t;
        }
    }
    panic!("no seed stops buyer 0 at read");
}

fn kinds(c: &Checked) -> Vec<FindingKind> {
    c.violations.iter().map(|v| v.kind).collect()
}

fn run(t: &Trial) -> Checked {
    let h = HarnessConfig::new(BIN);
    Runner::new(&h).run(t, None).expect("run")
}

#[test]
fn a_lease_holder_frozen_past_its_lease_is_an_overlap_naming_the_pause() {
    let t = stop_buyer0_holding(LockKind::Lease, 700);
    let c = run(&t);
    let ks = kinds(&c);
    assert!(ks.contains(&FindingKind::Overlap), "{:?}", c.violations);
    let overlap = c
        .violations
        .iter()
        .find(|v| v.kind == FindingKind::Overlap)
        .expect("overlap");
    assert!(
        overlap
            .detail
            .contains("buyer 0 was frozen for 700 ms while holding, past its lease of 500 ms"),
        "{}",
        overlap.detail
    );
    // The token replays the same trace.
    let again = run(&Trial::from_token(&c.trial.token()).expect("token"));
    assert_eq!(again.run.history.trace(), c.run.history.trace());
}

#[test]
fn fencing_refuses_the_frozen_holder() {
    let c = run(&stop_buyer0_holding(LockKind::LeaseFenced, 700));
    assert!(c.violations.is_empty(), "{:?}", c.violations);
    let trace = c.run.history.trace();
    assert!(
        trace.iter().any(|l| l == "buyer 0 error fenced"),
        "{trace:#?}"
    );
}

/// `stop=P:100` with the 500 ms lease: the pause ends inside the lease, so nobody takes
/// it over and there is no false finding.
#[test]
fn a_pause_inside_the_lease_is_no_finding() {
    for lock in [LockKind::Lease, LockKind::LeaseFenced] {
        let c = run(&stop_buyer0_holding(lock, 100));
        assert!(c.violations.is_empty(), "{lock}: {:?}", c.violations);
        let trace = c.run.history.trace();
        assert!(
            trace
                .iter()
                .any(|l| l == "buyer 0 stopped lease=500,pause=100"),
            "{trace:#?}"
        );
    }
}

#[test]
fn a_killed_lease_holder_is_taken_over_not_a_stale_lock() {
    for lock in [LockKind::Lease, LockKind::LeaseFenced] {
        let mut t = Trial::new(lock, 2, 1);
        t.schedule = Schedule::Exhaustive { preemptions: 0 };
        t.store = StoreMode::Atomic;
        t.faults.kill = 0.5;
        for seed in 0..100_000u64 {
            t.seed = seed;
            if t.fault_plan(0).kill_at == Some(Point::Read) && t.fault_plan(1).kill_at.is_none() {
                break;
            }
        }
        assert_eq!(
            t.fault_plan(0).kill_at,
            Some(Point::Read),
            "a seed kills buyer 0"
        );
        let c = run(&t);
        assert!(c.violations.is_empty(), "{lock}: {:?}", c.violations);
        let trace = c.run.history.trace();
        assert!(trace.iter().any(|l| l == "buyer 1 bought 1"), "{trace:#?}");
    }
}

#[test]
fn the_timeline_draws_a_frozen_bar_on_the_holders_lane() {
    use oversell::testing::{timeline_marks, timeline_svg, Axis, TimelineInput};
    let c = run(&stop_buyer0_holding(LockKind::Lease, 700));
    let svg = timeline_svg(&TimelineInput {
        title: "lease frozen past its lease".to_string(),
        buyers: 2,
        history: &c.run.history,
        findings: timeline_marks(&c.violations),
        axis: Axis::Steps,
        race: None,
    });
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses");
    let frozen: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("frozen"))
        .collect();
    assert_eq!(frozen.len(), 1, "{svg}");
    let lane = frozen[0].parent().expect("lane");
    assert_eq!(lane.attribute("data-buyer"), Some("0"));
    let title = frozen[0]
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .expect("title");
    assert!(
        title.contains("holding the lock") && title.contains("(lease=500,pause=700)"),
        "{title}"
    );
    let width: f64 = frozen[0]
        .attribute("width")
        .and_then(|w| w.parse().ok())
        .expect("width");
    // It spans buyer 1's whole turn (6 steps), not a sliver.
    assert!(width > 20.0, "{width}");
}

/// A frozen lease holder's pause passes on the trial's virtual clock, not the wall's: the
/// session's `lease.clock` has moved by the lease and its margin, and the verdict and
/// trace are those of real time (the overlap above, replayed identically).
#[test]
fn a_pause_moves_the_lease_clock_instead_of_the_wall_clock() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let h = HarnessConfig::new(BIN).with_keep(Some(tmp.path().to_path_buf()));
    let t = stop_buyer0_holding(LockKind::Lease, 60_000);
    let c = Runner::new(&h).run(&t, None).expect("run");
    assert!(
        kinds(&c).contains(&FindingKind::Overlap),
        "{:?}",
        c.violations
    );
    let kept = c.run.kept.as_ref().expect("the trial's directory was kept");
    let clock = std::fs::read_to_string(kept.join("lease.clock")).expect("lease.clock");
    let moved: u64 = clock.trim().parse().expect("nanoseconds");
    assert!(moved >= 500_000_000, "the clock moved {moved} ns");
    // Not the whole minute: only what the lease needs to run out.
    assert!(moved < 60_000_000_000, "the clock moved {moved} ns");
}
