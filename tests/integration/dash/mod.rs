//! `stream-pack dash`: every package made here is checked whole by [`check_package`].

pub mod check;

use crate::hls::check::{Expect, Segments};
use crate::util::cli::{self, FAST};
use crate::util::mpd::{Representation, read_mpd};
use crate::util::{ffprobe, made_by_libav, media};
use check::check_package;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// `stream-pack dash SOURCE -o TMP/out ARGS --encoder-preset veryfast`, which must succeed.
fn package(source: &Path, args: &[&str]) -> (TempDir, PathBuf) {
    cli::package_in_temp("dash", source, &[args, &FAST].concat())
}

/// Where a representation's first segment starts relative to the period, in seconds (@t −
/// @presentationTimeOffset): negative when it starts before the period.
fn first_start_in_period(representation: &Representation) -> f64 {
    let template = &representation.segment_template;
    let timescale: f64 = template.attributes.parse("timescale");
    let offset: f64 = template.attributes.parse("presentationTimeOffset");
    (template.segments()[0].0 as f64 - offset) / timescale
}

#[test]
fn a_source_whose_audio_starts_first_opens_the_period_with_its_video() {
    // MPEG-TS made from `main` by libav: the AAC priming puts the audio one frame ahead.
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let source = made_by_libav(&media("main"), dir.path(), &["-c", "copy"], "main.ts");
    let starts = ffprobe::streams_and_format(&source)["streams"]
        .as_array()
        .expect("streams")
        .clone();
    let start = |kind: &str| {
        let stream = starts
            .iter()
            .find(|s| s["codec_type"] == kind)
            .expect("a stream of that kind");
        ffprobe::number(&stream["start_time"])
    };
    let lead = start("video") - start("audio");
    assert!(
        lead > 0.01,
        "the test needs audio ahead of the video; it is {lead} s ahead"
    );
    let encoded = [&["--reps", "240"][..], &FAST[..]].concat();
    for args in [&["--copy"][..], &encoded[..]] {
        let (_out_dir, out) = cli::package_in_temp("dash", &source, &[args, &["--segment-duration", "2"]].concat());
        let mpd = read_mpd(&out.join("manifest.mpd"));
        let first = |kind: &str| {
            let set = mpd
                .adaptation_sets
                .iter()
                .find(|a| a.attributes.get("contentType") == Some(kind))
                .expect("an adaptation set of that kind");
            first_start_in_period(&set.representations[0])
        };
        assert_eq!(
            first("video"),
            0.0,
            "{args:?}: the video must start the period, with no gap"
        );
        // As far ahead as in the source; an encoder's priming (one AAC frame at most) may add to it.
        let audio = first("audio");
        let frame = 1024.0 / 48000.0;
        assert!(
            (-(lead + frame) - 0.002..=-lead + 0.002).contains(&audio),
            "{args:?}: the audio must start {lead} s (+ priming) before the period, as in the source; it starts at {audio} s"
        );
        ffprobe::assert_decodes_cleanly(&out.join("manifest.mpd"));
    }
}

#[test]
fn two_rung_ladder_with_hls_playlists_over_the_same_segments() {
    let source = media("main");
    let (_dir, out) = package(&source, &["--reps", "360,240", "--segment-duration", "2", "--hls"]);
    let dash = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360), (426, 240)],
            audio: true,
            segments: Segments::FMP4,
        },
        true,
    );
    assert_eq!(dash.video[0].segments.len(), 4, "8 s cut into 2 s segments");
}

#[test]
fn ntsc_frame_rate_and_44_1_khz_audio() {
    let source = media("ntsc");
    let (_dir, out) = package(&source, &["--reps", "360", "--segment-duration", "2"]);
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360)],
            audio: true,
            segments: Segments::FMP4,
        },
        false,
    );
}

#[test]
fn rotated_source_gives_a_portrait_adaptation_set() {
    let source = media("portrait");
    let (_dir, out) = package(&source, &["--reps", "240", "--segment-duration", "2"]);
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(240, 426)],
            audio: true,
            segments: Segments::FMP4,
        },
        false,
    );
}

#[test]
fn language_tag_of_the_source_becomes_the_audio_lang() {
    let source = media("short");
    let (_dir, out) = package(&source, &["--reps", "240", "--segment-duration", "1", "--hls"]);
    let dash = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 1.0,
            rungs: &[(426, 240)],
            audio: true,
            segments: Segments::FMP4,
        },
        true,
    );
    let audio = dash
        .mpd
        .adaptation_sets
        .iter()
        .find(|set| set.attributes.get("contentType") == Some("audio"));
    assert_eq!(audio.and_then(|set| set.attributes.get("lang")), Some("en"));
}

#[test]
fn source_without_audio_gives_a_video_only_mpd() {
    let source = media("silent");
    let (_dir, out) = package(&source, &["--reps", "360", "--segment-duration", "2", "--hls"]);
    check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(640, 360)],
            audio: false,
            segments: Segments::FMP4,
        },
        true,
    );
}

#[test]
fn audio_only_source_gives_an_audio_only_mpd() {
    let source = media("audio_only");
    let (_dir, out) = package(&source, &["--segment-duration", "3", "--hls"]);
    let dash = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 3.0,
            rungs: &[],
            audio: true,
            segments: Segments::FMP4,
        },
        true,
    );
    assert_eq!(
        dash.audio.map(|audio| audio.segments.len()),
        Some(2),
        "5 s cut into 3 s segments"
    );
}
