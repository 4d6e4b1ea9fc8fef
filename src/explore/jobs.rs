//! `--jobs N`: work spread over N jobs, results taken in order.
//!
//! Each job is a thread with its own [`Runner`] (so its own pool of buyer processes and
//! its own controlled session, stepped on a CPU of its own: [`crate::harness::job_cpu`]).
//! Nothing is shared between jobs but the queue: the next item's number, taken in
//! turn. Results come back to the calling thread, which hands them to its consumer in
//! item order, whatever order they finished in, so what a run reports does not depend on
//! how many jobs ran it.
//!
//! A job's buyer processes die with the thread that started them (`PR_SET_PDEATHSIG` is
//! per thread), so a job's runner never outlives its thread: it is made and dropped
//! inside it. SIGINT and SIGTERM land on one thread; the caller passes the signal on to
//! every job, whose waits then return as interrupted (see `harness::interrupt`).

use super::Runner;
use crate::harness::HarnessConfig;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// The jobs a run gets by default: the CPUs this process may use.
pub fn available() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// What the consumer says after taking one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Take the next one.
    Go,
    /// Take no more: the items after this one are not wanted.
    Stop,
}

/// The threads of running jobs, to pass a signal on to.
#[derive(Default)]
struct Threads(Mutex<Vec<Option<libc::pthread_t>>>);

impl Threads {
    fn join(&self) -> usize {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: pthread_self has no preconditions.
        t.push(Some(unsafe { libc::pthread_self() }));
        t.len() - 1
    }

    fn leave(&self, slot: usize) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = t.get_mut(slot) {
            *s = None;
        }
    }

    fn signal(&self, sig: i32) {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for th in t.iter().flatten() {
            // SAFETY: the thread is still running: it removes itself (under this lock)
            // before it ends. The handler only stores the signal's number.
            unsafe {
                libc::pthread_kill(*th, sig);
            }
        }
    }
}

/// Runs `work` on items `0..count` over `jobs` jobs and gives each result to `take` in
/// item order. `last` tells, from a result, that no item after it is wanted (a failing
/// trial when the run stops at its first): jobs then take no item after it, and `take`
/// still sees every item before it. `take` returning [`Flow::Stop`] ends the run; items
/// already running finish and are dropped.
pub(crate) fn ordered<R: Send>(
    jobs: usize,
    harness: &HarnessConfig,
    count: u64,
    work: &(dyn Fn(&mut Runner<'_>, u64) -> R + Sync),
    last: &(dyn Fn(&R) -> bool + Sync),
    take: &mut dyn FnMut(u64, R) -> Flow,
) {
    if jobs <= 1 || count <= 1 {
        let mut runner = Runner::new(harness);
        for i in 0..count {
            let r = work(&mut runner, i);
            if take(i, r) == Flow::Stop {
                return;
            }
        }
        return;
    }
    let next = AtomicU64::new(0);
    // No item past this one is taken (`u64::MAX`: none is known to be last yet).
    let limit = AtomicU64::new(u64::MAX);
    let stop = AtomicBool::new(false);
    let threads = Threads::default();
    let (tx, rx) = mpsc::channel::<(u64, R)>();
    std::thread::scope(|s| {
        for job in 0..jobs.min(usize::try_from(count).unwrap_or(usize::MAX)) {
            let tx = tx.clone();
            let (next, limit, stop, threads) = (&next, &limit, &stop, &threads);
            s.spawn(move || {
                let slot = threads.join();
                let cfg = harness.clone().with_cpu(crate::harness::job_cpu(job));
                {
                    let mut runner = Runner::new(&cfg);
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= count || i > limit.load(Ordering::SeqCst) {
                            break;
                        }
                        let r = work(&mut runner, i);
                        if last(&r) {
                            limit.fetch_min(i, Ordering::SeqCst);
                        }
                        if tx.send((i, r)).is_err() {
                            break;
                        }
                    }
                }
                threads.leave(slot);
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<u64, R> = BTreeMap::new();
        let mut due = 0u64;
        let mut passed_on = false;
        let mut closed = false;
        while !closed {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok((i, r)) => {
                    waiting.insert(i, r);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => closed = true,
            }
            if let (Some(sig), false) = (crate::harness::interrupt::pending(), passed_on) {
                threads.signal(sig);
                passed_on = true;
            }
            while let Some(r) = waiting.remove(&due) {
                let i = due;
                due += 1;
                if take(i, r) == Flow::Stop {
                    stop.store(true, Ordering::SeqCst);
                    limit.fetch_min(i, Ordering::SeqCst);
                    waiting.clear();
                    break;
                }
            }
            if stop.load(Ordering::SeqCst) {
                // The jobs finish what they hold; their results are not wanted.
                while rx.recv().is_ok() {}
                break;
            }
        }
    });
}
