//! `--store-cmd`: the command that keeps a buyer program's tickets when they live
//! elsewhere than the JSON store. It runs outside the schedule (no filter), once with
//! `{op}` = `init` before the buyers start and once with `{op}` = `count` after they all
//! ended; the count it prints is written into the trial's JSON store, so the checker
//! compares the claims with the data as for any other trial.

use crate::harness::process::{Ending, Group};
use crate::harness::{expand, HarnessError};
use crate::scenario::shell_quote;
use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the store command's `op` in `dir` and gives what it printed; an error when it
/// cannot start, fails, or outlives the trial's `timeout` and at least a server's start
/// time: set-up, like the servers it may talk to, which a machine slowed by load makes
/// slow, not the trial a hang.
fn run_op(
    template: &str,
    dir: &Path,
    op: &str,
    tickets: u32,
    timeout: Duration,
) -> Result<String, HarnessError> {
    let deadline = crate::harness::server_deadline(Instant::now() + timeout);
    let fail = |m: String| HarnessError::Io("running the store command", io::Error::other(m));
    let line = expand(template, dir, &[])
        .replace("{op}", &shell_quote(op))
        .replace("{tickets}", &tickets.to_string());
    let (out_path, err_path) = (dir.join("store-cmd.out"), dir.join("store-cmd.err"));
    let out = File::create(&out_path).map_err(|e| HarnessError::Io("creating store-cmd.out", e))?;
    let err = File::create(&err_path).map_err(|e| HarnessError::Io("creating store-cmd.err", e))?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let mut group = Group::default();
    let member = group.spawn_alone(cmd).map_err(HarnessError::Spawn)?;
    let limit = deadline.saturating_duration_since(Instant::now());
    let ended = group
        .end(
            Ending::Awaited(limit.max(Duration::from_millis(1))),
            None,
            || {},
        )
        .in_time;
    let exit = group.exit(member);
    let printed = std::fs::read_to_string(&out_path).unwrap_or_default();
    let said = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    match exit {
        _ if !ended => Err(fail(format!("'{line}' did not end in time"))),
        crate::ledger::Exit::Code(0) => Ok(printed),
        other => Err(fail(format!(
            "'{line}' failed ({other:?}): {}",
            said.lines().last().unwrap_or("no message")
        ))),
    }
}

/// Creates the store holding `tickets` tickets.
pub(super) fn init(
    template: &str,
    dir: &Path,
    tickets: u32,
    timeout: Duration,
) -> Result<(), HarnessError> {
    run_op(template, dir, "init", tickets, timeout).map(|_| ())
}

/// Asks the store for its final count and writes it into the trial's JSON store; a
/// count that is no number leaves no JSON store, which the checker reports.
pub(super) fn count(
    template: &str,
    dir: &Path,
    tickets: u32,
    timeout: Duration,
) -> Result<(), HarnessError> {
    let printed = run_op(template, dir, "count", tickets, timeout)?;
    let store = crate::store::path(dir);
    let last = printed.lines().rev().find(|l| !l.trim().is_empty());
    match last.and_then(|l| l.trim().parse::<i64>().ok()) {
        Some(n) => crate::store::create(&store, n)
            .map_err(|e| HarnessError::Io("writing the store command's count", e)),
        None => {
            let _ = std::fs::remove_file(&store);
            Ok(())
        }
    }
}
