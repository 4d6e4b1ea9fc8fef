//! The checker: pure invariants over a [`History`] and the final store. No I/O here.
//!
//! Violations are data, never errors: [`check`] returns every one it finds, each naming
//! the buyers and values involved and the ledger events that show it.

mod pause;
mod stuck;

use crate::ledger::{EventKind, Exit, History};
use crate::store::Contents;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use stuck::{crashes, pid, stuck};

/// The kinds of finding (stable names: see docs/ARCHITECTURE.md).
///
/// Each [`Violation`](crate::Violation) has one; the README lists them with their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// More buyers claim a ticket than the store held.
    Oversold,
    /// Two buyers claim the same ticket number.
    DoubleSale,
    /// The final count disagrees with the sales buyers claim.
    LostUpdate,
    /// A sale a buyer had recorded as done before a power cut that the store no longer
    /// shows after it.
    LostSale,
    /// Two buyers held the critical section at once.
    Overlap,
    /// The store did not parse inside the critical section or at the end.
    CorruptStore,
    /// The trial passed its timeout and was killed.
    Hang,
    /// Every live buyer waits on the lock and no holder is gone: seen under a
    /// controlled schedule, or by the harness in a free-running trial.
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
        FindingKind::LostSale,
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
            FindingKind::LostSale => "lost_sale",
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
///
/// [`Unsound`](crate::Unsound) carries them; [`check_sound`](crate::check_sound) shows where they come from.
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

/// `buyer 3` or `buyers 1, 2 and 3`.
fn buyers(who: &[u32]) -> String {
    if who.len() == 1 {
        format!("buyer {}", list(who))
    } else {
        format!("buyers {}", list(who))
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The exit status that says "gave up without buying" (EX_TEMPFAIL of `sysexits.h`): a
/// buyer that ends with it before any step of its own claims nothing and is no crash —
/// a lock command that could not take its lock and said so (`flock -n -E 75 …`).
pub const GAVE_UP: i32 = 75;

/// Who claims what: buyer -> (ticket, event); a buyer program run by --buyer-cmd names
/// no ticket. `settled` buyers recorded an outcome; `unknown` ones did not.
struct Claims {
    claims: BTreeMap<u32, (Option<i64>, usize)>,
    settled: Vec<bool>,
    unknown: Vec<u32>,
}

impl Claims {
    fn of(obs: &Observation<'_>) -> Claims {
        let mut claims = BTreeMap::new();
        let mut settled = vec![false; obs.buyers as usize];
        for (i, e) in obs.history.events.iter().enumerate() {
            let settles = match e.kind {
                EventKind::Bought => {
                    claims.insert(e.buyer, (e.num(), i));
                    true
                }
                EventKind::SoldOut => true,
                // It read nothing usable, wrote nothing and claims nothing: settled.
                EventKind::Error => matches!(e.value.as_deref(), Some("corrupt_read" | "fenced")),
                _ => false,
            };
            if let Some(s) = settled.get_mut(e.buyer as usize).filter(|_| settles) {
                *s = true;
            }
        }
        // A buyer that exited with [`GAVE_UP`] before any step of its own (its lock
        // command could not take the lock and said so, as `flock -n -E 75` does)
        // claims nothing.
        let h = obs.history;
        for (b, s) in settled.iter_mut().enumerate() {
            let quiet = h.of(b as u32).next().is_none();
            let gave_up = h.fates.get(b).is_some_and(|f| {
                !f.killed_by_fault && !f.killed_by_timeout && f.exit == Exit::Code(GAVE_UP)
            });
            if quiet && gave_up {
                *s = true;
            }
        }
        let unknown = (0..obs.buyers).filter(|&b| !settled[b as usize]).collect();
        Claims {
            claims,
            settled,
            unknown,
        }
    }

    fn definite(&self) -> i64 {
        self.claims.len() as i64
    }
}

impl Claims {
    /// Drops the claims of sales a power cut lost: the lost_sale finding tells of them,
    /// and every other invariant is judged as if they had not been made.
    fn without(&mut self, lost: &[Violation]) {
        for v in lost {
            if let Some(&b) = v.buyers.first() {
                self.claims.remove(&b);
            }
        }
    }
}

/// lost_sale: a sale recorded before the power cut (`bought`) whose ticket the store
/// shows unsold after it.
fn lost_sales(obs: &Observation<'_>) -> Vec<Violation> {
    let h = obs.history;
    let Some(cut) = &h.power_cut else {
        return Vec::new();
    };
    let Some(Contents::Count(left)) = &cut.store_after else {
        // A store the cut tore or removed shows nothing: corrupt_store tells of it.
        return Vec::new();
    };
    let disk = if cut.disk.is_empty() {
        String::new()
    } else {
        format!(" ({})", cut.disk.join("; "))
    };
    h.events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventKind::Bought && e.ns < cut.ns)
        .filter_map(|(i, e)| {
            let t = e.num()?;
            if *left < t {
                return None;
            }
            let again =
                h.events.iter().enumerate().find(|(_, r)| {
                    r.kind == EventKind::Bought && r.ns > cut.ns && r.num() == Some(t)
                });
            let resold = match again {
                Some((_, r)) => format!(", and buyer {} sold it again", r.buyer),
                None => String::new(),
            };
            let mut who = vec![e.buyer];
            let mut events = vec![i];
            if let Some((j, r)) = again {
                who.push(r.buyer);
                events.push(j);
            }
            Some(Violation {
                kind: FindingKind::LostSale,
                detail: format!(
                    "buyer {}'s sale of ticket {t} was confirmed at step {}; after the power \
                     cut at step {} the store shows it unsold ({left} left){resold}{disk}",
                    e.buyer,
                    cut.step_of(e.ns),
                    cut.step,
                ),
                buyers: who,
                events,
            })
        })
        .collect()
}

/// `; the power cut at step N left it torn (…)` when a power cut left the store torn.
fn torn_by_cut(h: &History) -> String {
    match &h.power_cut {
        Some(cut) if !matches!(cut.store_after, Some(Contents::Count(_))) => format!(
            "; the power cut at step {} left the store {}{}: a store that is not durable \
             (--store durable is) can be torn by one",
            cut.step,
            if cut.store_after.is_none() {
                "gone"
            } else {
                "torn"
            },
            if cut.disk.is_empty() {
                String::new()
            } else {
                format!(" ({})", cut.disk.join("; "))
            }
        ),
        _ => String::new(),
    }
}

/// A violation that names buyers but no events.
fn without_events(kind: FindingKind, detail: String, buyers: Vec<u32>) -> Violation {
    Violation {
        kind,
        detail,
        buyers,
        events: Vec::new(),
    }
}

fn oversold(obs: &Observation<'_>, c: &Claims) -> Option<Violation> {
    if c.definite() <= obs.tickets as i64 {
        return None;
    }
    let who: Vec<u32> = c.claims.keys().copied().collect();
    Some(Violation {
        kind: FindingKind::Oversold,
        detail: format!(
            "{} a sale; the store held {} ({})",
            plural(c.claims.len(), "buyer claims", "buyers claim"),
            obs.tickets,
            buyers(&who)
        ),
        buyers: who,
        events: c.claims.values().map(|&(_, e)| e).collect(),
    })
}

fn double_sales(c: &Claims) -> Vec<Violation> {
    let mut by_ticket: BTreeMap<i64, Vec<(u32, usize)>> = BTreeMap::new();
    for (&b, &(t, e)) in &c.claims {
        let Some(t) = t else { continue };
        by_ticket.entry(t).or_default().push((b, e));
    }
    by_ticket
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(t, holders)| {
            let who: Vec<u32> = holders.iter().map(|&(b, _)| b).collect();
            Violation {
                kind: FindingKind::DoubleSale,
                detail: format!(
                    "buyers {} {} claim ticket {t}",
                    list(&who),
                    if who.len() == 2 { "both" } else { "all" }
                ),
                buyers: who,
                events: holders.iter().map(|&(_, e)| e).collect(),
            }
        })
        .collect()
}

/// lost_update: definite <= initial - final <= definite + unknown.
fn lost_update(obs: &Observation<'_>, c: &Claims) -> Option<Violation> {
    let Some(Contents::Count(fin)) = obs.final_store else {
        return None;
    };
    let tickets = obs.tickets as i64;
    let sold = tickets - fin;
    let (definite, unknown) = (c.definite(), c.unknown.len());
    let (lo, hi) = (definite, definite + unknown as i64);
    if (lo..=hi).contains(&sold) {
        return None;
    }
    let expect = if unknown == 0 {
        format!("{tickets} − {definite} claimed = {}", tickets - definite)
    } else {
        format!(
            "between {} and {} ({definite} claimed, {unknown} unknown)",
            tickets - hi,
            tickets - lo,
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
    let h = obs.history;
    Some(Violation {
        kind: FindingKind::LostUpdate,
        detail: format!("the final count is {fin}, expected {expect}: {what}"),
        buyers: c.claims.keys().copied().collect(),
        events: (0..h.events.len())
            .filter(|&i| h.events[i].kind == EventKind::Wrote)
            .collect(),
    })
}

/// overlap: critical sections from `acquired` to `released` (or the buyer's last event).
fn overlap(obs: &Observation<'_>) -> Option<Violation> {
    let h = obs.history;
    // (from ns, to ns, buyer, from event, to event)
    let mut sections: Vec<(u64, u64, u32, usize, usize)> = (0..obs.buyers)
        .flat_map(|b| {
            h.held_spans(b).into_iter().filter_map(move |s| {
                let (from, to) = pause::effective(h, b, s.from, s.to)?;
                Some((from, to, b, s.from, s.to))
            })
        })
        .collect();
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
    let &(a, b, ev) = pairs.first()?;
    let frozen = pause::frozen_across(h, a, ev[0], ev[1], h.events[ev[2]].ns).unwrap_or_default();
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
    Some(Violation {
        kind: FindingKind::Overlap,
        detail: format!("buyers {a} and {b} held the critical section at once{more}{frozen}"),
        buyers: who,
        events: ev.to_vec(),
    })
}

/// corrupt_store: a torn read inside the critical section.
fn torn_reads(h: &History) -> Option<Violation> {
    let torn: Vec<(usize, u32)> = h
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventKind::Error && e.value.as_deref() == Some("corrupt_read"))
        .map(|(i, e)| (i, e.buyer))
        .collect();
    if torn.is_empty() {
        return None;
    }
    let who: Vec<u32> = torn.iter().map(|&(_, b)| b).collect();
    Some(Violation {
        kind: FindingKind::CorruptStore,
        detail: format!(
            "{} {} read a store that did not parse inside the critical section{}",
            if who.len() == 1 { "buyer" } else { "buyers" },
            list(&who),
            torn_by_cut(h),
        ),
        buyers: who,
        events: torn.iter().map(|&(i, _)| i).collect(),
    })
}

/// corrupt_store: a final store that does not parse, or is gone.
fn final_store(obs: &Observation<'_>) -> Option<Violation> {
    let h = obs.history;
    let what = match obs.final_store {
        Some(Contents::Count(_)) => return None,
        None => {
            return Some(without_events(
                FindingKind::CorruptStore,
                format!(
                    "the store file is gone at the end of the trial{}",
                    torn_by_cut(h)
                ),
                Vec::new(),
            ))
        }
        Some(Contents::Corrupt(what)) => what,
    };
    // A writer killed between truncate and write leaves the torn file behind.
    let torn_by: Vec<(u32, usize)> = (0..obs.buyers)
        .filter(|&b| h.fates.get(b as usize).is_some_and(|f| f.killed_by_fault))
        .filter_map(|b| {
            let (i, e) = h.events.iter().enumerate().rfind(|(_, e)| e.buyer == b)?;
            (e.kind == EventKind::Truncated).then_some((b, i))
        })
        .collect();
    let cut = torn_by_cut(h);
    let why = match torn_by.first() {
        Some(&(b, _)) => format!(
            "; buyer {b} (pid {}) was killed between truncate and write, and a lock does \
             not make a write crash-safe (--store atomic does)",
            pid(h, b)
        ),
        None => String::new(),
    };
    Some(Violation {
        kind: FindingKind::CorruptStore,
        detail: format!("the final store does not parse: {what}{why}{cut}"),
        buyers: torn_by.iter().map(|&(b, _)| b).collect(),
        events: torn_by.iter().map(|&(_, i)| i).collect(),
    })
}

fn leaked(obs: &Observation<'_>) -> Option<Violation> {
    obs.leaked.then(|| {
        without_events(
            FindingKind::LeakedProcess,
            "a process of the trial was still running after every buyer was reaped".into(),
            Vec::new(),
        )
    })
}

/// Checks every invariant and returns what is broken (empty: the trial is clean), in
/// the order of [`FindingKind`] (stable within a kind).
pub fn check(obs: &Observation<'_>) -> Vec<Violation> {
    let mut c = Claims::of(obs);
    let lost = lost_sales(obs);
    c.without(&lost);
    let mut out: Vec<Violation> = lost;
    out.extend(oversold(obs, &c));
    out.extend(double_sales(&c));
    out.extend(lost_update(obs, &c));
    out.extend(overlap(obs));
    out.extend(torn_reads(obs.history));
    out.extend(final_store(obs));
    out.extend(stuck(obs, &c));
    out.extend(crashes(obs, &c));
    out.extend(leaked(obs));
    out.sort_by_key(|v| v.kind);
    // A finding after an injected error names the call that failed: what the program did
    // with that failure is the story.
    for i in &obs.history.injected {
        let note = format!(
            "; injected: buyer {}'s `{}` failed with {} (step {})",
            i.buyer, i.call, i.errno, i.step
        );
        for v in &mut out {
            v.detail.push_str(&note);
        }
    }
    // Likewise whose clock ran fast or slow, or jumped.
    if !obs.history.clocks.is_empty() {
        let note = format!("; clocks: {}", obs.history.clocks.join("; "));
        for v in &mut out {
            v.detail.push_str(&note);
        }
    }
    out
}
