//! What the integration tests share: the binary, ways to run it, and what a run left.
#![allow(dead_code)] // not every part is used by the tests of every build

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The oversell binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_oversell");

/// The `PATH` the binary under test runs with: the test's own, with the directory of
/// the interpreter `python3` names put first. A version manager's `python3` (pyenv's
/// shim) is a shell script that finds the interpreter on each start; under a controlled
/// schedule every system call of that script is a step of its own, and a fixture that
/// starts Python four times a trial spends most of the suite's time there. The
/// interpreter is the one the shim would run, so what is tested does not change.
pub fn test_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = Command::new("python3")
            .args([
                "-c",
                "import os, sys; print(os.path.dirname(sys.executable))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|d| !d.is_empty() && !d.contains(':'));
        match found {
            Some(dir) => format!("{dir}:{path}"),
            None => path,
        }
    })
}

/// A fresh temporary directory for a test, where oversell puts trial directories
/// ([`oversell::testing::scratch_root`]: `/dev/shm` when it is a writable tmpfs and
/// `TMPDIR` is not set). Tests set `TMPDIR` to one to see what a run left; on a disk
/// file system every trial's files would cost an inode allocation and writeback, which
/// is not what the tests are about.
pub fn tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(".tmp")
        .tempdir_in(oversell::testing::scratch_root())
}

/// A command that runs the binary under test, on [`test_path`]. Without
/// `NODE_EXTRA_CA_CERTS`, which some machines set for every program: with it each
/// `node` start reads and parses a certificate bundle (three times the CPU of a start
/// without it, here, and more steps under a controlled schedule) that no fixture uses.
pub fn oversell_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("PATH", test_path())
        .env_remove("NODE_EXTRA_CA_CERTS");
    cmd
}

/// Runs oversell with `tmp` as its TMPDIR (so what it leaves behind can be seen) and
/// `env` added to its environment, in the test's working directory (the repository).
pub fn oversell_env(tmp: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    oversell_command()
        .args(args)
        .env("TMPDIR", tmp)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running oversell {args:?}: {e}"))
}

/// Runs oversell with `tmp` as its TMPDIR.
pub fn oversell(tmp: &Path, args: &[&str]) -> Output {
    oversell_env(tmp, args, &[])
}

/// Runs oversell from the repository with `env` added and a fresh TMPDIR, returned so
/// the caller can look at what the run left there.
pub fn oversell_fresh(args: &[&str], env: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let tmp = tempdir().expect("tempdir");
    let out = oversell_command()
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap_or_else(|e| panic!("running oversell {args:?}: {e}"));
    (out, tmp)
}

/// Both outputs of a run, for an assertion's message.
pub fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The number of entries a run left in `tmp`.
pub fn leftover_count(tmp: &Path) -> usize {
    leftovers(tmp).len()
}

/// Runs oversell in `dir`, which is also its TMPDIR.
pub fn oversell_in(dir: &Path, args: &[&str]) -> Output {
    oversell_command()
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", dir)
        .output()
        .unwrap_or_else(|e| panic!("running oversell {args:?}: {e}"))
}

/// The names of the entries a run left in `tmp`.
pub fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the exit status, showing both outputs when it is not `code`.
pub fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The token a finding's `replay: oversell replay --allow-cmd TOKEN` line names.
pub fn replay_token(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "--allow-cmd")
        .nth(1)
        .unwrap_or_else(|| panic!("no replay token in:\n{text}"))
        .to_string()
}

/// Replays `token` (a user's command allowed) and asserts every attempt took the same
/// steps and showed the finding again.
pub fn assert_replays_exactly(token: &str) {
    let (again, _) = oversell_fresh(&["replay", "--allow-cmd", token], &[]);
    let r = text(&again);
    assert!(r.contains("identical trace in 10 of 10 attempts"), "{r}");
    assert!(r.contains("reproduced in 10 of 10 attempts"), "{r}");
}

/// Every `.rs` file under `dir`, as (path relative to `root`, text), for the tests that
/// read the crate's own source (layers, one terminate path).
pub fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push((rel, std::fs::read_to_string(&path).unwrap_or_default()));
        }
    }
}

/// True when `program` is on PATH (a test that needs it says in one line that it
/// skipped, and why, when it is not).
#[allow(dead_code)]
pub fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// The full name libtest gives test `name` of the module `module` (its `module_path!()`):
/// `module::name`, the crate's name left out. A test that runs one other test of this
/// binary in a process of its own names it so.
pub fn test_name(module: &str, name: &str) -> String {
    let module = module.split_once("::").map_or(module, |(_, m)| m);
    format!("{module}::{name}")
}
