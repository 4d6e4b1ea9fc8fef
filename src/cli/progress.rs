//! The progress bar: on stderr, only when stderr is a terminal, not under CI, not quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

pub(super) struct Bar {
    bar: Option<ProgressBar>,
    findings: std::cell::Cell<u64>,
}

impl Bar {
    pub(super) fn new(total: u64, quiet: bool) -> Bar {
        let show = !quiet
            && std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false");
        let bar = show.then(|| {
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
        });
        Bar {
            bar,
            findings: std::cell::Cell::new(0),
        }
    }

    pub(super) fn tick(&self, findings: usize) {
        if let Some(bar) = &self.bar {
            self.findings.set(self.findings.get() + findings as u64);
            bar.set_message(crate::report::count(self.findings.get(), "finding"));
            bar.inc(1);
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

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
