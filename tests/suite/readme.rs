//! Every example in README.md (and fixtures/regressions/README.md) runs as written, from
//! the repository root, with the binary cargo built, and ends with the exit status the
//! README gives it.
//!
//! What counts as an example, in a fenced block of a README:
//!
//! - in a ```` ```text ```` (or `console`) block, a transcript line `$ oversell ARGS`;
//! - in a ```` ```sh ```` (or `bash`, `shell`) block, a line `oversell ARGS` or
//!   `cargo run --release [-- ARGS]`, which runs as `oversell ARGS`.
//!
//! A line ending in `\` goes on on the next. The command runs through `sh -c` (so quotes,
//! `{}` and trailing `# comments` read as a shell reads them) with `oversell` replaced by
//! the built binary. Any other line of a block is not run: a `cargo test`, a synopsis
//! without `$`, or an `echo … >> fixtures/…` that would change the repository.
//!
//! Lines right after a command say what is expected of it:
//!
//! - `# exits N` (or `# exits N or M`, then optionally `: why`): its exit status; without
//!   one it must exit 0;
//! - `# needs PROGRAM`: skipped, with one line saying so, when PROGRAM is not on PATH. A
//!   command using a Redis lock needs `redis-server` without saying so.
//!
//! In a transcript, the first line printed after the command (unless it is `...`) must be
//! the first line the command prints: a header that changed means a stale transcript.
//!
//! Examples whose trials are all controlled (`--schedule pct`, `exhaustive` or `random`)
//! run two at a time; the others (free-running trials, whose timing is part of what they
//! test) one at a time, in a test of their own that runs beside the first. A command written twice (the same but for a trailing
//! comment) runs once; keep each to a few seconds (make the README's example smaller
//! rather than skip it).

use crate::common;

use common::BIN;
use std::path::Path;
use std::process::Command;

#[derive(Debug)]
struct Example {
    /// `README.md:LINE`.
    place: String,
    /// The command as written, `oversell` first (after `$ ` or `cargo run --release --`).
    command: String,
    exits: Vec<i32>,
    needs: Vec<String>,
    /// A transcript's first line of output, if it shows one.
    first_line: Option<String>,
}

const SH: &[&str] = &["sh", "bash", "shell"];
const TEXT: &[&str] = &["text", "console"];

/// The examples in the markdown file `path` (relative to the repository).
fn examples(path: &str) -> Vec<Example> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if let Some(info) = line.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim().to_string()),
            };
            i += 1;
            continue;
        }
        let Some(lang) = &fence else {
            i += 1;
            continue;
        };
        let start = i;
        let command = if TEXT.contains(&lang.as_str()) {
            line.strip_prefix("$ ")
                .filter(|c| c.starts_with("oversell"))
                .map(str::to_string)
        } else if SH.contains(&lang.as_str()) {
            if line.starts_with("oversell") {
                Some(line.to_string())
            } else {
                line.strip_prefix("cargo run --release").map(|rest| {
                    let rest = rest.trim_start();
                    let rest = rest.strip_prefix("-- ").unwrap_or(rest).trim_start();
                    if rest.is_empty() {
                        "oversell".to_string()
                    } else {
                        format!("oversell {rest}")
                    }
                })
            }
        } else {
            None
        };
        i += 1;
        let Some(mut command) = command else {
            continue;
        };
        // `oversell` alone or followed by a space: not `oversell-something`.
        if !(command == "oversell" || command.starts_with("oversell ")) {
            continue;
        }
        while command.trim_end().ends_with('\\') && i < lines.len() {
            let kept = command
                .trim_end()
                .trim_end_matches('\\')
                .trim_end()
                .to_string();
            command = format!("{kept} {}", lines[i].trim());
            i += 1;
        }
        let mut exits = Vec::new();
        let mut needs = Vec::new();
        while i < lines.len() {
            let note = lines[i].trim();
            if let Some(rest) = note.strip_prefix("# exits ") {
                let codes = rest.split(':').next().unwrap_or("");
                for code in codes.split(" or ") {
                    let code = code.trim().parse::<i32>().unwrap_or_else(|e| {
                        panic!("{path}:{}: bad '# exits' note '{note}': {e}", i + 1)
                    });
                    exits.push(code);
                }
            } else if let Some(program) = note.strip_prefix("# needs ") {
                needs.push(program.trim().to_string());
            } else {
                break;
            }
            i += 1;
        }
        if exits.is_empty() {
            exits.push(0);
        }
        if command.contains("--lock redis") && !needs.iter().any(|n| n == "redis-server") {
            needs.push("redis-server".into());
        }
        let first_line = TEXT
            .contains(&lang.as_str())
            .then(|| lines.get(i).map(|l| l.to_string()))
            .flatten()
            .filter(|l| !l.starts_with("```") && !l.starts_with("$ ") && l.trim() != "...");
        out.push(Example {
            place: format!("{path}:{}", start + 1),
            command,
            exits,
            needs,
            first_line,
        });
    }
    out
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The command without a trailing shell comment (a `#` after a space, outside quotes),
/// so that one command written twice runs once.
fn without_comment(command: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in command.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return command[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    command.trim_end()
}

/// What one run of a command ended with: its exit status and its output.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `command` (an example, `oversell` first) as a reader would, from the repository.
fn run_one(command: &str, tmp: &Path) -> Ran {
    // `oversell` → the built binary, through the shell as a reader's would run it.
    let script = format!("\"$OVERSELL\"{}", &command["oversell".len()..]);
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OVERSELL", BIN)
        .env("PATH", common::test_path())
        .env("TMPDIR", tmp)
        .output()
        .unwrap_or_else(|e| panic!("running {command}: {e}"));
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// True when `command` runs only controlled trials (its schedule orders every step),
/// whose verdicts do not depend on the machine's load.
fn controlled(command: &str) -> bool {
    ["pct", "exhaustive", "random"]
        .iter()
        .any(|s| command.contains(&format!("--schedule {s}")))
}

/// Runs each of `commands` once and gives each one's result: two at a time (the
/// machine's cores) when `side_by_side`, else one at a time.
fn run_every(commands: Vec<String>, side_by_side: bool) -> std::collections::HashMap<String, Ran> {
    let tmp = crate::common::tempdir().expect("tempdir");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(std::collections::HashMap::new());
    std::thread::scope(|s| {
        for _ in 0..(if side_by_side { 2 } else { 1 }) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(command) = commands.get(i) else {
                    break;
                };
                let ran = run_one(command, tmp.path());
                done.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(command.clone(), ran);
            });
        }
    });
    done.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The examples of `path` whose trials are all controlled (or, with `controlled_ones`
/// false, the others) that can run here; says in one line which cannot and why.
fn runnable(path: &str, controlled_ones: bool) -> Vec<Example> {
    examples(path)
        .into_iter()
        .filter(|ex| controlled(without_comment(&ex.command)) == controlled_ones)
        .filter(|ex| match ex.needs.iter().find(|p| !on_path(p)) {
            Some(missing) => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped {}: {missing} is not on PATH: {}",
                    ex.place,
                    ex.command
                );
                false
            }
            None => true,
        })
        .collect()
}

/// Checks every example against the result of its command in `done`; gives how many
/// were checked.
fn check_all(examples: &[Example], done: &std::collections::HashMap<String, Ran>) -> usize {
    for ex in examples {
        let ran = &done[without_comment(&ex.command)];
        assert!(
            ex.exits.contains(&ran.code),
            "{}: `{}` exited {}, the README says {:?}\nstdout: {}\nstderr: {}",
            ex.place,
            ex.command,
            ran.code,
            ex.exits,
            ran.stdout,
            ran.stderr
        );
        if let Some(first) = &ex.first_line {
            assert_eq!(
                ran.stdout.lines().next().unwrap_or(""),
                first,
                "{}: `{}` printed another first line than the README shows",
                ex.place,
                ex.command
            );
        }
    }
    examples.len()
}

/// Runs the examples of both READMEs whose trials are all controlled (or the others)
/// and checks each.
fn run_and_check(controlled_ones: bool) {
    let readme = runnable("README.md", controlled_ones);
    let regressions = runnable("fixtures/regressions/README.md", controlled_ones);
    // A command written twice (the same but for a trailing comment) runs once.
    let mut commands: Vec<String> = Vec::new();
    for ex in readme.iter().chain(&regressions) {
        let key = without_comment(&ex.command).to_string();
        if !commands.contains(&key) {
            commands.push(key);
        }
    }
    let done = run_every(commands, controlled_ones);
    check_all(&readme, &done);
    check_all(&regressions, &done);
}

/// Examples whose trials are all controlled: their verdicts do not depend on the
/// machine's load, so they run two at a time.
#[test]
fn every_controlled_readme_example_runs_as_written() {
    run_and_check(true);
}

/// Examples with free-running trials, whose timing is part of what they test (a hang
/// among them): one at a time, beside the rest of the suite as a reader's machine runs
/// other work.
#[test]
fn every_free_running_readme_example_runs_as_written() {
    run_and_check(false);
}

#[test]
fn the_readmes_hold_examples() {
    let readme = examples("README.md").len();
    assert!(readme >= 8, "only {readme} examples found in README.md");
    let regressions = examples("fixtures/regressions/README.md").len();
    assert!(regressions >= 2, "only {regressions} examples found");
}

#[test]
fn examples_are_read_as_the_convention_says() {
    let dir = crate::common::tempdir().expect("tempdir");
    let md = dir.path().join("x.md");
    std::fs::write(
        &md,
        "```sh\ncargo run --release      # the demo\ncargo test\noversell explore \\\n  --lock none\n# exits 1\n# needs nothing-such\n```\n\
         ```text\n$ oversell replay T\nreplay: lock none\n...\noversell     a synopsis\n```\n\
         ```rust\noversell::trials()\n```\n",
    )
    .expect("write");
    let found = examples(md.to_str().expect("utf-8 path"));
    let got: Vec<(&str, &[i32], usize, Option<&str>)> = found
        .iter()
        .map(|e| {
            (
                e.command.as_str(),
                e.exits.as_slice(),
                e.needs.len(),
                e.first_line.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("oversell # the demo", &[0][..], 0, None),
            ("oversell explore --lock none", &[1][..], 1, None),
            ("oversell replay T", &[0][..], 0, Some("replay: lock none")),
        ]
    );
}
#[test]
fn a_trailing_comment_is_told_from_a_quoted_hash() {
    assert_eq!(without_comment("oversell      # the demo"), "oversell");
    assert_eq!(
        without_comment("oversell explore --lock-cmd 'a # b {}' # note"),
        "oversell explore --lock-cmd 'a # b {}'"
    );
    assert_eq!(
        without_comment("oversell replay x#y"),
        "oversell replay x#y"
    );
}

#[test]
fn the_readme_bench_block_is_marked_for_its_script() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let begin = text
        .find(BENCH_BEGIN)
        .expect("the bench block's begin marker");
    let end = text.find(BENCH_END).expect("the bench block's end marker");
    assert!(begin < end, "markers out of order");
    let block = &text[begin + BENCH_BEGIN.len()..end];
    assert!(
        block.contains("```text") && block.lines().count() > 4,
        "the bench block is empty: run ci/readme-bench.sh --write\n{block}"
    );
}

const BENCH_BEGIN: &str = "<!-- bench:begin (ci/readme-bench.sh --write fills this block) -->";
const BENCH_END: &str = "<!-- bench:end -->";
