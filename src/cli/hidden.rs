//! The hidden entry points the harness and the bench start this binary with: the socket
//! lock's server (`__lock-server`); `__buyer` (`buyer::run_from_spec`) and `__noop` are in
//! the dispatch.
//! Their failures are setup failures (exit 2, one line), which the harness reports.

use super::exit::{Fail, Outcome};
use crate::lock::socket;
use std::io::Write;
use std::path::Path;

/// `__lock-server DIR`: serves the socket lock; says `ready` once it listens.
pub(super) fn lock_server(dir: &Path) -> Result<Outcome, Fail> {
    let listener = socket::bind(dir).map_err(|e| Fail::Setup(e.to_string()))?;
    let mut out = std::io::stdout();
    out.write_all(b"ready\n")
        .and_then(|_| out.flush())
        .map_err(|e| Fail::Setup(format!("cannot say ready: {e}")))?;
    socket::serve(listener).map_err(|e| Fail::Setup(e.to_string()))?;
    Ok(Outcome::Matched)
}

/// `__guard ROOT`: blocks until its stdin closes, which happens when the run that
/// started it ends however it ends (SIGKILL included), then sweeps what that run left:
/// processes a syscall-controlled trial stops in calls nobody will answer again, and
/// its trial directories in ROOT.
pub(super) fn guard(root: &Path) -> Result<Outcome, Fail> {
    use std::io::Read;
    let run = std::os::unix::process::parent_id();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    crate::harness::sweep_after(run, root);
    // The run's clock shim went to the temporary directory when the root is `noexec`.
    let tmp = std::env::temp_dir();
    if tmp != root {
        crate::harness::sweep_stale(&tmp);
    }
    Ok(Outcome::Matched)
}
