//! Where events go along the x axis, and the axis' ticks.

use super::draw::{PLOT_PAD, TICK_SPACING};
use super::Axis;
use crate::ledger::History;

/// How event positions map to pixels, and where the ticks go.
pub(super) struct Scale {
    /// Each event's position in axis units (ms or steps), by event index.
    pub(super) pos: Vec<f64>,
    lo: f64,
    hi: f64,
    x0: f64,
    x1: f64,
}

impl Scale {
    pub(super) fn new(history: &History, axis: Axis, x0: f64, x1: f64) -> Scale {
        let n = history.events.len();
        let (pos, lo, hi) = match axis {
            Axis::Steps => {
                let pos: Vec<f64> = (0..n).map(|i| i as f64).collect();
                (pos, -0.5, n.max(1) as f64 - 0.5)
            }
            Axis::Time => {
                let first = history.events.iter().map(|e| e.ns).min().unwrap_or(0);
                let pos: Vec<f64> = history
                    .events
                    .iter()
                    .map(|e| e.ns.saturating_sub(first) as f64 / 1e6)
                    .collect();
                let span = pos.iter().copied().fold(0.0, f64::max);
                let span = if span > 0.0 { span } else { 1.0 };
                let pad = span * 0.03;
                (pos, -pad, span + pad)
            }
        };
        Scale {
            pos,
            lo,
            hi,
            x0,
            x1,
        }
    }

    pub(super) fn x(&self, value: f64) -> f64 {
        self.x0 + (value - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)
    }

    /// The left end of the axis: the start of the trial.
    pub(super) fn start_x(&self) -> f64 {
        self.x0 - PLOT_PAD
    }

    /// The right end of the axis: the end of the trial.
    pub(super) fn end_x(&self) -> f64 {
        self.x1 + PLOT_PAD
    }

    pub(super) fn event_x(&self, i: usize) -> f64 {
        self.x(self.pos.get(i).copied().unwrap_or(0.0))
    }

    /// Tick values and their labels.
    pub(super) fn ticks(&self, axis: Axis) -> Vec<(f64, String)> {
        let span = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let wanted = ((self.x1 - self.x0) / TICK_SPACING).max(2.0);
        let mut step = nice_step(span / wanted);
        if axis == Axis::Steps {
            step = step.max(1.0);
        }
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10()).ceil() as usize
        };
        let top = self.hi.max(0.0);
        let mut out = Vec::new();
        let mut k = 0u32;
        loop {
            let v = f64::from(k) * step;
            if v > top + 1e-9 || k > 1000 {
                break;
            }
            out.push((v, format!("{v:.decimals$}")));
            k += 1;
        }
        out
    }
}

/// The round number (1, 2 or 5 times a power of ten) nearest above `raw`.
pub(super) fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}
