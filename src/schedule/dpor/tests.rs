//! The reduction against brute force on simulated programs: buyers that never block,
//! each a list of accesses. Two interleavings are the same execution exactly when every
//! pair of conflicting steps comes in the same order, so the classes are countable by
//! enumerating every interleaving.

use super::*;
use crate::lock::LockKind;
use crate::schedule::Touch;
use crate::vocab::Point;
use std::collections::BTreeSet;

type Key = BTreeSet<((u32, usize), (u32, usize))>;

/// The class of a schedule: the order of every conflicting pair of steps.
fn key(programs: &[Vec<Access>], schedule: &[u32]) -> Key {
    let mut seen: Vec<(u32, usize)> = Vec::new();
    let mut next = vec![0usize; programs.len()];
    let mut key = Key::new();
    for &b in schedule {
        let k = next[b as usize];
        next[b as usize] += 1;
        let a = programs[b as usize][k];
        for &(ob, ok) in &seen {
            if ob != b && programs[ob as usize][ok].conflicts(a) {
                key.insert(((ob, ok), (b, k)));
            }
        }
        seen.push((b, k));
    }
    key
}

/// Runs one simulated schedule under `s`; returns the buyers in the order they ran.
fn simulate(programs: &[Vec<Access>], s: &mut dyn Scheduler) -> Vec<u32> {
    simulate_learning(programs, programs, s)
}

/// Every interleaving with at most `bound` preemptions, by the plain search.
fn plain(programs: &[Vec<Access>], bound: u32) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    let mut prefix = Some(Vec::new());
    while let Some(p) = prefix {
        let mut dfs = Dfs::new(p, bound);
        all.push(simulate(programs, &mut dfs));
        prefix = dfs.next();
    }
    all
}

/// The reduced search: (classes reached, runs, executions counted).
fn reduced(programs: &[Vec<Access>], bound: Option<u32>) -> (BTreeSet<Key>, u64, u64) {
    let mut dpor = Dpor::new(bound);
    let mut keys = BTreeSet::new();
    loop {
        let run = simulate(programs, &mut dpor);
        keys.insert(key(programs, &run));
        if !dpor.advance() {
            break;
        }
    }
    (keys, dpor.runs(), dpor.executions())
}

fn buyer(points: &[Point]) -> Vec<Access> {
    points
        .iter()
        .map(|&p| Access::at(p, LockKind::None))
        .collect()
}

fn programs() -> Vec<Vec<Vec<Access>>> {
    use Point::*;
    let protocol = buyer(&[Check, Acquire, Read, Write, Release, Record]);
    let short = buyer(&[Check, Read, Write]);
    let lockstep = buyer(&[Check, Acquire, Write, Release]);
    vec![
        vec![protocol.clone(), protocol.clone()],
        vec![lockstep.clone(), lockstep.clone(), lockstep],
        vec![short.clone(), short.clone(), short.clone()],
        vec![buyer(&[Record, Record]), buyer(&[Record, Record])],
        vec![protocol.clone(), short.clone(), buyer(&[Check, Check])],
    ]
}

#[test]
fn unbounded_reaches_every_class_once() {
    for progs in programs() {
        let all: BTreeSet<Key> = plain(&progs, UNBOUNDED)
            .iter()
            .map(|s| key(&progs, s))
            .collect();
        let (reached, runs, executions) = reduced(&progs, None);
        assert_eq!(reached, all);
        assert_eq!(executions, all.len() as u64);
        assert!(runs >= executions);
    }
}

#[test]
fn bounded_reaches_every_class_the_bounded_plain_search_reaches() {
    for progs in programs() {
        for bound in 0..=2 {
            let all: BTreeSet<Key> = plain(&progs, bound)
                .iter()
                .map(|s| key(&progs, s))
                .collect();
            let (reached, _, executions) = reduced(&progs, Some(bound));
            assert_eq!(executions, reached.len() as u64);
            let missed: Vec<&Key> = all.difference(&reached).collect();
            assert!(
                missed.is_empty(),
                "bound {bound}: {} of {} missed in {progs:?}",
                missed.len(),
                all.len()
            );
        }
    }
}

#[test]
fn independent_buyers_are_one_execution() {
    let progs = vec![buyer(&[Point::Record]); 3];
    let (_, runs, executions) = reduced(&progs, None);
    assert_eq!((runs, executions), (1, 1));
}

/// A search split by prefix as the explorer splits it: every choice within the bound at
/// the first `depth` steps, each part searched on its own. Returns the classes reached
/// and the executions the parts counted, summed.
fn split(programs: &[Vec<Access>], bound: u32, depth: usize) -> (BTreeSet<Key>, u64) {
    split_with(
        &|s: &mut dyn Scheduler| simulate(programs, s),
        &|run: &[u32]| key(programs, run),
        bound,
        depth,
    )
}

/// [`split`] over any simulation (`sim` runs one schedule, `key_of` names its class).
fn split_with(
    sim: &dyn Fn(&mut dyn Scheduler) -> Vec<u32>,
    key_of: &dyn Fn(&[u32]) -> Key,
    bound: u32,
    depth: usize,
) -> (BTreeSet<Key>, u64) {
    // (prefix, siblings at each fixed step)
    let mut parts: Vec<(Vec<u32>, Vec<Vec<u32>>)> = vec![(Vec::new(), Vec::new())];
    for d in 0..depth {
        let mut next = Vec::new();
        for (prefix, siblings) in &parts {
            let mut dfs = Dfs::new(prefix.clone(), bound);
            sim(&mut dfs);
            match dfs.choices(d) {
                Some(kids) => {
                    for (n, &(b, _)) in kids.iter().enumerate() {
                        let mut p = prefix.clone();
                        p.push(b);
                        let mut s = siblings.clone();
                        s.push(kids[..n].iter().map(|k| k.0).collect());
                        next.push((p, s));
                    }
                }
                None => next.push((prefix.clone(), siblings.clone())),
            }
        }
        parts = next;
    }
    let mut keys = BTreeSet::new();
    let mut executions = 0;
    for (prefix, siblings) in parts {
        let b = (bound != UNBOUNDED).then_some(bound);
        let mut dpor = Dpor::part(b, prefix.clone(), siblings);
        loop {
            let run = sim(&mut dpor);
            assert_eq!(run[..prefix.len()], prefix[..], "a part keeps its prefix");
            keys.insert(key_of(&run));
            if !dpor.advance() {
                break;
            }
        }
        executions += dpor.executions();
    }
    (keys, executions)
}

#[test]
fn a_search_split_by_prefix_reaches_every_class_the_whole_search_does() {
    for progs in programs() {
        for depth in 1..=3 {
            // Unbounded, with sleep sets: every class, each counted once.
            let all: BTreeSet<Key> = plain(&progs, UNBOUNDED)
                .iter()
                .map(|s| key(&progs, s))
                .collect();
            let (reached, executions) = split(&progs, UNBOUNDED, depth);
            assert_eq!(reached, all, "depth {depth}: {progs:?}");
            assert_eq!(executions, all.len() as u64, "depth {depth}: {progs:?}");
            // Bounded: every class the plain bounded search reaches.
            for bound in 0..=2 {
                let all: BTreeSet<Key> = plain(&progs, bound)
                    .iter()
                    .map(|s| key(&progs, s))
                    .collect();
                let (reached, _) = split(&progs, bound, depth);
                assert!(
                    all.is_subset(&reached),
                    "bound {bound}, depth {depth}: {} of {} missed in {progs:?}",
                    all.difference(&reached).count(),
                    all.len()
                );
            }
        }
    }
}

/// Runs one simulated schedule where each step, once run, says it touched `done[b][k]`
/// (what the harness learns after a step: a process of the buyer ended, or it wrote
/// shared memory), while beforehand it was said to touch `said[b][k]`.
fn simulate_learning(
    said: &[Vec<Access>],
    done: &[Vec<Access>],
    s: &mut dyn Scheduler,
) -> Vec<u32> {
    let mut next = vec![0usize; said.len()];
    let mut current = None;
    let mut out = Vec::new();
    loop {
        let pending: Vec<Option<Access>> = said
            .iter()
            .zip(&next)
            .map(|(p, &k)| p.get(k).copied())
            .collect();
        let runnable: Vec<u32> = (0..said.len() as u32)
            .filter(|&b| pending[b as usize].is_some())
            .collect();
        if runnable.is_empty() {
            return out;
        }
        let cur = current.filter(|c| runnable.contains(c));
        s.ahead(&pending);
        let b = s.pick(out.len(), &runnable, cur).expect("pick");
        s.ran(b, false);
        s.executed(b, done[b as usize][next[b as usize]]);
        next[b as usize] += 1;
        out.push(b);
        current = Some(b);
    }
}

#[test]
fn a_step_found_wider_once_run_keeps_its_races_unbounded() {
    use Point::*;
    // A look that, once run, turns out to have touched everything (its process ended
    // and let a lock go): every class of the steps as they ran must be reached.
    let look = Access::at(Read, LockKind::None);
    let said = vec![
        vec![look, Access::at(Write, LockKind::None)],
        vec![look, look],
        vec![Access::at(Acquire, LockKind::None), look],
    ];
    let mut done = said.clone();
    done[1][0] = Access::EVERYTHING;
    done[2][1] = Access::EVERYTHING;
    let all: BTreeSet<Key> = plain(&done, UNBOUNDED)
        .iter()
        .map(|s| key(&done, s))
        .collect();
    let mut dpor = Dpor::new(None);
    let mut reached = BTreeSet::new();
    loop {
        let run = simulate_learning(&said, &done, &mut dpor);
        reached.insert(key(&done, &run));
        if !dpor.advance() {
            break;
        }
    }
    assert_eq!(reached, all);
    assert_eq!(dpor.executions(), all.len() as u64);
}

/// A step of a simulated program over one kernel lock that can block (a flock): taking
/// it shared or exclusive, letting it go, or a look or change of object `k`.
#[derive(Debug, Clone, Copy)]
enum Op {
    Shared,
    Exclusive,
    Unlock,
    Read(u64),
    Write(u64),
}

impl Op {
    fn access(self) -> Access {
        let mut t = Touch::default();
        match self {
            Op::Shared | Op::Exclusive | Op::Unlock => t.write(0),
            Op::Read(k) => t.read(k),
            Op::Write(k) => t.write(k),
        }
        Access::touching(t)
    }
}

/// Runs one schedule of programs whose lock steps block as a flock does: a buyer whose
/// next step would wait is not runnable (the harness keeps a blocked call back).
fn simulate_blocking(programs: &[Vec<Op>], s: &mut dyn Scheduler) -> Vec<u32> {
    let n = programs.len();
    let mut next = vec![0usize; n];
    // Each buyer's hold: 0 none, 1 shared, 2 exclusive.
    let mut hold = vec![0u8; n];
    let mut current = None;
    let mut out = Vec::new();
    loop {
        let op = |b: usize, next: &[usize]| programs[b].get(next[b]).copied();
        let enabled = |b: usize, next: &[usize], hold: &[u8]| match op(b, next) {
            None => false,
            Some(Op::Shared) => (0..n).all(|o| o == b || hold[o] != 2),
            Some(Op::Exclusive) => (0..n).all(|o| o == b || hold[o] == 0),
            Some(_) => true,
        };
        let runnable: Vec<u32> = (0..n)
            .filter(|&b| enabled(b, &next, &hold))
            .map(|b| b as u32)
            .collect();
        if runnable.is_empty() {
            assert!(
                next.iter().zip(programs).all(|(&k, p)| k == p.len()),
                "deadlock"
            );
            return out;
        }
        let pending: Vec<Option<Access>> = (0..n).map(|b| op(b, &next).map(Op::access)).collect();
        let cur = current.filter(|c| runnable.contains(c));
        s.ahead(&pending);
        let b = s.pick(out.len(), &runnable, cur).expect("pick") as usize;
        s.ran(b as u32, false);
        match op(b, &next) {
            Some(Op::Shared) => hold[b] = 1,
            Some(Op::Exclusive) => hold[b] = 2,
            Some(Op::Unlock) => hold[b] = 0,
            _ => {}
        }
        next[b] += 1;
        out.push(b as u32);
        current = Some(b as u32);
    }
}

#[test]
fn a_lock_that_blocks_keeps_every_bounded_class() {
    use Op::*;
    // The flag test under a shared lock, then an upgrade that lets it go first (a flock
    // conversion), then the work on the store: two buyers that both read the flag
    // before either writes it are the race a reduction must not prune.
    let upgrade = vec![
        Shared,
        Read(1),
        Unlock,
        Exclusive,
        Write(1),
        Unlock,
        Read(2),
        Write(2),
    ];
    let mutex = vec![Exclusive, Read(2), Write(2), Unlock];
    let reader = vec![Shared, Read(2), Unlock, Write(1)];
    let sets = vec![
        vec![upgrade.clone(), upgrade.clone()],
        vec![mutex.clone(), mutex.clone(), vec![Read(2)]],
        vec![upgrade.clone(), mutex.clone()],
        vec![reader.clone(), reader, mutex.clone()],
        vec![vec![Shared, Read(1), Unlock, Exclusive, Write(1), Unlock]; 3],
    ];
    for progs in sets {
        blocking_classes_kept(&progs, 0, 0);
    }
}

#[test]
fn random_blocking_programs_keep_every_bounded_class() {
    // More: OVERSELL_DPOR_ROUNDS=20000 OVERSELL_DPOR_SEED=7 cargo test --release …
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse().ok());
    random_blocking(
        var("OVERSELL_DPOR_SEED").unwrap_or(0x1234_5678),
        var("OVERSELL_DPOR_ROUNDS").unwrap_or(300),
    );
}

/// `rounds` random programs of two or three buyers over one flock and two objects,
/// each searched plainly and reduced within 0, 1 and 2 preemptions and unbounded: the
/// reduced search reaches every class the plain one does.
fn random_blocking(mut seed: u64, rounds: u64) {
    use Op::*;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..rounds {
        let buyers = 2 + rnd(2) as usize;
        let mut progs = Vec::new();
        for _ in 0..buyers {
            let mut p = Vec::new();
            let len = 1 + rnd(if buyers == 2 { 6 } else { 4 });
            let mut held = 0;
            for _ in 0..len {
                let op = match rnd(6) {
                    0 if held == 0 => {
                        held = 1;
                        Shared
                    }
                    1 if held == 0 => {
                        held = 2;
                        Exclusive
                    }
                    2 if held != 0 => {
                        held = 0;
                        Unlock
                    }
                    3 | 4 => Read(1 + rnd(2)),
                    _ => Write(1 + rnd(2)),
                };
                p.push(op);
            }
            if held != 0 {
                p.push(Unlock);
            }
            progs.push(p);
        }
        blocking_classes_kept(&progs, round, 2);
    }
}

/// Every class the plain search reaches within 0, 1 and 2 preemptions and unbounded, the
/// reduced search reaches too on `progs` (a program over a lock that blocks), whole and
/// split by prefix up to `depth` steps deep.
fn blocking_classes_kept(progs: &[Vec<Op>], round: u64, depth: usize) {
    let accesses: Vec<Vec<Access>> = progs
        .iter()
        .map(|p| p.iter().map(|o| o.access()).collect())
        .collect();
    for bound in [Some(0), Some(1), Some(2), None] {
        let mut all = BTreeSet::new();
        let mut prefix = Some(Vec::new());
        while let Some(p) = prefix {
            let mut dfs = Dfs::new(p, bound.unwrap_or(UNBOUNDED));
            all.insert(key(&accesses, &simulate_blocking(progs, &mut dfs)));
            prefix = dfs.next();
        }
        let mut dpor = Dpor::new(bound);
        let mut reached = BTreeSet::new();
        loop {
            reached.insert(key(&accesses, &simulate_blocking(progs, &mut dpor)));
            if !dpor.advance() {
                break;
            }
        }
        let missed = all.difference(&reached).count();
        assert_eq!(
            missed,
            0,
            "round {round} bound {bound:?}: {missed} of {} missed in {progs:?}",
            all.len()
        );
        // Split by prefix as the explorer splits a search into parts.
        for depth in 1..=depth {
            let (parts, _) = split_with(
                &|s: &mut dyn Scheduler| simulate_blocking(progs, s),
                &|run: &[u32]| key(&accesses, run),
                bound.unwrap_or(UNBOUNDED),
                depth,
            );
            let missed = all.difference(&parts).count();
            assert_eq!(
                missed,
                0,
                "round {round} bound {bound:?} depth {depth}: {missed} of {} missed in {progs:?}",
                all.len()
            );
        }
    }
}
