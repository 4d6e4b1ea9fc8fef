//! The paths a notified call names, as what they are: read from the caller's memory,
//! taken from its descriptors and working directory, resolved (symbolic links, `..`,
//! `/proc/self`), and judged: the trial directory, a scratch place buyers share, or a
//! change outside the system's own trees.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Directories outside the trial directory and the scratch places, resolved once per
/// run; bounded.
static OUTSIDE: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, Option<PathBuf>>>> =
    std::sync::Mutex::new(None);

/// `p` resolved, as [`resolve`] does, but with the directories outside the trial directory
/// and the scratch places resolved once per run (the system's library and program
/// directories do not move while oversell runs): a program's loader probes dozens of them
/// at every start, and walking each of their components every time would cost more than
/// the step itself. Inside the trial directory and the scratch places, where buyers make
/// and remove links while the trial runs, every path is resolved afresh.
pub(crate) fn resolve_in(p: PathBuf, dir: &Path) -> PathBuf {
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
pub(crate) fn resolve(p: PathBuf) -> PathBuf {
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

/// Places programs share scratch state through: a look at them is a step. (`/run` holds
/// the system's pid files and locks; `/var/run` and `/var/lock` lead there.)
pub(crate) const SCRATCH: &[&str] = &[
    "/tmp",
    "/var/tmp",
    "/dev/shm",
    "/run",
    "/var/run",
    "/var/lock",
];

/// True for a path in a scratch place buyers may share (see [`SCRATCH`]).
pub(crate) fn scratch(p: &Path) -> bool {
    // The places themselves (`/tmp`, a common working directory) are always there:
    // a look at one is no look at shared state.
    SCRATCH
        .iter()
        .any(|s| p.starts_with(s) && p != Path::new(s))
}

/// True when a change to `p` outside the trial directory is a change of state other
/// buyers may see: anywhere but the processes' own tree (`/proc`) and the devices of
/// `/dev` (its files and directories count), not a non-file (`pipe:[…]`, `socket:[…]`),
/// and not Python's bytecode cache ([`bytecode_cache`]), which a first run writes and
/// later runs do not. `/sys` counts: a control group made there (`mkdir
/// /sys/fs/cgroup/…`), a pinned BPF object or a configfs item is a lock other buyers see.
pub(crate) fn shared_outside(p: &Path) -> bool {
    if !p.is_absolute() {
        return false;
    }
    if scratch(p) {
        return true;
    }
    // The processes' own tree and the devices: what a program writes there (`/dev/null`,
    // `/proc/self/…`) is no file other buyers read. `/etc` and `/usr` are files like any
    // other: a lock taken there (`/etc/.pwd.lock`, a pid file under `/usr/local/var`)
    // is a change other buyers see. So is a file or directory made in `/dev` (a
    // writable file system where root runs): only its devices, terminals and sockets
    // are not. So is what is made or written in `/sys` (control groups, BPF pins).
    if p.starts_with("/dev") {
        return !device(p);
    }
    !p.starts_with("/proc") && !bytecode_cache(p)
}

/// True for what Python writes when it imports a module: a `__pycache__` directory next
/// to a `.py` file, and in it `NAME.TAG.pyc` (or the `NAME.TAG.pyc.NUMBER` it renames
/// from) for a `NAME.py` beside that directory. Any other file in such a directory (a
/// lock file put there) is a file like any other.
pub(crate) fn bytecode_cache(p: &Path) -> bool {
    const CACHE: &str = "__pycache__";
    let has_source = |dir: &Path, stem: Option<&str>| -> bool {
        match stem {
            Some(stem) => dir.join(format!("{stem}.py")).is_file(),
            None => std::fs::read_dir(dir).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "py")))
            }),
        }
    };
    let (Some(name), Some(parent)) = (p.file_name().and_then(|n| n.to_str()), p.parent()) else {
        return false;
    };
    if name == CACHE {
        return has_source(parent, None);
    }
    if parent.file_name().is_none_or(|n| n != CACHE) {
        return false;
    }
    let Some((stem, rest)) = name.split_once('.') else {
        return false;
    };
    let compiled = match rest.split_once(".pyc") {
        Some((tag, "")) => !tag.is_empty(),
        Some((tag, number)) => {
            !tag.is_empty()
                && number
                    .strip_prefix('.')
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        }
        None => false,
    };
    compiled && parent.parent().is_some_and(|d| has_source(d, Some(stem)))
}

/// True for a path under `/dev` that is no file of a program's: `/dev` itself, a
/// device, a terminal, a socket or pipe (`/dev/log`), or anything under `/dev/pts`.
fn device(p: &Path) -> bool {
    if p == Path::new("/dev") || p.starts_with("/dev/pts") {
        return true;
    }
    std::fs::metadata(p).is_ok_and(|m| !(m.is_file() || m.is_dir()))
}

/// True for a path in the system's own file trees (`/usr`, `/etc`, `/lib`, …): programs
/// map their libraries and caches from there by the dozen. A change there is a change
/// like any other ([`shared_outside`]); a mapping that cannot write is no effect.
pub(crate) fn system_tree(p: &Path) -> bool {
    const TREES: &[&str] = &["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc"];
    TREES.iter().any(|s| p.starts_with(s))
}

/// The process (thread group) task `tid` belongs to; `tid` itself when that cannot be
/// read.
pub(crate) fn process_of(tid: u32) -> u32 {
    read_proc(format!("/proc/{tid}/status"))
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// What descriptor `fd` of process `pid` names.
pub(crate) fn fd_path(pid: u32, fd: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The absolute path a (directory descriptor, path pointer) pair of `pid` names. Read
/// once per notification ([`NAMED`]).
pub(crate) fn path_at(pid: u32, dirfd: u64, ptr: u64) -> Option<PathBuf> {
    let key = (pid, dirfd, ptr);
    if let Some(known) = NAMED.with(|n| {
        n.borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
    }) {
        return known;
    }
    let path = read_path_at(pid, dirfd, ptr);
    NAMED.with(|n| n.borrow_mut().push((key, path.clone())));
    path
}

/// A new notification is being read: the paths [`path_at`] read for the one before are
/// no answer for it (the same pointer may hold another name now).
pub(crate) fn new_notification() {
    NAMED.with(|n| n.borrow_mut().clear());
}

/// [`path_at`], read from the process.
fn read_path_at(pid: u32, dirfd: u64, ptr: u64) -> Option<PathBuf> {
    // No path at all names the directory descriptor's file, as an empty one does
    // (`utimensat(fd, NULL, …)` is `futimens`).
    let raw = if ptr == 0 {
        String::new()
    } else {
        read_cstr(pid, ptr)?
    };
    // The caller's own `/proc/self`, `/proc/thread-self`, `/dev/fd` and `/dev/stdin` are
    // its, not the harness's: a descriptor named as a path is the file it refers to.
    let raw = match raw
        .strip_prefix("/proc/self/")
        .or_else(|| raw.strip_prefix("/proc/thread-self/"))
    {
        Some(rest) => format!("/proc/{pid}/{rest}"),
        None => match raw.as_str() {
            "/dev/stdin" => format!("/proc/{pid}/fd/0"),
            "/dev/stdout" => format!("/proc/{pid}/fd/1"),
            "/dev/stderr" => format!("/proc/{pid}/fd/2"),
            _ => match raw.strip_prefix("/dev/fd/") {
                Some(fd) => format!("/proc/{pid}/fd/{fd}"),
                None => raw,
            },
        },
    };
    if let Some((task, fd)) = proc_fd(&raw) {
        return fd_path(task, fd);
    }
    let p = PathBuf::from(&raw);
    if p.is_absolute() {
        return Some(p);
    }
    let base = dir_of(pid, dirfd)?;
    // An empty path (AT_EMPTY_PATH) names the directory descriptor's file itself.
    Some(if raw.is_empty() { base } else { base.join(p) })
}

/// The absolute path an `openat2` of `pid` names: with `RESOLVE_IN_ROOT` in its
/// `open_how` (at `how`), the directory descriptor is the root the path resolves in, so
/// `/etc/x` is that directory's `etc/x`; otherwise as [`path_at`].
pub(crate) fn openat2_path(pid: u32, dirfd: u64, ptr: u64, how: u64) -> Option<PathBuf> {
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let mut raw = [0u8; 24];
    let resolve = if read_mem(pid, how, &mut raw) == Some(24) {
        u64::from_ne_bytes(raw[16..24].try_into().unwrap_or([0; 8]))
    } else {
        0
    };
    if resolve & RESOLVE_IN_ROOT == 0 {
        return path_at(pid, dirfd, ptr);
    }
    let path = read_cstr(pid, ptr)?;
    Some(dir_of(pid, dirfd)?.join(path.trim_start_matches('/')))
}

/// The directory a directory descriptor of `pid` names (`AT_FDCWD`: its working
/// directory).
pub(crate) fn dir_of(pid: u32, dirfd: u64) -> Option<PathBuf> {
    if dirfd as i32 == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
    } else {
        fd_path(pid, dirfd as i32)
    }
}

/// How `/proc/locks` names the file `m` is the metadata of: `MAJ:MIN:INODE`, the
/// device's numbers in hex.
pub(crate) fn locks_key(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = m.dev();
    format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        m.ino()
    )
}

/// The task and descriptor a `/proc/PID/fd/N` or `/proc/PID/task/TID/fd/N` path names.
fn proc_fd(raw: &str) -> Option<(u32, i32)> {
    let rest = raw.strip_prefix("/proc/")?;
    let (first, rest) = rest.split_once('/')?;
    let (task, rest) = match rest.strip_prefix("task/") {
        Some(t) => {
            let (tid, rest) = t.split_once('/')?;
            (tid, rest)
        }
        None => (first, rest),
    };
    let fd = rest.strip_prefix("fd/")?;
    Some((task.parse().ok()?, fd.parse().ok()?))
}

/// A NUL-terminated string at `ptr` in the memory of `pid`.
pub(crate) fn read_cstr(pid: u32, ptr: u64) -> Option<String> {
    read_cbytes(pid, ptr).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The bytes of a NUL-terminated string at `ptr` in the memory of `pid`, as they are.
pub(crate) fn read_cbytes(pid: u32, ptr: u64) -> Option<Vec<u8>> {
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
            return Some(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
    None
}

/// Reads `buf.len()` bytes at `addr` in the memory of `pid` with one
/// `process_vm_readv` (no `/proc/PID/mem` to open and close per call); the count read.
pub(crate) fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
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

/// How a call names a path: the calling task, its directory descriptor, the pointer to
/// the name in its memory.
type Naming = (u32, u64, u64);

/// Files of `/proc` kept open per thread, the most at once: a look at a process tree
/// reads the same few files of each task over and over.
const MOST_OPEN: usize = 128;

thread_local! {
    /// The paths [`path_at`] read for the notification this thread is reading, by
    /// (process, directory descriptor, pointer): whether a call is a step, and whether
    /// it looks at other processes, read its names, and its process stays stopped in
    /// the call meanwhile. Emptied as each notification is received
    /// ([`new_notification`]).
    static NAMED: RefCell<Vec<(Naming, Option<PathBuf>)>> = const { RefCell::new(Vec::new()) };
    /// The `/proc` files this thread read, open, by path. A file of `/proc` is made anew
    /// at each read from its start, so one descriptor serves every look: finding a path
    /// under `/proc` costs the kernel more than the read. A descriptor whose task is gone
    /// fails its read (`ESRCH`); it is then dropped and the path opened anew (a new task
    /// may have its number).
    static OPEN: RefCell<HashMap<PathBuf, File>> = RefCell::new(HashMap::new());
}

/// A small file of `/proc` read whole, from its start, with as few calls as it takes
/// (its descriptor kept for the next look, [`OPEN`]).
pub(crate) fn read_proc(path: impl AsRef<Path>) -> Option<String> {
    let path = path.as_ref();
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        if let Some(f) = open.get_mut(path) {
            if let Some(text) = read_whole(f) {
                return Some(text);
            }
            open.remove(path);
        }
        let mut f = File::open(path).ok()?;
        let text = read_whole(&mut f)?;
        if open.len() >= MOST_OPEN {
            open.clear();
        }
        open.insert(path.to_path_buf(), f);
        Some(text)
    })
}

/// What `f` (a file of `/proc`) holds now, read from its start.
fn read_whole(f: &mut File) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(0)).ok()?;
    let mut buf = [0u8; 1024];
    let mut out = Vec::new();
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        // /proc files are made whole at the first read; a short read is their end.
        if n < buf.len() || out.len() > 1 << 20 {
            break;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_read_once_per_notification() {
        // This process stands in for a stopped one: the name at one address, changed
        // in place, reads as before until the next notification.
        let mut name = *b"/tmp/a\0";
        let (pid, at, ptr) = (
            std::process::id(),
            libc::AT_FDCWD as u64,
            name.as_ptr() as u64,
        );
        new_notification();
        assert_eq!(path_at(pid, at, ptr), Some(PathBuf::from("/tmp/a")));
        name[5] = b'b';
        std::hint::black_box(&name);
        assert_eq!(path_at(pid, at, ptr), Some(PathBuf::from("/tmp/a")));
        new_notification();
        assert_eq!(path_at(pid, at, ptr), Some(PathBuf::from("/tmp/b")));
    }

    #[test]
    fn a_descriptor_named_through_proc_is_read_as_a_task_and_a_descriptor() {
        assert_eq!(proc_fd("/proc/12/fd/3"), Some((12, 3)));
        assert_eq!(proc_fd("/proc/12/task/13/fd/4"), Some((13, 4)));
        assert_eq!(proc_fd("/proc/12/cwd"), None);
        assert_eq!(proc_fd("/proc/12/fd/x"), None);
    }

    #[test]
    fn only_pythons_own_bytecode_is_a_cache_and_sys_is_shared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        std::fs::write(dir.join("tool.py"), "").expect("source");
        std::fs::create_dir(dir.join("__pycache__")).expect("cache");
        let cache = dir.join("__pycache__");
        assert!(bytecode_cache(&cache));
        assert!(bytecode_cache(&cache.join("tool.cpython-311.pyc")));
        assert!(bytecode_cache(&cache.join("tool.cpython-311.pyc.140234")));
        // A lock file put in the cache, or bytecode of no source beside it, is a file.
        for other in [
            "run.lock",
            "other.cpython-311.pyc",
            "tool.pyc",
            "tool.x.pyc.tmp",
        ] {
            assert!(!bytecode_cache(&cache.join(other)), "{other}");
        }
        assert!(shared_outside(Path::new("/sys/fs/cgroup/pids/job.lock")));
        assert!(!shared_outside(Path::new("/proc/self/attr/current")));
    }
}
