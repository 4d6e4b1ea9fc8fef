//! Power loss (`--faults crash=P`): at a step of a controlled trial every buyer dies at
//! once, the store's files are left as a crash may leave them (writes since a file's
//! last fsync lost wholly or in part, a rename not followed by an fsync of its directory
//! undone), and fresh buyers go on from what the disk kept. A sale confirmed before the
//! cut that the store no longer shows is a `lost_sale`.
//!
//! The adversaries: `--store atomic` (rename without fsyncing the directory) and
//! `--store in-place` (no fsync at all) lose sales, found by exhaustive search, where
//! the cut is one more choice at every step; `--store durable` never does, verified by
//! the same search. Tokens carry the cut (`c` in the steps) and replay it exactly.

use crate::common;

use common::{assert_code, text};
use serde_json::Value;
use std::process::Output;

fn oversell(args: &[&str]) -> (Output, tempfile::TempDir) {
    common::oversell_fresh(args, &[])
}

/// `buyers` buyers, 1 ticket, every schedule without preemption and with a power cut at
/// every step (and none); the JSON report.
fn search_of(buyers: &str, store: &str, seed: &str, extra: &[&str]) -> (Output, Value) {
    let dir = crate::common::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let json_s = json.to_string_lossy().into_owned();
    let mut args = vec![
        "explore",
        "--lock",
        "flock",
        "--store",
        store,
        "--faults",
        "crash=1",
        "--schedule",
        "exhaustive",
        "--preemptions",
        "0",
        "--buyers",
        buyers,
        "--tickets",
        "1",
        "--seed",
        seed,
        "--no-explain",
        "--json",
        &json_s,
    ];
    args.extend_from_slice(extra);
    let (out, tmp) = oversell(&args);
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out, report)
}

/// 2 buyers: [`search_of`].
fn search(store: &str, seed: &str, extra: &[&str]) -> (Output, Value) {
    search_of("2", store, seed, extra)
}

fn kinds(report: &Value) -> Vec<String> {
    let mut k: Vec<String> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["kind"].as_str().map(str::to_string))
        .collect();
    k.sort();
    k.dedup();
    k
}

/// The token of the first `replay: oversell replay TOKEN` line.
fn token(out: &Output) -> String {
    let t = text(out);
    t.lines()
        .find_map(|l| l.trim().strip_prefix("replay: oversell replay "))
        .unwrap_or_else(|| panic!("no replay line in:\n{t}"))
        .trim()
        .to_string()
}

#[test]
fn an_atomic_store_loses_a_sale_to_a_power_cut_and_the_token_replays_it_exactly() {
    let (out, report) = search("atomic", "1", &["--keep-going", "--no-shrink"]);
    assert_code(&out, 1, "atomic under power cuts");
    // Only lost sales: the rename is undone whole, never torn.
    assert_eq!(
        kinds(&report),
        vec!["lost_sale".to_string()],
        "{}",
        text(&out)
    );
    let t = text(&out);
    assert!(
        t.contains("lost_sale: buyer 0's sale of ticket 1 was confirmed at step"),
        "{t}"
    );
    assert!(t.contains("after the power cut at step"), "{t}");
    assert!(t.contains("and buyer 2 sold it again"), "{t}");
    assert!(t.contains("the rename over it undone"), "{t}");
    let tok = token(&out);
    // The cut, and the disk state it left (a search runs each: `cK`).
    assert!(tok.contains(".a.z1000.") && tok.contains("-c1-"), "{tok}");
    common::assert_replays_exactly(&tok);
}

#[test]
fn an_in_place_store_loses_a_sale_or_is_torn_by_a_power_cut() {
    let (out, report) = search("in-place", "3", &["--keep-going", "--no-shrink"]);
    assert_code(&out, 1, "in-place under power cuts");
    // A write never fsynced is lost wholly (a lost sale) or in part (a torn store, told
    // as the cut's doing, never a harness error).
    assert_eq!(
        kinds(&report),
        vec!["corrupt_store".to_string(), "lost_sale".to_string()],
        "{}",
        text(&out)
    );
    let t = text(&out);
    assert!(t.contains("the power cut at step"), "{t}");
    assert!(
        t.contains("left the store torn") && t.contains("--store durable is"),
        "{t}"
    );
    assert!(!t.contains("error:"), "{t}");
}

#[test]
fn a_durable_store_is_verified_with_a_power_cut_at_every_step() {
    let dir = crate::common::tempdir().expect("tempdir");
    let (out, _) = search("durable", "1", &[]);
    assert_code(&out, 0, "durable under power cuts");
    let t = text(&out);
    assert!(
        t.contains("verified: all ") && t.contains("a power cut at every step and none"),
        "{t}"
    );
    drop(dir);
    // 2 buyers, 2 tickets, one preemption: the same, a larger search.
    let (out, tmp) = oversell(&[
        "explore",
        "--lock",
        "flock",
        "--store",
        "durable",
        "--faults",
        "crash=0.5",
        "--schedule",
        "exhaustive",
        "--preemptions",
        "1",
        "--buyers",
        "2",
        "--tickets",
        "2",
    ]);
    assert_code(&out, 0, "durable, 2 buyers, 2 tickets");
    let t = text(&out);
    assert!(
        t.contains("verified: all ")
            && t.contains("of 2 buyers, 2 tickets, ≤ 1 preemption, at step granularity, a power cut at every step and none"),
        "{t}"
    );
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

/// The schedules a clean one-buyer search ran, from its verified line.
fn verified_schedules(store: &str) -> u64 {
    let (out, report) = search_of("1", store, "1", &[]);
    assert_code(&out, 0, store);
    assert_eq!(kinds(&report), Vec::<String>::new());
    let t = text(&out);
    let line = t
        .lines()
        .find(|l| l.starts_with("verified: all "))
        .unwrap_or_else(|| panic!("no verified line: {t}"));
    assert!(
        line.ends_with("a power cut at every step and none, each leaving the store's files in every state it could"),
        "{line}"
    );
    line.split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn a_search_runs_every_disk_state_a_cut_may_leave() {
    // One buyer: its sale is never confirmed before a cut that could undo it (nobody is
    // left to run after it records), so nothing is lost either way. A durable store
    // leaves one state at every cut; an atomic one two after its write (the rename kept
    // or undone), and the search runs both: two schedules more.
    let durable = verified_schedules("durable");
    let atomic = verified_schedules("atomic");
    assert_eq!(atomic, durable + 2, "durable {durable}, atomic {atomic}");
}

#[test]
fn pct_finds_a_lost_sale_and_shrinks_it_to_two_buyers() {
    let (out, tmp) = oversell(&[
        "explore",
        "--lock",
        "flock",
        "--store",
        "atomic",
        "--faults",
        "crash=0.3",
        "--schedule",
        "pct",
        "--buyers",
        "2..5",
        "--tickets",
        "1..4",
        "--trials",
        "300",
        "--seed",
        "7",
        "--no-explain",
        "--expect",
        "violation",
    ]);
    assert_code(&out, 0, "pct finds a lost sale");
    let t = text(&out);
    assert!(t.contains("lost_sale: "), "{t}");
    assert!(
        t.contains("to 2 buyers") || t.contains("not shrunk: 2 buyers"),
        "{t}"
    );
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_durable_store_stays_clean_under_pct_with_power_cuts_and_other_faults() {
    let (out, tmp) = oversell(&[
        "explore",
        "--lock",
        "flock",
        "--store",
        "durable",
        "--faults",
        "kill=0.1,stop=0.3:5,crash=0.3",
        "--schedule",
        "pct",
        "--buyers",
        "2..5",
        "--tickets",
        "1..4",
        "--trials",
        "100",
        "--seed",
        "7",
    ]);
    assert_code(&out, 0, "durable under pct");
    assert!(
        text(&out).contains("100 trials, 0 failed"),
        "{}",
        text(&out)
    );
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_crash_fault_that_cannot_be_placed_is_refused_before_any_trial() {
    for (args, says) in [
        (vec!["--faults", "crash=0"], "above 0"),
        (vec!["--faults", "crash=-0.5"], "probability"),
        (vec!["--faults", "crush=0.5"], "unknown fault"),
        (
            vec!["--faults", "crash=0.5", "--schedule", "jitter"],
            "--schedule jitter",
        ),
        (
            vec!["--faults", "crash=0.5", "--schedule", "barrier"],
            "--schedule barrier",
        ),
        (
            vec![
                "--faults",
                "crash=0.5",
                "--schedule",
                "pct",
                "--granularity",
                "syscall",
            ],
            "system-call granularity",
        ),
        (
            vec![
                "--faults",
                "crash=0.5",
                "--schedule",
                "pct",
                "--lock",
                "lockfile",
            ],
            "--lock lockfile",
        ),
    ] {
        let mut all = vec!["explore", "--trials", "3"];
        all.extend_from_slice(&args);
        let (out, tmp) = oversell(&all);
        assert_code(&out, 2, &format!("{args:?}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
    }
}

#[test]
fn a_token_with_a_power_cut_it_cannot_have_is_refused() {
    // A free-running token asking for a cut (checksum correct for the body).
    let (out, _) = oversell(&["replay", "ov1.flock.b2.t1.j5000.r1.sjitter.z1000.c9f62cf"]);
    assert_code(&out, 2, "a cut under jitter");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("power cut"), "{err}");
}

#[test]
fn the_timeline_draws_the_power_cut() {
    let dir = crate::common::tempdir().expect("tempdir");
    let svg = dir.path().join("t.svg");
    let svg_s = svg.to_string_lossy().into_owned();
    let (out, _) = search("atomic", "1", &["--timeline", &svg_s]);
    assert_code(&out, 1, "atomic, drawn");
    let picture = std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(
        picture.contains("<polyline class=\"power-cut\""),
        "{picture}"
    );
    assert!(picture.contains(">power cut (step "), "{picture}");
    // The fresh buyer has a lane of its own, below the trial's two.
    assert!(picture.contains("data-buyer=\"2\""), "{picture}");
}
