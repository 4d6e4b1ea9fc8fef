//! The one table of system calls the filter can stop: for each, how it names what it
//! touches ([`Shape`]) and what it does to the state buyers share ([`Effect`]). The
//! filter program is generated from this table (`super::program`), and the harness reads
//! every judgement of a stopped call from it — what conflicts with what, what a
//! preemption point aims at, what counts as a poll, which call is a lock operation and
//! may block — so a call cannot be stopped without being classified, nor classified
//! without being stopped.

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
    /// No file: a sleep, or kernel or memory state with no name.
    Nameless,
}

/// Which lock call, and so where its arguments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockForm {
    /// `flock(fd, op)`.
    Flock,
    /// `fcntl(fd, cmd, arg)`: a lock operation only for the lock commands.
    Fcntl,
}

/// What a call does to the state buyers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Reads it: a stat, an access check, a read, a directory listing, a readlink.
    Look,
    /// An open: a change when its flags (this argument) write, create or truncate; a
    /// look otherwise.
    Open(usize),
    /// Changes it: a write, a create, a rename, a link, a removal, a change of mode.
    Change,
    /// A lock operation: probed before it runs, since it may block.
    Lock(LockForm),
    /// A close: it may let a lock go.
    Release,
    /// `fsync`, `fdatasync`: nothing another process sees changes.
    Sync,
    /// A sleep: it yields, and returns at once.
    Sleep,
    /// Kernel or memory state with no name to compare (a SysV semaphore or message
    /// queue, a futex in shared memory): a change that conflicts with every step, and a
    /// call that may sleep in the kernel.
    Ipc,
    /// State buyers may share that no step orders (`mmap` of a file with `MAP_SHARED`,
    /// `shmat`, a `connect` to a server, a socket's `bind`, a change of a file's extended
    /// attributes): stopped only to be named (`not verified`).
    Unordered,
    /// Arms or disarms a timer of the process (`alarm`, `setitimer`, `timer_settime`,
    /// `timer_delete`): its signal may end a blocking call at a moment of the machine's
    /// clock, a path no schedule takes. Not a step: it goes on at once, and is
    /// remembered; a lock call that blocks while its process has a timer armed is named
    /// (`not verified`).
    Timer,
    /// Makes a process or a thread (`clone`, `fork`, `vfork`). A step only in a whole
    /// program whose processes share memory: the parent and the new task are then held
    /// until each is scheduled, so what they do in that memory before their next calls
    /// falls in steps of their own (else they would run side by side, and race there
    /// unseen). Anywhere else it goes on at once.
    Spawn,
}

impl Effect {
    /// True when the call, with these arguments, changes what other buyers can see (a
    /// lock operation included). `openat2` keeps its flags in a struct: a change.
    pub(crate) fn changes(self, name: &str, args: &[u64; 6]) -> bool {
        match self {
            Effect::Open(flags) => {
                let writes = libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC;
                name == "SYS_openat2" || (args[flags] as i32) & writes != 0
            }
            Effect::Change | Effect::Lock(_) | Effect::Ipc => true,
            Effect::Look
            | Effect::Release
            | Effect::Sync
            | Effect::Sleep
            | Effect::Unordered
            | Effect::Timer
            | Effect::Spawn => false,
        }
    }
}

/// A call reported only when some bits of one argument say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bit {
    pub arg: usize,
    /// The bits tested (a mask: any of them set counts as set).
    pub bit: u32,
    /// Reported when one of the bits is set (else when all are clear).
    pub set: bool,
}

/// One call the filter stops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub nr: i64,
    pub name: &'static str,
    pub shape: Shape,
    pub effect: Effect,
    pub only_when: Option<Bit>,
}

/// libc's call numbers, and the newest calls libc does not name yet (one number on
/// every architecture since Linux 5.1).
#[allow(non_upper_case_globals)]
mod nr {
    pub use libc::*;
    /// `setxattrat` (Linux 6.13).
    pub const SYS_setxattrat: libc::c_long = 463;
    /// `removexattrat` (Linux 6.13).
    pub const SYS_removexattrat: libc::c_long = 466;
    /// `file_getattr` (Linux 6.17): a file's flags, as `lsattr` reads them.
    pub const SYS_file_getattr: libc::c_long = 468;
    /// `file_setattr` (Linux 6.17): a file's flags, as `chattr` sets them.
    pub const SYS_file_setattr: libc::c_long = 469;
}

/// The first call number past those this table was written against (Linux 6.18, where
/// both architectures number new calls alike). The filter stops every call from here on
/// and the harness names it (`makes system call 470, newer than oversell's table`): a
/// call a later kernel adds may touch files in a way no step sees.
pub(crate) const NEWER: u32 = 470;

macro_rules! table {
    ($($(#[$only:meta])* $name:ident => $shape:expr, $effect:expr $(, when $arg:literal $bit:expr, $set:literal)?);* $(;)?) => {
        /// The calls the filter stops on this architecture.
        pub(crate) const CALLS: &[Call] = &[
            $($(#[$only])* Call {
                nr: nr::$name as i64,
                name: stringify!($name),
                shape: $shape,
                effect: $effect,
                only_when: table!(@when $($arg $bit, $set)?),
            }),*
        ];
    };
    (@when) => { None };
    (@when $arg:literal $bit:expr, $set:literal) => {
        Some(Bit { arg: $arg, bit: $bit as u32, set: $set })
    };
}

use Effect::{Change, Ipc, Look, Open, Release, Sleep, Spawn, Sync, Timer, Unordered};
use Shape::{Fd, Nameless, Path, PathAt, Paths, PathsAt};

// One table for both architectures: an entry under `#[cfg(target_arch = "x86_64")]` is a
// call aarch64 does not have (the calls by a plain path, `fork`, …), where the `…at`
// forms and `clone` listed beside it do the same.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
table! {
    #[cfg(target_arch = "x86_64")]
    SYS_open => Path(0), Open(1);
    #[cfg(target_arch = "x86_64")]
    SYS_creat => Path(0), Change;
    SYS_openat => PathAt(0, 1), Open(2);
    SYS_openat2 => PathAt(0, 1), Open(2);
    SYS_read => Fd(0), Look;
    SYS_pread64 => Fd(0), Look;
    SYS_readv => Fd(0), Look;
    SYS_preadv => Fd(0), Look;
    SYS_preadv2 => Fd(0), Look;
    SYS_write => Fd(0), Change;
    SYS_pwrite64 => Fd(0), Change;
    SYS_writev => Fd(0), Change;
    SYS_pwritev => Fd(0), Change;
    SYS_pwritev2 => Fd(0), Change;
    // Moves bytes from a pipe into the descriptor written (or out of a file).
    SYS_splice => Fd(2), Change;
    SYS_truncate => Path(0), Change;
    SYS_ftruncate => Fd(0), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_rename => Paths(0, 1), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_renameat => PathsAt(0, 1, 2, 3), Change;
    SYS_renameat2 => PathsAt(0, 1, 2, 3), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_link => Paths(0, 1), Change;
    SYS_linkat => PathsAt(0, 1, 2, 3), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_unlink => Path(0), Change;
    SYS_unlinkat => PathAt(0, 1), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_mkdir => Path(0), Change;
    SYS_mkdirat => PathAt(0, 1), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_rmdir => Path(0), Change;
    SYS_flock => Fd(0), Effect::Lock(LockForm::Flock);
    SYS_fcntl => Fd(0), Effect::Lock(LockForm::Fcntl);
    SYS_fsync => Fd(0), Sync;
    SYS_fdatasync => Fd(0), Sync;
    SYS_close => Fd(0), Release;
    SYS_nanosleep => Nameless, Sleep;
    SYS_clock_nanosleep => Nameless, Sleep;
    #[cfg(target_arch = "x86_64")]
    SYS_stat => Path(0), Look;
    #[cfg(target_arch = "x86_64")]
    SYS_lstat => Path(0), Look;
    SYS_newfstatat => PathAt(0, 1), Look;
    SYS_statx => PathAt(0, 1), Look;
    // `fstat` by its own number (older C libraries, static programs; glibc's goes
    // through `newfstatat`): a look at a file's size or times through its descriptor.
    #[cfg(target_arch = "x86_64")]
    SYS_fstat => Fd(0), Look;
    // A seek to the end (or to data: bit 1 of `whence`, SEEK_END 2 and SEEK_DATA 3) is a
    // look at the file's size; a seek from the start or the current offset is none.
    SYS_lseek => Fd(0), Look, when 2 0x2, true;
    #[cfg(target_arch = "x86_64")]
    SYS_access => Path(0), Look;
    SYS_faccessat => PathAt(0, 1), Look;
    SYS_faccessat2 => PathAt(0, 1), Look;
    #[cfg(target_arch = "x86_64")]
    SYS_symlink => Path(1), Change;
    SYS_symlinkat => PathAt(1, 2), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_readlink => Path(0), Look;
    SYS_readlinkat => PathAt(0, 1), Look;
    #[cfg(target_arch = "x86_64")]
    SYS_mknod => Path(0), Change;
    SYS_mknodat => PathAt(0, 1), Change;
    SYS_getdents64 => Fd(0), Look;
    #[cfg(target_arch = "x86_64")]
    SYS_getdents => Fd(0), Look;
    SYS_utimensat => PathAt(0, 1), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_utime => Path(0), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_utimes => Path(0), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_futimesat => PathAt(0, 1), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_chmod => Path(0), Change;
    SYS_fchmodat => PathAt(0, 1), Change;
    SYS_fchmod => Fd(0), Change;
    SYS_fchmodat2 => PathAt(0, 1), Change;
    // A file's owner is state a flag can live in (`chown` as "taken").
    #[cfg(target_arch = "x86_64")]
    SYS_chown => Path(0), Change;
    #[cfg(target_arch = "x86_64")]
    SYS_lchown => Path(0), Change;
    SYS_fchownat => PathAt(0, 1), Change;
    SYS_fchown => Fd(0), Change;
    SYS_fallocate => Fd(0), Change;
    // Copies into the descriptor written (`cp` copies with copy_file_range).
    SYS_copy_file_range => Fd(2), Change;
    SYS_sendfile => Fd(0), Change;
    SYS_semop => Nameless, Ipc;
    SYS_semtimedop => Nameless, Ipc;
    SYS_msgsnd => Nameless, Ipc;
    SYS_msgrcv => Nameless, Ipc;
    // Making, changing and removing SysV objects and POSIX message queues: a create
    // with `IPC_EXCL` or `O_EXCL` is a lock of its own.
    SYS_semget => Nameless, Ipc;
    SYS_semctl => Nameless, Ipc;
    SYS_msgget => Nameless, Ipc;
    SYS_msgctl => Nameless, Ipc;
    SYS_shmget => Nameless, Ipc;
    SYS_shmctl => Nameless, Ipc;
    SYS_mq_open => Nameless, Ipc;
    SYS_mq_unlink => Nameless, Ipc;
    SYS_mq_timedsend => Nameless, Ipc;
    SYS_mq_timedreceive => Nameless, Ipc;
    SYS_mq_getsetattr => Nameless, Ipc;
    // A watch on files (inotify, fanotify): its notices wake a reader blocked on the
    // watch's descriptor, and one made after the change it waits for never comes. The
    // making of a watch is a step, ordered with the changes it races.
    #[cfg(target_arch = "x86_64")]
    SYS_inotify_init => Nameless, Ipc;
    SYS_inotify_init1 => Nameless, Ipc;
    SYS_inotify_add_watch => Nameless, Ipc;
    SYS_inotify_rm_watch => Nameless, Ipc;
    SYS_fanotify_init => Nameless, Ipc;
    SYS_fanotify_mark => Nameless, Ipc;
    SYS_mq_notify => Nameless, Ipc;
    SYS_shmat => Nameless, Unordered;
    // A wait on descriptors with a time limit: it ends by the clock or by what another
    // process does, and the harness lets it end by itself. Named when it has both.
    #[cfg(target_arch = "x86_64")]
    SYS_poll => Nameless, Unordered;
    SYS_ppoll => Nameless, Unordered;
    #[cfg(target_arch = "x86_64")]
    SYS_select => Nameless, Unordered;
    SYS_pselect6 => Nameless, Unordered;
    #[cfg(target_arch = "x86_64")]
    SYS_epoll_wait => Nameless, Unordered;
    SYS_epoll_pwait => Nameless, Unordered;
    SYS_epoll_pwait2 => Nameless, Unordered;
    SYS_connect => Nameless, Unordered;
    // A signal to another process (a holder waking a waiter, `kill -0 PID` asking
    // whether a holder lives): named when it leaves the caller's own process and
    // children, never a step.
    SYS_kill => Nameless, Unordered;
    SYS_tkill => Nameless, Unordered;
    SYS_tgkill => Nameless, Unordered;
    SYS_rt_sigqueueinfo => Nameless, Unordered;
    SYS_rt_tgsigqueueinfo => Nameless, Unordered;
    SYS_pidfd_send_signal => Nameless, Unordered;
    // Joining another process group: a signal to the caller's own group then reaches
    // the processes of that group (another buyer's).
    SYS_setpgid => Nameless, Unordered;
    // A name taken by binding a socket (a path or an abstract name), and a file's
    // extended attributes: state a lock can live in that no step orders.
    SYS_bind => Nameless, Unordered;
    SYS_setxattr => Nameless, Unordered;
    SYS_lsetxattr => Nameless, Unordered;
    SYS_fsetxattr => Nameless, Unordered;
    SYS_removexattr => Nameless, Unordered;
    SYS_lremovexattr => Nameless, Unordered;
    SYS_fremovexattr => Nameless, Unordered;
    SYS_setxattrat => Nameless, Unordered;
    SYS_removexattrat => Nameless, Unordered;
    SYS_file_getattr => Nameless, Unordered;
    SYS_file_setattr => Nameless, Unordered;
    // A ring whose operations (open, rename, mkdir, write, …) the kernel runs with no
    // call of their own: state no step orders.
    SYS_io_uring_setup => Nameless, Unordered;
    // Linux's native AIO: its reads and writes run with no call of their own.
    SYS_io_setup => Nameless, Unordered;
    // A file opened by handle (`name_to_handle_at`'s): no path names it.
    SYS_open_by_handle_at => Nameless, Unordered;
    // Keys in the kernel's key store: a flag with no file at all.
    SYS_add_key => Nameless, Unordered;
    SYS_keyctl => Nameless, Unordered;
    SYS_request_key => Nameless, Unordered;
    // A file's flags (`chattr`'s FS_IOC_SETFLAGS, 'f' ioctls; FS_IOC_FSSETXATTR, an 'X'
    // one): stopped when bit 13 or bit 11 of the request is set, as one is for every
    // 'f' and 'X' ioctl and neither for a terminal ('T') one.
    SYS_ioctl => Nameless, Unordered, when 1 0x2800, true;
    // A request to a server: a step when the server is the trial's own; a datagram to
    // an address of its own is named. (`sendmsg` on the one descriptor a process hands
    // its listener to the harness over, right after installing the filter, goes on:
    // `super::set_handoff`.)
    SYS_sendto => Fd(0), Change;
    SYS_sendmsg => Fd(0), Change;
    SYS_sendmmsg => Fd(0), Change;
    // A futex in shared memory (no FUTEX_PRIVATE_FLAG): a lock between processes.
    SYS_futex => Nameless, Ipc, when 1 libc::FUTEX_PRIVATE_FLAG, false;
    SYS_mmap => Nameless, Unordered, when 3 libc::MAP_SHARED, true;
    // A timer whose signal may cut a blocking call short (`flock -w`, `alarm` around
    // a lock): remembered, never a step.
    #[cfg(target_arch = "x86_64")]
    SYS_alarm => Nameless, Timer;
    SYS_setitimer => Nameless, Timer;
    SYS_timer_settime => Nameless, Timer;
    SYS_timer_delete => Nameless, Timer;
    SYS_clone => Nameless, Spawn;
    SYS_clone3 => Nameless, Spawn;
    #[cfg(target_arch = "x86_64")]
    SYS_fork => Nameless, Spawn;
    #[cfg(target_arch = "x86_64")]
    SYS_vfork => Nameless, Spawn;
}

/// True for a call that changes a file itself (its size, mode, owner or times) and not
/// the entry that names it: what such a call on the trial directory changes is its
/// attributes, where a `mkdir` of it only fails.
pub(crate) fn changes_the_file(name: &str) -> bool {
    matches!(
        name,
        "SYS_truncate"
            | "SYS_chmod"
            | "SYS_fchmodat"
            | "SYS_fchmodat2"
            | "SYS_utimensat"
            | "SYS_utime"
            | "SYS_utimes"
            | "SYS_futimesat"
            | "SYS_chown"
            | "SYS_lchown"
            | "SYS_fchownat"
    )
}

/// No yield points on an architecture the filter does not know.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) const CALLS: &[Call] = &[];

/// The table's entry for a reported call number.
pub(crate) fn of(nr: i64) -> Option<&'static Call> {
    CALLS.iter().find(|c| c.nr == nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_is_listed_once() {
        let mut nrs: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), CALLS.len(), "a call is listed twice");
    }

    #[test]
    fn each_effect_fits_how_its_call_names_things() {
        for c in CALLS {
            let named = !matches!(c.shape, Shape::Nameless);
            let wants_name = !matches!(c.effect, Sleep | Ipc | Unordered | Timer | Spawn);
            assert_eq!(named, wants_name, "{}", c.name);
            if let Effect::Lock(_) = c.effect {
                assert_eq!(c.shape, Shape::Fd(0), "{}", c.name);
            }
            if let Open(flags) = c.effect {
                assert!(flags < 6, "{}", c.name);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_calls_only_x86_64_has_are_in_its_table() {
        for nr in [
            libc::SYS_open,
            libc::SYS_stat,
            libc::SYS_rename,
            libc::SYS_getdents,
            libc::SYS_vfork,
        ] {
            assert!(of(nr).is_some(), "call {nr} is missing");
        }
    }

    #[test]
    fn an_open_changes_only_when_it_writes_creates_or_truncates() {
        let open = of(libc::SYS_openat).expect("openat is listed");
        let args = |flags: i32| [0, 0, flags as u64, 0, 0, 0];
        assert!(!open.effect.changes(open.name, &args(libc::O_RDONLY)));
        assert!(open.effect.changes(open.name, &args(libc::O_CREAT)));
        assert!(open
            .effect
            .changes(open.name, &args(libc::O_WRONLY | libc::O_APPEND)));
        let write = of(libc::SYS_write).expect("write is listed");
        assert!(write.effect.changes(write.name, &[0; 6]));
        let stat = of(libc::SYS_newfstatat).expect("newfstatat is listed");
        assert!(!stat.effect.changes(stat.name, &[0; 6]));
    }
}
