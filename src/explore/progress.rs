//! Where an exhaustive search stands, for a progress line to read while it runs: the
//! shape under way, its parts done, the executions counted and when the shape began.
//! Every job and the caller update it with atomics; nothing here prints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An exhaustive search's progress.
#[derive(Debug)]
pub struct SearchProgress {
    started: Instant,
    /// Shapes (one per bound searched) in the whole search.
    pub shapes: AtomicU64,
    /// Shapes searched to the end (or found the same as one that was).
    pub shapes_done: AtomicU64,
    /// Parts of the shape under way (this shard's).
    pub parts: AtomicU64,
    /// Parts of it done.
    pub parts_done: AtomicU64,
    /// Distinct executions counted in the parts done, over the whole search.
    pub executions: AtomicU64,
    shape_started_ms: AtomicU64,
    shape: Mutex<String>,
}

impl Default for SearchProgress {
    fn default() -> Self {
        SearchProgress {
            started: Instant::now(),
            shapes: AtomicU64::new(0),
            shapes_done: AtomicU64::new(0),
            parts: AtomicU64::new(0),
            parts_done: AtomicU64::new(0),
            executions: AtomicU64::new(0),
            shape_started_ms: AtomicU64::new(0),
            shape: Mutex::new(String::new()),
        }
    }
}

impl SearchProgress {
    /// A new shape is under way: `label` names it, `parts` are this run's of it.
    pub fn start_shape(&self, label: String, parts: u64) {
        self.parts.store(parts, Ordering::Relaxed);
        self.parts_done.store(0, Ordering::Relaxed);
        self.shape_started_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        *self.shape.lock().unwrap_or_else(|p| p.into_inner()) = label;
    }

    /// The shape under way, as `5 buyers, 3 tickets, ≤ 2 preemptions`.
    pub fn shape(&self) -> String {
        self.shape.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Time left in the shape under way, estimated from its parts done so far (parts
    /// differ in size, so this is a rough figure); `None` before its first part ends.
    pub fn shape_left(&self) -> Option<Duration> {
        let done = self.parts_done.load(Ordering::Relaxed);
        let all = self.parts.load(Ordering::Relaxed);
        if done == 0 {
            return None;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let spent = now.saturating_sub(self.shape_started_ms.load(Ordering::Relaxed));
        Some(Duration::from_millis(
            spent.saturating_mul(all.saturating_sub(done)) / done,
        ))
    }
}
