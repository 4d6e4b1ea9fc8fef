//! The findings of a trial that did not end by itself: hang, deadlock, stale_lock, and
//! crash (a buyer that died without a fault).

use super::{buyers, without_events, Claims, FindingKind, Observation, Violation};
use crate::ledger::{Exit, History, Stuck};

pub(super) fn pid(h: &History, b: u32) -> u32 {
    h.fates.get(b as usize).map_or(0, |f| f.pid)
}

fn killed(h: &History, b: u32) -> bool {
    h.fates.get(b as usize).is_some_and(|f| f.killed_by_fault)
}

/// `` `kind` `` of the buyer's last event, or `` `start` `` when it has none.
fn last_step(h: &History, b: u32) -> String {
    match h.of(b).last() {
        Some(e) => format!("`{}`", e.kind),
        None => "`start`".to_string(),
    }
}

/// `buyer 1 waits` or `buyers 1 and 2 wait`.
fn waits(who: &[u32]) -> String {
    if who.len() == 1 {
        format!("{} waits", buyers(who))
    } else {
        format!("{} wait", buyers(who))
    }
}

/// deadlock, or stale_lock when the last holder is gone (killed, or crashed) and can
/// never give the lock back.
fn deadlock(h: &History, waiting: &[u32], holder: Option<u32>) -> Violation {
    let dead_holder = holder.filter(|&hb| {
        h.fates
            .get(hb as usize)
            .is_some_and(|f| f.killed_by_fault || f.exit != Exit::Code(0))
    });
    if let Some(hb) = dead_holder {
        return without_events(
            FindingKind::StaleLock,
            format!(
                "buyer {hb} (pid {}) {} holding the lock, after {}; {} for it forever",
                pid(h, hb),
                if killed(h, hb) { "was killed" } else { "died" },
                last_step(h, hb),
                waits(waiting)
            ),
            std::iter::once(hb).chain(waiting.iter().copied()).collect(),
        );
    }
    let inside = match holder {
        Some(hb) => format!(" (last inside: buyer {hb}, after {})", last_step(h, hb)),
        None => String::new(),
    };
    without_events(
        FindingKind::Deadlock,
        format!(
            "every live buyer waits on the lock: {}{inside}",
            buyers(waiting)
        ),
        waiting.to_vec(),
    )
}

/// hang: the trial passed its timeout; who was unfinished and who held the lock.
fn timed_out(obs: &Observation<'_>, c: &Claims) -> Violation {
    let h = obs.history;
    let steps: Vec<String> = c
        .unknown
        .iter()
        .map(|&b| format!("buyer {b} after {}", last_step(h, b)))
        .collect();
    // Who held the lock when it stopped: took it, never gave it back.
    let holders: Vec<String> = (0..obs.buyers)
        .filter(|&b| h.holds_at_end(b))
        .map(|b| {
            let how = if killed(h, b) {
                ", killed by a fault"
            } else {
                ""
            };
            format!(
                "buyer {b} (pid {}{how}) since {}",
                pid(h, b),
                last_step(h, b)
            )
        })
        .collect();
    let held = if holders.is_empty() {
        String::new()
    } else {
        format!("; holding the lock: {}", holders.join(", "))
    };
    let unfinished = if steps.is_empty() {
        "none".to_string()
    } else {
        steps.join(", ")
    };
    let at: Vec<String> = h
        .whereabouts
        .iter()
        .map(|(b, at)| format!("buyer {b} {at}"))
        .collect();
    let at = if at.is_empty() {
        String::new()
    } else {
        format!("; when killed: {}", at.join("; "))
    };
    without_events(
        FindingKind::Hang,
        format!("the trial passed its timeout and was killed; unfinished: {unfinished}{held}{at}"),
        c.unknown.clone(),
    )
}

/// hang, deadlock or stale_lock: how the trial got stuck, if it did.
pub(super) fn stuck(obs: &Observation<'_>, c: &Claims) -> Option<Violation> {
    let h = obs.history;
    match &h.stuck {
        Some(Stuck::Deadlock { waiting, holder }) => Some(deadlock(h, waiting, *holder)),
        Some(Stuck::Hang { buyer, after }) => Some(without_events(
            FindingKind::Hang,
            format!(
                "buyer {buyer} did not reach its next step after `{after}` in time; the trial was killed"
            ),
            vec![*buyer],
        )),
        None if h.timed_out => Some(timed_out(obs, c)),
        None => None,
    }
}

/// crash: a buyer that died without a fault, or ended without recording an outcome.
pub(super) fn crashes(obs: &Observation<'_>, c: &Claims) -> Vec<Violation> {
    let h = obs.history;
    let mut out = Vec::new();
    for b in 0..obs.buyers {
        let Some(f) = h.fates.get(b as usize) else {
            continue;
        };
        if f.killed_by_fault || f.killed_by_timeout {
            continue;
        }
        // A buyer whose call was made to fail and which then said it failed (a status
        // that claims no sale) did what a careful program does.
        let failed_on_purpose = h.injected.iter().any(|i| i.buyer == b);
        if failed_on_purpose && matches!(f.exit, Exit::Code(c) if c != 0) {
            continue;
        }
        let how = match &f.exit {
            // 3 is a buyer program's "sold out" (--buyer-cmd); GAVE_UP a command's "gave
            // up before buying" (settled only when it took no step).
            Exit::Code(0 | 3 | super::GAVE_UP) if c.settled[b as usize] => continue,
            Exit::Code(0) => "exited without recording an outcome".to_string(),
            Exit::Code(c) => format!("exited with status {c}"),
            Exit::Signal(s) => format!("was killed by signal {s}"),
            Exit::Unknown => "ended in a way the harness could not see".to_string(),
        };
        let after = match h.of(b).last() {
            Some(e) => format!(" after `{}`", e.kind),
            None => " before `start`".to_string(),
        };
        // A command that gives up by design before buying can say so.
        let hint = match (h.of(b).next(), &f.exit) {
            (None, Exit::Code(1..)) => format!(
                " (a command that gives up without buying exits {0}, as `flock -n -E {0}` does)",
                super::GAVE_UP
            ),
            _ => String::new(),
        };
        let tail = f.stderr_tail.lines().last().unwrap_or("").trim();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        out.push(without_events(
            FindingKind::Crash,
            format!("buyer {b} {how}{after}{tail}{hint}"),
            vec![b],
        ));
    }
    out
}
