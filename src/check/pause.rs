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
    let note = mine[stop].value.as_deref().unwrap_or("");
    let field = |key: &str| {
        note.split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    // Under a controlled schedule the stop names its planned pause, which the harness
    // need not spend in full (see `harness/pause.rs`); a free-running one took real time.
    let ms = field("pause")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or((resumed - mine[stop].ns) / 1_000_000);
    Some(match field("lease") {
        Some(l) => format!(
            "; buyer {buyer} was frozen for {ms} ms while holding, past its lease of {l} ms"
        ),
        None => format!("; buyer {buyer} was frozen for {ms} ms while holding"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Event;

    fn ev(ns: u64, buyer: u32, kind: EventKind, value: Option<&str>) -> Event {
        Event {
            ns,
            buyer,
            kind,
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn the_clause_names_the_planned_pause_and_the_lease() {
        let ms = 1_000_000;
        let mut h = History {
            events: vec![
                ev(0, 0, EventKind::Acquired, None),
                ev(ms, 0, EventKind::Stopped, Some("lease=500,pause=3000")),
                ev(600 * ms, 1, EventKind::Acquired, None),
                ev(700 * ms, 0, EventKind::Resumed, None),
                ev(800 * ms, 0, EventKind::Wrote, Some("0")),
            ],
            ..History::default()
        };
        let c = frozen_across(&h, 0, 0, 4, 600 * ms).expect("frozen");
        assert_eq!(
            c,
            "; buyer 0 was frozen for 3000 ms while holding, past its lease of 500 ms"
        );
        // A free-running stop took real time, and says so.
        h.events[1].value = Some("lease=500".into());
        let c = frozen_across(&h, 0, 0, 4, 600 * ms).expect("frozen");
        assert!(c.contains("frozen for 699 ms"), "{c}");
        // A stop after the other took over says nothing.
        assert_eq!(frozen_across(&h, 0, 0, 4, 0), None);
    }
}
