//! `posix-sem` (known broken under kills): a POSIX named semaphore used as a mutex.
//!
//! Every buyer opens the trial's semaphore (`sem_open` with value 1) and takes it with
//! `sem_wait` / `sem_trywait`, gives it back with `sem_post`. While every holder lives
//! this is a sound mutex. But the kernel keeps no record of who decremented a POSIX
//! semaphore, so a holder that dies never posts it: the semaphore stays at zero and every
//! other buyer waits forever. This is the bug of worker pools and daemons that guard a
//! resource with `sem_open`: one crash wedges them all. (The `sysv` backend's `SEM_UNDO`
//! is the kernel's answer to this.) It shows as a `hang` or `stale_lock` once buyers are
//! killed by injected faults.
//!
//! # The semaphore's name
//!
//! The name is derived from the trial directory alone, so every buyer and the harness
//! compute the same one: `/oversell-<owner pid>-<hash>`, where `<owner pid>` is the pid in
//! the directory's name (`oversell-<pid>-...`, the process that owns the trial; omitted
//! when the name has no pid) and `<hash>` is the 64-bit FNV-1a hash of the directory's
//! full path, in hex. It lives in `/dev/shm` as `sem.oversell-<owner pid>-<hash>`.
//!
//! # Cleanup
//!
//! A buyer unlinks the name at its first acquire. That is safe because the harness
//! releases buyers through a start barrier only after every buyer has attached (opened
//! the semaphore), and an unlinked semaphore stays usable by every process that has it
//! open. When no buyer gets that far (all killed early), [`cleanup`] removes the name
//! after the trial, and [`sweep_stale`] removes names whose owner is gone.

use super::{Lock, LockError};
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The prefix of every semaphore name this backend makes (without the leading `/`).
const NAME_PREFIX: &str = "oversell-";

/// The 64-bit FNV-1a hash: stable across processes, builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The pid in a trial directory's name `oversell-<pid>-...`, if it has one.
fn owner_pid(dir: &Path) -> Option<u32> {
    dir.file_name()?
        .to_str()?
        .strip_prefix(NAME_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// The semaphore name for the trial in `dir` (see the module docs).
pub(crate) fn name(dir: &Path) -> CString {
    let hash = fnv1a(dir.as_os_str().as_bytes());
    let text = match owner_pid(dir) {
        Some(pid) => format!("/{NAME_PREFIX}{pid}-{hash:016x}"),
        None => format!("/{NAME_PREFIX}{hash:016x}"),
    };
    // The name is built from digits, hex and a fixed prefix: it holds no NUL byte.
    CString::new(text).unwrap_or_default()
}

/// Removes a semaphore name; a name already gone is not an error.
fn unlink(name: &CStr) -> Result<(), io::Error> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::sem_unlink(name.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOENT) => Ok(()),
        _ => Err(err),
    }
}

/// Removes the trial's semaphore name, if it is still there. The harness calls this
/// after each `posix-sem` trial, however it ended.
pub(crate) fn cleanup(dir: &Path) {
    // Nothing to report to: a name that cannot be removed is swept later.
    let _ = unlink(&name(dir));
}

/// Removes semaphore names of this backend whose owning oversell process is no longer
/// running (`alive` says whether a pid runs). Returns how many were removed.
pub(crate) fn sweep_stale(alive: &dyn Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|n| n.strip_prefix("sem."))
            .filter(|n| n.starts_with(NAME_PREFIX))
        else {
            continue;
        };
        let owner = rest[NAME_PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        // A name without an owner pid cannot be judged; leave it.
        let Some(pid) = owner else { continue };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let Ok(name) = CString::new(format!("/{rest}")) else {
            continue;
        };
        if unlink(&name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// A POSIX named semaphore, open in this process.
#[derive(Debug)]
pub(crate) struct PosixSemLock {
    sem: *mut libc::sem_t,
    name: CString,
    unlinked: bool,
}

impl Default for PosixSemLock {
    fn default() -> Self {
        PosixSemLock {
            sem: std::ptr::null_mut(),
            name: CString::default(),
            unlinked: false,
        }
    }
}

impl PosixSemLock {
    fn sem(&mut self) -> Result<*mut libc::sem_t, LockError> {
        if self.sem.is_null() {
            return Err(LockError::Setup(
                "posix-sem: not attached to a trial".into(),
            ));
        }
        if !self.unlinked {
            // Every buyer attached before the start barrier let any buyer acquire (see
            // the module docs), so the name is no longer needed.
            self.unlinked = true;
            unlink(&self.name).map_err(|e| LockError::io("sem_unlink", e))?;
        }
        Ok(self.sem)
    }
}

/// A `futex` wake of nobody on the semaphore's word: a call that does nothing, made just
/// before each operation on the semaphore, so that under system-call steps the
/// operation (an atomic instruction when uncontended, no call at all) falls inside a step
/// the scheduler sees and orders, as a shared-memory effect that conflicts with every
/// other.
fn announce(sem: *mut libc::sem_t) {
    // SAFETY: FUTEX_WAKE of zero waiters reads nothing and writes nothing; `sem` points
    // at a mapped semaphore, so the address is valid for the kernel's lookup.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            sem as *mut u32,
            libc::FUTEX_WAKE,
            0,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

impl Lock for PosixSemLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let name = name(dir);
        let mode: libc::c_uint = 0o600;
        let value: libc::c_uint = 1;
        // SAFETY: `name` is a valid NUL-terminated string; with O_CREAT, sem_open reads
        // exactly two more arguments, a mode and an initial value, passed as unsigned
        // ints as the C calling convention promotes them. Without O_EXCL it opens the
        // semaphore if another buyer created it first (and then ignores the value).
        let sem = unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT, mode, value) };
        if sem == libc::SEM_FAILED {
            return Err(LockError::io("sem_open", io::Error::last_os_error()));
        }
        self.sem = sem;
        self.name = name;
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        let sem = self.sem()?;
        loop {
            announce(sem);
            // SAFETY: `sem` came from a successful sem_open and is closed only on drop.
            if unsafe { libc::sem_wait(sem) } == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(LockError::io("sem_wait", err));
            }
        }
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        let sem = self.sem()?;
        loop {
            announce(sem);
            // SAFETY: `sem` came from a successful sem_open and is closed only on drop.
            if unsafe { libc::sem_trywait(sem) } == 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(false),
                _ => return Err(LockError::io("sem_trywait", err)),
            }
        }
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        let sem = self.sem()?;
        announce(sem);
        // SAFETY: `sem` came from a successful sem_open and is closed only on drop.
        if unsafe { libc::sem_post(sem) } == 0 {
            Ok(())
        } else {
            Err(LockError::io("sem_post", io::Error::last_os_error()))
        }
    }
}

impl Drop for PosixSemLock {
    fn drop(&mut self) {
        if !self.sem.is_null() {
            // SAFETY: `sem` came from a successful sem_open and is not used after this.
            unsafe {
                libc::sem_close(self.sem);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_carry_the_owner() {
        let a = name(Path::new("/tmp/oversell-4242-abc"));
        let b = name(Path::new("/tmp/oversell-4242-abd"));
        assert_eq!(a, name(Path::new("/tmp/oversell-4242-abc")));
        assert_ne!(a, b);
        let text = a.to_str().expect("ascii name");
        assert!(text.starts_with("/oversell-4242-"), "{text}");
        let plain = name(Path::new("/tmp/elsewhere"));
        assert!(plain.to_str().expect("ascii").starts_with("/oversell-"));
    }

    #[test]
    fn takes_gives_back_and_leaves_nothing() {
        let dir = tempfile::Builder::new()
            .prefix(&format!("oversell-{}-", std::process::id()))
            .tempdir()
            .expect("tempdir");
        let mut a = PosixSemLock::default();
        let mut b = PosixSemLock::default();
        a.attach(dir.path()).expect("attach a");
        b.attach(dir.path()).expect("attach b");
        assert!(a.try_lock().expect("try a"));
        assert!(!b.try_lock().expect("try b while a holds"));
        a.unlock().expect("unlock a");
        assert!(b.try_lock().expect("try b"));
        b.unlock().expect("unlock b");
        let file = format!(
            "/dev/shm/sem.{}",
            &name(dir.path()).to_str().expect("ascii")[1..]
        );
        assert!(!Path::new(&file).exists(), "{file} left behind");
        cleanup(dir.path());
    }

    #[test]
    fn cleanup_and_sweep_remove_left_names() {
        // A pid above the kernel's limit: no process has it.
        const GONE: u32 = 4_000_000_001;
        for (i, sweep) in [false, true].into_iter().enumerate() {
            let dir = std::path::PathBuf::from(format!("/nonexistent/oversell-{GONE}-{i}"));
            let mut lock = PosixSemLock::default();
            lock.attach(&dir).expect("attach");
            drop(lock);
            let file = format!("/dev/shm/sem.{}", &name(&dir).to_str().expect("ascii")[1..]);
            assert!(Path::new(&file).exists(), "{file} was never made");
            if sweep {
                // Only our made-up owner counts as gone: other runs' names stay.
                assert!(sweep_stale(&|pid| pid != GONE) >= 1);
            } else {
                cleanup(&dir);
            }
            assert!(!Path::new(&file).exists(), "{file} left behind");
        }
    }
}
