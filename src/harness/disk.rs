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

    /// What changed since it was last made durable: the names (sorted) and the files
    /// (by their current name, sorted) a cut decides about.
    fn pending(&self, dir: &Path) -> io::Result<Pending> {
        let now = scan(dir)?;
        let all: BTreeSet<&String> = self.names.keys().chain(now.keys()).collect();
        let names = all
            .into_iter()
            .filter(|n| self.names.get(*n).copied() != now.get(*n).map(|(i, _)| *i))
            .cloned()
            .collect();
        let mut files: Vec<(String, u64)> = Vec::new();
        for (name, (ino, bytes)) in &now {
            let durable = self.data.get(ino).map_or(&[][..], Vec::as_slice);
            if bytes.as_slice() != durable && !files.iter().any(|(_, i)| i == ino) {
                files.push((name.clone(), *ino));
            }
        }
        Ok(Pending { now, names, files })
    }

    /// How many states a cut now could leave the store's files in (names kept or
    /// undone; each file's new writes lost, kept, or kept in part when it has any).
    pub(super) fn states(&self, dir: &Path) -> io::Result<u64> {
        let p = self.pending(dir)?;
        let mut n: u64 = 1;
        for _ in &p.names {
            n = n.saturating_mul(2);
        }
        for (_, ino) in &p.files {
            n = n.saturating_mul(p.ways(*ino));
        }
        Ok(n)
    }

    /// Cuts the power: rewrites the store's files in `dir` as the disk may have kept
    /// them, as `choose` says. Every process that had them open is dead.
    pub(super) fn cut(&self, dir: &Path, choose: &mut Choose<'_>) -> io::Result<Cut> {
        let p = self.pending(dir)?;
        let mut notes = Vec::new();
        let mut outcomes: u64 = 1;
        let mut after: BTreeMap<String, u64> = self
            .names
            .iter()
            .filter(|(n, _)| !p.names.contains(n))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        for name in &p.names {
            let durable = self.names.get(name).copied();
            let current = p.now.get(name).map(|(i, _)| *i);
            outcomes = outcomes.saturating_mul(2);
            let kept = if choose.pick(2) == 0 {
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
            };
            if let Some(i) = kept {
                after.insert(name.clone(), i);
            }
        }
        let mut contents: HashMap<u64, Vec<u8>> = HashMap::new();
        for (ino, bytes) in p.now.values() {
            contents.insert(*ino, bytes.clone());
        }
        for (name, ino) in &p.files {
            let now = contents.get(ino).cloned().unwrap_or_default();
            let durable = self.data.get(ino).cloned().unwrap_or_default();
            let ways = p.ways(*ino);
            outcomes = outcomes.saturating_mul(ways);
            let bytes = match choose.pick(ways) {
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
                    now
                }
                _ => {
                    let k = choose.part(now.len());
                    notes.push(format!(
                        "{name}: the writes since its last fsync kept in part ({k} of {} bytes)",
                        now.len()
                    ));
                    now[..k].to_vec()
                }
            };
            contents.insert(*ino, bytes);
        }
        for name in p.now.keys() {
            std::fs::remove_file(dir.join(name))?;
        }
        for (name, ino) in &after {
            let bytes = match contents.get(ino) {
                Some(b) => b.as_slice(),
                // A file no name held at the cut: what its last fsync left.
                None => self.data.get(ino).map_or(&[][..], Vec::as_slice),
            };
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(Cut { notes, outcomes })
    }
}

/// What a cut decides about.
struct Pending {
    now: Scan,
    /// Names whose entry changed since the directory's last fsync.
    names: Vec<String>,
    /// Files (by a current name) written since their last fsync.
    files: Vec<(String, u64)>,
}

impl Pending {
    /// A written file's ways: its writes lost, kept, or (when it has bytes) kept in part.
    fn ways(&self, ino: u64) -> u64 {
        let empty = self.now.values().any(|(i, b)| *i == ino && b.is_empty());
        if empty {
            2
        } else {
            3
        }
    }
}

/// How a cut chooses among the states the disk may be left in.
pub(super) enum Choose<'a> {
    /// Drawn from the trial's seed.
    Seeded(&'a mut Rng),
    /// The `k`th of [`Disk::states`] (a search runs each), read as mixed-radix digits,
    /// names first. A write kept in part keeps half its bytes: every cut-short store
    /// (a prefix of a JSON object) reads as torn, whatever its length.
    State(u64),
}

impl Choose<'_> {
    fn pick(&mut self, ways: u64) -> u64 {
        match self {
            Choose::Seeded(rng) => rng.below(ways as usize) as u64,
            Choose::State(k) => {
                let d = *k % ways;
                *k /= ways;
                d
            }
        }
    }

    fn part(&mut self, len: usize) -> usize {
        match self {
            Choose::Seeded(rng) => rng.below(len),
            Choose::State(_) => len / 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Contents, StoreMode};

    /// A store of 2 synced, then 1 written in `mode` and not yet cut.
    fn written(mode: StoreMode) -> (tempfile::TempDir, Disk) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = store::path(dir.path());
        store::create(&p, 2).expect("create");
        let mut disk = Disk::synced(dir.path()).expect("scan");
        store::write(&p, 1, mode).expect("write");
        disk.wrote(dir.path(), mode.durability()).expect("wrote");
        (dir, disk)
    }

    /// What the store in `dir` shows after a cut.
    fn left(dir: &Path) -> String {
        match store::read(&store::path(dir)) {
            Ok(Contents::Count(n)) => n.to_string(),
            Ok(Contents::Corrupt(_)) => "torn".into(),
            Err(_) => "gone".into(),
        }
    }

    /// Every outcome a cut may leave, over many seeds.
    fn outcomes(mode: StoreMode) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let (dir, disk) = written(mode);
            disk.cut(dir.path(), &mut Choose::Seeded(&mut Rng::new(seed)))
                .expect("cut");
            seen.insert(left(dir.path()));
        }
        seen
    }

    /// Every state a search runs, one per `k` below [`Disk::states`].
    fn states(mode: StoreMode) -> (u64, BTreeSet<String>) {
        let mut seen = BTreeSet::new();
        let mut n = 0;
        for k in 0.. {
            let (dir, disk) = written(mode);
            n = disk.states(dir.path()).expect("states");
            if k >= n {
                break;
            }
            disk.cut(dir.path(), &mut Choose::State(k)).expect("cut");
            seen.insert(left(dir.path()));
        }
        (n, seen)
    }

    #[test]
    fn a_search_meets_every_state_a_cut_may_leave() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(states(StoreMode::Durable), (1, set(&["1"])));
        assert_eq!(states(StoreMode::Atomic), (2, set(&["1", "2"])));
        assert_eq!(states(StoreMode::InPlace), (3, set(&["1", "2", "torn"])));
    }

    #[test]
    fn a_durable_write_survives_and_the_others_may_not() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(outcomes(StoreMode::Durable), set(&["1"]));
        assert_eq!(outcomes(StoreMode::Atomic), set(&["1", "2"]));
        assert_eq!(outcomes(StoreMode::InPlace), set(&["1", "2", "torn"]));
    }
}
