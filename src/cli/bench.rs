//! `oversell bench`: detection power and speed of every lock under every strategy.

use super::args::BenchArgs;
use super::exit::{Fail, Outcome};
use super::{start_harness, validate, write_out};

pub(super) fn run(a: &BenchArgs) -> Result<Outcome, Fail> {
    if let Some(p) = &a.json {
        validate::output("--json", p)?;
    }
    let mut opts = crate::bench::BenchOptions::new(a.quick, a.seed, start_harness()?);
    opts.jobs = a.jobs.count();
    let report = crate::bench::run(&opts, &mut |line| eprintln!("{line}"))?;
    say!("{}", report.to_text());
    if let Some(p) = &a.json {
        write_out(p, &report.to_json(), "bench report")?;
        say!("wrote the bench report to {}", p.display());
    }
    match report.interrupted {
        Some(sig) => Err(Fail::Interrupted { sig, line: None }),
        None => Ok(Outcome::Matched),
    }
}
