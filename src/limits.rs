//! The one set of limits on what a trial may ask for.
//!
//! The command line and token decoding both check against these constants, so a trial
//! that `explore` would refuse cannot come in through `replay` or `gate` either. A value
//! past a limit is refused with one line naming the value and the accepted range, before
//! anything is allocated or run.

/// Fewest buyers in a trial.
pub const MIN_BUYERS: u32 = 1;
/// Most buyers in a trial.
pub const MAX_BUYERS: u32 = 256;
/// Most tickets the store may hold at the start (0 is allowed).
pub const MAX_TICKETS: u32 = 1_000_000;
/// Most jitter a buyer may sleep between read and write, in milliseconds.
pub const MAX_JITTER_MS: u64 = 10_000;
/// [`MAX_JITTER_MS`] in microseconds, as trials and tokens carry it.
pub const MAX_JITTER_US: u64 = MAX_JITTER_MS * 1000;
/// Longest a stop fault may keep a buyer stopped, in milliseconds.
pub const MAX_STOP_MS: u32 = 60_000;
/// Fault probabilities are carried in thousandths: 0 to this.
pub const PROBABILITY_SCALE: u32 = 1000;
/// Most steps a token's step list may hold (after its runs are expanded).
pub const MAX_STEPS: usize = 1_000_000;
/// The most disk states a search tries for one power cut (a token's `cK`, K below it);
/// a cut that could leave more runs the one its seed draws.
pub const MAX_CRASH_OUTCOMES: u32 = 64;
/// The preemption bound that means none (`--preemptions unbounded`).
pub const UNBOUNDED: u32 = u32::MAX;
/// Smallest PCT depth.
pub const MIN_DEPTH: u32 = 1;
/// Largest PCT depth.
pub const MAX_DEPTH: u32 = 10;
/// Largest preemption bound of the exhaustive search.
pub const MAX_PREEMPTIONS: u32 = 10;
/// Shortest per-trial (or per-step) timeout, in milliseconds.
pub const MIN_TIMEOUT_MS: u64 = 1;
/// Longest per-trial (or per-step) timeout, in milliseconds: one day.
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Most trials one run may ask for.
pub const MAX_TRIALS: u64 = 100_000_000;
/// Most attempts of one replay or gate entry.
pub const MAX_ATTEMPTS: u32 = 1_000_000;
/// Longest time budget of a run, in seconds: thirty days.
pub const MAX_BUDGET_SECS: f64 = 30.0 * 86_400.0;
/// Longest user command (`--lock-cmd`, `--buyer-cmd`) a token may carry, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Most jobs (`--jobs`) one run may ask for.
pub const MAX_JOBS: u64 = 256;
/// Largest checkpoint file read, in bytes.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// Most parts one shape's search may be split into, as a checkpoint names them.
pub const MAX_CHECKPOINT_PARTS: u64 = 1 << 24;

/// `Ok(n)` when `n` is a buyer count in range, else a sentence saying what is accepted.
pub fn buyers(n: u64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if (MIN_BUYERS..=MAX_BUYERS).contains(&n) => Ok(n),
        Ok(0) => Err(format!(
            "it has no buyers; accepted: {MIN_BUYERS} to {MAX_BUYERS}"
        )),
        _ => Err(format!(
            "{n} buyers is out of range; accepted: {MIN_BUYERS} to {MAX_BUYERS}"
        )),
    }
}

/// `Ok(n)` when `n` is a ticket count in range.
pub fn tickets(n: u64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if n <= MAX_TICKETS => Ok(n),
        _ => Err(format!(
            "{n} tickets is out of range; accepted: 0 to {MAX_TICKETS}"
        )),
    }
}

/// `Ok(us)` when `us` microseconds of jitter are in range.
pub fn jitter_us(us: u64) -> Result<u64, String> {
    if us <= MAX_JITTER_US {
        Ok(us)
    } else {
        Err(format!(
            "a jitter of {us} µs is out of range; accepted: 0 to {MAX_JITTER_US} µs ({MAX_JITTER_MS} ms)"
        ))
    }
}

/// The fastest a skewed clock may run against the trial's (`skew=P:RATE`); the slowest
/// is one thousandth.
pub const MAX_SKEW_RATE: u32 = 1000;

/// The furthest a wall clock may jump (`jump=P:±MS`): a day.
pub const MAX_JUMP_MS: i32 = 86_400_000;

/// `Ok(t)` when a skewed clock's rate of `t` thousandths is in range (above 0, at most
/// [`MAX_SKEW_RATE`]).
pub fn skew_rate(thousandths: i64) -> Result<u32, String> {
    match u32::try_from(thousandths) {
        Ok(t) if (1..=MAX_SKEW_RATE * 1000).contains(&t) => Ok(t),
        _ => Err(format!(
            "a clock rate of {} is out of range (0.001 to {MAX_SKEW_RATE})",
            thousandths as f64 / 1000.0
        )),
    }
}

/// A rate in thousandths (a rate parsed by [`skew_rate`] already).
pub fn rate_thousandths(rate: f64) -> u32 {
    (rate * 1000.0)
        .round()
        .clamp(1.0, (MAX_SKEW_RATE * 1000) as f64) as u32
}

/// `Ok(ms)` when a wall clock's jump of `ms` milliseconds is in range.
pub fn jump_ms(ms: i64) -> Result<i32, String> {
    match i32::try_from(ms) {
        Ok(ms) if ms.abs() <= MAX_JUMP_MS => Ok(ms),
        _ => Err(format!(
            "a jump of {ms} ms is out of range (-{MAX_JUMP_MS} to {MAX_JUMP_MS} ms)"
        )),
    }
}

/// `Ok(ms)` when a stop of `ms` milliseconds is in range.
pub fn stop_ms(ms: u64) -> Result<u32, String> {
    match u32::try_from(ms) {
        Ok(ms) if ms <= MAX_STOP_MS => Ok(ms),
        _ => Err(format!(
            "a stop of {ms} ms is out of range; accepted: 0 to {MAX_STOP_MS} ms"
        )),
    }
}

/// The probability `thousandths` / 1000, when it is at most 1.
pub fn probability(thousandths: u64) -> Result<f64, String> {
    if thousandths <= PROBABILITY_SCALE as u64 {
        Ok(thousandths as f64 / PROBABILITY_SCALE as f64)
    } else {
        Err(format!(
            "a probability of {thousandths}/{PROBABILITY_SCALE} is out of range; accepted: 0 to {PROBABILITY_SCALE} thousandths (0 to 1)"
        ))
    }
}

/// `Ok(d)` when `d` is a PCT depth in range.
pub fn depth(d: u64) -> Result<u32, String> {
    match u32::try_from(d) {
        Ok(d) if (MIN_DEPTH..=MAX_DEPTH).contains(&d) => Ok(d),
        _ => Err(format!(
            "a PCT depth of {d} is out of range; accepted: {MIN_DEPTH} to {MAX_DEPTH}"
        )),
    }
}

/// `Ok(p)` when `p` is a preemption bound in range.
pub fn preemptions(p: u64) -> Result<u32, String> {
    match u32::try_from(p) {
        Ok(p) if p <= MAX_PREEMPTIONS => Ok(p),
        _ => Err(format!(
            "a preemption bound of {p} is out of range; accepted: 0 to {MAX_PREEMPTIONS}"
        )),
    }
}

/// `Ok(())` when a step list of `n` steps is in range (checked before it is expanded).
pub fn steps(n: u64) -> Result<(), String> {
    if n <= MAX_STEPS as u64 {
        Ok(())
    } else {
        Err(format!(
            "a step list of {n} steps is too long; accepted: at most {MAX_STEPS} steps"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_inclusive() {
        assert_eq!(buyers(1), Ok(1));
        assert_eq!(buyers(256), Ok(256));
        assert!(buyers(0).is_err() && buyers(257).is_err() && buyers(u64::MAX).is_err());
        assert_eq!(tickets(0), Ok(0));
        assert!(tickets(1_000_001).is_err());
        assert_eq!(jitter_us(MAX_JITTER_US), Ok(MAX_JITTER_US));
        assert!(jitter_us(MAX_JITTER_US + 1).is_err());
        assert_eq!(stop_ms(60_000), Ok(60_000));
        assert!(stop_ms(1_000_000_000).is_err());
        assert_eq!(probability(1000), Ok(1.0));
        assert_eq!(probability(250), Ok(0.25));
        assert!(probability(7000).is_err());
        assert!(depth(0).is_err() && depth(11).is_err() && depth(3).is_ok());
        assert!(preemptions(11).is_err() && preemptions(0).is_ok());
        assert!(steps(1_000_000).is_ok() && steps(1_000_000_000_000).is_err());
    }

    #[test]
    fn errors_name_the_value_and_the_range() {
        let e = stop_ms(1_000_000_000).expect_err("too long");
        assert!(e.contains("1000000000") && e.contains("60000"), "{e}");
        let e = probability(7000).expect_err("above one");
        assert!(e.contains("7000") && e.contains("0 to 1"), "{e}");
    }
}
