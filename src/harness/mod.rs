//! The harness: runs one [`Trial`] as real processes and collects what they left.
//!
//! This is the only module that spawns, signals or waits on processes (see `process`).
//! A trial is planned once (`plan`: every buyer's orders and faults), then executed:
//! the harness makes a private directory, writes the store, prepares the lock (a SysV
//! semaphore, or a lock-server helper), spawns one buyer process per buyer with a control
//! socket on its stdin, releases them together through a start barrier, paces them as the
//! schedule says (`free` for free-running schedules; `controlled` and `round` for
//! controlled ones, `syscall` when the steps are system calls, both driven by the one
//! step loop of `steps`; `external` for a user's buyer program), and enforces the trial's
//! timeout with TERM, grace, KILL. Then it merges the ledger into a [`History`] and reads
//! the final store (`outcome`). A trial whose every buyer failed before it started is a
//! [`HarnessError::Setup`], not a finding. Every process carries the run's mark, so the
//! next run can remove what a killed run left (`sweep`).

pub mod baseline;
pub(crate) mod clock;
mod controlled;
mod disk;
mod external;
mod free;
pub mod interrupt;
mod outcome;
mod pause;
mod pin;
mod plan;
mod pool;
pub mod postgres;
mod process;
pub mod redis;
mod round;
mod steps;
mod sweep;
mod syscall;

use crate::ledger::History;
use crate::lock::{sysv, LockError, LockKind};
use crate::protocol::CHANNEL_FD;
use crate::scenario::Trial;
use crate::store::Contents;
use process::{Group, MemberId};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::protocol::{BuyerSpec, BUYER_ENV};
pub use controlled::Session;
use outcome::{final_store, stderr_tail};
pub use pin::job_cpu;
pub use plan::Engine;
pub use pool::FreePool;
pub(crate) use process::pid_alive;
pub(crate) use sweep::RUN_ENV;
pub use sweep::{sweep_after, sweep_stale};
pub use syscall::available as syscall_control_available;

/// Removes the run's clock shim, when the run wrote one: at the end of a command (a
/// run killed before leaves it to its guard, or to the next run's sweep).
pub fn remove_clock_shim() {
    if clock::shim_written() {
        let _ = std::fs::remove_dir_all(clock::shim_dir());
    }
}

/// The prefix of every trial directory: `oversell-<owner pid>-<random>`.
pub const DIR_PREFIX: &str = "oversell-";

/// How buyer processes are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// `EXE __buyer SPEC`: the oversell binary's hidden subcommand.
    Subcommand,
    /// `EXE TEST --exact` with the spec in `OVERSELL_BUYER`: a test binary whose test
    /// `TEST` calls [`crate::assert_sound`], which then acts as the buyer.
    TestBinary {
        /// The test's name, as libtest filters it.
        test: String,
    },
}

/// How the harness runs trials.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HarnessConfig {
    /// The binary that holds the hidden `__buyer` and `__lock-server` subcommands (or,
    /// with `Launcher::TestBinary`, the test binary).
    pub exe: PathBuf,
    /// How buyers are started from `exe`.
    pub launcher: Launcher,
    /// How long a trial may make no progress before its processes are killed (`hang`):
    /// a controlled trial between two steps, a free-running one from its start.
    pub timeout: Duration,
    /// How long TERM is given before KILL.
    pub grace: Duration,
    /// Keep each trial's directory under this directory instead of removing it.
    pub keep: Option<PathBuf>,
    /// Start new buyer processes for every free-running trial (`--fresh-processes`)
    /// instead of reusing a pool of them across trials (see `FreePool`).
    pub fresh: bool,
    /// The CPU a controlled session's processes step on (`None`: the one the caller runs
    /// on when the session starts). Each job of a parallel run has its own (`job_cpu`).
    pub cpu: Option<usize>,
}

impl HarnessConfig {
    /// A config that spawns buyers from `exe`, with a 10 s trial timeout.
    pub fn new(exe: impl Into<PathBuf>) -> HarnessConfig {
        HarnessConfig {
            exe: exe.into(),
            launcher: Launcher::Subcommand,
            timeout: Duration::from_secs(10),
            grace: Duration::from_millis(300),
            keep: None,
            fresh: false,
            cpu: None,
        }
    }

    /// The same config, stepping controlled sessions on `cpu`.
    pub fn with_cpu(mut self, cpu: Option<usize>) -> Self {
        self.cpu = cpu;
        self
    }

    /// The same config, starting new buyer processes for every free-running trial.
    pub fn with_fresh(mut self, fresh: bool) -> Self {
        self.fresh = fresh;
        self
    }

    /// The same config with another trial timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same config keeping trial directories under `dir`.
    pub fn with_keep(mut self, dir: Option<PathBuf>) -> Self {
        self.keep = dir;
        self
    }
}

/// Everything one trial left behind.
#[derive(Debug, Clone)]
pub struct TrialRun {
    /// The merged ledger plus each buyer's fate.
    pub history: History,
    /// The store as the trial left it (`None` when the file is missing).
    pub final_store: Option<Contents>,
    /// Where the trial's directory was kept, when `keep` asked for it.
    pub kept: Option<PathBuf>,
    /// Processes still in the trial's group after every buyer was reaped.
    pub leaked: bool,
    /// Wall time of the trial, spawn to reap.
    pub elapsed: Duration,
    /// Under a controlled schedule: the steps the run took.
    pub schedule: Option<ScheduleRecord>,
}

/// The schedule a controlled run followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// The buyer run at each step.
    pub choices: Vec<u32>,
    /// How many of those steps preempted a buyer that could have gone on.
    pub preemptions: u32,
    /// Set when a replayed schedule no longer fit the run.
    pub diverged: Option<crate::schedule::Diverged>,
    /// What each step did, one per choice: what explaining a finding reads.
    pub steps: Vec<Seen>,
}

/// One step of a controlled run, as the explanation of a finding reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `CLOCK_MONOTONIC` nanoseconds when the step was let go (the ledger's clock): the
    /// buyer's events up to the next step's `ns` are this step's.
    pub ns: u64,
    /// What the step touched, as the conflict relation sees it.
    pub access: crate::schedule::Access,
    /// Step granularity: the point the buyer was parked at (its step performs it).
    pub point: Option<crate::protocol::Point>,
    /// System-call granularity: the file the call named (resolved), if any.
    pub object: Option<String>,
    /// System-call granularity: the call changes what it names (or is a lock call).
    pub changes: bool,
}

/// Why a trial could not be run at all (as opposed to a finding, which is data).
#[derive(Debug)]
pub enum HarnessError {
    /// Making, writing or reading the trial's files failed.
    Io(&'static str, io::Error),
    /// A buyer or helper process could not be started.
    Spawn(io::Error),
    /// The lock could not be prepared.
    Lock(LockError),
    /// The lock server did not come up.
    Server(String),
    /// SIGINT or SIGTERM arrived: the trial was stopped and its processes killed.
    Interrupted(i32),
    /// A controlled run did not follow its own recorded steps.
    Nondeterministic(String),
    /// Every buyer of a trial failed before it started (a bad `--lock-cmd` or
    /// `--buyer-cmd`, a lock that cannot be opened): the first buyer's error line,
    /// `buyer 0: …`. A setup failure, not a race.
    Setup(String),
    /// The trial asks for something this harness cannot do (a crash fault it cannot
    /// place, from a caller that did not check first).
    Refused(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Io(what, e) => write!(f, "{what}: {e}"),
            HarnessError::Spawn(e) => write!(f, "starting a buyer process: {e}"),
            HarnessError::Lock(e) => write!(f, "preparing the lock: {e}"),
            HarnessError::Server(m) => write!(f, "lock server: {m}"),
            HarnessError::Interrupted(sig) => write!(f, "interrupted by signal {sig}"),
            HarnessError::Nondeterministic(m) => {
                write!(f, "a controlled run did not repeat itself: {m}")
            }
            HarnessError::Setup(m) => write!(f, "every buyer failed before it started: {m}"),
            HarnessError::Refused(m) => write!(f, "the trial cannot run: {m}"),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io(_, e) | HarnessError::Spawn(e) => Some(e),
            HarnessError::Lock(e) => Some(e),
            HarnessError::Server(_)
            | HarnessError::Interrupted(_)
            | HarnessError::Nondeterministic(_)
            | HarnessError::Setup(_)
            | HarnessError::Refused(_) => None,
        }
    }
}

/// Where trial directories go: `TMPDIR` when it is set; otherwise `/dev/shm` when it is
/// a writable tmpfs, else the system's temporary directory. A search rewrites a trial's
/// store and ledger thousands of times a second: on a disk file system, truncating a
/// file starts its writeback and the next truncation waits for the disk.
pub fn scratch_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let user_set = std::env::var_os("TMPDIR").is_some_and(|v| !v.is_empty());
        let tmpfs = nix::sys::statfs::statfs(shm)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let writable = nix::unistd::access(
            shm,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok();
        if !user_set && tmpfs && writable {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// [`sweep_stale`] in the system's temporary directory and, when it differs, in the
/// [`scratch_root`].
pub fn sweep_stale_everywhere() -> usize {
    let tmp = std::env::temp_dir();
    let mut removed = sweep_stale(&tmp);
    if scratch_root() != tmp {
        removed += sweep_stale(scratch_root());
    }
    removed
}

/// A trial directory: removed on drop unless kept.
struct TrialDir {
    temp: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TrialDir {
    fn create(keep: Option<&Path>) -> Result<TrialDir, HarnessError> {
        // A kept directory is named `oversell-kept-…`, which no later run sweeps.
        let prefix = match keep {
            Some(_) => format!("{DIR_PREFIX}kept-{}-", std::process::id()),
            None => format!("{DIR_PREFIX}{}-", std::process::id()),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        let temp = match keep {
            Some(k) => builder.tempdir_in(k),
            None => builder.tempdir_in(scratch_root()),
        }
        .map_err(|e| HarnessError::Io("making the trial directory", e))?;
        let path = temp.path().to_path_buf();
        if keep.is_some() {
            let path = temp.keep();
            return Ok(TrialDir { temp: None, path });
        }
        Ok(TrialDir {
            temp: Some(temp),
            path,
        })
    }
}

impl TrialDir {
    /// Where the directory stays after the trial, when `--keep` asked for it.
    fn kept(&self) -> Option<PathBuf> {
        self.temp.is_none().then(|| self.path.clone())
    }
}

impl Drop for TrialDir {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = t.close();
        }
    }
}

/// The file a trial's SysV semaphore id is noted in, so a sweep can remove it.
pub(super) const SEM_NOTE: &str = "sem.id";

/// Runs one trial and returns what it left. Findings are not errors: see [`crate::check()`].
pub fn run(trial: &Trial, cfg: &HarnessConfig) -> Result<TrialRun, HarnessError> {
    run_on(Engine::of(trial, cfg), trial, cfg)
}

/// Runs one trial on `engine`, the one [`Engine::of`] chose for it (a caller that keeps
/// a session or a pool chooses once, and hands the rest here).
pub fn run_on(
    engine: Engine,
    trial: &Trial,
    cfg: &HarnessConfig,
) -> Result<TrialRun, HarnessError> {
    if let Some(why) = trial.crash_refused() {
        return Err(HarnessError::Refused(why));
    }
    match engine {
        Engine::SystemCalls => syscall::run(trial, cfg),
        Engine::BuyerCommand => match &trial.target {
            crate::scenario::Target::BuyerCmd { cmd, .. } => external::run(trial, cmd, cfg),
            _ => Err(HarnessError::Refused(
                "a buyer command trial without its command".into(),
            )),
        },
        Engine::Steps => {
            let mut session = Session::new(trial.lock(), trial.store, cfg)?;
            let mut scheduler = crate::schedule::for_trial(trial);
            session.run(trial, &mut *scheduler)
        }
        // One trial alone: a pool would serve it once.
        Engine::Pool | Engine::Free => free::run(trial, cfg),
    }
}

/// Runs one trial of a user's command (`--lock-cmd`, `--buyer-cmd`) under a controlled
/// schedule at system-call granularity, following `scheduler` (else the trial's own).
pub fn run_syscall(
    trial: &Trial,
    cfg: &HarnessConfig,
    scheduler: Option<&mut dyn crate::schedule::Scheduler>,
) -> Result<TrialRun, HarnessError> {
    syscall::run_with(trial, cfg, scheduler)
}

/// Fills a user's command template's names of the trial: `{dir}`, `{store}` and
/// `{redis}` (the socket of the trial's own Redis server) become shell-quoted paths,
/// `{pg}` the connection string of its PostgreSQL server.
pub(crate) fn fill(template: &str, dir: &Path) -> String {
    let q = |p: &Path| crate::scenario::shell_quote(&p.to_string_lossy());
    template
        .replace("{dir}", &q(dir))
        .replace("{store}", &q(&crate::store::path(dir)))
        .replace("{redis}", &q(&dir.join(redis::SOCKET)))
        .replace(
            "{pg}",
            &crate::scenario::shell_quote(&postgres::conninfo(dir)),
        )
}

/// [`fill`], and `{}` made the shell-quoted words of `inner`.
pub(crate) fn expand(template: &str, dir: &Path, inner: &[String]) -> String {
    let inner: Vec<String> = inner
        .iter()
        .map(|w| crate::scenario::shell_quote(w))
        .collect();
    fill(template, dir).replace("{}", &inner.join(" "))
}

/// Spawns a buyer; with `wrap`, inside a user's lock command (`sh -c TEMPLATE`, `{}` the
/// buyer), as the leader of a process group of its own.
fn spawn_buyer_in(
    group: &mut Group,
    cfg: &HarnessConfig,
    spec: &BuyerSpec,
    wrap: Option<&str>,
) -> Result<(UnixStream, MemberId), HarnessError> {
    spawn_buyer_hooked(group, cfg, spec, wrap, &mut |_| {})
}

/// [`spawn_buyer_in`], with `hook` given the command just before it is spawned.
fn spawn_buyer_hooked(
    group: &mut Group,
    cfg: &HarnessConfig,
    spec: &BuyerSpec,
    wrap: Option<&str>,
    hook: &mut dyn FnMut(&mut Command),
) -> Result<(UnixStream, MemberId), HarnessError> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| HarnessError::Io("making a control socket", e))?;
    let json = spec.encode();
    let err = File::create(spec.dir.join(format!("buyer-{}.err", spec.index)))
        .map_err(|e| HarnessError::Io("creating a buyer's stderr file", e))?;
    let mut cmd = Command::new(&cfg.exe);
    match &cfg.launcher {
        Launcher::Subcommand if wrap.is_some() => {
            let inner = [
                cfg.exe.to_string_lossy().into_owned(),
                "__buyer".into(),
                json,
            ];
            cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(expand(wrap.unwrap_or("{}"), &spec.dir, &inner));
        }
        Launcher::Subcommand => {
            cmd.arg("__buyer").arg(json);
        }
        Launcher::TestBinary { test } => {
            cmd.arg(test)
                .arg("--exact")
                .arg("--test-threads=1")
                .env(BUYER_ENV, json);
        }
    }
    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::from(err));
    if wrap.is_some() {
        // SAFETY: the closure runs in the child between fork and exec, after standard
        // input is in place, and calls only dup2 and fcntl, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| controlled::dup_to(0, CHANNEL_FD));
        }
    }
    hook(&mut cmd);
    let member = if wrap.is_some() {
        group.spawn_alone(cmd)
    } else {
        group.spawn(cmd)
    }
    .map_err(HarnessError::Spawn)?;
    Ok((ours, member))
}

fn start_server(
    group: &mut Group,
    exe: &Path,
    dir: &Path,
    deadline: Instant,
) -> Result<MemberId, HarnessError> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| HarnessError::Io("making the server's pipe", e))?;
    let err = File::create(dir.join("lock-server.err"))
        .map_err(|e| HarnessError::Io("creating the server's stderr file", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("__lock-server")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::from(err));
    let member = group.spawn(cmd).map_err(HarnessError::Spawn)?;
    // `connect` fails until the server listens: wait for its ready line.
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    ours.set_read_timeout(Some(wait))
        .map_err(|e| HarnessError::Io("waiting for the lock server", e))?;
    let mut buf = [0u8; 6];
    let mut got = 0;
    let mut reader = &ours;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Err(HarnessError::Server(format!(
                    "no ready line from the lock server: {e}"
                )))
            }
        }
    }
    if &buf[..got] != b"ready\n" {
        let why = std::fs::read_to_string(dir.join("lock-server.err")).unwrap_or_default();
        return Err(HarnessError::Server(format!(
            "the lock server did not start: {}",
            why.lines().last().unwrap_or("no message").trim()
        )));
    }
    Ok(member)
}

/// A buyer process kept across rounds (a controlled [`Session`]'s, a [`FreePool`]'s),
/// reached through control channel `C`.
struct Reused<C> {
    sock: C,
    member: MemberId,
    /// Said `ready` and waits at the start barrier.
    idle: bool,
}

/// Fills slot `index` of a session's or a pool's buyers with one from `spawn`, given the
/// index, unless it holds one already.
fn ensure_reused<C>(
    slots: &mut Vec<Option<Reused<C>>>,
    index: usize,
    spawn: impl FnOnce(u32) -> Result<(C, MemberId), HarnessError>,
) -> Result<(), HarnessError> {
    if slots.len() <= index {
        slots.resize_with(index + 1, || None);
    }
    if slots[index].is_none() {
        let (sock, member) = spawn(index as u32)?;
        slots[index] = Some(Reused {
            sock,
            member,
            idle: false,
        });
    }
    Ok(())
}

/// The shared state of a trial directory: the semaphore or lock server a lock needs.
struct LockState {
    sem: Option<sysv::Semaphore>,
    server: Option<MemberId>,
}

/// The least time a trial's own server (redis-server, postgres) is given to start, and
/// a `--store-cmd` to set up or count the store, whatever the trial's timeout: set-up
/// slowed by a loaded machine is no hang of the trial, and a server that fails exits,
/// which is seen at once.
const SERVER_START: Duration = Duration::from_secs(60);

/// When a server started now must be up, given the trial's own `deadline`.
fn server_deadline(deadline: Instant) -> Instant {
    deadline.max(Instant::now() + SERVER_START)
}

fn prepare_lock(
    lock: LockKind,
    dir: &Path,
    group: &mut Group,
    exe: &Path,
    deadline: Instant,
) -> Result<LockState, HarnessError> {
    let sem = if lock == LockKind::Sysv {
        let sem = sysv::Semaphore::create().map_err(HarnessError::Lock)?;
        std::fs::write(dir.join(SEM_NOTE), sem.id.to_string())
            .map_err(|e| HarnessError::Io("noting the semaphore id", e))?;
        Some(sem)
    } else {
        None
    };
    let server = if lock.needs_server() {
        Some(start_server(group, exe, dir, deadline)?)
    } else if lock.needs_redis() {
        redis::prepare(group, dir, deadline)?
    } else {
        None
    };
    Ok(LockState { sem, server })
}
