//! The command line's shape: commands, options and their help texts (clap derive).
//!
//! An option that takes a number takes `-1` as its value (`allow_negative_numbers`), so
//! that its parser refuses it with the range it accepts, as it does `--trials=-1`,
//! rather than clap calling `-1` an unknown option.

use super::parse::*;
use crate::lock::LockKind;
use crate::scenario::{Faults, Span};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
Examples:
  oversell                                   the lesson: 10 buyers, no lock vs every sound lock
  oversell explore --lock none --trials 20   find the race (exits 1 with a replay token)
  oversell explore --lock flock --trials 200 --seed 2
  oversell replay ov1.none.b3.t1.j5000.r2a.sjitter.c5b03a9
  oversell locks                             every lock backend and whether it is sound

Exit status:
  0    the result matched --expect (replay: no attempt found anything; gate: every
       verdict kept)
  1    it did not (replay: the token's finding came back; gate: a verdict changed)
  2    bad usage or setup: one line on stderr names the bad value and what is accepted
  3    replay only: the token's finding did not come back, but a different one did
  130  stopped by SIGINT, 143 by SIGTERM: every process of the run is killed and its
       trial directory removed; explore writes the report of what ran";

/// Finds race conditions between real processes over real locks.
#[derive(Debug, Parser)]
#[command(name = "oversell", version, after_help = AFTER_HELP)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once, at startup: its size costs nothing
pub(super) enum Cmd {
    /// Search for findings: run many trials of racing buyer processes and check each.
    #[command(after_help = EXPLORE_HELP)]
    Explore(ExploreArgs),
    /// Re-run the trial a token describes and report whether its finding recurs.
    #[command(after_help = REPLAY_HELP)]
    Replay(ReplayArgs),
    /// List every lock backend: what it is and whether it is sound.
    #[command(after_help = LOCKS_HELP)]
    Locks,
    /// Combine the JSON reports of shards (`explore --shard K/N`) into one.
    #[command(after_help = MERGE_HELP)]
    Merge(MergeArgs),
    /// Measure detection power and speed: every lock under every strategy, side by side.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Replay every token in a regression directory and fail when a verdict changes.
    #[command(after_help = GATE_HELP)]
    Gate(GateArgs),
    /// The lesson as a demo (what `oversell` with no arguments runs).
    #[command(after_help = DEMO_HELP)]
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
    /// Internal: waits for its stdin to close (the run that started it ended, or was
    /// killed), then removes what that run left in ROOT.
    #[command(name = "__guard", hide = true)]
    Guard { root: PathBuf },
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
  oversell explore --lock flock --buyers 2..12 --tickets 0..8 --jitter-ms 3

Exit status: 0 the result matched --expect (default clean); 1 it did not; 2 bad usage or
setup (one line on stderr names the bad value and what is accepted); 130 stopped by
SIGINT, 143 by SIGTERM (every process of the run is killed, its trial directory removed,
and the report of what ran written).";

const LOCKS_HELP: &str = "Exit status: 0 (it only lists).";

const DEMO_HELP: &str = "\
Exit status: 0 the lesson came out as it says (no lock caught, every sound lock clean);
1 it did not; 2 bad usage or setup (one line on stderr); 130 stopped by SIGINT, 143 by
SIGTERM.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Expect {
    /// No finding in any trial.
    Clean,
    /// At least one finding.
    Violation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ScheduleArg {
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
pub(super) enum StoreArg {
    /// Truncate, then write (the lesson's way; a kill between them tears the file).
    #[value(alias = "inplace")]
    InPlace,
    /// Write a temporary file, fsync it, rename (a power cut may undo the rename).
    Atomic,
    /// Write a temporary file, fsync it, rename, fsync the directory.
    Durable,
}

#[derive(Debug, Args)]
pub(super) struct ExploreArgs {
    /// Lock backend (see `oversell locks`).
    #[arg(long, value_name = "NAME", default_value = "flock", value_parser = parse_lock)]
    pub(super) lock: LockKind,
    /// Test your own lock command instead: a shell command that runs `{}` while holding
    /// the lock, as flock(1) does; `{dir}` is the trial's directory. Example:
    /// --lock-cmd 'flock {dir}/lock {}'
    #[arg(long, value_name = "TEMPLATE", conflicts_with_all = ["lock", "buyer_cmd"])]
    pub(super) lock_cmd: Option<String>,
    /// Test your own buyer program instead: run once per buyer with `{store}` the store's
    /// path (a JSON file {"count": N}) and `{dir}` the trial's directory; exit 0 means it
    /// bought a ticket, 3 that none was left. Example:
    /// --buyer-cmd 'python3 fixtures/buyers/locked.py {store}'
    #[arg(long, value_name = "TEMPLATE", conflicts_with_all = ["lock"])]
    pub(super) buyer_cmd: Option<String>,
    /// Test a whole program instead: one shell command that starts its own buyer
    /// processes (fork, multiprocessing, subprocess, pipelines), every one of them under
    /// the controlled schedule from its first system call. It runs in the trial's
    /// directory; `{buyers}`, `{tickets}` and `{dir}` are filled in. Its tickets live in
    /// --store-file, its sales are counted on its output by --sold. Example:
    /// --program 'python3 fixtures/programs/lesson1.py {buyers}' --store-file db.txt
    /// --store-key count --sold 'bought'
    #[arg(long, value_name = "TEMPLATE", conflicts_with_all = ["lock", "lock_cmd", "buyer_cmd", "store_cmd"])]
    pub(super) program: Option<String>,
    /// With --program: the JSON file, relative to its working directory, that holds its
    /// tickets; oversell writes {KEY: tickets} into it before the program starts and
    /// reads the count back after it ends [default: db.txt].
    #[arg(long, value_name = "PATH", requires = "program")]
    pub(super) store_file: Option<String>,
    /// With --program: the key of the count in --store-file [default: count].
    #[arg(long, value_name = "KEY", requires = "program")]
    pub(super) store_key: Option<String>,
    /// With --program: a regular expression; each match on the program's standard
    /// output is one sale (`^` and `$` match at each line's ends).
    #[arg(long, value_name = "REGEX", requires = "program")]
    pub(super) sold: Option<String>,
    /// The Redis server for `--lock redis` and `redis-fenced` (redis://HOST:PORT or
    /// redis+unix:///PATH); without it each trial starts its own redis-server.
    #[arg(long, value_name = "URL")]
    pub(super) redis: Option<String>,
    /// The PostgreSQL server for commands that name `{pg}`, in libpq's key=value form
    /// ('host=/var/run/postgresql user=me'): each trial gets a database of its own there,
    /// made and dropped with psql; without it each trial starts its own postgres. Its
    /// requests are not ordered by the schedule (a server outside the trial).
    #[arg(long, value_name = "CONNINFO")]
    pub(super) pg: Option<String>,
    /// With --buyer-cmd: the command that keeps the tickets when your buyers keep them
    /// elsewhere than the JSON store (an SQLite table, a directory of files). Run with
    /// `{op}` = `init` before the buyers, to create the store holding `{tickets}`
    /// tickets, and with `{op}` = `count` after them, printing the final count; `{dir}` is
    /// the trial's directory. Runs under a controlled schedule only (--schedule random, pct
    /// or exhaustive). Example:
    /// --store-cmd 'python3 fixtures/stores/sqlite.py {dir} {op} {tickets}'
    #[arg(long, value_name = "TEMPLATE", requires = "buyer_cmd")]
    pub(super) store_cmd: Option<String>,
    /// Buyers per trial: N or A..B (inclusive, 1 to 256).
    #[arg(
        long,
        value_name = "N|A..B",
        default_value = "2..16",
        value_parser = parse_buyers,
        allow_negative_numbers = true
    )]
    pub(super) buyers: Span,
    /// Tickets per trial: N or A..B (inclusive, 0 to 1000000).
    #[arg(
        long,
        value_name = "N|A..B",
        default_value = "1..8",
        value_parser = parse_tickets,
        allow_negative_numbers = true
    )]
    pub(super) tickets: Span,
    /// Most jitter a buyer sleeps between read and write, in milliseconds (0 to 10000;
    /// free-running schedules: under a controlled one the schedule decides, not time).
    #[arg(
        long,
        value_name = "MS",
        default_value = "5",
        value_parser = parse_jitter,
        allow_negative_numbers = true
    )]
    pub(super) jitter_ms: f64,
    /// How many trials to run [default: 100; under exhaustive: every schedule].
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    pub(super) trials: Option<u64>,
    /// Seed for every random choice (default: drawn from the clock and printed).
    #[arg(long, value_name = "S", value_parser = parse_seed, allow_negative_numbers = true)]
    pub(super) seed: Option<u64>,
    /// How steps interleave [default: jitter; with --lock-cmd or --buyer-cmd, controlled
    /// pct trials and free-running jitter trials in turn].
    #[arg(long, value_enum)]
    pub(super) schedule: Option<ScheduleArg>,
    /// Yield points of a controlled schedule: oversell's steps, or every buyer's system
    /// calls on the trial's files (`syscall`; always so for --lock-cmd and --buyer-cmd).
    #[arg(long, value_enum, default_value = "step")]
    pub(super) granularity: GranularityArg,
    /// PCT's bug depth d (d − 1 priority change points) [default: 2; pct only].
    #[arg(long, value_name = "D", value_parser = parse_depth, allow_negative_numbers = true)]
    pub(super) depth: Option<u32>,
    /// Exhaustive search's preemption bound, or `unbounded` [default: 2; exhaustive only].
    #[arg(long, value_name = "P", value_parser = parse_preemptions, allow_negative_numbers = true)]
    pub(super) preemptions: Option<u32>,
    /// Exhaustive: run every schedule within the bound, not one per class of schedules
    /// that differ only in the order of independent steps [exhaustive only].
    #[arg(long)]
    pub(super) no_reduction: bool,
    /// Report failing controlled trials as found, without shrinking them.
    #[arg(long)]
    pub(super) no_shrink: bool,
    /// Report a failing controlled trial without its racing pair (the `why:` line), which
    /// costs a few reordered runs of it (at most 70).
    #[arg(long)]
    pub(super) no_explain: bool,
    /// Run every trial even after one fails. By default the run stops at its first failing
    /// trial, after shrinking it; under exhaustive, keeping going also skips shrinking.
    #[arg(long)]
    pub(super) keep_going: bool,
    /// How the store is written.
    #[arg(long, value_enum, default_value = "in-place")]
    pub(super) store: StoreArg,
    /// Faults to inject, comma-separated: kill=P (SIGKILL a buyer at a seeded step, inside
    /// the critical section included), stop=P:MS (SIGSTOP it for MS ms), errno=P:ERRNO
    /// (one seeded call of a buyer on a trial file fails with ENOSPC, EIO, EINTR or
    /// EACCES instead of running; a controlled schedule at system-call granularity),
    /// skew=P:RATE (a buyer's clock runs at RATE times the trial's, e.g. 0.25 or 2) and
    /// jump=P:±MS (a buyer's wall clock steps once by MS ms at a seeded step): these two
    /// on the clock a user's command reads under a controlled schedule. kill and stop
    /// with --lock or --lock-cmd; errno with --lock-cmd, --buyer-cmd or --granularity
    /// syscall. crash=P (a power cut at a seeded step: every buyer dies, the store's
    /// files keep what was fsynced, fresh buyers go on; a sale lost is a lost_sale) with
    /// --lock under --schedule random, pct or exhaustive.
    #[arg(long, value_name = "SPEC", value_parser = parse_faults)]
    pub(super) faults: Option<Faults>,
    /// What the run should show; the exit status is 0 when it does.
    #[arg(long, value_enum, default_value = "clean")]
    pub(super) expect: Expect,
    #[command(flatten)]
    pub(super) out: OutArgs,
    /// Stop starting trials once this many seconds are spent (trials default to no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_budget, allow_negative_numbers = true)]
    pub(super) time_budget: Option<f64>,
    /// Run only shard K of N: trial i when i mod N = K − 1 (N CI jobs cover disjoint
    /// trials); under exhaustive, part p of the search split by schedule prefix when
    /// p mod N = K − 1 (`oversell merge` says whether every shard verified).
    #[arg(long, value_name = "K/N", value_parser = parse_shard, allow_negative_numbers = true)]
    pub(super) shard: Option<(u64, u64)>,
    #[command(flatten)]
    pub(super) jobs: JobsArg,
    /// Exhaustive: keep the search's frontier (the parts done) in FILE, written once the
    /// first part ends, then every second, and on SIGINT or SIGTERM; the same command
    /// with the same FILE resumes from it, with the count and verdict of a run never
    /// stopped. Removed when the search ends; kept when --trials or --time-budget cut it.
    #[arg(long, value_name = "FILE")]
    pub(super) checkpoint: Option<PathBuf>,
    /// Keep every trial's directory (store, ledger, stderr) under DIR.
    #[arg(long, value_name = "DIR")]
    pub(super) keep: Option<PathBuf>,
    /// Start new buyer processes for every jitter or barrier trial. By default such
    /// trials reuse a pool of buyer processes (as controlled schedules do); the results
    /// do not depend on it.
    #[arg(long)]
    pub(super) fresh_processes: bool,
    /// Print only findings (each failing trial, its replay token and its shrink) and what
    /// the exit status cannot carry: a `not verified:` line, a fallback the host forced.
    /// No header, progress, `verified:` lines, summary or verdict; refusals still go to
    /// stderr.
    #[arg(long)]
    pub(super) quiet: bool,
    /// A trial whose buyers make no progress for this many milliseconds (beyond their
    /// jitter and stop faults) is killed: a `hang`. Under a controlled schedule: per step
    /// (at system-call granularity, a trial whose processes still make calls between two
    /// steps is slowed, not hung, for up to 3 times this).
    #[arg(
        long,
        value_name = "MS",
        default_value = "10000",
        value_parser = parse_timeout,
        allow_negative_numbers = true
    )]
    pub(super) timeout_ms: u64,
}

const REPLAY_HELP: &str = "\
A controlled token runs its recorded steps again; a jitter token reruns its trial
--attempts times (the operating system schedules, so a race may not recur each time).

Exit status: 0 no attempt found anything; 1 the token's finding came back in at least one
attempt (every kind the token records recurred; the output says in how many); 2 bad usage,
a token that cannot be replayed here, or a setup failure; 3 the token's finding did not
come back but a different one did (the output names its kinds).";

#[derive(Debug, Args)]
pub(super) struct ReplayArgs {
    /// The token a finding printed.
    pub(super) token: String,
    /// How many times to run a jitter trial (the OS schedules, so it may not recur).
    #[arg(
        long,
        value_name = "N",
        default_value = "10",
        value_parser = parse_attempts,
        allow_negative_numbers = true
    )]
    pub(super) attempts: u32,
    #[command(flatten)]
    pub(super) jobs: JobsArg,
    #[command(flatten)]
    pub(super) timeout: TimeoutArg,
    /// Run the shell command a token carries (it came from --lock-cmd or --buyer-cmd).
    #[arg(long)]
    pub(super) allow_cmd: bool,
    /// Say why the finding happens: the racing pair of steps whose swap clears it (a
    /// controlled token), or the controlled command that would show it (a jitter token).
    #[arg(long)]
    pub(super) explain: bool,
    /// The Redis server for a token of the `redis` or `redis-fenced` lock (as explore's
    /// --redis); without it the replay starts its own redis-server.
    #[arg(long, value_name = "URL")]
    pub(super) redis: Option<String>,
    #[command(flatten)]
    pub(super) out: OutArgs,
}

/// `--jobs`, as every command that runs trials takes it.
#[derive(Debug, Args)]
pub(super) struct JobsArg {
    /// Jobs that run trials side by side, each with its own buyer processes [default: the
    /// CPUs this process may use]. The results do not depend on it.
    #[arg(long, value_name = "N", value_parser = parse_jobs, allow_negative_numbers = true)]
    jobs: Option<usize>,
}

impl JobsArg {
    /// The jobs asked for, else one per CPU this process may use.
    pub(super) fn count(&self) -> usize {
        self.jobs.unwrap_or_else(crate::explore::jobs::available)
    }
}

/// `--timeout-ms`, as `replay` and `gate` take it (explore's help says more).
#[derive(Debug, Args)]
pub(super) struct TimeoutArg {
    /// Kill a trial that makes no progress for this many milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value = "10000",
        value_parser = parse_timeout,
        allow_negative_numbers = true
    )]
    timeout_ms: u64,
}

impl TimeoutArg {
    /// How long a trial may go without progress before it is killed.
    pub(super) fn duration(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// Where reports go.
#[derive(Debug, Args, Default)]
pub(super) struct OutArgs {
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub(super) json: Option<PathBuf>,
    /// Write a JUnit XML report here (one test case per lock and schedule).
    #[arg(long, value_name = "FILE")]
    pub(super) junit: Option<PathBuf>,
    /// Draw the first failing trial (else the first trial) as a timeline: FILE.svg, or
    /// FILE.html for a page embedding the picture.
    #[arg(long, value_name = "FILE")]
    pub(super) timeline: Option<PathBuf>,
}

const GATE_HELP: &str = "\
Each line of a gate file is `VERDICT TOKEN  # note`, where VERDICT is clean, violation
or a finding kind (oversold, double_sale, stale_lock, ...). To gate a race you found:

  echo 'oversold ov1.none.b2.t1...  # the lesson race' >> fixtures/regressions/mine.gate

Exit status: 0 every verdict kept, 1 one changed (named with file:line), 2 bad input.";

const BENCH_HELP: &str = "\
The bench measures; it judges no lock, so a finding does not change its exit status.

Exit status: 0 the bench ran to its end; 2 bad usage or setup (one line on stderr);
130 stopped by SIGINT, 143 by SIGTERM (what was measured so far is printed).";

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// A short run (under a minute) instead of the full one (minutes).
    #[arg(long)]
    pub(super) quick: bool,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub(super) json: Option<PathBuf>,
    /// Seed of the bench's trials.
    #[arg(
        long,
        value_name = "S",
        default_value = "1",
        value_parser = parse_seed,
        allow_negative_numbers = true
    )]
    pub(super) seed: u64,
    #[command(flatten)]
    pub(super) jobs: JobsArg,
}

#[derive(Debug, Args)]
pub(super) struct GateArgs {
    /// A directory of gate files (or one gate file).
    #[arg(value_name = "DIR")]
    pub(super) dir: PathBuf,
    /// Run shell commands that tokens carry (from --lock-cmd or --buyer-cmd).
    #[arg(long)]
    pub(super) allow_cmd: bool,
    /// Runs per jitter entry (a clean verdict needs all clean; a violation needs one).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::gate::DEFAULT_ATTEMPTS,
        value_parser = parse_attempts,
        allow_negative_numbers = true
    )]
    pub(super) attempts: u32,
    #[command(flatten)]
    pub(super) jobs: JobsArg,
    #[command(flatten)]
    pub(super) timeout: TimeoutArg,
    /// The Redis server for entries of the `redis` or `redis-fenced` lock (as explore's
    /// --redis); without it each such trial starts its own redis-server.
    #[arg(long, value_name = "URL")]
    pub(super) redis: Option<String>,
}

const MERGE_HELP: &str = "\
Example: oversell merge shard-1.json shard-2.json shard-3.json --junit all.xml

Shards of an exhaustive search (explore --schedule exhaustive --shard K/N) merge to
`verified across N shards: all executions ...` only when every shard is given and
verified its parts; otherwise the line names the shard missing or failing, exit 1.

Exit status: 0 the merged run matched --expect; 1 it did not (or, for an exhaustive
search, a shard is missing or did not verify); 2 bad input (a report that cannot be read,
reports of different runs, a missing shard of sampled trials) or a file that cannot be
written, with one line on stderr.";

#[derive(Debug, Args)]
pub(super) struct MergeArgs {
    /// JSON reports of shards of one run (same lock, schedule and seed).
    #[arg(required = true, value_name = "REPORT")]
    pub(super) reports: Vec<PathBuf>,
    /// What the merged run should show; the exit status is 0 when it does.
    #[arg(long, value_enum, default_value = "clean")]
    pub(super) expect: Expect,
    #[command(flatten)]
    pub(super) out: OutArgs,
}

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Trials per lock.
    #[arg(
        long,
        value_name = "N",
        default_value = "10",
        value_parser = parse_count,
        allow_negative_numbers = true
    )]
    pub(super) trials: u64,
    /// Seed for the demo's trials.
    #[arg(
        long,
        value_name = "S",
        default_value = "1",
        value_parser = parse_seed,
        allow_negative_numbers = true
    )]
    pub(super) seed: u64,
    /// The Redis server for the `redis` and `redis-fenced` rows (as explore's --redis);
    /// without it each trial starts its own redis-server, and with neither those rows are
    /// skipped.
    #[arg(long, value_name = "URL")]
    pub(super) redis: Option<String>,
}

/// `--granularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum GranularityArg {
    /// oversell's own yield points (check, acquire, read, write, release, record).
    Step,
    /// Every system call on the trial's files, through seccomp user notification.
    Syscall,
}
