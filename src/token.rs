//! The token: a short, shell-safe string that decodes to one [`Trial`].
//!
//! ## Format (version `ov1`)
//!
//! Dot-separated fields; the first is `ov1`, the second the lock's name, and each
//! other field starts with one letter naming it:
//!
//! | field | meaning | required |
//! |-------|---------|----------|
//! | `bN` | buyers, 1 to [`MAX_BUYERS`](crate::limits::MAX_BUYERS) | yes |
//! | `tN` | tickets, 0 to [`MAX_TICKETS`](crate::limits::MAX_TICKETS) | yes |
//! | `jN` | most jitter, µs, 0 to [`MAX_JITTER_US`](crate::limits::MAX_JITTER_US) | yes |
//! | `rHEX` | the seed, hexadecimal | yes |
//! | `sNAME` | schedule: `jitter`, `barrier`, `random`, `pctD`, `exhaustiveP` | yes |
//! | `a` | the store is written atomically | no |
//! | `d` | the store is written durably (atomically, then the directory fsynced) | no |
//! | `kN` | kill probability, thousandths (0 to 1000) | no |
//! | `xN-MS` | stop probability (thousandths) and milliseconds | no |
//! | `zN` | power-cut probability, thousandths (1 to 1000) | no |
//! | `qN-RATE` | skew probability (thousandths) and the clock's rate, thousandths | no |
//! | `yN-MS` | jump probability (thousandths) and the wall clock's step, ms (`-` back) | no |
//! | `LHEX`, `BHEX` | a user's lock command or buyer program, hex of its bytes | no |
//! | `pRUNS` | steps of a controlled schedule: `B` or `BxN` runs joined by `-`; `c` is a power cut leaving the disk as the seed draws, `cK` one leaving it in its `K`th possible state | no |
//! | `fKINDS` | the finding kinds the trial showed, joined by `+` | no |
//! | `cHEX` | the checksum: always the last field, 6 hex digits (below) | yes |
//!
//! The checksum is the top 24 bits of the 64-bit FNV-1a hash of every byte before it
//! (the token up to, not including, the `.` in front of `c`), as 6 lowercase hex
//! digits. A token whose checksum is missing or does not match is refused before any
//! other field is read: a character changed or a token cut short when it was copied
//! never replays as some other trial. Every field appears at most once. The steps may number at most
//! [`MAX_STEPS`](crate::limits::MAX_STEPS) and are counted before they are expanded.
//! Every per-buyer choice is drawn from the seed, so the generator and its salts
//! (`rng::salt`) are part of the format too.

use crate::check::FindingKind;
use crate::limits;
use crate::scenario::{Schedule, Target, Trial};
use crate::store::StoreMode;
use crate::vocab::LockKind;
use std::collections::BTreeMap;
use std::fmt;

/// The version prefix of every token this format writes.
pub const PREFIX: &str = "ov1";

/// A whole token, shown when one is refused: three buyers, one ticket, no lock.
pub const EXAMPLE: &str = "ov1.none.b3.t1.j5000.r2a.sjitter.c5b03a9";

/// How many hex digits the checksum field has.
const CHECK_DIGITS: usize = 6;

/// A token that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The token as given.
    pub token: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad token '{}': {} (tokens look like {EXAMPLE})",
            self.token, self.why
        )
    }
}

impl std::error::Error for TokenError {}

/// The 64-bit FNV-1a hash of `bytes`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The checksum of a token's `body` (everything before its `.c` field): the hash's top
/// bits, which every byte of the body has stirred.
fn checksum(body: &str) -> String {
    let bits = 4 * CHECK_DIGITS as u32;
    format!(
        "{:0width$x}",
        fnv1a64(body.as_bytes()) >> (64 - bits),
        width = CHECK_DIGITS
    )
}

/// `body` with its checksum field appended.
fn sign(body: &str) -> String {
    format!("{body}.c{}", checksum(body))
}

/// The token's body (everything before its checksum field) when the checksum is there
/// and matches it.
fn verified(token: &str) -> Result<&str, String> {
    const COPY: &str = "copy it whole from the report";
    let missing = || {
        format!(
            "it has no checksum (its last field, c and {CHECK_DIGITS} hex digits): the token \
             was cut, or was not printed by this version of oversell; {COPY}"
        )
    };
    let (body, last) = token.rsplit_once('.').ok_or_else(missing)?;
    let sum = last.strip_prefix('c').ok_or_else(missing)?;
    if sum != checksum(body) {
        return Err(format!(
            "its checksum does not match: a character was changed or the token was cut; {COPY}"
        ));
    }
    Ok(body)
}

/// The step of a schedule at which the power is cut, the disk left as the trial's seed
/// draws (written `c` in a token's steps).
pub const CRASH_CHOICE: u32 = u32::MAX;

/// The step at which the power is cut, the disk left in its `k`th possible state
/// (written `cK`): what a search runs, each state in turn.
pub fn crash_in_state(k: u32) -> u32 {
    CRASH_CHOICE - 1 - k
}

/// True when a step of a schedule is a power cut ([`CRASH_CHOICE`] or
/// [`crash_in_state`]).
pub fn is_crash(choice: u32) -> bool {
    choice >= CRASH_CHOICE - limits::MAX_CRASH_OUTCOMES
}

/// The disk state a power cut step names: `None` for the seed's.
pub fn crash_state(choice: u32) -> Option<u32> {
    (is_crash(choice) && choice != CRASH_CHOICE).then(|| CRASH_CHOICE - 1 - choice)
}

/// Encodes a controlled schedule (the buyer chosen at each step) as runs: `0x3-1x2`; a
/// power cut is `c`.
pub fn encode_choices(choices: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &c in choices {
        match runs.last_mut() {
            Some((b, n)) if *b == c => *n += 1,
            _ => runs.push((c, 1)),
        }
    }
    runs.iter()
        .map(|(b, n)| {
            if is_crash(*b) {
                let one = match crash_state(*b) {
                    Some(k) => format!("c{k}"),
                    None => "c".to_string(),
                };
                vec![one; *n as usize].join("-")
            } else if *n == 1 {
                b.to_string()
            } else {
                format!("{b}x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The runs of a step list, `(buyer, how many)`, with their total checked against
/// [`limits::MAX_STEPS`] before anything is expanded.
fn runs(s: &str) -> Result<Vec<(u32, usize)>, String> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    let mut total: u64 = 0;
    for run in s.split('-') {
        let bad = || format!("'{run}' is not a step run (B or BxN)");
        if let Some(k) = run.strip_prefix('c') {
            let choice = match k {
                "" => CRASH_CHOICE,
                _ => match k.parse::<u32>() {
                    // Canonical digits only: one token per trial.
                    Ok(n) if n < limits::MAX_CRASH_OUTCOMES && n.to_string() == k => {
                        crash_in_state(n)
                    }
                    _ => {
                        return Err(format!(
                            "'{run}' is not a power cut (c, or cK with K below {})",
                            limits::MAX_CRASH_OUTCOMES
                        ))
                    }
                },
            };
            total = total.saturating_add(1);
            limits::steps(total)?;
            out.push((choice, 1));
            continue;
        }
        let (b, n) = run.split_once('x').unwrap_or((run, "1"));
        let b = b.parse::<u32>().map_err(|_| bad())?;
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        // A count too big for u64 is too many steps as surely as one that fits.
        let n = n.parse::<u64>().map_err(|_| {
            format!(
                "'{run}' asks for more steps than a token may hold; accepted: at most {} steps",
                limits::MAX_STEPS
            )
        })?;
        if n == 0 {
            return Err(format!("'{run}' repeats a step 0 times"));
        }
        total = total.saturating_add(n);
        limits::steps(total)?;
        out.push((b, n as usize));
    }
    Ok(out)
}

/// Decodes [`encode_choices`]' runs (`None`: not a step list, or longer than
/// [`limits::MAX_STEPS`]).
#[cfg(test)]
fn decode_choices(s: &str) -> Option<Vec<u32>> {
    let runs = runs(s).ok()?;
    Some(expand(&runs))
}

fn expand(runs: &[(u32, usize)]) -> Vec<u32> {
    let mut out = Vec::with_capacity(runs.iter().map(|&(_, n)| n).sum());
    for &(b, n) in runs {
        out.extend(std::iter::repeat_n(b, n));
    }
    out
}

fn schedule_part(s: &Schedule) -> String {
    match s {
        Schedule::Pct { depth } => format!("pct{depth}"),
        Schedule::Exhaustive {
            preemptions: crate::limits::UNBOUNDED,
        } => "exhaustiveu".to_string(),
        Schedule::Exhaustive { preemptions } => format!("exhaustive{preemptions}"),
        other => other.name().to_string(),
    }
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    let num = |p: &str| {
        s.strip_prefix(p)
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("'{s}' does not end in a number"))
    };
    Ok(match s {
        "jitter" => Schedule::Jitter,
        "barrier" => Schedule::Barrier,
        "random" => Schedule::Random,
        _ if s.starts_with("pct") => Schedule::Pct {
            depth: limits::depth(num("pct")?)?,
        },
        "exhaustiveu" => Schedule::Exhaustive {
            preemptions: crate::limits::UNBOUNDED,
        },
        _ if s.starts_with("exhaustive") => Schedule::Exhaustive {
            preemptions: limits::preemptions(num("exhaustive")?)?,
        },
        _ => {
            return Err(format!(
                "unknown schedule '{s}'; accepted: jitter, barrier, random, pctD, exhaustiveP"
            ))
        }
    })
}

/// A command's token part: its tag, then the hex of its bytes.
fn command_part(tag: char, text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{tag}{hex}")
}

/// The text of a command part's hex, bounded as the command line bounds a command.
fn parse_command(tag: &str, hex: &str) -> Result<String, String> {
    let bad = || format!("'{tag}…' is not a command (hex of its bytes)");
    if !hex.len().is_multiple_of(2) {
        return Err(bad());
    }
    if hex.len() / 2 > limits::MAX_COMMAND_BYTES {
        return Err(format!(
            "its command is longer than {} bytes",
            limits::MAX_COMMAND_BYTES
        ));
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())
}

/// The target a token's lock and parts name (`g`, `L`, `B`, `P`, `S`); what means
/// nothing (two commands, a command beside a built-in lock or `g`, a store command
/// without a buyer program) is refused.
fn decode_target(lock: LockKind, f: &Fields<'_>) -> Result<Target, String> {
    let commands: Vec<&str> = ["L", "B", "P"]
        .into_iter()
        .filter(|t| f.0.contains_key(t))
        .collect();
    let store_cmd =
        f.0.get("S")
            .map(|hex| parse_command("S", hex))
            .transpose()?;
    let syscall = f.0.contains_key("g");
    let Some(&tag) = commands.first() else {
        if store_cmd.is_some() {
            return Err("it carries a store command (S) without a buyer program (B)".into());
        }
        return Ok(Target::Lock { lock, syscall });
    };
    if commands.len() > 1 {
        return Err(format!(
            "it carries two commands ({}); a trial runs one at most",
            commands.join(", ")
        ));
    }
    if lock != LockKind::None {
        return Err(format!(
            "it names lock '{}' beside a command ({tag}); a command's token names lock 'none'",
            lock.name()
        ));
    }
    if syscall {
        return Err(format!(
            "it asks for system-call granularity (g) beside a command ({tag}), which always \
             steps at its system calls"
        ));
    }
    if store_cmd.is_some() && tag != "B" {
        return Err(format!(
            "it carries a store command (S) beside {tag}; only a buyer program (B) has one"
        ));
    }
    let text = parse_command(tag, f.0.get(tag).copied().unwrap_or(""))?;
    Ok(match tag {
        "L" => Target::LockCmd(text),
        "P" => Target::Program(
            crate::scenario::Program::split(&text)
                .ok_or_else(|| "'P…' is not a program (four parts joined by NUL)".to_string())?,
        ),
        _ => Target::BuyerCmd {
            cmd: text,
            store_cmd,
        },
    })
}

/// The `f` field's value: the kinds, sorted, joined by `+`.
fn found_part(found: &[FindingKind]) -> String {
    let mut kinds = found.to_vec();
    kinds.sort_unstable();
    kinds.dedup();
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    names.join("+")
}

fn parse_found(s: &str) -> Result<Vec<FindingKind>, String> {
    let mut kinds = Vec::new();
    for name in s.split('+') {
        let kind = FindingKind::parse(name).ok_or_else(|| {
            let all: Vec<&str> = FindingKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "'{name}' is not a finding kind; accepted: {} joined by +",
                all.join(", ")
            )
        })?;
        kinds.push(kind);
    }
    kinds.sort_unstable();
    kinds.dedup();
    Ok(kinds)
}

/// The token of `t` (see the module docs for the format).
pub fn encode(t: &Trial) -> String {
    let scale = limits::PROBABILITY_SCALE as f64;
    let mut s = format!(
        "{PREFIX}.{}.b{}.t{}.j{}.r{:x}.s{}",
        t.lock().name(),
        t.buyers,
        t.tickets,
        t.jitter_us,
        t.seed,
        schedule_part(&t.schedule)
    );
    match t.store {
        StoreMode::Atomic => s.push_str(".a"),
        StoreMode::Durable => s.push_str(".d"),
        StoreMode::InPlace => {}
    }
    if t.faults.kill > 0.0 {
        s.push_str(&format!(".k{}", (t.faults.kill * scale).round() as u32));
    }
    if t.faults.stop > 0.0 {
        let p = (t.faults.stop * scale).round() as u32;
        s.push_str(&format!(".x{p}-{}", t.faults.stop_ms));
    }
    if t.faults.crash > 0.0 {
        s.push_str(&format!(".z{}", (t.faults.crash * scale).round() as u32));
    }
    if t.faults.errno > 0.0 {
        let p = (t.faults.errno * scale).round() as u32;
        s.push_str(&format!(".e{p}-{}", t.faults.errno_code.name()));
    }
    if t.faults.skew > 0.0 {
        let p = (t.faults.skew * scale).round() as u32;
        let rate = limits::rate_thousandths(t.faults.skew_rate);
        s.push_str(&format!(".q{p}-{rate}"));
    }
    if t.faults.jump > 0.0 {
        let p = (t.faults.jump * scale).round() as u32;
        s.push_str(&format!(".y{p}-{}", t.faults.jump_ms));
    }
    match &t.target {
        Target::Lock { syscall: true, .. } => s.push_str(".g"),
        Target::Lock { .. } => {}
        Target::LockCmd(c) => s.push_str(&format!(".{}", command_part('L', c))),
        Target::BuyerCmd { cmd, store_cmd } => {
            s.push_str(&format!(".{}", command_part('B', cmd)));
            if let Some(c) = store_cmd {
                // The same hex as a buyer program's, under its own tag.
                s.push_str(&format!(".{}", command_part('S', c)));
            }
        }
        Target::Program(p) => s.push_str(&format!(".{}", command_part('P', &p.joined()))),
    }
    if let Some(c) = &t.choices {
        s.push_str(".p");
        s.push_str(&encode_choices(c));
    }
    if !t.found.is_empty() {
        s.push_str(".f");
        s.push_str(&found_part(&t.found));
    }
    sign(&s)
}

impl Trial {
    /// The shell-safe token that decodes back to this trial.
    pub fn token(&self) -> String {
        encode(self)
    }

    /// Decodes a token made by [`Trial::token`], refusing a token whose checksum is
    /// missing or does not match, that lacks a required field, or that asks for more than
    /// the limits allow.
    pub fn from_token(token: &str) -> Result<Trial, TokenError> {
        decode(token)
    }
}

/// A token's fields after the lock, by their letter, each at most once.
struct Fields<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Fields<'a> {
    fn split(parts: impl Iterator<Item = &'a str>) -> Result<Fields<'a>, String> {
        let mut map = BTreeMap::new();
        for part in parts {
            let (key, value) = part.split_at(part.chars().next().map_or(0, char::len_utf8));
            let known = matches!(
                key,
                "b" | "t"
                    | "j"
                    | "r"
                    | "s"
                    | "k"
                    | "x"
                    | "e"
                    | "z"
                    | "q"
                    | "y"
                    | "L"
                    | "B"
                    | "P"
                    | "S"
                    | "p"
                    | "f"
            ) || (matches!(key, "a" | "d" | "g") && value.is_empty());
            if !known {
                return Err(format!("unknown part '{part}'"));
            }
            if map.insert(key, value).is_some() {
                return Err(format!("its field '{key}' appears twice"));
            }
        }
        Ok(Fields(map))
    }

    fn required(&self, key: &str, what: &str) -> Result<&'a str, String> {
        self.0.get(key).copied().ok_or_else(|| {
            format!("it lacks its {what} (field '{key}'); a token needs b, t, j, r and s")
        })
    }

    fn number(&self, key: &str, what: &str) -> Result<u64, String> {
        let v = self.required(key, what)?;
        v.parse::<u64>()
            .map_err(|_| format!("'{key}{v}' does not end in a number"))
    }

    fn optional_number(&self, key: &str) -> Result<Option<u64>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("'{key}{v}' does not end in a number")),
        }
    }
}

/// Decodes a token made by [`encode`], refusing one whose checksum is missing or does not
/// match, and any value past [`limits`].
pub fn decode(token: &str) -> Result<Trial, TokenError> {
    decode_fields(token).map_err(|why| TokenError {
        token: token.to_string(),
        why,
    })
}

fn decode_fields(token: &str) -> Result<Trial, String> {
    if token.split('.').next() != Some(PREFIX) {
        return Err(format!("it does not start with '{PREFIX}.'"));
    }
    let mut parts = verified(token)?.split('.');
    parts.next();
    let lock_name = parts.next().ok_or("it names no lock")?;
    let lock = LockKind::parse(lock_name).ok_or_else(|| format!("unknown lock '{lock_name}'"))?;
    let f = Fields::split(parts)?;
    let mut trial = Trial::new(
        lock,
        limits::buyers(f.number("b", "buyer count")?)?,
        limits::tickets(f.number("t", "ticket count")?)?,
    );
    trial.jitter_us = limits::jitter_us(f.number("j", "jitter")?)?;
    let seed = f.required("r", "seed")?;
    trial.seed =
        u64::from_str_radix(seed, 16).map_err(|_| format!("'r{seed}' is not a hex seed"))?;
    trial.schedule = parse_schedule(f.required("s", "schedule")?)?;
    trial.target = decode_target(lock, &f)?;
    if f.0.contains_key("a") && f.0.contains_key("d") {
        return Err("it asks for two store modes (a and d)".into());
    }
    if f.0.contains_key("a") {
        trial.store = StoreMode::Atomic;
    }
    if f.0.contains_key("d") {
        trial.store = StoreMode::Durable;
    }
    decode_faults(&f, &mut trial)?;
    if let Some(steps) = f.0.get("p") {
        trial.choices = Some(decode_steps(steps, &trial)?);
    }
    if let Some(kinds) = f.0.get("f") {
        trial.found = parse_found(kinds)?;
    }
    if let Some(why) = trial.crash_refused() {
        return Err(format!("it asks for a power cut (z) it cannot have: {why}"));
    }
    Ok(trial)
}

/// A fault field's `P-VALUE`: P as a number (thousandths), and the VALUE's text; `bad`
/// when there is no `-` or P is not a number.
fn fault_pair<'a>(v: &'a str, bad: &impl Fn() -> String) -> Result<(u64, &'a str), String> {
    let (p, value) = v.split_once('-').ok_or_else(bad)?;
    let p = p.parse::<u64>().map_err(|_| bad())?;
    Ok((p, value))
}

fn decode_faults(f: &Fields<'_>, trial: &mut Trial) -> Result<(), String> {
    if let Some(k) = f.optional_number("k")? {
        trial.faults.kill = limits::probability(k)?;
    }
    if let Some(v) = f.0.get("x") {
        let bad = || format!("'x{v}' is not a stop fault (P-MS)");
        let (p, ms) = fault_pair(v, &bad)?;
        let ms = ms.parse::<u64>().map_err(|_| bad())?;
        trial.faults.stop = limits::probability(p)?;
        trial.faults.stop_ms = limits::stop_ms(ms)?;
    }
    if let Some(z) = f.optional_number("z")? {
        trial.faults.crash = limits::probability(z)?;
        if trial.faults.crash <= 0.0 {
            return Err("'z0' is a power cut that never happens".into());
        }
    }
    if let Some(v) = f.0.get("e") {
        let bad = || format!("'e{v}' is not an errno fault (P-ERRNO)");
        let (p, name) = fault_pair(v, &bad)?;
        trial.faults.errno = limits::probability(p)?;
        trial.faults.errno_code = crate::faults::InjectedErrno::from_name(name).ok_or_else(bad)?;
    }
    if let Some(v) = f.0.get("q") {
        let bad = || format!("'q{v}' is not a skew fault (P-RATE in thousandths)");
        let (p, rate) = fault_pair(v, &bad)?;
        let rate = rate.parse::<i64>().map_err(|_| bad())?;
        trial.faults.skew = limits::probability(p)?;
        trial.faults.skew_rate = limits::skew_rate(rate)? as f64 / 1000.0;
    }
    if let Some(v) = f.0.get("y") {
        let bad = || format!("'y{v}' is not a jump fault (P-MS)");
        let (p, ms) = fault_pair(v, &bad)?;
        let ms = ms.parse::<i64>().map_err(|_| bad())?;
        trial.faults.jump = limits::probability(p)?;
        trial.faults.jump_ms = limits::jump_ms(ms)?;
    }
    Ok(())
}

fn decode_steps(s: &str, trial: &Trial) -> Result<Vec<u32>, String> {
    if !trial.schedule.is_controlled() {
        return Err("it carries steps but its schedule is not controlled".into());
    }
    let runs = runs(s)?;
    // A whole program's units are its processes, as many as it starts (each buyer may
    // be a process of its own with helpers of its own): bounded as the processes are.
    let units = match trial.target {
        Target::Program(_) => limits::MAX_BUYERS * 4,
        _ => trial.buyers,
    };
    // After a power cut fresh buyers go on, numbered after the trial's own.
    let units = if trial.faults.crash > 0.0 {
        units.saturating_mul(2)
    } else {
        units
    };
    if runs.iter().filter(|&&(b, _)| is_crash(b)).count() > 1 {
        return Err("its steps cut the power twice".into());
    }
    if trial.faults.crash <= 0.0 && runs.iter().any(|&(b, _)| is_crash(b)) {
        return Err("its steps cut the power but it has no crash fault (z)".into());
    }
    if let Some(&(b, _)) = runs.iter().find(|&&(b, _)| b >= units && !is_crash(b)) {
        return Err(format!("its steps name buyer {b} of {units}"));
    }
    Ok(expand(&runs))
}

#[cfg(test)]
mod tests;
