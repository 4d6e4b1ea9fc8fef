//! The [`Report`] of a run, and its renderings: JSON (stable fields, see docs/ARCHITECTURE.md)
//! and plain text. Rendering returns strings; only `cli` prints or writes them.

pub mod junit;
pub mod merge;
pub mod timeline;

use crate::check::{FindingKind, Violation};
use serde::{Deserialize, Serialize};

/// One finding: a broken invariant in one trial, with the token that reproduces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of finding.
    pub kind: FindingKind,
    /// The trial's index in the run.
    pub trial: u64,
    /// Buyers in that trial.
    pub buyers: u32,
    /// Tickets in that trial.
    pub tickets: u32,
    /// A sentence naming the buyers and values involved.
    pub detail: String,
    /// The token that decodes to the trial.
    pub token: String,
    /// The command that re-runs it.
    pub replay: String,
    /// Why it happened: the racing pair of steps (controlled trials), or the command that
    /// would show it (free-running ones). Absent when nobody asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
}

/// Why a finding happened: the two conflicting steps whose order makes it, found by
/// running the trial again with them swapped and everything else kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Why {
    /// The racing pair, in the order the failing run took them (empty when no single
    /// swap cleared the finding, or the trial was free-running).
    pub pair: Vec<WhyStep>,
    /// When no single swap cleared it: the smallest set of swaps found that did, each as
    /// the two step numbers (empty when none did or one did).
    pub swaps: Vec<[usize; 2]>,
    /// The explanation in the user's terms, one paragraph.
    pub story: String,
    /// The token of the run with the pair swapped, where the finding is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped_token: Option<String>,
    /// The kinds of finding that run still showed (empty: it was clean). Never the kind
    /// explained, and never a kind the original run did not show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remains: Vec<String>,
    /// Reordered runs tried to find it.
    pub tried: usize,
}

/// One step of a racing pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhyStep {
    /// Its number in the run, counted from 1 (the token's steps, in order).
    pub step: usize,
    /// The buyer that took it.
    pub buyer: u32,
    /// What it did, e.g. `read count=1` or `openat lock (O_CREAT) → 3`.
    pub what: String,
}

impl Finding {
    /// A finding from one violation of trial `trial`, with the token that rebuilds it and
    /// the command that replays that token. `Trial::findings` builds them all for a trial,
    /// with a token that records what was found.
    pub fn new(
        v: &Violation,
        trial: u64,
        (buyers, tickets): (u32, u32),
        token: &str,
        replay: &str,
    ) -> Finding {
        Finding {
            kind: v.kind,
            trial,
            buyers,
            tickets,
            detail: v.detail.clone(),
            token: token.to_string(),
            replay: replay.to_string(),
            why: None,
        }
    }

    /// The command that replays another token of the same trial (say the clean run a
    /// racing pair's swap made): this finding's command with the token replaced.
    pub fn replay_of(&self, token: &str) -> String {
        self.replay.replace(&self.token, token)
    }
}

/// The result of an `explore` run.
///
/// A run's findings, each of a [`FindingKind`](crate::FindingKind); the README's tour shows one as text and as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// oversell's version.
    pub version: String,
    /// The lock under test.
    pub lock: String,
    /// The schedule strategy.
    pub schedule: String,
    /// The run's seed.
    pub seed: u64,
    /// Trials that ran.
    pub trials_run: u64,
    /// Trials with at least one finding.
    pub trials_failed: u64,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// Every finding, in trial order.
    pub findings: Vec<Finding>,
    /// Under `exhaustive`: each trial shape whose every schedule ran clean.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<Verified>,
    /// Set when SIGINT or SIGTERM stopped the run early: the signal's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<i32>,
    /// `K/N` when the run was one shard of N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Set when the run stopped at its first failing trial (`--keep-going` runs them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<StoppedEarly>,
    /// Trials that stalled under a controlled schedule (a buyer that did not reach its
    /// next step before the timeout) and ran on when their steps were run again: neither
    /// a finding nor clean, so the run is not verified. One line each, naming the trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<String>,
    /// Effects no step orders that the trials of a run other than a search met (`buyer
    /// 1 waits in flock lock with a timer armed …`), each once: what no trial's schedule
    /// covered, so the run is not verified. A search says the same in its
    /// `unordered`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<String>,
}

/// The most effects a report's [`Report::unseen`] lists.
pub const MAX_UNSEEN: usize = 16;

/// Where a run that stops at its first failing trial stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedEarly {
    /// Trials run, the failing one included.
    pub after: u64,
    /// Trials the run was given (`None`: no fixed number).
    pub of: Option<u64>,
}

/// What a search that met a power cut with more than one disk outcome says (each cut
/// ran the outcome its seed drew).
pub const POWER_CUT_SEEDED: &str =
    "a power cut could leave the store's files more than one way, and each cut ran only \
     the way the trial's seed drew";

/// What a trial says that stalled under a controlled schedule (a buyer that did not
/// reach its next step before the timeout) but ran on when its steps were run again: the
/// wall clock, not the lock, decided it.
pub const STALL_UNREPEATED: &str =
    "a trial stalled (a buyer did not reach its next step before the timeout) and did not \
     stall when its steps were run again";

/// A trial shape verified clean over every schedule within a preemption bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// Buyers in the trial.
    pub buyers: u32,
    /// Tickets in the trial.
    pub tickets: u32,
    /// The preemption bound.
    pub preemptions: u32,
    /// How many schedules ran.
    pub schedules: u64,
    /// Under partial-order reduction: the distinct executions (classes of schedules that
    /// differ only in the order of independent steps) those schedules covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executions: Option<u64>,
    /// The yield points the schedules stepped between: `step` (oversell's own) or
    /// `system-call`.
    #[serde(default)]
    pub granularity: String,
    /// False when a search met effects no step orders ([`Verified::unordered`]): every
    /// schedule ran clean, but that does not prove the lock.
    #[serde(default = "yes")]
    pub verified: bool,
    /// The effects no step ordered, each naming its buyer and what it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unordered: Vec<String>,
    /// Not searched: the same as the shape with this many tickets (with at least as many
    /// tickets as buyers every buyer takes the same steps, and every count is written
    /// with as many digits), which was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<u32>,
    /// A crash fault: a power cut was one more choice at every step (and none), so the
    /// schedules cover every step it can fall at.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub power_cut: bool,
}

fn yes() -> bool {
    true
}

impl Verified {
    /// The line `explore` prints.
    pub fn line(&self) -> String {
        let bound = if self.preemptions == u32::MAX {
            "any number of preemptions".to_string()
        } else {
            format!("≤ {}", count(self.preemptions, "preemption"))
        };
        if !self.verified && self.unordered.iter().any(|u| u == POWER_CUT_SEEDED) {
            return format!(
                "not verified: {POWER_CUT_SEEDED} (the store is not durable); {} searched \
                 ({} of {}, {}, {bound}, a power cut at every step and none), no finding",
                count(self.executions.unwrap_or(self.schedules), "execution"),
                count(self.schedules, "schedule"),
                count(self.buyers, "buyer"),
                count(self.tickets, "ticket"),
            );
        }
        if !self.verified && self.unordered.iter().any(|u| u == STALL_UNREPEATED) {
            return format!(
                "not verified: {STALL_UNREPEATED}: the schedules past that stall were not \
                 run (a machine too loaded for the timeout, or a wait oversell does not \
                 see); {} searched ({} of {}, {}, {bound}), no finding",
                count(self.executions.unwrap_or(self.schedules), "execution"),
                count(self.schedules, "schedule"),
                count(self.buyers, "buyer"),
                count(self.tickets, "ticket"),
            );
        }
        if !self.verified {
            let why = match self.unordered.as_slice() {
                [one] => one.clone(),
                [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
                [] => "an effect no step orders".to_string(),
            };
            return format!(
                "not verified: {why}: an effect no step oversell orders, so the search \
                 never took that path; {} searched ({} of {}, {}, {bound}), no finding",
                count(self.executions.unwrap_or(self.schedules), "execution"),
                count(self.schedules, "schedule"),
                count(self.buyers, "buyer"),
                count(self.tickets, "ticket"),
            );
        }
        if let Some(t0) = self.same_as {
            return format!(
                "verified: {}, {}, {bound}: the same schedules as {}, {} (with at least as \
                 many tickets as buyers every buyer finds one, and every count has as many \
                 digits), searched once",
                count(self.buyers, "buyer"),
                count(self.tickets, "ticket"),
                count(self.buyers, "buyer"),
                count(t0, "ticket"),
            );
        }
        let at = match self.granularity.as_str() {
            "" => String::new(),
            // A poll (a sleep, or a look or try repeated with nothing changed) is put off
            // once repeated: a loop that counts its polls is searched only so far.
            "system-call" => ", at system-call granularity, a poll repeated at most twice \
                              while nothing changed"
                .to_string(),
            g => format!(", at {g} granularity"),
        };
        let at = if self.power_cut {
            format!(
                "{at}, a power cut at every step and none, each leaving the store's files \
                 in every state it could"
            )
        } else {
            at
        };
        if let Some(n) = self.executions {
            return format!(
                "verified: all executions up to reordering of independent steps ({n} counted part by part, {} run) of {}, {}, {bound}{at}",
                count(self.schedules, "schedule"),
                count(self.buyers, "buyer"),
                count(self.tickets, "ticket"),
            );
        }
        format!(
            "verified: all {} of {}, {}, {bound}{at}",
            count(self.schedules, "schedule"),
            count(self.buyers, "buyer"),
            count(self.tickets, "ticket"),
        )
    }
}

impl Report {
    /// An empty report for a run about to start.
    pub fn new(lock: &str, schedule: &str, seed: u64) -> Report {
        Report {
            version: env!("CARGO_PKG_VERSION").to_string(),
            lock: lock.to_string(),
            schedule: schedule.to_string(),
            seed,
            trials_run: 0,
            trials_failed: 0,
            elapsed_ms: 0,
            findings: Vec::new(),
            verified: Vec::new(),
            interrupted: None,
            shard: None,
            stopped_early: None,
            unconfirmed: Vec::new(),
            unseen: Vec::new(),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The closing summary line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}, {} failed, {} in {:.1} s (lock {}, schedule {}, seed {})",
            count(self.trials_run, "trial"),
            self.trials_failed,
            count(self.findings.len() as u64, "finding"),
            self.elapsed_ms as f64 / 1000.0,
            self.lock,
            self.schedule,
            self.seed
        );
        if let Some(stop) = self.stopped_early {
            // A count, not an index: findings name trials from 0, this says how many ran.
            let ran = match stop.of {
                Some(n) => format!("{} of {n} trials", stop.after),
                None => count(stop.after, "trial"),
            };
            s.push_str(&format!(
                "; stopped at the first finding, after {ran}; --keep-going runs them all"
            ));
        }
        s
    }
}

/// `n thing` or `n things` (`entry`: `entries`).
pub fn count(n: impl Into<u64>, thing: &str) -> String {
    let n = n.into();
    match thing.strip_suffix('y') {
        _ if n == 1 => format!("1 {thing}"),
        Some(stem) => format!("{n} {stem}ies"),
        None => format!("{n} {thing}s"),
    }
}

/// The text block for one failing trial: its first finding, the others, and the replay.
pub fn trial_text(findings: &[Finding]) -> String {
    let Some(first) = findings.first() else {
        return String::new();
    };
    let mut s = format!(
        "finding in trial {} ({}, {}): {}: {}\n",
        first.trial,
        count(first.buyers, "buyer"),
        count(first.tickets, "ticket"),
        first.kind,
        first.detail
    );
    for f in &findings[1..] {
        s.push_str(&format!("  also {}: {}\n", f.kind, f.detail));
    }
    if let Some(why) = &first.why {
        s.push_str(&format!("  why: {}\n", why.story));
        if let Some(t) = &why.swapped_token {
            s.push_str(&format!("  swapped: {}\n", first.replay_of(t)));
        }
    }
    s.push_str(&format!("  replay: {}\n", first.replay));
    s
}
