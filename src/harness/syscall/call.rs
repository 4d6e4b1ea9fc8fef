//! One notified system call: receiving it, deciding whether it is a step (it touches the
//! trial's directory, or it is a sleep), probing whether a lock call would block, and
//! answering it.

use crate::seccomp::Shape;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// A system call a process of a buyer is stopped in, waiting for the harness.
#[derive(Debug, Clone)]
pub(super) struct Notif {
    pub id: u64,
    pub pid: u32,
    pub nr: i64,
    pub args: [u64; 6],
}

/// A notified call that is a yield point.
#[derive(Debug, Clone)]
pub(super) struct Step {
    /// The call's name (`SYS_openat`).
    pub name: &'static str,
    /// The path it touches (inside the trial directory), or empty for a sleep.
    pub path: String,
    pub sleep: bool,
    /// It changes shared state (creates, writes, removes, renames, locks): PCT's change
    /// points fall on such steps.
    pub mutates: bool,
    /// A lock call that may block: how to probe it.
    pub lock: Option<LockCall>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum LockCall {
    Flock { fd: i32, op: i32 },
    Fcntl { fd: i32, cmd: i32, addr: u64 },
}

impl Step {
    /// `openat lock.d` — the call without its `SYS_` and the path relative to `dir`.
    pub(super) fn label(&self, dir: &Path) -> String {
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
pub(super) fn recv(listener: RawFd) -> io::Result<Option<Notif>> {
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
        id: n.id,
        pid: n.pid,
        nr: i64::from(n.data.nr),
        args: n.data.args,
    }))
}

/// Lets the call run (`cont`), or makes it return 0 at once without running (a sleep).
/// A process killed meanwhile cannot be answered; that is not an error.
pub(super) fn answer(listener: RawFd, id: u64, cont: bool) {
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
pub(super) fn classify(listener: RawFd, n: &Notif, dir: &Path) -> Option<Step> {
    let (name, shape) = crate::seccomp::shape_of(n.nr)?;
    let a = |i: usize| n.args[i];
    let paths: Vec<PathBuf> = match shape {
        Shape::Sleep => {
            return Some(Step {
                name,
                path: String::new(),
                sleep: true,
                mutates: false,
                lock: None,
            })
        }
        // Shared state with no name to compare: it conflicts with every step.
        Shape::Ipc => {
            return Some(Step {
                name,
                path: String::new(),
                sleep: false,
                mutates: true,
                lock: None,
            })
        }
        Shape::MapShared => return None,
        Shape::Path(p) => vec![path_at(n.pid, libc::AT_FDCWD as u64, a(p))?],
        Shape::PathAt(d, p) => vec![path_at(n.pid, a(d), a(p))?],
        Shape::Paths(p, q) => {
            let cwd = libc::AT_FDCWD as u64;
            vec![path_at(n.pid, cwd, a(p))?, path_at(n.pid, cwd, a(q))?]
        }
        Shape::PathsAt(d, p, e, q) => {
            vec![path_at(n.pid, a(d), a(p))?, path_at(n.pid, a(e), a(q))?]
        }
        Shape::Fd(f) => vec![fd_path(n.pid, a(f) as i32)?],
        Shape::Flock | Shape::Fcntl => vec![fd_path(n.pid, a(0) as i32)?],
    };
    let lock = match shape {
        Shape::Flock => Some(LockCall::Flock {
            fd: a(0) as i32,
            op: a(1) as i32,
        }),
        Shape::Fcntl => {
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
    let changes = mutates(name, n) || lock.is_some();
    let paths: Vec<PathBuf> = paths.into_iter().map(|p| resolve_in(p, dir)).collect();
    let shared = paths.iter().find(|p| {
        if p.starts_with(dir) {
            return !own(p, dir);
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
    Some(Step {
        name,
        path: shared.to_string_lossy().into_owned(),
        sleep: false,
        mutates: changes && !ledger(shared, dir),
        lock,
    })
}

/// The file a `mmap(…, MAP_SHARED, fd, …)` call maps, when it is one buyers may share
/// (a regular file outside the system's trees): memory whose changes take no system
/// call, so no step orders them.
pub(super) fn shared_map(n: &Notif) -> Option<String> {
    let (name, Shape::MapShared) = crate::seccomp::shape_of(n.nr)? else {
        return None;
    };
    if name == "SYS_shmat" {
        return Some(format!("SysV segment {}", n.args[0] as i32));
    }
    if name == "SYS_connect" {
        return connected(n);
    }
    let fd = n.args[4] as i32;
    if fd < 0 {
        return None;
    }
    let path = resolve(fd_path(n.pid, fd)?);
    let regular = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    (regular && (scratch(&path) || shared_outside(&path))).then(|| path.display().to_string())
}

/// Directories outside the trial directory and the scratch places, resolved once per
/// run; bounded.
static OUTSIDE: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, Option<PathBuf>>>> =
    std::sync::Mutex::new(None);

/// What a `connect` reaches, when it is state that other buyers may share and no step
/// orders (a server's): `a socket at PATH`, `a TCP or UDP server`; a socket of oversell's own
/// (`DIR/…` for the lock server) is none.
fn connected(n: &Notif) -> Option<String> {
    let mut family = [0u8; 2];
    read_mem(n.pid, n.args[1], &mut family)?;
    match i32::from(u16::from_ne_bytes(family)) {
        libc::AF_UNIX => {
            let len = (n.args[2] as usize).clamp(2, 110);
            let mut raw = vec![0u8; len];
            read_mem(n.pid, n.args[1], &mut raw)?;
            let path = &raw[2..];
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            let name = String::from_utf8_lossy(&path[..end]).into_owned();
            // The system's logger and name service are no buyer's state.
            let system = name.starts_with("/dev/log")
                || name.starts_with("/run/systemd")
                || name.starts_with("/var/run/nscd")
                || name.starts_with("/run/nscd");
            (!system && !name.is_empty()).then(|| format!("a socket at {name}"))
        }
        libc::AF_INET | libc::AF_INET6 => Some("a network server".into()),
        _ => None,
    }
}

/// `p` resolved, as [`resolve`] does, but with the directories outside the trial directory
/// and the scratch places resolved once per run (the system's library and program
/// directories do not move while oversell runs): a program's loader probes dozens of them
/// at every start, and walking each of their components every time would cost more than
/// the step itself. Inside the trial directory and the scratch places, where buyers make
/// and remove links while the trial runs, every path is resolved afresh.
fn resolve_in(p: PathBuf, dir: &Path) -> PathBuf {
    let Some(parent) = p.parent() else {
        return p;
    };
    // A name right in the trial directory (written through its resolved path, as
    // oversell hands it out) needs no walk.
    if parent == dir && p.file_name().is_some_and(|n| n != ".." && n != ".") {
        return p;
    }
    if p.starts_with(dir) || scratch(&p) || !p.is_absolute() {
        return resolve(p);
    }
    let known = OUTSIDE
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(parent).cloned()));
    let real = match known {
        Some(real) => real,
        None => {
            let real = std::fs::canonicalize(parent).ok();
            if let Ok(mut m) = OUTSIDE.lock() {
                let m = m.get_or_insert_with(Default::default);
                if m.len() < 16_384 {
                    m.insert(parent.to_path_buf(), real.clone());
                }
            }
            real
        }
    };
    match (real, p.file_name()) {
        (Some(real), Some(name)) if name != ".." && name != "." => real.join(name),
        _ => resolve(p),
    }
}

/// `p` as what it names: its directory resolved (symbolic links, `..`), its last part
/// kept as written (a call on a symbolic link itself names the link). A path whose
/// directory does not exist is only cleaned of `.` and `..` as written.
pub(super) fn resolve(p: PathBuf) -> PathBuf {
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return p;
    };
    if name == ".." || name == "." {
        return std::fs::canonicalize(&p).unwrap_or(p);
    }
    match std::fs::canonicalize(parent) {
        Ok(real) => real.join(name),
        Err(_) => {
            let mut out = PathBuf::new();
            for c in p.components() {
                match c {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    c => out.push(c),
                }
            }
            out
        }
    }
}

/// Places programs share scratch state through: a look at them is a step.
const SCRATCH: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock"];

/// True for a path in a scratch place buyers may share (see [`SCRATCH`]).
fn scratch(p: &Path) -> bool {
    // The places themselves (`/tmp`, a common working directory) are always there:
    // a look at one is no look at shared state.
    SCRATCH
        .iter()
        .any(|s| p.starts_with(s) && p != Path::new(s))
}

/// True when a change to `p` outside the trial directory is a change of state other
/// buyers may see: anywhere but the system's own trees and devices (`/proc`, `/sys`,
/// `/dev` but `/dev/shm`), not a non-file (`pipe:[…]`, `socket:[…]`), and not a
/// language's bytecode cache (`__pycache__`), which a first run writes and later runs
/// do not.
fn shared_outside(p: &Path) -> bool {
    if !p.is_absolute() {
        return false;
    }
    if scratch(p) {
        return true;
    }
    const SYSTEM: &[&str] = &["/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"];
    !SYSTEM.iter().any(|s| p.starts_with(s))
        && !p.components().any(|c| c.as_os_str() == "__pycache__")
}

/// True for a call that changes what other buyers can see.
fn mutates(name: &str, n: &Notif) -> bool {
    let flags = |i: usize| n.args[i] as i32;
    let writes = libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC;
    match name {
        "SYS_open" => flags(1) & writes != 0,
        "SYS_openat" => flags(2) & writes != 0,
        // openat2 keeps its flags in a struct: count it as a change.
        "SYS_openat2" | "SYS_creat" | "SYS_flock" | "SYS_fcntl" => true,
        _ => [
            "write",
            "pwrite",
            "truncate",
            "ftruncate",
            "rename",
            "link",
            "unlink",
            "mkdir",
            "rmdir",
            "symlink",
            "mknod",
            "utimensat",
            "chmod",
            "fchmodat",
        ]
        .iter()
        .any(|w| name.trim_start_matches("SYS_").starts_with(w)),
    }
}

/// Paths that hold no shared state of the buyers: the directory itself and
/// `DIR/buyer-N.err`, where the harness sends a buyer's stderr.
fn own(p: &Path, dir: &Path) -> bool {
    if p == dir {
        return true;
    }
    p.parent() == Some(dir)
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("buyer-") && n.ends_with(".err"))
}

/// The ledger: a step (so its lines come in schedule order), but oversell's own
/// bookkeeping, never a change PCT aims at.
fn ledger(p: &Path, dir: &Path) -> bool {
    p.parent() == Some(dir) && p.file_name().is_some_and(|n| n == crate::ledger::FILE_NAME)
}

/// What descriptor `fd` of process `pid` names.
fn fd_path(pid: u32, fd: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The absolute path a (directory descriptor, path pointer) pair of `pid` names.
fn path_at(pid: u32, dirfd: u64, ptr: u64) -> Option<PathBuf> {
    let raw = read_cstr(pid, ptr)?;
    // The caller's own `/proc/self` and `/dev/fd` are its, not the harness's: a
    // descriptor named as a path is the file it refers to.
    let own = raw
        .strip_prefix("/proc/self/fd/")
        .or_else(|| raw.strip_prefix("/dev/fd/"))
        .or_else(|| raw.strip_prefix(&format!("/proc/{pid}/fd/")));
    if let Some(fd) = own.and_then(|f| f.parse::<i32>().ok()) {
        return fd_path(pid, fd);
    }
    let raw = match raw.strip_prefix("/proc/self/") {
        Some(rest) => format!("/proc/{pid}/{rest}"),
        None => raw,
    };
    let p = PathBuf::from(&raw);
    if p.is_absolute() {
        return Some(p);
    }
    let base = if dirfd as i32 == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?
    } else {
        fd_path(pid, dirfd as i32)?
    };
    // An empty path (AT_EMPTY_PATH) names the directory descriptor's file itself.
    Some(if raw.is_empty() { base } else { base.join(p) })
}

/// A NUL-terminated string at `ptr` in the memory of `pid`.
fn read_cstr(pid: u32, ptr: u64) -> Option<String> {
    if ptr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while out.len() < 4096 {
        // Read up to the end of the page only: the next one may be unmapped.
        let at = ptr + out.len() as u64;
        let room = (4096 - (at % 4096)) as usize;
        let n = read_mem(pid, at, &mut buf[..room.min(256)])?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&buf[..n]);
    }
    None
}

/// Reads `buf.len()` bytes at `addr` in the memory of `pid` with one
/// `process_vm_readv` (no `/proc/PID/mem` to open and close per call); the count read.
fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` covers exactly `buf`, which this frame borrows mutably; the
    // kernel checks `remote` against the other process's mappings.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if let Ok(n) = usize::try_from(n) {
        return Some(n);
    }
    // A sandbox may refuse the call itself (ENOSYS, EPERM) yet allow the file.
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => {
            let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
            std::os::unix::fs::FileExt::read_at(&mem, buf, addr).ok()
        }
        _ => None,
    }
}

/// True when the lock call `lock` of process `pid` would block now: decided before it
/// runs, so a blocked buyer is a scheduling decision and never sleeps in the kernel.
pub(super) fn would_block(pid: u32, lock: LockCall) -> bool {
    let blocking = match lock {
        LockCall::Flock { op, .. } => op & libc::LOCK_NB == 0,
        LockCall::Fcntl { cmd, .. } => cmd == libc::F_SETLKW || cmd == libc::F_OFD_SETLKW,
    };
    // A conversion of the caller's own flock can always take its first step (dropping
    // the lock it holds, [`begin_conversion`]); only then does it wait.
    let converts = matches!(lock, LockCall::Flock { fd, .. } if own_flock(pid, fd).is_some());
    blocking && !converts && conflicts(pid, lock)
}

/// True when another holder keeps the lock `lock` of process `pid` asks for (an unlock
/// never conflicts). The caller's own locks are no rival: relocking, or upgrading a
/// shared lock it alone holds, goes through at once.
fn conflicts(pid: u32, lock: LockCall) -> bool {
    match lock {
        LockCall::Flock { fd, op } => {
            if op & libc::LOCK_UN != 0 {
                return false;
            }
            // A second open file description of the same file (opened without blocking,
            // whatever the file is): it conflicts with every holder, the caller's own
            // description included.
            let Some(f) = reopen(pid, fd) else {
                return false;
            };
            let want = op & (libc::LOCK_SH | libc::LOCK_EX);
            // SAFETY: flock on a descriptor this frame owns; closing it drops the probe.
            let r = unsafe { libc::flock(f.as_raw_fd(), want | libc::LOCK_NB) };
            if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK) {
                return false;
            }
            match own_flock(pid, fd) {
                // The caller holds it through this descriptor: only others count.
                Some(key) => {
                    let others = flock_holders(&key).saturating_sub(1);
                    others > 0 && want & libc::LOCK_EX != 0
                }
                None => true,
            }
        }
        LockCall::Fcntl { fd, cmd, addr } => fcntl_conflicts(pid, fd, cmd, addr),
    }
}

/// A blocking `flock` that converts the caller's own lock (shared to exclusive) while
/// others hold theirs: the kernel first drops the caller's lock, then waits. That
/// first half is done here, through the caller's own open file description, when the
/// step is scheduled; the call itself then waits like any acquire. True when it dropped.
pub(super) fn begin_conversion(pid: u32, lock: LockCall) -> bool {
    let LockCall::Flock { fd, op } = lock else {
        return false;
    };
    if op & libc::LOCK_NB != 0 || own_flock(pid, fd).is_none() || !conflicts(pid, lock) {
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
fn reopen(pid: u32, fd: i32) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .ok()
}

/// The same open file description as descriptor `fd` of `pid` (`pidfd_getfd`): what
/// a lock probe must use so that the caller's own OFD locks are not taken for a rival's.
fn their_description(pid: u32, fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
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
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(dup as i32) })
}

/// The `MAJ:MIN:INODE` of the file whose flock descriptor `fd` of `pid` holds, when it
/// holds one (`/proc/PID/fdinfo` lists the locks of that open file description).
fn own_flock(pid: u32, fd: i32) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
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

/// The file offset of descriptor `fd` of `pid`, from `/proc/PID/fdinfo`.
fn fd_pos(pid: u32, fd: i32) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let line = info.lines().find(|l| l.starts_with("pos:"))?;
    line.trim_start_matches("pos:").trim().parse().ok()
}

/// A POSIX or OFD lock request: asks the kernel who conflicts (F_GETLK, F_OFD_GETLK).
fn fcntl_conflicts(pid: u32, fd: i32, cmd: i32, addr: u64) -> bool {
    // SAFETY: a zeroed `flock` is a valid value; it is then filled from the process.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    // SAFETY: `fl` is plain data; the slice covers exactly its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            &mut fl as *mut libc::flock as *mut u8,
            std::mem::size_of::<libc::flock>(),
        )
    };
    if read_mem(pid, addr, bytes) != Some(bytes.len()) || fl.l_type == libc::F_UNLCK as i16 {
        return false;
    }
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
    // SAFETY: fcntl reads and writes one `flock`.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return false;
    }
    // A POSIX lock is the process's: the caller's own is no rival.
    fl.l_type != libc::F_UNLCK as i16 && fl.l_pid != tgid(pid)
}

/// The process (thread group) a thread `tid` belongs to.
fn tgid(tid: u32) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid as i32)
}

/// What the call `step` of `n` returns, read off the state just before it runs: only
/// this call runs until its buyer's next step, so the state it meets is this one.
/// `ok`, an errno name, `created`, or a byte count.
pub(super) fn result(step: &Step, n: &Notif) -> String {
    if step.sleep {
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
        // A blocking lock call runs only once it no longer conflicts.
        "flock" | "fcntl" => match step.lock {
            Some(l) if conflicts(n.pid, l) => "EWOULDBLOCK".into(),
            _ => "ok".into(),
        },
        "close" | "fsync" | "fdatasync" | "ftruncate" | "writev" | "pwritev" | "semop"
        | "semtimedop" | "msgsnd" | "msgrcv" | "futex" => "ok".into(),
        _ => errno(exists, "ENOENT"),
    }
}
