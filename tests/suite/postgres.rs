//! PostgreSQL under the schedule: `{pg}` gives a buyer program the connection string of
//! a server each trial starts (copied from a cluster made once per run), what a buyer
//! sends it is a step, and the server answers before the next one. The classic ticket
//! oversell, read then write under READ COMMITTED, is found and replayed exactly; four
//! sound ways are not; no server, directory or shared memory is left after a run or a
//! SIGKILL of oversell. Without PostgreSQL each test says in one line that it skipped.

use crate::common;

use common::{assert_code, text};
use std::process::Output;

/// False, after one line saying why, when no PostgreSQL server can be started here.
fn have_postgres(test: &str) -> bool {
    match oversell::testing::postgres_available() {
        Ok(()) => true,
        Err(why) => {
            // Straight to the stream: the test harness captures `eprintln!` of a passing test.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
            false
        }
    }
}

fn explore(buyer: &str, extra: &[&str]) -> (Output, Vec<String>) {
    let cmd = format!("sh fixtures/buyers/{buyer}.sh {{pg}}");
    let mut args = vec![
        "explore",
        "--buyer-cmd",
        &cmd,
        "--store-cmd",
        "sh fixtures/stores/pg.sh {pg} {op} {tickets}",
        "--schedule",
        "pct",
        "--seed",
        "1",
        "--no-explain",
        "--no-shrink",
        // A trial of psql processes on 2 busy cores can take seconds; a hang is for a
        // buyer that makes no progress, not for a slow machine.
        "--timeout-ms",
        "60000",
    ];
    args.extend_from_slice(extra);
    let (out, tmp) = common::oversell_fresh(&args, &[]);
    let left = common::leftovers(tmp.path());
    (out, left)
}

#[test]
fn read_then_write_under_read_committed_loses_an_update_and_replays_exactly() {
    if !have_postgres("read_then_write_under_read_committed") {
        return;
    }
    let (out, left) = explore(
        "pg_read_write",
        &["--buyers", "2", "--tickets", "1", "--trials", "20"],
    );
    let t = text(&out);
    assert_code(&out, 1, "pg_read_write under pct");
    assert!(t.contains("lost_update"), "{t}");
    assert_eq!(left, Vec::<String>::new());
    common::assert_replays_exactly(&common::replay_token(&t));
}

/// The sound buyer `buyer` stays clean over pct trials of 2..3 buyers and 1..2 tickets,
/// and its servers leave nothing behind.
fn stays_clean(buyer: &str) {
    if !have_postgres(buyer) {
        return;
    }
    let (out, left) = explore(
        buyer,
        &[
            "--buyers",
            "2..3",
            "--tickets",
            "1..2",
            "--trials",
            "4",
            "--expect",
            "clean",
        ],
    );
    assert_code(&out, 0, buyer);
    assert_eq!(left, Vec::<String>::new(), "{buyer}");
}

// The four sound buyers, one test each so that they run side by side.
#[test]
fn select_for_update_stays_clean() {
    stays_clean("pg_for_update");
}

#[test]
fn update_where_count_is_positive_stays_clean() {
    stays_clean("pg_update_where");
}

#[test]
fn repeatable_read_with_retry_stays_clean() {
    stays_clean("pg_repeatable_read");
}

#[test]
fn an_advisory_lock_stays_clean() {
    stays_clean("pg_advisory");
}

#[test]
fn a_sigkilled_run_leaves_no_server_directory_or_shared_memory() {
    if !have_postgres("a_sigkilled_run_leaves_no_server") {
        return;
    }
    let before = orphan_segments();
    let tmp = crate::common::tempdir().expect("tempdir");
    let mut child = common::oversell_command()
        .args([
            "explore",
            "--buyer-cmd",
            "sh fixtures/buyers/pg_update_where.sh {pg}",
            "--store-cmd",
            "sh fixtures/stores/pg.sh {pg} {op} {tickets}",
            "--schedule",
            "pct",
            "--trials",
            "500",
            "--seed",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn oversell");
    // Killed once a trial's server is up: its postmaster.pid exists under the root.
    let up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = false;
    while std::time::Instant::now() < up && !seen {
        seen = std::fs::read_dir("/dev/shm")
            .into_iter()
            .chain(std::fs::read_dir(tmp.path()))
            .flatten()
            .flatten()
            .any(|e| e.path().join("pg/data/postmaster.pid").is_file());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "no trial's server came up");
    // The guard sweeps what the run left once it is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Marked by the run, or working in one of its trial directories (a PostgreSQL
    // backend rewrites its environment, the mark with it).
    let marked = |p: &std::path::Path| {
        std::fs::read(p.join("environ"))
            .is_ok_and(|e| String::from_utf8_lossy(&e).contains(&format!("OVERSELL_RUN={pid}-")))
            || std::fs::read_link(p.join("cwd"))
                .is_ok_and(|c| c.to_string_lossy().contains(&format!("/oversell-{pid}-")))
    };
    loop {
        let left: Vec<_> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| marked(&e.path()))
            .collect();
        let dirs = common::leftovers(tmp.path());
        let segments: Vec<String> = orphan_segments()
            .into_iter()
            .filter(|s| !before.contains(s))
            .collect();
        if left.is_empty() && dirs.is_empty() && segments.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left after SIGKILL: {} processes, {dirs:?}, segments {segments:?}",
            left.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// SysV shared memory segments nothing is attached to whose creator is gone: what a
/// killed server leaves (`/proc/sysvipc/shm`: key, shmid, perms, size, cpid, lpid,
/// nattch, …).
fn orphan_segments() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (id, cpid, nattch) = (f.get(1)?, f.get(4)?, f.get(6)?);
            let gone = !std::path::Path::new(&format!("/proc/{cpid}")).exists();
            (*nattch == "0" && gone).then(|| id.to_string())
        })
        .collect()
}
