//! Whether a lock call would block, decided before it runs: probed against the other
//! holders (a fresh open file description for `flock` and POSIX locks, the caller's own
//! description for OFD locks), never against the caller's own locks; and the first half of
//! a `flock` conversion, which the kernel runs before it waits.

use super::call::{read_mem, LockCall};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Held for reading while a probe has a descriptor of a buyer's file open, and for
/// writing while the harness starts a process ([`spawning`]). A child forked by another
/// thread of the harness gets a copy of every descriptor open at that moment, kept
/// until its `execve` closes it: a flock the probe took through its own open would
/// outlive the probe there, and a buyer's open file description borrowed for a moment
/// would stay open, so a buyer's lock call could be found blocked in one run and free in
/// the next (trials run side by side under `--jobs`). A spawn returns once the child has
/// called `execve`, so no probe's descriptor reaches a child.
static DESCRIPTORS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Taken around every process the harness starts: no probe has a descriptor open
/// meanwhile ([`DESCRIPTORS`]).
pub(crate) fn spawning() -> std::sync::RwLockWriteGuard<'static, ()> {
    DESCRIPTORS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Taken before a probe opens a descriptor ([`Probing`]), let go once it is closed.
pub(crate) fn probing() -> std::sync::RwLockReadGuard<'static, ()> {
    DESCRIPTORS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A descriptor a probe holds for a moment, opened after [`probing`] was taken and
/// closed before it is let go (the fields drop in this order).
struct Probing<F> {
    fd: F,
    _quiet: std::sync::RwLockReadGuard<'static, ()>,
}

impl<F> std::ops::Deref for Probing<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.fd
    }
}

/// True when the lock call `lock` of process `pid` would block now: decided before it
/// runs, so a blocked buyer is a scheduling decision and never sleeps in the kernel.
pub(crate) fn would_block(pid: u32, lock: LockCall, owned: &mut Owned) -> bool {
    let blocking = match lock {
        LockCall::Flock { op, .. } => op & libc::LOCK_NB == 0,
        LockCall::Fcntl { cmd, .. } => cmd == libc::F_SETLKW || cmd == libc::F_OFD_SETLKW,
        LockCall::FutexWait { addr, val } => return futex_sleeps(pid, addr, val),
    };
    // A conversion of the caller's own flock can always take its first step (dropping
    // the lock it holds, [`begin_conversion`]); only then does it wait.
    blocking && rivals(pid, lock, owned) == Some(Own::No)
}

/// What `/proc/PID/fdinfo` said of the flocks held through a stopped call's descriptor,
/// kept while no lock call has been let go: a stopped process cannot change its own
/// locks, and another process sharing its open file description can only through a
/// `flock` call, which is a step ([`Owned::forget`] is called on every lock call and
/// close let go, and whenever a buyer ends).
#[derive(Debug, Default)]
pub(crate) struct Owned {
    known: std::collections::HashMap<(u32, i32), Option<String>>,
}

impl Owned {
    /// The `MAJ:MIN:INODE` of the file whose flock descriptor `fd` of `pid` holds.
    fn flock(&mut self, pid: u32, fd: i32) -> Option<String> {
        self.known
            .entry((pid, fd))
            .or_insert_with(|| own_flock(pid, fd))
            .clone()
    }

    /// Forgets everything: a lock may have changed hands.
    pub(crate) fn forget(&mut self) {
        self.known.clear();
    }
}

/// Whether the caller of a conflicting lock call holds a flock through the same
/// descriptor (a conversion), as `/proc/PID/fdinfo` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    No,
    Holds,
}

/// `Some` when another holder keeps the lock `lock` of process `pid` asks for (an
/// unlock never conflicts), saying whether the caller holds one of its own through that
/// descriptor; `None` when nobody else does. The caller's own locks are no rival:
/// relocking, or upgrading a shared lock it alone holds, goes through at once.
pub(crate) fn rivals(pid: u32, lock: LockCall, owned: &mut Owned) -> Option<Own> {
    match lock {
        LockCall::Flock { fd, op } => {
            if op & libc::LOCK_UN != 0 {
                return None;
            }
            // A second open file description of the same file (opened without blocking,
            // whatever the file is): it conflicts with every holder, the caller's own
            // description included. Asked first: it is the cheap question, and most
            // calls are answered by it.
            let f = reopen(pid, fd)?;
            let want = op & (libc::LOCK_SH | libc::LOCK_EX);
            // SAFETY: flock on a descriptor this frame owns; closing it drops the probe.
            let r = unsafe { libc::flock(f.as_raw_fd(), want | libc::LOCK_NB) };
            if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK) {
                return None;
            }
            match owned.flock(pid, fd) {
                // The caller holds it through this descriptor: only others count.
                Some(key) => {
                    let others = flock_holders(&key).saturating_sub(1);
                    (others > 0 && want & libc::LOCK_EX != 0).then_some(Own::Holds)
                }
                None => Some(Own::No),
            }
        }
        LockCall::Fcntl { fd, cmd, addr } => fcntl_conflicts(pid, fd, cmd, addr).then_some(Own::No),
        LockCall::FutexWait { addr, val } => futex_sleeps(pid, addr, val).then_some(Own::No),
    }
}

/// A `futex` wait of process `pid` sleeps when the word at `addr` still holds `val`
/// (the kernel's own test); a word that cannot be read is left to the kernel (the call
/// fails at once with `EFAULT`). Only the process let go runs, so the word read here
/// is the word the kernel reads.
pub(crate) fn futex_sleeps(pid: u32, addr: u64, val: u32) -> bool {
    let mut word = [0u8; 4];
    read_mem(pid, addr, &mut word) == Some(4) && u32::from_ne_bytes(word) == val
}

/// A blocking `flock` that converts the caller's own lock (shared to exclusive) while
/// others hold theirs: the kernel first drops the caller's lock, then waits. That
/// first half is done here, through the caller's own open file description, when the
/// step is scheduled; the call itself then waits like any acquire. True when it dropped.
/// `rivals` is what [`rivals`] said of this call just now.
pub(crate) fn begin_conversion(pid: u32, lock: LockCall, rivals: Option<Own>) -> bool {
    let LockCall::Flock { fd, op } = lock else {
        return false;
    };
    if rivals != Some(Own::Holds) || op & libc::LOCK_NB != 0 {
        return false;
    }
    let Some(theirs) = their_description(pid, fd) else {
        return false;
    };
    // SAFETY: flock on a descriptor this frame owns, the caller's open file description.
    unsafe { libc::flock(theirs.as_raw_fd(), libc::LOCK_UN) == 0 }
}

/// Descriptor `fd` of `pid` opened anew (a new open file description), without blocking:
/// a FIFO or a device is opened `O_NONBLOCK`, never waited on.
fn reopen(pid: u32, fd: i32) -> Option<Probing<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let quiet = probing();
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .ok()?;
    Some(Probing { fd, _quiet: quiet })
}

/// The same open file description as descriptor `fd` of `pid` (`pidfd_getfd`): what
/// a lock probe must use so that the caller's own OFD locks are not taken for a rival's.
fn their_description(pid: u32, fd: i32) -> Option<Probing<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    let quiet = probing();
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        return None;
    }
    // SAFETY: `pidfd` was just returned by pidfd_open and is owned by nobody else.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return None;
    }
    // SAFETY: `dup` was just returned by pidfd_getfd and is owned by nobody else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(dup as i32) };
    Some(Probing { fd, _quiet: quiet })
}

/// The `MAJ:MIN:INODE` of the file whose flock descriptor `fd` of `pid` holds, when it
/// holds one (`/proc/PID/fdinfo` lists the locks of that open file description).
fn own_flock(pid: u32, fd: i32) -> Option<String> {
    let info = super::paths::read_proc(format!("/proc/{pid}/fdinfo/{fd}"))?;
    info.lines()
        .filter(|l| l.starts_with("lock:"))
        .find_map(|l| flock_key(l.trim_start_matches("lock:")))
}

/// The `MAJ:MIN:INODE` field of a `/proc/locks` line when it is a flock.
fn flock_key(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    // `1: FLOCK  ADVISORY  WRITE 1234 08:02:5678 0 EOF`
    (words.get(1) == Some(&"FLOCK")).then(|| words.get(5).map(|w| w.to_string()))?
}

/// How many flocks are held on the file `key` names, from `/proc/locks`.
fn flock_holders(key: &str) -> usize {
    let Ok(all) = std::fs::read_to_string("/proc/locks") else {
        return usize::MAX;
    };
    all.lines()
        .filter(|l| !l.contains("->"))
        .filter(|l| flock_key(l).as_deref() == Some(key))
        .count()
}

/// The lock a stopped `fcntl` of task `pid` asks for (its `struct flock` at `addr`);
/// `None` when it cannot be read, or asks to unlock.
fn asked_lock(pid: u32, addr: u64) -> Option<libc::flock> {
    // SAFETY: a zeroed `flock` is a valid value; it is then filled from the process.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    // SAFETY: `fl` is plain data; the slice covers exactly its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            &mut fl as *mut libc::flock as *mut u8,
            std::mem::size_of::<libc::flock>(),
        )
    };
    let read = read_mem(pid, addr, bytes) == Some(bytes.len());
    (read && fl.l_type != libc::F_UNLCK as i16).then_some(fl)
}

/// A POSIX or OFD lock request: asks the kernel who conflicts (F_GETLK, F_OFD_GETLK).
fn fcntl_conflicts(pid: u32, fd: i32, cmd: i32, addr: u64) -> bool {
    let Some(mut fl) = asked_lock(pid, addr) else {
        return false;
    };
    let ofd = cmd == libc::F_OFD_SETLKW || cmd == libc::F_OFD_SETLK;
    if ofd {
        // Asked through the caller's own open file description, its own OFD locks are
        // no conflict; any lock the kernel names is another's (OFD holders show pid -1).
        let Some(f) = their_description(pid, fd) else {
            return false;
        };
        // SAFETY: fcntl reads and writes one `flock`.
        if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } != 0 {
            return false;
        }
        return fl.l_type != libc::F_UNLCK as i16;
    }
    let Some(f) = reopen(pid, fd) else {
        return false;
    };
    // The harness's own open of the file is at offset 0: a range from the caller's
    // offset (`lockf(3)` locks from there) is made absolute first.
    if !absolute(pid, fd, &f, &mut fl) {
        return false;
    }
    let asked = fl;
    // SAFETY: fcntl reads and writes one `flock`.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return false;
    }
    if fl.l_type == libc::F_UNLCK as i16 {
        return false;
    }
    // A POSIX lock is the process's: the caller's own is no rival. The kernel names one
    // conflicting lock only, which may be the caller's own (SQLite asks for a write lock
    // on the range where it holds a read lock, beside others' read locks): then the
    // file's other locks decide.
    let owner = super::paths::process_of(pid);
    fl.l_pid != owner as i32 || others_conflict(&f, &asked, owner)
}

/// Makes the range of `fl`, asked by process `pid` through its descriptor `fd` of the
/// file `f`, absolute (`SEEK_SET`): a range from the current offset starts at the
/// caller's offset (`/proc/PID/fdinfo/FD`), one from the end at the file's size. False
/// when that cannot be read.
fn absolute(pid: u32, fd: i32, f: &File, fl: &mut libc::flock) -> bool {
    let base = match i32::from(fl.l_whence) {
        libc::SEEK_SET => return true,
        libc::SEEK_CUR => {
            super::paths::read_proc(format!("/proc/{pid}/fdinfo/{fd}")).and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("pos:"))
                    .and_then(|v| v.trim().parse::<i64>().ok())
            })
        }
        libc::SEEK_END => f.metadata().ok().and_then(|m| i64::try_from(m.len()).ok()),
        _ => None,
    };
    let Some(start) = base.and_then(|b| b.checked_add(fl.l_start)) else {
        return false;
    };
    fl.l_start = start;
    fl.l_whence = libc::SEEK_SET as i16;
    true
}

/// Whether a lock on the file of `f` held by another than process `owner` (a POSIX
/// lock of another process, or any OFD lock) conflicts with the POSIX lock `asked`
/// (`/proc/locks`); false when that cannot be told (a range given from the current
/// offset or the end).
fn others_conflict(f: &File, asked: &libc::flock, owner: u32) -> bool {
    !others_holding(f, asked, owner).is_empty()
}

/// The holders (by process; `None` for an OFD lock) other than process `owner` of the
/// locks on the file of `f` that conflict with the POSIX lock `asked` (`/proc/locks`);
/// none when that cannot be told (a range not made absolute).
fn others_holding(f: &File, asked: &libc::flock, owner: u32) -> Vec<Option<u32>> {
    let Ok(meta) = f.metadata() else {
        return Vec::new();
    };
    if asked.l_whence != libc::SEEK_SET as i16 {
        return Vec::new();
    }
    let Ok(all) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let key = super::paths::locks_key(&meta);
    let (start, len) = (asked.l_start, asked.l_len);
    let (from, to) = match len {
        0 => (start, i64::MAX),
        l if l > 0 => (start, start.saturating_add(l - 1)),
        l => (start.saturating_add(l), start - 1),
    };
    let write = asked.l_type == libc::F_WRLCK as i16;
    all.lines()
        .filter(|l| !l.contains("->"))
        .filter_map(posix_line)
        .filter(|h| {
            h.key == key
                && h.pid != Some(owner)
                && (write || h.write)
                && h.from <= to
                && from <= h.to
        })
        .map(|h| h.pid)
        .collect()
}

/// For a POSIX `F_SETLKW` of task `pid` that would wait: the processes holding the
/// locks it waits for. The kernel answers such a request `EDEADLK` when one of them
/// waits, in turn, for a lock of the caller's (its deadlock detection, for POSIX locks
/// only); the harness, which holds waiting requests back, answers for it. Empty for any
/// other call, or when the request would not wait.
pub(crate) fn posix_waits_for(pid: u32, lock: LockCall) -> Vec<u32> {
    let LockCall::Fcntl { fd, cmd, addr } = lock else {
        return Vec::new();
    };
    if cmd != libc::F_SETLKW {
        return Vec::new();
    }
    let Some(mut fl) = asked_lock(pid, addr) else {
        return Vec::new();
    };
    let Some(f) = reopen(pid, fd) else {
        return Vec::new();
    };
    if !absolute(pid, fd, &f, &mut fl) {
        return Vec::new();
    }
    let owner = super::paths::process_of(pid);
    others_holding(&f, &fl, owner)
        .into_iter()
        .flatten()
        .collect()
}

/// One held lock of `/proc/locks` that binds POSIX locks (a POSIX or an OFD lock).
struct Held<'a> {
    key: &'a str,
    /// The holding process; `None` for an OFD lock (the kernel shows -1).
    pid: Option<u32>,
    write: bool,
    from: i64,
    to: i64,
}

/// `1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 1073741824 1073741824` (or `OFDLCK`;
/// the end `EOF` for a lock to the end of the file).
fn posix_line(line: &str) -> Option<Held<'_>> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let ofd = match *w.get(1)? {
        "POSIX" => false,
        "OFDLCK" => true,
        _ => return None,
    };
    Some(Held {
        key: w.get(5)?,
        pid: if ofd { None } else { w.get(4)?.parse().ok() },
        write: *w.get(3)? == "WRITE",
        from: w.get(6)?.parse().ok()?,
        to: match *w.get(7)? {
            "EOF" => i64::MAX,
            e => e.parse().ok()?,
        },
    })
}
