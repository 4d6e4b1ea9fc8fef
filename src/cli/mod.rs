//! The command line: argv → command → exit code. The only module that prints to stdout
//! or picks an exit status.
//!
//! Exit status: `0` the result matched `--expect` (default `clean`); `1` it did not;
//! `2` bad usage or setup, with one line on stderr naming the bad value.
//!
//! Layout: `args` holds the clap structures and their help texts, `parse` the value
//! parsers, `validate` the checks made before any trial runs, `exit` the one mapping from
//! a command's end to an exit status, `outputs` the report files and the verdict,
//! `progress` the bar, `hidden` the entry points the harness starts this binary with, and
//! one file per command.

/// Prints a line to stdout; a closed pipe (`oversell ... | head`) is not an error.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Prints to stdout without a newline, ignoring a closed pipe.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

mod args;
mod bench;
mod demo;
mod exit;
mod explore;
mod gate;
mod hidden;
mod locks;
mod merge;
mod outputs;
mod parse;
mod progress;
mod replay;
mod validate;

use args::{Cli, Cmd, DemoArgs};
use clap::Parser;
use exit::{Fail, Outcome};

/// Runs the command line and returns the process's exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return exit::code(parse_failure(&e)),
    };
    let hidden = matches!(
        cli.command,
        Some(Cmd::Buyer { .. } | Cmd::LockServer { .. } | Cmd::Noop | Cmd::Guard { .. })
    );
    if !hidden {
        // Whatever a run killed with SIGKILL left (processes, directories, semaphores)
        // goes before this one starts.
        crate::harness::sweep_stale_everywhere();
    }
    let result = match cli.command {
        None => demo::run(&DemoArgs {
            trials: 10,
            seed: 1,
        }),
        Some(Cmd::Demo(a)) => demo::run(&a),
        Some(Cmd::Explore(a)) => explore::run(&a),
        Some(Cmd::Replay(a)) => replay::run(&a),
        Some(Cmd::Merge(a)) => merge::run(&a),
        Some(Cmd::Gate(a)) => gate::run(&a),
        Some(Cmd::Bench(a)) => bench::run(&a),
        Some(Cmd::Locks) => {
            locks::run();
            Ok(Outcome::Matched)
        }
        // A buyer's status is the buyer protocol's (0, or 2 after one line on stderr).
        Some(Cmd::Buyer { spec }) => return crate::buyer::run_from_spec(&spec),
        Some(Cmd::LockServer { dir }) => hidden::lock_server(&dir),
        Some(Cmd::Guard { root }) => hidden::guard(&root),
        Some(Cmd::Noop) => Ok(Outcome::Matched),
    };
    exit::code(result)
}

/// What a clap error ends in: help and version are printed and succeed; anything else is
/// one line naming the bad value, with the accepted values when clap knows them.
fn parse_failure(e: &clap::Error) -> Result<Outcome, Fail> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Ok(Outcome::Matched);
    }
    // One line: clap's first line names the bad value and what is accepted.
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("error: bad usage").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let accepted = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values))
            if e.kind() == ErrorKind::InvalidValue && !values.is_empty() =>
        {
            format!("; accepted: {}", values.join(", "))
        }
        // A value left out: clap knows no list, but the fix is plain.
        _ if e.kind() == ErrorKind::InvalidValue => "; accepted: the option followed by its value".into(),
        _ => String::new(),
    };
    Err(Fail::Usage(format!(
        "{first}{accepted} (see 'oversell --help')"
    )))
}

/// Makes a command ready to run trials: removes what a killed earlier run left behind,
/// takes over SIGINT and SIGTERM (so a stopped run kills its processes), and gives the
/// harness configuration that launches this binary's buyers.
fn start_harness() -> Result<crate::harness::HarnessConfig, Fail> {
    let exe = std::env::current_exe()
        .map_err(|e| Fail::Setup(format!("cannot find my own binary: {e}")))?;
    crate::harness::interrupt::install()
        .map_err(|e| Fail::Setup(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    Ok(crate::harness::HarnessConfig::new(exe))
}

/// Writes a report's text to a file the user named.
fn write_out(path: &std::path::Path, text: &str, what: &str) -> Result<(), Fail> {
    std::fs::write(path, text).map_err(|e| {
        Fail::Setup(format!(
            "cannot write the {what} to {}: {e}",
            path.display()
        ))
    })
}

