//! Renderings of results: the timeline picture, JUnit XML, and merged shard reports.
//! Everything here is built by hand; no process is spawned.

use oversell::testing::{
    check, junit, merge, parse_report, timeline_html, timeline_marks, timeline_svg, Axis, Contents,
    Exit, Fate, Finding, History, MergeError, Observation, Stuck, TimelineInput, Why,
};
use oversell::{FindingKind, Report, Violation};

/// Two buyers, one ticket, no lock: both read 1, both write 0, both claim ticket 1.
const OVERSOLD: &str = "\
1000 0 start
1100 1 start
2000 0 check 1
2100 1 check 1
3000 0 acquired
3100 1 acquired
4000 0 read 1
4100 1 read 1
5000 0 wrote 0
5100 1 wrote 0
6000 0 released
6100 1 released
7000 0 bought 1
7100 1 bought 1
";

fn checked(ledger: &str, buyers: u32, tickets: u32, final_count: i64) -> (History, Vec<Violation>) {
    let history = History::parse(ledger);
    let store = Contents::Count(final_count);
    let violations = check(&Observation {
        tickets,
        buyers,
        history: &history,
        final_store: Some(&store),
        leaked: false,
    });
    (history, violations)
}

fn render(history: &History, buyers: u32, violations: &[Violation], axis: Axis) -> String {
    timeline_svg(&TimelineInput {
        title: "lock none · trial 0 · fixed history".to_string(),
        buyers,
        history,
        findings: timeline_marks(violations),
        axis,
        race: None,
    })
}

fn has_class(node: &roxmltree::Node, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

/// Checks the picture's structure: it parses, one lane per buyer, a red mark per finding event.
fn assert_picture(svg: &str, buyers: u32, violations: &[Violation]) {
    let doc = roxmltree::Document::parse(svg).expect("the SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let lanes: Vec<_> = doc.descendants().filter(|n| has_class(n, "lane")).collect();
    assert_eq!(lanes.len(), buyers as usize, "one lane per buyer");
    for (b, lane) in lanes.iter().enumerate() {
        assert_eq!(lane.attribute("data-buyer"), Some(b.to_string().as_str()));
        let label = format!("buyer {b}");
        assert!(
            lane.descendants()
                .any(|n| n.text().is_some_and(|t| t.starts_with(&label))),
            "lane {b} is labelled"
        );
    }
    let red: Vec<_> = doc
        .descendants()
        .filter(|n| has_class(n, "finding"))
        .collect();
    for v in violations {
        for &e in &v.events {
            let mark = red
                .iter()
                .find(|n| n.attribute("data-event") == Some(e.to_string().as_str()));
            let mark = mark.unwrap_or_else(|| panic!("event {e} of {} is marked", v.kind));
            assert_eq!(
                mark.attribute("stroke"),
                Some("#d62728"),
                "finding marks are red"
            );
        }
        let caption = format!("{}: ", v.kind);
        assert!(
            doc.descendants()
                .any(|n| n.text().is_some_and(|t| t.starts_with(&caption))),
            "{} is captioned",
            v.kind
        );
    }
}

#[test]
fn oversold_history_draws_every_lane_and_red_finding_mark() {
    let (history, violations) = checked(OVERSOLD, 2, 1, 0);
    let kinds: Vec<FindingKind> = violations.iter().map(|v| v.kind).collect();
    assert!(kinds.contains(&FindingKind::Oversold), "{kinds:?}");
    assert!(kinds.contains(&FindingKind::Overlap), "{kinds:?}");
    for axis in [Axis::Time, Axis::Steps] {
        let svg = render(&history, 2, &violations, axis);
        assert_picture(&svg, 2, &violations);
    }
}

#[test]
fn clean_history_has_no_finding_marks() {
    let ledger = "\
1000 0 start
1100 1 start
2000 0 check 1
2100 1 check 1
3000 0 acquired
4000 0 read 1
5000 0 wrote 0
6000 0 released
6500 1 acquired
7000 0 bought 1
7100 1 read 0
7200 1 released
7300 1 sold_out
";
    let (history, violations) = checked(ledger, 2, 1, 0);
    assert!(violations.is_empty(), "{violations:?}");
    let svg = render(&history, 2, &violations, Axis::Time);
    assert_picture(&svg, 2, &violations);
    assert!(!svg.contains("class=\"finding\""));
    assert!(svg.contains("no findings"));
}

#[test]
fn timeline_snapshot_steps_axis() {
    let (history, violations) = checked(OVERSOLD, 2, 1, 0);
    insta::assert_snapshot!(render(&history, 2, &violations, Axis::Steps));
}

#[test]
fn html_page_embeds_the_picture_and_escapes_the_title() {
    let (history, violations) = checked(OVERSOLD, 2, 1, 0);
    let page = timeline_html(&TimelineInput {
        title: "lock <none> & co".to_string(),
        buyers: 2,
        history: &history,
        findings: timeline_marks(&violations),
        axis: Axis::Steps,
        race: None,
    });
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>lock &lt;none&gt; &amp; co</title>"));
    assert!(page.contains("<svg"));
    assert!(page.trim_end().ends_with("</html>"));
}

/// A ledger for `buyers` buyers racing over `tickets` tickets with no lock, each buyer a
/// little behind the one before: the shape of a real `jitter` trial.
fn racing_ledger(buyers: u32, tickets: i64) -> (String, i64) {
    let mut steps = Vec::new();
    for b in 0..buyers {
        let base = 1_000_000 + u64::from(b) * 310_000;
        for (k, word) in [
            "start", "check", "acquired", "read", "wrote", "released", "outcome",
        ]
        .iter()
        .enumerate()
        {
            let ns = base + k as u64 * 700_000 + u64::from((b * 7 + k as u32) % 5) * 40_000;
            steps.push((ns, b, *word));
        }
    }
    steps.sort();
    let mut count = tickets;
    let mut local = vec![0i64; buyers as usize];
    let mut out = String::new();
    for (ns, b, word) in steps {
        let line = match word {
            "check" => format!("{ns} {b} check {count}"),
            "read" => {
                local[b as usize] = count;
                format!("{ns} {b} read {count}")
            }
            "wrote" if local[b as usize] > 0 => {
                count = local[b as usize] - 1;
                format!("{ns} {b} wrote {count}")
            }
            "wrote" => continue,
            "outcome" if local[b as usize] > 0 => format!("{ns} {b} bought {}", local[b as usize]),
            "outcome" => format!("{ns} {b} sold_out"),
            w => format!("{ns} {b} {w}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    (out, count)
}

#[test]
fn many_buyers_stay_readable() {
    for buyers in [2u32, 5, 16] {
        let (ledger, fin) = racing_ledger(buyers, 3);
        let (history, violations) = checked(&ledger, buyers, 3, fin);
        assert!(!violations.is_empty(), "the race oversells");
        for axis in [Axis::Time, Axis::Steps] {
            let svg = render(&history, buyers, &violations, axis);
            assert_picture(&svg, buyers, &violations);
            // For eyeballing: OVERSELL_TIMELINE_OUT=/tmp/dir cargo test --test suite report_render
            if let Some(dir) = std::env::var_os("OVERSELL_TIMELINE_OUT") {
                let name = format!("timeline-{buyers}-{axis:?}.svg");
                std::fs::write(std::path::Path::new(&dir).join(name), &svg).expect("write");
            }
        }
    }
}

/// Buyer 0 took the lock and was killed holding it; buyers 1 and 2 wait for it forever.
fn stale_lock_history() -> History {
    let mut h = History::parse(
        "1000 0 start\n1100 1 start\n1200 2 start\n2000 0 check 1\n2100 1 check 1\n\
         2200 2 check 1\n3000 0 acquired\n4000 0 read 1\n",
    );
    let fate = |pid: u32, killed_by_fault: bool| Fate {
        exit: Exit::Signal(9),
        pid,
        killed_by_fault,
        killed_by_timeout: !killed_by_fault,
        stderr_tail: String::new(),
    };
    h.fates = vec![fate(100, true), fate(101, false), fate(102, false)];
    h.stuck = Some(Stuck::Deadlock {
        waiting: vec![1, 2],
        holder: Some(0),
    });
    h
}

fn lane<'a, 'i>(doc: &'a roxmltree::Document<'i>, b: u32) -> roxmltree::Node<'a, 'i> {
    doc.descendants()
        .find(|n| has_class(n, "lane") && n.attribute("data-buyer") == Some(&b.to_string()))
        .unwrap_or_else(|| panic!("lane {b}"))
}

fn num(node: &roxmltree::Node, attr: &str) -> f64 {
    node.attribute(attr)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{attr} of {node:?}"))
}

/// The right end of the plot: where the x axis line ends.
fn plot_end(doc: &roxmltree::Document) -> f64 {
    let axis = doc
        .descendants()
        .find(|n| has_class(n, "axis"))
        .and_then(|g| g.children().find(|n| n.has_tag_name("line")))
        .expect("axis line");
    num(&axis, "x2")
}

fn texts(node: roxmltree::Node) -> Vec<String> {
    node.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect()
}

#[test]
fn a_stale_lock_shows_the_kill_the_held_bar_and_the_endless_waits() {
    let history = stale_lock_history();
    let store = Contents::Count(1);
    let violations = check(&Observation {
        tickets: 1,
        buyers: 3,
        history: &history,
        final_store: Some(&store),
        leaked: false,
    });
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].kind, FindingKind::StaleLock);
    for axis in [Axis::Time, Axis::Steps] {
        let svg = render(&history, 3, &violations, axis);
        assert_picture(&svg, 3, &violations);
        let doc = roxmltree::Document::parse(&svg).expect("parses");
        let end = plot_end(&doc);
        // The holder: a kill mark, the word beside it, and a held bar to the end.
        let holder = lane(&doc, 0);
        assert!(
            holder.descendants().any(|n| has_class(&n, "kill")),
            "kill mark"
        );
        assert!(
            texts(holder).iter().any(|t| t == "killed"),
            "kill is in words"
        );
        let bar = holder
            .descendants()
            .find(|n| has_class(n, "held-to-end"))
            .expect("held bar to the end");
        assert!((num(&bar, "x") + num(&bar, "width") - end).abs() < 0.2);
        // The waiters: a wait line from their last event to the end; no kill mark.
        for b in [1, 2] {
            let l = lane(&doc, b);
            let wait = l
                .descendants()
                .find(|n| has_class(n, "wait"))
                .unwrap_or_else(|| panic!("buyer {b} waits"));
            assert!((num(&wait, "x2") - end).abs() < 0.2);
            assert!(num(&wait, "x1") < num(&wait, "x2"));
            assert!(!l.descendants().any(|n| has_class(&n, "kill")));
        }
        // Every buyer the finding names is marked, in red words on its lane label.
        for b in 0..3 {
            assert!(
                texts(lane(&doc, b)).contains(&format!("buyer {b} [1]")),
                "lane {b} is tagged"
            );
        }
        // The legend names the wait line and the kill mark.
        let legend = doc
            .descendants()
            .find(|n| has_class(n, "legend"))
            .expect("legend");
        assert!(legend.descendants().any(|n| has_class(&n, "legend-wait")));
        assert!(legend.descendants().any(|n| has_class(&n, "legend-kill")));
        let words = texts(legend);
        assert!(words.iter().any(|t| t == "waits for the lock"), "{words:?}");
        assert!(words.iter().any(|t| t == "killed"), "{words:?}");
        // The finding's detail is text under the lanes, not only a tooltip.
        let captions = doc
            .descendants()
            .find(|n| has_class(n, "captions"))
            .expect("captions");
        let caption = texts(captions)[1..].join(" ");
        assert_eq!(
            caption,
            format!("stale_lock: {}", violations[0].detail),
            "the whole detail is readable"
        );
    }
}

#[test]
fn a_double_sale_is_marked_on_every_buyer_it_names() {
    let mut ledger = String::new();
    for b in [0u32, 5, 13] {
        let ns = 1000 + u64::from(b) * 10;
        ledger.push_str(&format!(
            "{ns} {b} start\n{} {b} read 3\n{} {b} bought 1\n",
            ns + 1000,
            ns + 2000
        ));
    }
    let (history, violations) = checked(&ledger, 14, 3, 0);
    let kinds: Vec<FindingKind> = violations.iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![FindingKind::DoubleSale], "{violations:?}");
    let svg = render(&history, 14, &violations, Axis::Steps);
    assert_picture(&svg, 14, &violations);
    let doc = roxmltree::Document::parse(&svg).expect("parses");
    for b in 0..14 {
        let label = texts(lane(&doc, b)).remove(0);
        if [0, 5, 13].contains(&b) {
            assert_eq!(label, format!("buyer {b} [1]"));
        } else {
            assert_eq!(label, format!("buyer {b}"));
        }
    }
    assert!(!doc
        .descendants()
        .any(|n| has_class(&n, "kill") || has_class(&n, "wait")));
}

fn finding(kind: FindingKind, trial: u64, detail: &str) -> Finding {
    let token = format!("ov1.none.t{trial}");
    Finding {
        kind,
        trial,
        buyers: 2,
        tickets: 1,
        detail: detail.to_string(),
        replay: format!("oversell replay {token}"),
        token,
        why: None,
    }
}

fn report(lock: &str, seed: u64, trials: u64, elapsed_ms: u64, findings: Vec<Finding>) -> Report {
    let mut r = Report::new(lock, "jitter", seed);
    r.trials_run = trials;
    let mut failed: Vec<u64> = findings.iter().map(|f| f.trial).collect();
    failed.dedup();
    r.trials_failed = failed.len() as u64;
    r.elapsed_ms = elapsed_ms;
    r.findings = findings;
    r
}

#[test]
fn junit_failure_carries_findings_and_replay_commands() {
    let failing = report(
        "none",
        42,
        100,
        1500,
        vec![
            finding(
                FindingKind::Oversold,
                3,
                "2 buyers claim a sale; the store held 1",
            ),
            finding(
                FindingKind::DoubleSale,
                3,
                "buyers 0 and 1 all claim ticket 1",
            ),
            Finding {
                why: Some(Why {
                    pair: Vec::new(),
                    swaps: Vec::new(),
                    story: "buyer 1 took the lock (step 7) before buyer 0 released the lock \
                            (step 11): run step 11 before step 7 and the trial is clean"
                        .into(),
                    swapped_token: None,
                    remains: Vec::new(),
                    tried: 1,
                }),
                ..finding(
                    FindingKind::Overlap,
                    9,
                    "buyers 0 and 1 held the critical section at once",
                )
            },
        ],
    );
    let clean = report("flock", 42, 100, 800, Vec::new());
    let empty = report("ofd", 42, 0, 0, Vec::new());
    let xml = junit(&[failing, clean, empty]).expect("junit");
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit XML parses");

    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].attribute("name"), Some("oversell"));
    assert_eq!(suites[0].attribute("tests"), Some("3"));
    assert_eq!(suites[0].attribute("failures"), Some("1"));
    assert_eq!(suites[0].attribute("skipped"), Some("1"));

    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("test case {name}"))
    };
    let failing = case("none/jitter");
    assert_eq!(failing.attribute("time"), Some("1.500"));
    let failure = failing
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure element");
    assert_eq!(
        failure.attribute("message"),
        Some("oversold: 2 buyers claim a sale; the store held 1")
    );
    assert_eq!(failure.attribute("type"), Some("oversold"));
    let text = failure.text().expect("failure text");
    for line in [
        "trial 3 (2 buyers, 1 ticket): oversold: 2 buyers claim a sale; the store held 1",
        "double_sale: buyers 0 and 1 all claim ticket 1",
        "overlap: buyers 0 and 1 held the critical section at once",
        "replay: oversell replay ov1.none.t3",
        "replay: oversell replay ov1.none.t9",
        "why: buyer 1 took the lock (step 7) before buyer 0 released the lock (step 11)",
    ] {
        assert!(text.contains(line), "{line:?} in {text:?}");
    }
    let property = |case: roxmltree::Node, name: &str| {
        case.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .map(str::to_string)
    };
    assert_eq!(property(failing, "trials_run").as_deref(), Some("100"));
    assert_eq!(property(failing, "seed").as_deref(), Some("42"));

    let clean = case("flock/jitter");
    assert!(clean.children().all(|n| !n.has_tag_name("failure")));
    assert_eq!(property(clean, "trials_run").as_deref(), Some("100"));
    let empty = case("ofd/jitter");
    assert!(empty.children().any(|n| n.has_tag_name("skipped")));
}

#[test]
fn junit_carries_what_a_clean_report_could_not_verify() {
    let mut r = report("lock-cmd: x", 3, 4, 10, Vec::new());
    r.unconfirmed = vec!["trial 2 stalled, and did not stall when it was run again: y".into()];
    let xml = junit(&[r]).expect("junit");
    assert!(!xml.contains("<failure"), "{xml}");
    assert!(
        xml.contains("not verified: trial 2 stalled, and did not stall when it was run again: y"),
        "{xml}"
    );
}

#[test]
fn junit_names_apart_reports_that_share_lock_and_schedule() {
    let xml = junit(&[
        report("flock", 1, 10, 5, Vec::new()),
        report("flock", 2, 10, 5, Vec::new()),
    ])
    .expect("junit");
    assert!(xml.contains("name=\"flock/jitter seed 1\""), "{xml}");
    assert!(xml.contains("name=\"flock/jitter seed 2\""), "{xml}");
}

#[test]
fn shards_merge_into_one_report() {
    let a = report(
        "none",
        7,
        50,
        900,
        vec![
            finding(FindingKind::Oversold, 4, "a"),
            finding(FindingKind::DoubleSale, 4, "b"),
            finding(FindingKind::Overlap, 10, "c"),
        ],
    );
    let b = report(
        "none",
        7,
        50,
        1200,
        vec![finding(FindingKind::Oversold, 7, "d")],
    );
    let mut c = report("none", 7, 20, 300, Vec::new());
    c.unconfirmed = vec!["trial 12 stalled, and did not stall when it was run again: x".into()];
    // Shards arrive as JSON files.
    let shards: Vec<Report> = [a, b, c]
        .iter()
        .map(|r| parse_report(&r.to_json()).expect("parse"))
        .collect();
    let merged = merge(shards).expect("merge");
    assert_eq!(merged.trials_run, 120);
    assert_eq!(merged.trials_failed, 3);
    assert_eq!(merged.elapsed_ms, 1200, "elapsed is the slowest shard's");
    let order: Vec<(u64, &str)> = merged
        .findings
        .iter()
        .map(|f| (f.trial, f.detail.as_str()))
        .collect();
    assert_eq!(order, vec![(4, "a"), (4, "b"), (7, "d"), (10, "c")]);
    assert_eq!((merged.lock.as_str(), merged.seed), ("none", 7));
    assert_eq!(
        merged.unconfirmed,
        vec!["trial 12 stalled, and did not stall when it was run again: x".to_string()],
        "a shard's stall that did not come back stays in the merged report"
    );
}

#[test]
fn merge_refuses_mismatched_or_repeated_shards() {
    let err = merge(vec![
        report("none", 7, 10, 1, Vec::new()),
        report("none", 8, 10, 1, Vec::new()),
    ])
    .expect_err("seeds differ");
    assert!(
        matches!(err, MergeError::Mismatch { field: "seed", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("seed (7 vs 8)"), "{err}");

    let err = merge(vec![
        report("none", 7, 10, 1, Vec::new()),
        report("flock", 7, 10, 1, Vec::new()),
    ])
    .expect_err("locks differ");
    assert!(
        matches!(err, MergeError::Mismatch { field: "lock", .. }),
        "{err:?}"
    );

    let shard = report(
        "none",
        7,
        10,
        1,
        vec![finding(FindingKind::Oversold, 3, "a")],
    );
    let err = merge(vec![shard.clone(), shard]).expect_err("the same shard twice");
    assert!(matches!(err, MergeError::DuplicateTrial(3)), "{err:?}");

    assert!(matches!(merge(Vec::new()), Err(MergeError::Empty)));
    assert!(matches!(
        parse_report("not json"),
        Err(MergeError::Parse(_))
    ));
}
