//! The lanes: one row per buyer with its events, the spans it held the lock, where it
//! waited for the lock to the end, where it was killed; under them the axis.

use super::draw::{
    frozen_bar, glyph, held_bar, kill_mark, redden, text, text_width, wait_line, With, GRID,
    GUTTER, INK, KILL, LANE_H, MARGIN, MUTED, RED,
};
use super::scale::Scale;
use super::{Axis, TimelineInput};
use crate::ledger::{Event, EventKind, Exit, History, Stuck};
use svg::node::element::{Element, Group, Line, Rectangle, Title};
use svg::Node;

/// Where the lanes go.
pub(super) struct Frame {
    /// Left and right end of the plot.
    pub x0: f64,
    pub x1: f64,
    /// Width of the whole picture.
    pub width: f64,
    /// Top of the first lane.
    pub y0: f64,
    /// How many lanes.
    pub lanes: u32,
}

impl Frame {
    pub(super) fn mid(&self, b: u32) -> f64 {
        self.y0 + f64::from(b) * LANE_H + LANE_H / 2.0
    }
}

/// The lanes' alternating backgrounds.
pub(super) fn backgrounds(f: &Frame) -> Group {
    let mut g = Group::new().set("class", "lane-backgrounds");
    for b in 0..f.lanes {
        let top = f.y0 + f64::from(b) * LANE_H;
        g.append(
            Rectangle::new()
                .set("x", MARGIN)
                .set("y", super::draw::r(top))
                .set("width", super::draw::r(f.width - 2.0 * MARGIN))
                .set("height", LANE_H)
                .set("fill", if b % 2 == 0 { "#f7f7f7" } else { "#eeeeee" }),
        );
    }
    g
}

fn vline(x: f64, y1: f64, y2: f64, stroke: &str) -> Line {
    use super::draw::r;
    Line::new()
        .set("x1", r(x))
        .set("x2", r(x))
        .set("y1", r(y1))
        .set("y2", r(y2))
        .set("stroke", stroke)
        .set("stroke-width", 1)
}

/// The x axis at `axis_y`, with ticks and grid lines up through the lanes.
pub(super) fn grid(f: &Frame, scale: &Scale, axis: Axis, axis_y: f64) -> Group {
    use super::draw::r;
    let mut g = Group::new().set("class", "axis");
    g.append(
        Line::new()
            .set("x1", f.x0)
            .set("x2", f.x1)
            .set("y1", r(axis_y))
            .set("y2", r(axis_y))
            .set("stroke", MUTED)
            .set("stroke-width", 1),
    );
    for (v, label) in &scale.ticks(axis) {
        let x = scale.x(*v);
        g.append(vline(x, f.y0, axis_y, GRID));
        g.append(vline(x, axis_y, axis_y + 5.0, MUTED));
        g.append(text(x, axis_y + 18.0, 11.0, MUTED, label.as_str()).with("text-anchor", "middle"));
    }
    let title = match axis {
        Axis::Time => "time since the first event (ms)",
        Axis::Steps => "step",
    };
    g.append(
        text((f.x0 + f.x1) / 2.0, axis_y + 36.0, 11.0, MUTED, title).with("text-anchor", "middle"),
    );
    g
}

/// Which findings (numbered from 1) each event shows.
fn event_tags(input: &TimelineInput) -> Vec<Vec<usize>> {
    let mut tags: Vec<Vec<usize>> = vec![Vec::new(); input.history.events.len()];
    for (k, m) in input.findings.iter().enumerate() {
        for &i in &m.events {
            if let Some(t) = tags.get_mut(i) {
                if !t.contains(&(k + 1)) {
                    t.push(k + 1);
                }
            }
        }
    }
    tags
}

/// The findings (numbered from 1) that name buyer `b`.
fn lane_tags(input: &TimelineInput, b: u32) -> Vec<usize> {
    let named = |k: usize| {
        let m = &input.findings[k];
        m.buyers.contains(&b)
            || m.events
                .iter()
                .any(|&i| input.history.events.get(i).is_some_and(|e| e.buyer == b))
    };
    (0..input.findings.len())
        .filter(|&k| named(k))
        .map(|k| k + 1)
        .collect()
}

/// True when buyer `b` ended other than by exiting cleanly: killed, or crashed.
fn died(h: &History, b: u32) -> bool {
    h.fates
        .get(b as usize)
        .is_some_and(|f| f.killed_by_fault || f.killed_by_timeout || f.exit != Exit::Code(0))
}

/// True when buyer `b` was still waiting for the lock when the trial ended.
fn waits_to_the_end(h: &History, b: u32) -> bool {
    match &h.stuck {
        Some(Stuck::Deadlock { waiting, .. }) => waiting.contains(&b),
        _ => {
            h.timed_out
                && h.fates.get(b as usize).is_some_and(|f| f.killed_by_timeout)
                && !h.holds_at_end(b)
        }
    }
}

/// Every lane, in buyer order.
pub(super) fn lanes(input: &TimelineInput, f: &Frame, scale: &Scale) -> Vec<Group> {
    let tags = event_tags(input);
    (0..f.lanes)
        .map(|b| lane(input, f, scale, b, &tags))
        .collect()
}

fn lane(input: &TimelineInput, f: &Frame, scale: &Scale, b: u32, tags: &[Vec<usize>]) -> Group {
    let h = input.history;
    let mid = f.mid(b);
    let mut g = Group::new().set("class", "lane").set("data-buyer", b);
    g.append(label(b, &lane_tags(input, b), mid));
    let mine: Vec<usize> = (0..h.events.len())
        .filter(|&i| h.events[i].buyer == b)
        .collect();
    if let (Some(&first), Some(&last)) = (mine.first(), mine.last()) {
        g.append(
            Line::new()
                .set("x1", super::draw::r(scale.event_x(first)))
                .set("x2", super::draw::r(scale.event_x(last)))
                .set("y1", super::draw::r(mid))
                .set("y2", super::draw::r(mid))
                .set("stroke", "#bbbbbb")
                .set("stroke-width", 1.5),
        );
    }
    held(&mut g, h, scale, b, mid);
    frozen(&mut g, h, scale, b, mid);
    ending(&mut g, h, scale, b, mid, mine.last().copied());
    events(&mut g, input, scale, &mine, tags, mid);
    g
}

/// The lane's label, red and tagged with the findings that name the buyer.
fn label(b: u32, tags: &[usize], mid: f64) -> Element {
    let text_ = if tags.is_empty() {
        format!("buyer {b}")
    } else {
        let ks: Vec<String> = tags.iter().map(|k| k.to_string()).collect();
        format!("buyer {b} [{}]", ks.join(","))
    };
    let fill = if tags.is_empty() { INK } else { RED };
    let mut el = text(GUTTER - 10.0, mid + 4.0, 12.0, fill, text_).with("text-anchor", "end");
    if !tags.is_empty() {
        el.assign("class", "lane-finding");
    }
    el
}

/// The spans the buyer held the lock; one it never gave back because it died runs to the
/// end of the trial.
fn held(g: &mut Group, h: &History, scale: &Scale, b: u32, mid: f64) {
    for s in h.held_spans(b) {
        let to_end = !s.released && died(h, b);
        let (x1, class, title) = if to_end {
            (
                scale.end_x(),
                "held held-to-end",
                format!(
                    "buyer {b} held the lock from event {} until the end of the trial: it died holding it",
                    s.from
                ),
            )
        } else {
            (
                scale.event_x(s.to),
                "held",
                format!(
                    "buyer {b} held the lock from event {} to event {}",
                    s.from, s.to
                ),
            )
        };
        let mut bar = held_bar(scale.event_x(s.from), x1, mid, class);
        bar.append(Title::new(title));
        g.append(bar);
    }
}

/// The spans the buyer was frozen by a stop fault: from `stopped` to `resumed`, or to
/// its last event (the end of the trial, when it died frozen); the title says whether
/// it held the lock meanwhile and what the stop noted (its lease, its planned pause).
fn frozen(g: &mut Group, h: &History, scale: &Scale, b: u32, mid: f64) {
    let mine: Vec<usize> = (0..h.events.len())
        .filter(|&i| h.events[i].buyer == b)
        .collect();
    for (k, &from) in mine.iter().enumerate() {
        if h.events[from].kind != EventKind::Stopped {
            continue;
        }
        let to = mine[k + 1..]
            .iter()
            .copied()
            .find(|&i| h.events[i].kind == EventKind::Resumed);
        let x1 = to.map_or(scale.end_x(), |i| scale.event_x(i));
        let holding = h
            .held_spans(b)
            .iter()
            .any(|s| s.from < from && from <= s.to);
        let note = h.events[from].value.as_deref().unwrap_or("");
        let title = format!(
            "buyer {b} was frozen (SIGSTOP) from event {from} to {}{}{}",
            to.map_or("the end of the trial".to_string(), |i| format!("event {i}")),
            if holding { ", holding the lock" } else { "" },
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        );
        let mut bar = frozen_bar(scale.event_x(from), x1, mid);
        bar.append(Title::new(title));
        g.append(bar);
    }
}

/// How the buyer ended, when that is worth drawing: its endless wait for the lock, and
/// the cross where it was killed (with a word beside it, which a PNG keeps).
fn ending(g: &mut Group, h: &History, scale: &Scale, b: u32, mid: f64, last: Option<usize>) {
    let after = last.map_or(scale.start_x(), |i| scale.event_x(i));
    let step = match last {
        Some(i) => format!("after `{}`", h.events[i].kind),
        None => "before `start`".to_string(),
    };
    if waits_to_the_end(h, b) {
        let mut line = wait_line(after + 6.0, scale.end_x(), mid);
        line.append(Title::new(format!(
            "buyer {b} waits for the lock from {step} to the end of the trial"
        )));
        g.append(line);
    }
    let Some(fate) = h.fates.get(b as usize).filter(|f| f.killed_by_fault) else {
        return;
    };
    let x = (after + 14.0).min(scale.end_x());
    let mut mark = kill_mark(x, mid);
    mark.append(Title::new(format!(
        "buyer {b} (pid {}) was killed by an injected fault {step}",
        fate.pid
    )));
    g.append(mark);
    g.append(text(x + 9.0, mid + 4.0, 9.0, KILL, "killed").with("class", "kill-label"));
}

/// The words shown above a mark: the event's value, for events that carry a count.
fn value_label(e: &Event) -> Option<String> {
    match e.kind {
        EventKind::Check
        | EventKind::Read
        | EventKind::Truncated
        | EventKind::Wrote
        | EventKind::Bought
        | EventKind::Error
        | EventKind::Stopped
        | EventKind::Fence => e.value.clone(),
        _ => None,
    }
}

/// Each event's mark, its value above it and the findings it shows under it; labels
/// skip rather than overlap.
fn events(
    g: &mut Group,
    input: &TimelineInput,
    scale: &Scale,
    mine: &[usize],
    tags: &[Vec<usize>],
    mid: f64,
) {
    let h = input.history;
    let mut value_end = f64::MIN;
    let mut tag_end = f64::MIN;
    for &i in mine {
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
        let call = h.step_before(i).map(|s| format!(" (after {s})"));
        mark.append(Title::new(format!(
            "{when}: {e}{}",
            call.unwrap_or_default()
        )));
        g.append(mark);
        if let Some(v) = value_label(e) {
            let w = text_width(&v, 9.0);
            if x - w / 2.0 > value_end + 2.0 {
                g.append(text(x, mid - 9.0, 9.0, MUTED, v).with("text-anchor", "middle"));
                value_end = x + w / 2.0;
            }
        }
        if !tags[i].is_empty() {
            let ks: Vec<String> = tags[i].iter().map(|k| k.to_string()).collect();
            let t = ks.join(",");
            let w = text_width(&t, 9.0);
            if x - w / 2.0 > tag_end + 2.0 {
                g.append(
                    text(x, mid + 16.0, 9.0, RED, t)
                        .with("text-anchor", "middle")
                        .with("font-weight", "bold")
                        .with("class", "finding-tag"),
                );
                tag_end = x + w / 2.0;
            }
        }
    }
}
