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
//! Only an object that did not exist when its call was stopped is a trial's to remove:
//! the call is looked at before it runs, and between that look and the call no other
//! step of the trial runs. Trials side by side (`--jobs`) may share a name (a lock named
//! `/mylock`): every object a trial makes or opens by name is kept in one table of the
//! process, with how many running trials use it, and removed only when the last of them
//! ends; a trial that meets one another trial uses names it (their buyers meet in it,
//! which no schedule orders). One made with `IPC_PRIVATE` has no key to find it again by;
//! it stays (the README says so). Files outside the trial directories that steps name (a
//! lock file at a fixed place) and network ports bound by number are kept in the same
//! table, to be named when trials side by side meet in them, and are never removed.

use super::call::Notif;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::sync::Mutex;

/// How many objects one trial remembers: a trial that uses more leaves the rest, as a
/// program that leaks leaves them anywhere.
const MAX_MADE: usize = 1024;

/// One object named by a call.
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
    /// A file outside every trial's directory that a step names (a lock file in
    /// `/tmp`, `/dev/null`'s locks): never a trial's to remove.
    Path(std::path::PathBuf),
    /// A network port bound by number (a lock by `bind`): never a trial's to remove.
    Port(u16),
}

impl Object {
    fn describe(&self) -> String {
        match self {
            Object::Queue(name) => format!("message queue /{}", name.to_string_lossy()),
            Object::Semaphores(k) => format!("SysV semaphore set {k:#x}"),
            Object::Messages(k) => format!("SysV message queue {k:#x}"),
            Object::Memory(k) => format!("SysV segment {k:#x}"),
            Object::Path(p) => p.display().to_string(),
            Object::Port(port) => format!("network port {port}"),
        }
    }
}

/// Who uses an object now: how many running trials, whether one of them made it,
/// whether one changed it (a look of two trials at one file meets nothing), and whether
/// two used it at once with one changing it.
#[derive(Debug, Default)]
struct Use {
    trials: usize,
    made: bool,
    changed: bool,
    shared: bool,
}

/// The objects the running trials of this process use by name.
static IN_USE: Mutex<BTreeMap<Object, Use>> = Mutex::new(BTreeMap::new());

fn in_use() -> std::sync::MutexGuard<'static, BTreeMap<Object, Use>> {
    IN_USE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The objects one trial uses; [`Made::remove`] (or its drop) lets go of them once its
/// processes are gone, removing those a trial made and no running trial still uses.
#[derive(Debug, Default)]
pub(crate) struct Made {
    used: BTreeSet<Object>,
}

impl Made {
    /// Notes the object the stopped call `n` names, if any, and whether it is about to
    /// make it; says so when another running trial uses it too.
    pub(crate) fn note(&mut self, n: &Notif) -> Option<String> {
        let (object, creates) = named(n)?;
        self.note_object(object, creates, true)
    }

    /// Notes `path`, outside the trial's directory, which a step of the trial names
    /// (one that `changes` it: a write, a create, a lock): trials side by side that both
    /// use it, one changing it, meet there, which no schedule orders (a lock file at a
    /// fixed place, `flock /tmp/app.lock`).
    pub(crate) fn note_path(&mut self, path: &std::path::Path, changes: bool) -> Option<String> {
        self.note_object(Object::Path(path.to_path_buf()), false, changes)
    }

    fn note_object(&mut self, object: Object, creates: bool, changes: bool) -> Option<String> {
        let makes = creates && !exists(&object);
        let mut table = in_use();
        let first = !self.used.contains(&object);
        if first && self.used.len() >= MAX_MADE {
            return None;
        }
        let entry = table.entry(object.clone()).or_default();
        if first {
            entry.trials += 1;
        }
        entry.made |= makes;
        entry.changed |= changes;
        // Met now: another running trial uses it, and one of them changed it.
        let met = entry.trials > 1 && entry.changed && !entry.shared;
        entry.shared |= met;
        let said = met.then(|| {
            format!(
                "uses {} as a trial running beside it does (--jobs 1 runs one trial at a time)",
                object.describe()
            )
        });
        self.used.insert(object);
        said
    }

    /// An object this trial used that another running trial used too (either may have
    /// been first), named.
    pub(crate) fn shared(&self) -> Option<String> {
        let table = in_use();
        self.used
            .iter()
            .find(|o| table.get(*o).is_some_and(|u| u.shared))
            .map(Object::describe)
    }

    /// Lets go of every object this trial used: one a trial made is removed when no
    /// running trial uses it any more.
    pub(crate) fn remove(&mut self) {
        let used = std::mem::take(&mut self.used);
        if used.is_empty() {
            return;
        }
        let mut table = in_use();
        for o in used {
            let Some(entry) = table.get_mut(&o) else {
                continue;
            };
            entry.trials = entry.trials.saturating_sub(1);
            if entry.trials == 0 {
                let made = entry.made;
                table.remove(&o);
                if made {
                    remove(&o);
                }
            }
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The object `n` names by a name or key, and whether it may make it (`O_CREAT`,
/// `IPC_CREAT`); `None` for a call that names none.
fn named(n: &Notif) -> Option<(Object, bool)> {
    let key = n.args[0] as libc::key_t;
    let keyed = key != libc::IPC_PRIVATE;
    let creates = |flags: u64| (flags as i32) & libc::IPC_CREAT != 0;
    Some(match n.nr {
        libc::SYS_mq_open => {
            let name = super::paths::read_cbytes(n.pid, n.args[0])?;
            let creates = (n.args[1] as i32) & libc::O_CREAT != 0;
            (Object::Queue(CString::new(name).ok()?), creates)
        }
        libc::SYS_semget if keyed => (Object::Semaphores(key), creates(n.args[2])),
        libc::SYS_msgget if keyed => (Object::Messages(key), creates(n.args[1])),
        libc::SYS_shmget if keyed => (Object::Memory(key), creates(n.args[2])),
        libc::SYS_bind => (Object::Port(super::call::bound_port(n)?), false),
        _ => return None,
    })
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
            Object::Queue(_) | Object::Path(_) | Object::Port(_) => -1,
        }
    };
    (id >= 0).then_some(id)
}

/// Removes `o` if it exists; a failure leaves it (it is someone else's, or gone).
fn remove(o: &Object) {
    if matches!(o, Object::Path(_) | Object::Port(_)) {
        return;
    }
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
        Notif::own(nr, args)
    }

    fn make_queue(n: &CString) {
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
    }

    #[test]
    fn a_file_two_trials_use_is_named_once_one_changes_it() {
        let path =
            std::path::PathBuf::from(format!("/tmp/oversell-ipc-test-{}", std::process::id()));
        let (mut a, mut b) = (Made::default(), Made::default());
        // Two looks meet nothing; a change by either names it, once.
        assert_eq!(a.note_path(&path, false), None);
        assert_eq!(b.note_path(&path, false), None);
        let said = b.note_path(&path, true).expect("named");
        assert!(
            said.contains(&format!(
                "uses {} as a trial running beside it does",
                path.display()
            )),
            "{said}"
        );
        assert_eq!(a.note_path(&path, true), None);
        assert!(a.shared().is_some() && b.shared().is_some());
        a.remove();
        b.remove();
        // Alone, a trial's changes meet nothing.
        let mut c = Made::default();
        assert_eq!(c.note_path(&path, true), None);
        assert!(c.shared().is_none());
    }

    fn open_call(n: &CString, flags: i32) -> Notif {
        notif(
            libc::SYS_mq_open,
            [n.as_ptr() as u64, flags as u64, 0o600, 0, 0, 0],
        )
    }

    #[test]
    fn a_queue_made_in_a_trial_is_removed_and_one_that_was_there_stays() {
        let pid = std::process::id();
        let name = CString::new(format!("oversell-test-{pid}")).expect("name");
        let old = CString::new(format!("oversell-test-old-{pid}")).expect("name");
        make_queue(&old);
        let mut made = Made::default();
        assert_eq!(
            made.note(&open_call(&name, libc::O_RDWR | libc::O_CREAT)),
            None
        );
        assert_eq!(
            made.note(&open_call(&old, libc::O_RDWR | libc::O_CREAT)),
            None
        );
        make_queue(&name);
        made.remove();
        assert!(!exists(&Object::Queue(name)));
        let old_one = Object::Queue(old);
        assert!(exists(&old_one), "a queue the trial did not make stays");
        remove(&old_one);
    }

    #[test]
    fn a_queue_two_trials_use_stays_until_both_end() {
        let name =
            CString::new(format!("oversell-test-shared-{}", std::process::id())).expect("name");
        let (mut a, mut b) = (Made::default(), Made::default());
        assert_eq!(
            a.note(&open_call(&name, libc::O_RDWR | libc::O_CREAT)),
            None
        );
        make_queue(&name);
        let said = b.note(&open_call(&name, libc::O_RDWR));
        assert!(
            said.as_deref()
                .is_some_and(|s| s.contains("as a trial running beside it does")),
            "{said:?}"
        );
        a.remove();
        assert!(exists(&Object::Queue(name.clone())), "b still uses it");
        assert!(b
            .shared()
            .is_some_and(|s| s.contains("message queue /oversell-test-shared")));
        drop(b);
        assert!(
            !exists(&Object::Queue(name)),
            "the last user's end removes it"
        );
    }

    #[test]
    fn a_semaphore_set_made_under_a_key_is_removed() {
        let key = 0x0e5e_0000 | (std::process::id() as libc::key_t & 0xffff);
        let mut made = Made::default();
        let flags = (libc::IPC_CREAT | 0o600) as u64;
        made.note(&notif(libc::SYS_semget, [key as u64, 1, flags, 0, 0, 0]));
        // A private set has no key to find it again by.
        made.note(&notif(libc::SYS_semget, [0, 1, flags, 0, 0, 0]));
        assert_eq!(made.used, BTreeSet::from([Object::Semaphores(key)]));
        // SAFETY: plain values.
        let id = unsafe { libc::semget(key, 1, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
        made.remove();
        assert_eq!(super::id(&Object::Semaphores(key)), None);
    }
}
