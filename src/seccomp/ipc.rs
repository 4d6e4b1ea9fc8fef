//! The IPC objects a trial makes by name, so that the harness can remove them when the
//! trial ends: a POSIX message queue (`mq_open` with `O_CREAT`), and a SysV semaphore
//! set, message queue or shared-memory segment made under a key (`semget`, `msgget`,
//! `shmget` with `IPC_CREAT`).
//!
//! A file a trial makes lives in its directory and goes with it; these live in the
//! kernel until someone removes them. One left over changes the next trial (a token a
//! killed holder took is still taken; a search's schedules no longer repeat), and enough
//! of them fill the machine (past a user's 256 queues, `mq_open` fails).
//!
//! Only an object that did not exist when its call was stopped is the trial's: the call
//! is looked at before it runs, and between that look and the call no other step runs.
//! One made with `IPC_PRIVATE` has no key to find it again by; it stays (the README says
//! so). So may one under a name that trials run side by side share: the look and the
//! call are one step of one trial, not of both.

use super::call::Notif;
use std::collections::BTreeSet;
use std::ffi::CString;

/// How many objects one trial's cleanup remembers: a trial that makes more leaves the
/// rest, as a program that leaks leaves them anywhere.
const MAX_MADE: usize = 1024;

/// One object a trial made by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Object {
    /// A POSIX message queue, by its name as the call passes it (no leading `/`).
    Queue(CString),
    /// A SysV semaphore set, by key.
    Semaphores(libc::key_t),
    /// A SysV message queue, by key.
    Messages(libc::key_t),
    /// A SysV shared-memory segment, by key.
    Memory(libc::key_t),
}

/// The objects a trial made; [`Made::remove`] removes them once its processes are gone.
#[derive(Debug, Default)]
pub(crate) struct Made {
    objects: BTreeSet<Object>,
}

impl Made {
    /// Remembers what the stopped call `n` is about to make, if it makes an object by
    /// name that does not exist yet.
    pub(crate) fn note(&mut self, n: &Notif) {
        if self.objects.len() >= MAX_MADE {
            return;
        }
        if let Some(o) = about_to_make(n) {
            self.objects.insert(o);
        }
    }

    /// Removes every remembered object that still exists.
    pub(crate) fn remove(&mut self) {
        for o in std::mem::take(&mut self.objects) {
            remove(&o);
        }
    }
}

/// The object `n` makes when it runs now: `None` for a call that makes none, or one
/// whose object exists already.
fn about_to_make(n: &Notif) -> Option<Object> {
    let key = n.args[0] as libc::key_t;
    let creates = |flags: u64| (flags as i32) & libc::IPC_CREAT != 0 && key != libc::IPC_PRIVATE;
    let object = match n.nr {
        libc::SYS_mq_open if (n.args[1] as i32) & libc::O_CREAT != 0 => {
            let name = super::paths::read_cstr(n.pid, n.args[0])?;
            Object::Queue(CString::new(name).ok()?)
        }
        libc::SYS_semget if creates(n.args[2]) => Object::Semaphores(key),
        libc::SYS_msgget if creates(n.args[1]) => Object::Messages(key),
        libc::SYS_shmget if creates(n.args[2]) => Object::Memory(key),
        _ => return None,
    };
    (!exists(&object)).then_some(object)
}

/// True unless the kernel says `o` does not exist (a refusal of another kind means it
/// does, and is someone's).
fn exists(o: &Object) -> bool {
    match o {
        Object::Queue(name) => {
            // SAFETY: `name` is a NUL-terminated string that outlives the call; the
            // other arguments are plain values (no attributes).
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_mq_open,
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                    0,
                    std::ptr::null::<libc::c_void>(),
                )
            };
            if fd >= 0 {
                // SAFETY: `fd` was just opened here and is closed once.
                unsafe { libc::close(fd as i32) };
                return true;
            }
            std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
        }
        _ => {
            id(o).is_some() || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
        }
    }
}

/// The id of the SysV object `o` names, if it exists (`errno` says why not).
fn id(o: &Object) -> Option<i32> {
    // SAFETY: each call takes plain values and touches no memory of ours.
    let id = unsafe {
        match *o {
            Object::Semaphores(k) => libc::semget(k, 0, 0),
            Object::Messages(k) => libc::msgget(k, 0),
            Object::Memory(k) => libc::shmget(k, 0, 0),
            Object::Queue(_) => -1,
        }
    };
    (id >= 0).then_some(id)
}

/// Removes `o` if it exists; a failure leaves it (it is someone else's, or gone).
fn remove(o: &Object) {
    if let Object::Queue(name) = o {
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        unsafe { libc::syscall(libc::SYS_mq_unlink, name.as_ptr()) };
        return;
    }
    let Some(id) = id(o) else {
        return;
    };
    // SAFETY: IPC_RMID reads no buffer: the null pointers are never followed.
    unsafe {
        match o {
            Object::Semaphores(_) => libc::semctl(id, 0, libc::IPC_RMID),
            Object::Messages(_) => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            _ => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notif(nr: i64, args: [u64; 6]) -> Notif {
        Notif {
            id: 0,
            held: false,
            pid: std::process::id(),
            nr,
            args,
        }
    }

    #[test]
    fn a_queue_made_in_a_trial_is_removed_and_one_that_was_there_stays() {
        let name = CString::new(format!("oversell-test-{}", std::process::id())).expect("name");
        let old = CString::new(format!("oversell-test-old-{}", std::process::id())).expect("name");
        let open = |n: &CString| {
            // SAFETY: as in `exists`, with O_CREAT's mode.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_mq_open,
                    n.as_ptr(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
                    0o600,
                    std::ptr::null::<libc::c_void>(),
                )
            };
            assert!(fd >= 0, "mq_open: {}", std::io::Error::last_os_error());
            // SAFETY: just opened here.
            unsafe { libc::close(fd as i32) };
        };
        open(&old);
        let flags = (libc::O_RDWR | libc::O_CREAT) as u64;
        let mut made = Made::default();
        made.note(&notif(
            libc::SYS_mq_open,
            [name.as_ptr() as u64, flags, 0o600, 0, 0, 0],
        ));
        made.note(&notif(
            libc::SYS_mq_open,
            [old.as_ptr() as u64, flags, 0o600, 0, 0, 0],
        ));
        // Without O_CREAT a call makes nothing.
        let plain = CString::new("oversell-test-never").expect("name");
        made.note(&notif(
            libc::SYS_mq_open,
            [plain.as_ptr() as u64, 2, 0, 0, 0, 0],
        ));
        assert_eq!(made.objects.len(), 1, "{:?}", made.objects);
        open(&name);
        made.remove();
        assert!(!exists(&Object::Queue(name)));
        let old_one = Object::Queue(old);
        assert!(exists(&old_one));
        remove(&old_one);
    }

    #[test]
    fn a_semaphore_set_made_under_a_key_is_removed() {
        let key = 0x0e5e_0000 | (std::process::id() as libc::key_t & 0xffff);
        let mut made = Made::default();
        let flags = (libc::IPC_CREAT | 0o600) as u64;
        made.note(&notif(libc::SYS_semget, [key as u64, 1, flags, 0, 0, 0]));
        // A private set has no key to find it again by.
        made.note(&notif(libc::SYS_semget, [0, 1, flags, 0, 0, 0]));
        assert_eq!(made.objects, BTreeSet::from([Object::Semaphores(key)]));
        // SAFETY: plain values.
        let id = unsafe { libc::semget(key, 1, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
        made.remove();
        assert_eq!(super::id(&Object::Semaphores(key)), None);
    }
}
