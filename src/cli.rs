//! The command line: argv → command → exit code. The only module that prints to stdout
//! or picks an exit status.
//!
//! Exit status: `0` the result matched `--expect` (default `clean`); `1` it did not;
//! `2` bad usage or setup, with one line on stderr naming the bad value.

use crate::buyer;
use crate::explore::{self, Checked, ExploreConfig};
use crate::harness::{self, HarnessConfig, HarnessError};
use crate::lock::{socket, LockKind, Soundness};
use crate::report::{self, Finding, Report};
use crate::scenario::{External, Faults, Schedule, Span, StoreMode, Trial, TrialSpace};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prints a line to stdout; a closed pipe (`oversell ... | head`) is not an error.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Prints to stdout without a newline, ignoring a closed pipe.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

const AFTER_HELP: &str = "\
Examples:
  oversell                                   the lesson: 10 buyers, no lock vs every sound lock
  oversell explore --lock none --trials 20   find the race (exits 1 with a replay token)
  oversell explore --lock flock --trials 200 --seed 2
  oversell replay ov1.none.b3.t1.j5000.r2a.sjitter
  oversell locks                             every lock backend and whether it is sound

Exit status: 0 the result matched --expect, 1 it did not, 2 bad usage or setup.";

/// Finds race conditions between real processes over real locks.
#[derive(Debug, Parser)]
#[command(name = "oversell", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Search for findings: run many trials of racing buyer processes and check each.
    #[command(after_help = EXPLORE_HELP)]
    Explore(ExploreArgs),
    /// Re-run the trial a token describes and report whether its finding recurs.
    Replay(ReplayArgs),
    /// List every lock backend: what it is and whether it is sound.
    Locks,
    /// Combine the JSON reports of shards (`explore --shard K/N`) into one.
    Merge(MergeArgs),
    /// Measure detection power and speed: every lock under every strategy, side by side.
    Bench(BenchArgs),
    /// Replay every token in a regression directory and fail when a verdict changes.
    #[command(after_help = GATE_HELP)]
    Gate(GateArgs),
    /// The lesson as a demo (what `oversell` with no arguments runs).
    Demo(DemoArgs),
    /// Internal: one buyer process.
    #[command(name = "__buyer", hide = true)]
    Buyer { spec: String },
    /// Internal: the socket lock's server.
    #[command(name = "__lock-server", hide = true)]
    LockServer { dir: PathBuf },
    /// Internal: does nothing; the bench's baseline for spawning this binary.
    #[command(name = "__noop", hide = true)]
    Noop,
}

const EXPLORE_HELP: &str = "\
Each trial spawns a seeded number of buyer processes that race to buy tickets from a JSON
store, using the chosen lock. The checker reads their ledger and the final store: more
claims than tickets is `oversold`, two claims of one ticket `double_sale`, a count that
disagrees with the claims `lost_update`, two buyers inside the lock at once `overlap`.

Every finding prints a token; `oversell replay TOKEN` runs that trial again.

Examples:
  oversell explore --lock none --trials 20 --seed 1 --json r.json    exits 1: oversold
  oversell explore --lock none --expect violation --trials 20        exits 0: caught
  oversell explore --lock flock --buyers 2..12 --tickets 0..8 --jitter-ms 3";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    /// No finding in any trial.
    Clean,
    /// At least one finding.
    Violation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    /// Free running: each buyer sleeps its seeded jitter between read and write.
    Jitter,
    /// Every buyer that can read does so before any writes (the lesson's long sleep).
    Barrier,
    /// Controlled: one buyer runs between steps, picked uniformly at random.
    Random,
    /// Controlled: probabilistic concurrency testing (see --depth).
    Pct,
    /// Controlled: every schedule with at most --preemptions preemptions.
    Exhaustive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreArg {
    /// Truncate, then write (the lesson's way; a kill between them tears the file).
    InPlace,
    /// Write a temporary file, fsync, rename.
    Atomic,
}

#[derive(Debug, Args)]
struct ExploreArgs {
    /// Lock backend (see `oversell locks`).
    #[arg(long, value_name = "NAME", default_value = "flock", value_parser = parse_lock)]
    lock: LockKind,
    /// Test your own lock command instead: a shell command that runs `{}` while holding
    /// the lock, as flock(1) does; `{dir}` is the trial's directory. Example:
    /// --lock-cmd 'flock {dir}/lock {}'
    #[arg(long, value_name = "TEMPLATE", conflicts_with_all = ["lock", "buyer_cmd"])]
    lock_cmd: Option<String>,
    /// Test your own buyer program instead: run once per buyer with `{store}` the store's
    /// path (a JSON file {"count": N}) and `{dir}` the trial's directory; exit 0 means it
    /// bought a ticket, 3 that none was left. Example:
    /// --buyer-cmd 'python3 fixtures/buyers/locked.py {store}'
    #[arg(long, value_name = "TEMPLATE", conflicts_with_all = ["lock"])]
    buyer_cmd: Option<String>,
    /// Buyers per trial: N or A..B (inclusive, 1 to 256).
    #[arg(long, value_name = "N|A..B", default_value = "2..16", value_parser = parse_buyers)]
    buyers: Span,
    /// Tickets per trial: N or A..B (inclusive, 0 to 1000000).
    #[arg(long, value_name = "N|A..B", default_value = "1..8", value_parser = parse_tickets)]
    tickets: Span,
    /// Most jitter a buyer sleeps between read and write, in milliseconds (0 to 10000;
    /// free-running schedules: under a controlled one the schedule decides, not time).
    #[arg(long, value_name = "MS", default_value = "5", value_parser = parse_jitter)]
    jitter_ms: f64,
    /// How many trials to run [default: 100; under exhaustive: every schedule].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    trials: Option<u64>,
    /// Seed for every random choice (default: drawn from the clock and printed).
    #[arg(long, value_name = "S", value_parser = parse_seed)]
    seed: Option<u64>,
    /// How steps interleave.
    #[arg(long, value_enum, default_value = "jitter")]
    schedule: ScheduleArg,
    /// PCT's bug depth d (d − 1 priority change points) [default: 2; pct only].
    #[arg(long, value_name = "D", value_parser = parse_depth)]
    depth: Option<u32>,
    /// Exhaustive search's preemption bound [default: 2; exhaustive only].
    #[arg(long, value_name = "P", value_parser = parse_preemptions)]
    preemptions: Option<u32>,
    /// Report failing controlled trials as found, without shrinking them.
    #[arg(long)]
    no_shrink: bool,
    /// Under exhaustive: run every schedule even after one fails.
    #[arg(long)]
    keep_going: bool,
    /// How the store is written.
    #[arg(long, value_enum, default_value = "in-place")]
    store: StoreArg,
    /// Faults to inject: kill=P (SIGKILL a buyer at a seeded step, inside the critical
    /// section included) and/or stop=P:MS (SIGSTOP it for MS ms), comma-separated.
    #[arg(long, value_name = "SPEC", value_parser = parse_faults)]
    faults: Option<Faults>,
    /// What the run should show; the exit status is 0 when it does.
    #[arg(long, value_enum, default_value = "clean")]
    expect: Expect,
    #[command(flatten)]
    out: OutArgs,
    /// Stop starting trials once this many seconds are spent (trials default to no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_budget)]
    time_budget: Option<f64>,
    /// Run only shard K of N: trial i when i mod N = K − 1 (N CI jobs cover disjoint trials).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Keep every trial's directory (store, ledger, stderr) under DIR.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Print only findings.
    #[arg(long)]
    quiet: bool,
    /// A trial whose buyers make no progress for this many milliseconds (beyond their
    /// jitter and stop faults) is killed: a `hang`. Under a controlled schedule: per step.
    #[arg(long, value_name = "MS", default_value = "10000", value_parser = parse_timeout)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The token a finding printed.
    token: String,
    /// How many times to run a jitter trial (the OS schedules, so it may not recur).
    #[arg(long, value_name = "N", default_value = "10", value_parser = parse_attempts)]
    attempts: u32,
    /// Kill a trial that makes no progress for this many milliseconds.
    #[arg(long, value_name = "MS", default_value = "10000", value_parser = parse_timeout)]
    timeout_ms: u64,
    /// Run the shell command a token carries (it came from --lock-cmd or --buyer-cmd).
    #[arg(long)]
    allow_cmd: bool,
    #[command(flatten)]
    out: OutArgs,
}

/// Where reports go.
#[derive(Debug, Args, Default)]
struct OutArgs {
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report here (one test case per lock and schedule).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Draw the first failing trial (else the first trial) as a timeline: FILE.svg, or
    /// FILE.html for a page embedding the picture.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
}

const GATE_HELP: &str = "\
Each line of a gate file is `VERDICT TOKEN  # note`, where VERDICT is clean, violation
or a finding kind (oversold, double_sale, stale_lock, ...). To gate a race you found:

  echo 'oversold ov1.none.b2.t1...  # the lesson race' >> fixtures/regressions/mine.gate

Exit status: 0 every verdict kept, 1 one changed (named with file:line), 2 bad input.";

#[derive(Debug, Args)]
struct BenchArgs {
    /// A short run (under a minute) instead of the full one (minutes).
    #[arg(long)]
    quick: bool,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Seed of the bench's trials.
    #[arg(long, value_name = "S", default_value = "1", value_parser = parse_seed)]
    seed: u64,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// A directory of gate files (or one gate file).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Run shell commands that tokens carry (from --lock-cmd or --buyer-cmd).
    #[arg(long)]
    allow_cmd: bool,
    /// Runs per jitter entry (a clean verdict needs all clean; a violation needs one).
    #[arg(long, value_name = "N", default_value = "3", value_parser = parse_attempts)]
    attempts: u32,
    /// Kill a trial that makes no progress for this many milliseconds.
    #[arg(long, value_name = "MS", default_value = "10000", value_parser = parse_timeout)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// JSON reports of shards of one run (same lock, schedule and seed).
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,
    /// What the merged run should show; the exit status is 0 when it does.
    #[arg(long, value_enum, default_value = "clean")]
    expect: Expect,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Trials per lock.
    #[arg(long, value_name = "N", default_value = "10", value_parser = parse_count)]
    trials: u64,
    /// Seed for the demo's trials.
    #[arg(long, value_name = "S", default_value = "1", value_parser = parse_seed)]
    seed: u64,
}

fn parse_lock(s: &str) -> Result<LockKind, String> {
    LockKind::parse(s).ok_or_else(|| format!("unknown lock; accepted: {}", LockKind::names()))
}

fn parse_buyers(s: &str) -> Result<Span, String> {
    let span = Span::parse(s).map_err(|e| format!("{e}; accepted: N or A..B, 1 to 256"))?;
    if span.lo == 0 || span.hi > 256 {
        return Err("buyers must be 1 to 256; accepted: N or A..B, 1 to 256".into());
    }
    Ok(span)
}

fn parse_tickets(s: &str) -> Result<Span, String> {
    let span = Span::parse(s).map_err(|e| format!("{e}; accepted: N or A..B, 0 to 1000000"))?;
    if span.hi > 1_000_000 {
        return Err("tickets must be 0 to 1000000; accepted: N or A..B".into());
    }
    Ok(span)
}

fn whole(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("accepted: a whole number from {lo} to {hi}")),
    }
}

fn parse_count(s: &str) -> Result<u64, String> {
    whole(s, 1, 100_000_000)
}

fn parse_seed(s: &str) -> Result<u64, String> {
    whole(s, 0, u64::MAX)
}

fn parse_timeout(s: &str) -> Result<u64, String> {
    whole(s, 1, 86_400_000)
}

fn parse_depth(s: &str) -> Result<u32, String> {
    whole(s, 1, 10).map(|n| n as u32)
}

fn parse_preemptions(s: &str) -> Result<u32, String> {
    whole(s, 0, 10).map(|n| n as u32)
}

fn parse_attempts(s: &str) -> Result<u32, String> {
    whole(s, 1, 1_000_000).map(|n| n as u32)
}

fn parse_budget(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 30.0 * 86_400.0 => Ok(v),
        _ => Err("accepted: seconds above 0, e.g. 5 or 0.5".into()),
    }
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    const ACCEPTED: &str = "accepted: K/N with 1 ≤ K ≤ N, e.g. 2/3";
    let (k, n) = s.split_once('/').ok_or(ACCEPTED)?;
    match (k.trim().parse::<u64>(), n.trim().parse::<u64>()) {
        (Ok(k), Ok(n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => Err(ACCEPTED.into()),
    }
}

fn parse_faults(s: &str) -> Result<Faults, String> {
    Faults::parse(s)
}

fn parse_jitter(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(ms) if (0.0..=10_000.0).contains(&ms) => Ok(ms),
        _ => Err("accepted: milliseconds from 0 to 10000, e.g. 5 or 0.5".into()),
    }
}

/// Everything that ends a command with status 2.
#[derive(Debug)]
enum Fail {
    /// Bad usage: the message names the bad value and what is accepted.
    Usage(String),
    /// The environment would not let the run happen.
    Setup(String),
    /// SIGINT or SIGTERM stopped the command; its processes are gone.
    Interrupted(i32),
}

impl From<HarnessError> for Fail {
    fn from(e: HarnessError) -> Self {
        match e {
            HarnessError::Interrupted(sig) => Fail::Interrupted(sig),
            e => Fail::Setup(e.to_string()),
        }
    }
}

/// Runs the command line and returns the process's exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return 0;
            }
            // One line: clap's first line names the bad value and what is accepted.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: bad usage").trim();
            eprintln!("{first} (see 'oversell --help')");
            return 2;
        }
    };
    let result = match cli.command {
        None => demo(&DemoArgs {
            trials: 10,
            seed: 1,
        }),
        Some(Cmd::Demo(a)) => demo(&a),
        Some(Cmd::Explore(a)) => explore_cmd(&a),
        Some(Cmd::Replay(a)) => replay_cmd(&a),
        Some(Cmd::Merge(a)) => merge_cmd(&a),
        Some(Cmd::Gate(a)) => gate_cmd(&a),
        Some(Cmd::Bench(a)) => bench_cmd(&a),
        Some(Cmd::Locks) => {
            locks();
            Ok(0)
        }
        Some(Cmd::Buyer { spec }) => return buyer_cmd(&spec),
        Some(Cmd::LockServer { dir }) => return lock_server_cmd(&dir),
        Some(Cmd::Noop) => return 0,
    };
    match result {
        Ok(code) => code,
        Err(Fail::Usage(m)) => {
            eprintln!("error: {m}");
            2
        }
        Err(Fail::Setup(m)) => {
            eprintln!("error: {m}");
            2
        }
        Err(Fail::Interrupted(sig)) => {
            eprintln!("interrupted by signal {sig}; every process it started is gone");
            128 + sig
        }
    }
}

fn exe() -> Result<PathBuf, Fail> {
    std::env::current_exe().map_err(|e| Fail::Setup(format!("cannot find my own binary: {e}")))
}

fn check_keep(dir: &Path) -> Result<(), Fail> {
    let bad = |e: std::io::Error| {
        Fail::Usage(format!(
            "--keep {}: cannot keep trial directories there ({e}); accepted: a writable directory",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(bad)?;
    tempfile::Builder::new()
        .prefix(".oversell-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(bad)
}

fn write_out(path: &Path, text: &str, what: &str) -> Result<(), Fail> {
    std::fs::write(path, text).map_err(|e| {
        Fail::Setup(format!(
            "cannot write the {what} to {}: {e}",
            path.display()
        ))
    })
}

fn default_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::rng::Rng::new(t ^ ((std::process::id() as u64) << 32)).next_u64() % 1_000_000
}

fn explore_cmd(a: &ExploreArgs) -> Result<i32, Fail> {
    if let Some(k) = &a.keep {
        check_keep(k)?;
    }
    let tmp = std::env::temp_dir();
    harness::sweep_stale(&tmp);
    let mut space = TrialSpace::new(a.lock);
    space.buyers = a.buyers;
    space.tickets = a.tickets;
    space.jitter_us = (a.jitter_ms * 1000.0).round() as u64;
    space.schedule = match a.schedule {
        ScheduleArg::Jitter => Schedule::Jitter,
        ScheduleArg::Barrier => Schedule::Barrier,
        ScheduleArg::Random => Schedule::Random,
        ScheduleArg::Pct => Schedule::Pct {
            depth: a.depth.unwrap_or(2),
        },
        ScheduleArg::Exhaustive => Schedule::Exhaustive {
            preemptions: a.preemptions.unwrap_or(2),
        },
    };
    let only = |given: bool, flag: &str, wanted: &str| {
        if given {
            Err(Fail::Usage(format!(
                "{flag} with --schedule {}: it only applies to {wanted}; accepted: --schedule {wanted}",
                space.schedule.name()
            )))
        } else {
            Ok(())
        }
    };
    only(
        a.depth.is_some() && a.schedule != ScheduleArg::Pct,
        "--depth",
        "pct",
    )?;
    let exhaustive = a.schedule == ScheduleArg::Exhaustive;
    only(
        a.preemptions.is_some() && !exhaustive,
        "--preemptions",
        "exhaustive",
    )?;
    only(a.keep_going && !exhaustive, "--keep-going", "exhaustive")?;
    if a.faults.is_some_and(|f| f.stop > 0.0) && space.schedule.is_controlled() {
        return Err(Fail::Usage(format!(
            "--faults stop=… with --schedule {}: under a controlled schedule a stall changes \
             nothing; accepted: stop faults with jitter or barrier, kill faults with any schedule",
            space.schedule.name()
        )));
    }
    let trials = a.trials.unwrap_or(match space.schedule {
        Schedule::Exhaustive { .. } => u64::MAX,
        _ if a.time_budget.is_some() => u64::MAX,
        _ => 100,
    });
    if a.shard.is_some() && matches!(space.schedule, Schedule::Exhaustive { .. }) {
        return Err(Fail::Usage(
            "--shard with --schedule exhaustive: a depth-first search cannot be split by trial; \
             accepted: --shard with jitter, barrier, random or pct"
                .into(),
        ));
    }
    space.store = match a.store {
        StoreArg::InPlace => StoreMode::InPlace,
        StoreArg::Atomic => StoreMode::Atomic,
    };
    space.faults = a.faults.unwrap_or_default();
    if let Some(t) = &a.lock_cmd {
        if !t.contains("{}") {
            return Err(Fail::Usage(format!(
                "--lock-cmd '{t}' has no {{}} for the critical section; accepted: a command such as 'flock {{dir}}/lock {{}}'"
            )));
        }
        space.external = Some(External::LockCmd(t.clone()));
    }
    if let Some(t) = &a.buyer_cmd {
        if t.trim().is_empty() {
            return Err(Fail::Usage(
                "--buyer-cmd '': accepted: a command such as 'python3 buyer.py {store}'".into(),
            ));
        }
        if !space.faults.is_none() {
            return Err(Fail::Usage(
                "--faults with --buyer-cmd: oversell cannot place a fault inside your program; \
                 accepted: --faults with --lock or --lock-cmd"
                    .into(),
            ));
        }
        space.external = Some(External::BuyerCmd(t.clone()));
    }
    if space.external.is_some() {
        space.lock = LockKind::None;
        if space.schedule != Schedule::Jitter {
            return Err(Fail::Usage(format!(
                "--schedule {} with --lock-cmd or --buyer-cmd: a user's command cannot report its \
                 steps or blocking; accepted: --schedule jitter",
                space.schedule.name()
            )));
        }
    }
    let seed = a.seed.unwrap_or_else(default_seed);
    harness::interrupt::install()
        .map_err(|e| Fail::Setup(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    let harness = HarnessConfig::new(exe()?)
        .with_timeout(Duration::from_millis(a.timeout_ms.max(1)))
        .with_keep(a.keep.clone());
    let mut cfg = ExploreConfig::new(space, trials, seed, harness);
    cfg.shrink = !a.no_shrink;
    cfg.keep_going = a.keep_going;
    cfg.time_budget = a.time_budget.map(Duration::from_secs_f64);
    cfg.shard = a.shard;
    if !a.quiet {
        let what = match cfg.space.schedule {
            Schedule::Jitter | Schedule::Barrier => {
                format!(
                    "jitter up to {} ms, schedule {}",
                    a.jitter_ms,
                    cfg.space.schedule.name()
                )
            }
            Schedule::Exhaustive { preemptions } => {
                format!("schedule exhaustive, ≤ {preemptions} preemptions")
            }
            Schedule::Pct { depth } => format!("schedule pct, depth {depth}"),
            Schedule::Random => "schedule random".to_string(),
        };
        let mut trials = match (trials, a.time_budget) {
            (u64::MAX, Some(b)) => format!("trials for {b} s"),
            (u64::MAX, None) => "every schedule".to_string(),
            (n, _) => format!("{n} trials"),
        };
        if let Some((k, n)) = a.shard {
            trials.push_str(&format!(" (shard {k}/{n})"));
        }
        say!(
            "explore: lock {}, {} buyers, {} tickets, {what}, {trials}, seed {seed}",
            cfg.space.lock_label(),
            a.buyers,
            a.tickets,
        );
        if let Schedule::Pct { depth } = cfg.space.schedule {
            say!("{}", pct_bounds(a.buyers, depth));
        }
    }
    let bar = progress::Bar::new(trials, a.quiet);
    let mut drawn: Option<Checked> = None;
    let mut drawn_index = 0u64;
    let report = explore::explore(
        &cfg,
        &mut |index, checked: &Checked, findings: &[Finding]| {
            bar.tick(findings.len());
            if !findings.is_empty() {
                bar.say(&report::trial_text(findings));
            }
            let better = match &drawn {
                None => true,
                Some(d) => d.violations.is_empty() && !checked.violations.is_empty(),
            };
            if a.out.timeline.is_some() && better {
                drawn = Some(checked.clone());
                drawn_index = index;
            }
        },
    )?;
    bar.finish();
    write_outputs(&a.out, &report, drawn.as_ref().map(|c| (drawn_index, c)))?;
    if let Some(budget) = a.time_budget {
        if report.interrupted.is_none() && report.trials_run < trials {
            say!(
                "time budget of {budget} s spent: {} trials ran",
                report.trials_run
            );
        }
    }
    finish(&report, a.expect, a.quiet)
}

fn write_outputs(
    out: &OutArgs,
    report: &Report,
    drawn: Option<(u64, &Checked)>,
) -> Result<(), Fail> {
    if let Some(p) = &out.json {
        write_out(p, &report.to_json(), "JSON report")?;
    }
    if let Some(p) = &out.junit {
        let xml = report::junit::junit(std::slice::from_ref(report))
            .map_err(|e| Fail::Setup(format!("cannot render the JUnit report: {e}")))?;
        write_out(p, &xml, "JUnit report")?;
    }
    if let Some(p) = &out.timeline {
        let Some((index, c)) = drawn else {
            return Err(Fail::Setup(format!(
                "no trial ran, so there is nothing to draw in {}",
                p.display()
            )));
        };
        write_out(p, &timeline_of(index, c, p), "timeline")?;
    }
    Ok(())
}

fn timeline_of(index: u64, c: &Checked, path: &Path) -> String {
    use report::timeline::{self, Axis, TimelineInput};
    let verdict = match c.violations.first() {
        Some(v) => v.kind.name().to_string(),
        None => "clean".to_string(),
    };
    let input = TimelineInput {
        title: format!(
            "oversell · lock {} · trial {index} · {} · {verdict} · {}",
            c.trial.lock,
            c.trial.schedule.name(),
            c.trial.token()
        ),
        buyers: c.trial.buyers,
        history: &c.run.history,
        findings: timeline::marks(&c.violations),
        axis: if c.trial.schedule.is_controlled() {
            Axis::Steps
        } else {
            Axis::Time
        },
    };
    let html = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    if html {
        timeline::html(&input)
    } else {
        timeline::svg(&input)
    }
}

fn bench_cmd(a: &BenchArgs) -> Result<i32, Fail> {
    harness::sweep_stale(&std::env::temp_dir());
    harness::interrupt::install()
        .map_err(|e| Fail::Setup(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    let opts = crate::bench::BenchOptions::new(a.quick, a.seed, HarnessConfig::new(exe()?));
    let report = crate::bench::run(&opts, &mut |line| eprintln!("{line}"))?;
    say!("{}", report.to_text());
    if let Some(p) = &a.json {
        write_out(p, &report.to_json(), "bench report")?;
    }
    Ok(match report.interrupted {
        Some(sig) => 128 + sig,
        None => 0,
    })
}

fn gate_cmd(a: &GateArgs) -> Result<i32, Fail> {
    harness::sweep_stale(&std::env::temp_dir());
    harness::interrupt::install()
        .map_err(|e| Fail::Setup(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    let h = HarnessConfig::new(exe()?).with_timeout(Duration::from_millis(a.timeout_ms));
    if !a.allow_cmd {
        let entries = crate::gate::load(&a.dir).map_err(|e| Fail::Usage(e.to_string()))?;
        for e in &entries {
            if let Ok(Trial {
                external: Some(cmd),
                ..
            }) = Trial::from_token(&e.token)
            {
                return Err(Fail::Usage(format!(
                    "{}: the token runs a shell command ({}); accepted: gate --allow-cmd once you trust it",
                    e.place(),
                    cmd.label()
                )));
            }
        }
    }
    let result = crate::gate::run(&a.dir, &h, a.attempts, &mut |o| {
        say!("{}", crate::gate::line(o));
    });
    match result {
        Ok(report) => {
            say!("{}", report.summary());
            Ok(if report.passed() { 0 } else { 1 })
        }
        Err(crate::gate::GateError::Harness {
            source: HarnessError::Interrupted(sig),
            ..
        }) => {
            eprintln!("interrupted by signal {sig}; the gate did not finish");
            Ok(128 + sig)
        }
        Err(e) => Err(Fail::Usage(e.to_string())),
    }
}

fn merge_cmd(a: &MergeArgs) -> Result<i32, Fail> {
    let mut reports = Vec::new();
    for p in &a.reports {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", p.display())))?;
        let r = report::merge::parse(&text).map_err(|e| {
            Fail::Usage(format!(
                "{}: {e}; accepted: JSON reports written by explore --json",
                p.display()
            ))
        })?;
        reports.push(r);
    }
    let merged = report::merge::merge(reports).map_err(|e| Fail::Usage(e.to_string()))?;
    if a.out.timeline.is_some() {
        return Err(Fail::Usage(
            "--timeline with merge: a merged report holds no ledger to draw; accepted: --json, --junit"
                .into(),
        ));
    }
    write_outputs(&a.out, &merged, None)?;
    for f in &merged.findings {
        say!(
            "trial {}: {}: {}  ({})",
            f.trial,
            f.kind,
            f.detail,
            f.replay
        );
    }
    finish(&merged, a.expect, false)
}

/// The progress bar: on stderr, only when stderr is a terminal, not under CI, not quiet.
mod progress {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::{IsTerminal, Write};

    pub(super) struct Bar {
        bar: Option<ProgressBar>,
        findings: std::cell::Cell<u64>,
    }

    impl Bar {
        pub(super) fn new(total: u64, quiet: bool) -> Bar {
            let show = !quiet
                && std::io::stderr().is_terminal()
                && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false");
            let bar = show.then(|| {
                let (bar, template) = if total == u64::MAX {
                    (
                        ProgressBar::new_spinner(),
                        "{spinner} {pos} trials · {msg} · {per_sec} · {elapsed}",
                    )
                } else {
                    (
                        ProgressBar::new(total),
                        "{bar:30} {pos}/{len} trials · {msg} · {per_sec} · {eta} left",
                    )
                };
                bar.set_draw_target(ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_message("0 findings");
                bar
            });
            Bar {
                bar,
                findings: std::cell::Cell::new(0),
            }
        }

        pub(super) fn tick(&self, findings: usize) {
            if let Some(bar) = &self.bar {
                self.findings.set(self.findings.get() + findings as u64);
                bar.set_message(format!("{} findings", self.findings.get()));
                bar.inc(1);
            }
        }

        /// Prints text to stdout without tearing the bar.
        pub(super) fn say(&self, text: &str) {
            match &self.bar {
                Some(bar) => bar.suspend(|| {
                    let _ = write!(std::io::stdout(), "{text}");
                }),
                None => {
                    let mut out = std::io::stdout();
                    let _ = write!(out, "{text}");
                    let _ = out.flush();
                }
            }
        }

        pub(super) fn finish(&self) {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
        }
    }
}

fn pct_bounds(buyers: Span, depth: u32) -> String {
    let bound = |n: u32| {
        let k = n as usize * crate::schedule::POINTS_PER_BUYER;
        format!(
            "1/({n}·{k}^{}) = {:.2e}",
            depth - 1,
            crate::schedule::pct_bound(n, k, depth)
        )
    };
    let mut s = format!(
        "pct: one trial finds a bug of depth {depth} with probability at least 1/(n·k^(d−1)), \
         n buyers and k = {}·n steps: {}",
        crate::schedule::POINTS_PER_BUYER,
        bound(buyers.lo)
    );
    if buyers.hi != buyers.lo {
        s.push_str(&format!(
            " for {} buyers, {} for {}",
            buyers.lo,
            bound(buyers.hi),
            buyers.hi
        ));
    }
    s
}

fn finish(report: &Report, expect: Expect, quiet: bool) -> Result<i32, Fail> {
    for v in &report.verified {
        say!("{}", v.line());
    }
    if let Some(sig) = report.interrupted {
        eprintln!(
            "interrupted by signal {sig} after {} trials; their processes are gone and the report holds what ran",
            report.trials_run
        );
        return Ok(128 + sig);
    }
    let found = !report.findings.is_empty();
    let matched = match expect {
        Expect::Clean => !found,
        Expect::Violation => found,
    };
    if !quiet {
        say!("{}", report.summary());
        let verdict = match (found, matched) {
            (false, true) => "clean, as expected",
            (true, true) => "violation found, as expected",
            (false, false) => "no violation found, but --expect violation asked for one",
            (true, false) => "violation found",
        };
        say!("result: {verdict}");
    }
    Ok(if matched { 0 } else { 1 })
}

fn replay_cmd(a: &ReplayArgs) -> Result<i32, Fail> {
    let trial = Trial::from_token(&a.token).map_err(|e| Fail::Usage(e.to_string()))?;
    if let (Some(e), false) = (&trial.external, a.allow_cmd) {
        return Err(Fail::Usage(format!(
            "the token runs a shell command ({}); accepted: the same replay with --allow-cmd once you trust it",
            e.label()
        )));
    }
    if trial.schedule.is_controlled() && trial.choices.is_none() {
        return Err(Fail::Usage(format!(
            "token '{}' has a controlled schedule but no steps (.p…); accepted: a token printed by a finding",
            a.token
        )));
    }
    harness::sweep_stale(&std::env::temp_dir());
    harness::interrupt::install()
        .map_err(|e| Fail::Setup(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    let harness =
        HarnessConfig::new(exe()?).with_timeout(Duration::from_millis(a.timeout_ms.max(1)));
    say!(
        "replay: lock {}, {}, {}, schedule {}, {}",
        trial.lock_label(),
        report::count(trial.buyers, "buyer"),
        report::count(trial.tickets, "ticket"),
        trial.schedule.name(),
        report::count(a.attempts, "attempt")
    );
    let runs = explore::replay(&trial, a.attempts, &harness)?;
    if let Some(d) = runs
        .iter()
        .find_map(|c| c.run.schedule.as_ref().and_then(|r| r.diverged.clone()))
    {
        return Err(Fail::Usage(format!(
            "token '{}' does not fit this program: {d}",
            a.token
        )));
    }
    let mut report = Report::new(&trial.lock_label(), trial.schedule.name(), trial.seed);
    let token = trial.token();
    let mut first_shown = false;
    for (i, c) in runs.iter().enumerate() {
        let findings: Vec<Finding> = c
            .violations
            .iter()
            .map(|v| Finding::new(v, i as u64, trial.buyers, trial.tickets, &token))
            .collect();
        report.trials_run += 1;
        report.elapsed_ms += c.run.elapsed.as_millis() as u64;
        if !findings.is_empty() {
            report.trials_failed += 1;
            if !first_shown {
                first_shown = true;
                say_raw!("{}", report::trial_text(&findings));
            }
        }
        report.findings.extend(findings);
    }
    if trial.schedule.is_controlled() {
        let first = runs
            .first()
            .map(|c| c.run.history.trace())
            .unwrap_or_default();
        say!("trace ({} events):", first.len());
        for line in &first {
            say!("  {line}");
        }
        let same = runs
            .iter()
            .filter(|c| c.run.history.trace() == first)
            .count();
        say!("identical trace in {same} of {} attempts", runs.len());
    }
    say!(
        "reproduced in {} of {} attempts",
        report.trials_failed,
        report.trials_run
    );
    let drawn = runs
        .iter()
        .find(|c| !c.violations.is_empty())
        .or(runs.first());
    write_outputs(&a.out, &report, drawn.map(|c| (0, c)))?;
    Ok(if report.trials_failed > 0 { 1 } else { 0 })
}

fn locks() {
    say!("{:<14} {:<20} about", "lock", "verdict");
    for k in LockKind::ALL {
        let verdict = match k.soundness() {
            Soundness::Sound => "sound",
            Soundness::SoundUntilCrash => "sound until a kill",
            Soundness::Broken => "broken",
        };
        say!("{:<14} {:<20} {}", k.name(), verdict, k.about());
    }
}

fn demo(a: &DemoArgs) -> Result<i32, Fail> {
    let exe = exe()?;
    harness::sweep_stale(&std::env::temp_dir());
    harness::interrupt::install()
        .map_err(|e| Fail::Setup(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    say!("The lesson: 10 buyer processes race for 1 to 3 train tickets in a JSON file.");
    say!(
        "Each buyer reads the count, waits, then writes count-1; with a lock only one buyer\n\
         at a time may do that. {} trials per lock, every read made before any write where\n\
         the lock allows it (the lesson's long sleep).\n",
        a.trials
    );
    say!(
        "{:<10} {:>6} {:>9}  {:<52} replay",
        "lock",
        "trials",
        "findings",
        "example finding"
    );
    let mut ok = true;
    for &lock in LockKind::ALL
        .iter()
        .filter(|k| **k == LockKind::None || k.is_sound())
    {
        let mut space = TrialSpace::new(lock);
        space.buyers = Span::one(10);
        space.tickets = Span { lo: 1, hi: 3 };
        space.jitter_us = 2_000;
        space.schedule = Schedule::Barrier;
        let cfg = ExploreConfig::new(space, a.trials, a.seed, HarnessConfig::new(exe.clone()));
        let report = explore::explore(&cfg, &mut |_, _, _| {})?;
        let (example, replay) = match report.findings.first() {
            Some(f) => {
                let mut text = format!("{}: {}", f.kind, f.detail);
                if text.chars().count() > 52 {
                    text = text.chars().take(49).collect::<String>() + "...";
                }
                (text, f.replay.clone())
            }
            None => ("-".to_string(), "-".to_string()),
        };
        say!(
            "{:<10} {:>6} {:>9}  {:<52} {}",
            lock.name(),
            report.trials_run,
            report.trials_failed,
            example,
            replay
        );
        let expected = if lock == LockKind::None {
            report.trials_failed > 0
        } else {
            report.trials_failed == 0
        };
        ok &= expected;
    }
    say!("");
    if ok {
        say!("Without a lock the buyers oversell; every sound lock kept them honest.");
        Ok(0)
    } else {
        say!("Unexpected: a sound lock showed a finding, or no lock was not caught.");
        Ok(1)
    }
}

fn buyer_cmd(spec: &str) -> i32 {
    buyer::run_from_spec(spec, None)
}

fn lock_server_cmd(dir: &Path) -> i32 {
    let listener = match socket::bind(dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut out = std::io::stdout();
    if out.write_all(b"ready\n").and_then(|_| out.flush()).is_err() {
        return 2;
    }
    match socket::serve(listener) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
