use super::*;
use crate::scenario::TrialSpace;

#[test]
fn tokens_round_trip() {
    let space = TrialSpace::new(LockKind::Flock);
    for i in 0..50 {
        let mut t = space.trial(99, i);
        if i % 3 == 0 {
            t.schedule = Schedule::Barrier;
            t.store = StoreMode::Atomic;
            t.faults.kill = 0.3;
            t.faults.stop = 0.25;
            t.faults.stop_ms = 40;
        }
        if i % 5 == 2 {
            t.external = Some(External::LockCmd("flock {dir}/l {} # it's".into()));
        }
        if i % 5 == 4 {
            t.external = Some(External::BuyerCmd("python3 'a b.py' {store}".into()));
        }
        if i % 3 == 1 {
            t.schedule = Schedule::Pct { depth: 3 };
            t.choices = Some(vec![0, 0, 0, 1, 0, 1, 1]);
        }
        if i % 4 == 1 {
            t.found = vec![FindingKind::Oversold, FindingKind::DoubleSale];
        }
        let back = Trial::from_token(&t.token()).expect("own token decodes");
        assert_eq!(back, t);
    }
}

#[test]
fn saved_tokens_print_identically() {
    // Tokens as the fixtures and snapshots hold them.
    for token in [
        "ov1.flock.b2.t1.j5000.rd0c0a0496dfe826.spct2.p1x4-0x2-1x2-0x4-1",
        "ov1.flock.b8.t2.j5000.r5d90d27a47a435e5.sjitter",
        "ov1.flock.b2.t1.j0.r8.sexhaustive0.a.k500.p0x2-1x6",
        "ov1.flock.b2.t1.j0.r25.sexhaustive0.k500.p0x4-1x5",
        "ov1.none.b2.t1.j0.r1.sbarrier",
        "ov1.lockfile.b3.t2.j1000.r1f.sjitter.k250.x100-40",
    ] {
        let t = Trial::from_token(token).expect(token);
        assert!(t.found.is_empty(), "{token}");
        assert_eq!(t.token(), token);
    }
}

#[test]
fn found_kinds_are_a_trailing_field() {
    let mut t = Trial::from_token("ov1.none.b2.t1.j0.r1.sbarrier").expect("decodes");
    t.found = vec![
        FindingKind::DoubleSale,
        FindingKind::Oversold,
        FindingKind::Oversold,
    ];
    assert_eq!(
        t.token(),
        "ov1.none.b2.t1.j0.r1.sbarrier.foversold+double_sale"
    );
    let back = Trial::from_token(&t.token()).expect("decodes");
    assert_eq!(
        back.found,
        vec![FindingKind::Oversold, FindingKind::DoubleSale]
    );
    for bad in [
        "ov1.none.b2.t1.j0.r1.sbarrier.f",
        "ov1.none.b2.t1.j0.r1.sbarrier.foversold+nothing",
        "ov1.none.b2.t1.j0.r1.sbarrier.foversold.fhang",
    ] {
        assert!(Trial::from_token(bad).is_err(), "{bad}");
    }
}

#[test]
fn choices_round_trip() {
    for c in [vec![], vec![0], vec![0, 0, 0, 1, 1, 0, 12, 12]] {
        assert_eq!(decode_choices(&encode_choices(&c)), Some(c));
    }
    assert_eq!(encode_choices(&[0, 0, 0, 1, 1, 0]), "0x3-1x2-0");
    assert_eq!(decode_choices("0x0"), None);
    assert_eq!(decode_choices("a"), None);
}

#[test]
fn bad_tokens_say_why() {
    for bad in [
        "",
        "ov2.none.b1.t1",
        "ov1.nolock.b1.t1",
        "ov1.none.t1",
        "ov1.none.b1.t1.q9",
        "ov1.none.b0.t1.j0.r1.sjitter",
        "ov1.none.b2.t1.j0.r1.sjitter.p0-1",
        "ov1.none.b2.t1.j0.r1.spct2.p0-2",
        "ov1.none.b2.t1.j0.r1.sjitter.LAB.B41",
        "ov1.none.b2.b3.t1.j0.r1.sjitter",
    ] {
        let e = Trial::from_token(bad).expect_err(bad);
        assert!(!e.why.is_empty());
    }
}

#[test]
fn truncated_tokens_are_refused() {
    let full = "ov1.none.b2.t1.j0.r1.sbarrier";
    let fields: Vec<&str> = full.split('.').collect();
    // Every prefix shorter than the whole token lacks a required field.
    for n in 1..fields.len() {
        let cut = fields[..n].join(".");
        let e = Trial::from_token(&cut).expect_err(&cut);
        assert!(
            e.why.contains("lack") || e.why.contains("no lock"),
            "{cut}: {e}"
        );
    }
    let e = Trial::from_token("ov1.none.b2.t1").expect_err("truncated");
    assert!(
        e.why.contains("jitter") && e.why.contains("b, t, j, r and s"),
        "{e}"
    );
}

fn refused(token: &str, says: &str) {
    let e = Trial::from_token(token).expect_err(token);
    assert!(e.to_string().contains(says), "{token}: {e}");
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
}

#[test]
fn tokens_past_the_limits_are_refused_before_allocating() {
    let base = "ov1.none.b2.t1.j0.r1";
    // 10^12 steps, in one run and in many; checked before a single step is expanded.
    refused(
        &format!("{base}.sexhaustive2.p0x1000000000000"),
        "1000000000000 steps",
    );
    refused(
        &format!("{base}.sexhaustive2.p0x0x1000000000000"),
        "step run",
    );
    refused(&format!("{base}.spct2.p0x1000000000000-1x5"), "steps");
    refused(&format!("{base}.spct2.p0x999999-1x2"), "1000001 steps");
    refused(&format!("{base}.spct2.p0x99999999999999999999999"), "steps");
    refused(&format!("{base}.sjitter.x500-1000000000"), "1000000000 ms");
    refused(&format!("{base}.sjitter.k7000"), "7000");
    refused(&format!("{base}.sjitter.x7000-10"), "7000");
    refused("ov1.none.b257.t1.j0.r1.sjitter", "257 buyers");
    refused("ov1.none.b2.t1000001.j0.r1.sjitter", "1000001 tickets");
    refused("ov1.none.b2.t1.j10000001.r1.sjitter", "10000001");
    refused(&format!("{base}.spct11"), "depth of 11");
    refused(&format!("{base}.sexhaustive99"), "preemption bound of 99");
    // At the limits, accepted.
    let t = Trial::from_token(&format!("{base}.spct2.p0x999999-1")).expect("at the limit");
    assert_eq!(t.choices.map(|c| c.len()), Some(crate::limits::MAX_STEPS));
    let t = Trial::from_token(&format!("{base}.sjitter.k1000.x1000-60000")).expect("max faults");
    assert_eq!((t.faults.kill, t.faults.stop_ms), (1.0, 60_000));
}
