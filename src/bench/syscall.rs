//! Speed under the syscall-level scheduler: steps per second for oversell's own buyer
//! (`--granularity syscall`) and for a shell lock command (`--lock-cmd`), each from
//! random-schedule trials through one runner for the bench's speed budget.

use super::BenchOptions;
use crate::harness::HarnessError;
use crate::lock::LockKind;
use crate::scenario::{Span, Target, TrialSpace};
use serde::Serialize;

/// The step rate a syscall-level schedule reaches for oversell's buyer: the target.
pub const TARGET_STEPS_PER_SEC: f64 = 5_000.0;

/// A lock command in plain shell: a lock directory, polled.
const SHELL_LOCK: &str =
    "until mkdir {dir}/l.d 2>/dev/null; do sleep 0.001; done; {}; rmdir {dir}/l.d";

/// One measured rate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rate {
    /// What ran: the lock, or the lock command.
    pub what: String,
    /// Random-schedule trials run.
    pub trials: u64,
    /// Steps (stopped system calls let through) those trials took.
    pub steps: u64,
    /// Wall time of those trials, in milliseconds: whole trials, so spawning the
    /// buyers, their start-up calls (loader, libraries) and the teardown count too.
    pub elapsed_ms: u64,
    /// Steps per second: `steps` over `elapsed_ms`, start-up and teardown included.
    pub steps_per_sec: f64,
    /// Wall time per trial, in milliseconds (`elapsed_ms` over `trials`).
    pub ms_per_trial: f64,
    /// Steps per trial, on average.
    pub steps_per_trial: f64,
}

/// Speed under the syscall-level scheduler.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyscallSpeed {
    /// oversell's buyer under `--lock flock --granularity syscall`.
    pub buyer: Rate,
    /// oversell's buyer inside a shell lock command.
    pub lock_cmd: Rate,
    /// The lesson's first program, run whole (`--program`, `multiprocessing.Lock`,
    /// fork): `None` without `python3` or the fixture, and in the quick bench.
    pub program: Option<Rate>,
    /// A PostgreSQL buyer (`UPDATE … WHERE count > 0` through `psql`, `{pg}`), each trial
    /// with its own server: `None` without PostgreSQL or the fixture, and in the quick
    /// bench.
    pub postgres: Option<Rate>,
    /// How the rates are measured.
    pub note: String,
    /// The target for `buyer.steps_per_sec`.
    pub target_steps_per_sec: f64,
    /// Whether `buyer` reached it.
    pub met: bool,
}

/// Measures both rates; `None` where system calls cannot be intercepted.
pub(super) fn measure(opts: &BenchOptions) -> Result<Option<SyscallSpeed>, HarnessError> {
    if crate::harness::syscall_control_available().is_err() {
        return Ok(None);
    }
    let mut own = TrialSpace::new(LockKind::Flock);
    own.target = Target::Lock {
        lock: LockKind::Flock,
        syscall: true,
    };
    let buyer = rate(opts, own, "flock, --granularity syscall")?;
    let mut shell = TrialSpace::new(LockKind::None);
    shell.target = Target::LockCmd(SHELL_LOCK.to_string());
    let lock_cmd = rate(opts, shell, SHELL_LOCK)?;
    // A Python program's or a database's start is half a second: the full bench only.
    let full = opts.mode == super::Mode::Full;
    let program = match lesson().filter(|_| full) {
        Some(p) => {
            let what = p.cmd.clone();
            let mut space = TrialSpace::new(LockKind::None);
            space.target = Target::Program(p);
            Some(rate(opts, space, &what)?)
        }
        None => None,
    };
    let postgres = match postgres_buyer().filter(|_| full) {
        Some((buyer, store)) => {
            let mut space = TrialSpace::new(LockKind::None);
            space.target = Target::BuyerCmd {
                cmd: buyer.clone(),
                store_cmd: Some(store),
            };
            Some(rate(opts, space, &buyer)?)
        }
        None => None,
    };
    let met = buyer.steps_per_sec >= TARGET_STEPS_PER_SEC;
    Ok(Some(SyscallSpeed {
        buyer,
        lock_cmd,
        program,
        postgres,
        note: "steps per second of wall time over whole random-schedule trials, \
               spawning and teardown included"
            .to_string(),
        target_steps_per_sec: TARGET_STEPS_PER_SEC,
        met,
    }))
}

/// Random-schedule trials of 2 to 4 buyers and 1 to 2 tickets from `space` until the
/// speed budget is spent.
fn rate(opts: &BenchOptions, mut space: TrialSpace, what: &str) -> Result<Rate, HarnessError> {
    space.buyers = Span { lo: 2, hi: 4 };
    space.tickets = Span { lo: 1, hi: 2 };
    let (trials, steps, elapsed) = super::measure::random_steps(opts, space)?;
    let secs = elapsed.as_secs_f64();
    Ok(Rate {
        what: what.to_string(),
        trials,
        steps,
        elapsed_ms: super::measure::millis(elapsed),
        steps_per_sec: super::measure::per_sec(steps, elapsed),
        ms_per_trial: secs * 1000.0 / trials as f64,
        steps_per_trial: steps as f64 / trials as f64,
    })
}

/// The lesson's first program with its lock, as `--program` runs it, when `python3` and
/// the fixture are here.
fn lesson() -> Option<crate::scenario::Program> {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/programs/lesson1.py");
    let python = std::process::Command::new("python3")
        .args(["-c", "import multiprocessing"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (file.is_file() && python).then(|| crate::scenario::Program {
        cmd: format!(
            "python3 {} {{buyers}} fork lock",
            crate::scenario::shell_quote(&file.to_string_lossy())
        ),
        store_file: "db.txt".into(),
        store_key: "count".into(),
        sold: "购票成功".into(),
    })
}

/// A PostgreSQL buyer and its store command, when PostgreSQL and the fixtures are here.
fn postgres_buyer() -> Option<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (buyer, store) = (
        root.join("fixtures/buyers/pg_update_where.sh"),
        root.join("fixtures/stores/pg.sh"),
    );
    let here = buyer.is_file() && store.is_file();
    (here && crate::harness::postgres::available().is_ok()).then(|| {
        let q = |p: &std::path::Path| crate::scenario::shell_quote(&p.to_string_lossy());
        (
            format!("sh {} {{pg}}", q(&buyer)),
            format!("sh {} {{pg}} {{op}} {{tickets}}", q(&store)),
        )
    })
}
