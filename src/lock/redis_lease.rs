//! `redis` and `redis-fenced`: a lease held as a key on a real Redis server.
//!
//! Acquire is `SET key owner NX PX <lease>`; a heartbeat thread in the holder extends
//! the key's expiry while the key still names it (compare-and-`PEXPIRE`, one Lua script),
//! and release deletes the key only while it still names the holder (compare-and-`DEL`,
//! another script), so a holder that lost its lease cannot free its successor's. Redis
//! expires the key by itself: a holder frozen past the lease (SIGSTOP, a GC pause) loses
//! the lock to a peer, wakes up and writes anyway. `redis-fenced` takes its fencing token
//! from `INCR` in the same script as the `SET` (atomic on the server, so a later holder
//! always has a larger token) and hands it to the store, which refuses an older one.
//!
//! The harness starts the server for the trial (or uses the one `--redis URL` names) and
//! writes its URL into `<dir>/redis.url`; keys are named after the trial directory, so
//! trials sharing one server never meet.

use super::lease::{poll_lock, Heartbeat};
use super::{Lock, LockError};
use redis::{Connection, Value};
use std::path::Path;
use std::time::Duration;

/// The file, inside a trial directory, that holds the server's URL.
pub(crate) const URL_FILE: &str = "redis.url";
/// How long a hold lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_millis(500);

/// `SET NX PX` and, when it took the key, `INCR` of the fence counter: the token.
const TAKE_FENCED: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) \
     then return redis.call('INCR', KEYS[2]) else return 0 end";
/// Extends the key's expiry while it names the holder.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] \
     then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Deletes the key while it names the holder.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] \
     then return redis.call('DEL', KEYS[1]) else return 0 end";

fn err(what: &'static str) -> impl Fn(redis::RedisError) -> LockError {
    move |e| LockError::Protocol(format!("redis: {what}: {e}"))
}

/// A connection to the trial's server, with the keys of the trial.
#[derive(Debug, Clone)]
struct Server {
    client: redis::Client,
    key: String,
    fence_key: String,
}

impl Server {
    fn attach(dir: &Path) -> Result<Server, LockError> {
        let url = std::fs::read_to_string(dir.join(URL_FILE))
            .map_err(|e| LockError::io("reading the trial's redis URL", e))?;
        let client = redis::Client::open(url.trim()).map_err(err("the server's URL"))?;
        let name = dir
            .file_name()
            .map_or_else(|| "trial".into(), |n| n.to_string_lossy().into_owned());
        Ok(Server {
            client,
            key: format!("oversell:{name}:lock"),
            fence_key: format!("oversell:{name}:fence"),
        })
    }

    fn connect(&self) -> Result<Connection, LockError> {
        self.client
            .get_connection()
            .map_err(err("connecting to the server"))
    }
}

fn eval(
    con: &mut Connection,
    script: &str,
    keys: &[&str],
    args: &[String],
) -> redis::RedisResult<i64> {
    let mut c = redis::cmd("EVAL");
    c.arg(script).arg(keys.len());
    for k in keys {
        c.arg(*k);
    }
    for a in args {
        c.arg(a);
    }
    c.query(con)
}

/// A lease on a Redis key, renewed by a heartbeat thread while held.
#[derive(Default)]
pub(crate) struct RedisLock {
    server: Option<(Server, Option<Connection>)>,
    fenced: bool,
    /// This hold's value in the key, unique per acquisition.
    owner: Option<String>,
    acquisitions: u64,
    token: Option<u64>,
    /// The heartbeat while held.
    beat: Option<Heartbeat>,
}

impl RedisLock {
    /// A Redis lease whose holder hands its `INCR` token to the store when `fenced`.
    pub(crate) fn new(fenced: bool) -> RedisLock {
        let mut lock = RedisLock::default();
        lock.fenced = fenced;
        lock
    }

    /// The server and the connection to it, made at the first use: after a buyer under
    /// system-call steps installed its filter, so the harness sees it connect and orders
    /// what is sent through it.
    fn server(&mut self) -> Result<(&Server, &mut Connection), LockError> {
        let (server, con) = self
            .server
            .as_mut()
            .ok_or_else(|| LockError::Setup("redis: not attached to a trial".into()))?;
        let con = match con {
            Some(c) => c,
            None => con.insert(server.connect()?),
        };
        Ok((server, con))
    }

    fn start_heartbeat(&mut self, server: Server, owner: String) -> Result<(), LockError> {
        let mut con = server.connect()?;
        let ms = LEASE.as_millis().to_string();
        self.beat = Some(Heartbeat::start(move || {
            let args = [owner.clone(), ms.clone()];
            // Lost (expired, or taken by a peer): nothing left to renew.
            matches!(eval(&mut con, RENEW, &[&server.key], &args), Ok(1))
        }));
        Ok(())
    }

    fn stop_heartbeat(&mut self) {
        self.beat = None;
    }
}

impl Lock for RedisLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.server = Some((Server::attach(dir)?, None));
        Ok(())
    }

    fn lock(&mut self) -> Result<(), LockError> {
        poll_lock(self)
    }

    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.acquisitions += 1;
        let owner = format!("{}-{}", std::process::id(), self.acquisitions);
        let fenced = self.fenced;
        let (server, con) = self.server()?;
        let ms = LEASE.as_millis().to_string();
        let token = if fenced {
            let args = [owner.clone(), ms];
            let t = eval(con, TAKE_FENCED, &[&server.key, &server.fence_key], &args)
                .map_err(err("taking the lock"))?;
            match u64::try_from(t) {
                Ok(0) | Err(_) => return Ok(false),
                Ok(t) => Some(t),
            }
        } else {
            let set: Value = redis::cmd("SET")
                .arg(&server.key)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(&ms)
                .query(con)
                .map_err(err("taking the lock"))?;
            if matches!(set, Value::Nil) {
                return Ok(false);
            }
            None
        };
        let server = server.clone();
        self.token = token;
        self.owner = Some(owner.clone());
        self.start_heartbeat(server, owner)?;
        Ok(true)
    }

    fn unlock(&mut self) -> Result<(), LockError> {
        self.stop_heartbeat();
        self.token = None;
        let Some(owner) = self.owner.take() else {
            return Ok(());
        };
        let (server, con) = self.server()?;
        // Give back only a key that still names this hold: a lost one is its taker's.
        eval(con, RELEASE, &[&server.key], &[owner])
            .map(|_| ())
            .map_err(err("releasing the lock"))
    }

    fn lease(&self) -> Option<Duration> {
        Some(LEASE)
    }

    fn fence(&self) -> Option<u64> {
        if self.fenced {
            self.token
        } else {
            None
        }
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}
