//! oversell's clock shim: a preload library (`LD_PRELOAD`) that gives the trial's
//! processes the harness's clock instead of the machine's.
//!
//! Built by `build.rs` with the same `rustc` as the crate, alone (no crates, no std),
//! and embedded in the `oversell` binary, which writes it out once per run.
//!
//! It answers `clock_gettime`, `gettimeofday` and `time` from a small file the harness
//! owns (`OVERSELL_CLOCK` names it; `OVERSELL_CLOCK_UNIT` says which buyer this process
//! belongs to), mapped once per process:
//!
//! | offset | what |
//! | --- | --- |
//! | 0 | magic `OVCLOCK1` |
//! | 8 | mode: 0 real time (elapsed = real monotonic − base + word 32), 1 virtual (elapsed = word 32) |
//! | 16 | base on `CLOCK_MONOTONIC`, ns |
//! | 24 | base on `CLOCK_REALTIME`, ns |
//! | 32 | virtual time elapsed since the base, ns (mode 1) |
//! | 64 + 16·unit | the unit's rate (`f64` bits; 0 means 1), its wall clock's jump (ns, `i64`) |
//!
//! A unit's clock reads `base + rate · elapsed` (plus the jump on the wall clock). Sleeps
//! (`nanosleep`, `clock_nanosleep`) become sleeps until a virtual deadline fixed by the
//! shim (`CLOCK_MONOTONIC`, `TIMER_ABSTIME`: the base plus the virtual time they end at),
//! which the harness answers at that deadline without sleeping, and timed semaphore waits
//! (`sem_timedwait`, `sem_clockwait`) become tries between such sleeps, so every timed
//! wait is a sleep the harness sees; timed waits on a condition variable
//! (`pthread_cond_timedwait`, `pthread_cond_clockwait`) wait on the machine's clock for
//! what is left of their deadline. A process that reads the virtual clock 100,000 times
//! in a row without its moving (a spin until a time) sleeps 1 ms, a step, so that a spin
//! ends as it would on a clock that runs. Any other clock (CPU time) is the machine's.
#![no_std]
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: abort takes no arguments and never returns.
    unsafe { abort() }
}

/// Never called (nothing unwinds with `panic=abort`), but `core` names it.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

#[repr(C)]
pub struct timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

#[repr(C)]
pub struct timeval {
    tv_sec: i64,
    tv_usec: i64,
}

#[link(name = "c")]
extern "C" {
    fn getenv(name: *const u8) -> *const u8;
    fn open(path: *const u8, flags: i32, ...) -> i32;
    fn close(fd: i32) -> i32;
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn syscall(nr: i64, ...) -> i64;
    fn abort() -> !;
    fn __errno_location() -> *mut i32;
    fn sem_trywait(sem: *mut u8) -> i32;
    fn dlsym(handle: *mut u8, name: *const u8) -> *mut u8;
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const CLOCK_GETTIME: i64 = 228;
    pub const CLOCK_NANOSLEEP: i64 = 230;
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const CLOCK_GETTIME: i64 = 113;
    pub const CLOCK_NANOSLEEP: i64 = 115;
}

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;
const TIMER_ABSTIME: i32 = 1;
const EINTR: i32 = 4;
const EAGAIN: i32 = 11;
const ETIMEDOUT: i32 = 110;
const O_RDONLY: i32 = 0;
const O_CLOEXEC: i32 = 0o2000000;
const PROT_READ: i32 = 1;
const MAP_SHARED: i32 = 1;
const MAP_FAILED: usize = usize::MAX;
const MAGIC: u64 = u64::from_le_bytes(*b"OVCLOCK1");
/// The file's length: a header and 257 units of 16 bytes (`limits::MAX_BUYERS` buyers and
/// one for processes of no buyer).
const LEN: usize = 64 + 16 * 257;
const UNITS: usize = 257;

/// The state of this process's stream of "random" bytes (`getrandom`): seeded from
/// `OVERSELL_ENTROPY` on first use, copied into a child by `fork`, so a trial's processes
/// draw the same bytes in every run.
static ENTROPY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static ENTROPY_SET: AtomicU8 = AtomicU8::new(0);

/// The mapped clock file, or null until it is mapped (or when there is none).
static MAP: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());
/// 0 not looked for yet, 1 mapped, 2 none (the machine's clock then).
static STATE: AtomicU8 = AtomicU8::new(0);
/// This process's unit, read once.
static UNIT: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

fn real(clock: i32) -> i64 {
    let mut ts = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this frame.
    unsafe { syscall(nr::CLOCK_GETTIME, clock as i64, &mut ts as *mut timespec) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn parse_unit(p: *const u8) -> usize {
    let mut n = 0usize;
    let mut i = 0;
    loop {
        // SAFETY: p is a NUL-terminated string from getenv; we stop at its NUL.
        let c = unsafe { *p.add(i) };
        if !c.is_ascii_digit() || i > 6 {
            return n;
        }
        n = n * 10 + (c - b'0') as usize;
        i += 1;
    }
}

/// The mapped file's words, or `None`: the machine's clock.
fn map() -> Option<&'static [u64; LEN / 8]> {
    match STATE.load(Ordering::Acquire) {
        1 => {
            let p = MAP.load(Ordering::Acquire);
            // SAFETY: set once to a live read-only mapping of LEN bytes, never unmapped.
            return Some(unsafe { &*(p as *const [u64; LEN / 8]) });
        }
        2 => return None,
        _ => {}
    }
    // SAFETY: getenv reads the environment with a NUL-terminated name.
    let path = unsafe { getenv(b"OVERSELL_CLOCK\0".as_ptr()) };
    if path.is_null() {
        STATE.store(2, Ordering::Release);
        return None;
    }
    // SAFETY: as above.
    let unit = unsafe { getenv(b"OVERSELL_CLOCK_UNIT\0".as_ptr()) };
    let unit = if unit.is_null() { 0 } else { parse_unit(unit) };
    UNIT.store(unit.min(UNITS - 1) as *mut u8, Ordering::Release);
    // SAFETY: path is NUL-terminated; the descriptor is closed once mapped.
    let fd = unsafe { open(path, O_RDONLY | O_CLOEXEC) };
    if fd < 0 {
        STATE.store(2, Ordering::Release);
        return None;
    }
    // SAFETY: a fresh shared read-only mapping of an open file; checked below.
    let p = unsafe { mmap(core::ptr::null_mut(), LEN, PROT_READ, MAP_SHARED, fd, 0) };
    // SAFETY: fd is ours.
    unsafe { close(fd) };
    if p as usize == MAP_FAILED || p.is_null() {
        STATE.store(2, Ordering::Release);
        return None;
    }
    // SAFETY: the mapping is LEN bytes, page-aligned; word 0 is in it.
    let words = unsafe { &*(p as *const [u64; LEN / 8]) };
    if words[0] != MAGIC {
        STATE.store(2, Ordering::Release);
        return None;
    }
    MAP.store(p as *mut u64, Ordering::Release);
    STATE.store(1, Ordering::Release);
    Some(words)
}

fn read(w: &[u64; LEN / 8], i: usize) -> u64 {
    // SAFETY: the word is in the mapping; a volatile read sees the harness's writes.
    unsafe { core::ptr::read_volatile(&w[i]) }
}

fn unit() -> usize {
    UNIT.load(Ordering::Acquire) as usize
}

/// This unit's rate and its wall clock's jump.
fn rate_jump(w: &[u64; LEN / 8]) -> (f64, i64) {
    let slot = 8 + 2 * unit();
    let rate = f64::from_bits(read(w, slot));
    let rate = if rate > 0.0 && rate.is_finite() { rate } else { 1.0 };
    (rate, read(w, slot + 1) as i64)
}

fn monotonic_kind(clock: i32) -> bool {
    matches!(
        clock,
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME
    )
}

fn wall_kind(clock: i32) -> bool {
    matches!(clock, CLOCK_REALTIME | CLOCK_REALTIME_COARSE)
}

/// Reads of the virtual clock in a row that found it where it was: a process that reads
/// it this often without a step between spins on it (`while time < until {}`), and
/// would spin for ever on a clock only sleeps move.
const SPIN_READS: u64 = 100_000;
/// How far one spin moves this process's clock: it sleeps that long (a step).
const SPIN_NS: i64 = 1_000_000;
/// The virtual time the last read found, and how many reads in a row found it.
static LAST_ELAPSED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static SAME_READS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Virtual time elapsed, as word 32 says; after [`SPIN_READS`] reads in a row that
/// found it unmoved, the process sleeps [`SPIN_NS`] first: a spin on the clock takes
/// time as a sleep does, a step the harness sees and answers by moving the clock.
fn virtual_elapsed(w: &[u64; LEN / 8]) -> i64 {
    let e = read(w, 4);
    if LAST_ELAPSED.swap(e, Ordering::Relaxed) != e {
        SAME_READS.store(0, Ordering::Relaxed);
        return e as i64;
    }
    if SAME_READS.fetch_add(1, Ordering::Relaxed) + 1 < SPIN_READS {
        return e as i64;
    }
    SAME_READS.store(0, Ordering::Relaxed);
    let _ = sleep_for(SPIN_NS);
    let moved = read(w, 4);
    LAST_ELAPSED.store(moved, Ordering::Relaxed);
    moved as i64
}

/// The unit's reading of `clock` in ns, or `None` for a clock the shim leaves alone.
fn now(clock: i32) -> Option<i64> {
    let w = map()?;
    let (mono, wall) = (monotonic_kind(clock), wall_kind(clock));
    if !mono && !wall {
        return None;
    }
    let base_mono = read(w, 2) as i64;
    let elapsed = match read(w, 1) {
        1 => virtual_elapsed(w),
        // Real time, and the harness's advance on top (a stop fault's pause).
        _ => real(CLOCK_MONOTONIC) - base_mono + read(w, 4) as i64,
    };
    let (rate, jump) = rate_jump(w);
    let seen = (elapsed as f64 * rate) as i64;
    Some(if mono {
        base_mono + seen
    } else {
        read(w, 3) as i64 + seen + jump
    })
}

fn split(ns: i64) -> timespec {
    timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    }
}

fn ns_of(ts: &timespec) -> i64 {
    ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec)
}

/// A sleep of `ns` on the unit's own clock: the call the harness sees. On virtual time it
/// is a sleep until an absolute deadline on `CLOCK_MONOTONIC` (the base plus the virtual
/// time it ends at, the unit's rate applied), fixed here, when it is asked for: the
/// harness answers it at that deadline without sleeping. On real time, a relative sleep.
/// Returns 0 or an errno.
fn sleep_for(ns: i64) -> i32 {
    let ns = ns.max(0);
    let (flags, ts) = match map().filter(|w| read(w, 1) == 1) {
        Some(w) => {
            let (rate, _) = rate_jump(w);
            let wake = read(w, 4) as i64 + (ns as f64 / rate) as i64;
            (TIMER_ABSTIME, split(read(w, 2) as i64 + wake))
        }
        None => (0, split(ns)),
    };
    // SAFETY: a clock_nanosleep with a timespec on this frame, no remainder.
    let r = unsafe {
        syscall(
            nr::CLOCK_NANOSLEEP,
            CLOCK_MONOTONIC as i64,
            flags as i64,
            &ts as *const timespec,
            core::ptr::null_mut::<timespec>(),
        )
    };
    if r == 0 {
        0
    } else {
        // SAFETY: errno is this thread's.
        unsafe { *__errno_location() }
    }
}

fn set_errno(e: i32) {
    // SAFETY: errno is this thread's.
    unsafe { *__errno_location() = e };
}

#[no_mangle]
pub unsafe extern "C" fn clock_gettime(clock: i32, tp: *mut timespec) -> i32 {
    let ns = match now(clock) {
        Some(ns) => ns,
        None => {
            // SAFETY: the caller's timespec, as the kernel would write it.
            return unsafe { syscall(nr::CLOCK_GETTIME, clock as i64, tp) } as i32;
        }
    };
    if !tp.is_null() {
        // SAFETY: the caller passed a timespec to fill.
        unsafe { *tp = split(ns) };
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn gettimeofday(tv: *mut timeval, _tz: *mut u8) -> i32 {
    let ns = now(CLOCK_REALTIME).unwrap_or_else(|| real(CLOCK_REALTIME));
    if !tv.is_null() {
        let ts = split(ns);
        // SAFETY: the caller passed a timeval to fill.
        unsafe {
            *tv = timeval {
                tv_sec: ts.tv_sec,
                tv_usec: ts.tv_nsec / 1000,
            }
        };
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn time(t: *mut i64) -> i64 {
    let s = now(CLOCK_REALTIME)
        .unwrap_or_else(|| real(CLOCK_REALTIME))
        .div_euclid(1_000_000_000);
    if !t.is_null() {
        // SAFETY: the caller passed a time_t to fill.
        unsafe { *t = s };
    }
    s
}

/// How long, on the unit's own clock, until `abs` on `clock` (absolute) or `req`.
fn remaining(clock: i32, flags: i32, req: &timespec) -> i64 {
    if flags & TIMER_ABSTIME == 0 {
        return ns_of(req);
    }
    let now = now(clock).unwrap_or_else(|| real(clock));
    ns_of(req) - now
}

#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: i32,
    flags: i32,
    req: *const timespec,
    rem: *mut timespec,
) -> i32 {
    if req.is_null() || (!monotonic_kind(clock) && !wall_kind(clock)) {
        // SAFETY: passed on as given.
        let r = unsafe { syscall(nr::CLOCK_NANOSLEEP, clock as i64, flags as i64, req, rem) };
        // SAFETY: errno is this thread's.
        return if r == 0 { 0 } else { unsafe { *__errno_location() } };
    }
    // SAFETY: the caller's request.
    let left = remaining(clock, flags, unsafe { &*req });
    // A sleep already due is still a call, as it is without the shim: a program's
    // `sleep(0)` is a yield, and the harness must see it (it is a step of the schedule).
    if !rem.is_null() {
        // SAFETY: the caller's remainder: nothing remains once the sleep returns.
        unsafe { *rem = split(0) };
    }
    sleep_for(left)
}

#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> i32 {
    // SAFETY: as for clock_nanosleep, whose relative form this is.
    let e = unsafe { clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem) };
    if e == 0 {
        0
    } else {
        set_errno(e);
        -1
    }
}

/// A timed wait on `clock` until `abs`: tries, and between tries sleeps on the unit's
/// clock until the deadline, so the wait is a sleep the harness sees.
fn timed_wait(sem: *mut u8, clock: i32, abs: *const timespec) -> i32 {
    loop {
        // SAFETY: the caller's semaphore.
        if unsafe { sem_trywait(sem) } == 0 {
            return 0;
        }
        // SAFETY: errno is this thread's.
        let e = unsafe { *__errno_location() };
        if e != EAGAIN {
            return -1;
        }
        if abs.is_null() {
            set_errno(libc_einval());
            return -1;
        }
        // SAFETY: the caller's deadline.
        let left = remaining(clock, TIMER_ABSTIME, unsafe { &*abs });
        if left <= 0 {
            set_errno(ETIMEDOUT);
            return -1;
        }
        // On real time a post must not wait for the deadline: try again every ms.
        let virtual_time = map().is_some_and(|w| read(w, 1) == 1);
        let e = sleep_for(if virtual_time { left } else { left.min(1_000_000) });
        if e == EINTR {
            set_errno(EINTR);
            return -1;
        }
    }
}

fn libc_einval() -> i32 {
    22
}

#[no_mangle]
pub unsafe extern "C" fn sem_timedwait(sem: *mut u8, abs: *const timespec) -> i32 {
    timed_wait(sem, CLOCK_REALTIME, abs)
}

#[no_mangle]
pub unsafe extern "C" fn sem_clockwait(sem: *mut u8, clock: i32, abs: *const timespec) -> i32 {
    timed_wait(sem, clock, abs)
}

/// `dlsym`'s "the next object's definition": the C library's own function.
const RTLD_NEXT: *mut u8 = -1isize as *mut u8;

type CondTimedWait = unsafe extern "C" fn(*mut u8, *mut u8, *const timespec) -> i32;
type CondClockWait = unsafe extern "C" fn(*mut u8, *mut u8, i32, *const timespec) -> i32;

/// The C library's `pthread_cond_timedwait` and `pthread_cond_clockwait`, found once.
static NEXT_TIMEDWAIT: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static NEXT_CLOCKWAIT: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// The next definition of `name` (NUL-terminated), kept in `slot`; null when none.
fn next(slot: &AtomicPtr<u8>, name: &[u8]) -> *mut u8 {
    let mut f = slot.load(Ordering::Acquire);
    if f.is_null() {
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name.
        f = unsafe { dlsym(RTLD_NEXT, name.as_ptr()) };
        slot.store(f, Ordering::Release);
    }
    f
}

/// A timed wait on a condition variable until `abs` on `clock`, made through `wait`,
/// which waits until a deadline on the machine's `clock`. The program computed `abs` from
/// the unit's clock, which the kernel does not know: passed on as it is, a deadline on
/// oversell's monotonic clock (which starts at a fixed reading) is hours away on the
/// machine's. The wait is made on the machine's clock for what is left (at most 1 ms at a
/// time on virtual time, so a signal still wakes it); once that much passed with no
/// signal, what is left of the deadline is a sleep the harness sees, and the wait times
/// out. A wakeup with no signal is one a condition variable may always have.
fn cond_wait(clock: i32, abs: *const timespec, wait: &dyn Fn(*const timespec) -> i32) -> i32 {
    if abs.is_null() || now(clock).is_none() {
        // Passed on as given (a null deadline is the C library's to answer).
        return wait(abs);
    }
    let virtual_time = map().is_some_and(|w| read(w, 1) == 1);
    loop {
        // SAFETY: the caller's deadline.
        let left = remaining(clock, TIMER_ABSTIME, unsafe { &*abs });
        if left <= 0 {
            return ETIMEDOUT;
        }
        let step = if virtual_time { left.min(1_000_000) } else { left };
        let at = split(real(clock).saturating_add(step));
        let r = wait(&at as *const timespec);
        if r != ETIMEDOUT {
            return r;
        }
        if virtual_time {
            // Nobody signalled: the rest of the wait is a sleep of the unit's clock.
            // SAFETY: the caller's deadline.
            let left = remaining(clock, TIMER_ABSTIME, unsafe { &*abs });
            if left > 0 {
                let _ = sleep_for(left);
            }
            return ETIMEDOUT;
        }
    }
}

/// `pthread_cond_timedwait`: the deadline is on the condition's clock (`CLOCK_REALTIME`
/// unless its attributes chose `CLOCK_MONOTONIC`, as V8's and Java's do), which only the
/// C library knows; it is the one whose reading `abs` is nearer (the two start days
/// apart).
#[no_mangle]
pub unsafe extern "C" fn pthread_cond_timedwait(
    cond: *mut u8,
    mutex: *mut u8,
    abs: *const timespec,
) -> i32 {
    let f = next(&NEXT_TIMEDWAIT, b"pthread_cond_timedwait\0");
    if f.is_null() {
        return libc_einval();
    }
    // SAFETY: the C library's pthread_cond_timedwait, as dlsym found it.
    let f: CondTimedWait = unsafe { core::mem::transmute(f) };
    let clock = if abs.is_null() {
        CLOCK_REALTIME
    } else {
        // SAFETY: the caller's deadline.
        let at = ns_of(unsafe { &*abs });
        let off = |c: i32| now(c).map_or(i64::MAX, |n| (at - n).saturating_abs());
        if off(CLOCK_MONOTONIC) < off(CLOCK_REALTIME) {
            CLOCK_MONOTONIC
        } else {
            CLOCK_REALTIME
        }
    };
    // SAFETY: the caller's condition and mutex, passed on.
    cond_wait(clock, abs, &|at| unsafe { f(cond, mutex, at) })
}

/// `pthread_cond_clockwait` (what C++'s `wait_for` calls): a deadline on `clock`.
#[no_mangle]
pub unsafe extern "C" fn pthread_cond_clockwait(
    cond: *mut u8,
    mutex: *mut u8,
    clock: i32,
    abs: *const timespec,
) -> i32 {
    let f = next(&NEXT_CLOCKWAIT, b"pthread_cond_clockwait\0");
    if f.is_null() {
        return libc_einval();
    }
    // SAFETY: the C library's pthread_cond_clockwait, as dlsym found it.
    let f: CondClockWait = unsafe { core::mem::transmute(f) };
    // SAFETY: the caller's condition and mutex, passed on.
    cond_wait(clock, abs, &|at| unsafe { f(cond, mutex, clock, at) })
}

fn parse_u64(p: *const u8) -> u64 {
    let mut n = 0u64;
    let mut i = 0;
    loop {
        // SAFETY: p is a NUL-terminated string from getenv; we stop at its NUL.
        let c = unsafe { *p.add(i) };
        if !c.is_ascii_digit() || i > 20 {
            return n;
        }
        n = n.wrapping_mul(10).wrapping_add((c - b'0') as u64);
        i += 1;
    }
}

/// splitmix64: the next word of the stream.
fn next_word() -> u64 {
    let z = ENTROPY
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(target_arch = "x86_64")]
const SYS_GETRANDOM: i64 = 318;
#[cfg(target_arch = "aarch64")]
const SYS_GETRANDOM: i64 = 278;

/// `getrandom`: under oversell (`OVERSELL_ENTROPY` set) bytes drawn from the trial's
/// seed, so what a program draws at random (a backoff, a sleep's length, Python's hash
/// seed) is the same in a replay; else the kernel's.
#[no_mangle]
pub unsafe extern "C" fn getrandom(buf: *mut u8, len: usize, flags: u32) -> isize {
    if ENTROPY_SET.load(Ordering::Acquire) == 0 {
        // SAFETY: getenv reads the environment with a NUL-terminated name.
        let seed = unsafe { getenv(b"OVERSELL_ENTROPY\0".as_ptr()) };
        if seed.is_null() {
            // SAFETY: passed on as given.
            return unsafe { syscall(SYS_GETRANDOM, buf, len, flags as i64) } as isize;
        }
        ENTROPY.store(parse_u64(seed), Ordering::Relaxed);
        ENTROPY_SET.store(1, Ordering::Release);
    }
    let mut i = 0;
    while i < len {
        let w = next_word().to_ne_bytes();
        let n = (len - i).min(8);
        // SAFETY: the caller's buffer holds len bytes; we write n of them at offset i.
        unsafe { core::ptr::copy_nonoverlapping(w.as_ptr(), buf.add(i), n) };
        i += n;
    }
    len as isize
}
