//! The layers of `docs/ARCHITECTURE.md`, enforced: every `crate::` path in a file under
//! `src/` names a module of the file's own layer or of one below it, and every top-level
//! module has a row. The table is read from the document itself, so the document and the
//! code cannot drift apart silently.

use crate::common;

use common::sources;
use std::collections::BTreeMap;
use std::path::Path;

/// Layer of each top-level module (0 = the top row), read from the table under
/// `## Layers`: each row is `| layer | `a`, `b/` | … |`.
fn table(doc: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    let Some(section) = doc.split("## Layers").nth(1) else {
        return layers;
    };
    let rows = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2); // the header and its rule
    for (depth, row) in rows.enumerate() {
        let Some(cell) = row.split('|').nth(2) else {
            continue;
        };
        for module in cell.split('`').skip(1).step_by(2) {
            layers.insert(module.trim_end_matches('/').to_string(), depth);
        }
    }
    layers
}

/// The top-level module a file under `src/` belongs to (`None` for the crate root).
fn module_of(rel: &str) -> Option<String> {
    let first = rel.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The modules a source file reaches through `crate::` paths, outside comments.
fn reached(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                out.push(name);
            }
            rest = after;
        }
        // `use crate::{a, b::C}`: each name inside the braces.
        if let Some(inner) = code
            .trim_start()
            .strip_prefix("use crate::{")
            .or_else(|| code.trim_start().strip_prefix("pub use crate::{"))
        {
            for part in inner.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Every import that climbs, and every module without a row, as lines to print.
fn violations(layers: &BTreeMap<String, usize>, files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, source) in files {
        let Some(module) = module_of(rel) else {
            continue;
        };
        let Some(&own) = layers.get(&module) else {
            out.push(format!(
                "src/{rel}: module `{module}` has no row in the layer table"
            ));
            continue;
        };
        for target in reached(source) {
            if target == module {
                continue;
            }
            match layers.get(&target) {
                Some(&layer) if layer < own => out.push(format!(
                    "src/{rel}: `{module}` (row {own}) uses `crate::{target}` (row {layer}), a layer above it"
                )),
                _ => {}
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn no_module_uses_one_in_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("the document");
    let layers = table(&doc);
    assert!(
        layers.len() >= 20,
        "the layer table was not found or lost rows: {layers:?}"
    );
    let mut files = Vec::new();
    sources(&root.join("src"), &root.join("src"), &mut files);
    assert!(files.len() > 50, "the sources were not found");
    let bad = violations(&layers, &files);
    assert!(bad.is_empty(), "imports that climb:\n{}", bad.join("\n"));
}

#[test]
fn an_upward_import_or_an_unplaced_module_is_caught() {
    let doc = "## Layers\n\n| layer | modules | what |\n| --- | --- | --- |\n\
               | runner | `harness/` | x |\n| values | `scenario`, `faults` | y |\n\
               | vocabulary | `vocab/` | z |\n";
    let layers = table(doc);
    assert_eq!(layers.get("harness"), Some(&0));
    assert_eq!(layers.get("vocab"), Some(&2));
    let file = |rel: &str, text: &str| (rel.to_string(), text.to_string());
    let files = vec![
        file(
            "faults.rs",
            "use crate::vocab::Point;\nuse crate::scenario::Trial;\n",
        ),
        file("harness/run.rs", "use crate::{faults, vocab::Point};\n"),
        file(
            "scenario.rs",
            "// crate::harness in a comment is no import\n",
        ),
    ];
    assert!(violations(&layers, &files).is_empty());
    let climbing = vec![file(
        "faults.rs",
        "fn f() { let _ = crate::harness::spawn(); }\n",
    )];
    let found = violations(&layers, &climbing);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("uses `crate::harness`"), "{found:?}");
    let braced = vec![file("vocab/point.rs", "use crate::{scenario::Trial};\n")];
    assert_eq!(violations(&layers, &braced).len(), 1);
    let unplaced = vec![file("newthing.rs", "")];
    assert!(violations(&layers, &unplaced)[0].contains("no row"));
}
