//! The command line: argv → command → exit code. The only module that prints to stdout
//! or picks an exit status.
//!
//! Exit status: `0` the result matched `--expect` (default `clean`); `1` it did not;
//! `2` bad usage or setup, with one line on stderr naming the bad value; `3` (`replay`
//! only) a different finding came back; `130`/`143` SIGINT/SIGTERM stopped it (`exit`).
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
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => return exit::code(parse_failure(&e, argv.get(1))),
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
            redis: None,
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
    if !hidden {
        // The run's clock shim, if it wrote one (its guard removes it after a SIGKILL).
        crate::harness::remove_clock_shim();
    }
    exit::code(result)
}

/// What a clap error ends in: help and version are printed and succeed; anything else is
/// one line naming the bad value (or the missing argument) with what is accepted when
/// clap knows it, clap's "did you mean" when it has one, and the `--help` of the command
/// the error is about (`arg1`, the first argument, names it when it is a command).
fn parse_failure(e: &clap::Error, arg1: Option<&std::ffi::OsString>) -> Result<Outcome, Fail> {
    use clap::error::{ContextKind, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Ok(Outcome::Matched);
    }
    let command = match arg1.and_then(|f| f.to_str()) {
        Some(name) if subcommands().iter().any(|s| s == name) => format!("oversell {name}"),
        _ => "oversell".to_string(),
    };
    let see = format!("(see '{command} --help')");
    if e.kind() == ErrorKind::MissingRequiredArgument {
        let usage = match e.get(ContextKind::Usage) {
            Some(clap::error::ContextValue::StyledStr(u)) => u.to_string(),
            _ => String::new(),
        };
        let usage = usage.lines().next().unwrap_or("").trim();
        let usage = usage.strip_prefix("Usage:").unwrap_or(usage).trim();
        let missing = strings(e, ContextKind::InvalidArg);
        let (noun, names) = match missing.as_slice() {
            [one] => ("argument", one.clone()),
            many => ("arguments", many.join(" and ")),
        };
        return Err(Fail::Usage(format!(
            "{command} is missing its {names} {noun}; accepted: {usage} {see}"
        )));
    }
    // Otherwise clap's first line names the bad value.
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("error: bad usage").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut line = first.to_string();
    match e.kind() {
        ErrorKind::InvalidValue => match strings(e, ContextKind::ValidValue) {
            values if !values.is_empty() => {
                line.push_str(&format!("; accepted: {}", values.join(", ")))
            }
            // A value left out: clap knows no list, but the fix is plain.
            _ => line.push_str("; accepted: the option followed by its value"),
        },
        ErrorKind::InvalidSubcommand => {
            line.push_str(&format!("; accepted: {}", subcommands().join(", ")));
        }
        _ => {}
    }
    let suggested: Vec<String> = [ContextKind::SuggestedSubcommand, ContextKind::SuggestedArg]
        .into_iter()
        .flat_map(|k| strings(e, k))
        .collect();
    if !suggested.is_empty() {
        let quoted: Vec<String> = suggested.iter().map(|s| format!("'{s}'")).collect();
        line.push_str(&format!("; did you mean {}?", quoted.join(" or ")));
    }
    // A flag another command has: clap says where ("'oversell explore --lock' exists").
    for tip in strings(e, ContextKind::Suggested) {
        if tip.ends_with(" exists") {
            line.push_str(&format!("; {tip}"));
        }
    }
    Err(Fail::Usage(format!("{line} {see}")))
}

/// A clap error's context of `kind` as strings (none when clap gave none).
fn strings(e: &clap::Error, kind: clap::error::ContextKind) -> Vec<String> {
    use clap::error::ContextValue;
    match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::StyledStr(s)) => vec![s.to_string()],
        Some(ContextValue::StyledStrs(v)) => v.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The names of the commands `oversell --help` lists.
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
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
