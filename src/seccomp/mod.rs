//! The seccomp filter that makes a buyer's system calls yield points, and its
//! installation: in a user's command between fork and exec (by the harness's spawn), or
//! by oversell's own buyer on itself once started (`--granularity syscall`: its loader
//! and runtime start-up touch nothing of the trial, and need not stop one call at a time).
//!
//! The filter is a small classic-BPF program written against libc's types: a call of
//! the host architecture listed in `calls.rs` is reported to the harness
//! (`SECCOMP_RET_USER_NOTIF`); every other call is allowed. It is installed with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER`, so the kernel hands back a listener descriptor,
//! which the process sends to the harness over a socket (`SCM_RIGHTS`).
//! Every process the buyer starts inherits the filter, and notifies the same listener.
//!
//! The harness's system-call driver reads each stopped call here, spawning nothing:
//! `call` (which call is a step, and what it does), `paths` (what a call names),
//! `objects` (what it touches, for the reduction), `probe` (whether a lock call would
//! block), `blocked` (whether a process waits in the kernel, or is on its way out) and
//! `ipc` (the kernel objects a trial makes by name, removed when it ends).

use std::io;
use std::os::fd::RawFd;

pub(crate) mod blocked;
pub(crate) mod call;
mod calls;
pub(crate) mod ipc;
pub(crate) mod objects;
pub(crate) mod paths;
pub(crate) mod probe;

use calls::CALLS;
pub(crate) use calls::{of, Effect, LockForm, Shape};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const JSET_K: u16 = 0x45;
const JA: u16 = 0x05;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// What the filter does with one call number: notify always, or when one bit of one
/// argument says so.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Notify,
    Masked {
        arg: usize,
        bit: u32,
        when_set: bool,
    },
    /// Notify unless argument 0 is the descriptor the listener is handed over on
    /// ([`HANDOFF`], set per process by [`set_handoff`]).
    NotOnHandoff,
}

/// The descriptor number a filter lets `sendmsg` use unstopped until [`set_handoff`]
/// names the real one: the one call that hands the listener to the harness, which no
/// listener could answer yet. No descriptor has this number.
const HANDOFF: u32 = 0x7fff_fffe;

/// Makes `prog` (a [`program`]) let `sendmsg` on `fd` alone go on unstopped. Writes
/// into `prog` only: safe between fork and exec.
fn set_handoff(prog: &mut [libc::sock_filter], fd: RawFd) {
    for ins in prog.iter_mut() {
        if ins.code == JEQ_K && ins.k == HANDOFF {
            ins.k = fd as u32;
        }
    }
}

/// A descriptor for the socket `sock` that a program is unlikely to ever number one of
/// its own: near the top of its limit of open files (at most 1024, so the table of
/// descriptors stays small), closed on exec like `sock`. `sock` itself when there is no
/// room. Async-signal-safe.
pub(crate) fn handoff_fd(sock: RawFd) -> RawFd {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives in this frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return sock;
    }
    let top = limit.rlim_cur.min(1024) as RawFd;
    let want = top - 8;
    if want <= sock {
        return sock;
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor this process owns makes a new one.
    let fd = unsafe { libc::fcntl(sock, libc::F_DUPFD_CLOEXEC, want) };
    if fd < 0 {
        sock
    } else {
        fd
    }
}

/// Where a jump goes: on to the next instruction, or to a label.
#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    To(usize),
}

/// One instruction before assembly: jumps name labels, which take no room. A
/// conditional jump reaches at most 255 instructions on; `Always` (BPF's `JA`) any
/// distance, and carries the splits of the search over the halves they skip.
enum Ins {
    Stmt(libc::sock_filter),
    Jump(u16, u32, Target, Target),
    Always(usize),
    Label(usize),
}

/// The labels of the header's two ends, placed right after it.
const ALLOW: usize = 0;
const NOTIFY: usize = 1;
const SEARCH: usize = 2;

/// The filter program: notify on the calls of the table ([`calls`]) of the host
/// architecture, those with a bit to test only when it says so; allow the rest. The call number is found by
/// a binary search over the sorted numbers, so a call costs a few comparisons (not one
/// per listed call), and so does the kernel's per-filter cache of always-allowed calls,
/// which runs the program once for every call number each time a process installs it.
/// Every conditional jump is short: each end of the search returns where it is, and a
/// split jumps over a half it skips of more than 255 instructions with `JA`, whose
/// offset is 32 bits. `Err` only if a
/// jump would still not fit the format's 8-bit offsets (a test builds it).
///
/// The calls that make a task (`fork`, `clone`) are stopped only with `spawns`: a whole
/// program's forks may be steps, while in a lock command or a buyer they go on at once,
/// and stopping them would only open a window in which a signal (a child's SIGCHLD)
/// makes a shell's `fork` fail with EINTR, which run alone it never does.
pub(crate) fn program(spawns: bool) -> io::Result<Vec<libc::sock_filter>> {
    let mut rules: Vec<(u32, Rule)> = CALLS
        .iter()
        .filter(|c| spawns || c.effect != Effect::Spawn)
        .map(|c| {
            let rule = match c.only_when {
                // The listener is handed over by `sendmsg`: every other one is stopped.
                None if c.name == "SYS_sendmsg" => Rule::NotOnHandoff,
                None => Rule::Notify,
                Some(b) => Rule::Masked {
                    arg: b.arg,
                    bit: b.bit,
                    when_set: b.set,
                },
            };
            (c.nr as u32, rule)
        })
        .collect();
    rules.sort_by_key(|r| r.0);
    let mut code = vec![
        // seccomp_data: nr at 0, arch at 4, then the instruction pointer (8 bytes) and
        // the six arguments (8 bytes each; the low word first on these little-endian hosts).
        Ins::Stmt(stmt(LD_W_ABS, 4)),
        Ins::Jump(JEQ_K, AUDIT_ARCH, Target::Next, Target::To(ALLOW)),
        Ins::Stmt(stmt(LD_W_ABS, 0)),
        // x32 calls (bit 30) share x86_64's arch value: never ours.
        Ins::Jump(JGE_K, 0x4000_0000, Target::To(ALLOW), Target::Next),
        // A call newer than the table: stopped, and named by the harness.
        Ins::Jump(JGE_K, calls::NEWER, Target::To(NOTIFY), Target::To(SEARCH)),
        Ins::Label(ALLOW),
        Ins::Stmt(stmt(RET_K, libc::SECCOMP_RET_ALLOW)),
        Ins::Label(NOTIFY),
        Ins::Stmt(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF)),
        Ins::Label(SEARCH),
    ];
    let mut labels = 3;
    search(&rules, &mut code, &mut labels);
    assemble(&code)
}

/// Code that, with the call number in the accumulator, ends at `ALLOW` or `NOTIFY` as
/// `rules` (sorted by number) say: split at the middle number while more than three are
/// left, then compare one by one and return.
fn search(rules: &[(u32, Rule)], code: &mut Vec<Ins>, labels: &mut usize) {
    let mut label = || {
        *labels += 1;
        *labels - 1
    };
    if rules.len() > 3 {
        let mid = rules.len() / 2;
        let (upper, lower) = (label(), label());
        let mut below = Vec::new();
        search(&rules[..mid], &mut below, labels);
        let skipped = below.iter().filter(|i| !matches!(i, Ins::Label(_))).count();
        if skipped <= usize::from(u8::MAX) {
            code.push(Ins::Jump(
                JGE_K,
                rules[mid].0,
                Target::To(upper),
                Target::Next,
            ));
        } else {
            code.push(Ins::Jump(
                JGE_K,
                rules[mid].0,
                Target::Next,
                Target::To(lower),
            ));
            code.push(Ins::Always(upper));
            code.push(Ins::Label(lower));
        }
        code.append(&mut below);
        code.push(Ins::Label(upper));
        search(&rules[mid..], code, labels);
        return;
    }
    let (allow, notify) = (label(), label());
    for &(nr, rule) in rules {
        match rule {
            Rule::Notify => code.push(Ins::Jump(JEQ_K, nr, Target::To(notify), Target::Next)),
            Rule::Masked { arg, bit, when_set } => {
                let other = label();
                code.push(Ins::Jump(JEQ_K, nr, Target::Next, Target::To(other)));
                code.push(Ins::Stmt(stmt(LD_W_ABS, 16 + 8 * arg as u32)));
                let (set, clear) = if when_set {
                    (notify, allow)
                } else {
                    (allow, notify)
                };
                code.push(Ins::Jump(JSET_K, bit, Target::To(set), Target::To(clear)));
                code.push(Ins::Label(other));
            }
            Rule::NotOnHandoff => {
                let other = label();
                code.push(Ins::Jump(JEQ_K, nr, Target::Next, Target::To(other)));
                code.push(Ins::Stmt(stmt(LD_W_ABS, 16)));
                code.push(Ins::Jump(
                    JEQ_K,
                    HANDOFF,
                    Target::To(allow),
                    Target::To(notify),
                ));
                code.push(Ins::Label(other));
            }
        }
    }
    code.push(Ins::Label(allow));
    code.push(Ins::Stmt(stmt(RET_K, libc::SECCOMP_RET_ALLOW)));
    code.push(Ins::Label(notify));
    code.push(Ins::Stmt(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF)));
}

/// Places the labels and turns each jump's target into its offset.
fn assemble(code: &[Ins]) -> io::Result<Vec<libc::sock_filter>> {
    let mut at = Vec::new();
    let mut pc = 0usize;
    for ins in code {
        match ins {
            Ins::Label(l) => {
                if at.len() <= *l {
                    at.resize(l + 1, usize::MAX);
                }
                at[*l] = pc;
            }
            _ => pc += 1,
        }
    }
    let mut out = Vec::with_capacity(pc);
    for ins in code {
        match *ins {
            Ins::Stmt(s) => out.push(s),
            Ins::Jump(op, k, jt, jf) => {
                let here = out.len() + 1;
                let off = |t: Target| -> io::Result<u8> {
                    let to = match t {
                        Target::Next => here,
                        Target::To(l) => at.get(l).copied().unwrap_or(usize::MAX),
                    };
                    to.checked_sub(here)
                        .and_then(|d| u8::try_from(d).ok())
                        .ok_or_else(|| io::Error::other("a seccomp filter jump does not fit"))
                };
                out.push(jump(op, k, off(jt)?, off(jf)?));
            }
            Ins::Always(l) => {
                let here = out.len() + 1;
                let to = at.get(l).copied().unwrap_or(usize::MAX);
                let k = to
                    .checked_sub(here)
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| io::Error::other("a seccomp filter jump does not fit"))?;
                out.push(stmt(JA, k));
            }
            Ins::Label(_) => {}
        }
    }
    Ok(out)
}

/// No new privileges, the filter (`prog`, made to let `sendmsg` on `sock` alone go on),
/// the listener sent over `sock`, and a second filter that closes `sock` to `sendmsg`
/// ([`seal_handoff`]): in a child between fork and exec, or in our own buyer once
/// started. Only async-signal-safe calls, no allocation. Once the filter is in place any
/// later call of a yield-point number (the runtime's own, before exec included) waits for
/// the harness's answer, and this process still holds the listener, so the call would
/// never fail: a caller must already die with the harness (`PR_SET_PDEATHSIG`).
pub(crate) fn install(prog: &mut [libc::sock_filter], sock: RawFd) -> io::Result<()> {
    set_handoff(prog, sock);
    // SAFETY: plain system calls on values owned by this frame.
    let fd = unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        // Once the harness has read a stopped call, a signal no longer cuts the wait for
        // its answer short (Linux 5.19): a call held for the schedule would otherwise
        // fail with EINTR where run alone it could not (a shell's `fork`, when a child
        // ends meanwhile and its SIGCHLD handler has no SA_RESTART). Older kernels lack
        // the flag, and get the filter without it.
        let install = |flags: libc::c_ulong| set_filter(prog, flags);
        let mut fd = install(
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        );
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            fd = install(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
        }
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        fd
    };
    send_fd(sock, fd as RawFd)?;
    seal_handoff(sock)
}

/// A second filter, once the listener is handed over: `sendmsg` and `sendmmsg` on the
/// handoff descriptor fail (`EBADF`, as on a closed one) from now on, so the first
/// filter's one unstopped descriptor number lets no later call of the program through
/// unseen. Builds its program on the stack: safe between fork and exec.
fn seal_handoff(sock: RawFd) -> io::Result<()> {
    let prog = [
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, AUDIT_ARCH, 0, 6),
        stmt(LD_W_ABS, 0),
        jump(JEQ_K, libc::SYS_sendmsg as u32, 1, 0),
        jump(JEQ_K, libc::SYS_sendmmsg as u32, 0, 3),
        stmt(LD_W_ABS, 16),
        jump(JEQ_K, sock as u32, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::EBADF as u32),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    if set_filter(&prog, 0) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs `prog` as a filter of this thread with `flags`: what `seccomp(2)` returns (a
/// listener with `SECCOMP_FILTER_FLAG_NEW_LISTENER`; −1 and `errno` on failure).
/// Async-signal-safe.
fn set_filter(prog: &[libc::sock_filter], flags: libc::c_ulong) -> libc::c_long {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the
    // program and writes nothing of ours.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    }
}

/// Sends `fd` over the Unix socket `sock` (`SCM_RIGHTS`), with one byte of data. A
/// descriptor that is not open, or a `sock` that is no connected Unix socket, makes
/// `sendmsg` fail; nothing here reads or writes outside this frame's buffers.
fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [1u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let room = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    if room > std::mem::size_of_val(&space) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    msg.msg_controllen = room as _;
    // SAFETY: `msg` points at `space`, which holds `room` bytes: CMSG_FIRSTHDR returns a
    // pointer into it or null.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cmsg` is non-null and points at the start of `space` (checked above),
    // which has room for one header and one descriptor (CMSG_SPACE, checked above).
    unsafe {
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
    }
    // SAFETY: `msg` and everything it points at live in this frame.
    if unsafe { libc::sendmsg(sock, &msg, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives a descriptor sent by [`send_fd`] on `sock`.
pub(crate) fn recv_fd(sock: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    // SAFETY: `msg` points at buffers of this frame, sized as CMSG_SPACE says; the
    // descriptor read back is one the kernel just installed in this process.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&space) as _;
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        // A control message cut short (MSG_CTRUNC) may have lost descriptors: its
        // length field cannot be trusted.
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other(
                "the buyer's listener message was cut short",
            ));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        let want = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            || ((*cmsg).cmsg_len as usize) < want
        {
            return Err(io::Error::other("no listener descriptor from the buyer"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
        Ok(std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one call as the kernel would: the return value.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        run_counted(p, arch, nr, args).0
    }

    /// The return value, and how many instructions ran.
    fn run_counted(p: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if (16..64).contains(&o) && o % 8 == 0 => args[(o as usize - 16) / 8] as u32,
                o => panic!("load at {o}"),
            }
        };
        let (mut pc, mut acc, mut ran) = (0usize, 0u32, 0usize);
        loop {
            let i = p[pc];
            ran += 1;
            let taken = match i.code {
                LD_W_ABS => {
                    acc = word(i.k);
                    pc += 1;
                    continue;
                }
                RET_K => return (i.k, ran),
                JA => {
                    pc += 1 + i.k as usize;
                    continue;
                }
                JEQ_K => acc == i.k,
                JGE_K => acc >= i.k,
                JSET_K => acc & i.k != 0,
                c => panic!("opcode {c:#x}"),
            };
            pc += 1 + usize::from(if taken { i.jt } else { i.jf });
        }
    }

    #[test]
    fn the_filter_notifies_exactly_the_tables_calls() {
        let p = program(true).expect("the filter assembles");
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        for nr in 0..1024u32 {
            let call = CALLS.iter().find(|c| c.nr as u32 == nr);
            let mut args = [0u64; 6];
            match call.and_then(|c| c.only_when.map(|b| (c.name, b))) {
                Some((name, b)) => {
                    args[b.arg] = u64::from(b.bit);
                    let set = run(&p, AUDIT_ARCH, nr, args);
                    args[b.arg] = !u64::from(b.bit) & 0xffff_ffff;
                    let clear = run(&p, AUDIT_ARCH, nr, args);
                    let want = if b.set {
                        (notify, allow)
                    } else {
                        (allow, notify)
                    };
                    assert_eq!((set, clear), want, "{name}");
                }
                None => {
                    let want = if call.is_some() || nr >= calls::NEWER {
                        notify
                    } else {
                        allow
                    };
                    assert_eq!(run(&p, AUDIT_ARCH, nr, args), want, "call {nr}");
                }
            }
            // A binary search: a handful of instructions for any call, not one per
            // listed call.
            assert!(run_counted(&p, AUDIT_ARCH, nr, args).1 <= 16, "call {nr}");
            // Another architecture's calls and x32's are never stopped.
            assert_eq!(run(&p, AUDIT_ARCH ^ 1, nr, args), allow);
            assert_eq!(run(&p, AUDIT_ARCH, nr | 0x4000_0000, args), allow);
        }
    }

    #[test]
    fn sendmsg_goes_unstopped_only_on_the_handoff_descriptor() {
        let mut p = program(false).expect("the filter assembles");
        let nr = libc::SYS_sendmsg as u32;
        let on = |fd: u64| [fd, 0, 0, 0, 0, 0];
        set_handoff(&mut p, 1017);
        assert_eq!(run(&p, AUDIT_ARCH, nr, on(1017)), libc::SECCOMP_RET_ALLOW);
        for fd in [0, 3, 1016, u64::from(HANDOFF)] {
            assert_eq!(
                run(&p, AUDIT_ARCH, nr, on(fd)),
                libc::SECCOMP_RET_USER_NOTIF,
                "sendmsg on {fd}"
            );
        }
        let sendmmsg = libc::SYS_sendmmsg as u32;
        assert_eq!(
            run(&p, AUDIT_ARCH, sendmmsg, on(1017)),
            libc::SECCOMP_RET_USER_NOTIF
        );
    }

    #[test]
    fn without_spawns_the_filter_lets_every_call_that_makes_a_task_go() {
        let with = program(true).expect("the filter assembles");
        let without = program(false).expect("the filter assembles");
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        let spawns: Vec<u32> = CALLS
            .iter()
            .filter(|c| c.effect == Effect::Spawn)
            .map(|c| c.nr as u32)
            .collect();
        assert!(spawns.contains(&(libc::SYS_clone as u32)));
        for nr in 0..1024u32 {
            let args = [0u64; 6];
            let want = if spawns.contains(&nr) && nr < calls::NEWER {
                allow
            } else {
                run(&with, AUDIT_ARCH, nr, args)
            };
            assert_eq!(run(&without, AUDIT_ARCH, nr, args), want, "call {nr}");
        }
        assert_eq!(
            run(&with, AUDIT_ARCH, libc::SYS_clone as u32, [0; 6]),
            notify
        );
    }
}
