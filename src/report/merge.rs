//! Merging the reports of shards (`explore --shard K/N`) into one report.
//!
//! Shards of one run share lock, schedule and seed and run disjoint trial indices. The
//! merged report sums `trials_run` and `trials_failed`, takes the **largest** `elapsed_ms`
//! (shards run side by side, so the run took as long as its slowest shard), and holds
//! every finding, sorted by trial index.

use super::Report;
use std::collections::BTreeMap;
use std::fmt;

/// Why reports could not be merged or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum MergeError {
    /// There was no report to merge.
    Empty,
    /// Two reports disagree on a field that must be equal across shards.
    Mismatch {
        /// The field: `version`, `lock`, `schedule` or `seed`.
        field: &'static str,
        /// The first report's value.
        first: String,
        /// The disagreeing value.
        other: String,
    },
    /// Two reports both hold findings of one trial: the same shard was given twice, or
    /// the shards overlap.
    DuplicateTrial(u64),
    /// The same shard (`K/N`) was given twice.
    DuplicateShard(String),
    /// Shards of a run were given, but not all of them.
    MissingShard {
        /// The shards not given, as `K/N`.
        missing: Vec<String>,
        /// The shards given, as `K/N`.
        given: Vec<String>,
    },
    /// A report is not valid report JSON.
    Parse(serde_json::Error),
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::Empty => f.write_str("no reports to merge"),
            MergeError::Mismatch {
                field,
                first,
                other,
            } => write!(
                f,
                "reports disagree on {field} ({first} vs {other}); only shards of one run merge"
            ),
            MergeError::DuplicateTrial(t) => write!(
                f,
                "two reports both have findings in trial {t}; was one shard given twice?"
            ),
            MergeError::DuplicateShard(s) => write!(f, "shard {s} was given twice"),
            MergeError::MissingShard { missing, given } => write!(
                f,
                "{}; accepted: the reports of every shard of one run",
                missing_text(missing, given)
            ),
            MergeError::Parse(e) => write!(f, "not an oversell JSON report: {e}"),
        }
    }
}

impl std::error::Error for MergeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MergeError::Parse(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads a report from its JSON form (as written by `explore --json`).
pub fn parse(json: &str) -> Result<Report, MergeError> {
    serde_json::from_str(json).map_err(MergeError::Parse)
}

fn same(field: &'static str, first: String, other: String) -> Result<(), MergeError> {
    if first == other {
        Ok(())
    } else {
        Err(MergeError::Mismatch {
            field,
            first,
            other,
        })
    }
}

/// Combines shard reports of one run (same version, lock, schedule and seed) into one.
pub fn merge(reports: Vec<Report>) -> Result<Report, MergeError> {
    let mut iter = reports.into_iter();
    let mut out = iter.next().ok_or(MergeError::Empty)?;
    // Which report (by position) holds findings of each trial.
    let mut owner: BTreeMap<u64, usize> = BTreeMap::new();
    let mut shards: Vec<String> = out.shard.iter().cloned().collect();
    for f in &out.findings {
        owner.insert(f.trial, 0);
    }
    // Shards that stopped at their first finding: what the merged run was given.
    let given = |r: &Report| r.stopped_early.map_or(Some(r.trials_run), |s| s.of);
    let mut planned = given(&out);
    let mut stopped = out.stopped_early.is_some();
    for (pos, r) in iter.enumerate() {
        let pos = pos + 1;
        same("version", out.version.clone(), r.version.clone())?;
        same("lock", out.lock.clone(), r.lock.clone())?;
        same("schedule", out.schedule.clone(), r.schedule.clone())?;
        same("seed", out.seed.to_string(), r.seed.to_string())?;
        // An exhaustive search's shards number their schedules each from 0.
        for f in r.findings.iter().filter(|_| !exhaustive(&out)) {
            match owner.get(&f.trial) {
                Some(&p) if p != pos => return Err(MergeError::DuplicateTrial(f.trial)),
                _ => {
                    owner.insert(f.trial, pos);
                }
            }
        }
        if r.shard.is_some() && r.shard == out.shard {
            return Err(MergeError::DuplicateShard(r.shard.unwrap_or_default()));
        }
        shards.extend(r.shard.clone());
        out.interrupted = out.interrupted.or(r.interrupted);
        out.unconfirmed.extend(r.unconfirmed.iter().cloned());
        for u in &r.unseen {
            if !out.unseen.contains(u) && out.unseen.len() < super::MAX_UNSEEN {
                out.unseen.push(u.clone());
            }
        }
        planned = planned.zip(given(&r)).map(|(a, b)| a.saturating_add(b));
        stopped |= r.stopped_early.is_some();
        out.verified = if exhaustive(&out) {
            combine(std::mem::take(&mut out.verified), r.verified)
        } else {
            let mut v = std::mem::take(&mut out.verified);
            v.extend(r.verified);
            v
        };
        out.trials_run = out.trials_run.saturating_add(r.trials_run);
        out.trials_failed = out.trials_failed.saturating_add(r.trials_failed);
        out.elapsed_ms = out.elapsed_ms.max(r.elapsed_ms);
        out.findings.extend(r.findings);
    }
    out.stopped_early = stopped.then_some(super::StoppedEarly {
        after: out.trials_run,
        of: planned,
    });
    // A stable sort keeps each trial's findings in the order the checker gave them.
    out.findings.sort_by_key(|f| f.trial);
    complete(&mut shards)?;
    if shards.len() > 1 {
        out.shard = None;
    }
    Ok(out)
}

/// True for a report of an exhaustive search.
pub fn exhaustive(r: &Report) -> bool {
    r.schedule.starts_with("exhaustive")
}

/// Which shards are missing, in words: `shard 2/3 is missing (given: 1/3, 3/3)`, or
/// `shards 2/4, 3/4 are missing (given: …)`.
pub fn missing_text(missing: &[String], given: &[String]) -> String {
    let (noun, verb) = if missing.len() == 1 {
        ("shard", "is")
    } else {
        ("shards", "are")
    };
    format!(
        "{noun} {} {verb} missing (given: {})",
        missing.join(", "),
        given.join(", ")
    )
}

/// The verified shapes of two shards of one exhaustive search: each shape both hold,
/// with their counts added (each shard searched its own parts of it). A shape only one
/// of them holds was not searched to the end by the other, and is dropped.
fn combine(a: Vec<super::Verified>, b: Vec<super::Verified>) -> Vec<super::Verified> {
    let key = |v: &super::Verified| (v.buyers, v.tickets, v.preemptions, v.granularity.clone());
    a.into_iter()
        .filter_map(|mut v| {
            let w = b.iter().find(|w| key(w) == key(&v))?;
            v.schedules = v.schedules.saturating_add(w.schedules);
            v.executions = v
                .executions
                .zip(w.executions)
                .map(|(x, y)| x.saturating_add(y));
            v.verified &= w.verified;
            for u in &w.unordered {
                if !v.unordered.contains(u) {
                    v.unordered.push(u.clone());
                }
            }
            Some(v)
        })
        .collect()
}

/// The shards missing from `reports` (each `K/N`), and those given; `None` when the
/// reports are not shards.
pub fn missing_shards(reports: &[Report]) -> Option<(Vec<String>, Vec<String>)> {
    let mut given: Vec<String> = reports.iter().filter_map(|r| r.shard.clone()).collect();
    match complete(&mut given) {
        Err(MergeError::MissingShard { missing, given }) => Some((missing, given)),
        _ if given.is_empty() => None,
        _ => Some((Vec::new(), given)),
    }
}

/// The shards given (`K/N`, sorted here) are all `N` shards of one run, each once.
/// Reports without a shard (a whole run) are not counted.
fn complete(shards: &mut [String]) -> Result<(), MergeError> {
    let parse = |s: &str| {
        let (k, n) = s.split_once('/')?;
        Some((k.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?))
    };
    shards.sort_by_key(|s| parse(s));
    let of = |s: &String| s.split_once('/').map(|(_, n)| n.to_string());
    if shards.windows(2).any(|w| of(&w[0]) != of(&w[1])) {
        return Err(MergeError::Mismatch {
            field: "shard count",
            first: shards[0].clone(),
            other: shards[shards.len() - 1].clone(),
        });
    }
    if shards.windows(2).any(|w| w[0] == w[1]) {
        return Err(MergeError::DuplicateShard(shards.join(", ")));
    }
    let Some(n) = shards.first().and_then(|s| parse(s)).map(|(_, n)| n) else {
        return Ok(());
    };
    let given: Vec<u64> = shards
        .iter()
        .filter_map(|s| parse(s))
        .map(|(k, _)| k)
        .collect();
    // At most 20 named: a run of thousands of shards with most missing is named by its
    // first gaps.
    let missing: Vec<String> = (1..=n)
        .filter(|k| !given.contains(k))
        .take(20)
        .map(|k| format!("{k}/{n}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MergeError::MissingShard {
            missing,
            given: shards.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_merges_to_itself() {
        let r = Report::new("flock", "jitter", 7);
        assert_eq!(merge(vec![r.clone()]).expect("merge"), r);
    }

    fn shard(k: u64, n: u64) -> Report {
        let mut r = Report::new("flock", "jitter", 7);
        r.shard = Some(format!("{k}/{n}"));
        r
    }

    #[test]
    fn every_shard_of_a_run_must_be_given() {
        let e = merge(vec![shard(1, 3), shard(3, 3)]).expect_err("2/3 missing");
        assert_eq!(
            e.to_string(),
            "shard 2/3 is missing (given: 1/3, 3/3); accepted: the reports of every shard of one run"
        );
        let e = merge(vec![shard(2, 4)]).expect_err("three missing");
        assert!(
            e.to_string()
                .starts_with("shards 1/4, 3/4, 4/4 are missing"),
            "{e}"
        );
        let all = merge(vec![shard(3, 3), shard(1, 3), shard(2, 3)]).expect("all three");
        assert_eq!(all.shard, None);
        assert!(matches!(
            merge(vec![shard(1, 2), shard(1, 2)]),
            Err(MergeError::DuplicateShard(_))
        ));
    }

    #[test]
    fn errors_read_well() {
        let e = merge(Vec::new()).expect_err("empty");
        assert_eq!(e.to_string(), "no reports to merge");
        let e = parse("{").expect_err("bad json");
        assert!(std::error::Error::source(&e).is_some());
    }
}
