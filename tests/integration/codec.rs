//! `--codec h265|vp9|av1` and `--audio-codec opus` in CMAF segments: each package is checked
//! whole, its codec strings against the init segment's configuration box (hvcC, vpcC, av1C,
//! dOps). One 240p rung of the 2 s `short` source, in 1 s segments, keeps them quick.

use crate::dash::check::check_package as check_dash;
use crate::hls::check::{Audio, Expect, Segments, Video, check_package as check_hls};
use crate::util::cli::{self, FAST};
use crate::util::media;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// `stream-pack COMMAND short -o TMP/out` with one 240p rung in 1 s segments and `args`.
fn package(command: &str, args: &[&str]) -> (TempDir, PathBuf) {
    let rung = ["--reps", "240", "--segment-duration", "1"];
    cli::package_in_temp(command, &media("short"), &[&rung, args, &FAST].concat())
}

fn expect(source: &Path, segments: Segments) -> Expect<'_> {
    Expect {
        source,
        segment_duration: 1.0,
        rungs: &[(426, 240)],
        audio: true,
        segments,
    }
}

fn video(video: Video) -> Segments {
    Segments {
        video,
        ..Segments::FMP4
    }
}

#[test]
fn h265_in_hls_fmp4_is_tagged_hvc1() {
    let (_dir, out) = package("hls", &["--format", "fmp4", "--codec", "h265"]);
    check_hls(&out, &expect(&media("short"), video(Video::H265)));
}

#[test]
fn h265_in_dash() {
    let (_dir, out) = package("dash", &["--codec", "h265"]);
    check_dash(&out, &expect(&media("short"), video(Video::H265)), false);
}

#[test]
fn vp9_in_dash_and_hls() {
    let (_dir, out) = package("dash", &["--codec", "vp9", "--hls"]);
    check_dash(&out, &expect(&media("short"), video(Video::Vp9)), true);
}

#[test]
fn av1_in_dash_and_hls() {
    let (_dir, out) = package("dash", &["--codec", "av1", "--hls"]);
    check_dash(&out, &expect(&media("short"), video(Video::Av1)), true);
}

#[test]
fn opus_audio_at_48_khz_in_dash_and_hls() {
    let (_dir, out) = package("dash", &["--audio-codec", "opus", "--hls"]);
    let segments = Segments {
        audio: Audio::Opus,
        ..Segments::FMP4
    };
    let dash = check_dash(&out, &expect(&media("short"), segments), true);
    let audio = dash.mpd.adaptation_sets.iter().flat_map(|set| &set.representations);
    let rates: Vec<&str> = audio.filter_map(|r| r.attributes.get("audioSamplingRate")).collect();
    assert_eq!(
        rates,
        ["48000"],
        "Opus runs at 48 kHz, whatever the source's rate (44.1 kHz)"
    );
}
