//! `--checkpoint FILE`: the frontier of an exhaustive search, so that a stopped run
//! resumes where it was.
//!
//! The frontier is the set of parts (see `explore::split`) searched to the end, each with
//! what it counted. It is written every few seconds while parts end, and when SIGINT or
//! SIGTERM stops the run; a SIGKILL loses at most the parts that ended since the last
//! write. The file is replaced whole (written beside it, then renamed), so a kill never
//! leaves half a frontier. A resumed run skips the parts the file holds and adds their
//! counts, so its verdict and its counts are those of a run never stopped; once the
//! search ends, the file is removed. A run cut short by `--trials` or `--time-budget`
//! keeps it, so a search too long for one sitting can be done in several.
//!
//! A checkpoint is input like a token: it is refused (one line) when it is not one, when
//! it was written by another command, or when it asks for more than the limits allow.

use super::split::PartRun;
use super::ExploreConfig;
use crate::harness::HarnessError;
use crate::limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the frontier is written while parts end.
const EVERY: Duration = Duration::from_secs(1);
/// The format's version, first in the file.
const FORMAT: u32 = 1;

/// One part of one shape's search at one bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartKey {
    /// The preemption bound searched.
    pub level: u32,
    /// Buyers of the shape.
    pub buyers: u32,
    /// Tickets of the shape.
    pub tickets: u32,
    /// The part's number within the shape's search.
    pub part: u64,
}

/// What a part searched to the end counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Schedules run.
    pub schedules: u64,
    /// Distinct executions, when reduced.
    pub executions: Option<u64>,
    /// Effects no step ordered.
    pub unordered: Vec<String>,
}

impl Done {
    pub(super) fn as_run(&self) -> PartRun {
        PartRun {
            schedules: self.schedules,
            executions: self.executions,
            unordered: self.unordered.clone(),
            first: None,
            failing: Vec::new(),
            end: super::split::PartEnd::Complete,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    oversell_checkpoint: u32,
    command: String,
    parts: Vec<(PartKey, Done)>,
}

/// A run's frontier and where it is kept.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
    command: String,
    /// The parts searched to the end.
    pub done: BTreeMap<PartKey, Done>,
    /// When the frontier was last written (`None`: not yet by this run).
    written: Option<Instant>,
}

/// What a run is, as a checkpoint names it: the options that decide its parts.
pub fn identity(cfg: &ExploreConfig) -> String {
    format!(
        "{:?}; seed {}; reduction {}; keep going {}; shard {:?}",
        cfg.space, cfg.seed, cfg.reduction, cfg.keep_going, cfg.shard
    )
}

impl Checkpoint {
    /// The checkpoint at `path` for the run `cfg` describes: empty when the file does not
    /// exist, else what it holds. `Err` is one line saying why the file is refused.
    pub fn open(path: &Path, cfg: &ExploreConfig) -> Result<Checkpoint, String> {
        let command = identity(cfg);
        let mut c = Checkpoint {
            path: path.to_path_buf(),
            command,
            done: BTreeMap::new(),
            written: None,
        };
        let text = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(c),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            Ok(m) if m.len() > limits::MAX_CHECKPOINT_BYTES => {
                return Err(format!(
                    "{} is {} bytes; accepted: a checkpoint of at most {} bytes",
                    path.display(),
                    m.len(),
                    limits::MAX_CHECKPOINT_BYTES
                ))
            }
            Ok(_) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        };
        let file: File = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not an oversell checkpoint ({e}); accepted: a file written by \
                 explore --checkpoint, or a new file",
                path.display()
            )
        })?;
        if file.oversell_checkpoint != FORMAT {
            return Err(format!(
                "{} is a checkpoint of format {}; accepted: format {FORMAT}",
                path.display(),
                file.oversell_checkpoint
            ));
        }
        if file.command != c.command {
            return Err(format!(
                "{} is the checkpoint of another command; accepted: the same command that \
                 wrote it, or a new file",
                path.display()
            ));
        }
        for (key, done) in file.parts {
            check(cfg, &key, &done).map_err(|why| format!("{}: {why}", path.display()))?;
            c.done.insert(key, done);
        }
        Ok(c)
    }

    /// Writes the frontier when the first part ends, then when the last write is a few
    /// seconds old.
    pub(super) fn tick(&mut self) -> Result<(), HarnessError> {
        if self.written.is_none_or(|w| w.elapsed() >= EVERY) {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the frontier now, replacing the file whole.
    pub(super) fn save(&mut self) -> Result<(), HarnessError> {
        let file = File {
            oversell_checkpoint: FORMAT,
            command: self.command.clone(),
            parts: self.done.iter().map(|(k, d)| (*k, d.clone())).collect(),
        };
        let text = serde_json::to_string(&file)
            .map_err(|e| HarnessError::Io("writing the checkpoint", e.into()))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                HarnessError::Io("writing the checkpoint", e)
            })?;
        self.written = Some(Instant::now());
        Ok(())
    }

    /// The search ended: the frontier is no longer needed.
    pub(super) fn finish(&mut self) -> Result<(), HarnessError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(HarnessError::Io("removing the checkpoint", e))
            }
            _ => Ok(()),
        }
    }
}

/// A part the file holds is one this run has, and its counts are within the limits.
fn check(cfg: &ExploreConfig, key: &PartKey, done: &Done) -> Result<(), String> {
    let s = &cfg.space;
    if !(s.buyers.lo..=s.buyers.hi).contains(&key.buyers)
        || !(s.tickets.lo..=s.tickets.hi).contains(&key.tickets)
    {
        return Err(format!(
            "a part of {} buyers, {} tickets is outside this run's shapes",
            key.buyers, key.tickets
        ));
    }
    if key.level > limits::MAX_PREEMPTIONS && key.level != limits::UNBOUNDED {
        return Err(format!(
            "a preemption bound of {} is out of range; accepted: 0 to {}",
            key.level,
            limits::MAX_PREEMPTIONS
        ));
    }
    if key.part >= limits::MAX_CHECKPOINT_PARTS {
        return Err(format!(
            "part {} is out of range; accepted: 0 to {}",
            key.part,
            limits::MAX_CHECKPOINT_PARTS - 1
        ));
    }
    if done.schedules > limits::MAX_TRIALS || done.executions.is_some_and(|e| e > done.schedules) {
        return Err(format!(
            "a part of {} schedules is out of range; accepted: at most {} schedules, and no \
             more executions than schedules",
            done.schedules,
            limits::MAX_TRIALS
        ));
    }
    if done.unordered.len() > 64 || done.unordered.iter().any(|u| u.len() > 4096) {
        return Err(
            "a part names too many unordered effects; accepted: 64 of 4096 bytes each".into(),
        );
    }
    Ok(())
}
