//! The ticket store: the lesson's JSON file `{"count": N}`.
//!
//! This module knows nothing of locks. The in-place write truncates the file and then
//! writes it, exactly as the lesson's `open(..., 'w')` does, so a reader between the two
//! steps sees an empty file; the atomic write replaces the file by rename and never leaves
//! a torn one.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The store's file name inside a trial directory.
pub const FILE_NAME: &str = "store.json";

/// The store's path inside `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[derive(Serialize, Deserialize)]
struct Doc {
    count: i64,
}

/// Where the store's new count is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// Truncate the file, then write it: the lesson's way, which can be torn.
    #[default]
    InPlace,
    /// Write a temporary file, fsync it and rename it over the store (the directory is
    /// not fsynced: after a power cut the rename may be undone).
    Atomic,
    /// Write a temporary file, fsync it, rename it over the store, fsync the directory:
    /// a write that returned survives a power cut.
    Durable,
}

/// What a completed write of a store mode has made durable (survives a power cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// The contents of the file the store's name points at after the write were fsynced.
    pub file: bool,
    /// The directory was fsynced: its names survive as they are.
    pub dir: bool,
}

impl StoreMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StoreMode::InPlace => "in-place",
            StoreMode::Atomic => "atomic",
            StoreMode::Durable => "durable",
        }
    }

    /// Every mode, in the order the command line lists them.
    pub const ALL: [StoreMode; 3] = [StoreMode::InPlace, StoreMode::Atomic, StoreMode::Durable];

    /// What a write in this mode has made durable once it returned.
    pub fn durability(self) -> Durability {
        match self {
            StoreMode::InPlace => Durability {
                file: false,
                dir: false,
            },
            StoreMode::Atomic => Durability {
                file: true,
                dir: false,
            },
            StoreMode::Durable => Durability {
                file: true,
                dir: true,
            },
        }
    }
}

/// True for a file of the trial directory that belongs to the store (the store itself,
/// a temporary file of an atomic write, the fence): what a power cut may undo.
pub fn is_store_file(name: &str) -> bool {
    name == FILE_NAME || name.starts_with("store.tmp.") || name == "store.fence"
}

/// What a read of the store found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// A well-formed store.
    Count(i64),
    /// A file that does not parse (torn, empty or garbage), with a short excerpt.
    Corrupt(String),
}

impl Contents {
    /// The count, when the store parsed.
    pub fn count(&self) -> Option<i64> {
        match self {
            Contents::Count(n) => Some(*n),
            Contents::Corrupt(_) => None,
        }
    }
}

fn encode(count: i64) -> Vec<u8> {
    // Serialising a one-field struct of an integer cannot fail; fall back to the literal.
    serde_json::to_vec(&Doc { count }).unwrap_or_else(|_| format!("{{\"count\":{count}}}").into())
}

/// Parses store text.
pub fn parse(bytes: &[u8]) -> Contents {
    match serde_json::from_slice::<Doc>(bytes) {
        Ok(doc) => Contents::Count(doc.count),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let mut excerpt: String = text.chars().take(40).collect();
            if excerpt.is_empty() {
                excerpt = "an empty file".into();
            } else {
                excerpt = format!("{excerpt:?}");
            }
            Contents::Corrupt(excerpt)
        }
    }
}

/// Creates (or resets) the store holding `count` tickets.
pub fn create(path: &Path, count: i64) -> io::Result<()> {
    File::create(path)?.write_all(&encode(count))
}

/// Puts `count` tickets back in the store, rewriting the file in place when there is
/// one (cheaper than a new file): a controlled session resets its store every round.
pub fn reset(path: &Path, count: i64) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let bytes = encode(count);
    f.write_all_at(&bytes, 0)?;
    f.set_len(bytes.len() as u64)
}

/// Reads the store. An I/O failure (a missing file) is an error; bad contents are not.
pub fn read(path: &Path) -> io::Result<Contents> {
    // Read until end of file by hand: `read_to_end` on a `File` first asks for its size
    // and position (two more system calls), which a controlled step pays every time.
    let mut file = File::open(path)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(parse(&buf))
}

/// Writes `count` in place: truncate, call `between`, then write.
///
/// `between` runs while the file is empty: the window in which a reader sees a torn
/// store, and in which a killed writer leaves one behind.
pub fn write_in_place(path: &Path, count: i64, between: &mut dyn FnMut()) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    between();
    f.write_all(&encode(count))
}

/// What a fenced access came to: done, or refused because the store has seen a larger
/// fencing token than the one it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced<T> {
    /// The store accepted the token and did the access.
    Accepted(T),
    /// The store has seen token `seen`, larger than the one carried: nothing was done.
    Refused {
        /// The largest token the store has seen.
        seen: u64,
    },
}

/// The file beside the store holding the largest fencing token it has seen.
fn fence_path(path: &Path) -> PathBuf {
    path.with_extension("fence")
}

/// Runs `access` if `token` is no smaller than any token the store has seen, raising
/// that mark to `token`, then `noted` with what it gave. The check, the access and the
/// note are one step: other fenced accesses wait on an exclusive `flock` of the fence
/// file meanwhile (the store's own atomicity, as a database's; it is held for one access,
/// never across a critical section). So notes (the buyers' ledger events) come in the
/// order the store took the accesses, however the buyers' processes are preempted.
fn fenced<T>(
    path: &Path,
    token: u64,
    access: impl FnOnce() -> io::Result<T>,
    noted: impl FnOnce(&T),
) -> io::Result<Fenced<T>> {
    use nix::fcntl::{Flock, FlockArg};
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(fence_path(path))?;
    let mut held = loop {
        match Flock::lock(file.try_clone()?, FlockArg::LockExclusive) {
            Ok(held) => break held,
            Err((_, nix::errno::Errno::EINTR)) => continue,
            Err((_, e)) => return Err(e.into()),
        }
    };
    let mut text = String::new();
    held.read_to_string(&mut text)?;
    let seen: u64 = text.trim().parse().unwrap_or(0);
    if token < seen {
        return Ok(Fenced::Refused { seen });
    }
    if token > seen {
        held.set_len(0)?;
        held.write_all_at(token.to_string().as_bytes(), 0)?;
    }
    let done = access()?;
    noted(&done);
    Ok(Fenced::Accepted(done))
}

/// Reads the store carrying fencing token `token`: refused when the store has seen a
/// larger one; else the token becomes the store's mark, so an older holder can no longer
/// write what it read before. `noted` sees what was read before any other fenced access
/// can follow.
pub fn read_fenced(
    path: &Path,
    token: u64,
    noted: impl FnOnce(&Contents),
) -> io::Result<Fenced<Contents>> {
    fenced(path, token, || read(path), noted)
}

/// Writes `count` in `mode` carrying fencing token `token`: refused (nothing written)
/// when the store has seen a larger one. The check and the write are one step, so an
/// in-place write has no window between truncate and write for anyone to see or stop in.
/// `noted` runs once the write is done, before any other fenced access can follow.
pub fn write_fenced(
    path: &Path,
    count: i64,
    token: u64,
    mode: StoreMode,
    noted: impl FnOnce(&()),
) -> io::Result<Fenced<()>> {
    fenced(path, token, || write(path, count, mode), noted)
}

/// Writes `count` in `mode`, in one go (an in-place write with no pause inside it).
pub fn write(path: &Path, count: i64, mode: StoreMode) -> io::Result<()> {
    match mode {
        StoreMode::InPlace => write_in_place(path, count, &mut || {}),
        StoreMode::Atomic => write_atomic(path, count),
        StoreMode::Durable => write_durable(path, count),
    }
}

/// Writes `count` atomically: a temporary file, fsync, rename over the store.
pub fn write_atomic(path: &Path, count: i64) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&encode(count))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes `count` durably: [`write_atomic`], then an fsync of the directory, so the
/// rename survives a power cut.
pub fn write_durable(path: &Path, count: i64) -> io::Result<()> {
    write_atomic(path, count)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        create(&p, 3).expect("create");
        assert_eq!(read(&p).expect("read"), Contents::Count(3));
        write_in_place(&p, 2, &mut || {
            // Between truncate and write the store is torn.
            assert!(matches!(read(&p), Ok(Contents::Corrupt(_))));
        })
        .expect("write");
        assert_eq!(read(&p).expect("read"), Contents::Count(2));
        write_atomic(&p, 1).expect("atomic");
        assert_eq!(read(&p).expect("read"), Contents::Count(1));
        write_durable(&p, 0).expect("durable");
        assert_eq!(read(&p).expect("read"), Contents::Count(0));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        assert_eq!(parse(b"{\"count\": 7}"), Contents::Count(7));
        assert!(matches!(parse(b"{\"cou"), Contents::Corrupt(_)));
        assert_eq!(parse(b""), Contents::Corrupt("an empty file".into()));
    }

    #[test]
    fn a_fenced_store_refuses_an_older_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        create(&p, 5).expect("create");
        let w = |count, token| write_fenced(&p, count, token, StoreMode::InPlace, |_| {});
        assert_eq!(w(4, 1).expect("w1"), Fenced::Accepted(()));
        // A newer holder reads: from now on token 1 is stale.
        assert_eq!(
            read_fenced(&p, 2, |_| {}).expect("r2"),
            Fenced::Accepted(Contents::Count(4))
        );
        assert_eq!(w(3, 1).expect("stale"), Fenced::Refused { seen: 2 });
        assert_eq!(
            read_fenced(&p, 1, |_| {}).expect("stale"),
            Fenced::Refused { seen: 2 }
        );
        assert_eq!(read(&p).expect("read"), Contents::Count(4));
        assert_eq!(w(3, 2).expect("w2"), Fenced::Accepted(()));
        assert_eq!(read(&p).expect("read"), Contents::Count(3));
    }

    /// A fenced access is noted while the store still holds its fence, so no other
    /// fenced access can come between the access and its note: the ledger then has the
    /// accesses in the store's order (a preempted buyer once noted its write after a
    /// newer holder's read, and the check saw two holders where the store had one).
    #[test]
    fn a_fenced_access_is_noted_before_the_fence_is_let_go() {
        use nix::fcntl::{Flock, FlockArg};
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        create(&p, 5).expect("create");
        let fence_free = || {
            let f = File::open(fence_path(&p)).expect("fence");
            Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok()
        };
        let mut seen = Vec::new();
        read_fenced(&p, 1, |c| seen.push((format!("{c:?}"), fence_free()))).expect("read");
        write_fenced(&p, 4, 1, StoreMode::InPlace, |()| {
            seen.push(("wrote".into(), fence_free()))
        })
        .expect("write");
        assert_eq!(
            seen,
            vec![
                ("Count(5)".to_string(), false),
                ("wrote".to_string(), false)
            ]
        );
        assert!(fence_free());
    }
}
