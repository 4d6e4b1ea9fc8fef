//! The one place a command's end becomes an exit status.
//!
//! `0` the result is what was asked for (`--expect`, every gate verdict kept, nothing
//! recurred in a replay); `1` it is not; `2` bad usage or setup, with one line on stderr;
//! `3` (`replay` only) the token's finding did not recur but a different one did;
//! `128 + N` a signal N (SIGINT, SIGTERM) stopped the command after its processes were
//! killed.

use crate::gate::GateError;
use crate::harness::HarnessError;

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Exit 0: the result is what was asked for.
    Matched,
    /// Exit 1: it is not (a finding where none was expected, a changed gate verdict, a
    /// finding that recurred in a replay).
    Mismatched,
    /// Exit 3, `replay` only: the token's finding did not come back, but another did.
    Different,
}

impl Outcome {
    /// [`Outcome::Matched`] when `ok`, else [`Outcome::Mismatched`].
    pub(super) fn of(ok: bool) -> Outcome {
        if ok {
            Outcome::Matched
        } else {
            Outcome::Mismatched
        }
    }
}

/// Everything that ends a command early, or with a status other than 0 or 1.
#[derive(Debug)]
pub(super) enum Fail {
    /// Bad usage: the message names the bad value and what is accepted.
    Usage(String),
    /// The environment would not let the run happen (a file that cannot be written, a
    /// lock that cannot be prepared, buyers that cannot start).
    Setup(String),
    /// SIGINT or SIGTERM stopped the command; its processes are gone. `line` says what
    /// became of the run (`None`: nothing more to say).
    Interrupted {
        /// The signal's number.
        sig: i32,
        /// The line printed on stderr.
        line: Option<String>,
    },
}

impl Fail {
    /// A signal stopped the command; the usual line says its processes are gone.
    pub(super) fn interrupted(sig: i32) -> Fail {
        Fail::Interrupted {
            sig,
            line: Some(format!(
                "interrupted by signal {sig}; every process it started is gone"
            )),
        }
    }
}

/// Every harness error but an interrupt is a setup failure: exit 2 with its one line.
/// This holds for any variant the harness adds (such as buyers that all fail before
/// their start): its `Display` is the line the user sees.
impl From<HarnessError> for Fail {
    fn from(e: HarnessError) -> Self {
        match e {
            HarnessError::Interrupted(sig) => Fail::interrupted(sig),
            e => Fail::Setup(e.to_string()),
        }
    }
}

/// The gate's errors: an interrupt as above, anything else (a bad file, a bad token, a
/// trial that could not be set up) is exit 2 naming the file and line.
impl From<GateError> for Fail {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Harness {
                source: HarnessError::Interrupted(sig),
                ..
            } => Fail::Interrupted {
                sig,
                line: Some(format!(
                    "interrupted by signal {sig}; the gate did not finish"
                )),
            },
            e => Fail::Usage(e.to_string()),
        }
    }
}

/// Prints what a failure has to say (one line on stderr) and gives the exit status.
pub(super) fn code(result: Result<Outcome, Fail>) -> i32 {
    match result {
        Ok(Outcome::Matched) => 0,
        Ok(Outcome::Mismatched) => 1,
        Ok(Outcome::Different) => 3,
        Err(Fail::Usage(m) | Fail::Setup(m)) => {
            eprintln!("error: {}", one_line(&m));
            2
        }
        Err(Fail::Interrupted { sig, line }) => {
            if let Some(line) = line {
                eprintln!("{line}");
            }
            128 + sig
        }
    }
}

/// A message on one line: a multi-line one (a buyer's stderr, say) has its lines joined.
fn one_line(m: &str) -> String {
    let lines: Vec<&str> = m.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_has_its_status() {
        assert_eq!(code(Ok(Outcome::Matched)), 0);
        assert_eq!(code(Ok(Outcome::Mismatched)), 1);
        assert_eq!(code(Err(Fail::Usage("--x 3: accepted: 1".into()))), 2);
        assert_eq!(code(Err(Fail::Setup("no room".into()))), 2);
        assert_eq!(code(Err(Fail::interrupted(15))), 143);
        assert_eq!(code(Err(Fail::Interrupted { sig: 2, line: None })), 130);
    }

    #[test]
    fn harness_errors_are_setup_failures_but_interrupts() {
        let e = HarnessError::Server("it did not answer".into());
        assert!(matches!(Fail::from(e), Fail::Setup(m) if m.contains("it did not answer")));
        let e = HarnessError::Interrupted(2);
        assert!(matches!(Fail::from(e), Fail::Interrupted { sig: 2, .. }));
    }

    #[test]
    fn a_message_is_printed_on_one_line() {
        assert_eq!(one_line("a\n  b\n\nc\n"), "a; b; c");
    }
}
