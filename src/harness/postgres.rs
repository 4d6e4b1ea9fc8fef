//! The PostgreSQL server a trial's command reaches through `{pg}`.
//!
//! Once per run, the first trial that asks makes a template cluster with `initdb` (in
//! the scratch root, named as the run's trial directories are, so a later run's sweep
//! removes it if this one is SIGKILLed, and removed when the run ends). Each trial then
//! copies it into `<dir>/pg` and starts its own `postgres` there: a Unix socket in that
//! directory, no TCP, fsync off. Like a trial's Redis server, it is a member of the
//! trial's process group, so it carries the run's mark and dies with the trial however
//! the trial ends. PostgreSQL refuses to run as root: as root, it runs as the `postgres`
//! user.

use super::process::{Ending, Group, MemberId};
use super::HarnessError;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The directory of a trial's cluster and socket, in its directory.
pub const DIR: &str = crate::vocab::trial_dir::PG_DIR;

/// The role every command connects as.
const ROLE: &str = "oversell";

/// The server named by `--pg CONNINFO`, for the whole process.
static EXTERNAL: OnceLock<String> = OnceLock::new();

/// Uses the server `conninfo` names (libpq's `key=value` form) for every trial instead of
/// starting one: each trial gets a database of its own there. The first call wins.
pub fn use_server(conninfo: &str) {
    let _ = EXTERNAL.set(conninfo.to_string());
}

/// The database a trial in `dir` gets on the user's server.
fn database(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("oversell_{clean}")
}

/// `{pg}`: the connection string of the trial's server (its own, or its database on the
/// user's server).
pub fn conninfo(dir: &Path) -> String {
    match EXTERNAL.get() {
        // A later keyword wins in libpq's form.
        Some(c) => format!("{c} dbname={}", database(dir)),
        None => format!(
            "host={} port=5432 dbname=postgres user={ROLE}",
            dir.join(DIR).display()
        ),
    }
}

/// The note in a trial directory naming the user's server its database is on: a run
/// killed before it could drop it leaves it, and the next run's sweep drops it.
const SERVER_NOTE: &str = ".oversell-pg-server";

/// Runs one statement on the user's server through `psql`.
fn on_external(sql: &str) -> Result<(), HarnessError> {
    match EXTERNAL.get() {
        Some(c) => on_server(c, sql),
        None => Ok(()),
    }
}

/// Runs one statement through `psql` on the server `c` names.
fn on_server(c: &str, sql: &str) -> Result<(), HarnessError> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        // Made and dropped from the server's own database.
        .arg(format!("{c} dbname=postgres"))
        .arg("-c")
        .arg(sql)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = super::process::run_to_end(&mut cmd)
        .map_err(|e| HarnessError::Server(format!("running psql for --pg: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(HarnessError::Server(format!(
        "--pg: {}",
        why.lines().next().unwrap_or("psql failed").trim()
    )))
}

/// Makes the trial's database on the user's server, and notes the server in `dir`
/// (readable by its owner only: the connection string may hold a password).
fn create_database(dir: &Path) -> Result<(), HarnessError> {
    if let Some(c) = EXTERNAL.get() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(SERVER_NOTE))
            .and_then(|mut f| f.write_all(c.as_bytes()))
            .map_err(|e| HarnessError::Server(format!("--pg: noting the server: {e}")))?;
    }
    on_external(&format!("CREATE DATABASE {}", database(dir)))
}

/// Drops the database a dead run's trial in `dir` made on the user's server, if its
/// note says it made one (best effort: the server may be gone).
pub(super) fn drop_stale(dir: &Path) {
    if let Ok(c) = std::fs::read_to_string(dir.join(SERVER_NOTE)) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database(dir));
        let _ = on_server(c.trim(), &sql);
    }
}

/// Drops the trial's database on the user's server (best effort).
fn drop_database(dir: &Path) {
    let _ = on_external(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        database(dir)
    ));
}

/// Where PostgreSQL's programs are: `PATH`, then Debian's `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        });
        on_path.or_else(|| {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").is_file())
                .collect();
            versions.sort();
            versions.pop()
        })
    })
    .clone()
}

/// The user the server runs as: `postgres` when this process is root, else none (the
/// server runs as this process's user).
fn server_user() -> Result<Option<(u32, u32)>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        _ => Err(
            "PostgreSQL refuses to run as root, and there is no 'postgres' user to run \
                  it as; accepted: install postgresql (apt-get install postgresql)"
                .into(),
        ),
    }
}

/// `Ok` when a trial can have a PostgreSQL server here; else the one-line reason.
pub fn available() -> Result<(), String> {
    if EXTERNAL.get().is_some() {
        let psql = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("psql").is_file()));
        return if psql {
            Ok(())
        } else {
            Err(
                "--pg needs psql on PATH to make each trial's database; accepted: apt-get \
                 install postgresql-client"
                    .into(),
            )
        };
    }
    if bin_dir().is_none() {
        return Err(
            "PostgreSQL is not installed (no initdb and postgres on PATH or in \
                    /usr/lib/postgresql); accepted: apt-get install postgresql"
                .into(),
        );
    }
    server_user().map(|_| ())
}

/// The run's template cluster, made at the first call.
fn template() -> Result<PathBuf, HarnessError> {
    static TEMPLATE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut slot = TEMPLATE
        .lock()
        .map_err(|_| HarnessError::Server("the PostgreSQL template's lock is poisoned".into()))?;
    if let Some(t) = slot.as_ref() {
        return Ok(t.clone());
    }
    let bin =
        bin_dir().ok_or_else(|| HarnessError::Server("PostgreSQL is not installed".into()))?;
    let user = server_user().map_err(HarnessError::Server)?;
    let root = super::scratch_root().join(format!(
        "{}{}-pgtemplate",
        super::DIR_PREFIX,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)
        .map_err(|e| HarnessError::Io("making the PostgreSQL template", e))?;
    own(&root, user)?;
    let data = root.join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            ROLE,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        ])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_user(&mut cmd, user);
    let out = super::process::run_to_end(&mut cmd)
        .map_err(|e| HarnessError::Server(format!("running initdb: {e}")))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let _ = std::fs::remove_dir_all(&root);
        return Err(HarnessError::Server(format!(
            "initdb failed: {}",
            why.lines().last().unwrap_or("no message").trim()
        )));
    }
    remove_at_exit(&root);
    *slot = Some(data.clone());
    Ok(data)
}

/// Removes `path` when this process exits normally (a SIGKILLed run's is swept by the
/// next run, by its name).
fn remove_at_exit(path: &Path) {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove() {
        if let Some(p) = PATH.get() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    if PATH.set(path.to_path_buf()).is_ok() {
        // SAFETY: `remove` is a plain function that only reads a static set once; atexit
        // only stores its address.
        unsafe {
            libc::atexit(remove);
        }
    }
}

/// Gives `path` to the server's user.
fn own(path: &Path, user: Option<(u32, u32)>) -> Result<(), HarnessError> {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| HarnessError::Io("giving the PostgreSQL directory to its user", e))?;
    }
    Ok(())
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        // As root, the spawn also drops the supplementary groups.
        cmd.uid(uid).gid(gid);
    }
}

/// Starts the trial's server in `dir` (a member of `group`), once its socket accepts.
fn prepare(group: &mut Group, dir: &Path, deadline: Instant) -> Result<MemberId, HarnessError> {
    let template = template()?;
    let bin =
        bin_dir().ok_or_else(|| HarnessError::Server("PostgreSQL is not installed".into()))?;
    let user = server_user().map_err(HarnessError::Server)?;
    let home = dir.join(DIR);
    // The server's user must reach its directory inside the trial's.
    if user.is_some() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| HarnessError::Io("opening the trial directory to PostgreSQL", e))?;
    }
    std::fs::create_dir_all(&home)
        .map_err(|e| HarnessError::Io("making the PostgreSQL directory", e))?;
    own(&home, user)?;
    let data = home.join("data");
    let copied = super::process::run_to_end(
        Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .map_err(|e| HarnessError::Server(format!("copying the PostgreSQL template: {e}")))?;
    if !copied.status.success() {
        return Err(HarnessError::Server(
            "copying the PostgreSQL template failed".into(),
        ));
    }
    let log = std::fs::File::create(home.join("postgres.log"))
        .map_err(|e| HarnessError::Io("creating the PostgreSQL log", e))?;
    let err = log
        .try_clone()
        .map_err(|e| HarnessError::Io("creating the PostgreSQL log", e))?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&home)
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
        ])
        .args(["-c", "full_page_writes=off", "-c", "autovacuum=off"])
        // Its own process titles would overwrite its environment, the run's mark included.
        .args(["-c", "update_process_title=off"])
        // Its dynamic shared memory as files in its data directory, not in /dev/shm,
        // where a killed server would leave them behind.
        .args(["-c", "dynamic_shared_memory_type=mmap"])
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    as_user(&mut cmd, user);
    let member = group
        .spawn(cmd)
        .map_err(|e| HarnessError::Server(format!("starting postgres: {e}")))?;
    // Ready once its pid file says so (its socket exists a moment earlier, while it
    // still refuses connections).
    let ready = || {
        std::fs::read_to_string(data.join("postmaster.pid"))
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "ready"))
    };
    while !ready() {
        if Instant::now() >= deadline || group.wait_one(member, Duration::ZERO) {
            group.end_one(member, Ending::Killed);
            let why = std::fs::read_to_string(home.join("postgres.log")).unwrap_or_default();
            return Err(HarnessError::Server(format!(
                "postgres did not start: {}",
                why.lines().last().unwrap_or("no message").trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(member)
}

/// Stops the server `member` of `group`, if there is one: an immediate shutdown
/// (`SIGQUIT`), which still removes its shared memory, then a kill if it lingers.
fn stop(group: &mut Group, member: Option<MemberId>, dir: &Path) {
    let Some(m) = member else {
        return;
    };
    group.signal(m, nix::sys::signal::Signal::SIGQUIT);
    group.end(Ending::Awaited(Duration::from_secs(2)), None, || {});
    remove_segment(dir);
}

/// Removes the SysV shared memory segment of the cluster in trial directory `dir`, as
/// its `postmaster.pid` names it (its seventh line: key, then id), once nothing is
/// attached: what a killed postgres leaves behind.
pub(super) fn remove_segment(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join(DIR).join("data").join("postmaster.pid"))
    else {
        return;
    };
    let Some(id) = text
        .lines()
        .nth(6)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|id| id.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: shmid_ds is plain data, zeroed as IPC_STAT expects.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one shmid_ds into `ds`.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } != 0 || ds.shm_nattch != 0 {
        return;
    }
    // SAFETY: IPC_RMID takes no buffer.
    unsafe {
        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
    }
}

/// A trial's database: a server of its own, or its database on the user's (`--pg`).
/// Ended when dropped, however the trial ends: the server stopped politely, the
/// database dropped.
pub(crate) struct TrialDb {
    group: Group,
    server: Option<MemberId>,
    dir: PathBuf,
    external: bool,
}

impl TrialDb {
    /// Starts the server for the trial in `dir`, or makes its database on the user's.
    pub(crate) fn start(dir: &Path, deadline: Instant) -> Result<TrialDb, HarnessError> {
        let mut db = TrialDb {
            group: Group::default(),
            server: None,
            dir: dir.to_path_buf(),
            external: EXTERNAL.get().is_some(),
        };
        if db.external {
            create_database(dir)?;
        } else {
            db.server = Some(prepare(
                &mut db.group,
                dir,
                super::server_deadline(deadline),
            )?);
        }
        Ok(db)
    }

    /// The server's pid, when the trial started one: a helper, idle between steps.
    pub(crate) fn server_pid(&self) -> Option<u32> {
        self.server.map(|m| self.group.pid(m))
    }
}

impl Drop for TrialDb {
    fn drop(&mut self) {
        stop(&mut self.group, self.server.take(), &self.dir);
        if self.external {
            drop_database(&self.dir);
        }
    }
}
