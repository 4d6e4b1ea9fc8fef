//! Anyone's lock and anyone's buyer: `--lock-cmd` and `--buyer-cmd` with the fixtures.

use crate::common;

use common::{assert_code, fixture};
use std::path::Path;
use std::process::Output;

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn oversell(args: &[&str], env: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let tmp = crate::common::tempdir().expect("tempdir");
    (common::oversell_env(tmp.path(), args, env), tmp)
}

fn leftovers(tmp: &Path) -> usize {
    common::leftovers(tmp).len()
}

#[test]
fn flock_1_as_a_lock_command_is_sound_also_under_kills() {
    let (out, tmp) = oversell(
        &[
            "explore",
            "--lock-cmd",
            "flock {dir}/lock {}",
            "--trials",
            "20",
            "--seed",
            "7",
            "--jitter-ms",
            "1",
        ],
        &[],
    );
    assert_code(&out, 0, "flock(1) wrapper");
    assert_eq!(leftovers(tmp.path()), 0);
    let (out, _) = oversell(
        &[
            "explore",
            "--lock-cmd",
            "flock {dir}/lock {}",
            "--faults",
            "kill=0.3",
            "--store",
            "atomic",
            "--trials",
            "20",
            "--seed",
            "7",
            "--jitter-ms",
            "1",
        ],
        &[],
    );
    assert_code(&out, 0, "flock(1) wrapper under kills");
}

#[test]
fn the_fixture_wrappers_flock_and_mkdir_are_sound_and_paths_with_spaces_work() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let spaced = tmp.path().join("lock scripts");
    std::fs::create_dir(&spaced).expect("mkdir");
    for name in ["flock.sh", "mkdir.sh"] {
        let copy = spaced.join(name);
        std::fs::copy(fixture(&format!("locks/{name}")), &copy).expect("copy");
        let template = format!("{} {{dir}} {{}}", q(&copy));
        let (out, _) = oversell(
            &[
                "explore",
                "--lock-cmd",
                &template,
                "--trials",
                "10",
                "--seed",
                "7",
                "--jitter-ms",
                "1",
            ],
            &[],
        );
        assert_code(&out, 0, name);
    }
}

#[test]
fn a_mkdir_lock_goes_stale_when_its_holder_is_killed() {
    // Every buyer runs inside the wrapper, so the first to run is killed holding it.
    let template = format!("{} {{dir}} {{}}", q(&fixture("locks/mkdir.sh")));
    let (out, tmp) = oversell(
        &[
            "explore",
            "--no-explain",
            "--lock-cmd",
            &template,
            "--schedule",
            "jitter",
            "--faults",
            "kill=1",
            "--buyers",
            "3",
            "--trials",
            "2",
            "--timeout-ms",
            "1000",
            "--expect",
            "violation",
        ],
        &[],
    );
    assert_code(&out, 0, "stale mkdir lock");
    assert_eq!(leftovers(tmp.path()), 0);
    // A hang finding, first or beside another (a kill between truncate and write also
    // tears the store).
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("): hang:") || l.trim_start().starts_with("also hang:")),
        "{stdout}"
    );
}

#[test]
fn test_then_touch_is_caught() {
    // The fixture's barrier lets every wrapper test the lock file before any creates it:
    // all of them get in at once. (Free-running: under a controlled schedule the barrier's
    // poll would be stepped call by call; tests/suite/why.rs catches it under pct.)
    let template = format!("{} {{dir}} {{}}", q(&fixture("locks/test-then-touch.sh")));
    let (out, _) = oversell(
        &[
            "explore",
            "--no-explain",
            "--lock-cmd",
            &template,
            "--buyers",
            "4",
            "--tickets",
            "1",
            "--jitter-ms",
            "50",
            "--schedule",
            "jitter",
            "--trials",
            "5",
            "--seed",
            "7",
        ],
        &[("FIXTURE_BARRIER", "4")],
    );
    assert_code(&out, 1, "test-then-touch must be caught");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("overlap") || text.contains("oversold"),
        "{text}"
    );
}

#[test]
fn an_unlocked_buyer_program_oversells_and_a_locked_one_does_not() {
    let unlocked = format!("python3 {} {{store}}", q(&fixture("buyers/unlocked.py")));
    let (out, tmp) = oversell(
        &[
            "explore",
            "--no-explain",
            "--buyer-cmd",
            &unlocked,
            "--buyers",
            "3",
            "--tickets",
            "1",
            "--trials",
            "3",
            "--expect",
            "violation",
        ],
        &[("FIXTURE_BARRIER", "3")],
    );
    assert_code(&out, 0, "unlocked.py must oversell");
    assert!(String::from_utf8_lossy(&out.stdout).contains("oversold"));
    assert_eq!(leftovers(tmp.path()), 0);

    let locked = format!("python3 {} {{store}}", q(&fixture("buyers/locked.py")));
    let (out, _) = oversell(
        &[
            "explore",
            "--buyer-cmd",
            &locked,
            "--buyers",
            "6",
            "--tickets",
            "1..3",
            "--trials",
            "4",
        ],
        &[],
    );
    assert_code(&out, 0, "locked.py is sound");
    let shell = format!("sh {} {{store}}", q(&fixture("buyers/buyer.sh")));
    let (out, _) = oversell(
        &[
            "explore",
            "--buyer-cmd",
            &shell,
            "--buyers",
            "6",
            "--tickets",
            "1..3",
            "--trials",
            "4",
        ],
        &[],
    );
    assert_code(&out, 0, "buyer.sh is sound");
}

#[test]
fn a_buyer_program_that_fails_is_a_crash_with_its_stderr() {
    let (out, _) = oversell(
        &[
            "explore",
            "--buyer-cmd",
            "echo 'no store here' >&2; exit 7 # ignores {store}",
            "--buyers",
            "2",
            "--trials",
            "1",
            "--expect",
            "violation",
        ],
        &[],
    );
    assert_code(&out, 0, "a failing program is a finding");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("crash: buyer")
            && text.contains("status 7")
            && text.contains("no store here"),
        "{text}"
    );
}

#[test]
fn user_commands_refuse_what_they_cannot_do() {
    for args in [
        &["explore", "--lock-cmd", "flock {dir}/lock"][..],
        &[
            "explore",
            "--lock-cmd",
            "flock {dir}/lock {}",
            "--schedule",
            "barrier",
        ][..],
        &["explore", "--buyer-cmd", "true", "--faults", "kill=0.5"][..],
        &["explore", "--buyer-cmd", "true", "--lock", "flock"][..],
    ] {
        let (out, _) = oversell(args, &[]);
        assert_code(&out, 2, &format!("{args:?}"));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1
        );
    }
}

#[test]
fn a_token_that_runs_a_command_replays_only_when_allowed() {
    // `exit 17`, hex-encoded in the token.
    let token = "ov1.none.b1.t1.j0.r3.sjitter.B65786974203137.ca654e3";
    let (out, _) = oversell(&["replay", token, "--attempts", "1"], &[]);
    assert_code(&out, 2, "a command token without --allow-cmd");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exit 17"));
    let (out, _) = oversell(&["replay", "--allow-cmd", token, "--attempts", "1"], &[]);
    assert_code(&out, 1, "the command ran and failed: a crash finding");
    assert!(String::from_utf8_lossy(&out.stdout).contains("status 17"));
}

#[test]
fn a_command_that_fails_in_every_buyer_before_it_starts_is_a_setup_error() {
    // Programs that are there but run one that is not: a first word that is not there at
    // all is refused before the first trial (tests/suite/cli.rs).
    for (args, says) in [
        (
            &["explore", "--lock-cmd", "sh -c nosuchcmd {}"][..],
            "nosuchcmd: not found",
        ),
        (
            &["explore", "--lock-cmd", "{dir}/no-such-wrapper {}"][..],
            "no-such-wrapper: not found",
        ),
        (
            &["explore", "--buyer-cmd", "{dir}/nosuchcmd {store}"][..],
            "nosuchcmd: not found",
        ),
    ] {
        let (out, tmp) = oversell(args, &[]);
        assert_code(&out, 2, &format!("{args:?}"));
        let err = String::from_utf8_lossy(&out.stderr);
        // One line of error (a progress line comes first on a loaded machine).
        let told: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("progress: "))
            .collect();
        assert_eq!(told.len(), 1, "{err}");
        assert!(err.contains("buyer 0: ") && err.contains(says), "{err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("crash"),
            "no findings are reported"
        );
        assert_eq!(leftovers(tmp.path()), 0);
    }
}

#[test]
fn a_buyer_program_runs_in_the_users_working_directory() {
    // The path is relative to the repository root, where the command is given.
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = common::oversell_command()
        .args([
            "explore",
            "--buyer-cmd",
            "python3 fixtures/buyers/locked.py {store}",
            "--buyers",
            "3",
            "--trials",
            "2",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp.path())
        .output()
        .expect("oversell runs");
    assert_code(&out, 0, "a relative path from the working directory");
    assert_eq!(leftovers(tmp.path()), 0);
}
