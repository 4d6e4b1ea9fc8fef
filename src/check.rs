//! The checker: pure invariants over a [`History`] and the final store. No I/O here.
//!
//! Violations are data, never errors: [`check`] returns every one it finds, each naming
//! the buyers and values involved and the ledger events that show it.

use crate::ledger::{EventKind, Exit, History, Stuck};
use crate::store::Contents;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The kinds of finding (stable names: see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// More buyers claim a ticket than the store held.
    Oversold,
    /// Two buyers claim the same ticket number.
    DoubleSale,
    /// The final count disagrees with the sales buyers claim.
    LostUpdate,
    /// Two buyers held the critical section at once.
    Overlap,
    /// The store did not parse inside the critical section or at the end.
    CorruptStore,
    /// The trial passed its timeout and was killed.
    Hang,
    /// Under a controlled schedule, every live buyer waits on a lock.
    Deadlock,
    /// A hang or deadlock whose lock holder was a killed buyer.
    StaleLock,
    /// A buyer died without a fault having been injected.
    Crash,
    /// A process of the trial outlived it.
    LeakedProcess,
}

impl FindingKind {
    /// Every kind, in their order (the order findings are reported in).
    pub const ALL: &'static [FindingKind] = &[
        FindingKind::Oversold,
        FindingKind::DoubleSale,
        FindingKind::LostUpdate,
        FindingKind::Overlap,
        FindingKind::CorruptStore,
        FindingKind::Hang,
        FindingKind::Deadlock,
        FindingKind::StaleLock,
        FindingKind::Crash,
        FindingKind::LeakedProcess,
    ];

    /// The kind of a stable name, as [`FindingKind::name`] writes it.
    pub fn parse(name: &str) -> Option<FindingKind> {
        FindingKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Oversold => "oversold",
            FindingKind::DoubleSale => "double_sale",
            FindingKind::LostUpdate => "lost_update",
            FindingKind::Overlap => "overlap",
            FindingKind::CorruptStore => "corrupt_store",
            FindingKind::Hang => "hang",
            FindingKind::Deadlock => "deadlock",
            FindingKind::StaleLock => "stale_lock",
            FindingKind::Crash => "crash",
            FindingKind::LeakedProcess => "leaked_process",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What kind of finding.
    pub kind: FindingKind,
    /// A sentence naming the buyers and values involved.
    pub detail: String,
    /// The buyers involved.
    pub buyers: Vec<u32>,
    /// Indices into `History::events` of the events that show it.
    pub events: Vec<usize>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// What the checker looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Tickets the store held at the start.
    pub tickets: u32,
    /// Buyers in the trial.
    pub buyers: u32,
    /// The merged ledger and the buyers' fates.
    pub history: &'a History,
    /// The store at the end (`None`: the file was missing).
    pub final_store: Option<&'a Contents>,
    /// True when a process outlived the trial.
    pub leaked: bool,
}

fn list(buyers: &[u32]) -> String {
    let names: Vec<String> = buyers.iter().map(u32::to_string).collect();
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Checks every invariant and returns what is broken (empty: the trial is clean).
pub fn check(obs: &Observation<'_>) -> Vec<Violation> {
    let h = obs.history;
    let mut out = Vec::new();

    // Who claims what.
    // buyer -> (ticket, event); a buyer program run by --buyer-cmd names no ticket.
    let mut claims: BTreeMap<u32, (Option<i64>, usize)> = BTreeMap::new();
    let mut settled = vec![false; obs.buyers as usize];
    for (i, e) in h.events.iter().enumerate() {
        let settles = match e.kind {
            EventKind::Bought => {
                claims.insert(e.buyer, (e.num(), i));
                true
            }
            EventKind::SoldOut => true,
            // It read nothing usable, wrote nothing and claims nothing: settled.
            EventKind::Error => e.value.as_deref() == Some("corrupt_read"),
            _ => false,
        };
        if let Some(s) = settled.get_mut(e.buyer as usize).filter(|_| settles) {
            *s = true;
        }
    }
    let definite = claims.len() as i64;
    let fate = |b: u32| h.fates.get(b as usize);
    let unknown: Vec<u32> = (0..obs.buyers).filter(|&b| !settled[b as usize]).collect();

    // oversold
    if definite > obs.tickets as i64 {
        let who: Vec<u32> = claims.keys().copied().collect();
        out.push(Violation {
            kind: FindingKind::Oversold,
            detail: format!(
                "{} a sale; the store held {} (buyers {})",
                plural(claims.len(), "buyer claims", "buyers claim"),
                obs.tickets,
                list(&who)
            ),
            buyers: who,
            events: claims.values().map(|&(_, e)| e).collect(),
        });
    }

    // double_sale
    let mut by_ticket: BTreeMap<i64, Vec<(u32, usize)>> = BTreeMap::new();
    for (&b, &(t, e)) in &claims {
        let Some(t) = t else { continue };
        by_ticket.entry(t).or_default().push((b, e));
    }
    for (t, holders) in by_ticket.iter().filter(|(_, v)| v.len() > 1) {
        let who: Vec<u32> = holders.iter().map(|&(b, _)| b).collect();
        out.push(Violation {
            kind: FindingKind::DoubleSale,
            detail: format!(
                "buyers {} {} claim ticket {t}",
                list(&who),
                if who.len() == 2 { "both" } else { "all" }
            ),
            buyers: who,
            events: holders.iter().map(|&(_, e)| e).collect(),
        });
    }

    // lost_update: definite <= initial - final <= definite + unknown
    if let Some(Contents::Count(fin)) = obs.final_store {
        let sold = obs.tickets as i64 - fin;
        let lo = definite;
        let hi = definite + unknown.len() as i64;
        if sold < lo || sold > hi {
            let expect = if unknown.is_empty() {
                format!(
                    "{} − {} claimed = {}",
                    obs.tickets,
                    definite,
                    obs.tickets as i64 - definite
                )
            } else {
                format!(
                    "between {} and {} ({} claimed, {} unknown)",
                    obs.tickets as i64 - hi,
                    obs.tickets as i64 - lo,
                    definite,
                    unknown.len()
                )
            };
            let what = if sold < lo {
                format!(
                    "{} the store does not show",
                    plural((lo - sold) as usize, "claimed sale", "claimed sales")
                )
            } else {
                format!(
                    "the store lost {} no buyer claims",
                    plural((sold - hi) as usize, "ticket", "tickets")
                )
            };
            out.push(Violation {
                kind: FindingKind::LostUpdate,
                detail: format!("the final count is {fin}, expected {expect}: {what}"),
                buyers: claims.keys().copied().collect(),
                events: h
                    .events
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.kind == EventKind::Wrote)
                    .map(|(i, _)| i)
                    .collect(),
            });
        }
    }

    // overlap: critical sections from `acquired` to `released` (or the buyer's last event).
    let mut sections: Vec<(u64, u64, u32, usize, usize)> = Vec::new();
    for b in 0..obs.buyers {
        let mut start: Option<(u64, usize)> = None;
        let mut last: Option<(u64, usize)> = None;
        for (i, e) in h.events.iter().enumerate().filter(|(_, e)| e.buyer == b) {
            last = Some((e.ns, i));
            match e.kind {
                EventKind::Acquired => start = Some((e.ns, i)),
                EventKind::Released => {
                    if let Some((s, si)) = start.take() {
                        sections.push((s, e.ns, b, si, i));
                    }
                }
                _ => {}
            }
        }
        if let (Some((s, si)), Some((l, li))) = (start, last) {
            sections.push((s, l, b, si, li));
        }
    }
    sections.sort();
    let mut pairs: Vec<(u32, u32, [usize; 4])> = Vec::new();
    for (x, a) in sections.iter().enumerate() {
        for b in &sections[x + 1..] {
            if b.0 >= a.1 {
                break;
            }
            if a.2 != b.2 {
                pairs.push((a.2, b.2, [a.3, a.4, b.3, b.4]));
            }
        }
    }
    if let Some(&(a, b, ev)) = pairs.first() {
        let mut who: Vec<u32> = pairs.iter().flat_map(|&(a, b, _)| [a, b]).collect();
        who.sort_unstable();
        who.dedup();
        let more = if pairs.len() > 1 {
            format!(
                " (and {})",
                plural(pairs.len() - 1, "more pair", "more pairs")
            )
        } else {
            String::new()
        };
        out.push(Violation {
            kind: FindingKind::Overlap,
            detail: format!("buyers {a} and {b} held the critical section at once{more}"),
            buyers: who,
            events: ev.to_vec(),
        });
    }

    // corrupt_store: a torn read inside the critical section, or a broken final store.
    let torn: Vec<(usize, u32)> = h
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventKind::Error && e.value.as_deref() == Some("corrupt_read"))
        .map(|(i, e)| (i, e.buyer))
        .collect();
    if !torn.is_empty() {
        let who: Vec<u32> = torn.iter().map(|&(_, b)| b).collect();
        out.push(Violation {
            kind: FindingKind::CorruptStore,
            detail: format!(
                "{} {} read a store that did not parse inside the critical section",
                if who.len() == 1 { "buyer" } else { "buyers" },
                list(&who),
            ),
            buyers: who,
            events: torn.iter().map(|&(i, _)| i).collect(),
        });
    }
    match obs.final_store {
        Some(Contents::Corrupt(what)) => {
            // A writer killed between truncate and write leaves the torn file behind.
            let torn_by: Vec<(u32, usize)> = (0..obs.buyers)
                .filter(|&b| fate(b).is_some_and(|f| f.killed_by_fault))
                .filter_map(|b| {
                    let (i, e) = h.events.iter().enumerate().rfind(|(_, e)| e.buyer == b)?;
                    (e.kind == EventKind::Truncated).then_some((b, i))
                })
                .collect();
            let why = match torn_by.first() {
                Some(&(b, _)) => format!(
                    "; buyer {b} (pid {}) was killed between truncate and write, and a lock does \
                     not make a write crash-safe (--store atomic does)",
                    fate(b).map_or(0, |f| f.pid)
                ),
                None => String::new(),
            };
            out.push(Violation {
                kind: FindingKind::CorruptStore,
                detail: format!("the final store does not parse: {what}{why}"),
                buyers: torn_by.iter().map(|&(b, _)| b).collect(),
                events: torn_by.iter().map(|&(_, i)| i).collect(),
            })
        }
        None => out.push(Violation {
            kind: FindingKind::CorruptStore,
            detail: "the store file is gone at the end of the trial".into(),
            buyers: Vec::new(),
            events: Vec::new(),
        }),
        Some(Contents::Count(_)) => {}
    }

    // hang, deadlock, stale_lock
    let last_step = |b: u32| match h.of(b).last() {
        Some(e) => format!("`{}`", e.kind),
        None => "`start`".to_string(),
    };
    match &h.stuck {
        Some(Stuck::Deadlock { waiting, holder }) => {
            // A holder that is gone (killed, or crashed) can never give the lock back.
            let dead_holder = holder.filter(|&hb| {
                fate(hb).is_some_and(|f| f.killed_by_fault || f.exit != Exit::Code(0))
            });
            match dead_holder {
                Some(hb) => out.push(Violation {
                    kind: FindingKind::StaleLock,
                    detail: format!(
                        "buyer {hb} (pid {}) {} holding the lock, after {}; buyers {} wait for it forever",
                        fate(hb).map_or(0, |f| f.pid),
                        if fate(hb).is_some_and(|f| f.killed_by_fault) {
                            "was killed"
                        } else {
                            "died"
                        },
                        last_step(hb),
                        list(waiting)
                    ),
                    buyers: std::iter::once(hb).chain(waiting.iter().copied()).collect(),
                    events: Vec::new(),
                }),
                None => out.push(Violation {
                    kind: FindingKind::Deadlock,
                    detail: format!(
                        "every live buyer waits on the lock: buyers {}{}",
                        list(waiting),
                        match holder {
                            Some(hb) => format!(" (last inside: buyer {hb}, after {})", last_step(*hb)),
                            None => String::new(),
                        }
                    ),
                    buyers: waiting.clone(),
                    events: Vec::new(),
                }),
            }
        }
        Some(Stuck::Hang { buyer, after }) => out.push(Violation {
            kind: FindingKind::Hang,
            detail: format!(
                "buyer {buyer} did not reach its next step after `{after}` in time; the trial was killed"
            ),
            buyers: vec![*buyer],
            events: Vec::new(),
        }),
        None if h.timed_out => {
            let steps: Vec<String> = unknown
                .iter()
                .map(|&b| format!("buyer {b} after {}", last_step(b)))
                .collect();
            // Who held the lock when it stopped: took it, never gave it back.
            let holders: Vec<String> = (0..obs.buyers)
                .filter(|&b| {
                    let mut held = false;
                    for e in h.of(b) {
                        match e.kind {
                            EventKind::Acquired => held = true,
                            EventKind::Released => held = false,
                            _ => {}
                        }
                    }
                    held
                })
                .map(|b| {
                    let f = fate(b);
                    let how = if f.is_some_and(|f| f.killed_by_fault) {
                        ", killed by a fault"
                    } else {
                        ""
                    };
                    format!(
                        "buyer {b} (pid {}{how}) since {}",
                        f.map_or(0, |f| f.pid),
                        last_step(b)
                    )
                })
                .collect();
            let held = if holders.is_empty() {
                String::new()
            } else {
                format!("; holding the lock: {}", holders.join(", "))
            };
            out.push(Violation {
                kind: FindingKind::Hang,
                detail: format!(
                    "the trial passed its timeout and was killed; unfinished: {}{held}",
                    if steps.is_empty() {
                        "none".to_string()
                    } else {
                        steps.join(", ")
                    }
                ),
                buyers: unknown.clone(),
                events: Vec::new(),
            });
        }
        None => {}
    }

    // crash
    for b in 0..obs.buyers {
        let Some(f) = fate(b) else { continue };
        if f.killed_by_fault || f.killed_by_timeout {
            continue;
        }
        let how = match &f.exit {
            // 3 is a buyer program's "sold out" (--buyer-cmd).
            Exit::Code(0 | 3) if settled[b as usize] => continue,
            Exit::Code(0) => "exited without recording an outcome".to_string(),
            Exit::Code(c) => format!("exited with status {c}"),
            Exit::Signal(s) => format!("was killed by signal {s}"),
            Exit::Unknown => "ended in a way the harness could not see".to_string(),
        };
        let after = match h.of(b).last() {
            Some(e) => format!(" after `{}`", e.kind),
            None => " before `start`".to_string(),
        };
        let tail = f.stderr_tail.lines().last().unwrap_or("").trim();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        out.push(Violation {
            kind: FindingKind::Crash,
            detail: format!("buyer {b} {how}{after}{tail}"),
            buyers: vec![b],
            events: Vec::new(),
        });
    }

    if obs.leaked {
        out.push(Violation {
            kind: FindingKind::LeakedProcess,
            detail: "a process of the trial was still running after every buyer was reaped".into(),
            buyers: Vec::new(),
            events: Vec::new(),
        });
    }

    out.sort_by_key(|v| v.kind);
    out
}
