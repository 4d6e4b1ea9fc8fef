//! The Redis server a trial of the `redis` and `redis-fenced` locks talks to.
//!
//! Unless the user named one (`--redis URL`, see [`use_server`]), the harness starts a
//! real `redis-server` for the trial directory: no TCP port, a Unix socket in the
//! directory, no persistence (`--save ''`, `--appendonly no`). It is a member of the
//! trial's process group like a buyer, so it has the death signal, carries the run's mark
//! (a later run's sweep kills it if this one was SIGKILLed) and is killed and reaped with
//! the group however the trial ends, SIGINT included. (`--set-proc-title no` keeps the
//! mark readable in `/proc/PID/environ`, which redis's own process title overwrites.)
//! Either way the server's URL goes into `<dir>/redis.url`, where the buyers' lock
//! reads it.

use super::process::{Ending, Group, MemberId};
use super::HarnessError;
use crate::lock::redis_lease::URL_FILE;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The program the harness starts.
pub const SERVER: &str = "redis-server";

/// The server's socket in the trial directory (a command's `{redis}`).
pub const SOCKET: &str = crate::vocab::trial_dir::REDIS_SOCKET;

/// The server named by `--redis URL`, for the whole process.
static EXTERNAL: OnceLock<String> = OnceLock::new();

/// Uses the server at `url` (`redis://…`, `redis+unix://…`) for every trial of a Redis
/// lock instead of starting one. The first call wins.
pub fn use_server(url: &str) {
    let _ = EXTERNAL.set(url.to_string());
}

/// `redis-server` on `PATH`, if it is there.
pub fn server_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(SERVER))
        .find(|p| p.is_file())
}

/// `Ok` when a Redis lock can run here: `--redis` was given or `redis-server` is on
/// `PATH`; else the one-line reason.
pub fn available() -> Result<(), String> {
    if EXTERNAL.get().is_some() || server_on_path().is_some() {
        Ok(())
    } else {
        Err(format!(
            "{SERVER} is not on PATH; accepted: install it (apt-get install redis-server) \
             or name a server with --redis URL"
        ))
    }
}

/// Prepares the trial in `dir` for a Redis lock: starts a server in `group` (its member
/// returned) unless `--redis` named one, and notes the URL for the buyers.
pub(super) fn prepare(
    group: &mut Group,
    dir: &Path,
    deadline: Instant,
) -> Result<Option<MemberId>, HarnessError> {
    let (url, member) = match EXTERNAL.get() {
        Some(url) => (url.clone(), None),
        None => {
            let sock = dir.join(SOCKET);
            let member = start(group, dir, &sock, super::server_deadline(deadline))?;
            (format!("redis+unix://{}", sock.display()), Some(member))
        }
    };
    std::fs::write(dir.join(URL_FILE), url)
        .map_err(|e| HarnessError::Io("noting the redis URL", e))?;
    Ok(member)
}

fn start(
    group: &mut Group,
    dir: &Path,
    sock: &Path,
    deadline: Instant,
) -> Result<MemberId, HarnessError> {
    let log = dir.join("redis-server.log");
    let out = File::create(&log).map_err(|e| HarnessError::Io("creating the redis log", e))?;
    let err = out
        .try_clone()
        .map_err(|e| HarnessError::Io("creating the redis log", e))?;
    let mut cmd = Command::new(SERVER);
    cmd.args(["--port", "0", "--unixsocket"])
        .arg(sock)
        .args([
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        // Its own process title would overwrite its environment, run mark included,
        // and a later run's sweep could no longer tell it is ours.
        .args(["--set-proc-title", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // Its keys expire on a clock the harness can move: a stop fault's pause passes on it
    // at once (without the shim, on the machine's clock, in real time).
    super::clock::give_server_clock(&mut cmd, dir);
    let member = group.spawn(cmd).map_err(|e| {
        HarnessError::Server(format!(
            "starting {SERVER}: {e}; accepted: {SERVER} on PATH (apt-get install redis-server) \
             or --redis URL"
        ))
    })?;
    // It listens once the socket accepts a connection.
    while UnixStream::connect(sock).is_err() {
        if Instant::now() >= deadline || group.wait_one(member, Duration::ZERO) {
            group.end_one(member, Ending::Killed);
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(HarnessError::Server(format!(
                "{SERVER} did not start: {}",
                why.lines().last().unwrap_or("no message").trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(member)
}
