//! `stream-pack dash`: every package made here is checked whole by [`check_package`].

pub mod check;

use crate::hls::check::{Expect, Segments};
use crate::util::cli::{self, FAST};
use crate::util::media;
use check::check_package;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// `stream-pack dash SOURCE -o TMP/out ARGS --encoder-preset veryfast`, which must succeed.
fn package(source: &Path, args: &[&str]) -> (TempDir, PathBuf) {
    cli::package_in_temp("dash", source, &[args, &FAST].concat())
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
    assert_eq!(audio.and_then(|set| set.attributes.get("lang")), Some("eng"));
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
