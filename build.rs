//! Builds the clock shim (`shim/clock.rs`): a preload library of no crates, compiled by
//! the same `rustc` into `OUT_DIR`, which `src/harness/clock.rs` embeds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "shim/clock.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--crate-type=cdylib",
        "--crate-name=oversell_clock",
        "--edition=2021",
        "-C",
        "opt-level=2",
        "-C",
        "panic=abort",
        "-C",
        "debuginfo=0",
        "-C",
        "strip=symbols",
        "-o",
    ])
    .arg(out.join("liboversell_clock.so"))
    .arg(src);
    if let (Ok(target), Ok(host)) = (std::env::var("TARGET"), std::env::var("HOST")) {
        if target != host {
            cmd.arg("--target").arg(target);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building the clock shim {src} failed: {s}"),
        Err(e) => panic!("running rustc for the clock shim {src}: {e}"),
    }
}
