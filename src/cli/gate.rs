//! `oversell gate DIR`: every regression token replayed, every verdict judged.

use super::args::GateArgs;
use super::exit::{Fail, Outcome};
use super::start_harness;
use crate::scenario::Trial;
use std::time::Duration;

pub(super) fn run(a: &GateArgs) -> Result<Outcome, Fail> {
    if !a.allow_cmd {
        refuse_commands(a)?;
    }
    let h = start_harness()?.with_timeout(Duration::from_millis(a.timeout_ms));
    let report = crate::gate::run(&a.dir, &h, a.attempts, &mut |o| {
        say!("{}", crate::gate::line(o));
    })?;
    say!("{}", report.summary());
    Ok(Outcome::of(report.passed()))
}

/// Without `--allow-cmd`, an entry whose token runs a shell command stops the gate.
fn refuse_commands(a: &GateArgs) -> Result<(), Fail> {
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
    Ok(())
}
