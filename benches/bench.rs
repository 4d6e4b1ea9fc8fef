//! `cargo bench --bench bench -- [--quick] [--seed N] [--json FILE]`: runs
//! `oversell::testing::run_bench` against the oversell binary built alongside, and prints the
//! report as text (and writes its JSON when asked).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing, so the test
//! suite stays fast.

use oversell::testing::{run_bench, BenchOptions, HarnessConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seed = match value("--seed").map(|s| s.parse::<u64>()) {
        None => 1,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("error: --seed: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = BenchOptions::new(
        quick,
        seed,
        HarnessConfig::new(env!("CARGO_BIN_EXE_oversell")),
    );
    let report = match run_bench(&opts, &mut |line| eprintln!("{line}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.to_text());
    if let Some(path) = value("--json") {
        if let Err(e) = std::fs::write(&path, report.to_json()) {
            eprintln!("error: writing {path}: {e}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
