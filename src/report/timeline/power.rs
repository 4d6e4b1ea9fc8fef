//! A power cut: a red zigzag down every lane where it fell, `power cut` and its step
//! above it, and a tooltip naming what the disk kept and which fresh buyers went on.

use super::draw::{r, text, LANE_H, RED};
use super::lanes::Frame;
use super::race::at;
use super::scale::Scale;
use super::TimelineInput;
use svg::node::element::{Group, Polyline, Title};
use svg::Node;

/// The cut's mark; `None` when the trial had no power cut.
pub(super) fn mark(input: &TimelineInput, f: &Frame, scale: &Scale) -> Option<Group> {
    let h = input.history;
    let cut = h.power_cut.as_ref()?;
    let x = scale.x(at(h, input.axis, cut.ns)).clamp(f.x0, f.x1);
    let top = f.y0;
    let bottom = f.y0 + f64::from(f.lanes.max(1)) * LANE_H;
    // A zigzag: the line of a lightning bolt, down the whole plot.
    let mut points = Vec::new();
    let mut y = top;
    let mut left = true;
    while y < bottom {
        points.push(format!(
            "{},{}",
            r(if left { x - 3.0 } else { x + 3.0 }),
            r(y)
        ));
        left = !left;
        y += 6.0;
    }
    points.push(format!("{},{}", r(x), r(bottom)));
    let mut line = Polyline::new()
        .set("class", "power-cut")
        .set("data-step", cut.step)
        .set("points", points.join(" "))
        .set("fill", "none")
        .set("stroke", RED)
        .set("stroke-width", 2);
    line.append(Title::new(cut.to_string()));
    let mut g = Group::new().set("class", "power");
    g.append(line);
    g.append(text(
        x + 5.0,
        top + 10.0,
        10.0,
        RED,
        format!("power cut (step {})", cut.step),
    ));
    Some(g)
}
