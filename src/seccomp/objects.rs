//! What a step touches, by name: the objects of the file system a stopped call looks at
//! or changes, read off the file system just before it runs, for the partial-order
//! reduction ([`crate::schedule::Access`]).
//!
//! Objects are keyed the way the kernel tells them apart, so that two ways of naming one
//! thing give one key:
//! - an **entry** (a name in a directory): the path with its directory resolved (links,
//!   `..`), its last component as written;
//! - a **file**: its device and inode, whatever name or descriptor reaches it (a hard
//!   link, `/proc/PID/fd/N`);
//! - a directory's **listing**: its device and inode; an entry made or removed changes it
//!   in a way two such changes of different names commute with;
//! - a file's **locks**: its device and inode; a lock call changes them, and so does a
//!   close while `/proc/locks` holds any lock on the file (it may let one go).
//!
//! A look reads, a change writes; a path's call also reads every entry on its way below
//! the trial directory (a directory made, removed or replaced by a link changes where it
//! leads). What the kernel would do is decided now, from the state the call will meet:
//! between this look and the call, no other step runs.
//!
//! Whatever this cannot name soundly touches everything, as every step did before it:
//! a call with no path (a futex, SysV IPC, a fork), the ledger (its order is the
//! checker's), a path with `..`, a symbolic link where the call ends (what it leads to
//! changes with every step), a file that is neither a regular file nor a directory (a
//! FIFO's read consumes, its open waits for a partner), a file that cannot be looked at,
//! and every call once a directory has been renamed (the descriptors and working
//! directories in it moved with it). A sleep reads everything: the clock it moves is
//! read without a call, so it orders itself with every change.

use super::call::{through_fd, Notif, Step};
use crate::schedule::{Access, Touch};
use crate::seccomp::Effect;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// What the stopped call `step` of `n` touches, now; `dir` is the resolved trial
/// directory. `moved` is true once a directory was renamed in this trial.
pub(crate) fn access(n: &Notif, step: &Step, dir: &Path, moved: bool) -> Access {
    if moved {
        return Access::EVERYTHING;
    }
    if step.sleep() {
        let mut t = Touch::default();
        t.read_everything();
        return Access::touching(t);
    }
    let futex = matches!(step.lock, Some(super::call::LockCall::FutexWait { .. }));
    if step.path.is_empty() || futex || renames_a_directory(step) {
        return Access::EVERYTHING;
    }
    let path = Path::new(&step.path);
    if super::call::ledger(path, dir) {
        return Access::EVERYTHING;
    }
    let mut t = Touch::default();
    if super::call::to_server(step, dir) {
        t.write(key("server", path.as_os_str().as_encoded_bytes()));
        return Access::touching(t);
    }
    let done = if through_fd(step, n) {
        by_fd(n, step, &mut t)
    } else {
        step.names.iter().all(|p| by_name(p, n, step, dir, &mut t))
    };
    if done {
        Access::touching(t)
    } else {
        Access::EVERYTHING
    }
}

/// True when `step` renames a directory: after it, every call is taken to touch
/// everything ([`access`]'s `moved`), and so is the rename.
pub(crate) fn renames_a_directory(step: &Step) -> bool {
    let rename = matches!(step.name, "SYS_rename" | "SYS_renameat" | "SYS_renameat2");
    rename
        && step.names.iter().any(|p| {
            std::fs::symlink_metadata(super::paths::resolve(p.clone())).is_ok_and(|m| m.is_dir())
        })
}

/// A key of kind `kind` for `bytes`.
fn key(kind: &str, bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    bytes.hash(&mut h);
    h.finish()
}

/// A key of kind `kind` for the file `m` is the metadata of.
fn file_key(kind: &str, m: &std::fs::Metadata) -> u64 {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&m.dev().to_ne_bytes());
    raw[8..].copy_from_slice(&m.ino().to_ne_bytes());
    key(kind, &raw)
}

/// The key of the entry `p` names: its directory resolved, its last component as is.
fn entry(p: &Path) -> u64 {
    let real = super::paths::resolve(p.to_path_buf());
    key("entry", real.as_os_str().as_encoded_bytes())
}

/// True for what the key of a file can stand for: a regular file or a directory.
fn plain(m: &std::fs::Metadata) -> bool {
    let t = m.file_type();
    !(t.is_symlink() || t.is_fifo() || t.is_socket() || t.is_char_device() || t.is_block_device())
}

/// A call through a descriptor (a read, a write, a close, a lock, an `fstat`).
fn by_fd(n: &Notif, step: &Step, t: &mut Touch) -> bool {
    // The descriptor the table names (the one written, for a copy).
    let at = match crate::seccomp::of(n.nr).map(|c| c.shape) {
        Some(crate::seccomp::Shape::Fd(i)) => i,
        _ => 0,
    };
    let fd = n.args[at] as i32;
    let Ok(m) = std::fs::metadata(format!("/proc/{}/fd/{fd}", n.pid)) else {
        return false;
    };
    if !plain(&m) {
        return false;
    }
    match step.effect {
        // `fcntl(F_GETLK)`: who holds a lock on the file.
        Effect::Look if super::call::tests_a_lock(step.name, n.args[1]) => {
            t.read(file_key("locks", &m))
        }
        Effect::Look | Effect::Sync => {
            t.read(file_key("file", &m));
            if m.is_dir() {
                t.read(file_key("listing", &m));
            }
        }
        Effect::Change => t.write(file_key("file", &m)),
        Effect::Lock(_) => t.write(file_key("locks", &m)),
        // A close lets a lock go only where there is one on the file.
        Effect::Release => {
            if locked(&m) {
                t.write(file_key("locks", &m));
            }
        }
        _ => return false,
    }
    true
}

/// True when `/proc/locks` holds a lock on the file `m` is the metadata of (or cannot
/// be read): a close of it may let one go.
fn locked(m: &std::fs::Metadata) -> bool {
    let Ok(all) = std::fs::read_to_string("/proc/locks") else {
        return true;
    };
    let name = super::paths::locks_key(m);
    all.lines().any(|l| l.split_whitespace().any(|w| w == name))
}

/// A call on the path `name` (absolute, as the caller wrote it): its entries on the way,
/// the entry, the file it names, and the listing of its directory.
fn by_name(name: &Path, n: &Notif, step: &Step, dir: &Path, t: &mut Touch) -> bool {
    // `.` and empty components are no step of a walk; `..` depends on links.
    let mut lexical = PathBuf::new();
    for c in name.components() {
        match c {
            Component::ParentDir => return false,
            Component::CurDir => {}
            c => lexical.push(c),
        }
    }
    // The entries on the way: those below the trial directory (what is above it, or
    // above a scratch place, no buyer can remove or replace while the trial runs: every
    // one holds the trial).
    let mut way = lexical.clone();
    while way.pop() {
        if way.components().count() < 3 || dir.starts_with(&way) {
            break;
        }
        t.read(entry(&way));
    }
    let real = super::paths::resolve(lexical.clone());
    let here = std::fs::symlink_metadata(&real).ok();
    if here.as_ref().is_some_and(|m| !plain(m)) {
        return false;
    }
    // The entry's key, from the path already resolved (`entry` would resolve it again).
    let name_key = key("entry", real.as_os_str().as_encoded_bytes());
    t.read(name_key);
    if let Some(m) = &here {
        t.read(file_key("file", m));
        if m.is_dir() {
            t.read(file_key("listing", m));
        }
    }
    // The listing an entry made or removed here changes; a directory that is not there
    // makes the call fail, by its own entry (read on the way, or by the caller's).
    let listing = real
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| file_key("listing", &m));
    let reshape = |t: &mut Touch| {
        t.write(name_key);
        if let Some(m) = &here {
            t.write(file_key("file", m));
        }
        match listing {
            Some(l) => t.add(l),
            None => {
                if let Some(parent) = real.parent() {
                    t.read(entry(parent));
                }
            }
        }
    };
    match step.effect {
        Effect::Look => {}
        Effect::Open(flags) => {
            let f = n.args[flags] as i32;
            // `openat2` keeps its flags in a struct: taken as a create.
            let creates = f & libc::O_CREAT != 0 && here.is_none();
            if step.name == "SYS_openat2" || creates {
                reshape(t);
            } else if f & libc::O_TRUNC != 0 && f & (libc::O_WRONLY | libc::O_RDWR) != 0 {
                if let Some(m) = &here {
                    t.write(file_key("file", m));
                }
            }
        }
        Effect::Change => match step.name {
            // What changes a file, not its entry.
            name if crate::seccomp::calls::changes_the_file(name) => {
                if let Some(m) = &here {
                    t.write(file_key("file", m));
                }
            }
            // Makes, removes or replaces an entry (`creat`, `rename`, `link`, `unlink`,
            // `mkdir`, `rmdir`, `symlink`, `mknod`).
            _ => reshape(t),
        },
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_by_two_names_is_one_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = d.path().join("a");
        std::fs::write(&a, b"x").expect("write");
        std::fs::hard_link(&a, d.path().join("b")).expect("link");
        let ma = std::fs::metadata(&a).expect("a");
        let mb = std::fs::metadata(d.path().join("b")).expect("b");
        assert_eq!(file_key("file", &ma), file_key("file", &mb));
        assert_ne!(entry(&a), entry(&d.path().join("b")));
        // An entry named through a linked directory is the same entry.
        std::os::unix::fs::symlink(d.path(), d.path().join("here")).expect("symlink");
        assert_eq!(entry(&a), entry(&d.path().join("here").join("a")));
        assert_ne!(file_key("file", &ma), file_key("listing", &ma));
    }

    #[test]
    fn a_flock_on_a_file_is_seen_in_proc_locks() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("lock");
        let f = std::fs::File::create(&p).expect("create");
        let m = std::fs::metadata(&p).expect("metadata");
        assert!(!locked(&m));
        let _held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock");
        assert!(locked(&m));
    }
}
