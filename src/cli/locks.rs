//! `oversell locks`: every lock backend and whether it is sound.

use crate::lock::{LockKind, Soundness};

pub(super) fn run() {
    say!("{:<14} {:<20} about", "lock", "verdict");
    for k in LockKind::ALL {
        let verdict = match k.soundness() {
            Soundness::Sound => "sound",
            Soundness::SoundUntilCrash => "sound until a kill",
            Soundness::Broken => "broken",
            Soundness::SoundUnlessPaused => "sound unless paused past the lease",
        };
        say!("{:<14} {:<20} {}", k.name(), verdict, k.about());
    }
}
