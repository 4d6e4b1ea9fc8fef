//! The bench's baseline: the raw cost of spawning a process of the oversell binary that
//! does nothing (the hidden `__noop` subcommand) and waiting for it.
//!
//! A buyer costs at least this much: it is the same binary, started the same way (its own
//! process group, `PR_SET_PDEATHSIG`), minus everything the harness and the buyer do
//! around it. `oversell bench` sets a buyer's wall time next to it.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand that exits 0 at once.
pub const NOOP: &str = "__noop";

/// Spawns `exe __noop` `n` times, one after another, waiting for each to exit; returns
/// the total wall time. Fails when a spawn fails or a child does not exit 0.
///
/// Each child is waited for with a blocking `waitpid` (no polling), so the figure is the
/// plain cost of fork, exec, the binary's start-up and exit, and the reap.
pub fn spawn_wait(exe: &Path, n: usize) -> io::Result<Duration> {
    // The run's mark is read from /proc once, outside the figure.
    let _ = super::sweep::run_mark();
    let started = Instant::now();
    for _ in 0..n {
        let mut cmd = Command::new(exe);
        cmd.arg(NOOP)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        super::process::arm(&mut cmd, 0);
        let mut child = cmd.spawn()?;
        let status = child.wait()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "`{} {NOOP}` ended with {status}",
                exe.display()
            )));
        }
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_an_error() {
        let err = spawn_wait(Path::new("/nonexistent/oversell"), 1);
        assert!(err.is_err());
    }

    #[test]
    fn a_failing_child_is_an_error() {
        // `false` ignores its arguments and exits 1.
        let Ok(path) = which("false") else { return };
        assert!(spawn_wait(&path, 1).is_err());
    }

    fn which(name: &str) -> Result<std::path::PathBuf, ()> {
        ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .ok_or(())
    }
}
