//! Calls made to fail by an errno fault: a square with a bang on the buyer's lane where
//! the call was answered with the error, the error's name above it, and a tooltip naming
//! the call.

use super::draw::{r, text, With, RED};
use super::lanes::Frame;
use super::race::at;
use super::scale::Scale;
use super::TimelineInput;
use svg::node::element::{Group, Rectangle, Title};
use svg::Node;

/// One mark per injected failure; `None` when there was none.
pub(super) fn marks(input: &TimelineInput, f: &Frame, scale: &Scale) -> Option<Group> {
    let h = input.history;
    if h.injected.is_empty() {
        return None;
    }
    let mut g = Group::new().set("class", "injected");
    for i in &h.injected {
        // Clamped to the plot: a buyer program's lanes have no times of their own.
        let x = scale.x(at(h, input.axis, i.ns)).clamp(f.x0, f.x1);
        let y = f.mid(i.buyer);
        let mut square = Rectangle::new()
            .set("class", "injected-error")
            .set("data-buyer", i.buyer)
            .set("data-step", i.step)
            .set("x", r(x - 7.0))
            .set("y", r(y - 7.0))
            .set("width", 14)
            .set("height", 14)
            .set("fill", "white")
            .set("stroke", RED)
            .set("stroke-width", 2);
        square.append(Title::new(format!(
            "step {} · buyer {}'s `{}` failed with {} (injected)",
            i.step, i.buyer, i.call, i.errno
        )));
        g.append(square);
        g.append(text(x - 2.5, y + 4.5, 12.0, RED, "!").with("font-weight", "bold"));
        g.append(text(x - 14.0, y - 10.0, 10.0, RED, i.errno.as_str()));
    }
    Some(g)
}
