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

/// The filter program: notify on [`YIELD_CALLS`] of the host architecture, and on
/// [`MASKED_CALLS`] when their bit says so; allow the rest.
pub(crate) fn program() -> Vec<libc::sock_filter> {
    let n = YIELD_CALLS.len();
    // Each masked call: compare the number, load the argument, test the bit.
    let tail = 3 * MASKED_CALLS.len();
    let allow = stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    let mut p = vec![
        // seccomp_data: nr at 0, arch at 4, then the instruction pointer (8 bytes) and
        // the six arguments (8 bytes each; the low word first on these little-endian hosts).
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        allow,
        stmt(LD_W_ABS, 0),
        // x32 calls (bit 30) share x86_64's arch value: never ours.
        jump(JGE_K, 0x4000_0000, 0, 1),
        allow,
    ];
    let far = |ahead: usize| u8::try_from(ahead).unwrap_or(u8::MAX);
    for (j, &(nr, _, _)) in YIELD_CALLS.iter().enumerate() {
        // Jump to the notify return after the final allow. A jump reaches 255
        // instructions at most: the tables stay below that (a test checks).
        p.push(jump(JEQ_K, nr as u32, far(n - j + tail), 0));
    }
    for (k, &(nr, _, _, arg, bit, when_set)) in MASKED_CALLS.iter().enumerate() {
        // From the bit test (the block's third instruction) to the final allow.
        let to_allow = far(tail - 3 * k - 3);
        p.push(jump(JEQ_K, nr as u32, 0, 2));
        p.push(stmt(LD_W_ABS, 16 + 8 * arg as u32));
        let (jt, jf) = if when_set {
            (to_allow + 1, to_allow)
        } else {
            (to_allow, to_allow + 1)
        };
        p.push(jump(JSET_K, bit, jt, jf));
    }
    p.push(allow);
    p.push(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF));
    p
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

    #[test]
    fn the_table_fits_the_filters_jumps() {
        assert!(
            YIELD_CALLS.len() + 3 * MASKED_CALLS.len() < 250,
            "{} calls",
            YIELD_CALLS.len()
        );
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
    fn every_yield_call_jumps_to_the_notify_return() {
        let p = program();
        let notify = p.len() - 1;
        assert_eq!(p[notify].k, libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(p[notify - 1].k, libc::SECCOMP_RET_ALLOW);
        let first = p.len() - 2 - YIELD_CALLS.len() - 3 * MASKED_CALLS.len();
        for (j, &(nr, _, _)) in YIELD_CALLS.iter().enumerate() {
            let ins = &p[first + j];
            assert_eq!((ins.code, ins.k), (JEQ_K, nr as u32));
            assert_eq!(first + j + 1 + ins.jt as usize, notify);
        }
        // Each masked block's bit test lands on the allow or the notify return.
        let blocks = first + YIELD_CALLS.len();
        for (k, c) in MASKED_CALLS.iter().enumerate() {
            let test = blocks + 3 * k + 2;
            let (set, clear) = (
                test + 1 + p[test].jt as usize,
                test + 1 + p[test].jf as usize,
            );
            let (yes, no) = if c.5 { (set, clear) } else { (clear, set) };
            assert_eq!((yes, no), (notify, notify - 1), "{}", c.1);
        }
    }
}
