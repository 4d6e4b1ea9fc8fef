//! `--store-cmd`: buyer programs that keep their tickets in SQLite, under a controlled
//! schedule at system-call granularity; the store command's count is what the checker
//! compares the claims with.

use std::process::Command;

use crate::common;
use common::{oversell_fresh as oversell, text};
const STORE: &str = "python3 fixtures/stores/sqlite.py {dir} {op} {tickets}";

/// Why these tests cannot run here, if they cannot: no python3 with its sqlite3 module.
fn no_sqlite() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import sqlite3"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Some(format!("python3: {e}")),
    }
}

fn explore(buyer: &str, schedule: &str, trials: &str) -> Vec<String> {
    [
        "explore",
        "--no-explain",
        "--buyer-cmd",
        buyer,
        "--store-cmd",
        STORE,
        "--schedule",
        schedule,
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--trials",
        trials,
        "--seed",
        "1",
        "--no-shrink",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn an_sqlite_buyer_outside_a_transaction_oversells_and_replays() {
    if let Some(why) = no_sqlite() {
        eprintln!("skipped: python3's sqlite3 module is missing ({why})");
        return;
    }
    // The barrier holds each buyer between its SELECT and its UPDATE until both have
    // read: under any schedule both write the same count.
    let args = explore(
        "python3 fixtures/buyers/sqlite_unlocked.py {dir}",
        "random",
        "1",
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, tmp) = oversell(&args, &[("FIXTURE_BARRIER", "2")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("oversold: 2 buyers"), "{}", text(&out));
    // The store command's count (0) is what the claims were compared with.
    assert!(stdout.contains("the final count is 0"), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(tmp.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    let token = stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("replay: "))
        .and_then(|l| l.split_whitespace().last())
        .expect("a replay token")
        .to_string();
    assert!(
        token.contains(".S"),
        "the token carries the store command: {token}"
    );
    let (again, _tmp) = oversell(
        &["replay", "--allow-cmd", &token, "--attempts", "2"],
        &[("FIXTURE_BARRIER", "2")],
    );
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("reproduced in 2 of 2"), "{}", text(&again));
    assert!(
        stdout.contains("identical trace in 2 of 2"),
        "{}",
        text(&again)
    );
}

#[test]
fn an_sqlite_buyer_inside_begin_immediate_stays_clean() {
    if let Some(why) = no_sqlite() {
        eprintln!("skipped: python3's sqlite3 module is missing ({why})");
        return;
    }
    let args = explore(
        "python3 fixtures/buyers/sqlite_locked.py {dir}",
        "random",
        "3",
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, _tmp) = oversell(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 trials, 0 failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_store_command_is_refused_where_it_cannot_run() {
    for (args, says) in [
        (
            vec![
                "--buyer-cmd",
                "python3 b.py {dir}",
                "--store-cmd",
                "s {dir}",
            ],
            "has no {op}",
        ),
        (
            vec!["--buyer-cmd", "python3 b.py {dir}", "--store-cmd", STORE],
            "--schedule jitter",
        ),
        (
            vec!["--lock", "flock", "--store-cmd", STORE],
            "without --buyer-cmd",
        ),
    ] {
        let mut full = vec!["explore"];
        full.extend(args);
        let (out, _tmp) = oversell(&full, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{}", text(&out));
        assert_eq!(stderr.trim().lines().count(), 1, "{}", text(&out));
    }
}
