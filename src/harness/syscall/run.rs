//! One syscall-controlled trial of a user's command: spawn the buyers under the filter,
//! drive them, gather what they left.

use super::stepper::{Halt, Stepper, Tracee};
use crate::harness::outcome::Parts;
use crate::harness::plan::Plan;
use crate::harness::process::{Ending, Group, MemberId};
use crate::harness::{
    expand, prepare_lock, spawn_buyer_hooked, BuyerSpec, HarnessConfig, HarnessError, Launcher,
    LockState, ScheduleRecord, TrialDir, TrialRun,
};
use crate::ledger::{Exit, History, Stuck};
use crate::protocol::{Pace, FILTER_FD};
use crate::scenario::{Target, Trial};
use crate::schedule::Scheduler;
use crate::seccomp as filter;
use crate::store;
use nix::sys::signal::Signal;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs one trial of `trial.target` under a syscall-level controlled schedule.
pub(crate) fn run(trial: &Trial, cfg: &HarnessConfig) -> Result<TrialRun, HarnessError> {
    run_with(trial, cfg, None)
}

/// [`run`], following `scheduler` when one is given.
pub(crate) fn run_with(
    trial: &Trial,
    cfg: &HarnessConfig,
    scheduler: Option<&mut dyn Scheduler>,
) -> Result<TrialRun, HarnessError> {
    let started = Instant::now();
    super::guard(&cfg.exe);
    let plan = Plan::of(trial);
    let tdir = TrialDir::create(cfg.keep.as_deref())?;
    let dir = fill_dir(&tdir.path, plan.tickets)?;
    // A user's command reads oversell's clock: virtual time, and each buyer's skew.
    let clock = match trial.command() {
        Some(_) => {
            let rates: Vec<Option<u32>> = plan.buyers.iter().map(|b| b.skew).collect();
            crate::harness::clock::TrialClock::create(&dir, &rates, trial.seed)
                .map_err(|e| HarnessError::Io("making the trial's clock", e))?
        }
        None => None,
    };
    let mut group = Group::default();
    // The semaphore or lock server of a built-in lock (`--granularity syscall`), kept
    // until the trial's processes are gone.
    let mut lock_state: Option<LockState> = None;
    // The servers a user's command names (`{redis}`, `{pg}`), the trial's own.
    let (redis_server, mut db) = match start_servers(trial, &dir, &mut group, started + cfg.timeout)
    {
        Ok(s) => s,
        Err(e) => {
            group.end(Ending::Killed, None, || {});
            return Err(e);
        }
    };
    // A whole program's one listener, for every process it starts.
    let mut whole_listener = None;
    let spawned = match &trial.target {
        Target::BuyerCmd { cmd, store_cmd } => match store_cmd {
            Some(s) => super::store_cmd::init(s, &dir, plan.tickets, cfg.timeout),
            None => Ok(()),
        }
        .and_then(|()| spawn_programs(trial.buyers, cmd, &dir, &mut group, clock.as_ref())),
        Target::Program(p) => super::program::fill_store(p, &dir, plan.tickets)
            .and_then(|()| {
                let c = clock.as_ref();
                super::program::spawn(p, &dir, trial.buyers, plan.tickets, &mut group, c)
            })
            .map(|(listener, member)| {
                whole_listener = Some(listener);
                (Vec::new(), vec![member], Vec::new())
            }),
        _ => prepare_lock(plan.lock, &dir, &mut group, &cfg.exe, started + cfg.timeout).and_then(
            |state| {
                let sem_id = state.sem.as_ref().map(|s| s.id);
                lock_state = Some(state);
                spawn_wrapped(&plan, &dir, &mut group, cfg, sem_id, clock.as_ref())
            },
        ),
    };
    if let Some(server) = redis_server {
        lock_state
            .get_or_insert(LockState {
                sem: None,
                server: None,
            })
            .server = Some(server);
    }
    let (buyers, members, _control) = match spawned {
        Ok(s) => s,
        Err(e) => {
            group.end(Ending::Killed, None, || {});
            return Err(e);
        }
    };
    // One process runs at a time: on one CPU a hand-over is a plain context switch, not
    // a wake-up across cores. The buyers started on every core; now they move.
    let (cpu, _claim) = crate::harness::pin::claim(cfg.cpu);
    let _pin = crate::harness::pin::Pinned::to(cpu);
    for &m in &members {
        crate::harness::pin::move_to(group.pid(m), cpu);
    }
    let mut stepper = Stepper::new(buyers, &dir, cfg.timeout);
    for (b, &m) in stepper.buyers.iter_mut().zip(&members) {
        b.root = group.pid(m);
        b.group = crate::seccomp::blocked::own_group(b.root);
    }
    for (b, p) in stepper.buyers.iter_mut().zip(&plan.buyers) {
        b.fail_at = p.fail_at;
        b.rate = p.skew;
        b.jump_at = p.jump_at;
    }
    let skews: Vec<String> = (plan.buyers.iter().enumerate())
        .filter_map(|(i, p)| p.skew.map(|r| (i, r)))
        .map(|(i, r)| format!("buyer {i}'s clock ran at {}×", f64::from(r) / 1000.0))
        .collect();
    stepper.clock = clock;
    stepper.strict_time = plan.clock_faults;
    let program = match &trial.target {
        Target::Program(p) => Some(p),
        _ => None,
    };
    if let Some(listener) = whole_listener {
        // Its units are found as its processes come.
        stepper.whole = Some(super::stepper::Whole::new(listener, group.pid(members[0])));
        stepper.unit_faults = plan.buyers.iter().map(|b| b.fail_at).collect();
    }
    if let Some(server) = lock_state.as_ref().and_then(|s| s.server) {
        // The lock server answers on the trial's CPU too, between steps: every thread
        // of it (it has one per buyer already).
        let pid = group.pid(server);
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
        for tid in threads {
            crate::harness::pin::move_to(tid, cpu);
        }
        stepper.helpers.push(group.pid(server));
    }
    if let Some(pid) = db.as_ref().and_then(|d| d.server_pid()) {
        stepper.helpers.push(pid);
    }

    let mut end = drive(&mut stepper, trial, scheduler);
    if let Some(object) = stepper.made.shared() {
        let stuck = matches!(end, Halt::Stuck(_) | Halt::TimedOut);
        stepper.note_unordered(format!(
            "uses {object} as a trial running beside it does{}",
            if stuck {
                ", and waited where that trial may have held it: no hang or deadlock is said"
            } else {
                ""
            }
        ));
        if stuck {
            end = Halt::Unjudged;
        }
    }
    if stepper.unreadable && matches!(end, Halt::Stuck(_) | Halt::TimedOut) {
        stepper.note_unordered(
            "waited after naming a file no step could (see above): no hang or deadlock is said"
                .to_string(),
        );
        end = Halt::Unjudged;
    }
    stepper.release_held();
    let ended: Vec<bool> = stepper.buyers.iter().map(|b| b.done).collect();
    let server = lock_state.as_ref().and_then(|s| s.server);
    let leaked = end_processes(
        &mut group,
        server,
        &end,
        std::mem::take(&mut stepper.buyers),
    );
    stepper.made.remove();
    drop(lock_state);
    plan.lock.cleanup(&dir);
    if let Halt::Interrupted(sig) = end {
        return Err(HarnessError::Interrupted(sig));
    }
    let external = matches!(trial.target, Target::BuyerCmd { .. } | Target::Program(_));
    if let Some(s) = trial.target.store_cmd() {
        super::store_cmd::count(s, &dir, plan.tickets, cfg.timeout)?;
    }
    // Its database has been counted.
    drop(db.take());
    let mut history = if let Some(p) = program {
        let (timed_out, stuck) = stuck_of(&end, None);
        let base = History {
            timed_out,
            stuck,
            ..History::default()
        };
        super::program::history(p, &dir, members[0], &group, base)?
    } else if external {
        program_history(&dir, &members, &group, &end)
    } else {
        wrapped_history(&dir, &members, &group, &plan, &end, &ended)?
    };
    stepper.note_timed_steps();
    history.syscalls = stepper.trace;
    history.unordered = std::mem::take(&mut stepper.unordered);
    history.injected = std::mem::take(&mut stepper.injected);
    history.clocks = skews;
    history.clocks.append(&mut stepper.clock_notes);
    if plan.lock.needs_redis() && !stepper.server_seen {
        // Every buyer talks to redis-server, whose state no step orders.
        history
            .unordered
            .push("the lock lives in redis-server".into());
    }
    let parts = Parts {
        history,
        kept: tdir.kept(),
        leaked,
        elapsed: started.elapsed(),
    };
    let mut run = parts.finish(&tdir.path, external)?;
    run.schedule = Some(ScheduleRecord {
        choices: stepper.walk.choices,
        preemptions: stepper.walk.preemptions,
        diverged: stepper.walk.diverged,
        steps: stepper.steps,
    });
    keep_trace(&run);
    Ok(run)
}

/// Starts the servers a user's command names: a Redis server in `group` for `{redis}`
/// (a helper member), a database for `{pg}` (in the command or the store command).
fn start_servers(
    trial: &Trial,
    dir: &Path,
    group: &mut Group,
    deadline: Instant,
) -> Result<(Option<MemberId>, Option<crate::harness::postgres::TrialDb>), HarnessError> {
    let names = |part: &str| {
        trial.command().is_some_and(|c| c.contains(part))
            || (part == "{pg}" && trial.target.store_cmd().is_some_and(|c| c.contains(part)))
    };
    let redis = match names("{redis}") {
        true => crate::harness::redis::prepare(group, dir, deadline)?,
        false => None,
    };
    let db = match names("{pg}") {
        true => Some(crate::harness::postgres::TrialDb::start(dir, deadline)?),
        false => None,
    };
    Ok((redis, db))
}

/// Ends the trial's processes however its steps ended, then lets go of the buyers'
/// listeners; true when some process was left over.
fn end_processes(
    group: &mut Group,
    server: Option<MemberId>,
    end: &Halt,
    listeners: Vec<Tracee>,
) -> bool {
    // Done means every buyer's listener hung up: no process carrying its filter is
    // alive, so only the members themselves are left to reap. Otherwise stopped calls
    // never return: nothing is to be gained by a polite signal. The listeners go only
    // once nothing they hold can run on.
    let how = match end {
        Halt::Done => Ending::Exited(Duration::from_secs(2)),
        _ => Ending::Killed,
    };
    !group.end(how, server, || drop(listeners)).clean
}

/// Writes the trial's store and empty ledger into `path`; returns its canonical path.
fn fill_dir(path: &Path, tickets: u32) -> Result<PathBuf, HarnessError> {
    store::create(&store::path(path), tickets as i64)
        .map_err(|e| HarnessError::Io("writing the store", e))?;
    File::create(crate::ledger::path(path))
        .map_err(|e| HarnessError::Io("creating the ledger", e))?;
    std::fs::canonicalize(path).map_err(|e| HarnessError::Io("resolving the trial directory", e))
}

/// The steps as they were taken, for whoever kept the directory (best effort).
fn keep_trace(run: &TrialRun) {
    if let Some(kept) = &run.kept {
        let steps = run.history.syscalls.join("\n") + "\n";
        let _ = std::fs::write(kept.join("syscalls.trace"), steps);
    }
}

/// Runs `stepper` under `scheduler`, else the trial's own strategy: its recorded steps,
/// or the strategy of its schedule (PCT over changes of shared state).
fn drive(stepper: &mut Stepper, trial: &Trial, scheduler: Option<&mut dyn Scheduler>) -> Halt {
    let mut own = None;
    let scheduler: &mut dyn Scheduler = match scheduler {
        Some(s) => s,
        None => &mut **own.insert(crate::schedule::for_trial(trial)),
    };
    stepper.run(scheduler)
}

type Spawned = (Vec<Tracee>, Vec<MemberId>, Vec<UnixStream>);

/// Takes the listener a spawned child sent, then closes the child's end in this process.
fn take_listener(ours: &UnixStream) -> Result<OwnedFd, HarnessError> {
    filter::recv_fd(ours.as_raw_fd())
        .map_err(|e| HarnessError::Io("receiving a buyer's seccomp listener", e))
}

/// `--lock-cmd`: oversell's buyer inside the user's command, one per buyer; or, with no
/// command (`--granularity syscall`), oversell's buyer alone, which installs the filter
/// itself once started (its loader and runtime start-up touch nothing of the trial).
/// Every buyer is spawned before any listener is taken, so their start-ups overlap.
fn spawn_wrapped(
    plan: &Plan,
    dir: &Path,
    group: &mut Group,
    cfg: &HarnessConfig,
    sem_id: Option<i32>,
    clock: Option<&crate::harness::clock::TrialClock>,
) -> Result<Spawned, HarnessError> {
    let prog = filter::program(false)
        .map_err(|e| HarnessError::Io("building the system-call filter", e))?;
    let self_filter = plan.wrap.is_none() && matches!(cfg.launcher, Launcher::Subcommand);
    let (mut sockets, mut members, mut control) = (Vec::new(), Vec::new(), Vec::new());
    for (index, b) in plan.buyers.iter().enumerate() {
        let spec = BuyerSpec {
            lock: plan.lock,
            dir: dir.to_path_buf(),
            index: index as u32,
            start_us: 0,
            // Under clock faults the buyer inside a user's command waits its seeded hold
            // (the lesson's delay between read and write) on the virtual clock: time
            // passes inside the critical section, and a skewed clock can show.
            hold_us: if clock.is_some() && plan.clock_faults {
                b.hold_us
            } else {
                0
            },
            store: plan.store,
            pace: Pace::Free,
            sem_id,
            reuse: false,
            kill_at: b.kill_at,
            stop_at: None,
            start_barrier: false,
            // Inside a user's command a buyer leads a group of its own; our own buyer
            // shares the trial's group, so it kills only itself.
            kill_group: plan.wrap.is_some(),
            self_filter,
        };
        let mut socket: Option<std::io::Result<(UnixStream, UnixStream)>> = None;
        let (sock, member) =
            spawn_buyer_hooked(group, cfg, &spec, plan.wrap.as_deref(), &mut |cmd| {
                if let Some(c) = clock {
                    c.give(cmd, index as u32);
                }
                socket = Some(if self_filter {
                    pass_socket(cmd)
                } else {
                    super::arm_filter(cmd, &prog)
                });
            })?;
        let (ours, theirs) = socket
            .unwrap_or_else(|| Err(std::io::Error::other("no filter socket")))
            .map_err(|e| HarnessError::Io("making a listener socket", e))?;
        drop(theirs);
        sockets.push(ours);
        members.push(member);
        control.push(sock);
    }
    let buyers = sockets
        .iter()
        .map(|s| take_listener(s).map(Tracee::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((buyers, members, control))
}

/// Hands the child one end of a fresh socket as [`FILTER_FD`], for the listener of the
/// filter it installs itself; gives both ends, as [`super::arm_filter`] does.
fn pass_socket(cmd: &mut Command) -> std::io::Result<(UnixStream, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let raw = theirs.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and calls only dup2 and fcntl,
    // which are async-signal-safe; `theirs` stays open here until the spawn returns.
    unsafe {
        cmd.pre_exec(move || crate::harness::controlled::dup_to(raw, FILTER_FD));
    }
    Ok((ours, theirs))
}

/// `--buyer-cmd`: the user's buyer program, one `sh -c LINE` per buyer.
fn spawn_programs(
    n: u32,
    template: &str,
    dir: &Path,
    group: &mut Group,
    clock: Option<&crate::harness::clock::TrialClock>,
) -> Result<Spawned, HarnessError> {
    let prog = filter::program(false)
        .map_err(|e| HarnessError::Io("building the system-call filter", e))?;
    let line = expand(template, dir, &[]);
    let (mut buyers, mut members) = (Vec::new(), Vec::new());
    for index in 0..n {
        let err = File::create(dir.join(format!("buyer-{index}.err")))
            .map_err(|e| HarnessError::Io("creating a buyer's stderr file", e))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&line)
            .env("OVERSELL_BUYER_INDEX", index.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err));
        if let Some(c) = clock {
            c.give(&mut cmd, index);
        }
        let (ours, theirs) = super::arm_filter(&mut cmd, &prog)
            .map_err(|e| HarnessError::Io("making a listener socket", e))?;
        members.push(group.spawn_alone(cmd).map_err(HarnessError::Spawn)?);
        drop(theirs);
        buyers.push(Tracee::new(take_listener(&ours)?));
    }
    Ok((buyers, members, Vec::new()))
}

fn stuck_of(end: &Halt, holder: Option<u32>) -> (bool, Option<Stuck>) {
    match end {
        Halt::TimedOut => (true, None),
        Halt::Stuck(waiting) => (
            false,
            Some(Stuck::Deadlock {
                waiting: waiting.clone(),
                holder,
            }),
        ),
        _ => (false, None),
    }
}

/// The ledger oversell's buyers wrote, with each buyer's fate.
fn wrapped_history(
    dir: &Path,
    members: &[MemberId],
    group: &Group,
    plan: &Plan,
    end: &Halt,
    ended: &[bool],
) -> Result<History, HarnessError> {
    // Killed by its fault: it ended during the run (not by the harness at its end),
    // by SIGKILL, with a kill planned.
    let faulted: Vec<bool> = (0..members.len())
        .map(|i| {
            ended[i]
                && plan.buyers[i].kill_at.is_some()
                && group.exit(members[i]) == Exit::Signal(Signal::SIGKILL as i32)
        })
        .collect();
    // The holder a stuck trial names: the buyer last killed by a fault.
    let holder = faulted.iter().rposition(|&f| f).map(|i| i as u32);
    let (timed_out, stuck) = stuck_of(end, holder);
    let mut history = History::read(&crate::ledger::path(dir))
        .map_err(|e| HarnessError::Io("reading the ledger", e))?;
    history.fates = members
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            // A schedule that diverged (a replay that no longer fits) is cut off too.
            let cut =
                timed_out || stuck.is_some() || matches!(end, Halt::Diverged | Halt::Unjudged);
            crate::harness::outcome::fate(group, m, i as u32, group.exit(m), faulted[i], cut, dir)
        })
        .collect();
    history.timed_out = timed_out;
    history.stuck = stuck;
    Ok(history)
}

/// What each buyer program claims by its exit status, in the order they ended.
fn program_history(dir: &Path, members: &[MemberId], group: &Group, end: &Halt) -> History {
    let (timed_out, stuck) = stuck_of(end, None);
    let mut history = History {
        timed_out,
        stuck,
        ..History::default()
    };
    let cut =
        timed_out || history.stuck.is_some() || matches!(end, Halt::Diverged | Halt::Unjudged);
    crate::harness::outcome::claims_by_exit(&mut history, dir, members, group, cut);
    history
}
