//! One notified system call: receiving it, deciding whether it is a step (it touches
//! shared state, or it is a sleep), what it returns, and answering it. Whether a lock
//! call would block is `probe`'s.

pub(crate) use super::paths::read_mem;
use super::paths::{fd_path, path_at, resolve, resolve_in, scratch, shared_outside};
use crate::faults::InjectedErrno;
use crate::schedule::{Access, StepHint};
use crate::seccomp::{Effect, LockForm, Shape};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// A system call a process of a buyer is stopped in, waiting for the harness.
#[derive(Debug, Clone)]
pub(crate) struct Notif {
    pub id: u64,
    /// Not a notified call: a task held stopped by `ptrace` after a fork
    /// (`stepper/fork.rs`), let go by detaching it.
    pub held: bool,
    pub pid: u32,
    pub nr: i64,
    pub args: [u64; 6],
}

#[cfg(test)]
impl Notif {
    /// A notification of call `nr` made by this process, for tests.
    pub(crate) fn own(nr: i64, args: [u64; 6]) -> Notif {
        Notif {
            id: 0,
            held: false,
            pid: std::process::id(),
            nr,
            args,
        }
    }
}

/// A notified call that is a yield point.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The call's name (`SYS_openat`).
    pub name: &'static str,
    /// The path it touches (inside the trial directory), or empty for a sleep.
    pub path: String,
    /// What it does, from the table of calls (`seccomp::calls`).
    pub effect: Effect,
    /// It names what it touches by a descriptor (a read, a write, an `fsync`), not a path.
    pub by_fd: bool,
    /// It changes shared state (creates, writes, removes, renames, locks): PCT's change
    /// points fall on such steps.
    pub mutates: bool,
    /// A lock call that may block: how to probe it.
    pub lock: Option<LockCall>,
    /// A sleep: how long it asks for, ns (on its caller's own clock).
    pub span: u64,
    /// A sleep until a deadline on `CLOCK_MONOTONIC` (`TIMER_ABSTIME`), ns: the clock
    /// shim's sleeps, whose deadline it fixed on the trial's clock.
    pub until: Option<u64>,
    /// A sleep: the virtual time it ends at, set when it is stopped.
    pub wake: u64,
    /// The paths it names, absolute, as written (`objects` reads what they reach when
    /// the call is about to run); empty for a call through a descriptor.
    pub names: Vec<PathBuf>,
    /// It sets a file's times to ones it was given (`touch -d`), not to now.
    pub sets_times: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum LockCall {
    Flock {
        fd: i32,
        op: i32,
    },
    Fcntl {
        fd: i32,
        cmd: i32,
        addr: u64,
    },
    /// A `futex` wait with no time limit on shared memory (a contended `sem_wait`, a
    /// process-shared mutex): it sleeps while the word at `addr` holds `val`.
    FutexWait {
        addr: u64,
        val: u32,
    },
}

impl Step {
    /// A step of call `name` on `path` doing `effect`, changing shared state when
    /// `mutates`: by its path, no lock call, no sleep, no names read yet.
    pub(crate) fn new(name: &'static str, path: String, effect: Effect, mutates: bool) -> Step {
        Step {
            name,
            path,
            effect,
            by_fd: false,
            mutates,
            lock: None,
            span: 0,
            until: None,
            wake: 0,
            names: Vec::new(),
            sets_times: false,
        }
    }

    /// What the call touches by its class alone, with no look at the file system: a look
    /// reads (every object), anything else touches everything. What a run that does not
    /// reduce records for explaining a finding (naming the objects costs calls per step;
    /// the search names them, in `objects.rs`).
    pub(crate) fn class_access(&self) -> Access {
        let only_reads = !self.mutates
            && self.lock.is_none()
            && self.effect != Effect::Release
            && !self.path.ends_with(crate::ledger::FILE_NAME);
        if only_reads {
            Access::at(crate::vocab::Point::Read, crate::vocab::LockKind::None)
        } else {
            Access::EVERYTHING
        }
    }

    /// A sleep: it yields, and returns at once without running.
    pub(crate) fn sleep(&self) -> bool {
        self.effect == Effect::Sleep
    }

    /// What a strategy that counts steps needs of this one ([`StepHint`]): whether its
    /// effect on the others can show (a change of shared state, or a sleep), and whether
    /// it changes the store (the store file itself, or the temporary file an atomic
    /// write renames over it, `store.tmp.PID`).
    pub(crate) fn hint(&self) -> StepHint {
        let stem = crate::store::FILE_NAME
            .split('.')
            .next()
            .unwrap_or(crate::store::FILE_NAME);
        let store = self.mutates
            && Path::new(&self.path)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| {
                    n == crate::store::FILE_NAME
                        || n.strip_prefix(stem).is_some_and(|r| r.starts_with(".tmp."))
                });
        StepHint {
            counts: self.mutates || self.sleep(),
            store,
        }
    }

    /// A look and nothing else (no sleep, no change, no lock call, no close, no ledger
    /// line): what may repeat into a poll.
    pub(crate) fn only_looks(&self) -> bool {
        matches!(self.effect, Effect::Look | Effect::Open(_))
            && !self.mutates
            && self.lock.is_none()
            && !self.path.ends_with(crate::ledger::FILE_NAME)
    }

    /// True when this call, on a file of the trial directory `dir` (the ledger is
    /// oversell's, never failed), is one a real system can fail with `errno`: `ENOSPC` a
    /// change, `EIO` a read, write or sync through a descriptor, `EINTR` a lock call or
    /// a read or write through a descriptor, `EACCES` an open or a change of a path.
    pub(crate) fn can_fail_with(&self, errno: InjectedErrno, dir: &Path) -> bool {
        let path = Path::new(&self.path);
        if !path.starts_with(dir) || ledger(path, dir) {
            return false;
        }
        let rw = matches!(self.effect, Effect::Look | Effect::Change);
        match errno {
            InjectedErrno::Enospc => {
                self.mutates && matches!(self.effect, Effect::Change | Effect::Open(_))
            }
            InjectedErrno::Eio => self.by_fd && (rw || self.effect == Effect::Sync),
            InjectedErrno::Eintr => matches!(self.effect, Effect::Lock(_)) || (self.by_fd && rw),
            InjectedErrno::Eacces => {
                !self.by_fd && matches!(self.effect, Effect::Open(_) | Effect::Change)
            }
        }
    }

    /// `openat lock.d` — the call without its `SYS_` and the path relative to `dir`.
    pub(crate) fn label(&self, dir: &Path) -> String {
        let name = self.name.strip_prefix("SYS_").unwrap_or(self.name);
        let path = Path::new(&self.path);
        match path.strip_prefix(dir) {
            Ok(rel) if rel.as_os_str().is_empty() => format!("{name} ."),
            Ok(rel) => format!("{name} {}", rel.display()),
            Err(_) if self.path.is_empty() => name.to_string(),
            Err(_) => format!("{name} {}", self.path),
        }
    }
}

/// Receives one notification; `None` when the process it came from is already gone.
pub(crate) fn recv(listener: RawFd) -> io::Result<Option<Notif>> {
    super::paths::new_notification();
    // SAFETY: `n` is a zeroed seccomp_notif, as SECCOMP_IOCTL_NOTIF_RECV requires.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `n`.
    let r = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(Notif {
        held: false,
        id: n.id,
        pid: n.pid,
        nr: i64::from(n.data.nr),
        args: n.data.args,
    }))
}

/// Lets the call run (`cont`), or makes it return 0 at once without running (a sleep).
/// A process killed meanwhile cannot be answered; that is not an error.
pub(crate) fn answer(listener: RawFd, id: u64, cont: bool) {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: if cont {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp.
    unsafe {
        libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

/// Makes the call fail with `errno` without running it (an errno fault). A process
/// killed meanwhile cannot be answered; that is not an error.
pub(crate) fn fail(listener: RawFd, id: u64, errno: i32) {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp.
    unsafe {
        libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

/// True while the notification's process still waits in the call (its pid was not
/// reused since the notification was read).
fn valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// The step this call is, if it is one: a sleep, or a call on shared state. Paths are
/// compared as what they are, not as written: each is resolved (its directory's
/// symbolic links, `..`, a relative path, a directory descriptor) before it is judged.
/// A call is a step when it touches the trial directory `dir` (the buyers' stderr files
/// excepted), changes anything outside the system's own trees ([`shared_outside`]), or
/// looks at a scratch place that buyers share (`/tmp`, `/dev/shm`, …). `dir` is
/// resolved already.
pub(crate) fn classify(listener: RawFd, n: &Notif, dir: &Path) -> Option<Step> {
    let call = crate::seccomp::of(n.nr)?;
    let (name, effect) = (call.name, call.effect);
    let a = |i: usize| n.args[i];
    let nameless = |mutates: bool| Step::new(name, String::new(), effect, mutates);
    match effect {
        Effect::Sleep => {
            let (span, until) = sleep_span(n, name);
            return Some(Step {
                span,
                until,
                ..nameless(false)
            });
        }
        Effect::Ipc if name == "SYS_futex" => return Some(futex(n, nameless(true))),
        // Shared state with no name to compare: it conflicts with every step.
        Effect::Ipc => return Some(nameless(true)),
        // A wait for no descriptor with a time limit (Perl's `select(undef, undef,
        // undef, 0.25)`, `poll(NULL, 0, ms)`) is a sleep.
        Effect::Unordered => {
            return descriptorless_wait(n, name).map(|span| Step {
                span,
                until: None,
                ..Step::new(name, String::new(), Effect::Sleep, false)
            })
        }
        Effect::Timer => return None,
        Effect::Spawn => return Some(nameless(false)),
        _ => {}
    }
    let paths: Vec<PathBuf> = match call.shape {
        Shape::Nameless => return None,
        Shape::Path(p) => vec![path_at(n.pid, libc::AT_FDCWD as u64, a(p))?],
        Shape::PathAt(d, p) if name == "SYS_openat2" => {
            vec![super::paths::openat2_path(n.pid, a(d), a(p), a(2))?]
        }
        Shape::PathAt(d, p) => vec![path_at(n.pid, a(d), a(p))?],
        Shape::Paths(p, q) => {
            let cwd = libc::AT_FDCWD as u64;
            vec![path_at(n.pid, cwd, a(p))?, path_at(n.pid, cwd, a(q))?]
        }
        Shape::PathsAt(d, p, e, q) => {
            vec![path_at(n.pid, a(d), a(p))?, path_at(n.pid, a(e), a(q))?]
        }
        // A socket or a pipe (`socket:[N]`) is no file of the trial.
        Shape::Fd(f) => vec![fd_path(n.pid, a(f) as i32).filter(|p| p.is_absolute())?],
    };
    // A test of who holds a lock (`F_GETLK`, `lockf(F_TEST)`): a look at the file's
    // locks, which a test-then-act wrapper decides by, through its descriptor. A file's
    // write-life hint and a memory file's seals are state of the file every open of it
    // shares: a look, or a change ([`fcntl_on_file`]).
    let effect = match (name == "SYS_fcntl").then(|| fcntl_on_file(a(1) as i32)) {
        Some(Some(e)) => e,
        _ => effect,
    };
    let lock = match effect {
        Effect::Lock(LockForm::Flock) => Some(LockCall::Flock {
            fd: a(0) as i32,
            op: a(1) as i32,
        }),
        Effect::Lock(LockForm::Fcntl) => {
            let cmd = a(1) as i32;
            let locks = [
                libc::F_SETLK,
                libc::F_SETLKW,
                libc::F_OFD_SETLK,
                libc::F_OFD_SETLKW,
            ];
            if !locks.contains(&cmd) {
                return None;
            }
            Some(LockCall::Fcntl {
                fd: a(0) as i32,
                cmd,
                addr: a(2),
            })
        }
        _ => None,
    };
    let changes = effect.changes(name, &n.args);
    // A lock, or a test of one, is shared state on any file every process can open: a
    // device's too (a POSIX lock on `/dev/null`, a byte per user).
    let on_locks = lock.is_some() || tests_a_lock(name, a(1));
    let names = if matches!(call.shape, Shape::Fd(_)) {
        Vec::new()
    } else {
        paths.clone()
    };
    let paths: Vec<PathBuf> = paths.into_iter().map(|p| resolve_in(p, dir)).collect();
    let shared = paths.iter().find(|p| {
        if own_clock_path(p, dir) {
            return false;
        }
        // The trial directory itself: a change of it (its mode, owner, times) and a
        // lock on it are steps. A look at it is none (every process in it looks at its
        // working directory, Python a dozen times), so a change of it is named
        // ([`unwatched_change`]); its entries are steps of their own.
        if p.as_path() == dir {
            let by_fd = matches!(call.shape, Shape::Fd(_));
            return (changes && changes_attributes(name, by_fd)) || lock.is_some();
        }
        if p.starts_with(dir) {
            return !own(p, dir);
        }
        if on_locks && !p.starts_with("/proc") {
            return true;
        }
        if changes {
            shared_outside(p)
        } else {
            scratch(p)
        }
    })?;
    // A pid reused between the notification and the reads above gave a stranger's path.
    if !valid(listener, n.id) {
        return None;
    }
    let path = shared.to_string_lossy().into_owned();
    // Times given to `utimensat`, `utimes`, `futimesat` or `utime` (a null pointer
    // asks for now).
    let sets_times = match name {
        "SYS_utimensat" | "SYS_futimesat" => a(2) != 0,
        "SYS_utimes" | "SYS_utime" => a(1) != 0,
        _ => false,
    };
    Some(Step {
        by_fd: matches!(call.shape, Shape::Fd(_)),
        lock,
        names,
        sets_times,
        ..Step::new(name, path, effect, changes && !ledger(shared, dir))
    })
}

/// What a call that names a file by a relative path does, when the directory it is
/// relative to has no path the harness can read (a working directory nested past
/// `PATH_MAX`, whose `/proc/PID/cwd` cannot be read): no step can name the file, so a
/// lock kept there is taken and let go unseen. `None` for any other call.
pub(crate) fn unreadable(n: &Notif) -> Option<String> {
    let call = crate::seccomp::of(n.nr)?;
    let pairs: Vec<(u64, u64)> = match call.shape {
        Shape::Path(p) => vec![(libc::AT_FDCWD as u64, n.args[p])],
        Shape::PathAt(d, p) => vec![(n.args[d], n.args[p])],
        Shape::Paths(p, q) => vec![
            (libc::AT_FDCWD as u64, n.args[p]),
            (libc::AT_FDCWD as u64, n.args[q]),
        ],
        Shape::PathsAt(d, p, e, q) => vec![(n.args[d], n.args[p]), (n.args[e], n.args[q])],
        Shape::Fd(_) | Shape::Nameless => return None,
    };
    pairs.into_iter().find_map(|(dirfd, ptr)| {
        // A name read whole (as the call was classified: no second read) is readable.
        if ptr == 0 || path_at(n.pid, dirfd, ptr).is_some() {
            return None;
        }
        let raw = super::paths::read_cstr(n.pid, ptr)?;
        if raw.is_empty() || raw.starts_with('/') {
            return None;
        }
        // A process gone meanwhile reads as nothing too: only a live one is named.
        if super::paths::dir_of(n.pid, dirfd).is_some() || !Path::new(&format!("/proc/{}", n.pid)).exists() {
            return None;
        }
        Some(format!(
            "names {raw} in a directory whose path cannot be read (nested past PATH_MAX?), which no step names"
        ))
    })
}

/// `fcntl` commands other than the lock ones: those that read or set state of the file
/// itself, which every open of it shares (`F_GETLK` a look at its locks; the write-life
/// hints; a memory file's seals), as a look or a change through the descriptor; `None`
/// for the rest (a descriptor's own flags, a pipe's size).
pub(crate) fn fcntl_on_file(cmd: i32) -> Option<Effect> {
    match cmd {
        _ if tests_a_lock("SYS_fcntl", cmd as u64) => Some(Effect::Look),
        F_GET_RW_HINT | F_GET_FILE_RW_HINT | F_GET_SEALS => Some(Effect::Look),
        F_SET_RW_HINT | F_SET_FILE_RW_HINT | F_ADD_SEALS => Some(Effect::Change),
        _ => None,
    }
}

/// True for call `name` with second argument `arg` when it tests who holds a lock on a
/// file (`fcntl(F_GETLK)`, `F_OFD_GETLK`; `lockf(F_TEST)` is the first).
pub(crate) fn tests_a_lock(name: &str, arg: u64) -> bool {
    name == "SYS_fcntl" && [libc::F_GETLK, libc::F_OFD_GETLK].contains(&(arg as i32))
}

/// Linux's `fcntl` commands past `F_LINUX_SPECIFIC_BASE` (1024) that name file state.
pub(crate) const F_SETLEASE: i32 = 1024;
/// Directory change notices (dnotify).
pub(crate) const F_NOTIFY: i32 = 1026;
const F_ADD_SEALS: i32 = 1033;
const F_GET_SEALS: i32 = 1034;
const F_GET_RW_HINT: i32 = 1035;
const F_SET_RW_HINT: i32 = 1036;
const F_GET_FILE_RW_HINT: i32 = 1037;
const F_SET_FILE_RW_HINT: i32 = 1038;

/// The longest sleep a step may ask for, ns (an hour): what a sleep moves the clock by
/// is bounded.
const MAX_SPAN: u64 = 3_600 * 1_000_000_000;

/// How long a `nanosleep` or `clock_nanosleep` asks to sleep, ns: its request read from
/// the caller's memory; and for an absolute one on `CLOCK_MONOTONIC` (the clock shim's),
/// its deadline. Any other absolute one (from a program the shim does not reach) counts
/// from the machine's clock.
fn sleep_span(n: &Notif, name: &str) -> (u64, Option<u64>) {
    let (clock, flags, at) = match name {
        "SYS_nanosleep" => (libc::CLOCK_MONOTONIC, 0, n.args[0]),
        _ => (n.args[0] as libc::clockid_t, n.args[1] as i32, n.args[2]),
    };
    let mut raw = [0u8; 16];
    if super::paths::read_mem(n.pid, at, &mut raw) != Some(16) {
        return (0, None);
    }
    let sec = i64::from_ne_bytes(raw[..8].try_into().unwrap_or([0; 8]));
    let nsec = i64::from_ne_bytes(raw[8..].try_into().unwrap_or([0; 8]));
    let ns = sec
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec)
        .max(0);
    if flags & libc::TIMER_ABSTIME == 0 {
        return ((ns as u64).min(MAX_SPAN), None);
    }
    if clock == libc::CLOCK_MONOTONIC {
        return (0, Some(ns as u64));
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::from_raw(clock))
        .map(|t| {
            t.tv_sec()
                .saturating_mul(1_000_000_000)
                .saturating_add(t.tv_nsec())
        })
        .unwrap_or(ns);
    ((ns.saturating_sub(now).max(0) as u64).min(MAX_SPAN), None)
}

/// How long a `select`, `pselect6`, `poll` or `ppoll` of no descriptor with a time limit
/// sleeps, ns (at most [`MAX_SPAN`]); `None` for any other call, or one that waits on
/// descriptors or for ever.
fn descriptorless_wait(n: &Notif, name: &str) -> Option<u64> {
    let a = |i: usize| n.args[i];
    // (the time limit's address, whether it is a `timeval` (µs) rather than a `timespec`)
    let (at, micros) = match name {
        "SYS_select" if a(0) == 0 && a(4) != 0 => (a(4), true),
        "SYS_pselect6" if a(0) == 0 && a(4) != 0 => (a(4), false),
        "SYS_ppoll" if a(1) == 0 && a(2) != 0 => (a(2), false),
        "SYS_poll" if a(1) == 0 && (a(2) as i32) > 0 => {
            return Some(((a(2) as i32) as u64 * 1_000_000).min(MAX_SPAN))
        }
        _ => return None,
    };
    let mut raw = [0u8; 16];
    if super::paths::read_mem(n.pid, at, &mut raw) != Some(16) {
        return None;
    }
    let sec = i64::from_ne_bytes(raw[..8].try_into().unwrap_or([0; 8])).max(0) as u64;
    let frac = i64::from_ne_bytes(raw[8..].try_into().unwrap_or([0; 8])).max(0) as u64;
    let ns = sec.saturating_mul(1_000_000_000).saturating_add(if micros {
        frac.saturating_mul(1_000)
    } else {
        frac
    });
    Some(ns.min(MAX_SPAN))
}

/// True unless `/proc/PID/maps` shows `addr` in a private mapping of task `pid`: only a
/// shared mapping (`MAP_SHARED`, a file in `/dev/shm`, System V memory) can hold a futex
/// word another process waits on or wakes, since a private one is copied on a fork (a
/// `pthread_join` waits on the joined thread's id there, which the kernel clears as the
/// thread exits). A word the maps do not place (the task gone, the file unreadable)
/// counts as shared.
pub(crate) fn shared_memory(pid: u32, addr: u64) -> bool {
    let Some(maps) = super::paths::read_proc(format!("/proc/{pid}/maps")) else {
        return true;
    };
    mapping_is_shared(&maps, addr).unwrap_or(true)
}

/// Whether the mapping of `maps` (the text of `/proc/PID/maps`) holding `addr` is shared;
/// `None` when none holds it.
fn mapping_is_shared(maps: &str, addr: u64) -> Option<bool> {
    maps.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (start, end) = words.next()?.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        let perms = words.next()?;
        (start <= addr && addr < end).then(|| perms.as_bytes().get(3) == Some(&b's'))
    })
}

/// A `futex` call on shared memory: a wait with no time limit is a lock call that
/// blocks while its word is unchanged (it changes nothing); a wake, or a timed wait, a
/// change that conflicts with every step.
fn futex(n: &Notif, step: Step) -> Step {
    let op = (n.args[1] as i32) & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
    let waits = op == libc::FUTEX_WAIT || op == libc::FUTEX_WAIT_BITSET;
    if !waits || n.args[3] != 0 {
        return step;
    }
    Step {
        mutates: false,
        lock: Some(LockCall::FutexWait {
            addr: n.args[0],
            val: n.args[2] as u32,
        }),
        ..step
    }
}

/// True when the step names its file by a descriptor: a call on a descriptor, or a
/// `newfstatat`/`statx` of an empty path with `AT_EMPTY_PATH` (an `fstat`).
pub(crate) fn through_fd(step: &Step, n: &Notif) -> bool {
    let empty_path = |flags: u64| flags & libc::AT_EMPTY_PATH as u64 != 0;
    step.by_fd
        || match step.name {
            "SYS_newfstatat" => empty_path(n.args[3]),
            "SYS_statx" => empty_path(n.args[2]),
            _ => false,
        }
}

/// The name of the socket a trial's own Redis server listens on, in its directory.
pub(crate) const SERVER_SOCKET: &str = crate::vocab::trial_dir::REDIS_SOCKET;

/// The descriptor a `connect` to one of the trial's own servers (its socket in `dir`)
/// connects, and the socket; `None` for any other call.
pub(crate) fn server_connect(n: &Notif, dir: &Path) -> Option<(i32, PathBuf)> {
    if crate::seccomp::of(n.nr)?.name != "SYS_connect" {
        return None;
    }
    let path = resolve_in(PathBuf::from(unix_path(Addr::arg(n, 1))?), dir);
    server_sockets(dir)
        .contains(&path)
        .then(|| (n.args[0] as i32, path))
}

/// The sockets the trial's own servers listen on: its Redis, its PostgreSQL.
fn server_sockets(dir: &Path) -> [PathBuf; 2] {
    [
        dir.join(SERVER_SOCKET),
        dir.join(crate::vocab::trial_dir::PG_DIR)
            .join(crate::vocab::trial_dir::PG_SOCKET),
    ]
}

/// A request written to the trial's own server through descriptor `fd` (connected to it,
/// [`server_connect`]): a change of the server's state, ordered as a step.
pub(crate) fn server_request(n: &Notif, server: &Path) -> Option<Step> {
    let call = crate::seccomp::of(n.nr)?;
    if !matches!(
        call.name,
        "SYS_write" | "SYS_writev" | "SYS_sendto" | "SYS_sendmsg" | "SYS_sendmmsg"
    ) {
        return None;
    }
    let path = server.to_string_lossy().into_owned();
    Some(Step {
        by_fd: true,
        ..Step::new(call.name, path, Effect::Change, true)
    })
}

/// True when `step` is a request to the trial's own server ([`server_request`]).
pub(crate) fn to_server(step: &Step, dir: &Path) -> bool {
    step.by_fd
        && server_sockets(dir)
            .iter()
            .any(|s| Path::new(&step.path) == s)
}

/// A socket address in a stopped process's memory: where, and how long.
#[derive(Debug, Clone, Copy)]
struct Addr {
    pid: u32,
    ptr: u64,
    len: u64,
}

impl Addr {
    /// The address at argument `at` of `n`, its length the next argument (a
    /// `connect`'s or `bind`'s at 1; a `sendto`'s at 4).
    fn arg(n: &Notif, at: usize) -> Addr {
        Addr {
            pid: n.pid,
            ptr: n.args[at],
            len: n.args.get(at + 1).copied().unwrap_or(0),
        }
    }

    /// The addresses a `sendmsg` (its one message at argument 1) or a `sendmmsg` (its
    /// first 64 messages) sends to: each message's `msg_name`, where it has one.
    fn of_messages(n: &Notif, many: bool) -> Vec<Addr> {
        let (count, stride) = if many {
            (
                n.args[2].min(64),
                std::mem::size_of::<libc::mmsghdr>() as u64,
            )
        } else {
            (1, 0)
        };
        (0..count)
            .filter_map(|i| {
                // `msg_name` (a pointer) and `msg_namelen` open every message header.
                let mut head = [0u8; 12];
                read_mem(n.pid, n.args[1].checked_add(i * stride)?, &mut head)?;
                let ptr = u64::from_ne_bytes(head[..8].try_into().ok()?);
                let len = u32::from_ne_bytes(head[8..].try_into().ok()?);
                (ptr != 0).then_some(Addr {
                    pid: n.pid,
                    ptr,
                    len: u64::from(len),
                })
            })
            .collect()
    }
}

/// The address family of the socket address `at`.
fn family(at: Addr) -> Option<i32> {
    let mut family = [0u8; 2];
    read_mem(at.pid, at.ptr, &mut family)?;
    Some(i32::from(u16::from_ne_bytes(family)))
}

/// The path an `AF_UNIX` address `at` names; an abstract name as `@name`.
fn unix_path(at: Addr) -> Option<String> {
    if family(at)? != libc::AF_UNIX {
        return None;
    }
    let len = (at.len as usize).clamp(2, 110);
    let mut raw = vec![0u8; len];
    read_mem(at.pid, at.ptr, &mut raw)?;
    let path = &raw[2..];
    if let Some(abstract_name) = path.strip_prefix(&[0u8]) {
        let name = String::from_utf8_lossy(abstract_name);
        return Some(format!("@{}", name.trim_end_matches('\0')));
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    let name = String::from_utf8_lossy(&path[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// What a call that makes shared state no step orders does, as a run names it: `maps
/// {dir}/owner.shm shared` (a `mmap(…, MAP_SHARED, fd, …)` of a regular file buyers may
/// share), `attaches SysV segment N`, `talks to a socket at PATH` (a `connect` to a
/// server); `None` for any other call. Memory or a server changes with no system call.
/// True for an `mmap` of memory shared and backed by no file (`MAP_SHARED |
/// MAP_ANONYMOUS`): shared with every process the caller forks after it.
pub(crate) fn maps_anonymous(n: &Notif) -> bool {
    crate::seccomp::of(n.nr).is_some_and(|c| c.name == "SYS_mmap") && (n.args[4] as i32) < 0
}

pub(crate) fn unordered(n: &Notif, dir: &Path) -> Option<String> {
    if n.nr >= i64::from(super::calls::NEWER) && crate::seccomp::of(n.nr).is_none() {
        return Some(format!(
            "makes system call {}, newer than oversell's table of calls",
            n.nr
        ));
    }
    let call = crate::seccomp::of(n.nr)?;
    if matches!(call.effect, Effect::Look | Effect::Open(_)) {
        return looks_at_processes(n, call.shape);
    }
    if call.name == "SYS_fcntl" {
        return match n.args[1] as i32 {
            F_SETLEASE => {
                Some("takes a lease on a file (F_SETLEASE), whose breaking no step orders".into())
            }
            F_NOTIFY => Some("watches a directory (F_NOTIFY), whose notices no step orders".into()),
            _ => None,
        };
    }
    // A datagram sent to an address, with no `connect` before it (UDP): a server's
    // state, which no step orders.
    if call.name == "SYS_sendto" && n.args[4] != 0 {
        return reached(Addr::arg(n, 4)).map(|to| format!("sends to {to}"));
    }
    if matches!(call.name, "SYS_sendmsg" | "SYS_sendmmsg") {
        return Addr::of_messages(n, call.name == "SYS_sendmmsg")
            .into_iter()
            .find_map(reached)
            .map(|to| format!("sends to {to}"));
    }
    if call.effect != Effect::Unordered {
        return None;
    }
    let name = call.name;
    match name {
        "SYS_shmat" => return Some(format!("attaches SysV segment {}", n.args[0] as i32)),
        "SYS_connect" => return reached(Addr::arg(n, 1)).map(|to| format!("talks to {to}")),
        "SYS_bind" => return bound(n).map(|at| format!("binds {at}")),
        "SYS_setxattr" | "SYS_lsetxattr" | "SYS_fsetxattr" | "SYS_removexattr"
        | "SYS_lremovexattr" | "SYS_fremovexattr" | "SYS_setxattrat" | "SYS_removexattrat" => {
            return Some("changes a file's extended attributes".into())
        }
        "SYS_file_setattr" => return Some("changes a file's flags (file_setattr)".into()),
        "SYS_add_key" | "SYS_keyctl" | "SYS_request_key" => {
            return Some("uses the kernel's key store (keyctl)".into())
        }
        "SYS_ioctl" => return file_ioctl(n, dir),
        // `setpgid(pid, 0)` and `setpgid(pid, pid)` make a group of its own; another
        // group is joined.
        "SYS_setpgid" => {
            let (pid, group) = (n.args[0] as i32, n.args[1] as i32);
            let own = if pid == 0 {
                super::paths::process_of(n.pid) as i32
            } else {
                pid
            };
            return (group != 0 && group != own).then(|| {
                "joins another process group (setpgid), where a signal to its own group \
                 reaches others"
                    .into()
            });
        }
        "SYS_kill"
        | "SYS_tkill"
        | "SYS_tgkill"
        | "SYS_rt_sigqueueinfo"
        | "SYS_rt_tgsigqueueinfo"
        | "SYS_pidfd_send_signal" => return signalled(n, name),
        "SYS_file_getattr" => return Some("reads a file's flags (file_getattr)".into()),
        "SYS_io_setup" => {
            return Some(
                "sets up Linux native AIO (io_setup), whose reads and writes no step sees".into(),
            )
        }
        "SYS_open_by_handle_at" => {
            return Some("opens a file by handle (open_by_handle_at), which no path names".into())
        }
        "SYS_io_uring_setup" => {
            return Some("sets up an io_uring, whose operations on files no step sees".into())
        }
        "SYS_poll" | "SYS_ppoll" | "SYS_select" | "SYS_pselect6" | "SYS_epoll_wait"
        | "SYS_epoll_pwait" | "SYS_epoll_pwait2" => {
            return super::blocked::limited_call(n.nr, &n.args).map(limited_wait)
        }
        _ => {}
    }
    let fd = n.args[4] as i32;
    if fd < 0 {
        return None;
    }
    let path = resolve(fd_path(n.pid, fd)?);
    if own_clock_path(&path, dir) {
        return None;
    }
    let regular = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    if !regular || !(scratch(&path) || shared_outside(&path)) {
        return None;
    }
    // A library's cache mapped for reading (glibc's `gconv-modules.cache`).
    let writable = name != "SYS_mmap" || n.args[2] as i32 & libc::PROT_WRITE != 0;
    if super::paths::system_tree(&path) && !writable {
        return None;
    }
    let shown = match path.strip_prefix(dir) {
        Ok(rel) => format!("{{dir}}/{}", rel.display()),
        Err(_) => path.display().to_string(),
    };
    Some(format!("maps {shown} shared"))
}

/// True when call `name` (through a descriptor when `by_fd`) changes what a file is
/// (its size, mode, owner, times), not the entry naming it: the changes of the trial
/// directory itself that are steps ([`unwatched_change`]).
fn changes_attributes(name: &str, by_fd: bool) -> bool {
    by_fd || crate::seccomp::calls::changes_the_file(name)
}

/// A change of the trial directory itself (`chmod DIR`), or outside the trial directory
/// and the scratch places ([`scratch`]), such as a lock file in a home directory: a
/// step, but a look there is none (every program looks at files all over the machine),
/// so a test there and the change after it are not ordered. Named by the directory it
/// changes: `changes files in /root/locks, where a look is no step`.
pub(crate) fn unwatched_change(step: &Step, dir: &Path) -> Option<String> {
    let path = Path::new(&step.path);
    let attributes = changes_attributes(step.name, step.by_fd);
    if path == dir && step.effect == Effect::Change && attributes {
        return Some(format!(
            "changes the trial directory itself ({}), where a look is no step",
            step.label(dir)
        ));
    }
    if !step.mutates || !path.is_absolute() || path.starts_with(dir) || scratch(path) {
        return None;
    }
    // `mkdir -p DIR/locks` tries every directory above the trial directory first: each
    // is there for as long as the trial runs, and the call fails, changing nothing.
    if dir.starts_with(path) && matches!(step.name, "SYS_mkdir" | "SYS_mkdirat") {
        return None;
    }
    // A lock call is a step wherever the file is, as is a test of one: its state is
    // watched.
    if step.lock.is_some() {
        return None;
    }
    if to_server(step, dir) {
        return None;
    }
    let place = path.parent().unwrap_or(path);
    Some(format!(
        "changes files in {}, where a look is no step (looks are watched in the trial \
         directory and {} only)",
        place.display(),
        super::paths::SCRATCH.join(", ")
    ))
}

/// What a wait with a time limit on what other processes may do is named as
/// ([`super::blocked::limited_call`]): the harness lets such a wait end by itself.
pub(crate) fn limited_wait(call: &str) -> String {
    format!("waits in {call} with a time limit, and only the way where the limit passes was taken")
}

/// What a call does to its process's timers ([`timer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerCall {
    /// Arms the timer `key` (0 the process's real-time one, `alarm`'s and
    /// `setitimer(ITIMER_REAL)`'s; a POSIX timer's id plus 1), by the call named.
    Arms { key: u64, by: &'static str },
    /// Disarms the timer `key`.
    Disarms { key: u64 },
}

/// What a call does to a timer whose signal may end a blocking call: `alarm(n)`,
/// `setitimer(ITIMER_REAL, …)`, `timer_settime` with a time to run arm one (a time of
/// zero disarms it), `timer_delete` disarms it; `None` for any other call. A time that
/// cannot be read counts as armed. CPU-time timers (`ITIMER_VIRTUAL`, `ITIMER_PROF`) are
/// none: a process blocked in a call spends no CPU time.
pub(crate) fn timer(n: &Notif) -> Option<TimerCall> {
    let call = crate::seccomp::of(n.nr)?;
    if call.effect != Effect::Timer {
        return None;
    }
    // `it_value` of an itimerval or itimerspec: the second pair of 8-byte words.
    let runs = |at: u64| {
        let mut raw = [0u8; 16];
        if at == 0 {
            return false;
        }
        if read_mem(n.pid, at.saturating_add(16), &mut raw) != Some(16) {
            return true;
        }
        raw.iter().any(|&b| b != 0)
    };
    let posix = n.args[0].wrapping_add(1);
    let (key, armed) = match call.name {
        "SYS_alarm" => (0, n.args[0] != 0),
        "SYS_setitimer" if n.args[0] as i32 == libc::ITIMER_REAL => (0, runs(n.args[1])),
        "SYS_timer_settime" => (posix, runs(n.args[2])),
        "SYS_timer_delete" => (posix, false),
        _ => return None,
    };
    let by = call.name.strip_prefix("SYS_").unwrap_or(call.name);
    Some(if armed {
        TimerCall::Arms { key, by }
    } else {
        TimerCall::Disarms { key }
    })
}

/// A look at other processes through `/proc`, by a path: an open of `/proc` itself (to
/// list the processes, as `pgrep`, `ps` and `pidof` do), or any look under `/proc/N`
/// for a process N other than the caller's own. Which processes run, and what they are,
/// changes as processes start, exec and end, which no step orders.
fn looks_at_processes(n: &Notif, shape: Shape) -> Option<String> {
    let path = match shape {
        Shape::Path(p) => path_at(n.pid, libc::AT_FDCWD as u64, n.args[p])?,
        Shape::PathAt(d, p) => path_at(n.pid, n.args[d], n.args[p])?,
        _ => return None,
    };
    let rest = path.strip_prefix("/proc").ok()?;
    let other = match rest.components().next() {
        None => true,
        Some(std::path::Component::Normal(first)) => {
            let pid = first.to_str().and_then(|f| f.parse::<u32>().ok())?;
            super::paths::process_of(pid) != super::paths::process_of(n.pid)
        }
        Some(_) => false,
    };
    other.then(|| "looks at other processes through /proc".to_string())
}

/// What a `bind` takes, a name other buyers may see: `a socket at PATH`, `a socket's
/// abstract name`, `a network port`.
fn bound(n: &Notif) -> Option<String> {
    let at = Addr::arg(n, 1);
    match family(at)? {
        libc::AF_UNIX => Some(match unix_path(at) {
            Some(path) if !path.starts_with('@') => format!("a socket at {path}"),
            _ => "a socket's abstract name".into(),
        }),
        libc::AF_INET | libc::AF_INET6 => Some("a network port".into()),
        _ => None,
    }
}

/// The port an `AF_INET` or `AF_INET6` address given to `bind` names; `None` for any
/// other address, and for port 0 (one the kernel picks, no name another trial uses).
pub(crate) fn bound_port(n: &Notif) -> Option<u16> {
    let at = Addr::arg(n, 1);
    if !matches!(family(at)?, libc::AF_INET | libc::AF_INET6) {
        return None;
    }
    let mut head = [0u8; 4];
    read_mem(at.pid, at.ptr, &mut head)?;
    let port = u16::from_be_bytes([head[2], head[3]]);
    (port != 0).then_some(port)
}

/// What a `connect`'s address, a `sendto`'s or a `sendmsg`'s (`at`) reaches, when it is
/// state that other buyers may share and no step orders (a server's): `a socket at
/// PATH`, `a socket at @NAME` (an abstract name), `a network server`; a socket of
/// oversell's own (`DIR/…` for the lock server) is none.
fn reached(at: Addr) -> Option<String> {
    match family(at)? {
        libc::AF_UNIX => {
            let name = unix_path(at)?;
            // The system's logger and name service are no buyer's state.
            let system = name.starts_with("/dev/log")
                || name.starts_with("/run/systemd")
                || name.starts_with("/var/run/nscd")
                || name.starts_with("/run/nscd");
            (!system).then(|| format!("a socket at {name}"))
        }
        libc::AF_INET | libc::AF_INET6 => Some("a network server".into()),
        _ => None,
    }
}

/// What a stopped `ioctl` on a file does, as a run names it: a file's flags (`chattr`'s
/// 'f' and 'X' requests, on anything), or any other request the filter stops that may
/// change a regular file or a directory buyers share (an inode's version,
/// `FS_IOC_SETVERSION`): state of the file no step orders. One on a terminal, a socket
/// or a device is no buyer's lock.
fn file_ioctl(n: &Notif, dir: &Path) -> Option<String> {
    let request = n.args[1] as u32;
    let kind = (request >> 8) & 0xff;
    if kind == 0x66 || kind == 0x58 {
        return Some("reads or changes a file's flags through ioctl (as chattr does)".into());
    }
    // A request that only reads (`_IOR`: dd's MTIOCGET on its output) changes nothing;
    // a lock by ioctl changes what it tests, and the change is named.
    if request >> 30 == 2 {
        return None;
    }
    let path = resolve(fd_path(n.pid, n.args[0] as i32).filter(|p| p.is_absolute())?);
    let shared = path.starts_with(dir) || scratch(&path) || shared_outside(&path);
    let meta = std::fs::metadata(&path).ok()?;
    (shared && (meta.is_file() || meta.is_dir()))
        .then(|| format!("changes a file's state through ioctl {request:#x}"))
}

/// What a signal sent to another process does, as a run names it: `sends signal 10 to
/// another process`, `asks whether another process lives (signal 0)`. When it comes (before a
/// waiter's `pause` or after) and whether its target still runs are the kernel's, not a
/// step's. A signal to the caller's own process, its children or its own process group
/// is none.
fn signalled(n: &Notif, name: &str) -> Option<String> {
    let (target, signal) = match name {
        "SYS_tgkill" | "SYS_rt_tgsigqueueinfo" => (n.args[0] as i32, n.args[2] as i32),
        "SYS_pidfd_send_signal" => {
            let info =
                super::paths::read_proc(format!("/proc/{}/fdinfo/{}", n.pid, n.args[0] as i32))
                    .unwrap_or_default();
            let pid = info
                .lines()
                .find_map(|l| l.strip_prefix("Pid:"))
                .and_then(|v| v.trim().parse::<i32>().ok());
            match pid {
                // Its process has ended: the signal goes nowhere.
                Some(-1) => return None,
                Some(pid) => (pid, n.args[1] as i32),
                None => {
                    return Some(
                        "sends a signal through a pidfd, whose delivery no step orders".into(),
                    )
                }
            }
        }
        _ => (n.args[0] as i32, n.args[1] as i32),
    };
    let caller = super::paths::process_of(n.pid);
    let whom = match target {
        0 => return None,
        -1 => "every process it may signal",
        t if t < 0 => {
            let own_group = super::blocked::parent_and_group(caller).map(|(_, g)| g);
            if own_group == Some(t.unsigned_abs()) {
                return None;
            }
            "another process group"
        }
        t => {
            let process = super::paths::process_of(t.unsigned_abs());
            let parent = super::blocked::parent_and_group(process).map(|(p, _)| p);
            if process == caller || parent == Some(caller) {
                return None;
            }
            "another process"
        }
    };
    Some(if signal == 0 {
        format!("asks whether {whom} lives (signal 0), which no step orders")
    } else {
        format!("sends signal {signal} to {whom}, whose delivery no step orders")
    })
}

/// What a signal sent by a whole program's task does, as a run names it: every task of
/// a whole program is a unit of the schedule, so a signal to any task but the caller
/// itself (its child, its process group) crosses units, when the kernel delivers it.
pub(crate) fn signalled_in_program(n: &Notif) -> Option<String> {
    let name = crate::seccomp::of(n.nr)?.name;
    let to_itself = match name {
        "SYS_kill" | "SYS_rt_sigqueueinfo" => {
            n.args[0] as i32 == super::paths::process_of(n.pid) as i32
        }
        "SYS_tkill" => n.args[0] as i32 == n.pid as i32,
        "SYS_tgkill" | "SYS_rt_tgsigqueueinfo" => n.args[1] as i32 == n.pid as i32,
        "SYS_pidfd_send_signal" => false,
        _ => return None,
    };
    (!to_itself)
        .then(|| "sends a signal between its processes, whose delivery no step orders".into())
}

/// Paths that hold no shared state of the buyers: the directory itself,
/// `DIR/buyer-N.err`, where the harness sends a buyer's stderr, and `DIR/program.out`,
/// a whole program's output.
fn own(p: &Path, dir: &Path) -> bool {
    if p == dir {
        return true;
    }
    p.parent() == Some(dir)
        && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            (n.starts_with("buyer-") && n.ends_with(".err"))
                || n == crate::vocab::trial_dir::PROGRAM_OUTPUT
        })
}

/// The ledger: a step (so its lines come in schedule order), but oversell's own
/// bookkeeping, never a change PCT aims at.
pub(crate) fn ledger(p: &Path, dir: &Path) -> bool {
    p.parent() == Some(dir) && p.file_name().is_some_and(|n| n == crate::ledger::FILE_NAME)
}

/// The file offset of descriptor `fd` of `pid`, from `/proc/PID/fdinfo`.
fn fd_pos(pid: u32, fd: i32) -> Option<u64> {
    let info = super::paths::read_proc(format!("/proc/{pid}/fdinfo/{fd}"))?;
    let line = info.lines().find(|l| l.starts_with("pos:"))?;
    line.trim_start_matches("pos:").trim().parse().ok()
}

/// What the call `step` of `n` returns, read off the state just before it runs: only
/// this call runs until its buyer's next step, so the state it meets is this one.
/// `ok`, an errno name, `created`, or a byte count.
/// `busy`: another holds the lock a lock call asks for.
pub(crate) fn result(step: &Step, n: &Notif, busy: bool) -> String {
    if step.sleep() {
        return "skipped".into();
    }
    let path = Path::new(&step.path);
    let meta = std::fs::symlink_metadata(path).ok();
    let exists = meta.is_some();
    let name = step.name.trim_start_matches("SYS_");
    let errno = |ok: bool, e: &str| if ok { "ok".to_string() } else { e.to_string() };
    match name {
        "open" | "openat" | "creat" | "openat2" => {
            let flags = match name {
                "open" => n.args[1] as i32,
                "openat" => n.args[2] as i32,
                "creat" => libc::O_CREAT,
                _ => 0,
            };
            let create = flags & libc::O_CREAT != 0;
            match (exists, create) {
                (true, true) if flags & libc::O_EXCL != 0 => "EEXIST".into(),
                (false, true) => "created".into(),
                (false, false) => "ENOENT".into(),
                _ => "ok".into(),
            }
        }
        "mkdir" | "mkdirat" | "symlink" | "symlinkat" | "mknod" | "mknodat" => {
            errno(!exists, "EEXIST")
        }
        // Two paths: what is linked or renamed, and its new name.
        "link" | "linkat" | "rename" | "renameat" | "renameat2" if step.names.len() == 2 => {
            let there =
                |p: &PathBuf| std::fs::symlink_metadata(super::paths::resolve(p.clone())).is_ok();
            let noreplace = name == "renameat2" && n.args[4] as u32 & libc::RENAME_NOREPLACE != 0;
            // A file with no name linked through its descriptor (`O_TMPFILE`, then
            // `linkat(fd, "", …, AT_EMPTY_PATH)` or through `/proc/self/fd/N`): it is
            // there as long as the descriptor is open, whatever its old name says.
            let old = super::paths::resolve(step.names[0].clone());
            let nameless = name == "linkat" && old.to_string_lossy().ends_with(" (deleted)");
            if !(there(&step.names[0]) || nameless) {
                "ENOENT".into()
            } else if there(&step.names[1]) && (name.starts_with("link") || noreplace) {
                "EEXIST".into()
            } else {
                "ok".into()
            }
        }
        "rmdir" => {
            let entries = std::fs::read_dir(path).map_or(0, |d| d.count());
            if entries > 0 {
                "ENOTEMPTY".into()
            } else {
                errno(exists, "ENOENT")
            }
        }
        "read" | "pread64" | "readv" | "preadv" => match fd_pos(n.pid, n.args[0] as i32) {
            Some(pos) => {
                let left = meta.map_or(0, |m| m.len()).saturating_sub(pos);
                format!("{} bytes", left.min(n.args[2]))
            }
            None => "ok".into(),
        },
        "write" | "pwrite64" => format!("{} bytes", n.args[2]),
        // A futex wait let go while its word changed returns at once.
        "futex" if step.lock.is_some() && !busy => "EAGAIN".into(),
        // A blocking lock call runs only once it no longer conflicts.
        "flock" | "fcntl" if busy => "EWOULDBLOCK".into(),
        "flock" | "fcntl" => "ok".into(),
        "close" | "fsync" | "fdatasync" | "ftruncate" | "writev" | "pwritev" | "semop"
        | "semtimedop" | "msgsnd" | "msgrcv" | "futex" => "ok".into(),
        // A call on what no path names (a message queue, a SysV object): its answer is
        // not known before it runs, and it is no failed try.
        _ if step.path.is_empty() => "done".into(),
        _ => errno(exists, "ENOENT"),
    }
}

/// The clock shim this run wrote, once it has ([`note_clock_shim`]).
static CLOCK_SHIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Notes where this run wrote the clock shim: what its processes load from there is
/// oversell's, never a step.
pub(crate) fn note_clock_shim(path: &Path) {
    let _ = CLOCK_SHIM.set(path.to_path_buf());
}

/// True for a path of oversell's clock: the shim, or a trial's clock file in `dir`.
fn own_clock_path(p: &Path, dir: &Path) -> bool {
    p == dir.join(crate::vocab::trial_dir::CLOCK_FILE)
        || CLOCK_SHIM
            .get()
            .is_some_and(|s| p.starts_with(s.parent().unwrap_or(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &'static str, path: &str, mutates: bool) -> Step {
        let effect = match name {
            "SYS_clock_nanosleep" => Effect::Sleep,
            _ if mutates => Effect::Change,
            _ => Effect::Look,
        };
        Step::new(name, path.into(), effect, mutates)
    }

    #[test]
    fn a_futex_word_in_private_memory_is_the_processs_own() {
        let maps = "7f00-7f10 rw-p 00000000 00:00 0\n\
                    7f10-7f20 rw-s 00000000 00:05 42 /dev/shm/sem.x\n";
        assert_eq!(mapping_is_shared(maps, 0x7f08), Some(false));
        assert_eq!(mapping_is_shared(maps, 0x7f10), Some(true));
        assert_eq!(mapping_is_shared(maps, 0x7f20), None);
        // This process's heap is private; an address nothing maps counts as shared.
        let word = Box::new(0u32);
        let me = std::process::id();
        assert!(!shared_memory(me, &*word as *const u32 as u64));
        assert!(shared_memory(me, 8));
    }

    #[test]
    fn fcntl_on_a_files_own_state_is_a_look_or_a_change() {
        // The write-life hint and a memory file's seals are the file's, seen through
        // every open: a test-then-set by them was one step, and `verified`.
        assert_eq!(fcntl_on_file(F_GET_RW_HINT), Some(Effect::Look));
        assert_eq!(fcntl_on_file(F_SET_RW_HINT), Some(Effect::Change));
        assert_eq!(fcntl_on_file(F_SET_FILE_RW_HINT), Some(Effect::Change));
        assert_eq!(fcntl_on_file(F_ADD_SEALS), Some(Effect::Change));
        assert_eq!(fcntl_on_file(libc::F_GETLK), Some(Effect::Look));
        // A descriptor's own flags are no other process's business.
        assert_eq!(fcntl_on_file(libc::F_SETFL), None);
        assert_eq!(fcntl_on_file(libc::F_SETLK), None);
    }

    #[test]
    fn the_store_and_its_temporary_file_are_the_store() {
        let store = |name, path, mutates| step(name, path, mutates).hint().store;
        assert!(store("SYS_openat", "/tmp/t/store.json", true));
        assert!(store("SYS_rename", "/tmp/t/store.tmp.42", true));
        assert!(!store("SYS_openat", "/tmp/t/store.json", false));
        assert!(!store("SYS_write", "/tmp/t/ledger", false));
        assert!(!store("SYS_mkdir", "/tmp/t/store.d", true));
    }

    #[test]
    fn changes_and_sleeps_count_and_looks_do_not() {
        assert!(step("SYS_mkdir", "/tmp/t/lock.d", true).hint().counts);
        assert!(step("SYS_clock_nanosleep", "", false).hint().counts);
        assert!(!step("SYS_newfstatat", "/tmp/t/lock.d", false).hint().counts);
    }

    fn notif(name: &str, args: [u64; 6]) -> Notif {
        let nr = crate::seccomp::CALLS
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.nr)
            .unwrap_or(-1);
        Notif::own(nr, args)
    }

    #[test]
    fn a_signal_to_another_process_is_named_and_one_to_its_own_is_not() {
        let me = u64::from(std::process::id());
        let named = |args: [u64; 6]| unordered(&notif("SYS_kill", args), Path::new("/"));
        assert_eq!(named([me, 10, 0, 0, 0, 0]), None, "itself");
        assert_eq!(named([0, 15, 0, 0, 0, 0]), None, "its own process group");
        let init = named([1, 10, 0, 0, 0, 0]);
        assert!(init
            .as_deref()
            .is_some_and(|w| w.contains("sends signal 10 to another process")));
        let alive = named([1, 0, 0, 0, 0, 0]);
        assert!(alive
            .as_deref()
            .is_some_and(|w| w.contains("asks whether another process lives")));
        let joins = unordered(&notif("SYS_setpgid", [0, 1, 0, 0, 0, 0]), Path::new("/"));
        assert!(joins
            .as_deref()
            .is_some_and(|w| w.contains("joins another process group")));
        let of_its_own = unordered(&notif("SYS_setpgid", [0, 0, 0, 0, 0, 0]), Path::new("/"));
        assert_eq!(of_its_own, None);
        let all = named([(-1i64) as u64, 9, 0, 0, 0, 0]);
        assert!(all.as_deref().is_some_and(|w| w.contains("every process")));
        // Its own child: a shell's `kill $!`.
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let of_child = named([u64::from(child.id()), 15, 0, 0, 0, 0]);
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(of_child, None, "its own child");
    }

    #[test]
    fn a_timer_with_a_time_to_run_is_armed_and_a_zero_one_is_not() {
        // itimerspec: it_interval, then it_value (seconds, nanoseconds).
        let ten_ms: [i64; 4] = [0, 0, 0, 10_000_000];
        let zero: [i64; 4] = [0; 4];
        let at = |t: &[i64; 4]| t.as_ptr() as u64;
        let set = |t: &[i64; 4]| timer(&notif("SYS_timer_settime", [3, 0, at(t), 0, 0, 0]));
        assert_eq!(
            set(&ten_ms),
            Some(TimerCall::Arms {
                key: 4,
                by: "timer_settime"
            })
        );
        assert_eq!(set(&zero), Some(TimerCall::Disarms { key: 4 }));
        let delete = timer(&notif("SYS_timer_delete", [3, 0, 0, 0, 0, 0]));
        assert_eq!(delete, Some(TimerCall::Disarms { key: 4 }));
        let real = libc::ITIMER_REAL as u64;
        let itimer = timer(&notif("SYS_setitimer", [real, at(&ten_ms), 0, 0, 0, 0]));
        assert_eq!(
            itimer,
            Some(TimerCall::Arms {
                key: 0,
                by: "setitimer"
            })
        );
        // A CPU-time timer cannot fire while its process is blocked.
        let prof = libc::ITIMER_PROF as u64;
        assert_eq!(
            timer(&notif("SYS_setitimer", [prof, at(&ten_ms), 0, 0, 0, 0])),
            None
        );
        assert_eq!(timer(&notif("SYS_close", [3, 0, 0, 0, 0, 0])), None);
    }

    #[test]
    fn a_look_at_another_process_through_proc_is_named_and_at_its_own_is_not() {
        let path = |p: &str| std::ffi::CString::new(p).unwrap_or_default();
        let look = |p: &std::ffi::CString| {
            // Each look is a notification of its own (its string may be at the address
            // of the one before).
            crate::seccomp::paths::new_notification();
            let at = libc::AT_FDCWD as u64;
            looks_at_processes(
                &notif("SYS_openat", [at, p.as_ptr() as u64, 0, 0, 0, 0]),
                Shape::PathAt(0, 1),
            )
        };
        assert!(look(&path("/proc")).is_some());
        assert!(look(&path("/proc/1/cmdline")).is_some());
        let own = path(&format!("/proc/{}/status", std::process::id()));
        assert_eq!(look(&own), None);
        assert_eq!(look(&path("/proc/self/status")), None);
        assert_eq!(look(&path("/proc/meminfo")), None);
        assert_eq!(look(&path("/tmp/x")), None);
    }
}
