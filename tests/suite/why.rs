//! Every finding from a controlled trial is explained by its racing pair: two steps of
//! different buyers whose order makes the finding. Each test takes a finding as `explore`
//! reports it and checks the claim both ways by replaying, 10 attempts each: the finding's
//! own token (the original order) reproduces it 10 of 10, and the token of the run with the
//! pair swapped (everything else kept) shows it in none of 10, nor anything the original
//! did not show.

use crate::common;

use common::{assert_code, fixture, oversell_fresh, text};
use serde_json::Value;

/// Runs `explore` with `args` and `--json`, and returns the first finding's token, its
/// `why` and its kind, after checking the printed story.
fn explained(args: &[&str]) -> (String, Value, String) {
    let dir = crate::common::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let json_arg = json.to_string_lossy().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", &json_arg]);
    let (out, _tmp) = oversell_fresh(&all, &[]);
    assert_code(&out, 1, "the broken lock must be caught");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("JSON");
    let f = &report["findings"][0];
    let why = f["why"].clone();
    let pair = why["pair"].as_array().cloned().unwrap_or_default();
    assert_eq!(pair.len(), 2, "a racing pair: {why}\n{}", text(&out));
    let (a, b) = (&pair[0], &pair[1]);
    assert_ne!(a["buyer"], b["buyer"], "two buyers race: {why}");
    assert!(
        a["step"].as_u64() < b["step"].as_u64(),
        "the pair in the order the run took it: {why}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let story = why["story"].as_str().unwrap_or_default();
    assert!(
        stdout.contains(&format!("why: {story}")),
        "the story is printed with the finding:\n{stdout}"
    );
    for s in [a, b] {
        let said = format!(
            "buyer {} {} (step {})",
            s["buyer"],
            s["what"].as_str().unwrap_or_default(),
            s["step"]
        );
        assert!(story.contains(&said), "the story names {said}: {story}");
    }
    let token = f["token"].as_str().expect("token").to_string();
    let kind = f["kind"].as_str().expect("kind").to_string();
    (token, why, kind)
}

/// Replays `token` 10 times; the kinds each attempt found, after checking the attempts
/// followed one identical trace.
fn replayed(token: &str, attempts: u32) -> Vec<Vec<String>> {
    let dir = crate::common::tempdir().expect("tempdir");
    let json = dir.path().join("replay.json");
    let n = attempts.to_string();
    let (out, _tmp) = oversell_fresh(
        &[
            "replay",
            "--allow-cmd",
            token,
            "--attempts",
            &n,
            "--json",
            &json.to_string_lossy(),
        ],
        &[],
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 3)),
        "replay of {token}: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "identical trace in {attempts} of {attempts} attempts"
        )),
        "{}",
        text(&out)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the replay's report"))
            .expect("JSON");
    assert_eq!(report["trials_run"], attempts, "{report}");
    let mut kinds = vec![Vec::new(); attempts as usize];
    for f in report["findings"].as_array().cloned().unwrap_or_default() {
        let attempt = f["trial"].as_u64().expect("attempt") as usize;
        kinds[attempt].push(f["kind"].as_str().unwrap_or_default().to_string());
    }
    kinds
}

/// The finding reproduces in every attempt as it ran (10, or `attempts` for a slow
/// program); with the pair swapped it is gone in every attempt, and what remains is only
/// what the swap says remains.
fn holds_both_ways(token: &str, why: &Value, kind: &str) {
    holds_both_ways_in(token, why, kind, 10);
}

fn holds_both_ways_in(token: &str, why: &Value, kind: &str, attempts: u32) {
    let original = replayed(token, attempts);
    assert!(
        original.iter().all(|k| k.iter().any(|x| x == kind)),
        "the original order shows {kind} in every attempt: {original:?}"
    );
    let swapped = why["swapped_token"]
        .as_str()
        .expect("the swapped run's token");
    let remains: Vec<String> = why["remains"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for attempt in replayed(swapped, attempts) {
        let mut seen = attempt.clone();
        seen.sort();
        seen.dedup();
        assert!(
            !seen.iter().any(|x| x == kind),
            "the swapped order never shows {kind}: {seen:?}"
        );
        assert_eq!(seen, remains, "the swapped run shows what the story says");
    }
}

fn builtin(lock: &str) {
    let (token, why, kind) = explained(&[
        "explore",
        "--lock",
        lock,
        "--schedule",
        "pct",
        "--trials",
        "100",
        "--seed",
        "1",
    ]);
    holds_both_ways(&token, &why, &kind);
}

#[test]
fn none_is_explained_by_its_racing_pair() {
    builtin("none");
}

#[test]
fn an_oversell_is_explained_by_a_read_and_the_write_that_loses_it() {
    let (token, why, kind) = explained(&[
        "explore",
        "--lock",
        "none",
        "--schedule",
        "pct",
        "--trials",
        "20",
        "--seed",
        "3",
    ]);
    assert_eq!(kind, "oversold");
    let story = why["story"].as_str().unwrap_or_default();
    assert!(
        story.contains("read count=1") && story.contains("wrote count=0"),
        "{story}"
    );
    // Under `none` both still hold the critical section at once: the swap clears the
    // oversell, not the overlap, and says so.
    assert_eq!(why["remains"], serde_json::json!(["overlap"]), "{why}");
    holds_both_ways(&token, &why, &kind);
}

#[test]
fn toctou_is_explained_by_a_pair_of_system_calls() {
    let (token, why, kind) = explained(&[
        "explore",
        "--lock",
        "toctou",
        "--buyers",
        "2",
        "--tickets",
        "1",
        // The search for fewer preemptions tries some 340 runs at system-call
        // granularity; the story is told of the run found.
        "--no-shrink",
        "--schedule",
        "pct",
        "--trials",
        "100",
        "--seed",
        "1",
    ]);
    // At system-call granularity the steps are named by their calls and paths.
    let story = why["story"].as_str().unwrap_or_default();
    assert!(story.contains("lock.toctou"), "{story}");
    holds_both_ways(&token, &why, &kind);
}

#[test]
fn early_release_is_explained_by_its_racing_pair() {
    builtin("early-release");
}

#[test]
fn posix_close_is_explained_by_its_racing_pair() {
    builtin("posix-close");
}

#[test]
fn renamed_store_is_explained_by_its_racing_pair() {
    builtin("renamed-store");
}

/// A user's command (`--lock-cmd` or `--buyer-cmd`), 2 buyers, 1 ticket, pct: the
/// story names `names`, and holds both ways.
fn user_command(flag: &str, cmd: &str, names: &str, attempts: u32) {
    let (token, why, kind) = explained(&[
        "explore",
        flag,
        cmd,
        "--buyers",
        "2",
        "--tickets",
        "1",
        // The story is told of the run found: shrinking would only look for one with
        // fewer preemptions, a run per try (a Python start each, for a buyer program).
        "--no-shrink",
        "--schedule",
        "pct",
        "--trials",
        "20",
        "--seed",
        "1",
    ]);
    let story = why["story"].as_str().unwrap_or_default();
    assert!(story.contains(names), "the story names {names}: {story}");
    holds_both_ways_in(&token, &why, &kind, attempts);
}

#[test]
fn a_test_then_touch_lock_command_is_explained_by_its_calls() {
    let cmd = format!(
        "{} {{dir}} {{}}",
        fixture("locks/test-then-touch.sh").display()
    );
    user_command("--lock-cmd", &cmd, "lock.t", 10);
}

#[test]
fn the_lessons_unlocked_buyer_is_explained_by_its_calls() {
    let cmd = format!(
        "python3 {} {{store}}",
        fixture("buyers/unlocked.py").display()
    );
    // A Python start is 0.3–0.45 s: three attempts each way show the same exactness.
    user_command("--buyer-cmd", &cmd, "store.json", 3);
}

#[test]
fn replay_explain_tells_the_same_story_for_a_saved_token() {
    let (token, why, _) = explained(&[
        "explore",
        "--lock",
        "none",
        "--schedule",
        "pct",
        "--trials",
        "100",
        "--seed",
        "1",
    ]);
    let (out, _tmp) = oversell_fresh(&["replay", "--explain", &token], &[]);
    assert_code(&out, 1, "the token reproduces");
    let story = why["story"].as_str().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("why: {story}")),
        "{}",
        text(&out)
    );
}

#[test]
fn a_free_running_finding_names_the_controlled_command_that_explains_it() {
    let dir = crate::common::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let (out, _tmp) = oversell_fresh(
        &[
            "explore",
            "--lock",
            "none",
            "--schedule",
            "barrier",
            "--buyers",
            "3",
            "--tickets",
            "1",
            "--trials",
            "1",
            "--json",
            &json.to_string_lossy(),
        ],
        &[],
    );
    assert_code(&out, 1, "an unlocked barrier trial oversells");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let story = report["findings"][0]["why"]["story"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        story.contains("oversell explore --lock none --buyers 3 --tickets 1 --schedule pct"),
        "{story}"
    );
}

#[test]
fn a_finding_no_order_of_steps_makes_is_said_to_have_no_racing_pair() {
    let dir = crate::common::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let (out, _tmp) = oversell_fresh(
        &[
            "explore",
            "--lock",
            "lockfile",
            "--faults",
            "kill=1",
            "--store",
            "atomic",
            "--schedule",
            "pct",
            "--buyers",
            "2",
            "--tickets",
            "1",
            "--trials",
            "20",
            "--seed",
            "1",
            "--json",
            &json.to_string_lossy(),
        ],
        &[],
    );
    assert_code(&out, 1, "a killed lockfile holder leaves its lock taken");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let f = &report["findings"][0];
    assert_eq!(f["kind"], "stale_lock", "{f}");
    let why = &f["why"];
    assert_eq!(why["tried"], 0, "nothing is reordered: {why}");
    assert!(
        why["story"]
            .as_str()
            .unwrap_or_default()
            .starts_with("no racing pair: a stale_lock comes from a holder killed"),
        "{why}"
    );
    // --no-explain leaves the line out.
    let (out, _tmp) = oversell_fresh(
        &[
            "explore",
            "--lock",
            "none",
            "--schedule",
            "pct",
            "--trials",
            "20",
            "--seed",
            "3",
            "--no-explain",
        ],
        &[],
    );
    assert_code(&out, 1, "none oversells");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("why:"),
        "{}",
        text(&out)
    );
}
