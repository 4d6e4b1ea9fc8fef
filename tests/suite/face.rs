//! The crate's public face, enforced by reading the source: `src/lib.rs` declares no public
//! module but `testing` (no `pub mod`, no module made by a macro, no `#[doc(hidden)]`
//! door), and `src/testing.rs` is re-exports only, each named (no glob), each used by a
//! test or a bench.

use std::collections::BTreeSet;
use std::path::Path;

/// The one public module: support for the crate's own tests and benches.
const SUPPORT: &str = "testing";

/// The source without comments (`//` to the end of a line; doc comments included).
fn code(source: &str) -> String {
    source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a crate root declares (`mod x;`, `pub mod x;`, `pub(crate) mod x { … }`).
fn declared(root: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for line in code(root).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "mod") else {
            continue;
        };
        let Some(name) = words.get(at + 1) else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let public = at > 0 && words[at - 1] == "pub";
        out.push((name, public));
    }
    out
}

/// What is wrong with a crate root's face, as lines to print.
fn root_problems(root: &str) -> Vec<String> {
    let code = code(root);
    let mut out = Vec::new();
    let modules = declared(root);
    for (name, public) in &modules {
        if *public && name != SUPPORT {
            out.push(format!("`pub mod {name}`: only `{SUPPORT}` may be public"));
        }
    }
    if !modules.iter().any(|(n, p)| n == SUPPORT && *p) {
        out.push(format!("no `pub mod {SUPPORT}`"));
    }
    if code.contains("macro_rules!") || code.contains("internal!") {
        out.push("a macro in the crate root (modules made by one escape this test)".into());
    }
    if code.contains("doc(hidden)") {
        out.push("`#[doc(hidden)]`: a hidden door in the face".into());
    }
    // `pub use x;` or `pub use x::y::{self}`: a whole private module made public.
    let names: BTreeSet<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    for item in code.split(';') {
        let item = item.trim();
        let Some(path) = item.strip_prefix("pub use ") else {
            continue;
        };
        let whole = match path.split_once('{') {
            // `a::{self, b}`: the module itself among the names.
            Some((_, inner)) => inner.split([',', '}']).any(|p| p.trim() == "self"),
            // `crate::a` or `a as b`: a top-level module by name.
            None => {
                let last = path.split(" as ").next().unwrap_or("").trim();
                names.contains(last.rsplit("::").next().unwrap_or(last))
            }
        };
        if whole {
            out.push(format!("`pub use {path}` makes a module public"));
        }
    }
    out
}

/// The names the support module re-exports (the alias where it renames), or what is wrong.
fn support_names(support: &str) -> Result<Vec<String>, String> {
    let code = code(support);
    let mut names = Vec::new();
    for item in code.split(';') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some(path) = item.strip_prefix("pub use crate::") else {
            return Err(format!("not a re-export: `{item}`"));
        };
        if path.contains('*') {
            return Err(format!("a glob: `pub use crate::{path}`"));
        }
        // `a::b::{c, d as e, f::g}` → c, e, g; `a::b` → b.
        let inner = match path.split_once('{') {
            Some((_, rest)) => rest.trim_end_matches('}').to_string(),
            None => path.to_string(),
        };
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let name = match part.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => part.rsplit("::").next().unwrap_or(part).trim(),
            };
            if name == "self" {
                return Err(format!("a whole module: `pub use crate::{path}`"));
            }
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Whether `word` occurs in `text` as a whole identifier.
fn uses(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

fn rust_files(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("face.rs") {
            out.push_str(&code(&std::fs::read_to_string(&path).unwrap_or_default()));
            out.push('\n');
        }
    }
}

#[test]
fn the_crate_root_makes_no_module_public_but_the_test_support() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    assert!(
        declared(&lib).len() >= 20,
        "the module declarations were not found: {:?}",
        declared(&lib)
    );
    let bad = root_problems(&lib);
    assert!(bad.is_empty(), "src/lib.rs:\n{}", bad.join("\n"));
}

#[test]
fn the_test_support_reexports_only_names_a_test_or_bench_uses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let support = std::fs::read_to_string(root.join(format!("src/{SUPPORT}.rs")))
        .expect("the support module");
    let names = support_names(&support).unwrap_or_else(|e| panic!("src/{SUPPORT}.rs: {e}"));
    assert!(
        names.len() >= 10,
        "the re-exports were not found: {names:?}"
    );
    let mut users = String::new();
    rust_files(&root.join("tests"), &mut users);
    rust_files(&root.join("benches"), &mut users);
    let unused: Vec<&String> = names.iter().filter(|n| !uses(&users, n)).collect();
    assert!(
        unused.is_empty(),
        "src/{SUPPORT}.rs re-exports what no test or bench uses: {unused:?}"
    );
}

#[test]
fn a_public_module_a_macro_or_a_glob_is_caught() {
    let ok = "//! pub mod words in a comment\n#![deny(x)]\npub mod testing;\nmod harness;\n\
              pub(crate) mod scenario;\npub use scenario::{Trial, Schedule};\n";
    assert_eq!(root_problems(ok), Vec::<String>::new());
    let public = format!("{ok}pub mod harness2;\n");
    let found = root_problems(&public);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("`pub mod harness2`"), "{found:?}");
    let made = format!("{ok}macro_rules! internal {{ ($m:ident) => {{ pub mod $m; }} }}\n");
    assert!(!root_problems(&made).is_empty());
    let hidden = format!("{ok}#[doc(hidden)]\npub use scenario::Span;\n");
    assert_eq!(root_problems(&hidden).len(), 1);
    let module = format!("{ok}pub use crate::harness;\n");
    assert_eq!(root_problems(&module).len(), 1);
    let braced = format!("{ok}pub use harness::{{self, Run}};\n");
    assert_eq!(root_problems(&braced).len(), 1);
    assert_eq!(
        root_problems("mod testing;\n"),
        vec!["no `pub mod testing`".to_string()]
    );

    assert_eq!(
        support_names("//! doc\npub use crate::a::{b, c as d};\npub use crate::e::F;\n"),
        Ok(vec!["b".to_string(), "d".to_string(), "F".to_string()])
    );
    assert!(support_names("pub use crate::a::*;\n").is_err());
    assert!(support_names("pub use crate::a::{self, b};\n").is_err());
    assert!(support_names("pub fn helper() {}\n").is_err());
    assert!(uses("let x = run_gate(a);", "run_gate"));
    assert!(!uses("let x = run_gate_twice(a);", "run_gate"));
}
