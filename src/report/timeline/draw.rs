//! Drawing primitives: geometry, colours, text, and the mark of each event kind.

use crate::ledger::EventKind;
use svg::node::element::{Circle, Element, Line, Polygon, Rectangle};
use svg::node::{Node, Value};

// Geometry, in SVG user units (pixels).
pub(super) const MIN_WIDTH: f64 = 960.0;
pub(super) const MAX_WIDTH: f64 = 4000.0;
pub(super) const GUTTER: f64 = 100.0; // left of the plot: lane labels
pub(super) const RIGHT: f64 = 28.0;
pub(super) const MARGIN: f64 = 16.0;
pub(super) const LANE_H: f64 = 36.0;
pub(super) const LINE_H: f64 = 17.0;
pub(super) const LEGEND_ROW_H: f64 = 20.0;
/// Room between the axis' ends and the first and last event.
pub(super) const PLOT_PAD: f64 = 8.0;
pub(super) const TICK_SPACING: f64 = 90.0; // pixels wanted between axis ticks
pub(super) const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

// Colours.
pub(super) const RED: &str = "#d62728";
pub(super) const INK: &str = "#222222";
pub(super) const MUTED: &str = "#666666";
pub(super) const GRID: &str = "#dddddd";
pub(super) const BLUE: &str = "#1f77b4";
pub(super) const PURPLE: &str = "#7b4fb0";
pub(super) const AMBER: &str = "#a07800";
pub(super) const GREEN: &str = "#2ca02c";
pub(super) const GREY: &str = "#888888";

/// Rounds to a tenth of a pixel so the output stays short and stable.
pub(super) fn r(x: f64) -> f64 {
    (x * 10.0).round() / 10.0 + 0.0
}

/// A generous estimate of how wide `text` is at `size` pixels.
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// Splits `text` into lines of at most `max` characters, at spaces where it can.
pub(super) fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > max {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // Break a long word (a token) after a separator where one is near the end.
            let cut = word
                .char_indices()
                .take(max)
                .filter(|&(i, c)| matches!(c, '.' | '+' | '-') && i > max / 2)
                .map(|(i, _)| i + 1)
                .last()
                .unwrap_or_else(|| word.char_indices().nth(max).map_or(word.len(), |(i, _)| i));
            let rest = word.split_off(cut);
            lines.push(std::mem::replace(&mut word, rest));
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
pub(super) fn text(x: f64, y: f64, size: f64, fill: &str, content: impl Into<String>) -> Element {
    let mut el = Element::new("text");
    el.assign("x", r(x));
    el.assign("y", r(y));
    el.assign("font-size", size);
    el.assign("fill", fill);
    el.append(svg::node::Text::new(content));
    el
}

/// Builder-style attribute setting for a plain [`Element`].
pub(super) trait With {
    fn with(self, name: &str, value: impl Into<Value>) -> Self;
}

impl With for Element {
    fn with(mut self, name: &str, value: impl Into<Value>) -> Element {
        self.assign(name, value);
        self
    }
}

/// The mark of an event kind at `(x, y)`: one shape and colour per kind.
pub(super) fn glyph(kind: EventKind, x: f64, y: f64) -> Element {
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
        EventKind::Stopped => square(GREY, GREY),
        EventKind::Resumed => square("#ffffff", GREY),
        EventKind::Fence => filled_circle(AMBER),
    }
}

/// Paints a glyph red: the look of an event that shows a finding.
pub(super) fn redden(mut el: Element) -> Element {
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

pub(super) fn held_bar(x0: f64, x1: f64, y: f64, class: &str) -> Rectangle {
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

/// A frozen span (a stop fault: SIGSTOP to SIGCONT) on a lane, from `x0` to `x1`: a
/// slate band over the lane line, thinner than a held bar so both show.
pub(super) fn frozen_bar(x0: f64, x1: f64, y: f64) -> Rectangle {
    let w = (x1 - x0).max(3.0);
    Rectangle::new()
        .set("class", "frozen")
        .set("x", r(x0))
        .set("y", r(y - 4.0))
        .set("width", r(w))
        .set("height", 8)
        .set("fill", "#6b7b8c")
        .set("fill-opacity", 0.55)
        .set("stroke", "#4a5866")
        .set("stroke-width", 1)
        .set("stroke-dasharray", "3 2")
}

/// The dark red of a kill mark (apart from the finding red, which marks findings).
pub(super) const KILL: &str = "#8b0000";

/// A cross at `(x, y)`: where a buyer was killed.
pub(super) fn kill_mark(x: f64, y: f64) -> Element {
    let mut g = Element::new("g");
    g.assign("class", "kill");
    for (dy0, dy1) in [(-6.0, 6.0), (6.0, -6.0)] {
        g.append(
            Line::new()
                .set("x1", r(x - 6.0))
                .set("x2", r(x + 6.0))
                .set("y1", r(y + dy0))
                .set("y2", r(y + dy1))
                .set("stroke", KILL)
                .set("stroke-width", 2.5)
                .set("stroke-linecap", "round"),
        );
    }
    g
}

/// A dashed line from `x0` to `x1` at `y`: a buyer waiting for the lock.
pub(super) fn wait_line(x0: f64, x1: f64, y: f64) -> Element {
    Line::new()
        .set("class", "wait")
        .set("x1", r(x0))
        .set("x2", r(x1.max(x0)))
        .set("y1", r(y))
        .set("y2", r(y))
        .set("stroke", AMBER)
        .set("stroke-width", 2)
        .set("stroke-dasharray", "5 4")
        .into()
}
