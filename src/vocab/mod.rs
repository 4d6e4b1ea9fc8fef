//! The vocabulary every layer shares, at the bottom: what the lock backends are called
//! ([`LockKind`], [`Soundness`]), the buyer's yield points ([`Point`]) and the entries the
//! harness makes in a trial's directory (`trial_dir`). It names things
//! and says what they are; it imports nothing of the crate but the ticket store's mode,
//! so values (trials, tokens, fault plans) can speak of locks and points without
//! reaching up into the backends or the protocol.

mod lock_kind;
mod point;
pub(crate) mod trial_dir;

pub use lock_kind::{LockKind, Soundness};
pub use point::Point;
