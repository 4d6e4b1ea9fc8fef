//! One terminate path, enforced by reading the source: outside `src/harness/process.rs`
//! (`Group::terminate`, behind `Group::end` and `Group::end_one`) no code sends TERM or
//! KILL, save the two senders docs/ARCHITECTURE.md names as signals of their own: a kill
//! fault the buyer raises on itself, and the sweep of a dead run's leftovers.

use crate::common;

use common::sources;
use std::path::Path;

/// Files allowed to send TERM or KILL, and why.
const SENDERS: &[(&str, &str)] = &[
    ("harness/process.rs", "the one terminate path"),
    ("harness/sweep.rs", "a dead run's leftovers"),
    ("buyer.rs", "a kill fault, raised by the buyer on itself"),
];

/// Lines of `source` (outside comments) that send TERM or KILL: a call that sends a
/// signal with either named on the same line.
fn senders(source: &str) -> Vec<String> {
    let sends = [
        "kill(",
        "killpg(",
        "raise(",
        ".signal(",
        "signal_all(",
        "signal_whole(",
        "signal_buyer(",
    ];
    source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .filter(|code| {
            (code.contains("SIGKILL") || code.contains("SIGTERM"))
                && sends.iter().any(|s| code.contains(s))
        })
        .map(|code| code.trim().to_string())
        .collect()
}

#[test]
fn only_the_terminate_path_sends_term_or_kill() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 50, "the sources were not found");
    let mut bad = Vec::new();
    for (rel, text) in &files {
        if SENDERS.iter().any(|(f, _)| f == rel) {
            continue;
        }
        for line in senders(text) {
            bad.push(format!("src/{rel}: {line}"));
        }
    }
    assert!(
        bad.is_empty(),
        "TERM or KILL sent outside Group::terminate (use Group::end or Group::end_one):\n{}",
        bad.join("\n")
    );
    for (f, why) in SENDERS {
        let text = &files.iter().find(|(r, _)| r == f).expect(f).1;
        assert!(
            !senders(text).is_empty(),
            "src/{f} ({why}) sends no TERM or KILL any more"
        );
    }
}

#[test]
fn a_kill_outside_the_terminate_path_is_caught() {
    let stray = "fn kill(&mut self, i: usize) {\n    self.group.signal(m, Signal::SIGKILL);\n}\n";
    assert_eq!(
        senders(stray),
        vec!["self.group.signal(m, Signal::SIGKILL);"]
    );
    let all = "group.signal_all(nix::sys::signal::Signal::SIGTERM);";
    assert_eq!(senders(all).len(), 1);
    let routed = "self.group.end_one(m, Ending::Killed);\n// signal(m, SIGKILL) in a comment\n";
    assert!(senders(routed).is_empty());
    let looked = "exit == Exit::Signal(Signal::SIGKILL as i32)";
    assert!(senders(looked).is_empty());
    let quit = "group.signal(m, Signal::SIGQUIT);";
    assert!(senders(quit).is_empty());
}
