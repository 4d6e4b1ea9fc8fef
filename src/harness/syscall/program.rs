//! `--program`: a whole program under the schedule. It is started once, in the trial's
//! directory, with its store file filled; every process it starts inherits the filter.
//! After it ends, its sales are counted on its output and its store file is read back
//! into the trial's store, so the checker judges it as any other trial.

use crate::harness::process::{Group, MemberId};
use crate::harness::HarnessError;
use crate::ledger::{Event, EventKind, History};
use crate::scenario::Program;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where the program's standard output goes, in the trial's directory.
pub(super) const OUTPUT: &str = crate::vocab::trial_dir::PROGRAM_OUTPUT;

/// The most of its output read to count sales.
const MAX_OUTPUT: u64 = 16 << 20;

/// The program's command with the trial's names filled in ([`crate::harness::fill`]),
/// and `{buyers}` and `{tickets}`; a `{}` stays (a program is no lock command).
pub(super) fn line(p: &Program, dir: &Path, buyers: u32, tickets: u32) -> String {
    crate::harness::fill(&p.cmd, dir)
        .replace("{buyers}", &buyers.to_string())
        .replace("{tickets}", &tickets.to_string())
}

/// Fills the program's store file with `{key: tickets}`.
pub(super) fn fill_store(p: &Program, dir: &Path, tickets: u32) -> Result<(), HarnessError> {
    let path = dir.join(&p.store_file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| HarnessError::Io("creating the program's store directory", e))?;
    }
    let mut doc = serde_json::Map::new();
    doc.insert(p.store_key.clone(), serde_json::Value::from(tickets));
    let text = serde_json::Value::Object(doc).to_string();
    std::fs::write(&path, text).map_err(|e| HarnessError::Io("writing the program's store", e))
}

/// Starts the program under the filter, as the leader of a process group and a
/// subreaper (a process whose parent ends stays in its tree); gives its listener.
pub(super) fn spawn(
    p: &Program,
    dir: &Path,
    buyers: u32,
    tickets: u32,
    group: &mut Group,
    clock: Option<&crate::harness::clock::TrialClock>,
) -> Result<(OwnedFd, MemberId), HarnessError> {
    let prog = crate::seccomp::program(true)
        .map_err(|e| HarnessError::Io("building the system-call filter", e))?;
    let out = File::create(dir.join(OUTPUT))
        .map_err(|e| HarnessError::Io("creating the program's output file", e))?;
    let err = File::create(dir.join("buyer-0.err"))
        .map_err(|e| HarnessError::Io("creating the program's stderr file", e))?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(line(p, dir, buyers, tickets))
        .current_dir(dir)
        .env("OVERSELL_BUYERS", buyers.to_string())
        .env("OVERSELL_TICKETS", tickets.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if let Some(c) = clock {
        c.give(&mut cmd, crate::harness::clock::NO_UNIT);
    }
    // SAFETY: prctl is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (ours, theirs) = super::arm_filter(&mut cmd, &prog)
        .map_err(|e| HarnessError::Io("making a listener socket", e))?;
    let member = group.spawn_alone(cmd).map_err(HarnessError::Spawn)?;
    drop(theirs);
    let listener = crate::seccomp::recv_fd(std::os::fd::AsRawFd::as_raw_fd(&ours))
        .map_err(|e| HarnessError::Io("receiving the program's seccomp listener", e))?;
    Ok((listener, member))
}

/// What the program left: a sale per match of `--sold` on its output, its store file's
/// count written into the trial's store, and its first process's fate.
pub(super) fn history(
    p: &Program,
    dir: &Path,
    member: MemberId,
    group: &Group,
    mut history: History,
) -> Result<History, HarnessError> {
    let sold = sold_regex(&p.sold)
        .map_err(|e| HarnessError::Io("compiling --sold", std::io::Error::other(e.to_string())))?;
    let mut text = String::new();
    if let Ok(f) = File::open(dir.join(OUTPUT)) {
        let mut bytes = Vec::new();
        f.take(MAX_OUTPUT)
            .read_to_end(&mut bytes)
            .map_err(|e| HarnessError::Io("reading the program's output", e))?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    for (i, _) in sold.find_iter(&text).enumerate() {
        history.events.push(Event {
            ns: i as u64,
            buyer: i as u32,
            kind: EventKind::Bought,
            value: None,
        });
    }
    store_back(p, dir)?;
    let cut = history.timed_out || history.stuck.is_some();
    // A program that ended well claims its sales by its output; one that failed (a
    // status, a signal) is a crash of the program, told as its first buyer's.
    let exit = group.exit(member);
    if exit != crate::ledger::Exit::Code(0) {
        history.fates.push(crate::harness::outcome::fate(
            group, member, 0, exit, false, cut, dir,
        ));
    }
    Ok(history)
}

/// `--sold`, with `^` and `$` at each line's ends: a sale is a line the program prints.
pub(super) fn sold_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).multi_line(true).build()
}

/// Writes the count the program's store file holds into the trial's store; a file that
/// is missing, does not parse or lacks the key leaves a store that does not parse
/// either (the checker reports it as corrupt, with the excerpt).
fn store_back(p: &Program, dir: &Path) -> Result<(), HarnessError> {
    let raw = std::fs::read(dir.join(&p.store_file)).unwrap_or_default();
    let count = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v.get(&p.store_key).and_then(serde_json::Value::as_i64));
    let store = crate::store::path(dir);
    let written = match count {
        Some(n) => crate::store::create(&store, n),
        None => {
            let excerpt: String = String::from_utf8_lossy(&raw).chars().take(60).collect();
            std::fs::write(&store, format!("{}: {excerpt}", p.store_file))
        }
    };
    written.map_err(|e| HarnessError::Io("writing the program's count into the store", e))
}
