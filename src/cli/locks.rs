//! `oversell locks`: every lock backend and whether it is sound.

use crate::lock::LockKind;

pub(super) fn run() {
    say!("{:<14} {:<20} about", "lock", "verdict");
    for k in LockKind::ALL {
        say!(
            "{:<14} {:<20} {}",
            k.name(),
            k.soundness().name(),
            k.about()
        );
    }
}
