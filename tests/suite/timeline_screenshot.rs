//! The racing pair as a person sees it: the timeline of a `toctou` finding (system-call
//! granularity), opened in headless Chromium, must show both steps of the pair ringed in
//! the race colour at the places the SVG puts them. The screenshot is kept under
//! `target/artifacts/` for CI to keep. Without `chromium` on PATH the test says so in one
//! line and passes.

use crate::common;

use common::{assert_code, oversell_fresh, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The race colour of `src/report/timeline/race.rs`: `#e67e00`.
const RACE: [u8; 3] = [0xe6, 0x7e, 0x00];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Where CI picks up pictures.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("artifacts");
    std::fs::create_dir_all(&dir).expect("target/artifacts");
    dir
}

/// Runs Chromium headless to take a screenshot of `page`, killing it after a minute.
fn screenshot(page: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=2000,700",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("waiting for chromium").is_some() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took more than a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `(cx, cy)` of the ring with class `race-<which>` in the SVG.
fn ring(svg: &str, which: &str) -> (f64, f64) {
    let doc = roxmltree::Document::parse(svg).expect("the timeline is XML");
    let node = doc
        .descendants()
        .find(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|w| w == format!("race-{which}")))
        })
        .unwrap_or_else(|| panic!("no race-{which} ring in the timeline"));
    let num = |a: &str| -> f64 {
        node.attribute(a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("ring without {a}"))
    };
    (num("cx"), num("cy"))
}

/// How many of 16 points on the circle of radius 9 around `(cx, cy)` are the race
/// colour in the picture.
fn ringed(img: &(Vec<u8>, usize, usize, usize), cx: f64, cy: f64) -> usize {
    let (pixels, width, height, channels) = img;
    (0..16)
        .filter(|k| {
            let a = f64::from(*k) * std::f64::consts::TAU / 16.0;
            let x = (cx + 9.0 * a.cos()).round() as isize;
            let y = (cy + 9.0 * a.sin()).round() as isize;
            // A pixel either side: antialiasing may soften the exact one.
            [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
                .iter()
                .any(|(dx, dy)| {
                    let (px, py) = (x + dx, y + dy);
                    if px < 0 || py < 0 || px as usize >= *width || py as usize >= *height {
                        return false;
                    }
                    let i = (py as usize * width + px as usize) * channels;
                    pixels[i..i + 3]
                        .iter()
                        .zip(RACE)
                        .all(|(&p, c)| p.abs_diff(c) <= 40)
                })
        })
        .count()
}

fn decode(png_path: &Path) -> (Vec<u8>, usize, usize, usize) {
    let file = std::fs::File::open(png_path).expect("the screenshot");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let size = reader.output_buffer_size().expect("a PNG size");
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    buf.truncate(info.buffer_size());
    (buf, info.width as usize, info.height as usize, channels)
}

#[test]
fn the_racing_pair_of_a_toctou_finding_is_drawn_on_its_timeline() {
    if !on_path("chromium") {
        eprintln!("skipped: chromium is not on PATH (.ci/run installs it)");
        return;
    }
    let dir = crate::common::tempdir().expect("tempdir");
    let svg_path = dir.path().join("toctou.svg");
    let (out, _tmp) = oversell_fresh(
        &[
            "explore",
            "--lock",
            "toctou",
            "--schedule",
            "pct",
            "--trials",
            "100",
            "--seed",
            "1",
            "--timeline",
            &svg_path.to_string_lossy(),
        ],
        &[],
    );
    assert_code(&out, 1, "toctou must be caught");
    let svg = std::fs::read_to_string(&svg_path).expect("the timeline");
    let first = ring(&svg, "first");
    let second = ring(&svg, "second");
    assert!(
        svg.contains("class=\"race-arrow\""),
        "an arrow joins the pair"
    );
    assert!(
        svg.contains("racing pair: "),
        "the pair is captioned:\n{}",
        text(&out)
    );
    let png_path = artifacts().join("toctou-racing-pair.png");
    let _ = std::fs::remove_file(&png_path);
    screenshot(&svg_path, &png_path, &dir.path().join("profile"));
    let img = decode(&png_path);
    for (which, (cx, cy)) in [("first", first), ("second", second)] {
        let n = ringed(&img, cx, cy);
        assert!(
            n >= 8,
            "the {which} step's ring at ({cx}, {cy}) is drawn: {n} of 16 points on it are the race colour ({})",
            png_path.display()
        );
    }
    // And nowhere else by accident: a point far from both rings is not the race colour.
    assert!(ringed(&img, 5.0, 5.0) == 0, "the corner is blank");
}
