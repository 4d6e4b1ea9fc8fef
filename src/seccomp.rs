//! The seccomp filter that makes a buyer's system calls yield points, and its
//! installation: in a user's command between fork and exec (by the harness's spawn), or
//! by oversell's own buyer on itself once started (`--granularity syscall`: its loader
//! and runtime start-up touch nothing of the trial, and need not stop one call at a time).
//!
//! The filter is a small classic-BPF program written against libc's types: a call of
//! the host architecture whose number is in `YIELD_CALLS` is reported to the harness
//! (`SECCOMP_RET_USER_NOTIF`); every other call is allowed. It is installed with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER`, so the kernel hands back a listener descriptor,
//! which the process sends to the harness over a socket (`SCM_RIGHTS`).
//! Every process the buyer starts inherits the filter, and notifies the same listener.

use std::io;
use std::os::fd::RawFd;

/// How a call names what it touches: which arguments hold a path (and its directory
/// descriptor) or a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A path in this argument, relative to the working directory.
    Path(usize),
    /// A directory descriptor and a path.
    PathAt(usize, usize),
    /// Two paths (old rename, link).
    Paths(usize, usize),
    /// Two (directory descriptor, path) pairs (renameat, linkat).
    PathsAt(usize, usize, usize, usize),
    /// A descriptor in this argument.
    Fd(usize),
    /// `flock(fd, op)`.
    Flock,
    /// `fcntl(fd, cmd, arg)`: a step only for the lock commands.
    Fcntl,
    /// A sleep: it yields, and returns at once.
    Sleep,
    /// An operation on shared kernel or memory state that names no file (a SysV
    /// semaphore or message queue, a futex in shared memory): a step that conflicts
    /// with every other.
    Ipc,
    /// `mmap` of a file with `MAP_SHARED`, `shmat`, `connect`: no step, but state that
    /// buyers may share through memory or another process, which no step orders and the
    /// run names (`not verified`).
    MapShared,
}

macro_rules! calls {
    ($($name:ident => $shape:expr),* $(,)?) => {
        /// The yield-point calls of this architecture: number, name, shape.
        pub(crate) const YIELD_CALLS: &[(i64, &str, Shape)] = &[
            $((libc::$name as i64, stringify!($name), $shape)),*
        ];
    };
}

#[cfg(target_arch = "x86_64")]
calls! {
    SYS_open => Shape::Path(0), SYS_creat => Shape::Path(0), SYS_openat => Shape::PathAt(0, 1),
    SYS_openat2 => Shape::PathAt(0, 1), SYS_read => Shape::Fd(0), SYS_pread64 => Shape::Fd(0),
    SYS_readv => Shape::Fd(0), SYS_preadv => Shape::Fd(0), SYS_write => Shape::Fd(0),
    SYS_pwrite64 => Shape::Fd(0), SYS_writev => Shape::Fd(0), SYS_pwritev => Shape::Fd(0),
    SYS_truncate => Shape::Path(0), SYS_ftruncate => Shape::Fd(0),
    SYS_rename => Shape::Paths(0, 1), SYS_renameat => Shape::PathsAt(0, 1, 2, 3),
    SYS_renameat2 => Shape::PathsAt(0, 1, 2, 3), SYS_link => Shape::Paths(0, 1),
    SYS_linkat => Shape::PathsAt(0, 1, 2, 3), SYS_unlink => Shape::Path(0),
    SYS_unlinkat => Shape::PathAt(0, 1), SYS_mkdir => Shape::Path(0),
    SYS_mkdirat => Shape::PathAt(0, 1), SYS_rmdir => Shape::Path(0), SYS_flock => Shape::Flock,
    SYS_fcntl => Shape::Fcntl, SYS_fsync => Shape::Fd(0), SYS_fdatasync => Shape::Fd(0),
    SYS_close => Shape::Fd(0), SYS_nanosleep => Shape::Sleep, SYS_clock_nanosleep => Shape::Sleep,
    SYS_stat => Shape::Path(0), SYS_lstat => Shape::Path(0), SYS_newfstatat => Shape::PathAt(0, 1),
    SYS_statx => Shape::PathAt(0, 1), SYS_access => Shape::Path(0),
    SYS_faccessat => Shape::PathAt(0, 1), SYS_faccessat2 => Shape::PathAt(0, 1),
    SYS_symlink => Shape::Path(1), SYS_symlinkat => Shape::PathAt(1, 2),
    SYS_readlink => Shape::Path(0), SYS_readlinkat => Shape::PathAt(0, 1),
    SYS_mknod => Shape::Path(0), SYS_mknodat => Shape::PathAt(0, 1),
    SYS_getdents64 => Shape::Fd(0), SYS_getdents => Shape::Fd(0),
    SYS_utimensat => Shape::PathAt(0, 1), SYS_chmod => Shape::Path(0),
    SYS_fchmodat => Shape::PathAt(0, 1), SYS_semop => Shape::Ipc,
    SYS_semtimedop => Shape::Ipc, SYS_msgsnd => Shape::Ipc, SYS_msgrcv => Shape::Ipc,
    SYS_shmat => Shape::MapShared, SYS_connect => Shape::MapShared,
}

/// Calls reported only when one bit of one argument says so: the call, its name and
/// shape, the argument, the bit, and whether a set bit (else a clear one) reports it.
#[cfg(target_arch = "x86_64")]
pub(crate) const MASKED_CALLS: &[(i64, &str, Shape, usize, u32, bool)] = &[
    // A futex in shared memory (no FUTEX_PRIVATE_FLAG): a lock between processes.
    (libc::SYS_futex, "SYS_futex", Shape::Ipc, 1, libc::FUTEX_PRIVATE_FLAG as u32, false),
    (libc::SYS_mmap, "SYS_mmap", Shape::MapShared, 3, libc::MAP_SHARED as u32, true),
];

#[cfg(target_arch = "aarch64")]
calls! {
    SYS_openat => Shape::PathAt(0, 1), SYS_openat2 => Shape::PathAt(0, 1),
    SYS_read => Shape::Fd(0), SYS_pread64 => Shape::Fd(0), SYS_readv => Shape::Fd(0),
    SYS_preadv => Shape::Fd(0), SYS_write => Shape::Fd(0), SYS_pwrite64 => Shape::Fd(0),
    SYS_writev => Shape::Fd(0), SYS_pwritev => Shape::Fd(0), SYS_truncate => Shape::Path(0),
    SYS_ftruncate => Shape::Fd(0), SYS_renameat2 => Shape::PathsAt(0, 1, 2, 3),
    SYS_linkat => Shape::PathsAt(0, 1, 2, 3), SYS_unlinkat => Shape::PathAt(0, 1),
    SYS_mkdirat => Shape::PathAt(0, 1), SYS_flock => Shape::Flock, SYS_fcntl => Shape::Fcntl,
    SYS_fsync => Shape::Fd(0), SYS_fdatasync => Shape::Fd(0), SYS_close => Shape::Fd(0),
    SYS_nanosleep => Shape::Sleep, SYS_clock_nanosleep => Shape::Sleep,
    SYS_newfstatat => Shape::PathAt(0, 1), SYS_statx => Shape::PathAt(0, 1),
    SYS_faccessat => Shape::PathAt(0, 1), SYS_faccessat2 => Shape::PathAt(0, 1),
    SYS_symlinkat => Shape::PathAt(1, 2), SYS_readlinkat => Shape::PathAt(0, 1),
    SYS_mknodat => Shape::PathAt(0, 1), SYS_getdents64 => Shape::Fd(0),
    SYS_utimensat => Shape::PathAt(0, 1), SYS_fchmodat => Shape::PathAt(0, 1),
    SYS_semop => Shape::Ipc, SYS_semtimedop => Shape::Ipc, SYS_msgsnd => Shape::Ipc,
    SYS_msgrcv => Shape::Ipc, SYS_shmat => Shape::MapShared, SYS_connect => Shape::MapShared,
}

/// Calls reported only when one bit of one argument says so (see the x86_64 table).
#[cfg(target_arch = "aarch64")]
pub(crate) const MASKED_CALLS: &[(i64, &str, Shape, usize, u32, bool)] = &[
    (libc::SYS_futex, "SYS_futex", Shape::Ipc, 1, libc::FUTEX_PRIVATE_FLAG as u32, false),
    (libc::SYS_mmap, "SYS_mmap", Shape::MapShared, 3, libc::MAP_SHARED as u32, true),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
/// No yield points on an architecture the filter does not know.
pub(crate) const YIELD_CALLS: &[(i64, &str, Shape)] = &[];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) const MASKED_CALLS: &[(i64, &str, Shape, usize, u32, bool)] = &[];

/// The name and shape of a reported call number, from either table.
pub(crate) fn shape_of(nr: i64) -> Option<(&'static str, Shape)> {
    YIELD_CALLS
        .iter()
        .find(|c| c.0 == nr)
        .map(|c| (c.1, c.2))
        .or_else(|| MASKED_CALLS.iter().find(|c| c.0 == nr).map(|c| (c.1, c.2)))
}

/// `AUDIT_ARCH_*` of the host, as `seccomp_data.arch` carries it.
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
    Masked { arg: usize, bit: u32, when_set: bool },
}

/// Where a jump goes: on to the next instruction, or to a label.
#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    To(usize),
}

/// One instruction before assembly: jumps name labels, which take no room.
enum Ins {
    Stmt(libc::sock_filter),
    Jump(u16, u32, Target, Target),
    Label(usize),
}

/// The labels every program ends with.
const ALLOW: usize = 0;
const NOTIFY: usize = 1;

/// The filter program: notify on [`YIELD_CALLS`] of the host architecture, and on
/// [`MASKED_CALLS`] when their bit says so; allow the rest. The call number is found by
/// a binary search over the sorted numbers, so a call costs a few comparisons (not one
/// per listed call), and so does the kernel's per-filter cache of always-allowed calls,
/// which runs the program once for every call number each time a process installs it.
/// `Err` only if a jump would not fit the format's 8-bit offsets (a test builds it).
pub(crate) fn program() -> io::Result<Vec<libc::sock_filter>> {
    let mut rules: Vec<(u32, Rule)> = YIELD_CALLS
        .iter()
        .map(|&(nr, _, _)| (nr as u32, Rule::Notify))
        .chain(MASKED_CALLS.iter().map(|&(nr, _, _, arg, bit, when_set)| {
            (nr as u32, Rule::Masked { arg, bit, when_set })
        }))
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
    ];
    let mut labels = 2;
    search(&rules, &mut code, &mut labels);
    code.push(Ins::Label(ALLOW));
    code.push(Ins::Stmt(stmt(RET_K, libc::SECCOMP_RET_ALLOW)));
    code.push(Ins::Label(NOTIFY));
    code.push(Ins::Stmt(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF)));
    assemble(&code)
}

/// Code that, with the call number in the accumulator, ends at `ALLOW` or `NOTIFY` as
/// `rules` (sorted by number) say: split at the middle number while more than three are
/// left, then compare one by one.
fn search(rules: &[(u32, Rule)], code: &mut Vec<Ins>, labels: &mut usize) {
    if rules.len() > 3 {
        let mid = rules.len() / 2;
        let upper = *labels;
        *labels += 1;
        code.push(Ins::Jump(JGE_K, rules[mid].0, Target::To(upper), Target::Next));
        search(&rules[..mid], code, labels);
        code.push(Ins::Label(upper));
        search(&rules[mid..], code, labels);
        return;
    }
    for &(nr, rule) in rules {
        match rule {
            Rule::Notify => code.push(Ins::Jump(JEQ_K, nr, Target::To(NOTIFY), Target::Next)),
            Rule::Masked { arg, bit, when_set } => {
                let other = *labels;
                *labels += 1;
                code.push(Ins::Jump(JEQ_K, nr, Target::Next, Target::To(other)));
                code.push(Ins::Stmt(stmt(LD_W_ABS, 16 + 8 * arg as u32)));
                let (set, clear) = if when_set {
                    (NOTIFY, ALLOW)
                } else {
                    (ALLOW, NOTIFY)
                };
                code.push(Ins::Jump(JSET_K, bit, Target::To(set), Target::To(clear)));
                code.push(Ins::Label(other));
            }
        }
    }
    code.push(Ins::Jump(JEQ_K, 0, Target::To(ALLOW), Target::To(ALLOW)));
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
            Ins::Label(_) => {}
        }
    }
    Ok(out)
}

/// No new privileges, the filter, and the listener sent over `sock`: in a child between
/// fork and exec, or in our own buyer once started. Only async-signal-safe calls, no
/// allocation. Once the filter is in place any later call of a yield-point number (the
/// runtime's own, before exec included) waits for the harness's answer, and this process
/// still holds the listener, so the call would never fail: a caller must already die with
/// the harness (`PR_SET_PDEATHSIG`).
pub(crate) fn install(prog: &[libc::sock_filter], sock: RawFd) -> io::Result<()> {
    // SAFETY: plain system calls on values owned by this frame; `fprog` points into
    // `prog`, which outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        let fd = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        send_fd(sock, fd as RawFd)
    }
}

/// Sends `fd` over the Unix socket `sock` (`SCM_RIGHTS`), with one byte of data.
///
/// # Safety
/// `sock` must be a connected Unix socket and `fd` an open descriptor.
unsafe fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [1u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    if cmsg.is_null() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
    if libc::sendmsg(sock, &msg, 0) < 0 {
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
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
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
                JEQ_K => acc == i.k,
                JGE_K => acc >= i.k,
                JSET_K => acc & i.k != 0,
                c => panic!("opcode {c:#x}"),
            };
            pc += 1 + usize::from(if taken { i.jt } else { i.jf });
        }
    }

    #[test]
    fn the_tables_list_each_call_once() {
        let mut nrs: Vec<i64> = YIELD_CALLS.iter().map(|c| c.0).collect();
        nrs.extend(MASKED_CALLS.iter().map(|c| c.0));
        nrs.sort();
        nrs.dedup();
        assert_eq!(
            nrs.len(),
            YIELD_CALLS.len() + MASKED_CALLS.len(),
            "a call is listed twice"
        );
    }

    #[test]
    fn the_filter_notifies_exactly_the_tables_calls() {
        let p = program().expect("the filter assembles");
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        for nr in 0..1024u32 {
            let listed = YIELD_CALLS.iter().any(|c| c.0 as u32 == nr);
            let masked = MASKED_CALLS.iter().find(|c| c.0 as u32 == nr);
            let mut args = [0u64; 6];
            match masked {
                Some(&(_, name, _, arg, bit, when_set)) => {
                    args[arg] = u64::from(bit);
                    let set = run(&p, AUDIT_ARCH, nr, args);
                    args[arg] = !u64::from(bit) & 0xffff_ffff;
                    let clear = run(&p, AUDIT_ARCH, nr, args);
                    let want = if when_set { (notify, allow) } else { (allow, notify) };
                    assert_eq!((set, clear), want, "{name}");
                }
                None => {
                    let want = if listed { notify } else { allow };
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
}
