//! Buyers on their way out: whether one still holds its files, and waiting for the
//! ended ones to be gone before a trial is called stuck.

use super::{Stepper, Tracee};
use crate::seccomp::blocked;
use std::time::{Duration, Instant};

impl Stepper {
    /// True while a process of a buyer is on its way out but still holds its files.
    pub(super) fn dying(&self) -> bool {
        let roots: Vec<u32> = self.buyers.iter().map(|b| b.root).collect();
        let groups: Vec<u32> = self.buyers.iter().filter_map(|b| b.group).collect();
        blocked::dying(&roots, &groups)
    }

    /// Waits (a second at most) until every ended buyer's processes have exited; true
    /// when one had not, so what it held may have been let go since.
    pub(super) fn await_the_dead(&mut self) -> bool {
        let limit = Instant::now() + Duration::from_secs(1);
        let mut waited = false;
        for b in self.buyers.iter_mut().filter(|b| b.done && !b.reaped) {
            let gone =
                |b: &Tracee| blocked::exited(b.root) && b.group.is_none_or(blocked::group_exited);
            while !gone(b) && Instant::now() < limit {
                waited = true;
                std::thread::sleep(Duration::from_micros(200));
            }
            b.reaped = true;
        }
        waited
    }
}
