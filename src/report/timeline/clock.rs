//! What the harness did to buyers' clocks (a skew, a jump): a clock face at the start of
//! the buyer's lane, with what its clock did beside it, and the whole note in a tooltip.

use super::draw::{r, text, AMBER};
use super::lanes::Frame;
use super::TimelineInput;
use svg::node::element::{Circle, Group, Line, Title};
use svg::Node;

/// The buyer a clock note names (`buyer 1's clock ran at 0.25×`), and what it says of the
/// clock (`ran at 0.25×`).
fn parse(note: &str) -> Option<(u32, &str)> {
    let rest = note.strip_prefix("buyer ")?;
    let (n, rest) = rest.split_once("'s ")?;
    let b = n.parse().ok()?;
    let said = rest
        .strip_prefix("wall clock ")
        .or_else(|| rest.strip_prefix("clock "))
        .unwrap_or(rest);
    Some((b, said))
}

/// One clock face per note that names a buyer of the picture; `None` when none does.
pub(super) fn marks(input: &TimelineInput, f: &Frame) -> Option<Group> {
    let mut g = Group::new().set("class", "clocks");
    let mut any = false;
    for note in &input.history.clocks {
        let Some((b, said)) = parse(note) else {
            continue;
        };
        if b >= f.lanes {
            continue;
        }
        any = true;
        let (x, y) = (f.x0 + 8.0, f.mid(b) - 10.0);
        let mut face = Group::new()
            .set("class", "skewed-clock")
            .set("data-buyer", b);
        face.append(
            Circle::new()
                .set("cx", r(x))
                .set("cy", r(y))
                .set("r", 6)
                .set("fill", "white")
                .set("stroke", AMBER)
                .set("stroke-width", 1.5),
        );
        for (dx, dy) in [(0.0, -4.0), (3.0, 0.0)] {
            face.append(
                Line::new()
                    .set("x1", r(x))
                    .set("y1", r(y))
                    .set("x2", r(x + dx))
                    .set("y2", r(y + dy))
                    .set("stroke", AMBER)
                    .set("stroke-width", 1.5),
            );
        }
        face.append(Title::new(note.clone()));
        g.append(face);
        g.append(text(x + 10.0, y + 4.0, 10.0, AMBER, said));
    }
    any.then_some(g)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_note_names_its_buyer_and_what_its_clock_did() {
        assert_eq!(
            parse("buyer 1's clock ran at 0.25×"),
            Some((1, "ran at 0.25×"))
        );
        assert_eq!(
            parse("buyer 0's wall clock jumped -3000 ms at step 4"),
            Some((0, "jumped -3000 ms at step 4"))
        );
        assert_eq!(parse("buyer 0 ran /sbin/ldconfig on real time"), None);
    }
}
