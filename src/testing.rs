//! Support for this crate's own integration tests and benches: **not API**.
//!
//! The crate's modules are private; its face is the root's re-exports. The tests under
//! `tests/` and the bench under `benches/` also reach a few internals by name (the
//! checker on a hand-written ledger, a trial run without a command line, the gate and the
//! bench as functions). Those names are re-exported here, each one a test or a bench
//! uses, and nothing else. They change whenever the code inside changes; no other crate
//! should use them.

pub use crate::bench::{run as run_bench, strategies as bench_strategies, BenchOptions};
pub use crate::check::{check, Observation};
pub use crate::explore::{explore, run_one, Checked, ExploreConfig, Runner};
pub use crate::gate::{load as load_gate, run as run_gate, Expect, GateError, GateReport};
pub use crate::harness::postgres::available as postgres_available;
pub use crate::harness::redis::server_on_path as redis_server_on_path;
pub use crate::harness::{scratch_root, HarnessConfig};
pub use crate::ledger::{EventKind, Exit, Fate, History, PowerCut, Stuck};
pub use crate::report::junit::junit;
pub use crate::report::merge::{merge, parse as parse_report, MergeError};
pub use crate::report::timeline::{
    html as timeline_html, marks as timeline_marks, svg as timeline_svg, Axis, TimelineInput,
};
pub use crate::report::{Finding, Why};
pub use crate::scenario::Span;
pub use crate::schedule::Dfs;
pub use crate::store::{Contents, StoreMode};
pub use crate::vocab::Point;
