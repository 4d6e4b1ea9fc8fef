//! `lease-fenced`: the `lease` backend whose every acquisition carries a fencing token,
//! a number larger than any before it, which the holder hands to the store with each
//! read and write. The store refuses a token smaller than one it has seen
//! (`store::read_fenced`, `store::write_fenced`), so a holder that was frozen past its
//! lease and wakes up can no longer overwrite the work of the peer that took over: sound
//! under any pause.

use super::lease::LeaseLock;

/// A lease with fencing tokens.
pub(crate) fn lock() -> LeaseLock {
    LeaseLock::new(true)
}
