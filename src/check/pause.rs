//! Pauses and fencing in the overlap check: when a critical section counts as held, and
//! what a frozen holder's pause says about an overlap.

use crate::ledger::{EventKind, History};

/// The part of buyer `buyer`'s section (events `from..=to`) in which it held the store,
/// in ledger nanoseconds. A section without a fencing token counts whole. One with a
/// token counts from its first to its last store access the store accepted: the store
/// refuses an older token once it has seen a newer one, so what a holder does after it
/// lost the lease cannot reach the data (`None`: the store refused it everything).
pub(super) fn effective(h: &History, buyer: u32, from: usize, to: usize) -> Option<(u64, u64)> {
    let mine = || h.events[from..=to].iter().filter(move |e| e.buyer == buyer);
    if !mine().any(|e| e.kind == EventKind::Fence) {
        return Some((h.events[from].ns, h.events[to].ns));
    }
    let mut touched = mine().filter(|e| {
        matches!(
            e.kind,
            EventKind::Read | EventKind::Truncated | EventKind::Wrote
        )
    });
    let first = touched.next()?.ns;
    let last = touched.next_back().map_or(first, |e| e.ns);
    Some((first, last))
}

/// When buyer `buyer`'s section (events `from..=to`) was frozen by a stop fault that
/// began before `at` (the other holder's start): how long, and past which lease, as a
/// clause.
pub(super) fn frozen_across(
    h: &History,
    buyer: u32,
    from: usize,
    to: usize,
    at: u64,
) -> Option<String> {
    let mine: Vec<_> = h.events[from..=to]
        .iter()
        .filter(|e| e.buyer == buyer)
        .collect();
    let stop = mine
        .iter()
        .position(|e| e.kind == EventKind::Stopped && e.ns <= at)?;
    let resumed = mine[stop..]
        .iter()
        .find(|e| e.kind == EventKind::Resumed)
        .map_or(h.events[to].ns, |e| e.ns);
    let ms = (resumed - mine[stop].ns) / 1_000_000;
    let lease = mine[stop]
        .value
        .as_deref()
        .and_then(|v| v.strip_prefix("lease="));
    Some(match lease {
        Some(l) => format!(
            "; buyer {buyer} was frozen for {ms} ms while holding, past its lease of {l} ms"
        ),
        None => format!("; buyer {buyer} was frozen for {ms} ms while holding"),
    })
}
