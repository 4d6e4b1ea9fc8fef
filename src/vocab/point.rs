//! [`Point`]: the yield points of oversell's buyer, where a controlled schedule may switch
//! buyers. Named here, at the bottom, because faults are placed at points, the conflict
//! relation says what a step at each point touches, and the protocol carries them.

use serde::{Deserialize, Serialize};

/// A yield point: a place in the protocol where the schedule may switch buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Point {
    /// Before the unlocked look at the count.
    Check,
    /// Before taking the lock.
    Acquire,
    /// Before reading the count inside the critical section.
    Read,
    /// Before writing the new count.
    Write,
    /// Between truncating the store and writing it (in-place store only).
    Truncated,
    /// Before releasing the lock.
    Release,
    /// Before recording the outcome.
    Record,
}

impl Point {
    /// Every point, in protocol order.
    pub const ALL: &'static [Point] = &[
        Point::Check,
        Point::Acquire,
        Point::Read,
        Point::Write,
        Point::Truncated,
        Point::Release,
        Point::Record,
    ];

    /// The byte sent on the control channel.
    pub fn code(self) -> u8 {
        match self {
            Point::Check => b'c',
            Point::Acquire => b'a',
            Point::Read => b'r',
            Point::Write => b'w',
            Point::Truncated => b't',
            Point::Release => b'l',
            Point::Record => b'o',
        }
    }

    /// The point with this name.
    pub fn parse(name: &str) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// The point a control byte names.
    pub fn from_code(code: u8) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.code() == code)
    }

    /// The name used in traces and findings.
    pub fn name(self) -> &'static str {
        match self {
            Point::Check => "check",
            Point::Acquire => "acquire",
            Point::Read => "read",
            Point::Write => "write",
            Point::Truncated => "truncated",
            Point::Release => "release",
            Point::Record => "record",
        }
    }
}
