//! Errno faults at system-call granularity: the call a buyer's fault falls on is
//! answered with the error instead of running.

use super::Stepper;
use crate::ledger::Injected;
use crate::seccomp::call::{self, Notif, Step};

impl Stepper {
    /// True when buyer `b`'s errno fault falls on `step`: the `k`th of its calls on a
    /// trial file that can fail with that error (counted here, as they are let go).
    pub(super) fn fails_now(&mut self, b: usize, step: &Step) -> bool {
        let buyer = &mut self.buyers[b];
        let Some((k, errno)) = buyer.fail_at else {
            return false;
        };
        if !step.can_fail_with(errno, &self.real_dir) {
            return false;
        }
        buyer.failable += 1;
        buyer.failable == k + 1
    }

    /// Answers buyer `b`'s call `n` with its errno fault's error instead of running it.
    pub(super) fn fail(&mut self, b: usize, n: Notif, step: &Step) {
        let Some((_, errno)) = self.buyers[b].fail_at else {
            return;
        };
        let label = step.label(&self.real_dir);
        self.trace
            .push(format!("buyer {b} {label} → {} (injected)", errno.name()));
        self.injected.push(Injected {
            buyer: b as u32,
            step: self.walk.choices.len(),
            ns: crate::ledger::now_ns(),
            call: label,
            errno: errno.name().to_string(),
        });
        call::fail(self.fd(b), n.id, errno.raw());
        let _ = nix::sched::sched_yield();
    }
}
