//! The command line as a user meets it: exit codes, one-line errors, reports, and
//! nothing left behind.

use crate::common;

use common::{leftovers, oversell, oversell_in, text};
use std::process::Output;

#[test]
fn bad_input_is_exit_2_with_one_line_naming_the_value() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (&["explore", "--buyers", "0"], "'0'"),
        (&["explore", "--buyers", "5..2"], "'5..2'"),
        (&["explore", "--lock", "nolock"], "nolock"),
        (&["explore", "--trials", "many"], "many"),
        (&["explore", "--jitter-ms", "-3"], "-3"),
        (&["explore", "--frobnicate"], "--frobnicate"),
        (
            &["explore", "--keep", "/proc/version/sub", "--trials", "1"],
            "/proc/version/sub",
        ),
        (&["replay", "not-a-token"], "not-a-token"),
        (&["bench", "--json"], "--json"),
        (
            &["replay", "ov1.none.b0.t1.j0.r1.sjitter.c5013c9"],
            "no buyers",
        ),
    ];
    for (args, needle) in cases {
        let out = oversell(tmp.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?} printed: {err}");
        assert!(err.contains(needle), "{args:?}: {err} lacks {needle}");
        assert!(
            err.contains("accepted") || err.contains("look like") || err.contains("unexpected"),
            "{args:?}: {err} does not say what is accepted"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left {:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn no_lock_is_caught_with_a_token_in_the_json_report() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    let out = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "none",
            "--schedule",
            "barrier",
            "--trials",
            "5",
            "--seed",
            "1",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("oversell replay ov1.none."), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report written"))
            .expect("report is JSON");
    for field in [
        "version",
        "lock",
        "schedule",
        "seed",
        "trials_run",
        "trials_failed",
        "elapsed_ms",
    ] {
        assert!(report.get(field).is_some(), "no {field} in {report}");
    }
    let findings = report["findings"].as_array().expect("findings array");
    assert!(findings
        .iter()
        .any(|f| f["kind"] == "oversold" || f["kind"] == "double_sale"));
    for f in findings {
        let token = f["token"].as_str().expect("token");
        assert!(token.starts_with("ov1.none."));
        assert_eq!(f["replay"], format!("oversell replay {token}"));
    }
    // Nothing but the report remains.
    assert_eq!(leftovers(tmp.path()), vec!["r.json".to_string()]);

    // Replaying the first token reproduces a finding: under the barrier every buyer
    // reads before anyone writes, so it recurs every time.
    let token = findings[0]["token"].as_str().expect("token");
    let out = oversell(tmp.path(), &["replay", token, "--attempts", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("reproduced in 3 of 3 attempts"), "{stdout}");
}

#[test]
fn expect_violation_turns_a_caught_race_into_success() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(
        tmp.path(),
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
            "3",
            "--expect",
            "violation",
            "--quiet",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let out = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--trials",
            "3",
            "--expect",
            "violation",
            "--quiet",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clean run does not meet --expect violation"
    );
}

#[test]
fn every_sound_lock_is_clean() {
    let tmp = crate::common::tempdir().expect("tempdir");
    for lock in ["flock", "ofd", "posix", "lockfile", "socket", "sysv"] {
        for schedule in ["jitter", "barrier"] {
            let out = oversell(
                tmp.path(),
                &[
                    "explore",
                    "--lock",
                    lock,
                    "--schedule",
                    schedule,
                    "--trials",
                    "8",
                    "--seed",
                    "2",
                    "--jitter-ms",
                    "1",
                ],
            );
            assert_eq!(
                out.status.code(),
                Some(0),
                "{lock}/{schedule}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left {:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn keep_keeps_the_trial_directories() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let keep = tmp.path().join("kept");
    let out = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--trials",
            "2",
            "--buyers",
            "2",
            "--quiet",
            "--keep",
            keep.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let dirs: Vec<_> = std::fs::read_dir(&keep).expect("kept").flatten().collect();
    assert_eq!(dirs.len(), 2);
    for d in dirs {
        assert!(d.path().join("ledger").is_file());
        assert!(d.path().join("store.json").is_file());
    }
}

#[test]
fn locks_lists_every_backend_with_a_verdict() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(tmp.path(), &["locks"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for lock in oversell::LockKind::ALL {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(lock.name()))
            .unwrap_or_else(|| panic!("{} not listed in {text}", lock.name()));
        let verdict = if lock.is_sound() { "sound" } else { "broken" };
        assert!(line.contains(verdict), "{line}");
    }
}

#[test]
fn the_demo_catches_no_lock_and_clears_the_sound_ones() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(tmp.path(), &["demo", "--trials", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let none = text
        .lines()
        .find(|l| l.starts_with("none "))
        .expect("a row for none");
    assert!(none.contains("oversell replay ov1.none."), "{none}");
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn help_teaches() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(tmp.path(), &["explore", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["--lock", "--buyers", "--expect", "Examples", "replay"] {
        assert!(text.contains(needle), "help lacks {needle}");
    }
}

/// Exit 2, one line on stderr naming `needle` and what is accepted, nothing on stdout
/// (so no run began: explore and replay print their plan before the first trial).
fn assert_refused(out: &Output, args: &[&str], needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?} printed: {err}");
    assert!(err.contains(needle), "{args:?}: {err} lacks {needle}");
    assert!(
        err.contains("accepted"),
        "{args:?}: {err} says not what is accepted"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} began a run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_commands_and_outputs_are_refused_before_the_first_trial() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["explore", "--buyer-cmd", "python3 buyer.py"],
            "--buyer-cmd 'python3 buyer.py' has no {store}",
        ),
        (
            &["explore", "--lock-cmd", "sh -c 'flock l {}"],
            "unterminated single quote",
        ),
        (
            &["explore", "--buyer-cmd", "python3 \"buyer.py {store}"],
            "unterminated double quote",
        ),
        (
            &["explore", "--lock", "none", "--json", "/nonexistent/r.json"],
            "--json /nonexistent/r.json",
        ),
        (
            &["explore", "--lock", "none", "--junit", "no/such/dir/j.xml"],
            "--junit no/such/dir/j.xml",
        ),
        (
            &["explore", "--lock", "none", "--timeline", "out.png"],
            "--timeline out.png",
        ),
        (
            &["explore", "--lock", "none", "--timeline", "gone/t.svg"],
            "--timeline gone/t.svg",
        ),
        (&["explore", "--json", "."], "--json ."),
        (
            &["explore", "--expect", "violations"],
            "'violations' for '--expect <EXPECT>'; accepted: clean, violation",
        ),
        (
            &[
                "replay",
                "ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8",
                "--json",
                "/nonexistent/r.json",
            ],
            "--json /nonexistent/r.json",
        ),
        (
            &[
                "replay",
                "ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8",
                "--timeline",
                "t.png",
            ],
            "--timeline t.png",
        ),
        (
            &["bench", "--quick", "--json", "/nonexistent/b.json"],
            "--json /nonexistent/b.json",
        ),
    ];
    for (args, needle) in cases {
        let out = oversell_in(tmp.path(), args);
        assert_refused(&out, args, needle);
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{args:?} left {:?}",
            leftovers(tmp.path())
        );
    }
}

#[test]
fn merge_names_a_missing_shard() {
    let tmp = crate::common::tempdir().expect("tempdir");
    for k in ["1/3", "3/3"] {
        let json = format!("s{}.json", &k[..1]);
        let out = oversell_in(
            tmp.path(),
            &[
                "explore", "--lock", "flock", "--buyers", "2", "--trials", "3", "--quiet",
                "--seed", "4", "--shard", k, "--json", &json,
            ],
        );
        assert_eq!(out.status.code(), Some(0), "shard {k}");
    }
    let args = ["merge", "s1.json", "s3.json", "--json", "m.json"];
    let out = oversell_in(tmp.path(), &args);
    assert_refused(&out, &args, "shard 2/3 is missing");
    assert!(
        !tmp.path().join("m.json").exists(),
        "a partial merge was written"
    );
}

#[test]
fn replay_help_says_what_its_exit_status_means() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(tmp.path(), &["replay", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("Exit status:")
        .nth(1)
        .unwrap_or_else(|| panic!("no exit status in {text}"));
    for code in ["0 ", "1 ", "2 "] {
        assert!(status.contains(code), "exit status {code}missing: {status}");
    }
}

#[test]
fn one_of_a_thing_is_said_in_the_singular() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--buyers",
            "1",
            "--tickets",
            "1",
            "--trials",
            "1",
            "--seed",
            "3",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let head = text.lines().next().unwrap_or_default();
    assert!(head.contains("1 buyer, 1 ticket,"), "{head}");
    assert!(head.contains(", 1 trial,"), "{head}");
}

#[test]
fn a_user_locks_token_is_refused_with_the_way_to_replay_it() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let token = "ov1.user.b2.t1.j0.r0.srandom.p0x3-1x7-0x4.caa56f9";
    let out = oversell_in(tmp.path(), &["replay", token]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("replay_sound") && err.contains("OVERSELL_REPLAY"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no trial ran");
    // The gate refuses it the same way, naming the file and line.
    std::fs::write(tmp.path().join("mine.gate"), format!("oversold {token}\n")).expect("write");
    let out = oversell_in(tmp.path(), &["gate", "."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mine.gate:1") && err.contains("replay_sound"),
        "{err}"
    );
    // And `--lock user` is no lock the CLI can run.
    assert_refused(
        &oversell_in(tmp.path(), &["explore", "--lock", "user"]),
        &["--lock"],
        "user",
    );
}

#[test]
fn a_redis_token_without_a_server_is_refused_naming_what_to_do() {
    // An empty PATH: no redis-server, whatever this machine has installed.
    let tmp = crate::common::tempdir().expect("tempdir");
    let empty = tmp.path().join("bin");
    std::fs::create_dir(&empty).expect("mkdir");
    let path = empty.to_string_lossy().into_owned();
    let token = "ov1.redis.b2.t1.j0.r8.sexhaustive0.a.k500.p0x2-1x6.c21da5b";
    let gate_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/regressions/redis");
    let cases: &[(&[&str], &str)] = &[
        (
            &["replay", token],
            "the token's lock redis: redis-server is not on PATH",
        ),
        (
            &["gate", gate_dir],
            "leases.gate:6: lock redis: redis-server is not on PATH",
        ),
        (
            &["explore", "--lock", "redis"],
            "--lock redis: redis-server is not on PATH",
        ),
        (
            &["replay", "--redis", "localhost:6379", token],
            "--redis 'localhost:6379'",
        ),
        (&["gate", "--redis", "6379", gate_dir], "--redis '6379'"),
    ];
    for (args, needle) in cases {
        let out = common::oversell_env(tmp.path(), args, &[("PATH", &path)]);
        assert_refused(&out, args, needle);
    }
    assert_eq!(leftovers(tmp.path()), vec!["bin".to_string()]);
}

/// The token of the first finding `explore` printed.
fn first_token(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: oversell replay "))
        .unwrap_or_else(|| panic!("no replay line in {stdout}"))
        .to_string()
}

#[test]
fn a_changed_or_cut_token_is_refused_for_its_checksum() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell(
        tmp.path(),
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
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let token = first_token(&out);
    assert!(token.contains(".j5000."), "{token}");
    // One digit of the seed, changed to another hex digit.
    let seed_at = token.find(".r").expect("a seed field") + 2;
    let digit = &token[seed_at..=seed_at];
    let other = if digit == "7" { "8" } else { "7" };
    let mut seed_changed = token.clone();
    seed_changed.replace_range(seed_at..=seed_at, other);
    for bad in [
        token.replacen(".j5000.", ".j5001.", 1),
        seed_changed,
        token[..token.len() - 1].to_string(),
    ] {
        let args = ["replay", bad.as_str()];
        let out = oversell(tmp.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{bad}: {err}");
        assert!(err.contains(&format!("'{bad}'")), "{err} names not {bad}");
        assert!(
            err.contains("its checksum does not match") && err.contains("copy it whole"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{bad} began a replay");
    }
    // The token as printed replays, and its finding comes back.
    let out = oversell(tmp.path(), &["replay", &token, "--attempts", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    assert!(stdout.contains("reproduced in 2 of 2 attempts"), "{stdout}");
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn every_token_the_docs_and_help_show_decodes() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let root = env!("CARGO_MANIFEST_DIR");
    let mut texts = vec![];
    for doc in ["README.md", "fixtures/regressions/README.md"] {
        let path = format!("{root}/{doc}");
        texts.push((doc.to_string(), std::fs::read_to_string(&path).expect(doc)));
    }
    let help = oversell(tmp.path(), &["--help"]);
    texts.push((
        "--help".into(),
        String::from_utf8_lossy(&help.stdout).into(),
    ));
    let mut seen = 0;
    for (place, text) in &texts {
        for word in text.split(|c: char| c.is_whitespace() || c == '\'') {
            if word.starts_with("ov1.") && !word.ends_with("...") {
                oversell::Trial::from_token(word).unwrap_or_else(|e| panic!("{place}: {e}"));
                seen += 1;
            }
        }
    }
    assert!(seen >= 6, "only {seen} tokens found");
}

#[test]
fn a_negative_number_gets_the_range_not_an_unknown_option() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let token = "ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8";
    let cases: &[(&[&str], &str, &str)] = &[
        (&["explore"], "--trials", "-1"),
        (&["explore"], "--tickets", "-1"),
        (&["explore"], "--buyers", "-1"),
        (&["explore"], "--jitter-ms", "-3"),
        (&["explore"], "--seed", "-1"),
        (&["explore"], "--depth", "-2"),
        (&["explore"], "--preemptions", "-1"),
        (&["explore"], "--time-budget", "-5"),
        (&["explore"], "--timeout-ms", "-1"),
        (&["replay", token], "--attempts", "-1"),
        (&["replay", token], "--timeout-ms", "-1"),
        (&["gate", "."], "--attempts", "-1"),
        (&["demo"], "--trials", "-1"),
        (&["bench"], "--seed", "-1"),
    ];
    for (head, flag, value) in cases {
        let spaced: Vec<&str> = head.iter().copied().chain([*flag, *value]).collect();
        let joined_arg = format!("{flag}={value}");
        let joined: Vec<&str> = head.iter().copied().chain([joined_arg.as_str()]).collect();
        let out = oversell(tmp.path(), &spaced);
        assert_refused(&out, &spaced, &format!("'{value}' for '{flag} "));
        let same = oversell(tmp.path(), &joined);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&same.stderr),
            "{spaced:?} and {joined:?} differ"
        );
    }
}

#[test]
fn a_missing_argument_is_named_with_its_commands_help() {
    let tmp = crate::common::tempdir().expect("tempdir");
    for (cmd, arg) in [
        ("replay", "<TOKEN>"),
        ("gate", "<DIR>"),
        ("merge", "<REPORT>"),
    ] {
        let out = oversell(tmp.path(), &[cmd]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_refused(&out, &[cmd], arg);
        assert!(
            err.contains(&format!("oversell {cmd} is missing its {arg}")),
            "{err}"
        );
        assert!(
            err.contains(&format!("(see 'oversell {cmd} --help')")),
            "{err}"
        );
    }
}

#[test]
fn a_near_miss_says_what_was_meant() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str, &str)] = &[
        (&["explor"], "'explor'", "did you mean 'explore'?"),
        (
            &["explore", "--lokc", "none"],
            "'--lokc'",
            "did you mean '--lock'?",
        ),
        (
            &["replay", "--atempts", "2"],
            "'--atempts'",
            "did you mean '--attempts'?",
        ),
    ];
    for (args, bad, meant) in cases {
        let out = oversell(tmp.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(bad) && err.contains(meant), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // An unknown command also lists the commands there are.
    let err = String::from_utf8_lossy(&oversell(tmp.path(), &["explor"]).stderr).into_owned();
    assert!(
        err.contains("accepted: explore, replay, locks, merge, bench, gate, demo"),
        "{err}"
    );
}

#[test]
fn a_command_that_is_not_there_is_refused_before_the_first_trial() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["explore", "--lock-cmd", "nosuchlock {dir} {}"],
            "--lock-cmd 'nosuchlock {dir} {}': 'nosuchlock' is not on PATH",
        ),
        (
            &["explore", "--buyer-cmd", "nosuchbuyer {store}"],
            "'nosuchbuyer' is not on PATH",
        ),
        (
            &["explore", "--lock-cmd", "./no/such/wrapper.sh {}"],
            "there is no file './no/such/wrapper.sh'",
        ),
        (
            &[
                "explore",
                "--buyer-cmd",
                "/no/such/buyer {store}",
                "--schedule",
                "pct",
            ],
            "there is no file '/no/such/buyer'",
        ),
    ];
    for (args, needle) in cases {
        assert_refused(&oversell_in(tmp.path(), args), args, needle);
    }
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );

    // A program on PATH passes; under a PATH without it, the same command is refused.
    let ran = oversell(
        tmp.path(),
        &[
            "explore",
            "--lock-cmd",
            "env {}",
            "--buyers",
            "2",
            "--trials",
            "1",
            "--quiet",
        ],
    );
    assert_ne!(ran.status.code(), Some(2), "{}", common::text(&ran));
    let empty = tmp.path().join("bin");
    std::fs::create_dir(&empty).expect("mkdir");
    let path = empty.to_string_lossy().into_owned();
    let args = ["explore", "--lock-cmd", "env {}"];
    let out = common::oversell_env(tmp.path(), &args, &[("PATH", &path)]);
    assert_refused(&out, &args, "'env' is not on PATH");

    // A token that carries such a command is refused the same way by replay and gate.
    let mut trial =
        oversell::Trial::from_token("ov1.none.b2.t1.j0.r1.sjitter.c5324cc").expect("decodes");
    trial.target = oversell::Target::LockCmd("nosuchlock {dir} {}".into());
    let token = trial.token();
    let args = ["replay", "--allow-cmd", token.as_str()];
    assert_refused(
        &oversell(tmp.path(), &args),
        &args,
        "'nosuchlock' is not on PATH",
    );
    std::fs::write(empty.join("mine.gate"), format!("clean {token}\n")).expect("write");
    let dir = empty.to_string_lossy().into_owned();
    let args = ["gate", "--allow-cmd", dir.as_str()];
    let out = oversell(tmp.path(), &args);
    assert_refused(&out, &args, "mine.gate:1: the token's command");
}

#[test]
fn help_gives_every_exit_status() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let status = |args: &[&str]| {
        let out = oversell(tmp.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("Exit status:")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?}: no exit status in {text}"))
            .to_string()
    };
    // The numbers a help's exit status names, as whole words.
    let codes = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let top = status(&["--help"]);
    for code in ["0", "1", "2", "3", "130", "143"] {
        assert!(
            codes(&top).iter().any(|c| c == code),
            "oversell --help lacks {code}: {top}"
        );
    }
    assert!(top.contains("replay only"), "{top}");
    let merge = status(&["merge", "--help"]);
    for code in ["0", "1", "2"] {
        assert!(
            codes(&merge).iter().any(|c| c == code),
            "merge --help lacks {code}: {merge}"
        );
    }
    let bench = status(&["bench", "--help"]);
    for code in ["0", "2", "130", "143"] {
        assert!(
            codes(&bench).iter().any(|c| c == code),
            "bench --help lacks {code}: {bench}"
        );
    }
    for (command, wanted) in [
        ("explore", &["0", "1", "2", "130", "143"][..]),
        ("demo", &["0", "1", "2", "130", "143"][..]),
        ("locks", &["0"][..]),
    ] {
        let text = status(&[command, "--help"]);
        for code in wanted {
            assert!(
                codes(&text).iter().any(|c| c == code),
                "{command} --help lacks {code}: {text}"
            );
        }
    }
}

#[test]
fn demo_takes_the_redis_url_its_skipped_rows_point_to() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let help = oversell(tmp.path(), &["demo", "--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--redis <URL>"),
        "{}",
        text(&help)
    );
    let args = ["demo", "--trials", "1", "--redis", "localhost:6379"];
    let out = oversell(tmp.path(), &args);
    assert_refused(
        &out,
        &args,
        "--redis 'localhost:6379': accepted: a URL such as",
    );
}

#[test]
fn quiet_prints_findings_only() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let clean = oversell(
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
            "1",
            "--preemptions",
            "1",
            "--seed",
            "1",
            "--quiet",
        ],
    );
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(clean.stdout.is_empty(), "{}", text(&clean));
    let found = oversell(
        tmp.path(),
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
            "--quiet",
        ],
    );
    assert_eq!(found.status.code(), Some(1), "{}", text(&found));
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert!(
        stdout.starts_with("finding in trial ") && stdout.contains("  replay: oversell replay "),
        "{stdout}"
    );
    for noise in ["explore:", "pct:", "verified:", "result:", "trials, "] {
        assert!(!stdout.contains(noise), "{noise} under --quiet: {stdout}");
    }
}

#[test]
fn a_run_past_a_second_prints_progress_lines_when_stderr_is_not_a_terminal() {
    // Every kind of buyer, and the exhaustive search (which reports each schedule).
    let kinds: &[&[&str]] = &[
        &[
            "--lock",
            "flock",
            "--schedule",
            "jitter",
            "--trials",
            "100000",
        ],
        &[
            "--lock",
            "flock",
            "--schedule",
            "exhaustive",
            "--buyers",
            "4",
            "--tickets",
            "3",
        ],
        &[
            "--lock-cmd",
            "flock {dir}/lock {}",
            "--schedule",
            "pct",
            "--trials",
            "100000",
        ],
        &[
            "--buyer-cmd",
            "python3 fixtures/buyers/locked.py {store}",
            "--schedule",
            "jitter",
            "--trials",
            "100000",
        ],
    ];
    // The runs are bounded by time, not work: run them side by side.
    let runs: Vec<(Vec<&str>, std::process::Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = kinds
            .iter()
            .map(|kind| {
                s.spawn(move || {
                    let mut args = vec!["explore", "--seed", "1", "--time-budget", "1.6"];
                    args.extend_from_slice(kind);
                    let (out, _tmp) = common::oversell_fresh(&args, &[]);
                    (args, out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a run's thread"))
            .collect()
    });
    for ((args, out), kind) in runs.iter().zip(kinds) {
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(out));
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.starts_with("progress: "))
            .unwrap_or_else(|| panic!("{args:?}: no progress line in {err}"));
        // An exhaustive search names its shape and parts and counts schedules (one, on a
        // machine so busy that a second saw only one).
        let counts = if kind.contains(&"exhaustive") {
            line.contains(" parts, ")
                && (line.contains(" schedules, ") || line.contains(" 1 schedule, "))
                && line.contains("/s, ")
        } else {
            line.contains(" trial")
        };
        assert!(
            counts && line.contains(" findings, ") && line.ends_with(" s"),
            "{line}"
        );
    }
    let args = [
        "explore",
        "--seed",
        "1",
        "--time-budget",
        "1.6",
        "--trials",
        "100000",
        "--quiet",
    ];
    let (quiet, _tmp) = common::oversell_fresh(&args, &[]);
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("progress: "),
        "{args:?}: {}",
        text(&quiet)
    );
}
