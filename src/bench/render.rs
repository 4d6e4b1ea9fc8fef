//! Rendering the bench report: readable tables and JSON. Returns strings; only `cli`
//! prints them.

use super::{BenchReport, TARGET_RATIO, TARGET_SCHEDULES_PER_SEC, TARGET_STEPS_PER_SEC};
use std::fmt::Write as _;

impl BenchReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as readable tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> std::fmt::Result {
        self.write_speed(s)?;
        self.write_jobs(s)?;
        self.write_detection(s)?;
        self.write_per_lock(s)?;
        self.write_targets_and_notes(s)
    }

    /// The heading, throughput and controlled speed.
    fn write_speed(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "oversell bench ({}, seed {}): {:.1} s",
            self.mode.name(),
            self.seed,
            self.elapsed_ms as f64 / 1000.0
        )?;
        if let Some(sig) = self.interrupted {
            writeln!(s, "interrupted by signal {sig}: the figures cover what ran")?;
        }
        let t = &self.throughput;
        writeln!(s)?;
        writeln!(
            s,
            "throughput (jitter, zero jitter, {}, {} buyers × {} trials × {} rounds; medians)",
            t.lock, t.buyers_per_trial, t.trials_per_round, t.rounds
        )?;
        writeln!(
            s,
            "  wall time per buyer      {:>9.0} µs   (reused pool)",
            t.buyer_us
        )?;
        writeln!(
            s,
            "  with fresh processes     {:>9.0} µs   ({:.2} ×)",
            t.fresh_buyer_us, t.fresh_ratio
        )?;
        writeln!(s, "  raw spawn and wait       {:>9.0} µs", t.raw_spawn_us)?;
        writeln!(
            s,
            "  ratio                    {:>9.2} ×   (target ≤ {TARGET_RATIO})",
            t.ratio
        )?;
        let c = &self.controlled;
        writeln!(s)?;
        writeln!(s, "controlled ({}, reused buyers)", c.lock)?;
        writeln!(
            s,
            "  steps per second         {:>9.0}     ({} steps, {} trials, {} ms; target ≥ {TARGET_STEPS_PER_SEC:.0})",
            c.steps_per_sec, c.steps, c.trials, c.steps_elapsed_ms
        )?;
        writeln!(
            s,
            "  2-buyer schedules/s      {:>9.0}     ({} schedules, ≤ {} preemptions, {} ms; target ≥ {TARGET_SCHEDULES_PER_SEC:.0})",
            c.schedules_per_sec, c.schedules, c.preemptions, c.schedules_elapsed_ms
        )
    }

    /// One row per lock and strategy.
    fn write_detection(&self, s: &mut String) -> std::fmt::Result {
        writeln!(s)?;
        writeln!(s, "detection")?;
        writeln!(
            s,
            "  {:<14} {:<8} {:<7} {:>6} {:>7} {:>8} {:>6} {:>9} {:>7} {:>6}  kinds",
            "lock",
            "schedule",
            "expect",
            "trials",
            "w/kills",
            "detected",
            "rate",
            "first ms",
            "trials",
            "false"
        )?;
        for r in &self.locks {
            writeln!(
                s,
                "  {:<14} {:<8} {:<7} {:>6} {:>7} {:>8} {:>5.0}% {:>9} {:>7} {:>6}  {}",
                r.lock.name(),
                r.schedule.name(),
                r.expect.name(),
                r.trials,
                r.fault_trials,
                r.detected,
                r.detection_rate * 100.0,
                opt(r.first_ms),
                opt(r.trials_to_first),
                opt(r.false_findings),
                r.kinds.join(",")
            )?;
        }
        Ok(())
    }

    /// One row per lock: its best strategy.
    fn write_per_lock(&self, s: &mut String) -> std::fmt::Result {
        writeln!(s)?;
        writeln!(
            s,
            "per lock (best strategy: smallest median time to a first finding)"
        )?;
        writeln!(
            s,
            "  {:<14} {:<17} {:<7} {:>7} {:<8} {:>9} {:>7} {:>6}",
            "lock", "soundness", "expect", "caught", "best", "first ms", "trials", "false"
        )?;
        for l in &self.summary {
            let soundness = l.soundness.name();
            writeln!(
                s,
                "  {:<14} {:<17} {:<7} {:>7} {:<8} {:>9} {:>7} {:>6}",
                l.lock.name(),
                soundness,
                l.expect.name(),
                if l.caught { "yes" } else { "no" },
                l.best_schedule.unwrap_or("-"),
                opt(l.best_first_ms),
                opt(l.best_trials_to_first),
                opt(l.false_findings)
            )?;
        }
        Ok(())
    }

    /// `jobs_speedup`: one job against N.
    fn write_jobs(&self, s: &mut String) -> std::fmt::Result {
        let j = &self.jobs_speedup;
        if j.rows.is_empty() {
            return Ok(());
        }
        writeln!(s)?;
        writeln!(
            s,
            "jobs_speedup (the same trials on 1 job and on {})",
            j.jobs
        )?;
        for r in &j.rows {
            writeln!(
                s,
                "  {:<52} {:>7} trials  {:>7} ms vs {:>7} ms  {:.2} ×",
                r.workload, r.trials, r.one_job_ms, r.n_jobs_ms, r.speedup
            )?;
        }
        let p = &self.paused_trial;
        if p.virtual_ms > 0.0 {
            writeln!(s)?;
            writeln!(
                s,
                "paused_trial (2 buyers each frozen {} ms): real time (flock, free running) \
                 {:.0} ms, virtual time (lease, pct) {:.1} ms, {:.0} × less",
                p.pause_ms, p.real_ms, p.virtual_ms, p.ratio
            )?;
        }
        Ok(())
    }

    /// The targets, measured, and the notes.
    fn write_targets_and_notes(&self, s: &mut String) -> std::fmt::Result {
        writeln!(s)?;
        writeln!(s, "targets (reported, not enforced)")?;
        for t in &self.targets {
            writeln!(
                s,
                "  [{}] {}: {} (target {})",
                if t.met { "met   " } else { "missed" },
                t.name,
                t.measured,
                t.target
            )?;
        }
        writeln!(s)?;
        writeln!(s, "notes")?;
        for n in &self.notes {
            writeln!(s, "  - {n}")?;
        }
        Ok(())
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}
