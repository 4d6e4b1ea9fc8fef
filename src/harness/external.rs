//! `--buyer-cmd`: a user's whole buyer program, one process per buyer.
//!
//! The program gets the store's path (`{store}`) and the trial directory (`{dir}`); it
//! writes no ledger, so the harness records what its exit status claims: 0 bought a
//! ticket, 3 found none, anything else is a crash (with its stderr tail), unless every
//! buyer failed the same way as a shell does for a bad command (a setup error). Each buyer
//! runs as `sh -c TEMPLATE` in the user's working directory, leading a process group of
//! its own, so whatever it starts is killed with it.

use super::outcome::Parts;
use super::process::{Ending, Group, MemberId};
use super::{expand, HarnessConfig, HarnessError, TrialDir, TrialRun};
use crate::ledger::History;
use crate::scenario::Trial;
use crate::store;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Exit status of a buyer program that found no ticket.
pub const SOLD_OUT: i32 = 3;

/// Spawns `buyers` copies of the buyer program `line` (`sh -c LINE`, in the user's
/// working directory), each leading a process group of its own.
fn spawn_all(
    buyers: u32,
    line: &str,
    dir: &std::path::Path,
    group: &mut Group,
) -> Result<Vec<MemberId>, HarnessError> {
    let mut members = Vec::with_capacity(buyers as usize);
    for index in 0..buyers {
        let err = File::create(dir.join(format!("buyer-{index}.err")))
            .map_err(|e| HarnessError::Io("creating a buyer's stderr file", e))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(line)
            .env("OVERSELL_BUYER_INDEX", index.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err));
        members.push(group.spawn_alone(cmd).map_err(HarnessError::Spawn)?);
    }
    Ok(members)
}

/// Runs one trial of a user's buyer program.
pub(super) fn run(
    trial: &Trial,
    template: &str,
    cfg: &HarnessConfig,
) -> Result<TrialRun, HarnessError> {
    let started = Instant::now();
    let dir = TrialDir::create(cfg.keep.as_deref())?;
    let store_path = store::path(&dir.path);
    store::create(&store_path, trial.tickets as i64)
        .map_err(|e| HarnessError::Io("writing the store", e))?;
    let mut group = Group::default();
    let members = spawn_all(
        trial.buyers,
        &expand(template, &dir.path, &[]),
        &dir.path,
        &mut group,
    )?;
    let deadline = started + cfg.timeout;
    let mut timed_out = false;
    while !group.wait_all(Duration::from_millis(20)) {
        if let Some(sig) = super::interrupt::pending() {
            group.end(Ending::Asked(cfg.grace), None, || {});
            return Err(HarnessError::Interrupted(sig));
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
    }
    let how = if timed_out {
        Ending::Asked(cfg.grace)
    } else {
        Ending::Awaited(Duration::ZERO)
    };
    let leaked = !group.end(how, None, || {}).clean;

    let mut history = History {
        timed_out,
        ..History::default()
    };
    super::outcome::claims_by_exit(&mut history, &dir.path, &members, &group, timed_out);
    let parts = Parts {
        history,
        kept: dir.kept(),
        leaked,
        elapsed: started.elapsed(),
    };
    parts.finish(&dir.path, true)
}
