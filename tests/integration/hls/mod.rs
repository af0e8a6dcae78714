//! `stream-pack hls`: every package made here is checked whole by [`check_package`].

pub mod check;

use crate::util::cli::{self, FAST};
use crate::util::{file_names, m3u8, media};
use check::{Expect, Rendition, Segments, check_package};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// `stream-pack hls SOURCE -o TMP/out ARGS`, which must succeed.
fn package(source: &Path, args: &[&str]) -> (TempDir, PathBuf) {
    cli::package_in_temp("hls", source, args)
}

fn args<'a>(specific: &[&'a str]) -> Vec<&'a str> {
    [specific, &FAST].concat()
}

/// A 16:9 rung of this height, its width rounded to the nearest even number.
fn widescreen(height: u32) -> (u32, u32) {
    let width = (f64::from(height) * 16.0 / 9.0 / 2.0).round() as u32 * 2;
    (width, height)
}

/// The measured bit rate of a rung's video is within a factor 0.5–1.5 of `target` bit/s.
fn assert_bitrate_near(rendition: &Rendition, target: f64) {
    let measured = rendition.payload_bitrate();
    assert!(
        (0.5 * target..=1.5 * target).contains(&measured),
        "{}: video bit rate {measured:.0} bit/s, asked for {target}",
        rendition.dir
    );
}

#[test]
fn two_rung_ladder_with_two_second_segments() {
    // With the default encoder preset.
    let source = media("main");
    let (_dir, out) = package(
        &source,
        &["--reps", "360,240", "--segment-duration", "2", "--format", "ts"],
    );
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360), (426, 240)],
            audio: true,
            segments: Segments::TS,
        },
    );
    assert_eq!(package.video[0].segments.len(), 4, "8 s cut into 2 s segments");
}

#[test]
fn ntsc_frame_rate_and_44_1_khz_audio() {
    let source = media("ntsc");
    let (_dir, out) = package(&source, &args(&["--reps", "360", "--segment-duration", "2"]));
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360)],
            audio: true,
            segments: Segments::TS,
        },
    );
    let audio = package.audio.expect("an audio rendition");
    assert_eq!(audio.segments[0].stream["sample_rate"], "44100");
    let master = m3u8::read_master(&out.join("master.m3u8"));
    let frame_rate = master.variants[0].attributes.plain("FRAME-RATE");
    assert_eq!(frame_rate, Some("29.970"));
}

#[test]
fn odd_source_size_gives_even_widths_with_the_source_aspect() {
    let source = media("odd");
    let (_dir, out) = package(&source, &args(&["--reps", "240,180", "--segment-duration", "2"]));
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            // 638/358 × 240 = 427.7 → 428; × 180 = 320.8 → 320 (nearest even).
            rungs: &[(428, 240), (320, 180)],
            audio: true,
            segments: Segments::TS,
        },
    );
}

#[test]
fn non_square_pixels_are_scaled_to_the_display_aspect() {
    let source = media("sar");
    let (_dir, out) = package(&source, &args(&["--reps", "360,240", "--segment-duration", "2"]));
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360), widescreen(240)],
            audio: true,
            segments: Segments::TS,
        },
    );
}

#[test]
fn source_without_audio_gives_video_only_variants() {
    let source = media("silent");
    let (_dir, out) = package(&source, &args(&["--reps", "360", "--segment-duration", "2"]));
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360)],
            audio: false,
            segments: Segments::TS,
        },
    );
}

#[test]
fn audio_only_source_gives_an_audio_only_package() {
    let source = media("audio_only");
    let (_dir, out) = package(&source, &args(&["--segment-duration", "3"]));
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 3.0,
            rungs: &[],
            audio: true,
            segments: Segments::TS,
        },
    );
    let audio = package.audio.expect("an audio rendition");
    assert_eq!(audio.segments.len(), 2, "5 s cut into 3 s segments");
}

#[test]
fn rotated_source_gives_portrait_rungs() {
    let source = media("portrait");
    let (_dir, out) = package(&source, &args(&["--reps", "360,240", "--segment-duration", "2"]));
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(360, 640), (240, 426)],
            audio: true,
            segments: Segments::TS,
        },
    );
}

#[test]
fn scaler_cascade_on_a_rotated_source_gives_the_same_ladder() {
    let source = media("portrait");
    let (_dir, out) = package(
        &source,
        &args(&[
            "--reps",
            "360,240,144",
            "--segment-duration",
            "2",
            "--scaling",
            "cascade",
        ]),
    );
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(360, 640), (240, 426), (144, 256)],
            audio: true,
            segments: Segments::TS,
        },
    );
}

#[test]
fn fmp4_segments_with_an_init_segment_per_rendition() {
    let source = media("main");
    let reps = ["--format", "fmp4", "--reps", "360,240", "--segment-duration", "2"];
    let (_dir, out) = package(&source, &args(&reps));
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360), (426, 240)],
            audio: true,
            segments: Segments::FMP4,
        },
    );
    assert_eq!(package.video[0].segments.len(), 4, "8 s cut into 2 s segments");
}

#[test]
fn fmp4_ntsc_frame_rate_and_44_1_khz_audio() {
    let source = media("ntsc");
    let reps = ["--format", "fmp4", "--reps", "360", "--segment-duration", "2"];
    let (_dir, out) = package(&source, &args(&reps));
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360)],
            audio: true,
            segments: Segments::FMP4,
        },
    );
}

#[test]
fn fmp4_audio_only_package() {
    let source = media("audio_only");
    let (_dir, out) = package(&source, &args(&["--format", "fmp4", "--segment-duration", "3"]));
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 3.0,
            rungs: &[],
            audio: true,
            segments: Segments::FMP4,
        },
    );
}

/// Heights of the rungs of presets/default.toml that `--reps auto` may use, read with a
/// line scanner (the test does not share the product's TOML code).
fn default_auto_heights() -> Vec<u32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/default.toml");
    let text = std::fs::read_to_string(&path).expect("read presets/default.toml");
    let value = |rung: &str, key: &str| -> Option<String> {
        rung.lines().find_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let (name, value) = line.split_once('=')?;
            (name.trim() == key).then(|| value.trim().to_string())
        })
    };
    text.split("[[rung]]")
        .skip(1)
        .filter(|rung| value(rung, "auto").as_deref() != Some("false"))
        .map(|rung| {
            let height = value(rung, "height").expect("every rung has a height");
            height.parse().expect("height is an integer")
        })
        .collect()
}

#[test]
fn defaults_are_the_auto_ladder_and_six_second_segments() {
    let source = media("main");
    let (_dir, out) = package(&source, &FAST);
    let rungs: Vec<(u32, u32)> = default_auto_heights()
        .into_iter()
        .filter(|&height| height <= 360)
        .map(widescreen)
        .collect();
    assert!(!rungs.is_empty(), "presets/default.toml has no auto rung up to 360p");
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 6.0,
            rungs: &rungs,
            audio: true,
            segments: Segments::TS,
        },
    );
    assert_eq!(package.video[0].segments.len(), 2, "8 s cut into 6 s segments");
}

#[test]
fn upscaling_is_allowed_on_request() {
    let source = media("tiny");
    let (_dir, out) = package(
        &source,
        &args(&["--allow-upscale", "--reps", "480", "--segment-duration", "1"]),
    );
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 1.0,
            rungs: &[(854, 480)],
            audio: true,
            segments: Segments::TS,
        },
    );
}

#[test]
fn explicit_rung_sets_size_and_bitrate() {
    let source = media("main");
    let reps = ["--reps", "640x360@500k", "--segment-duration", "2"];
    let (_dir, out) = package(&source, &args(&reps));
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360)],
            audio: true,
            segments: Segments::TS,
        },
    );
    assert_bitrate_near(&package.video[0], 500_000.0);
}

const LADDER: &str = r#"
[[rung]]
height = 180
video_bitrate = "200k"

[[rung]]
height = 360
video_bitrate = "2000k"
maxrate = "2200k"
bufsize = "4000k"
"#;

#[test]
fn ladder_file_sets_and_interpolates_bitrates() {
    let source = media("main");
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, LADDER).expect("write the ladder");
    let ladder = ladder.to_str().expect("UTF-8 path");
    let reps = ["--ladder", ladder, "--reps", "360,270", "--segment-duration", "2"];
    let (_dir, out) = package(&source, &args(&reps));
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360), (480, 270)],
            audio: true,
            segments: Segments::TS,
        },
    );
    assert_bitrate_near(&package.video[0], 2_000_000.0);
    // By pixel count between 320x180 (57600 px, 200k) and 640x360 (230400 px, 2000k):
    // 480x270 = 129600 px → 200k + (72000 / 172800) × 1800k = 950k.
    assert_bitrate_near(&package.video[1], 950_000.0);
}

/// An existing OUT holding one file, `keep.txt`.
fn existing_output() -> (TempDir, PathBuf) {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    std::fs::create_dir(&out).expect("create OUT");
    std::fs::write(out.join("keep.txt"), "precious").expect("write into OUT");
    (parent, out)
}

#[test]
fn existing_output_is_refused_and_left_untouched() {
    let (parent, out) = existing_output();
    let output = cli::hls(&media("tiny"), &out, &args(&["--reps", "90"]));
    cli::assert_failure(&output, 4);
    assert_eq!(file_names(parent.path()), BTreeSet::from(["out".to_string()]));
    assert_eq!(file_names(&out), BTreeSet::from(["keep.txt".to_string()]));
    let kept = std::fs::read_to_string(out.join("keep.txt")).expect("read keep.txt");
    assert_eq!(kept, "precious");
}

#[test]
fn force_replaces_existing_output() {
    let source = media("tiny");
    let (parent, out) = existing_output();
    let output = cli::hls(
        &source,
        &out,
        &args(&["--force", "--reps", "90", "--segment-duration", "1"]),
    );
    cli::assert_success(&output);
    assert_eq!(
        file_names(parent.path()),
        BTreeSet::from(["out".to_string()]),
        "staging left behind"
    );
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 1.0,
            rungs: &[(160, 90)],
            audio: true,
            segments: Segments::TS,
        },
    );
}

/// Every stderr line of `--progress json` is a JSON object with the progress fields.
fn progress_events(stderr: &str) -> Vec<Value> {
    let fields = ["stage", "media_time", "duration", "percent", "speed", "eta", "segments"];
    stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let event: Value =
                serde_json::from_str(line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
            for field in fields {
                assert!(event.get(field).is_some(), "no {field:?} in {line}");
            }
            event
        })
        .collect()
}

#[test]
fn json_progress_rises_to_100_percent() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    let reps = args(&["--reps", "240", "--segment-duration", "2"]);
    let output = cli::package_showing("json", "hls", &media("main"), &out, &reps);
    cli::assert_success(&output);
    let events = progress_events(&String::from_utf8_lossy(&output.stderr));
    let percents: Vec<f64> = events
        .iter()
        .map(|event| event["percent"].as_f64().expect("percent is a number"))
        .collect();
    assert!(
        percents.windows(2).all(|pair| pair[0] <= pair[1]),
        "percent goes down: {percents:?}"
    );
    assert_eq!(percents.last(), Some(&100.0), "the last event is not 100%");
}
