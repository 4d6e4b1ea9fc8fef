//! The buyer inside a user's test binary: drives the user's lock, and turns a panic in it
//! into one last stderr line naming the method and the message, which the `crash`
//! finding quotes.

use crate::lock::{Lock, LockError};
use crate::protocol::BuyerSpec;
use std::any::Any;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

/// The exit status of a buyer whose lock panicked (as a panicking test's).
const PANICKED: i32 = 101;

/// Runs the buyer `spec` describes with `lock`; returns the process's exit status.
pub(super) fn be_the_buyer(spec: &str, lock: &mut dyn Lock) -> i32 {
    let args = match BuyerSpec::parse(spec) {
        Ok(a) => a,
        Err(e) => {
            say(format!("error: {e}"));
            return 2;
        }
    };
    let mut watched = Watched { lock, now: None };
    let ran = panic::catch_unwind(AssertUnwindSafe(|| {
        watched
            .attach(&args.dir)
            .map_err(|e| format!("attaching the lock: {e}"))?;
        crate::buyer::run(&args, &mut watched).map_err(|e| e.to_string())
    }));
    match ran {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            say(format!("error: buyer {}: {e}", args.index));
            2
        }
        Err(panic) => {
            let text = panic_text(panic.as_ref());
            match watched.now {
                Some(method) => say(format!(
                    "error: buyer {}: the lock panicked in {method}(): {text}",
                    args.index
                )),
                None => say(format!("error: buyer {} panicked: {text}", args.index)),
            }
            PANICKED
        }
    }
}

/// Writes a line to the process's real stderr, past libtest's output capture (which a
/// buyer that exits mid-test would lose): the harness keeps it for the `crash` finding.
fn say(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The panic's message on one line.
fn panic_text(panic: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The user's lock, remembering which of its methods is running.
struct Watched<'l> {
    lock: &'l mut dyn Lock,
    now: Option<&'static str>,
}

impl Watched<'_> {
    fn call<T>(
        &mut self,
        method: &'static str,
        f: impl FnOnce(&mut dyn Lock) -> Result<T, LockError>,
    ) -> Result<T, LockError> {
        self.now = Some(method);
        let out = f(&mut *self.lock);
        self.now = None;
        out
    }
}

impl Lock for Watched<'_> {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.call("attach", |l| l.attach(dir))
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.call("lock", |l| l.lock())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.call("try_lock", |l| l.try_lock())
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.call("unlock", |l| l.unlock())
    }
}
