//! The racing pair of a finding on the timeline: each step ringed in its buyer's lane, an
//! arrow from the first to the second, and a tooltip with the order that clears it.

use super::draw::{r, text, wrap, With, LINE_H, MARGIN};
use super::lanes::Frame;
use super::scale::Scale;
use super::{Axis, TimelineInput};
use crate::ledger::History;
use svg::node::element::{Circle, Definitions, Element, Group, Line, Marker, Path, Title};
use svg::Node;

/// The colour of the racing pair (apart from the finding red and the lock colours).
const RACE: &str = "#e67e00";

/// One step of the racing pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceStep {
    /// Its number in the run, from 1.
    pub step: usize,
    /// The buyer that took it.
    pub buyer: u32,
    /// `CLOCK_MONOTONIC` ns when it was let go: where it sits among the ledger's events.
    pub ns: u64,
    /// What it did.
    pub what: String,
}

/// The racing pair to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceMark {
    /// The step taken first.
    pub first: RaceStep,
    /// The step taken second, whose move before the first clears the finding.
    pub second: RaceStep,
    /// The explanation, shown as the arrow's tooltip and under the lanes.
    pub story: String,
}

/// Where a step sits on the axis: before the first event let go at or after its `ns`.
pub(super) fn at(h: &History, axis: Axis, ns: u64) -> f64 {
    match axis {
        Axis::Steps => h.events.iter().filter(|e| e.ns < ns).count() as f64 - 0.35,
        Axis::Time => {
            let first = h.events.iter().map(|e| e.ns).min().unwrap_or(ns);
            ns.saturating_sub(first) as f64 / 1e6
        }
    }
}

/// The ring, the arrow and their tooltips.
pub(super) fn marks(input: &TimelineInput, f: &Frame, scale: &Scale) -> Option<Group> {
    let race = input.race.as_ref()?;
    let h = input.history;
    let point = |s: &RaceStep| (scale.x(at(h, input.axis, s.ns)), f.mid(s.buyer));
    let (a, b) = (point(&race.first), point(&race.second));
    let mut g = Group::new().set("class", "race");
    g.append(
        Definitions::new().add(
            Marker::new()
                .set("id", "race-head")
                .set("viewBox", "0 0 10 10")
                .set("refX", 9)
                .set("refY", 5)
                .set("markerWidth", 7)
                .set("markerHeight", 7)
                .set("orient", "auto-start-reverse")
                .add(
                    Path::new()
                        .set("d", "M 0 0 L 10 5 L 0 10 z")
                        .set("fill", RACE),
                ),
        ),
    );
    let mut arrow = Line::new()
        .set("class", "race-arrow")
        .set("x1", r(a.0))
        .set("y1", r(a.1))
        .set("x2", r(b.0))
        .set("y2", r(b.1))
        .set("stroke", RACE)
        .set("stroke-width", 2)
        .set("marker-end", "url(#race-head)");
    arrow.append(Title::new(race.story.as_str()));
    g.append(arrow);
    for (s, (x, y), which) in [(&race.first, a, "first"), (&race.second, b, "second")] {
        let mut ring = Circle::new()
            .set("class", format!("race-step race-{which}"))
            .set("data-step", s.step)
            .set("data-buyer", s.buyer)
            .set("cx", r(x))
            .set("cy", r(y))
            .set("r", 9)
            .set("fill", "none")
            .set("stroke", RACE)
            .set("stroke-width", 3);
        ring.append(Title::new(format!(
            "step {} · buyer {} · {}",
            s.step, s.buyer, s.what
        )));
        g.append(ring);
    }
    Some(g)
}

/// The racing pair's caption under the lanes; returns it and the y below it.
pub(super) fn caption(input: &TimelineInput, width: f64, mut y: f64) -> (Option<Element>, f64) {
    let Some(race) = input.race.as_ref() else {
        return (None, y);
    };
    let mut g = Element::new("g");
    g.assign("class", "race-caption");
    let max_chars = ((width - 2.0 * MARGIN - 24.0) / (12.0 * 0.62)) as usize;
    g.append(text(MARGIN, y, 12.0, RACE, "⇄").with("font-weight", "bold"));
    for line in wrap(&format!("racing pair: {}", race.story), max_chars) {
        g.append(text(MARGIN + 28.0, y, 12.0, RACE, line));
        y += LINE_H;
    }
    (Some(g), y)
}
