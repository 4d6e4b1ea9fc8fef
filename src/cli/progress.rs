//! Progress of a run, on stderr and never under `--quiet`: a bar when stderr is a terminal
//! (and not under CI), else one line a second (`progress: 12/100 trials, 0 findings, 3 s`)
//! once the run has lasted a second. It counts every trial the driver reports, whatever
//! the strategy (an exhaustive search reports each schedule) and whoever the buyers are
//! (oversell's own, a `--lock-cmd`, a `--buyer-cmd`); the line goes on while one long
//! trial or a shrink runs.

use crate::explore::progress::SearchProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the line is printed when stderr is not a terminal.
const EVERY: Duration = Duration::from_secs(1);

pub(super) struct Bar {
    bar: Option<ProgressBar>,
    line: Option<Ticker>,
    trials: Arc<AtomicU64>,
    findings: Arc<AtomicU64>,
}

/// The thread that prints the once-a-second line; it stops when `stop` is dropped.
struct Ticker {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Bar {
    /// A bar; for an exhaustive search (`search`), its line says the shape under way, its parts done,
    /// executions, schedules per second and the time left in the shape.
    pub(super) fn searching(total: u64, quiet: bool, search: Option<Arc<SearchProgress>>) -> Bar {
        let trials = Arc::new(AtomicU64::new(0));
        let findings = Arc::new(AtomicU64::new(0));
        let terminal = std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false");
        let bar = (!quiet && terminal).then(|| bar(total));
        let line = (!quiet && !terminal)
            .then(|| ticker(total, trials.clone(), findings.clone(), search))
            .flatten();
        Bar {
            bar,
            line,
            trials,
            findings,
        }
    }

    pub(super) fn tick(&self, findings: usize) {
        self.trials.fetch_add(1, Ordering::Relaxed);
        let all = self.findings.fetch_add(findings as u64, Ordering::Relaxed) + findings as u64;
        if let Some(bar) = &self.bar {
            bar.set_message(crate::report::count(all, "finding"));
            bar.inc(1);
        }
    }

    /// The count of trials the bar shows, for a driver that counts them itself (an
    /// exhaustive search counts schedules on every job as they end).
    pub(super) fn counter(&self) -> Arc<AtomicU64> {
        self.trials.clone()
    }

    /// Notes findings without counting a trial (the driver counts them: [`Bar::counter`]).
    pub(super) fn found(&self, findings: usize) {
        let all = self.findings.fetch_add(findings as u64, Ordering::Relaxed) + findings as u64;
        if let Some(bar) = &self.bar {
            bar.set_message(crate::report::count(all, "finding"));
            bar.set_position(self.trials.load(Ordering::Relaxed));
        }
    }

    /// Prints text to stdout without tearing the bar.
    pub(super) fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| {
                let _ = write!(std::io::stdout(), "{text}");
            }),
            None => {
                let mut out = std::io::stdout();
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    pub(super) fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(Ticker { stop, thread }) = self.line.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

fn bar(total: u64) -> ProgressBar {
    let (bar, template) = if total == u64::MAX {
        (
            ProgressBar::new_spinner(),
            "{spinner} {pos} trials · {msg} · {per_sec} · {elapsed}",
        )
    } else {
        (
            ProgressBar::new(total),
            "{bar:30} {pos}/{len} trials · {msg} · {per_sec} · {eta} left",
        )
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message("0 findings");
    bar
}

/// Starts the once-a-second line; none when no thread can be started (the run goes on
/// without it).
fn ticker(
    total: u64,
    trials: Arc<AtomicU64>,
    findings: Arc<AtomicU64>,
    search: Option<Arc<SearchProgress>>,
) -> Option<Ticker> {
    let (stop, stopped) = mpsc::channel::<()>();
    let started = Instant::now();
    let thread = std::thread::Builder::new()
        .name("progress".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                let (n, f) = (
                    trials.load(Ordering::Relaxed),
                    findings.load(Ordering::Relaxed),
                );
                let text = match &search {
                    Some(s) => search_line(s, n, f, started.elapsed()),
                    None => line(total, n, f, started.elapsed()),
                };
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        })
        .ok()?;
    Some(Ticker { stop, thread })
}

/// `progress: 12/100 trials, 1 finding, 3 s` (no total when the run has none).
fn line(total: u64, trials: u64, findings: u64, elapsed: Duration) -> String {
    let trials = if total == u64::MAX {
        crate::report::count(trials, "trial")
    } else {
        format!("{trials}/{total} trials")
    };
    format!(
        "progress: {trials}, {}, {} s",
        crate::report::count(findings, "finding"),
        elapsed.as_secs()
    )
}

/// `progress: shape 2 of 3 (5 buyers, 3 tickets, ≤ 1 preemption): 7 of 25 parts, 1200
/// executions, 4000 schedules, 3000/s, about 9 s left in this shape, 0 findings, 4 s`.
fn search_line(s: &SearchProgress, schedules: u64, findings: u64, elapsed: Duration) -> String {
    let rate = schedules as f64 / elapsed.as_secs_f64().max(0.001);
    let left = match s.shape_left() {
        Some(d) => format!("about {} s left in this shape", d.as_secs()),
        None => "no estimate yet".to_string(),
    };
    format!(
        "progress: shape {} of {} ({}): {} of {} parts, {}, {}, {rate:.0}/s, {left}, {}, {} s",
        (s.shapes_done.load(Ordering::Relaxed) + 1).min(s.shapes.load(Ordering::Relaxed)),
        s.shapes.load(Ordering::Relaxed),
        s.shape(),
        s.parts_done.load(Ordering::Relaxed),
        s.parts.load(Ordering::Relaxed),
        crate::report::count(s.executions.load(Ordering::Relaxed), "execution"),
        crate::report::count(schedules, "schedule"),
        crate::report::count(findings, "finding"),
        elapsed.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_line_names_the_shape_and_its_parts() {
        let s = SearchProgress::default();
        s.shapes.store(3, Ordering::Relaxed);
        s.start_shape("5 buyers, 3 tickets, ≤ 2 preemptions".into(), 25);
        let line = search_line(&s, 4000, 0, Duration::from_secs(2));
        assert_eq!(
            line,
            "progress: shape 1 of 3 (5 buyers, 3 tickets, ≤ 2 preemptions): 0 of 25 parts, \
             0 executions, 4000 schedules, 2000/s, no estimate yet, 0 findings, 2 s"
        );
        s.parts_done.store(5, Ordering::Relaxed);
        assert!(search_line(&s, 4000, 0, Duration::from_secs(2)).contains("s left in this shape"));
    }

    #[test]
    fn the_line_counts_trials_and_findings() {
        assert_eq!(
            line(100, 12, 1, Duration::from_millis(3400)),
            "progress: 12/100 trials, 1 finding, 3 s"
        );
        assert_eq!(
            line(u64::MAX, 1, 0, Duration::from_secs(2)),
            "progress: 1 trial, 0 findings, 2 s"
        );
    }
}
