//! One trial drawn as a timeline: an SVG picture (or an HTML page holding it).
//!
//! Each buyer process gets a horizontal swimlane. Along a shared axis, its ledger events
//! are drawn as marks (one shape and colour per event kind), the span in which it held the
//! lock as a bar (to the end of the trial when it died holding it), its wait for the lock
//! as a dashed line when it waited until the trial ended, a cross where an injected fault
//! killed it, and the events that show a finding in red, tagged with the number of the
//! finding captioned under the lanes; each lane's label carries the numbers of the
//! findings that name its buyer. The x axis is either time since the trial's first
//! event ([`Axis::Time`]) or the event's place in the merged ledger ([`Axis::Steps`]), the
//! natural axis for controlled schedules, where one step runs at a time.
//!
//! The output depends only on its input, so a fixed history always draws the same bytes.
//! Tools can find their way in it: each lane is a `<g class="lane" data-buyer="N">`, each
//! event mark carries `data-event` (its index in `History::events`) and a tooltip with its
//! ledger line, and marks of finding events have `class="finding"`; held bars are
//! `class="held"` (`held held-to-end` for a holder that died), waits `class="wait"`,
//! kill marks `<g class="kill">`, a power cut `<polyline class="power-cut">`, and lanes
//! named by a finding label `class="lane-finding"`.

use crate::check::Violation;
use crate::ledger::History;
use crate::report::count;
use draw::{
    r, text, wrap, With, FONT, GUTTER, INK, LANE_H, LEGEND_ROW_H, LINE_H, MARGIN, MAX_WIDTH,
    MIN_WIDTH, MUTED, PLOT_PAD, RED, RIGHT,
};
use lanes::Frame;
use legend::legend;
use scale::Scale;
use svg::node::element::{Group, Rectangle, Title};
use svg::{Document, Node};

mod clock;
mod draw;
mod injected;
mod lanes;
mod legend;
mod power;
mod race;
mod scale;

pub use race::{RaceMark, RaceStep};

/// What the x axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Milliseconds since the trial's first event (from the events' `ns`).
    Time,
    /// The event's index in the merged ledger: one step per event.
    Steps,
}

/// A finding to draw: its events in red and a caption under the lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The finding kind's stable name, e.g. `oversold`.
    pub kind: String,
    /// What the finding says, e.g. the violation's detail.
    pub caption: String,
    /// Indices into `History::events` of the events that show it.
    pub events: Vec<usize>,
    /// The buyers involved (their lane labels turn red when the finding has no events).
    pub buyers: Vec<u32>,
}

impl From<&Violation> for Mark {
    fn from(v: &Violation) -> Mark {
        Mark {
            kind: v.kind.name().to_string(),
            caption: v.detail.clone(),
            events: v.events.clone(),
            buyers: v.buyers.clone(),
        }
    }
}

/// One `Mark` per violation, in order.
pub fn marks(violations: &[Violation]) -> Vec<Mark> {
    violations.iter().map(Mark::from).collect()
}

/// Everything the picture shows.
#[derive(Debug, Clone)]
pub struct TimelineInput<'a> {
    /// The heading, e.g. `lock none · trial 3 · <token>`.
    pub title: String,
    /// Buyers in the trial (one lane each; more if the ledger names a higher buyer).
    pub buyers: u32,
    /// The trial's merged ledger.
    pub history: &'a History,
    /// The findings to mark, numbered from 1 in this order.
    pub findings: Vec<Mark>,
    /// What the x axis measures.
    pub axis: Axis,
    /// The finding's racing pair, when it was explained.
    pub race: Option<RaceMark>,
}

/// The picture as a standalone SVG document.
pub fn svg(input: &TimelineInput) -> String {
    document(input).to_string()
}

/// A standalone HTML page showing the picture, with a short key to reading it.
pub fn html(input: &TimelineInput) -> String {
    let title = escape_html(&input.title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>\n\
         body {{ font-family: {FONT}; color: {INK}; margin: 1.5em; }}\n\
         h1 {{ font-size: 1.2em; }}\n\
         .picture {{ overflow-x: auto; }}\n\
         </style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <p>One row per buyer process. The bar is the span in which the buyer held the \
         lock; a dashed line, a buyer waiting for the lock until the trial ended; a cross, \
         a buyer killed by an injected fault; a red square with a bang, a call made to fail \
         by an errno fault (its error above it); a red zigzag down every row, a power cut \
         (the rows below the trial's own are the fresh buyers that went on); an amber clock \
         face at the start of a row, a buyer whose clock the harness skewed or made jump. Events that show a finding are red and \
         numbered after the finding listed under the rows, and each row that a finding \
         names carries its number. Hover over a mark to see its ledger line.</p>\n\
         <div class=\"picture\">\n{}\n</div>\n</body>\n</html>\n",
        svg(input)
    )
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The frame of the picture: lane count, width and the plot's ends.
fn frame(input: &TimelineInput) -> Frame {
    let h = input.history;
    let n = h.events.len();
    let lanes = h
        .events
        .iter()
        .map(|e| e.buyer.saturating_add(1))
        .max()
        .unwrap_or(0)
        .max(input.buyers);
    // Width: room for every event at a readable spacing.
    let per_event = match input.axis {
        Axis::Steps => 16.0,
        Axis::Time => 10.0,
    };
    let plot_w = (n as f64 * per_event).max(MIN_WIDTH - GUTTER - RIGHT);
    let width = (GUTTER + plot_w + RIGHT).min(MAX_WIDTH);
    Frame {
        x0: GUTTER,
        x1: width - RIGHT,
        width,
        y0: 0.0,
        lanes,
    }
}

/// Title, subtitle; returns the group and the y below it.
fn header(input: &TimelineInput, f: &Frame) -> (Group, f64) {
    let h = input.history;
    let n = h.events.len();
    let title_lines = wrap(
        &input.title,
        ((f.width - 2.0 * MARGIN) / (16.0 * 0.62)) as usize,
    );
    let mut y = MARGIN + 14.0;
    let mut header = Group::new().set("class", "header");
    for line in &title_lines {
        header.append(
            text(MARGIN, y, 16.0, INK, line.as_str())
                .with("font-weight", "bold")
                .with("class", "title"),
        );
        y += 20.0;
    }
    let axis_words = match input.axis {
        Axis::Time => "x: milliseconds since the first event",
        Axis::Steps => "x: step (the event's place in the ledger)",
    };
    let mut sub = format!(
        "{} · {} · {axis_words}",
        count(f.lanes, "buyer"),
        count(n as u32, "event"),
    );
    if h.timed_out {
        sub.push_str(" · timed out");
    }
    if !h.unparsed.is_empty() {
        let lines = count(h.unparsed.len() as u32, "unparsed ledger line");
        sub.push_str(&format!(" · {lines}"));
    }
    header.append(text(MARGIN, y - 2.0, 11.0, MUTED, sub));
    (header, y + 20.0)
}

/// One numbered entry per finding, its kind and detail wrapped to the canvas as text
/// (not a tooltip, so a PNG keeps it); returns the group and the y below it.
fn captions(input: &TimelineInput, width: f64, mut y: f64) -> (Group, f64) {
    let mut captions = Group::new().set("class", "captions");
    let max_chars = ((width - 2.0 * MARGIN - 24.0) / (12.0 * 0.62)) as usize;
    if input.findings.is_empty() {
        captions.append(text(MARGIN, y, 12.0, MUTED, "no findings"));
        y += LINE_H;
    }
    for (k, m) in input.findings.iter().enumerate() {
        let head = format!("[{}]", k + 1);
        let lines = wrap(&format!("{}: {}", m.kind, m.caption), max_chars);
        let mut cap = Group::new().set("class", "caption");
        cap.append(text(MARGIN, y, 12.0, RED, head).with("font-weight", "bold"));
        for line in lines {
            cap.append(text(MARGIN + 28.0, y, 12.0, RED, line));
            y += LINE_H;
        }
        captions.append(cap);
    }
    (captions, y)
}

fn document(input: &TimelineInput) -> Document {
    let mut f = frame(input);
    let (header, y) = header(input, &f);
    let (legend, rows) = legend(MARGIN, y, f.width - 2.0 * MARGIN);
    f.y0 = y + rows as f64 * LEGEND_ROW_H;
    let axis_y = f.y0 + f64::from(f.lanes) * LANE_H + 4.0;
    let scale = Scale::new(input.history, input.axis, f.x0 + PLOT_PAD, f.x1 - PLOT_PAD);
    let (captions, y) = captions(input, f.width, axis_y + 62.0);
    let (race_caption, y) = race::caption(input, f.width, y);
    let height = y + MARGIN;
    let mut doc = Document::new()
        .set("width", r(f.width))
        .set("height", r(height))
        .set("viewBox", (0, 0, r(f.width), r(height)))
        .set("font-family", FONT)
        .add(Title::new(input.title.as_str()))
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "#ffffff"),
        )
        .add(header)
        .add(legend)
        .add(lanes::backgrounds(&f))
        .add(lanes::grid(&f, &scale, input.axis, axis_y));
    for lane in lanes::lanes(input, &f, &scale) {
        doc.append(lane);
    }
    if let Some(g) = race::marks(input, &f, &scale) {
        doc.append(g);
    }
    if let Some(g) = injected::marks(input, &f, &scale) {
        doc.append(g);
    }
    if let Some(g) = power::mark(input, &f, &scale) {
        doc.append(g);
    }
    if let Some(g) = clock::marks(input, &f) {
        doc.append(g);
    }
    if let Some(g) = race_caption {
        doc.append(g);
    }
    doc.add(captions)
}

#[cfg(test)]
mod tests {
    use super::scale::nice_step;
    use super::*;

    #[test]
    fn wrap_keeps_lines_short_and_words_whole() {
        let lines = wrap("aa bb cc dd ee", 8);
        assert_eq!(lines, vec!["aa bb cc", "dd ee"]);
        assert!(wrap(&"x".repeat(30), 10).iter().all(|l| l.len() <= 10));
        let token = "ov1.none.b2.t1.j5000.r2a.spct2.p0x3-1x7.foversold+double_sale";
        let lines = wrap(token, 24);
        assert_eq!(lines.concat(), token);
        assert!(lines.iter().all(|l| l.len() <= 24), "{lines:?}");
        let n = lines.len();
        assert!(
            lines[..n - 1].iter().all(|l| l.ends_with(['.', '+', '-'])),
            "{lines:?}"
        );
    }

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert!((nice_step(0.013) - 0.02).abs() < 1e-12);
    }

    #[test]
    fn sub_millisecond_ticks_keep_their_decimals() {
        let h = History::parse("1000 0 start\n301000 0 check 1\n");
        let scale = Scale::new(&h, Axis::Time, 100.0, 900.0);
        let labels: Vec<String> = scale.ticks(Axis::Time).into_iter().map(|t| t.1).collect();
        assert_eq!(labels.first().map(String::as_str), Some("0.00"));
        assert!(labels.contains(&"0.30".to_string()), "{labels:?}");
    }

    #[test]
    fn a_finding_without_events_reddens_its_buyers_label() {
        let h = History::parse("1000 0 start\n2000 1 start\n");
        let out = svg(&TimelineInput {
            title: "hang".into(),
            buyers: 2,
            history: &h,
            findings: vec![Mark {
                kind: "hang".into(),
                caption: "the trial passed its timeout".into(),
                events: Vec::new(),
                buyers: vec![1],
            }],
            axis: Axis::Steps,
            race: None,
        });
        assert!(out.contains(">buyer 1 [1]</text>"), "{out}");
        assert!(
            out.contains(">hang: the trial passed its timeout</text>"),
            "{out}"
        );
    }

    #[test]
    fn an_empty_history_still_draws() {
        let h = History::default();
        let out = svg(&TimelineInput {
            title: "empty".into(),
            buyers: 2,
            history: &h,
            findings: Vec::new(),
            axis: Axis::Time,
            race: None,
        });
        assert!(out.starts_with("<svg"));
        assert_eq!(out.matches("class=\"lane\"").count(), 2);
    }

    #[test]
    fn a_racing_pair_is_ringed_in_its_buyers_lanes_and_joined_by_an_arrow() {
        let h = History::parse("1000 0 start\n2000 1 start\n3000 0 read 1\n5000 1 read 1\n");
        let step = |step, buyer, ns| RaceStep {
            step,
            buyer,
            ns,
            what: format!("read count=1 #{step}"),
        };
        let out = svg(&TimelineInput {
            title: "race".into(),
            buyers: 2,
            history: &h,
            findings: Vec::new(),
            axis: Axis::Steps,
            race: Some(RaceMark {
                first: step(3, 0, 2500),
                second: step(4, 1, 4500),
                story: "swap steps 3 and 4".into(),
            }),
        });
        let doc = roxmltree_free_count(&out, "race-step");
        assert_eq!(doc, 2, "{out}");
        assert!(out.contains("class=\"race-arrow\""), "{out}");
        assert!(out.contains("step 4 · buyer 1 · read count=1 #4"), "{out}");
        assert!(out.contains("racing pair: swap steps 3 and 4"), "{out}");
        // The first ring sits in buyer 0's lane, above the second in buyer 1's.
        let cy: Vec<f64> = out
            .split("class=\"race-step")
            .skip(1)
            .filter_map(|s| s.split("cy=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        assert_eq!(cy.len(), 2);
        assert!(cy[0] < cy[1], "{cy:?}");
    }

    fn roxmltree_free_count(svg: &str, class: &str) -> usize {
        svg.matches(&format!("class=\"{class} ")).count()
    }
}
