//! The regression gate: the committed fixtures keep their verdicts, and a change, a bad
//! line or an empty directory is reported naming where.

use crate::common;

use oversell::testing::{load_gate, run_gate, Expect, GateError, GateReport, HarnessConfig};
use oversell::FindingKind;
use std::path::{Path, PathBuf};

use common::BIN;

/// The none race `explore --lock none --schedule pct --trials 20 --seed 3` finds.
const NONE_RACE: &str = "ov1.none.b2.t1.j5000.rd0c0a0496dfe826.spct2.p0x3-1x7-0x4.c41d29e";

fn harness() -> HarnessConfig {
    HarnessConfig::new(BIN)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/regressions")
}

fn run(dir: &Path) -> GateReport {
    let mut seen = 0;
    let report = run_gate(dir, &harness(), 2, 1, &mut |_| seen += 1).expect("gate runs");
    assert_eq!(seen, report.outcomes.len(), "`each` sees every outcome");
    report
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a gate file");
}

#[test]
fn the_committed_fixtures_keep_their_verdicts() {
    let report = run(&fixtures());
    // Shown with `--nocapture`: what each entry found.
    eprintln!("{}\n{}", report.lines().join("\n"), report.summary());
    assert!(report.passed(), "{}", report.lines().join("\n"));
    assert!(report.changed().is_empty());
    assert_eq!(report.lines().len(), report.outcomes.len());
    assert!(report.lines().iter().all(|l| l.starts_with("ok ")));
    // The fixtures cover the lesson, sound locks, broken locks and faults.
    let expects: Vec<Expect> = report.outcomes.iter().map(|o| o.entry.expect).collect();
    for kind in [
        FindingKind::Oversold,
        FindingKind::DoubleSale,
        FindingKind::Overlap,
        FindingKind::StaleLock,
        FindingKind::CorruptStore,
        FindingKind::LostSale,
    ] {
        assert!(expects.contains(&Expect::Kind(kind)), "no {kind} entry");
    }
    assert!(expects.contains(&Expect::Clean));
}

#[test]
fn a_flipped_verdict_is_changed_naming_file_and_line() {
    let dir = crate::common::tempdir().expect("tempdir");
    write(
        dir.path(),
        "flipped.gate",
        &format!(
            "# the none race, wrongly said to be clean\nclean {NONE_RACE}  # flipped\n\
             oversold {NONE_RACE}\n\
             clean ov1.none.b8.t2.j5000.r5d90d27a47a435e5.sjitter.cff694f\n"
        ),
    );
    let report = run(dir.path());
    assert!(!report.passed());
    let changed = report.changed();
    let places: Vec<usize> = changed.iter().map(|o| o.entry.line).collect();
    assert_eq!(places, vec![2, 4], "{}", report.lines().join("\n"));
    let first = &changed[0];
    assert!(first.found.contains(&FindingKind::Oversold));
    assert_eq!(first.reproduced, 0);
    let line = &report.lines()[0];
    assert!(line.starts_with("CHANGED clean"), "{line}");
    assert!(
        line.contains("flipped.gate:2: expected clean, got oversold"),
        "{line}"
    );
    assert!(line.ends_with("# flipped"), "{line}");
    assert!(report.lines()[1].starts_with("ok "));
    assert!(report.summary().contains("3 entries, 1 kept, 2 changed"));
}

#[test]
fn a_token_that_no_longer_fits_the_program_is_changed() {
    let dir = crate::common::tempdir().expect("tempdir");
    // The none race's steps under flock: buyer 1 cannot take the lock buyer 0 holds.
    let mut trial = oversell::Trial::from_token(NONE_RACE).expect("decodes");
    trial.target = oversell::Target::lock(oversell::LockKind::Flock);
    let token = trial.token();
    write(dir.path(), "moved.txt", &format!("clean {token}\n"));
    let report = run(dir.path());
    let changed = report.changed();
    assert_eq!(changed.len(), 1);
    assert!(
        changed[0].message.contains("no longer fits the program"),
        "{}",
        changed[0].message
    );
}

#[test]
fn a_bad_line_is_a_parse_error_naming_file_and_line() {
    let dir = crate::common::tempdir().expect("tempdir");
    write(dir.path(), "a.gate", &format!("oversold {NONE_RACE}\n"));
    write(dir.path(), "b.gate", &format!("\n\nsold {NONE_RACE}\n"));
    let err = load_gate(dir.path()).expect_err("bad verdict");
    let msg = err.to_string();
    assert!(matches!(err, GateError::Parse { line: 3, .. }), "{msg}");
    assert!(msg.contains("b.gate:3: 'sold ov1."), "{msg}");
    assert!(
        msg.contains("accepted: clean, violation, or a finding kind"),
        "{msg}"
    );

    write(dir.path(), "b.gate", "clean ov1.none.b2\n");
    let err = load_gate(dir.path()).expect_err("bad token");
    assert!(matches!(err, GateError::BadToken { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("b.gate:1: bad token"), "{err}");
}

#[test]
fn an_empty_gate_is_an_error() {
    let dir = crate::common::tempdir().expect("tempdir");
    let err = load_gate(dir.path()).expect_err("empty");
    assert!(matches!(err, GateError::Empty { .. }), "{err}");
    // Comments, a README and other files hold no entries.
    write(
        dir.path(),
        "README.md",
        "clean ov1.flock.b2.t1.j0.r1.sjitter.c463bfd\n",
    );
    write(dir.path(), "notes.gate", "# nothing yet\n\n");
    let err = load_gate(dir.path()).expect_err("still empty");
    assert!(matches!(err, GateError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("no gate entries"), "{err}");
    let missing = dir.path().join("missing");
    let err = load_gate(&missing).expect_err("missing");
    assert!(matches!(err, GateError::Io { .. }), "{err}");
}

#[test]
fn a_different_finding_is_changed_and_named() {
    let dir = crate::common::tempdir().expect("tempdir");
    // The none race oversells; it never tears the store.
    write(
        dir.path(),
        "other.gate",
        &format!("corrupt_store {NONE_RACE}  # wrong kind\n"),
    );
    let report = run(dir.path());
    let changed = report.changed();
    assert_eq!(changed.len(), 1, "{}", report.lines().join("\n"));
    assert_eq!(changed[0].reproduced, 0);
    assert!(
        changed[0]
            .message
            .contains("expected corrupt_store, got a different finding: oversold"),
        "{}",
        changed[0].message
    );
}
