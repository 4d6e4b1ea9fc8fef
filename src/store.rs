//! The ticket store: the lesson's JSON file `{"count": N}`.
//!
//! This module knows nothing of locks. The in-place write truncates the file and then
//! writes it, exactly as the lesson's `open(..., 'w')` does, so a reader between the two
//! steps sees an empty file; the atomic write replaces the file by rename and never leaves
//! a torn one.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
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
    /// Write a temporary file, fsync it and rename it over the store.
    Atomic,
}

impl StoreMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StoreMode::InPlace => "in-place",
            StoreMode::Atomic => "atomic",
        }
    }
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

/// Reads the store. An I/O failure (a missing file) is an error; bad contents are not.
pub fn read(path: &Path) -> io::Result<Contents> {
    let mut buf = Vec::with_capacity(32);
    File::open(path)?.read_to_end(&mut buf)?;
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
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        assert_eq!(parse(b"{\"count\": 7}"), Contents::Count(7));
        assert!(matches!(parse(b"{\"cou"), Contents::Corrupt(_)));
        assert_eq!(parse(b""), Contents::Corrupt("an empty file".into()));
    }
}
