//! The disk under a power cut: what each of the store's files held at its last fsync,
//! and what each name of the trial directory pointed at when the directory was last
//! fsynced; at the cut, the files are rewritten as a crash may leave them.
//!
//! At step granularity a cut falls between steps, so every write of the store is whole
//! when it comes: what a store mode makes durable is known from the mode
//! ([`StoreMode::durability`]) and applied after each step that wrote. At the cut each
//! name that changed since the directory's last fsync is kept or undone, and each file
//! written since its last fsync keeps its writes wholly, loses them wholly, or keeps a
//! part (its new bytes cut short): a seeded choice per name and per file. Only the
//! store's files are modelled ([`store::is_store_file`]); the ledger is oversell's and
//! lives outside the crash, and the locks a cut may be used with keep no state on disk.

use crate::rng::Rng;
use crate::store::{self, Durability};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Each store file by name: its inode and its bytes.
type Scan = BTreeMap<String, (u64, Vec<u8>)>;

fn scan(dir: &Path) -> io::Result<Scan> {
    let mut out = Scan::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !store::is_store_file(&name) {
            continue;
        }
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        out.insert(name, (meta.ino(), std::fs::read(entry.path())?));
    }
    Ok(out)
}

/// What survives a power cut of the store's files.
#[derive(Debug, Default)]
pub(super) struct Disk {
    /// Name → inode, as of the directory's last fsync.
    names: BTreeMap<String, u64>,
    /// Inode → bytes, as of its last fsync.
    data: HashMap<u64, Vec<u8>>,
}

/// What a cut did.
pub(super) struct Cut {
    /// One line per file the cut changed.
    pub notes: Vec<String>,
    /// How many disk states it could have left.
    pub outcomes: u64,
}

impl Disk {
    /// Everything in `dir` as it is now is on the disk (the store as the round starts).
    pub(super) fn synced(dir: &Path) -> io::Result<Disk> {
        let now = scan(dir)?;
        Ok(Disk {
            names: now.iter().map(|(n, (i, _))| (n.clone(), *i)).collect(),
            data: now.into_values().collect(),
        })
    }

    /// A write of the store, in a mode that makes `d` durable, has returned.
    pub(super) fn wrote(&mut self, dir: &Path, d: Durability) -> io::Result<()> {
        if !d.file && !d.dir {
            return Ok(());
        }
        let now = scan(dir)?;
        if d.file {
            if let Some((ino, bytes)) = now.get(store::FILE_NAME) {
                self.data.insert(*ino, bytes.clone());
            }
        }
        if d.dir {
            self.names = now.iter().map(|(n, (i, _))| (n.clone(), *i)).collect();
        }
        Ok(())
    }

    /// Cuts the power: rewrites the store's files in `dir` as the disk may have kept
    /// them, choosing with `rng`. Every process that had them open is dead.
    pub(super) fn cut(&self, dir: &Path, rng: &mut Rng) -> io::Result<Cut> {
        let now = scan(dir)?;
        let mut notes = Vec::new();
        let mut outcomes: u64 = 1;
        let all: BTreeSet<&String> = self.names.keys().chain(now.keys()).collect();
        let mut after: BTreeMap<String, u64> = BTreeMap::new();
        for name in all {
            let durable = self.names.get(name).copied();
            let current = now.get(name).map(|(i, _)| *i);
            let kept = if durable == current {
                current
            } else {
                outcomes = outcomes.saturating_mul(2);
                if rng.chance(0.5) {
                    current
                } else {
                    notes.push(match (durable, current) {
                        (None, _) => format!("{name}: its creation undone"),
                        (Some(_), None) => format!("{name}: its removal undone"),
                        (Some(_), Some(_)) => {
                            format!("{name}: the rename over it undone (no fsync of the directory)")
                        }
                    });
                    durable
                }
            };
            if let Some(i) = kept {
                after.insert(name.clone(), i);
            }
        }
        let current: HashMap<u64, &Vec<u8>> = now.values().map(|(i, b)| (*i, b)).collect();
        let mut contents: HashMap<u64, Vec<u8>> = HashMap::new();
        for (name, &ino) in &after {
            if contents.contains_key(&ino) {
                continue;
            }
            let durable = self.data.get(&ino).cloned().unwrap_or_default();
            let bytes = match current.get(&ino) {
                Some(&now) if *now != durable => {
                    // Lost wholly, kept, or (a file with new bytes) kept in part.
                    let ways = if now.is_empty() { 2 } else { 2 + now.len() };
                    outcomes = outcomes.saturating_mul(ways as u64);
                    match rng.below(ways.min(3)) {
                        0 => {
                            notes.push(format!(
                                "{name}: the writes since its last fsync lost ({} bytes left)",
                                durable.len()
                            ));
                            durable
                        }
                        1 => {
                            notes.push(format!(
                                "{name}: the writes since its last fsync kept ({} bytes)",
                                now.len()
                            ));
                            now.clone()
                        }
                        _ => {
                            let k = rng.below(now.len());
                            notes.push(format!(
                                "{name}: the writes since its last fsync kept in part ({k} of {} bytes)",
                                now.len()
                            ));
                            now[..k].to_vec()
                        }
                    }
                }
                Some(&now) => now.clone(),
                None => durable,
            };
            contents.insert(ino, bytes);
        }
        for name in now.keys() {
            std::fs::remove_file(dir.join(name))?;
        }
        for (name, ino) in &after {
            let bytes = contents.get(ino).map_or(&[][..], Vec::as_slice);
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(Cut { notes, outcomes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Contents, StoreMode};

    /// Every outcome a cut may leave, over many seeds.
    fn outcomes(mode: StoreMode) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = store::path(dir.path());
            store::create(&p, 2).expect("create");
            let mut disk = Disk::synced(dir.path()).expect("scan");
            match mode {
                StoreMode::InPlace => store::write_in_place(&p, 1, &mut || {}),
                StoreMode::Atomic => store::write_atomic(&p, 1),
                StoreMode::Durable => store::write_durable(&p, 1),
            }
            .expect("write");
            disk.wrote(dir.path(), mode.durability()).expect("wrote");
            disk.cut(dir.path(), &mut Rng::new(seed)).expect("cut");
            let left = match store::read(&p) {
                Ok(Contents::Count(n)) => n.to_string(),
                Ok(Contents::Corrupt(_)) => "torn".into(),
                Err(_) => "gone".into(),
            };
            seen.insert(left);
        }
        seen
    }

    #[test]
    fn a_durable_write_survives_and_the_others_may_not() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(outcomes(StoreMode::Durable), set(&["1"]));
        assert_eq!(outcomes(StoreMode::Atomic), set(&["1", "2"]));
        assert_eq!(outcomes(StoreMode::InPlace), set(&["1", "2", "torn"]));
    }
}
