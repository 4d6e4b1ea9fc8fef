//! What people and CI read: the timeline picture, JUnit, JSON, shards and their merge,
//! and the time budget.

use crate::common;

use common::oversell_in as run_in;
use std::collections::BTreeSet;
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("JSON")
}

fn count_class(doc: &roxmltree::Document, class: &str) -> usize {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split_whitespace().any(|w| w == class))
        })
        .count()
}

#[test]
fn explore_writes_a_timeline_junit_and_json_for_a_found_race() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = run_in(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "none",
            "--trials",
            "20",
            "--seed",
            "9",
            "--schedule",
            "barrier",
            "--timeline",
            "t.svg",
            "--junit",
            "j.xml",
            "--json",
            "r.json",
            "--quiet",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&tmp.path().join("r.json"));
    let first = &report["findings"][0];
    let buyers = first["buyers"].as_u64().expect("buyers") as usize;

    let svg = std::fs::read_to_string(tmp.path().join("t.svg")).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses");
    assert_eq!(count_class(&doc, "lane"), buyers, "one lane per buyer");
    // Every buyer claimed the same ticket: each claim is a red mark.
    assert!(
        count_class(&doc, "finding") >= buyers,
        "red marks for the finding events"
    );
    assert!(
        svg.contains(first["token"].as_str().expect("token")),
        "title names the token"
    );

    let xml = std::fs::read_to_string(tmp.path().join("j.xml")).expect("junit");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .expect("a test case");
    assert_eq!(case.attribute("name"), Some("none/barrier"));
    let failure = case
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure");
    let text = failure.text().unwrap_or_default();
    assert!(text.contains("oversell replay ov1.none."), "{text}");
}

#[test]
fn a_controlled_timeline_is_stable_and_html_embeds_it() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let token = "ov1.none.b2.t1.j5000.rd0c0a0496dfe826.spct2.p0x3-1x7-0x4.c41d29e";
    let out = run_in(
        tmp.path(),
        &["replay", token, "--attempts", "2", "--timeline", "t.svg"],
    );
    assert_eq!(out.status.code(), Some(1));
    let svg = std::fs::read_to_string(tmp.path().join("t.svg")).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("parses");
    assert_eq!(count_class(&doc, "lane"), 2);
    insta::assert_snapshot!("replay_timeline", svg);

    let out = run_in(
        tmp.path(),
        &["replay", token, "--attempts", "1", "--timeline", "t.html"],
    );
    assert_eq!(out.status.code(), Some(1));
    let html = std::fs::read_to_string(tmp.path().join("t.html")).expect("html");
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg"),
        "{}",
        &html[..80]
    );
}

#[test]
fn shards_together_run_exactly_the_unsharded_trials() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let base = [
        "explore",
        "--lock",
        "none",
        "--schedule",
        "barrier",
        "--trials",
        "12",
        "--seed",
        "5",
        "--quiet",
        "--keep-going",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--json", "all.json"]);
    run_in(tmp.path(), &args);
    let mut names = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let file = format!("s{k}.json");
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--shard", &shard, "--json", &file]);
        run_in(tmp.path(), &args);
        names.push(file);
    }
    let all = json(&tmp.path().join("all.json"));
    let trials = |r: &serde_json::Value| -> BTreeSet<(u64, String)> {
        r["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    f["trial"].as_u64().expect("trial"),
                    f["token"].as_str().expect("token").to_string(),
                )
            })
            .collect()
    };
    let mut union = BTreeSet::new();
    let mut run = 0;
    for n in &names {
        let r = json(&tmp.path().join(n));
        let mine = trials(&r);
        assert!(union.is_disjoint(&mine), "shards overlap");
        union.extend(mine);
        run += r["trials_run"].as_u64().expect("count");
    }
    // Under the barrier every no-lock trial fails, so findings name every trial.
    assert_eq!(all["trials_run"], 12);
    assert_eq!(run, 12);
    assert_eq!(union, trials(&all));

    let out = run_in(
        tmp.path(),
        &[
            "merge",
            "s1.json",
            "s2.json",
            "s3.json",
            "--json",
            "m.json",
            "--expect",
            "violation",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = json(&tmp.path().join("m.json"));
    assert_eq!(merged["trials_run"], 12);
    assert_eq!(trials(&merged), trials(&all));

    let out = run_in(tmp.path(), &["merge", "s1.json", "s1.json"]);
    assert_eq!(out.status.code(), Some(2), "a shard given twice is refused");
}

#[test]
fn a_time_budget_stops_the_run_and_says_how_many_trials_ran() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = run_in(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "flock",
            "--time-budget",
            "1",
            "--jitter-ms",
            "1",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("time budget of 1 s spent:") && text.contains("trials ran"),
        "{text}"
    );
}

#[test]
fn every_report_file_written_is_named_on_stdout() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = run_in(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "none",
            "--schedule",
            "pct",
            "--trials",
            "20",
            "--seed",
            "3",
            "--timeline",
            "t.html",
            "--junit",
            "j.xml",
            "--json",
            "r.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "wrote the JSON report to r.json",
        "wrote the JUnit report to j.xml",
        "wrote the timeline to t.html",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no '{line}' in {stdout}");
    }
    for file in ["r.json", "j.xml", "t.html"] {
        assert!(tmp.path().join(file).is_file(), "{file} not written");
    }
    // Under --quiet only findings are printed.
    let quiet = run_in(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "none",
            "--schedule",
            "pct",
            "--trials",
            "20",
            "--seed",
            "3",
            "--timeline",
            "q.svg",
            "--quiet",
        ],
    );
    assert!(!String::from_utf8_lossy(&quiet.stdout).contains("wrote the"));
}
