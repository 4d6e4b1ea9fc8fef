//! `--jobs`, `--shard` under exhaustive, `merge` across shards and `--checkpoint`: what a
//! run reports does not depend on how it was spread.

use crate::common;

use common::{assert_code, oversell, text};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The report's JSON without its wall time.
fn json_without_time(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("report written");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("report is JSON");
    if let Some(o) = v.as_object_mut() {
        o.remove("elapsed_ms");
    }
    v
}

/// Stdout without the summary line, which carries the run's time.
fn lines_without_time(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(" s (lock "))
        .filter(|l| !l.starts_with("wrote "))
        .map(str::to_string)
        .collect()
}

#[test]
fn one_job_or_eight_give_the_same_findings_and_tokens() {
    let tmp = crate::common::tempdir().expect("tempdir");
    for stop in [true, false] {
        let mut seen = Vec::new();
        for jobs in ["1", "8"] {
            let json = tmp.path().join(format!("r{jobs}.json"));
            let mut args = vec![
                "explore",
                "--lock",
                "none",
                "--schedule",
                "pct",
                "--buyers",
                "2..5",
                "--tickets",
                "1..3",
                "--trials",
                "40",
                "--seed",
                "3",
                "--jobs",
                jobs,
                "--json",
            ];
            args.push(json.to_str().expect("utf-8"));
            if !stop {
                args.push("--keep-going");
            }
            let out = oversell(tmp.path(), &args);
            assert_code(&out, 1, "the lock none race is found");
            seen.push((lines_without_time(&out), json_without_time(&json)));
        }
        assert_eq!(
            seen[0], seen[1],
            "--jobs 1 and --jobs 8 differ (stop: {stop})"
        );
        let findings = seen[0].1["findings"].as_array().map_or(0, Vec::len);
        assert!(findings > 0, "no finding to compare");
        if !stop {
            assert!(
                seen[0].1["trials_failed"].as_u64() > Some(1),
                "keep-going should fail in many trials: {:?}",
                seen[0].1["trials_failed"]
            );
        }
    }
}

/// The `verified…` line of a run.
fn verified(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("verified"))
        .unwrap_or_else(|| panic!("no verified line\n{}", text(out)))
        .to_string()
}

const SEARCH: &[&str] = &[
    "explore",
    "--lock",
    "flock",
    "--schedule",
    "exhaustive",
    "--buyers",
    "3",
    "--tickets",
    "2",
    "--preemptions",
    "2",
    "--seed",
    "1",
];

fn search(tmp: &std::path::Path, more: &[&str]) -> std::process::Output {
    let args: Vec<&str> = SEARCH.iter().chain(more).copied().collect();
    oversell(tmp, &args)
}

#[test]
fn an_exhaustive_search_counts_the_same_on_any_jobs_and_across_shards() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let one = search(tmp.path(), &["--jobs", "1"]);
    assert_code(&one, 0, "flock verifies");
    let two = search(tmp.path(), &["--jobs", "2"]);
    assert_code(&two, 0, "flock verifies on two jobs");
    assert_eq!(verified(&one), verified(&two));

    let mut reports = Vec::new();
    for k in 1..=3 {
        let json = tmp.path().join(format!("shard-{k}.json"));
        let shard = format!("{k}/3");
        let out = search(
            tmp.path(),
            &["--shard", &shard, "--json", json.to_str().expect("utf-8")],
        );
        assert_code(&out, 0, "a shard verifies its parts");
        assert!(
            verified(&out).starts_with(&format!("verified in shard {k}/3: all ")),
            "{}",
            verified(&out)
        );
        reports.push(json.to_str().expect("utf-8").to_string());
    }
    let mut args = vec!["merge"];
    args.extend(reports.iter().map(String::as_str));
    let merged = oversell(tmp.path(), &args);
    assert_code(&merged, 0, "every shard verified");
    let across = verified(&merged);
    assert_eq!(
        across.replacen("verified across 3 shards: ", "verified: ", 1),
        verified(&one),
        "the shards' counts add up to the single run's"
    );

    // One shard's report missing: named, exit 1.
    let missing = oversell(tmp.path(), &["merge", &reports[0], &reports[2]]);
    assert_code(&missing, 1, "a missing shard is no verification");
    assert_eq!(
        String::from_utf8_lossy(&missing.stdout).trim(),
        "not verified across 3 shards: shard 2/3 is missing (given: 1/3, 3/3)"
    );
}

#[test]
fn a_failing_shard_is_named_by_merge() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let mut reports = Vec::new();
    for k in 1..=2 {
        let json = tmp.path().join(format!("none-{k}.json"));
        let shard = format!("{k}/2");
        let out = oversell(
            tmp.path(),
            &[
                "explore",
                "--lock",
                "none",
                "--schedule",
                "exhaustive",
                "--buyers",
                "2",
                "--tickets",
                "1",
                "--seed",
                "1",
                "--no-shrink",
                "--no-explain",
                "--shard",
                &shard,
                "--json",
                json.to_str().expect("utf-8"),
            ],
        );
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", text(&out));
        reports.push(json.to_str().expect("utf-8").to_string());
    }
    let merged = oversell(tmp.path(), &["merge", &reports[0], &reports[1]]);
    assert_code(&merged, 1, "the race is no verification");
    let out = String::from_utf8_lossy(&merged.stdout);
    assert!(
        out.starts_with("not verified across 2 shards: shard ") && out.contains(" found "),
        "{out}"
    );
}

#[test]
fn a_search_cut_short_resumes_from_its_checkpoint_to_the_same_count() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let whole = search(tmp.path(), &["--jobs", "2"]);
    assert_code(&whole, 0, "flock verifies");
    let ck = tmp.path().join("frontier.json");
    let ck = ck.to_str().expect("utf-8");
    // Cut after 400 schedules: the parts done so far stay in the file.
    let cut = search(tmp.path(), &["--checkpoint", ck, "--trials", "400"]);
    assert_code(&cut, 0, "a cut search is no failure");
    assert!(!text(&cut).contains("verified: all"), "{}", text(&cut));
    let frontier = std::fs::read_to_string(ck).expect("the checkpoint stays");
    assert!(frontier.contains("\"parts\":[["), "{frontier}");
    let resumed = search(tmp.path(), &["--checkpoint", ck, "--jobs", "2"]);
    assert_code(&resumed, 0, "the resumed search verifies");
    assert_eq!(verified(&resumed), verified(&whole));
    assert!(
        !std::path::Path::new(ck).exists(),
        "the checkpoint is removed once the search ends"
    );
}

#[test]
fn a_checkpoint_of_another_command_or_no_checkpoint_is_refused() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let ck = tmp.path().join("frontier.json");
    let ck_s = ck.to_str().expect("utf-8");
    let cut = search(tmp.path(), &["--checkpoint", ck_s, "--trials", "300"]);
    assert_code(&cut, 0, "cut");
    assert!(ck.exists(), "{}", text(&cut));
    // Another seed is another command.
    let other = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--schedule",
            "exhaustive",
            "--buyers",
            "3",
            "--tickets",
            "2",
            "--preemptions",
            "2",
            "--seed",
            "2",
            "--checkpoint",
            ck_s,
        ],
    );
    assert_code(&other, 2, "another command's checkpoint");
    let err = String::from_utf8_lossy(&other.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("checkpoint of another command"), "{err}");
    assert!(other.stdout.is_empty(), "nothing ran: {}", text(&other));

    for bad in [
        "{",
        "{\"oversell_checkpoint\":1,\"command\":\"x\",\"parts\":[],\"extra\":1}",
    ] {
        std::fs::write(&ck, bad).expect("write");
        let out = search(tmp.path(), &["--checkpoint", ck_s]);
        assert_code(&out, 2, "not a checkpoint");
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    }
    let jitter = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--trials",
            "1",
            "--checkpoint",
            ck_s,
        ],
    );
    assert_code(&jitter, 2, "--checkpoint is for exhaustive");
}

#[test]
fn a_checkpoint_run_killed_mid_search_resumes_to_the_same_count_and_leaves_nothing() {
    let tmp = crate::common::tempdir().expect("tempdir");
    // The same search, one preemption deeper: long enough to be killed in.
    let mut deeper: Vec<&str> = SEARCH.to_vec();
    let at = deeper
        .iter()
        .position(|&a| a == "--preemptions")
        .expect("a bound");
    deeper[at + 1] = "3";
    let whole = oversell(tmp.path(), &[deeper.as_slice(), &["--jobs", "2"]].concat());
    assert_code(&whole, 0, "flock verifies");
    let ck = tmp.path().join("frontier.json");
    let ck_s = ck.to_str().expect("utf-8");
    let args: Vec<&str> = [deeper.as_slice(), &["--jobs", "2", "--checkpoint", ck_s]].concat();
    let mut run = common::oversell_command()
        .args(&args)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    // Killed once its first frontier is on disk.
    let end = Instant::now() + Duration::from_secs(30);
    while !ck.exists() && Instant::now() < end && run.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = run.wait();
    let resumed = oversell(tmp.path(), &args);
    assert_code(&resumed, 0, "the resumed search verifies");
    assert_eq!(verified(&resumed), verified(&whole));
    assert_eq!(
        common::leftovers(tmp.path()),
        Vec::<String>::new(),
        "the killed run's directories are swept and the checkpoint removed"
    );
}

#[test]
fn shapes_with_tickets_to_spare_are_searched_once() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--schedule",
            "exhaustive",
            "--buyers",
            "2",
            "--tickets",
            "1..4",
            "--preemptions",
            "1",
            "--seed",
            "1",
        ],
    );
    assert_code(&out, 0, "flock verifies");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("verified"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[1].contains("of 2 buyers, 2 tickets"), "{lines:?}");
    for (line, t) in lines[2..].iter().zip([3, 4]) {
        assert!(
            line.starts_with(&format!(
                "verified: 2 buyers, {t} tickets, ≤ 1 preemption: the same schedules as 2 \
                 buyers, 2 tickets"
            )),
            "{line}"
        );
    }
}
