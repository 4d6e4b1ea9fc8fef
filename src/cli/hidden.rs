//! The hidden entry points the harness and the bench start this binary with: one buyer
//! (`__buyer`), the socket lock's server (`__lock-server`); `__noop` is in the dispatch.
//! Their failures are setup failures (exit 2, one line), which the harness reports.

use super::exit::{Fail, Outcome};
use crate::buyer;
use crate::harness::BuyerSpec;
use crate::lock::{socket, LockContext, LockKind};
use std::io::Write;
use std::path::Path;

/// `__buyer SPEC`: one buyer process, as the harness describes it.
pub(super) fn buyer(spec: &str) -> Result<Outcome, Fail> {
    let spec = BuyerSpec::parse(spec).map_err(Fail::Setup)?;
    let lock = LockKind::parse(&spec.lock)
        .ok_or_else(|| Fail::Setup(format!("bad buyer spec: unknown lock {:?}", spec.lock)))?;
    let args = spec.args().map_err(Fail::Setup)?;
    let ctx = LockContext {
        dir: args.dir.clone(),
        sem_id: spec.sem_id,
    };
    let mut lock = lock.open(&ctx).map_err(|e| Fail::Setup(e.to_string()))?;
    buyer::run(&args, &mut *lock).map_err(|e| Fail::Setup(format!("buyer {}: {e}", args.index)))?;
    Ok(Outcome::Matched)
}

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
