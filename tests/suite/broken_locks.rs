//! Every known-broken lock backend is caught by `oversell explore --expect violation`,
//! fast and (near-)deterministically, and `oversell locks` labels each one broken.
//!
//! Each test picks the schedule that catches its backend best:
//! - `early-release` and `posix-close` under `barrier`: every buyer gets past the broken
//!   lock and reads before any buyer writes, so every trial with two buyers double-sells.
//! - `toctou` under `barrier` with 8 to 16 buyers released together: several buyers test
//!   for the lock file inside one test-to-create gap (every trial in measurement).
//! - `renamed-store` under a controlled `random` schedule with a fixed seed: the barrier
//!   makes every buyer open the store before the first rename, so they all queue on one
//!   inode and the bug never shows; a controlled schedule lets a buyer arrive after a
//!   rename, and the same seed gives the same interleavings every run (deterministic).
//! - `toctou` is the one timing-dependent test: its test-then-create gap lies inside one
//!   acquire step, which no controlled schedule can split; with 8 to 16 buyers at the
//!   barrier every trial measured caught it, and the test needs one of six.

use crate::common;

use std::process::{Command, Output};

fn oversell(args: &[&str]) -> Output {
    let tmp = crate::common::tempdir().expect("tempdir");
    common::oversell(tmp.path(), args)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// Runs `explore --lock LOCK --seed 8 --expect violation --quiet` plus `extra` and
/// asserts that a violation was found.
fn caught(lock: &str, extra: &[&str]) {
    let mut args = vec![
        "explore",
        "--lock",
        lock,
        "--seed",
        "8",
        "--expect",
        "violation",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let out = oversell(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "oversell {args:?} did not catch {lock}\nstdout:\n{}\nstderr:\n{}",
        tail(&out.stdout),
        tail(&out.stderr)
    );
}

#[test]
fn toctou_is_caught_under_barrier() {
    caught(
        "toctou",
        &[
            "--schedule",
            "barrier",
            "--buyers",
            "8..16",
            "--jitter-ms",
            "0.5",
            "--trials",
            "6",
        ],
    );
}

#[test]
fn early_release_is_caught_under_barrier() {
    caught("early-release", &["--schedule", "barrier", "--trials", "3"]);
}

#[test]
fn posix_close_is_caught_under_barrier() {
    caught("posix-close", &["--schedule", "barrier", "--trials", "3"]);
}

#[test]
fn renamed_store_is_caught_under_a_controlled_schedule() {
    // A controlled schedule with a fixed seed runs the same interleavings every time:
    // a buyer that opened the store after a rename locks the new inode while another
    // still holds the old one.
    caught(
        "renamed-store",
        &[
            "--schedule",
            "random",
            "--buyers",
            "2..6",
            "--trials",
            "40",
            "--no-shrink",
        ],
    );
}

/// Without kills a POSIX semaphore is a working mutex, and its name does not outlive
/// the run.
#[test]
fn posix_sem_is_clean_without_kills_and_leaves_no_name() {
    let child = Command::new(env!("CARGO_BIN_EXE_oversell"))
        .args([
            "explore",
            "--lock",
            "posix-sem",
            "--seed",
            "8",
            "--trials",
            "3",
            "--schedule",
            "barrier",
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting oversell: {e}"));
    let owner = child.id();
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for oversell: {e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "posix-sem was not clean\nstdout:\n{}\nstderr:\n{}",
        tail(&out.stdout),
        tail(&out.stderr)
    );
    let prefix = format!("sem.oversell-{owner}-");
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "semaphores left behind: {left:?}");
}

#[test]
fn locks_lists_every_broken_lock_as_broken() {
    let out = oversell(&["locks"]);
    assert_eq!(out.status.code(), Some(0), "{}", tail(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "none",
        "toctou",
        "early-release",
        "posix-close",
        "renamed-store",
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("`oversell locks` does not list {name}:\n{text}"));
        assert!(
            line.contains("broken"),
            "{name} is not marked broken: {line}"
        );
    }
    // Locks left taken by a dead holder share one verdict.
    for name in ["lockfile", "posix-sem"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("`oversell locks` does not list {name}:\n{text}"));
        assert!(
            line.contains("until"),
            "{name} is not sound-until-crash: {line}"
        );
    }
    assert!(
        !text
            .lines()
            .any(|l| l.split_whitespace().next() == Some("user")),
        "`oversell locks` lists the user lock:\n{text}"
    );
}
