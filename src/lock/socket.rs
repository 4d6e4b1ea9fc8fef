//! `socket`: a lock server on a local socket inside the trial's private directory.
//!
//! The harness starts the server as a helper process (`oversell __lock-server DIR`), in the
//! trial's process group, and waits for its `ready` line. Each buyer connects once. The
//! protocol is one line each way: `lock` → `ok`, `try` → `ok` | `busy`, `unlock` → `ok`.
//! A client whose connection ends (it exited or was killed) loses its hold. The socket
//! lives in the trial directory, which only this user can enter.

use super::{Lock, LockError};
use interprocess::local_socket::{
    prelude::*, GenericFilePath, Listener, ListenerOptions, Stream, ToFsName,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// The socket's file name inside a trial directory.
pub(crate) const SOCKET_NAME: &str = "lock.sock";

fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// A client of the trial's lock server.
#[derive(Debug, Default)]
pub(crate) struct SocketLock {
    conn: Option<BufReader<Stream>>,
}

impl SocketLock {
    fn call(&mut self, request: &str) -> Result<String, LockError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| LockError::Setup("socket: not attached to a trial".into()))?;
        conn.get_mut()
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| LockError::io("writing to the lock server", e))?;
        let mut line = String::new();
        let n = conn
            .read_line(&mut line)
            .map_err(|e| LockError::io("reading from the lock server", e))?;
        if n == 0 {
            return Err(LockError::Protocol(
                "the server closed the connection".into(),
            ));
        }
        Ok(line.trim_end().to_string())
    }
}

impl Lock for SocketLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let name = socket_path(dir)
            .to_fs_name::<GenericFilePath>()
            .map_err(|e| LockError::io("naming the lock socket", e))?;
        let stream =
            Stream::connect(name).map_err(|e| LockError::io("connecting to the lock server", e))?;
        self.conn = Some(BufReader::new(stream));
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        match self.call("lock")?.as_str() {
            "ok" => Ok(()),
            other => Err(LockError::Protocol(format!(
                "unexpected answer {other:?} to lock"
            ))),
        }
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        match self.call("try")?.as_str() {
            "ok" => Ok(true),
            "busy" => Ok(false),
            other => Err(LockError::Protocol(format!(
                "unexpected answer {other:?} to try"
            ))),
        }
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        match self.call("unlock")?.as_str() {
            "ok" => Ok(()),
            other => Err(LockError::Protocol(format!(
                "unexpected answer {other:?} to unlock"
            ))),
        }
    }
}

/// Binds the server's socket in `dir`. The caller announces readiness, then calls [`serve`].
pub(crate) fn bind(dir: &Path) -> Result<Listener, LockError> {
    let name = socket_path(dir)
        .to_fs_name::<GenericFilePath>()
        .map_err(|e| LockError::io("naming the lock socket", e))?;
    ListenerOptions::new()
        .name(name)
        .create_sync()
        .map_err(|e| LockError::io("binding the lock socket", e))
}

#[derive(Default)]
struct Table {
    holder: Option<u64>,
}

/// Serves lock requests until the process is killed; one thread per client.
pub(crate) fn serve(listener: Listener) -> Result<(), LockError> {
    let shared = Arc::new((Mutex::new(Table::default()), Condvar::new()));
    // Client ids start at 1.
    for (id, conn) in (1u64..).zip(listener.incoming()) {
        let conn = conn.map_err(|e| LockError::io("accepting a lock client", e))?;
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || client(id, conn, &shared));
    }
    Ok(())
}

fn client(id: u64, conn: Stream, shared: &(Mutex<Table>, Condvar)) {
    let (table, freed) = shared;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        let answer = match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let mut t = match table.lock() {
                    Ok(t) => t,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match line.trim_end() {
                    "lock" => {
                        while t.holder.is_some_and(|h| h != id) {
                            t = match freed.wait(t) {
                                Ok(t) => t,
                                Err(poisoned) => poisoned.into_inner(),
                            };
                        }
                        t.holder = Some(id);
                        "ok"
                    }
                    "try" => {
                        if t.holder.is_some_and(|h| h != id) {
                            "busy"
                        } else {
                            t.holder = Some(id);
                            "ok"
                        }
                    }
                    "unlock" => {
                        if t.holder == Some(id) {
                            t.holder = None;
                            freed.notify_all();
                        }
                        "ok"
                    }
                    _ => "error",
                }
            }
        };
        if reader
            .get_mut()
            .write_all(format!("{answer}\n").as_bytes())
            .is_err()
        {
            break;
        }
    }
    // The client is gone: whatever it held is free again.
    let mut t = match table.lock() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    if t.holder == Some(id) {
        t.holder = None;
        freed.notify_all();
    }
}
