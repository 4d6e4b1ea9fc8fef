//! The value parsers behind the options: each names what it accepts when it refuses. The
//! bounds are [`crate::limits`]'s, the same that token decoding enforces.

use crate::limits::{
    MAX_ATTEMPTS, MAX_BUDGET_SECS, MAX_BUYERS, MAX_DEPTH, MAX_JITTER_MS, MAX_PREEMPTIONS,
    MAX_TICKETS, MAX_TIMEOUT_MS, MAX_TRIALS, MIN_BUYERS, MIN_DEPTH, MIN_TIMEOUT_MS,
};
use crate::lock::LockKind;
use crate::scenario::{Faults, Span};

pub(super) fn parse_lock(s: &str) -> Result<LockKind, String> {
    LockKind::parse(s)
        .filter(|k| LockKind::ALL.contains(k))
        .ok_or_else(|| format!("unknown lock; accepted: {}", LockKind::names()))
}

pub(super) fn parse_buyers(s: &str) -> Result<Span, String> {
    let range = format!("{MIN_BUYERS} to {MAX_BUYERS}");
    let span = Span::parse(s).map_err(|e| format!("{e}; accepted: N or A..B, {range}"))?;
    if span.lo < MIN_BUYERS || span.hi > MAX_BUYERS {
        return Err(format!(
            "buyers must be {range}; accepted: N or A..B, {range}"
        ));
    }
    Ok(span)
}

pub(super) fn parse_tickets(s: &str) -> Result<Span, String> {
    let span =
        Span::parse(s).map_err(|e| format!("{e}; accepted: N or A..B, 0 to {MAX_TICKETS}"))?;
    if span.hi > MAX_TICKETS {
        return Err(format!(
            "tickets must be 0 to {MAX_TICKETS}; accepted: N or A..B"
        ));
    }
    Ok(span)
}

fn whole(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("accepted: a whole number from {lo} to {hi}")),
    }
}

pub(super) fn parse_count(s: &str) -> Result<u64, String> {
    whole(s, 1, MAX_TRIALS)
}

pub(super) fn parse_seed(s: &str) -> Result<u64, String> {
    whole(s, 0, u64::MAX)
}

pub(super) fn parse_timeout(s: &str) -> Result<u64, String> {
    whole(s, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
}

pub(super) fn parse_depth(s: &str) -> Result<u32, String> {
    whole(s, MIN_DEPTH.into(), MAX_DEPTH.into()).map(|n| n as u32)
}

pub(super) fn parse_preemptions(s: &str) -> Result<u32, String> {
    if s.trim() == "unbounded" {
        return Ok(crate::schedule::UNBOUNDED);
    }
    whole(s, 0, MAX_PREEMPTIONS.into())
        .map(|n| n as u32)
        .map_err(|e| format!("{e}, or unbounded"))
}

pub(super) fn parse_attempts(s: &str) -> Result<u32, String> {
    whole(s, 1, MAX_ATTEMPTS.into()).map(|n| n as u32)
}

pub(super) fn parse_jobs(s: &str) -> Result<usize, String> {
    whole(s, 1, crate::limits::MAX_JOBS).map(|n| n as usize)
}

pub(super) fn parse_budget(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_BUDGET_SECS => Ok(v),
        _ => Err("accepted: seconds above 0, e.g. 5 or 0.5".into()),
    }
}

pub(super) fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    const ACCEPTED: &str = "accepted: K/N with 1 ≤ K ≤ N, e.g. 2/3";
    let (k, n) = s.split_once('/').ok_or(ACCEPTED)?;
    match (k.trim().parse::<u64>(), n.trim().parse::<u64>()) {
        (Ok(k), Ok(n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => Err(ACCEPTED.into()),
    }
}

pub(super) fn parse_faults(s: &str) -> Result<Faults, String> {
    Faults::parse(s)
}

pub(super) fn parse_jitter(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(ms) if (0.0..=MAX_JITTER_MS as f64).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "accepted: milliseconds from 0 to {MAX_JITTER_MS}, e.g. 5 or 0.5"
        )),
    }
}
