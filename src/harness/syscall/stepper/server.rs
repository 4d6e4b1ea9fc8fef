//! The trial's own servers (its Redis, its PostgreSQL): which connections reach them, and
//! which writes to them are steps.

use super::Stepper;
use crate::seccomp::call::{self, Notif, Step};
use crate::seccomp::paths::process_of;

impl Stepper {
    /// A call on the trial's own server: its `connect` noted (true: no unordered effect,
    /// the server's requests are steps), a `close` of such a connection forgotten, and a
    /// request written to it by the task that connected it made a step. A request another
    /// task of the process sends through it (a lease's heartbeat renewing the lease it
    /// holds) changes only when the key expires, which no step orders; that task is
    /// remembered, and its sleeps run on the machine's clock from then on.
    pub(super) fn server_call(&mut self, n: &Notif) -> (bool, Option<Step>) {
        if let Some((fd, socket)) = call::server_connect(n, &self.real_dir) {
            self.servers
                .insert((process_of(n.pid), fd), (n.pid, socket));
            self.server_seen = true;
            return (true, None);
        }
        if self.servers.is_empty() {
            return (false, None);
        }
        let Some(name) = crate::seccomp::of(n.nr).map(|c| c.name) else {
            return (false, None);
        };
        let sends = matches!(name, "SYS_write" | "SYS_writev" | "SYS_sendto");
        if !sends && name != "SYS_close" {
            return (false, None);
        }
        // A descriptor is its process's: every thread of it may use or close it.
        let key = (process_of(n.pid), n.args[0] as i32);
        let Some((connected_by, socket)) = self.servers.get(&key).cloned() else {
            return (false, None);
        };
        if !sends {
            self.servers.remove(&key);
            return (false, None);
        }
        if connected_by != n.pid {
            self.heartbeats.insert(n.pid);
            return (false, None);
        }
        (false, call::server_request(n, &socket))
    }
}
