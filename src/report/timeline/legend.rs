//! The legend: one sample and label per thing the picture draws.

use super::draw::{
    glyph, held_bar, kill_mark, redden, text, text_width, wait_line, INK, LEGEND_ROW_H,
};
use crate::ledger::EventKind;
use svg::node::element::{Element, Group};
use svg::Node;

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

/// A legend entry: how to draw its sample at a point, and its label.
type LegendEntry = (Box<dyn Fn(f64, f64) -> Element>, &'static str);

/// Lays the legend out in rows that fit `width`; returns its group and the row count.
pub(super) fn legend(x0: f64, y0: f64, width: f64) -> (Group, usize) {
    const SIZE: f64 = 11.0;
    let mut entries: Vec<LegendEntry> = vec![(
        Box::new(|x, y| held_bar(x - 6.0, x + 6.0, y, "legend-held").into()),
        "lock held",
    )];
    entries.push((
        Box::new(|x, y| {
            let mut el = wait_line(x - 7.0, x + 7.0, y);
            el.assign("class", "legend-wait");
            el
        }),
        "waits for the lock",
    ));
    for &(kind, label) in LEGEND {
        entries.push((Box::new(move |x, y| glyph(kind, x, y)), label));
    }
    entries.push((
        Box::new(|x, y| {
            let mut el = kill_mark(x, y);
            el.assign("class", "legend-kill");
            el
        }),
        "killed",
    ));
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
