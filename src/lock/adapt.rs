//! Two ways to test a lock that does not have [`Lock`]'s shape, with no `unsafe`:
//!
//! - [`GuardLock`], for locks whose `lock()` hands back a guard that borrows the lock
//!   (`fd_lock::RwLock::write`, `std::sync::Mutex`-style APIs). [`HeldByThread`] turns one
//!   into a [`Lock`]: a thread of the buyer process owns the lock, takes the guard when
//!   asked and keeps it on its own stack until `unlock`, so the guard's borrow never
//!   outlives the value it borrows and the lock is genuinely held in between.
//! - [`lock_fn`], for locks with separate lock and unlock calls (`fs4`, `fslock`):
//!   four closures over a state the first one opens in the trial's directory.

use super::{Lock, LockError};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// A lock whose holder is a guard: taking it borrows the lock, dropping the guard gives it
/// back. Wrap it in [`HeldByThread`] to test it with [`crate::assert_sound`].
///
/// ```no_run
/// use oversell::{GuardLock, HeldByThread, LockError};
/// use std::fs::File;
/// use std::path::Path;
///
/// /// fd-lock's write lock (`flock(2)` underneath).
/// #[derive(Default)]
/// struct FdLock(Option<fd_lock::RwLock<File>>);
///
/// impl GuardLock for FdLock {
///     type Guard<'a> = fd_lock::RwLockWriteGuard<'a, File>;
///     fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
///         let f = File::create(dir.join("fd.lock")).map_err(|e| LockError::io("open", e))?;
///         self.0 = Some(fd_lock::RwLock::new(f));
///         Ok(())
///     }
///     fn acquire(&mut self) -> Result<Self::Guard<'_>, LockError> {
///         let l = self.0.as_mut().ok_or_else(|| LockError::Setup("not attached".into()))?;
///         l.write().map_err(|e| LockError::io("write", e))
///     }
///     fn try_acquire(&mut self) -> Result<Option<Self::Guard<'_>>, LockError> {
///         let l = self.0.as_mut().ok_or_else(|| LockError::Setup("not attached".into()))?;
///         match l.try_write() {
///             Ok(g) => Ok(Some(g)),
///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
///             Err(e) => Err(LockError::io("try_write", e)),
///         }
///     }
/// }
///
/// # fn check(t: &oversell::Trial) -> Result<(), oversell::Unsound> {
/// oversell::check_sound(t, HeldByThread::new(FdLock::default()))
/// # }
/// ```
pub trait GuardLock: Send + 'static {
    /// The guard: holding it holds the lock.
    type Guard<'a>
    where
        Self: 'a;

    /// Called once in each buyer process before the race, as [`Lock::attach`].
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let _ = dir;
        Ok(())
    }

    /// Takes the lock, waiting while another process holds it.
    fn acquire(&mut self) -> Result<Self::Guard<'_>, LockError>;

    /// Takes the lock if it is free now; `None` when another process holds it.
    fn try_acquire(&mut self) -> Result<Option<Self::Guard<'_>>, LockError>;
}

enum Order {
    Lock,
    TryLock,
    Unlock,
}

/// A [`GuardLock`] driven as a [`Lock`]: see [`GuardLock`] for an example.
pub struct HeldByThread<G: GuardLock> {
    /// Before `attach`: the lock, not yet handed to its thread.
    idle: Option<G>,
    thread: Option<Holder>,
}

struct Holder {
    orders: Sender<Order>,
    answers: Receiver<Result<bool, LockError>>,
    handle: Option<JoinHandle<()>>,
}

impl<G: GuardLock> HeldByThread<G> {
    /// Wraps `lock`; its thread starts at [`Lock::attach`], inside the buyer process.
    pub fn new(lock: G) -> Self {
        HeldByThread {
            idle: Some(lock),
            thread: None,
        }
    }

    fn ask(&mut self, order: Order) -> Result<bool, LockError> {
        let holder = self
            .thread
            .as_mut()
            .ok_or_else(|| LockError::Setup("the guard lock is not attached".into()))?;
        if holder.orders.send(order).is_ok() {
            if let Ok(answer) = holder.answers.recv() {
                return answer;
            }
        }
        // The thread is gone: it panicked in the user's lock. Raise the panic here, where
        // the buyer reports it with the method it was in.
        if let Some(Err(panic)) = holder.handle.take().map(JoinHandle::join) {
            std::panic::resume_unwind(panic);
        }
        Err(LockError::Setup("the guard lock's thread ended".into()))
    }
}

impl<G: GuardLock> Lock for HeldByThread<G> {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let mut lock = self
            .idle
            .take()
            .ok_or_else(|| LockError::Setup("the guard lock is already attached".into()))?;
        lock.attach(dir)?;
        let (orders, their_orders) = channel();
        let (their_answers, answers) = channel();
        let handle = std::thread::Builder::new()
            .name("oversell-guard".into())
            .spawn(move || hold(lock, their_orders, their_answers))
            .map_err(|e| LockError::io("starting the guard lock's thread", e))?;
        self.thread = Some(Holder {
            orders,
            answers,
            handle: Some(handle),
        });
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.ask(Order::Lock).map(drop)
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.ask(Order::TryLock)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.ask(Order::Unlock).map(drop)
    }
}

/// The holder thread: takes the guard when ordered and keeps it until `Unlock`.
fn hold<G: GuardLock>(
    mut lock: G,
    orders: Receiver<Order>,
    answers: Sender<Result<bool, LockError>>,
) {
    while let Ok(order) = orders.recv() {
        let guard = match order {
            Order::Lock => lock.acquire().map(Some),
            Order::TryLock => lock.try_acquire(),
            // Nothing is held: giving it back again does nothing.
            Order::Unlock => Ok(None),
        };
        let guard = match guard {
            Ok(Some(g)) => g,
            Ok(None) => {
                let taken = !matches!(order, Order::TryLock);
                if answers.send(Ok(taken)).is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                if answers.send(Err(e)).is_err() {
                    return;
                }
                continue;
            }
        };
        if answers.send(Ok(true)).is_err() {
            return;
        }
        // Held: the guard lives here until the buyer gives the lock back.
        loop {
            match orders.recv() {
                Ok(Order::Unlock) => break,
                Ok(_) => {
                    let again = LockError::Setup("the guard lock is already held".into());
                    if answers.send(Err(again)).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        drop(guard);
        if answers.send(Ok(true)).is_err() {
            return;
        }
    }
}

/// A [`Lock`] made of closures: `open` makes the state in the trial's directory (at
/// [`Lock::attach`]), the other three take, try and give back the lock on it.
///
/// ```no_run
/// use oversell::LockError;
/// use std::fs::File;
///
/// // fs4's lock calls, by path: `File` has inherent methods of the same names.
/// let lock = oversell::lock_fn(
///     |dir| File::create(dir.join("fs4.lock")).map_err(|e| LockError::io("open", e)),
///     |f: &mut File| fs4::FileExt::lock(f).map_err(|e| LockError::io("lock", e)),
///     |f: &mut File| match fs4::FileExt::try_lock(f) {
///         Ok(()) => Ok(true),
///         Err(fs4::TryLockError::WouldBlock) => Ok(false),
///         Err(fs4::TryLockError::Error(e)) => Err(LockError::io("try_lock", e)),
///     },
///     |f: &mut File| fs4::FileExt::unlock(f).map_err(|e| LockError::io("unlock", e)),
/// );
/// # fn check(t: &oversell::Trial, l: impl oversell::Lock) { let _ = oversell::check_sound(t, l); }
/// # check(&oversell::Trial::new(oversell::LockKind::None, 2, 1), lock);
/// ```
pub fn lock_fn<S, O, L, T, U>(open: O, lock: L, try_lock: T, unlock: U) -> LockFn<S, O, L, T, U>
where
    O: FnMut(&Path) -> Result<S, LockError>,
    L: FnMut(&mut S) -> Result<(), LockError>,
    T: FnMut(&mut S) -> Result<bool, LockError>,
    U: FnMut(&mut S) -> Result<(), LockError>,
{
    LockFn {
        state: None,
        open,
        lock,
        try_lock,
        unlock,
    }
}

/// The [`Lock`] [`lock_fn`] makes.
pub struct LockFn<S, O, L, T, U> {
    state: Option<S>,
    open: O,
    lock: L,
    try_lock: T,
    unlock: U,
}

fn attached<S>(state: &mut Option<S>) -> Result<&mut S, LockError> {
    state
        .as_mut()
        .ok_or_else(|| LockError::Setup("the lock is not attached".into()))
}

impl<S, O, L, T, U> Lock for LockFn<S, O, L, T, U>
where
    O: FnMut(&Path) -> Result<S, LockError>,
    L: FnMut(&mut S) -> Result<(), LockError>,
    T: FnMut(&mut S) -> Result<bool, LockError>,
    U: FnMut(&mut S) -> Result<(), LockError>,
{
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.state = Some((self.open)(dir)?);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        (self.lock)(attached(&mut self.state)?)
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        (self.try_lock)(attached(&mut self.state)?)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        (self.unlock)(attached(&mut self.state)?)
    }
}
