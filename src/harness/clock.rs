//! The trial's clock: virtual time for the processes of a user's command.
//!
//! The clock shim (`shim/clock.rs`, built by `build.rs` and embedded here) is written
//! out once per run, as `oversell-<pid>-clock/liboversell_clock.so` in the scratch root
//! (the system's temporary directory when that is mounted `noexec`), which the run's
//! guard, or the next run's sweep, removes once the run is gone. A trial at system-call
//! granularity makes a [`TrialClock`]: a small file in its directory ([`FILE_NAME`])
//! that every process of a user's command maps through the shim (`LD_PRELOAD`,
//! [`CLOCK_ENV`], [`UNIT_ENV`]) and reads its `clock_gettime`, `gettimeofday` and `time`
//! from. The harness alone writes it: how much virtual time has passed, and per buyer the
//! rate its clock runs at (a skew) and how far its wall clock has stepped (a jump).
//!
//! The shim also answers `getrandom` from the trial's seed ([`ENTROPY_ENV`]): what a
//! program draws at random (a sleep's length, a backoff) is drawn again in a replay.
//!
//! Every trial's clock starts at the same readings ([`BASE_WALL`], [`BASE_MONOTONIC`]).
//! Time passes only by the trial's sleeps: a sleep is a step, answered without sleeping,
//! and answering it moves the clock to the sleeper's deadline (`syscall::stepper`). So a
//! trial's clock readings depend on its schedule alone, and a replay reads the same.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable naming the clock file.
pub(crate) const CLOCK_ENV: &str = "OVERSELL_CLOCK";
/// The environment variable naming the buyer (its slot in the clock file).
pub(crate) const UNIT_ENV: &str = "OVERSELL_CLOCK_UNIT";
/// The environment variable seeding what the trial's processes draw from `getrandom`.
pub(crate) const ENTROPY_ENV: &str = "OVERSELL_ENTROPY";
/// The clock file, in the trial directory: oversell's own, never a step.
pub(crate) const FILE_NAME: &str = crate::vocab::trial_dir::CLOCK_FILE;
/// The slot of processes that belong to no buyer (a whole program): never skewed.
pub(crate) const NO_UNIT: u32 = crate::limits::MAX_BUYERS;

const SHIM_NAME: &str = "liboversell_clock.so";
const SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/liboversell_clock.so"));
const MAGIC: &[u8; 8] = b"OVCLOCK1";
const UNIT_SLOT: u64 = 16;
const HEADER: u64 = 64;
/// The file's length: the header and one slot per buyer, and one for [`NO_UNIT`].
const LEN: u64 = HEADER + UNIT_SLOT * (crate::limits::MAX_BUYERS as u64 + 1);

static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The shim, written out for this run (once); `None` when it cannot be.
pub(crate) fn shim() -> Option<&'static Path> {
    PATH.get_or_init(|| {
        let written = write_shim().ok();
        if let Some(p) = &written {
            crate::seccomp::call::note_clock_shim(p);
        }
        written
    })
    .as_deref()
}

/// True once this run has written its shim out.
pub(crate) fn shim_written() -> bool {
    PATH.get().is_some_and(|p| p.is_some())
}

/// The directory the shim goes in: one the loader may map code from.
fn shim_root() -> PathBuf {
    let scratch = super::scratch_root();
    let noexec = nix::sys::statvfs::statvfs(scratch)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC))
        .unwrap_or(true);
    if noexec {
        std::env::temp_dir()
    } else {
        scratch.to_path_buf()
    }
}

/// The run's shim directory, `oversell-<pid>-clock` (a sweep removes it once the run
/// is gone).
pub(crate) fn shim_dir() -> PathBuf {
    shim_root().join(format!("{}{}-clock", super::DIR_PREFIX, std::process::id()))
}

fn write_shim() -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = shim_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(SHIM_NAME);
    let part = dir.join(format!("{SHIM_NAME}.part"));
    std::fs::write(&part, SHIM)?;
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&part, &path)?;
    Ok(path)
}

/// The clock file of a trial's own `redis-server`, in its directory: the machine's time
/// plus what the harness moved it by (a stop fault's pause, passed at once).
pub(crate) const SERVER_FILE: &str = "server-clock.bin";

/// Gives `cmd` (a server of the trial's) a clock on real time that the harness can move
/// forward ([`advance_server_clock`]); false when the shim cannot be had.
pub(crate) fn give_server_clock(cmd: &mut Command, dir: &Path) -> bool {
    let Some(shim) = shim() else {
        return false;
    };
    let path = dir.join(SERVER_FILE);
    let mut head = Vec::with_capacity(LEN as usize);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&0u64.to_ne_bytes());
    head.extend_from_slice(&real_ns(nix::time::ClockId::CLOCK_MONOTONIC).to_ne_bytes());
    head.extend_from_slice(&real_ns(nix::time::ClockId::CLOCK_REALTIME).to_ne_bytes());
    head.resize(LEN as usize, 0);
    if std::fs::write(&path, head).is_err() {
        return false;
    }
    cmd.env("LD_PRELOAD", shim)
        .env(CLOCK_ENV, &path)
        .env(UNIT_ENV, NO_UNIT.to_string());
    true
}

/// Moves the clock of the trial's server in `dir` forward by `span`; an error when it
/// has none.
pub(crate) fn advance_server_clock(dir: &Path, span: std::time::Duration) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(SERVER_FILE))?;
    let mut old = [0u8; 8];
    file.read_exact_at(&mut old, 32)?;
    let ns = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    file.write_all_at(
        &u64::from_ne_bytes(old).saturating_add(ns).to_ne_bytes(),
        32,
    )
}

fn real_ns(id: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(id)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The clock of one trial: its file, and how much virtual time has passed.
#[derive(Debug)]
pub(crate) struct TrialClock {
    file: File,
    path: PathBuf,
    now: u64,
    base: u64,
    shim: PathBuf,
    seed: u64,
}

/// Where every trial's `CLOCK_MONOTONIC` starts: 100 000 s, the same in every run. A
/// program computes with its readings in floating point, whose rounding depends on their
/// size: only bases fixed once for all make a replay read exactly the same times.
const BASE_MONOTONIC: u64 = 100_000 * 1_000_000_000;

/// Where every trial's wall clock starts: 2026-01-01 00:00:00 UTC, for the same reason
/// (a file's modification time is the machine's, so it may look months away).
const BASE_WALL: u64 = 1_767_225_600 * 1_000_000_000;

impl TrialClock {
    /// Makes the clock file in `dir`, on virtual time from now, with each buyer's rate
    /// (thousandths; `None` runs at the trial's pace). `None` when the shim could not be
    /// written out.
    pub(crate) fn create(
        dir: &Path,
        rates: &[Option<u32>],
        seed: u64,
    ) -> io::Result<Option<TrialClock>> {
        let Some(shim) = shim() else {
            return Ok(None);
        };
        let path = dir.join(FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.set_len(LEN)?;
        let base = BASE_MONOTONIC;
        let mut head = Vec::with_capacity(HEADER as usize);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&1u64.to_ne_bytes());
        head.extend_from_slice(&base.to_ne_bytes());
        head.extend_from_slice(&BASE_WALL.to_ne_bytes());
        head.extend_from_slice(&0u64.to_ne_bytes());
        file.write_all_at(&head, 0)?;
        for (unit, rate) in rates.iter().enumerate() {
            if let Some(t) = rate {
                let rate = f64::from(*t) / 1000.0;
                file.write_all_at(&rate.to_bits().to_ne_bytes(), slot(unit as u32))?;
            }
        }
        Ok(Some(TrialClock {
            file,
            path,
            now: 0,
            base,
            shim: shim.to_path_buf(),
            seed,
        }))
    }

    /// Virtual time passed, ns.
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// The trial's wall clock now (no buyer's rate or jump), ns since the epoch: the
    /// time a file changed now is given.
    pub(crate) fn wall_ns(&self) -> u64 {
        BASE_WALL.saturating_add(self.now)
    }

    /// The base on `CLOCK_MONOTONIC`: virtual time 0, ns.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Moves virtual time forward to `ns` (never back).
    pub(crate) fn advance_to(&mut self, ns: u64) {
        if ns > self.now {
            self.now = ns;
            // A word written whole: a reader sees the old time or the new.
            let _ = self.file.write_all_at(&ns.to_ne_bytes(), 32);
        }
    }

    /// Steps buyer `unit`'s wall clock by `ms` (on top of any earlier step).
    pub(crate) fn jump(&mut self, unit: u32, ms: i32) {
        let at = slot(unit) + 8;
        let mut old = [0u8; 8];
        let _ = self.file.read_exact_at(&mut old, at);
        let ns = i64::from_ne_bytes(old).saturating_add(i64::from(ms) * 1_000_000);
        let _ = self.file.write_all_at(&ns.to_ne_bytes(), at);
    }

    /// Gives `cmd` (buyer `unit`'s, or [`NO_UNIT`]) this clock: the shim preloaded
    /// ahead of any the user's environment names, the file, the slot.
    pub(crate) fn give(&self, cmd: &mut Command, unit: u32) {
        let preload = match std::env::var_os("LD_PRELOAD") {
            Some(old) if !old.is_empty() => {
                let mut s = self.shim.clone().into_os_string();
                s.push(":");
                s.push(old);
                s
            }
            _ => self.shim.clone().into_os_string(),
        };
        cmd.env("LD_PRELOAD", preload)
            .env(CLOCK_ENV, &self.path)
            .env(UNIT_ENV, unit.to_string())
            .env(
                ENTROPY_ENV,
                (self.seed ^ u64::from(unit).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_string(),
            );
    }

    /// The shim's file name, as `/proc/PID/maps` shows it in a process that loaded it.
    pub(crate) fn shim_path(&self) -> &Path {
        &self.shim
    }
}

fn slot(unit: u32) -> u64 {
    HEADER + UNIT_SLOT * u64::from(unit.min(NO_UNIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_the_time_and_each_rate() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let Some(mut c) = TrialClock::create(dir.path(), &[None, Some(250)], 1).expect("made")
        else {
            return;
        };
        c.advance_to(5_000);
        c.advance_to(4_000);
        c.jump(1, -3000);
        let raw = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
        let word = |i: usize| u64::from_ne_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
        assert_eq!(&raw[..8], MAGIC);
        assert_eq!((word(8), word(32), c.now()), (1, 5_000, 5_000));
        assert_eq!(f64::from_bits(word(64 + 16)), 0.25);
        assert_eq!(word(64), 0);
        assert_eq!(word(64 + 16 + 8) as i64, -3_000_000_000);
        assert_eq!(raw.len() as u64, LEN);
    }
}
