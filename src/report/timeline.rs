//! One trial drawn as a timeline: an SVG picture (or an HTML page holding it).
//!
//! Each buyer process gets a horizontal swimlane. Along a shared axis, its ledger events
//! are drawn as marks (one shape and colour per event kind), the span in which it held the
//! lock as a bar, and the events that show a finding in red, tagged with the number of the
//! finding captioned under the lanes. The x axis is either time since the trial's first
//! event ([`Axis::Time`]) or the event's place in the merged ledger ([`Axis::Steps`]), the
//! natural axis for controlled schedules, where one step runs at a time.
//!
//! The output depends only on its input, so a fixed history always draws the same bytes.
//! Tools can find their way in it: each lane is a `<g class="lane" data-buyer="N">`, each
//! event mark carries `data-event` (its index in `History::events`) and a tooltip with its
//! ledger line, and marks of finding events have `class="finding"`.

use crate::check::Violation;
use crate::ledger::{Event, EventKind, History};
use svg::node::element::{Circle, Element, Group, Line, Polygon, Rectangle, Title};
use svg::node::Value;
use svg::{Document, Node};

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

/// One [`Mark`] per violation, in order.
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
}

// Geometry, in SVG user units (pixels).
const MIN_WIDTH: f64 = 960.0;
const MAX_WIDTH: f64 = 4000.0;
const GUTTER: f64 = 100.0; // left of the plot: lane labels
const RIGHT: f64 = 28.0;
const MARGIN: f64 = 16.0;
const LANE_H: f64 = 36.0;
const LINE_H: f64 = 17.0;
const LEGEND_ROW_H: f64 = 20.0;
const TICK_SPACING: f64 = 90.0; // pixels wanted between axis ticks
const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

// Colours.
const RED: &str = "#d62728";
const INK: &str = "#222222";
const MUTED: &str = "#666666";
const GRID: &str = "#dddddd";
const BLUE: &str = "#1f77b4";
const PURPLE: &str = "#7b4fb0";
const AMBER: &str = "#a07800";
const GREEN: &str = "#2ca02c";
const GREY: &str = "#888888";

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
         lock; events that show a finding are red and numbered after the finding listed \
         under the rows. Hover over a mark to see its ledger line.</p>\n\
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

/// Rounds to a tenth of a pixel so the output stays short and stable.
fn r(x: f64) -> f64 {
    (x * 10.0).round() / 10.0 + 0.0
}

/// A generous estimate of how wide `text` is at `size` pixels.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// Splits `text` into lines of at most `max` characters, at spaces where it can.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > max {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(max).collect();
            word = word.chars().skip(max).collect();
            lines.push(head);
        }
        if line.is_empty() {
            line = word;
        } else if line.chars().count() + 1 + word.chars().count() <= max {
            line.push(' ');
            line.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut line, word));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A `<text>` element whose content is written inline (the crate's `Text` element pads its
/// content with newlines, which some renderers draw as a leading space).
fn text(x: f64, y: f64, size: f64, fill: &str, content: impl Into<String>) -> Element {
    let mut el = Element::new("text");
    el.assign("x", r(x));
    el.assign("y", r(y));
    el.assign("font-size", size);
    el.assign("fill", fill);
    el.append(svg::node::Text::new(content));
    el
}

/// Builder-style attribute setting for a plain [`Element`].
trait With {
    fn with(self, name: &str, value: impl Into<Value>) -> Self;
}

impl With for Element {
    fn with(mut self, name: &str, value: impl Into<Value>) -> Element {
        self.assign(name, value);
        self
    }
}

/// How event positions map to pixels, and where the ticks go.
struct Scale {
    /// Each event's position in axis units (ms or steps), by event index.
    pos: Vec<f64>,
    lo: f64,
    hi: f64,
    x0: f64,
    x1: f64,
}

impl Scale {
    fn new(history: &History, axis: Axis, x0: f64, x1: f64) -> Scale {
        let n = history.events.len();
        let (pos, lo, hi) = match axis {
            Axis::Steps => {
                let pos: Vec<f64> = (0..n).map(|i| i as f64).collect();
                (pos, -0.5, n.max(1) as f64 - 0.5)
            }
            Axis::Time => {
                let first = history.events.iter().map(|e| e.ns).min().unwrap_or(0);
                let pos: Vec<f64> = history
                    .events
                    .iter()
                    .map(|e| e.ns.saturating_sub(first) as f64 / 1e6)
                    .collect();
                let span = pos.iter().copied().fold(0.0, f64::max);
                let span = if span > 0.0 { span } else { 1.0 };
                let pad = span * 0.03;
                (pos, -pad, span + pad)
            }
        };
        Scale {
            pos,
            lo,
            hi,
            x0,
            x1,
        }
    }

    fn x(&self, value: f64) -> f64 {
        self.x0 + (value - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)
    }

    fn event_x(&self, i: usize) -> f64 {
        self.x(self.pos.get(i).copied().unwrap_or(0.0))
    }

    /// Tick values and their labels.
    fn ticks(&self, axis: Axis) -> Vec<(f64, String)> {
        let span = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let wanted = ((self.x1 - self.x0) / TICK_SPACING).max(2.0);
        let mut step = nice_step(span / wanted);
        if axis == Axis::Steps {
            step = step.max(1.0);
        }
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10()).ceil() as usize
        };
        let top = self.hi.max(0.0);
        let mut out = Vec::new();
        let mut k = 0u32;
        loop {
            let v = f64::from(k) * step;
            if v > top + 1e-9 || k > 1000 {
                break;
            }
            out.push((v, format!("{v:.decimals$}")));
            k += 1;
        }
        out
    }
}

/// The round number (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The mark of an event kind at `(x, y)`: one shape and colour per kind.
fn glyph(kind: EventKind, x: f64, y: f64) -> Element {
    let filled_circle = |fill: &str| -> Element {
        Circle::new()
            .set("cx", r(x))
            .set("cy", r(y))
            .set("r", 4.5)
            .set("fill", fill)
            .set("stroke", fill)
            .set("stroke-width", 1.5)
            .into()
    };
    let square = |fill: &str, stroke: &str| -> Element {
        Rectangle::new()
            .set("x", r(x - 4.5))
            .set("y", r(y - 4.5))
            .set("width", 9)
            .set("height", 9)
            .set("fill", fill)
            .set("stroke", stroke)
            .set("stroke-width", 1.5)
            .into()
    };
    let polygon = |points: &[(f64, f64)], fill: &str, stroke: &str| -> Element {
        let pts: Vec<String> = points
            .iter()
            .map(|(dx, dy)| format!("{},{}", r(x + dx), r(y + dy)))
            .collect();
        Polygon::new()
            .set("points", pts.join(" "))
            .set("fill", fill)
            .set("stroke", stroke)
            .set("stroke-width", 1.5)
            .set("stroke-linejoin", "round")
            .into()
    };
    let diamond = [(0.0, -6.0), (6.0, 0.0), (0.0, 6.0), (-6.0, 0.0)];
    match kind {
        EventKind::Start => Line::new()
            .set("x1", r(x))
            .set("x2", r(x))
            .set("y1", r(y - 6.0))
            .set("y2", r(y + 6.0))
            .set("stroke", GREY)
            .set("stroke-width", 2)
            .into(),
        EventKind::Check => Circle::new()
            .set("cx", r(x))
            .set("cy", r(y))
            .set("r", 4.5)
            .set("fill", "#ffffff")
            .set("stroke", BLUE)
            .set("stroke-width", 1.5)
            .into(),
        EventKind::Acquired => polygon(&[(-4.0, -6.0), (5.0, 0.0), (-4.0, 6.0)], AMBER, AMBER),
        EventKind::Read => filled_circle(BLUE),
        EventKind::Truncated => square("#ffffff", PURPLE),
        EventKind::Wrote => square(PURPLE, PURPLE),
        EventKind::Released => polygon(&[(4.0, -6.0), (-5.0, 0.0), (4.0, 6.0)], AMBER, AMBER),
        EventKind::Bought => polygon(&diamond, GREEN, GREEN),
        EventKind::SoldOut => polygon(&diamond, "#ffffff", GREY),
        EventKind::Error => polygon(&[(0.0, -6.0), (6.0, 5.0), (-6.0, 5.0)], "#ffffff", INK),
    }
}

/// The legend's entries, in protocol order.
const LEGEND: &[(EventKind, &str)] = &[
    (EventKind::Start, "start"),
    (EventKind::Check, "check (unlocked)"),
    (EventKind::Acquired, "acquired"),
    (EventKind::Read, "read"),
    (EventKind::Truncated, "truncated"),
    (EventKind::Wrote, "wrote"),
    (EventKind::Released, "released"),
    (EventKind::Bought, "bought"),
    (EventKind::SoldOut, "sold out"),
    (EventKind::Error, "error"),
];

/// Paints a glyph red: the look of an event that shows a finding.
fn redden(mut el: Element) -> Element {
    let hollow = el
        .get_attributes()
        .get("fill")
        .is_some_and(|f| *f == "#ffffff");
    el.assign("stroke", RED);
    if !hollow {
        el.assign("fill", RED);
    }
    el.assign("class", "finding");
    el
}

fn held_bar(x0: f64, x1: f64, y: f64, class: &str) -> Rectangle {
    let w = (x1 - x0).max(3.0);
    Rectangle::new()
        .set("class", class)
        .set("x", r(x0))
        .set("y", r(y - 7.0))
        .set("width", r(w))
        .set("height", 14)
        .set("rx", 3)
        .set("fill", "#f5d36b")
        .set("fill-opacity", 0.6)
        .set("stroke", "#c9a227")
        .set("stroke-width", 1)
}

/// A legend entry: how to draw its sample at a point, and its label.
type LegendEntry = (Box<dyn Fn(f64, f64) -> Element>, &'static str);

/// Lays the legend out in rows that fit `width`; returns its group and the row count.
fn legend(x0: f64, y0: f64, width: f64) -> (Group, usize) {
    const SIZE: f64 = 11.0;
    let mut entries: Vec<LegendEntry> = vec![(
        Box::new(|x, y| held_bar(x - 6.0, x + 6.0, y, "legend-held").into()),
        "lock held",
    )];
    for &(kind, label) in LEGEND {
        entries.push((Box::new(move |x, y| glyph(kind, x, y)), label));
    }
    entries.push((
        Box::new(|x, y| {
            let mut el = redden(glyph(EventKind::Read, x, y));
            el.assign("class", "legend-finding");
            el
        }),
        "shows finding [n]",
    ));
    let mut group = Group::new().set("class", "legend");
    let mut row = 0usize;
    let mut x = x0;
    for (draw, label) in &entries {
        let w = 16.0 + text_width(label, SIZE) + 18.0;
        if x > x0 && x + w > x0 + width {
            row += 1;
            x = x0;
        }
        let y = y0 + row as f64 * LEGEND_ROW_H;
        group.append(draw(x + 6.0, y - 4.0));
        group.append(text(x + 16.0, y, SIZE, INK, *label));
        x += w;
    }
    (group, row + 1)
}

/// The span each buyer held the lock: `acquired` to `released`, or to its last event.
fn held_spans(history: &History, buyer: u32) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    let mut last = None;
    for (i, e) in history.events.iter().enumerate() {
        if e.buyer != buyer {
            continue;
        }
        last = Some(i);
        match e.kind {
            EventKind::Acquired => start = Some(i),
            EventKind::Released => {
                if let Some(s) = start.take() {
                    spans.push((s, i));
                }
            }
            _ => {}
        }
    }
    if let (Some(s), Some(l)) = (start, last) {
        spans.push((s, l));
    }
    spans
}

/// The words shown above a mark: the event's value, for events that carry a count.
fn value_label(e: &Event) -> Option<String> {
    match e.kind {
        EventKind::Check
        | EventKind::Read
        | EventKind::Truncated
        | EventKind::Wrote
        | EventKind::Bought
        | EventKind::Error => e.value.clone(),
        _ => None,
    }
}

fn document(input: &TimelineInput) -> Document {
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
    let (x0, x1) = (GUTTER, width - RIGHT);

    // Header: title, subtitle, legend.
    let title_lines = wrap(
        &input.title,
        ((width - 2.0 * MARGIN) / (16.0 * 0.62)) as usize,
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
        "{lanes} {} · {n} {} · {axis_words}",
        if lanes == 1 { "buyer" } else { "buyers" },
        if n == 1 { "event" } else { "events" },
    );
    if h.timed_out {
        sub.push_str(" · timed out");
    }
    if !h.unparsed.is_empty() {
        sub.push_str(&format!(" · {} unparsed ledger lines", h.unparsed.len()));
    }
    header.append(text(MARGIN, y - 2.0, 11.0, MUTED, sub));
    y += 20.0;
    let (legend, rows) = legend(MARGIN, y, width - 2.0 * MARGIN);
    y += rows as f64 * LEGEND_ROW_H;
    let lanes_y0 = y;
    let axis_y = lanes_y0 + f64::from(lanes) * LANE_H + 4.0;

    let scale = Scale::new(h, input.axis, x0 + 8.0, x1 - 8.0);

    // Which findings each event shows, numbered from 1.
    let mut tags: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, m) in input.findings.iter().enumerate() {
        for &i in &m.events {
            if let Some(t) = tags.get_mut(i) {
                if !t.contains(&(k + 1)) {
                    t.push(k + 1);
                }
            }
        }
    }
    // Buyers named by a finding that has no events to mark.
    let lane_tags = |b: u32| -> Vec<usize> {
        input
            .findings
            .iter()
            .enumerate()
            .filter(|(_, m)| m.events.is_empty() && m.buyers.contains(&b))
            .map(|(k, _)| k + 1)
            .collect()
    };

    // Lane backgrounds, then grid lines over them, then each lane's marks.
    let mut backgrounds = Group::new().set("class", "lane-backgrounds");
    for b in 0..lanes {
        let top = lanes_y0 + f64::from(b) * LANE_H;
        backgrounds.append(
            Rectangle::new()
                .set("x", MARGIN)
                .set("y", r(top))
                .set("width", r(width - 2.0 * MARGIN))
                .set("height", LANE_H)
                .set("fill", if b % 2 == 0 { "#f7f7f7" } else { "#eeeeee" }),
        );
    }
    let ticks = scale.ticks(input.axis);
    let mut grid = Group::new().set("class", "axis");
    grid.append(
        Line::new()
            .set("x1", x0)
            .set("x2", x1)
            .set("y1", r(axis_y))
            .set("y2", r(axis_y))
            .set("stroke", MUTED)
            .set("stroke-width", 1),
    );
    for (v, label) in &ticks {
        let x = scale.x(*v);
        grid.append(
            Line::new()
                .set("x1", r(x))
                .set("x2", r(x))
                .set("y1", r(lanes_y0))
                .set("y2", r(axis_y))
                .set("stroke", GRID)
                .set("stroke-width", 1),
        );
        grid.append(
            Line::new()
                .set("x1", r(x))
                .set("x2", r(x))
                .set("y1", r(axis_y))
                .set("y2", r(axis_y + 5.0))
                .set("stroke", MUTED)
                .set("stroke-width", 1),
        );
        grid.append(
            text(x, axis_y + 18.0, 11.0, MUTED, label.as_str()).with("text-anchor", "middle"),
        );
    }
    let axis_title = match input.axis {
        Axis::Time => "time since the first event (ms)",
        Axis::Steps => "step",
    };
    grid.append(
        text((x0 + x1) / 2.0, axis_y + 36.0, 11.0, MUTED, axis_title).with("text-anchor", "middle"),
    );

    let mut lane_groups = Vec::new();
    for b in 0..lanes {
        let mid = lanes_y0 + f64::from(b) * LANE_H + LANE_H / 2.0;
        let mut lane = Group::new().set("class", "lane").set("data-buyer", b);
        let extra = lane_tags(b);
        let label = if extra.is_empty() {
            format!("buyer {b}")
        } else {
            let ks: Vec<String> = extra.iter().map(|k| k.to_string()).collect();
            format!("buyer {b} [{}]", ks.join(","))
        };
        lane.append(
            text(
                GUTTER - 10.0,
                mid + 4.0,
                12.0,
                if extra.is_empty() { INK } else { RED },
                label,
            )
            .with("text-anchor", "end"),
        );
        let mine: Vec<usize> = (0..n).filter(|&i| h.events[i].buyer == b).collect();
        if let (Some(&first), Some(&last)) = (mine.first(), mine.last()) {
            lane.append(
                Line::new()
                    .set("x1", r(scale.event_x(first)))
                    .set("x2", r(scale.event_x(last)))
                    .set("y1", r(mid))
                    .set("y2", r(mid))
                    .set("stroke", "#bbbbbb")
                    .set("stroke-width", 1.5),
            );
        }
        for (s, e) in held_spans(h, b) {
            let mut bar = held_bar(scale.event_x(s), scale.event_x(e), mid, "held");
            bar.append(Title::new(format!(
                "buyer {b} held the lock from event {s} to event {e}"
            )));
            lane.append(bar);
        }
        // Labels skip rather than overlap: remember where the last one in each row ended.
        let mut value_end = f64::MIN;
        let mut tag_end = f64::MIN;
        for &i in &mine {
            let e = &h.events[i];
            let x = scale.event_x(i);
            let mut mark = glyph(e.kind, x, mid);
            if !tags[i].is_empty() {
                mark = redden(mark);
            }
            let when = match input.axis {
                Axis::Time => format!("{:.3} ms", scale.pos[i]),
                Axis::Steps => format!("step {i}"),
            };
            mark.assign("data-event", i);
            mark.append(Title::new(format!("{when}: {e}")));
            lane.append(mark);
            if let Some(v) = value_label(e) {
                let w = text_width(&v, 9.0);
                if x - w / 2.0 > value_end + 2.0 {
                    lane.append(text(x, mid - 9.0, 9.0, MUTED, v).with("text-anchor", "middle"));
                    value_end = x + w / 2.0;
                }
            }
            if !tags[i].is_empty() {
                let ks: Vec<String> = tags[i].iter().map(|k| k.to_string()).collect();
                let t = ks.join(",");
                let w = text_width(&t, 9.0);
                if x - w / 2.0 > tag_end + 2.0 {
                    lane.append(
                        text(x, mid + 16.0, 9.0, RED, t)
                            .with("text-anchor", "middle")
                            .with("font-weight", "bold")
                            .with("class", "finding-tag"),
                    );
                    tag_end = x + w / 2.0;
                }
            }
        }
        lane_groups.push(lane);
    }

    // Captions: one numbered entry per finding, wrapped to the canvas.
    let mut y = axis_y + 62.0;
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
    let height = y + MARGIN;

    let mut doc = Document::new()
        .set("width", r(width))
        .set("height", r(height))
        .set("viewBox", (0, 0, r(width), r(height)))
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
        .add(backgrounds)
        .add(grid);
    for lane in lane_groups {
        doc.append(lane);
    }
    doc.add(captions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_short_and_words_whole() {
        let lines = wrap("aa bb cc dd ee", 8);
        assert_eq!(lines, vec!["aa bb cc", "dd ee"]);
        assert!(wrap(&"x".repeat(30), 10).iter().all(|l| l.len() <= 10));
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
        });
        assert!(out.starts_with("<svg"));
        assert_eq!(out.matches("class=\"lane\"").count(), 2);
    }
}
