//! The integration suite, one test binary: cargo runs test binaries one after another,
//! so a suite split into many spends its time waiting on each file's slowest test. Here
//! every test shares one pool of test threads. Each module is one subject; `common` is
//! what they share. No test changes the process's environment: tests run side by side.

mod common;

mod bench;
mod broken_locks;
mod checker;
mod cli;
mod clock;
mod controlled;
mod crash;
mod dpor;
mod errno;
mod external;
mod face;
mod faults;
mod gate;
mod guard_locks;
mod harness_lock_path;
mod jobs;
mod layers;
mod lifecycle;
mod no_survivors;
mod outputs;
mod pause;
mod pool;
mod postgres;
mod program;
mod properties;
mod readme;
mod redis;
mod report_render;
mod soundness;
mod store_cmd;
mod syscall;
mod timeline_screenshot;
mod user_lock;
mod why;
