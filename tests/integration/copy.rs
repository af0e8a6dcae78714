//! `--copy`: the source's own packets, not re-encoded, in one rendition named by the source's
//! short side, cut at the source's keyframes. The `main` source has a keyframe every 37
//! frames (1.48 s), so 2 s segments cannot be honoured: they last 2.96 s.

use crate::dash::check::check_package as check_dash;
use crate::hls::check::{Expect, Segments, Video, check_package as check_hls};
use crate::util::{cli, ffprobe, media};
use std::path::{Path, PathBuf};
use std::process::Output;

/// What a `--copy` package of `source` in 2 s segments must contain.
pub fn expect(source: &Path, segments: Segments) -> Expect<'_> {
    Expect {
        source,
        segment_duration: 2.0,
        rungs: &[(640, 360)],
        audio: true,
        segments: Segments {
            video: Video::Copy,
            ..segments
        },
    }
}

/// The run says that the source's keyframes could not honour the requested duration.
fn assert_notes_the_keyframe_spacing(output: &Output) {
    cli::assert_says(output, &["keyframe"], "the source's keyframe spacing");
}

/// Runs `stream-pack COMMAND main -o TMP/out --copy --segment-duration 2 EXTRA`.
fn copy(command: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Output) {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    let args = [&["--copy", "--segment-duration", "2"], extra].concat();
    let output = cli::package(command, &media("main"), &out, &args);
    cli::assert_success(&output);
    (parent, out, output)
}

#[test]
fn hls_copy_keeps_the_source_packets_and_keyframes() {
    let source = media("main");
    let (_dir, out, output) = copy("hls", &[]);
    assert_notes_the_keyframe_spacing(&output);
    let package = check_hls(&out, &expect(&source, Segments::TS));
    let video = &package.video[0];
    assert_eq!(
        video.segments.len(),
        3,
        "8 s cut at keyframes into 2.96 + 2.96 + 2.08 s"
    );
    ffprobe::assert_same_video_packets(&source, &ffprobe::concat(&video.segment_files()), false);
}

#[test]
fn dash_copy_keeps_the_source_packets_and_keyframes() {
    let source = media("main");
    let (_dir, out, output) = copy("dash", &["--hls"]);
    assert_notes_the_keyframe_spacing(&output);
    let dash = check_dash(&out, &expect(&source, Segments::FMP4), true);
    let video = &dash.video[0];
    assert_eq!(
        video.segments.len(),
        3,
        "8 s cut at keyframes into 2.96 + 2.96 + 2.08 s"
    );
    ffprobe::assert_same_video_packets(&source, &video.playable(None), true);
}
