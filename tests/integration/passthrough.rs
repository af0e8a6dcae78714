//! `--passthrough-top`: the top rung is the source's own H.264 stream and the rungs below are
//! encoded with their IDRs at the source's keyframes, so every rung stays aligned. The `main`
//! source (640x360, 697 kb/s, a keyframe every 37 frames = 1.48 s) fits a 360p rung whose maxrate
//! is above 697 kb/s; 2 s segments are cut at its keyframes into 2.96 + 2.96 + 2.08 s.

use crate::dash::check::check_package as check_dash;
use crate::hls::check::{Expect, Segments, Video, check_package as check_hls};
use crate::util::{cli, ffprobe, media};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The 360p rung at 600k has a maxrate of 900k (the default ladder's 150%), above the source's.
const FITTING_REPS: &str = "640x360@600k,234";

/// A ladder whose 360p rung can hold the `main` source as it is.
const FITTING_LADDER: &str = r#"
[[rung]]
height = 360
video_bitrate = "600k"
maxrate = "900k"
bufsize = "1200k"

[[rung]]
height = 234
video_bitrate = "145k"
"#;

const RUNGS: [(u32, u32); 2] = [(640, 360), (416, 234)];

fn expect(source: &Path, video: Video, segments: Segments) -> Expect<'_> {
    Expect {
        source,
        segment_duration: 2.0,
        rungs: &RUNGS,
        audio: true,
        segments: Segments { video, ..segments },
    }
}

/// Runs `stream-pack COMMAND main -o TMP/out --segment-duration 2 --encoder-preset veryfast EXTRA`.
fn run(command: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Output) {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    let args = [&["--segment-duration", "2"], &cli::FAST[..], extra].concat();
    let output = cli::package(command, &media("main"), &out, &args);
    (parent, out, output)
}

fn assert_says_passed_through(output: &Output) {
    cli::assert_says(
        output,
        &["360p", "source's own"],
        "that the top rung is the source's stream",
    );
}

fn top_rung_segments(out: &Path, package: &crate::hls::check::Package) -> PathBuf {
    let top = &package.video[0];
    let files: Vec<PathBuf> = top.playlist.segments.iter().map(|s| top.folder.join(&s.uri)).collect();
    assert!(files.iter().all(|f| f.starts_with(out)));
    ffprobe::concat(&files)
}

#[test]
fn hls_top_rung_is_the_source_and_every_rung_is_cut_at_its_keyframes() {
    let source = media("main");
    let (_dir, out, output) = run("hls", &["--reps", FITTING_REPS, "--passthrough-top"]);
    cli::assert_success(&output);
    assert_says_passed_through(&output);
    let package = check_hls(&out, &expect(&source, Video::Passthrough, Segments::TS));
    assert_eq!(
        package.video[1].segments.len(),
        3,
        "the encoded rung has the copy's 3 segments"
    );
    ffprobe::assert_same_video_packets(&source, &top_rung_segments(&out, &package), false);
}

#[test]
fn dash_top_rung_is_the_source_and_every_rung_is_cut_at_its_keyframes() {
    let source = media("main");
    let (_dir, out, output) = run("dash", &["--reps", FITTING_REPS, "--passthrough-top", "--hls"]);
    cli::assert_success(&output);
    let dash = check_dash(&out, &expect(&source, Video::Passthrough, Segments::FMP4), true);
    ffprobe::assert_same_video_packets(&source, &dash.video[0].playable(None), true);
}

#[test]
fn auto_reps_pass_the_top_rung_through_when_the_source_fits_it() {
    let source = media("main");
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, FITTING_LADDER).expect("write the ladder");
    let ladder = ladder.to_str().expect("UTF-8 path");

    let (_auto, out, output) = run("hls", &["--ladder", ladder]);
    cli::assert_success(&output);
    assert_says_passed_through(&output);
    let package = check_hls(&out, &expect(&source, Video::Passthrough, Segments::TS));
    ffprobe::assert_same_video_packets(&source, &top_rung_segments(&out, &package), false);

    let (_encoded, out, output) = run("hls", &["--ladder", ladder, "--no-passthrough-top"]);
    cli::assert_success(&output);
    check_hls(&out, &expect(&source, Video::H264, Segments::TS));
}

#[test]
fn auto_reps_encode_a_top_rung_whose_maxrate_the_source_exceeds_and_say_why() {
    let source = media("main");
    // The default ladder's 360p maxrate is 548 kb/s.
    let (_dir, out, output) = run("hls", &[]);
    cli::assert_success(&output);
    cli::assert_says(&output, &["not passed through", "kb/s"], "why the top rung is encoded");
    check_hls(&out, &expect(&source, Video::H264, Segments::TS));
}

#[test]
fn passthrough_top_refuses_a_source_that_does_not_fit_the_top_rung() {
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--reps", "234"], &["640x360", "416x234"]),
        (&["--reps", "640x360@300k,234"], &["kb/s", "maxrate"]),
        (
            &["--reps", FITTING_REPS, "--codec", "h265", "--format", "fmp4"],
            &["h265"],
        ),
    ];
    for (args, words) in cases {
        let (_dir, out, output) = run("hls", &[args, &["--passthrough-top"][..]].concat());
        let line = cli::assert_failure(&output, 2);
        assert!(
            words.iter().all(|w| line.contains(w)) && line.contains("--passthrough-top"),
            "{args:?}: the error should name the misfit ({words:?}): {line}"
        );
        assert!(!out.exists(), "{args:?}: a refused job leaves no package");
    }
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let output = cli::package(
        "hls",
        &media("main"),
        &dir.path().join("out"),
        &["--copy", "--passthrough-top"],
    );
    let line = cli::assert_failure(&output, 2);
    assert!(line.contains("--copy"), "{line}");
}
