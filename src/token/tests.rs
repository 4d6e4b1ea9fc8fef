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
            t.target = Target::LockCmd("flock {dir}/l {} # it's".into());
        }
        if i % 5 == 4 {
            t.target = Target::BuyerCmd {
                cmd: "python3 'a b.py' {store}".into(),
                store_cmd: (i % 10 == 4).then(|| "sh s.sh {dir} {op} {tickets}".into()),
            };
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
        "ov1.flock.b2.t1.j5000.rd0c0a0496dfe826.spct2.p1x4-0x2-1x2-0x4-1.ca1f218",
        "ov1.flock.b8.t2.j5000.r5d90d27a47a435e5.sjitter.ca3255c",
        "ov1.flock.b2.t1.j0.r8.sexhaustive0.a.k500.p0x2-1x6.c302214",
        "ov1.flock.b2.t1.j0.r25.sexhaustive0.k500.p0x4-1x5.c073f3f",
        "ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8",
        "ov1.lockfile.b3.t2.j1000.r1f.sjitter.k250.x100-40.c504a13",
    ] {
        let t = Trial::from_token(token).expect(token);
        assert!(t.found.is_empty(), "{token}");
        assert_eq!(t.token(), token);
    }
}

#[test]
fn found_kinds_are_a_field_before_the_checksum() {
    let mut t = Trial::from_token(&sign("ov1.none.b2.t1.j0.r1.sbarrier")).expect("decodes");
    t.found = vec![
        FindingKind::DoubleSale,
        FindingKind::Oversold,
        FindingKind::Oversold,
    ];
    assert_eq!(
        t.token(),
        sign("ov1.none.b2.t1.j0.r1.sbarrier.foversold+double_sale")
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
        let e = Trial::from_token(&sign(bad)).expect_err(bad);
        assert!(!e.why.contains("checksum"), "{bad}: {e}");
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
        // Signed, so that what is refused is the field, not the checksum.
        let e = Trial::from_token(&sign(bad)).expect_err(bad);
        assert!(!e.why.is_empty());
        assert!(!e.why.contains("checksum"), "{bad}: {e}");
    }
}

#[test]
fn a_token_lacking_a_field_names_it() {
    let e = Trial::from_token(&sign("ov1.none.b2.t1")).expect_err("no jitter");
    assert!(
        e.why.contains("jitter") && e.why.contains("b, t, j, r and s"),
        "{e}"
    );
    let e = Trial::from_token(&sign("ov1")).expect_err("no lock");
    assert!(e.why.contains("no lock"), "{e}");
}

#[test]
fn the_checksum_is_fnv_1a_64() {
    // The published test vectors of the 64-bit FNV-1a hash.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    // Its top 24 bits, as 6 hex digits, after everything before it.
    assert_eq!(checksum(""), "cbf29c");
    assert_eq!(
        Trial::from_token(EXAMPLE)
            .expect("the example decodes")
            .token(),
        EXAMPLE
    );
    assert!(EXAMPLE.ends_with(".c5b03a9"), "{EXAMPLE}");
}

const CHANGED: &str = "its checksum does not match: a character was changed or the token was cut; copy it whole from the report";

/// A token with every optional field, as a finding prints it.
fn full_token() -> String {
    let mut t = Trial::from_token(&sign(
        "ov1.none.b2.t1.j5000.rd0c0a0496dfe826.spct2.p0x3-1x7-0x4",
    ))
    .expect("decodes");
    t.faults.kill = 0.25;
    t.store = StoreMode::Atomic;
    t.found = vec![FindingKind::Oversold, FindingKind::Overlap];
    t.token()
}

#[test]
fn a_token_cut_anywhere_is_refused_for_its_checksum() {
    let token = full_token();
    for n in 1..token.len() {
        let cut = &token[..n];
        let e = Trial::from_token(cut).expect_err(cut);
        if n < PREFIX.len() {
            assert!(e.why.contains("does not start with"), "{cut}: {e}");
            continue;
        }
        assert!(e.why.contains("checksum"), "{cut}: {e}");
        assert!(e.why.contains("copy it whole"), "{cut}: {e}");
    }
    // Cut by one character, the checksum no longer matches.
    let e = Trial::from_token(&token[..token.len() - 1]).expect_err("cut");
    assert_eq!(e.why, CHANGED);
}

#[test]
fn a_token_with_one_character_changed_is_refused() {
    let token = full_token();
    let alphabet = "0123456789abcdefghijklmnopqrstuvwxyz.+-_";
    let mut tried = 0;
    for (i, old) in token.char_indices() {
        for new in alphabet.chars().filter(|&c| c != old) {
            let mut changed = token.clone();
            changed.replace_range(i..i + old.len_utf8(), new.encode_utf8(&mut [0; 4]));
            if changed.starts_with("ov1.") {
                let e = Trial::from_token(&changed).expect_err(&changed);
                assert!(e.why.contains("checksum"), "{changed}: {e}");
                tried += 1;
            }
        }
    }
    assert!(tried > 1000, "{tried}");
}

#[test]
fn a_token_without_its_checksum_says_so() {
    let e = Trial::from_token("ov1.none.b2.t1.j0.r1.sbarrier").expect_err("unsigned");
    assert!(e.why.starts_with("it has no checksum"), "{e}");
    assert!(e.why.contains("copy it whole from the report"), "{e}");
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
    // A checksum field with the wrong number of digits matches nothing.
    let signed = sign("ov1.none.b2.t1.j0.r1.sbarrier");
    let e = Trial::from_token(&format!("{signed}0")).expect_err("7 digits");
    assert_eq!(e.why, CHANGED);
    // The checksum covers the whole token: the same one under another lock is refused.
    let moved = signed.replacen(".none.", ".flock.", 1);
    assert_eq!(Trial::from_token(&moved).expect_err("moved").why, CHANGED);
}

fn refused(token: &str, says: &str) {
    let e = Trial::from_token(&sign(token)).expect_err(token);
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
    let t = Trial::from_token(&sign(&format!("{base}.spct2.p0x999999-1"))).expect("at the limit");
    assert_eq!(t.choices.map(|c| c.len()), Some(crate::limits::MAX_STEPS));
    let t =
        Trial::from_token(&sign(&format!("{base}.sjitter.k1000.x1000-60000"))).expect("max faults");
    assert_eq!((t.faults.kill, t.faults.stop_ms), (1.0, 60_000));
}

#[test]
fn a_power_cut_and_the_durable_store_round_trip() {
    let mut t = Trial::new(LockKind::Flock, 2, 1);
    t.schedule = Schedule::Exhaustive { preemptions: 0 };
    t.store = StoreMode::Durable;
    t.faults.crash = 0.3;
    t.choices = Some(vec![0, 0, crate::token::CRASH_CHOICE, 2, 2]);
    let tok = t.token();
    assert!(tok.contains(".d.z300.p0x2-c-2x2."), "{tok}");
    assert_eq!(Trial::from_token(&tok).expect("decodes"), t);
    // A token without the new fields reads as it always did.
    let old = "ov1.none.b3.t1.j5000.r2a.sjitter.c5b03a9";
    let o = Trial::from_token(old).expect("decodes");
    assert_eq!((o.faults.crash, o.store), (0.0, StoreMode::InPlace));
    assert_eq!(o.token(), old);
}

#[test]
fn a_power_cut_the_trial_cannot_have_is_refused() {
    let mut t = Trial::new(LockKind::Flock, 2, 1);
    t.schedule = Schedule::Random;
    t.faults.crash = 0.5;
    t.choices = Some(vec![
        0,
        crate::token::CRASH_CHOICE,
        crate::token::CRASH_CHOICE,
    ]);
    let twice = Trial::from_token(&t.token()).expect_err("two cuts");
    assert!(twice.why.contains("twice"), "{twice}");
    t.choices = Some(vec![0, crate::token::CRASH_CHOICE]);
    t.faults.crash = 0.0;
    let none = Trial::from_token(&t.token()).expect_err("a cut without the fault");
    assert!(none.why.contains("no crash fault"), "{none}");
    t.faults.crash = 0.5;
    t.target = Target::lock(LockKind::Lockfile);
    let lockfile = Trial::from_token(&t.token()).expect_err("a lock the cut cannot have");
    assert!(lockfile.why.contains("--lock lockfile"), "{lockfile}");
}

#[test]
fn a_power_cut_in_a_disk_state_round_trips() {
    let mut t = Trial::new(LockKind::Flock, 2, 1);
    t.schedule = Schedule::Exhaustive { preemptions: 0 };
    t.faults.crash = 1.0;
    t.choices = Some(vec![0, crate::token::crash_in_state(3), 2]);
    let tok = t.token();
    assert!(tok.contains(".p0-c3-2."), "{tok}");
    assert_eq!(Trial::from_token(&tok).expect("decodes"), t);
    for bad in ["c64", "c03", "cx"] {
        let mut parts: Vec<&str> = tok.split('.').collect();
        let p = parts
            .iter()
            .position(|p| p.starts_with('p'))
            .expect("steps");
        let steps = format!("p0-{bad}-2");
        parts[p] = &steps;
        let body = parts[..parts.len() - 1].join(".");
        // Re-signed, so only the step is wrong.
        let signed = format!("{body}.c{}", super::checksum(&body));
        let e = Trial::from_token(&signed).expect_err(bad);
        assert!(e.why.contains("power cut"), "{bad}: {e}");
    }
}

#[test]
fn a_malformed_fault_field_is_refused_by_its_name() {
    let base = "ov1.none.b2.t1.j0.r1.sjitter";
    refused(&format!("{base}.x5"), "'x5' is not a stop fault (P-MS)");
    refused(&format!("{base}.xa-5"), "'xa-5' is not a stop fault");
    refused(
        &format!("{base}.e5-EBOGUS"),
        "'e5-EBOGUS' is not an errno fault",
    );
    refused(&format!("{base}.q5"), "'q5' is not a skew fault");
    refused(&format!("{base}.y5-x"), "'y5-x' is not a jump fault");
    // A stop's milliseconds are read before its rate is judged; an errno's rate before
    // its name.
    refused(
        &format!("{base}.x7000-abc"),
        "'x7000-abc' is not a stop fault",
    );
    refused(&format!("{base}.e7000-EBOGUS"), "7000");
}

#[test]
fn a_token_that_names_what_means_nothing_is_refused() {
    // Hand-made tokens, signed as the encoder signs: each pairs parts no trial can have.
    let lock = command_part('L', "flock {dir}/l {}");
    let buyer = command_part('B', "python3 b.py {store}");
    let store = command_part('S', "sh s.sh {op} {tickets}");
    for (body, why) in [
        (
            format!("ov1.flock.b2.t1.j0.r1.sjitter.{lock}"),
            "beside a command",
        ),
        (
            format!("ov1.none.b2.t1.j0.r1.sjitter.g.{lock}"),
            "system-call granularity",
        ),
        (
            format!("ov1.none.b2.t1.j0.r1.sjitter.{lock}.{buyer}"),
            "two commands",
        ),
        (
            format!("ov1.none.b2.t1.j0.r1.sjitter.{store}"),
            "without a buyer program",
        ),
        (
            format!("ov1.none.b2.t1.j0.r1.sjitter.{lock}.{store}"),
            "only a buyer program",
        ),
    ] {
        let err = Trial::from_token(&sign(&body)).expect_err(&body);
        assert!(err.why.contains(why), "{body}: {err}");
    }
    // The same parts, alone where they belong, decode.
    let ok = sign(&format!("ov1.none.b2.t1.j0.r1.sjitter.{buyer}.{store}"));
    let t = Trial::from_token(&ok).expect("a buyer program and its store command");
    assert_eq!(t.target.store_cmd(), Some("sh s.sh {op} {tickets}"));
    assert_eq!(t.token(), ok);
}
