//! Checks made before the first trial runs, so that a bad value costs nothing: each
//! failure is one line naming the value and what is accepted.

use super::args::OutArgs;
use super::exit::Fail;
use std::fs::OpenOptions;
use std::path::Path;

/// A `--lock-cmd` template: it runs `{}`, its quotes are closed and the program it
/// starts exists.
pub(super) fn lock_cmd(t: &str) -> Result<(), Fail> {
    const EXAMPLE: &str = "'flock {dir}/lock {}'";
    if !t.contains("{}") {
        return Err(Fail::Usage(format!(
            "--lock-cmd '{t}' has no {{}} for the critical section; accepted: a command such as {EXAMPLE}"
        )));
    }
    quotes("--lock-cmd", t, EXAMPLE)?;
    program("--lock-cmd", t, EXAMPLE)
}

/// A `--buyer-cmd` template: not empty, it names the store, its quotes are closed and
/// the program it starts exists.
pub(super) fn buyer_cmd(t: &str) -> Result<(), Fail> {
    const EXAMPLE: &str = "'python3 fixtures/buyers/locked.py {store}'";
    if t.trim().is_empty() {
        return Err(Fail::Usage(format!(
            "--buyer-cmd '': accepted: a command such as {EXAMPLE}"
        )));
    }
    if !t.contains("{store}") {
        return Err(Fail::Usage(format!(
            "--buyer-cmd '{t}' has no {{store}} for the store's path; accepted: a command such as {EXAMPLE}"
        )));
    }
    quotes("--buyer-cmd", t, EXAMPLE)?;
    program("--buyer-cmd", t, EXAMPLE)
}

/// The program a shell command starts can be found, as `sh` would look for it: a first
/// word with a `/` is a file that exists (relative to the working directory, where the
/// command runs), any other is an executable file in a directory of `PATH`. A first word
/// that only a shell can read (an assignment, a redirection, quoting, an expansion, a
/// `{dir}` of the template, a keyword or a built-in) is left to the run.
pub(super) fn program(flag: &str, t: &str, example: &str) -> Result<(), Fail> {
    let Some(word) = first_program(t) else {
        return Ok(());
    };
    let why = if word.contains('/') {
        if Path::new(word).is_file() {
            return Ok(());
        }
        format!("there is no file '{word}'")
    } else {
        match std::env::var_os("PATH") {
            // Without PATH, sh searches its own default; leave it to the run.
            None => return Ok(()),
            Some(path) if on_path(word, &path) => return Ok(()),
            Some(_) => format!("'{word}' is not on PATH"),
        }
    };
    Err(Fail::Usage(format!(
        "{flag} '{t}': {why}; accepted: a command whose first word is a program on PATH or \
         the path of an existing file, such as {example}"
    )))
}

/// `--program` and its flags, checked and made ready to run in the trial's directory:
/// the command's plain words that name a file here are made absolute (the program runs
/// elsewhere), the store file stays inside the working directory, the regex compiles.
pub(super) fn whole_program(
    cmd: &str,
    store_file: Option<&str>,
    store_key: Option<&str>,
    sold: Option<&str>,
) -> Result<crate::scenario::Program, Fail> {
    const EXAMPLE: &str =
        "--program 'python3 fixtures/programs/lesson1.py {buyers}' --sold 'bought'";
    if cmd.trim().is_empty() {
        return Err(Fail::Usage(format!(
            "--program '': accepted: a command such as {EXAMPLE}"
        )));
    }
    quotes("--program", cmd, EXAMPLE)?;
    program("--program", cmd, EXAMPLE)?;
    let store_file = store_file.unwrap_or("db.txt");
    let inside = {
        let p = Path::new(store_file);
        !store_file.is_empty()
            && p.is_relative()
            && p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    if !inside {
        return Err(Fail::Usage(format!(
            "--store-file '{store_file}' is not inside the program's working directory;              accepted: a relative path with no '..', such as db.txt"
        )));
    }
    let store_key = store_key.unwrap_or("count");
    if store_key.is_empty() || store_key.contains('\0') {
        return Err(Fail::Usage(
            "--store-key '': accepted: the key of the count in the store file, such as count"
                .into(),
        ));
    }
    let Some(sold) = sold else {
        return Err(Fail::Usage(format!(
            "--program without --sold: oversell cannot tell a sale on the program's output;              accepted: --sold REGEX (one match = one sale), as in {EXAMPLE}"
        )));
    };
    if let Err(e) = regex::RegexBuilder::new(sold).multi_line(true).build() {
        let why = e.to_string();
        let last = why.lines().last().unwrap_or("").trim();
        return Err(Fail::Usage(format!(
            "--sold '{sold}' is not a regular expression ({last}); accepted: a regex such as 'bought'"
        )));
    }
    let p = crate::scenario::Program {
        cmd: absolute_words(cmd),
        store_file: store_file.to_string(),
        store_key: store_key.to_string(),
        sold: sold.to_string(),
    };
    if p.joined().len() > crate::limits::MAX_COMMAND_BYTES || p.joined().matches('\0').count() != 3
    {
        return Err(Fail::Usage(format!(
            "--program and its flags are longer than {} bytes or hold a NUL; accepted: shorter ones",
            crate::limits::MAX_COMMAND_BYTES
        )));
    }
    Ok(p)
}

/// `cmd` with each plain word that names an existing file or directory relative to the
/// working directory (`fixtures/x.py`, `./run`) made absolute: the program runs in the
/// trial's directory.
fn absolute_words(cmd: &str) -> String {
    let Ok(here) = std::env::current_dir() else {
        return cmd.to_string();
    };
    let plain = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ',' | '@' | '%')
    };
    let mut out = String::with_capacity(cmd.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let named = word.contains('/')
            && !word.starts_with('/')
            && word.chars().all(plain)
            && Path::new(word.as_str()).exists();
        if named {
            out.push_str(&crate::scenario::shell_quote(
                &here.join(&*word).to_string_lossy(),
            ));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in cmd.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Words `sh` runs itself: its reserved words and the built-ins of POSIX and of the
/// usual shells.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[", "alias", "bg", "break", "builtin", "case", "cd", "command", "continue",
    "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc",
    "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs", "kill", "local",
    "printf", "pwd", "read", "readonly", "return", "select", "set", "shift", "source", "test",
    "then", "time", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "until", "wait", "while",
];

/// The first word of a shell command when it plainly names a program: made only of
/// characters no shell treats specially, and not one of [`SHELL_WORDS`].
fn first_program(cmd: &str) -> Option<&str> {
    let cmd = cmd.trim_start();
    let end = cmd
        .find(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|'))
        .unwrap_or(cmd.len());
    let word = &cmd[..end];
    let plain = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ',' | '@' | '%')
    };
    if word.is_empty() || !word.chars().all(plain) || SHELL_WORDS.contains(&word) {
        return None;
    }
    Some(word)
}

/// `name` is an executable file in one of the directories of `path` (an empty entry is
/// the working directory, as for `sh`).
fn on_path(name: &str, path: &std::ffi::OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).any(|dir| {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".").to_path_buf()
        } else {
            dir
        };
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A shell command's quotes are closed (`sh -c` of it would fail on every buyer).
pub(super) fn quotes(flag: &str, t: &str, example: &str) -> Result<(), Fail> {
    match unclosed_quote(t) {
        None => Ok(()),
        Some(q) => Err(Fail::Usage(format!(
            "{flag} '{t}' has an unterminated {q} quote; accepted: a shell command with \
             closed quotes, such as {example}"
        ))),
    }
}

/// The kind of quote (`single`, `double`) a shell command leaves open, read as
/// `sh` splits words: `'…'` quotes everything, `"…"` all but `\"` and `\\`, a backslash
/// outside quotes the next character, and `#` at a word's start comments out the line.
pub(super) fn unclosed_quote(cmd: &str) -> Option<&'static str> {
    #[derive(PartialEq)]
    enum In {
        Word,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Word;
    let mut chars = cmd.chars().peekable();
    let mut word_start = true;
    while let Some(c) = chars.next() {
        match (&state, c) {
            (In::Comment, '\n') => state = In::Word,
            (In::Comment, _) => {}
            (In::Word, '\\') | (In::Double, '\\') => {
                chars.next();
            }
            (In::Word, '\'') => state = In::Single,
            (In::Word, '"') => state = In::Double,
            (In::Word, '#') if word_start => state = In::Comment,
            (In::Single, '\'') | (In::Double, '"') => state = In::Word,
            _ => {}
        }
        word_start = state == In::Word && (c.is_whitespace() || matches!(c, ';' | '&' | '|'));
    }
    match state {
        In::Single => Some("single"),
        In::Double => Some("double"),
        In::Word | In::Comment => None,
    }
}

/// Every report file asked for can be written, and a timeline is `.svg` or `.html`.
pub(super) fn outputs(out: &OutArgs) -> Result<(), Fail> {
    if let Some(p) = &out.json {
        output("--json", p)?;
    }
    if let Some(p) = &out.junit {
        output("--junit", p)?;
    }
    if let Some(p) = &out.timeline {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !ext.eq_ignore_ascii_case("svg") && !ext.eq_ignore_ascii_case("html") {
            return Err(Fail::Usage(format!(
                "--timeline {}: a timeline is drawn as SVG or HTML; accepted: FILE.svg or FILE.html",
                p.display()
            )));
        }
        output("--timeline", p)?;
    }
    Ok(())
}

/// A file can be written at `path`: an existing one is opened for writing (and left as
/// it is), else a probe file is made beside it and removed.
pub(super) fn output(flag: &str, path: &Path) -> Result<(), Fail> {
    let bad = |why: String| {
        Fail::Usage(format!(
            "{flag} {}: cannot write there ({why}); accepted: a file in an existing, writable directory",
            path.display()
        ))
    };
    if path.is_dir() {
        return Err(bad("it is a directory".into()));
    }
    if path.exists() {
        return OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| bad(e.to_string()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(bad(format!("no directory {}", parent.display())));
    }
    tempfile::Builder::new()
        .prefix(".oversell-probe")
        .tempfile_in(parent)
        .map(drop)
        .map_err(|e| bad(os_error(e)))
}

/// The operating system's words for an error, without the probe file's name.
fn os_error(e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => e.kind().to_string(),
    }
}

/// `--keep DIR`: the directory exists (it is made) and takes files.
pub(super) fn keep(dir: &Path) -> Result<(), Fail> {
    let bad = |e: std::io::Error| {
        Fail::Usage(format!(
            "--keep {}: cannot keep trial directories there ({e}); accepted: a writable directory",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(bad)?;
    tempfile::Builder::new()
        .prefix(".oversell-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(bad)
}

/// `--redis URL`: checked, then used for every trial of a Redis lock in this process; and
/// a run of a Redis lock refused up front (`what` names it) when no server can be had.
pub(super) fn redis(url: Option<&str>, needs: Option<&str>) -> Result<(), Fail> {
    if let Some(url) = url {
        let schemes = ["redis://", "redis+unix://", "unix://"];
        if !schemes.iter().any(|s| url.starts_with(s)) {
            return Err(Fail::Usage(format!(
                "--redis '{url}': accepted: a URL such as redis://127.0.0.1:6379 or \
                 redis+unix:///run/redis.sock"
            )));
        }
        crate::harness::redis::use_server(url);
    }
    if let Some(what) = needs {
        crate::harness::redis::available().map_err(|why| Fail::Usage(format!("{what}: {why}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_read_as_sh_reads_them() {
        for ok in [
            "flock {dir}/lock {}",
            "sh -c 'echo \"x\"; {}'",
            "echo \"it's\" {}",
            "echo it\\'s {}",
            "echo \"a \\\" b\" {}",
            "{} # it's a comment",
        ] {
            assert_eq!(unclosed_quote(ok), None, "{ok}");
        }
        assert_eq!(unclosed_quote("sh -c 'echo {}"), Some("single"));
        assert_eq!(unclosed_quote("echo \"{}"), Some("double"));
        assert_eq!(unclosed_quote("echo \"\\\"{}"), Some("double"));
        assert_eq!(unclosed_quote("it's {}"), Some("single"));
    }

    #[test]
    fn templates_name_what_they_lack() {
        let msg = |r: Result<(), Fail>| match r {
            Err(Fail::Usage(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(buyer_cmd("python3 b.py")).contains("{store}"));
        assert!(msg(lock_cmd("flock l")).contains("{}"));
        assert!(msg(lock_cmd("sh -c '{}")).contains("unterminated single quote"));
        assert!(buyer_cmd("python3 b.py {store}").is_ok());
    }

    #[test]
    fn the_first_word_is_a_program_only_when_plainly_so() {
        assert_eq!(first_program("flock {dir}/lock {}"), Some("flock"));
        assert_eq!(first_program("  ./wrap.sh {}"), Some("./wrap.sh"));
        assert_eq!(first_program("nosuch;{}"), Some("nosuch"));
        for left in [
            "{dir}/wrap {}",
            "FOO=1 flock l {}",
            "2>/dev/null flock l {}",
            "'flock' l {}",
            "$HOME/bin/lock {}",
            "~/bin/lock {}",
            "exec flock l {}",
            "if true; then {}; fi",
            "( {} )",
            "",
        ] {
            assert_eq!(first_program(left), None, "{left}");
        }
    }

    #[test]
    fn a_program_is_looked_for_as_sh_looks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("mylock");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        let plain = dir.path().join("notes");
        std::fs::write(&plain, "").expect("write");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(&exe, mode).expect("chmod");
        }
        let path = dir.path().as_os_str();
        assert!(on_path("mylock", path));
        assert!(!on_path("notes", path), "not executable");
        assert!(!on_path("nosuch", path));
        let abs = format!("{} {{}}", exe.display());
        assert!(program("--lock-cmd", &abs, "").is_ok());
        let gone = format!("{}/gone {{}}", dir.path().display());
        match program("--lock-cmd", &gone, "") {
            Err(Fail::Usage(m)) => assert!(
                m.contains("there is no file") && m.contains("/gone'"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_output_needs_an_existing_directory_and_a_picture_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(output("--json", &dir.path().join("r.json")).is_ok());
        assert!(output("--json", &dir.path().join("no/r.json")).is_err());
        assert!(output("--json", dir.path()).is_err());
        let out = OutArgs {
            timeline: Some(dir.path().join("t.png")),
            ..OutArgs::default()
        };
        assert!(outputs(&out).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
