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

/// libx264 writes the settings it ran with into the stream (an SEI of text, whole in an fMP4
/// segment's mdat). The 800p rung looks ahead 20 frames, the 720p rung the 40 of preset medium
/// (x264_lookahead in encoding.rs).
#[test]
fn x264_looks_ahead_20_frames_above_720p_and_40_from_720p_down_at_medium() {
    let args = [
        "--format",
        "fmp4",
        "--reps",
        "800,720",
        "--allow-upscale",
        "--segment-duration",
        "2",
        "--encoder-preset",
        "medium",
    ];
    let (_dir, out) = cli::package_in_temp("hls", &media("short"), &args);
    for (rung, frames) in [("800p", 20), ("720p", 40)] {
        let segment = out.join(rung).join("segment00000.m4s");
        let bytes = std::fs::read(&segment).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let start = text.find("x264 - core").expect("libx264's settings SEI");
        let settings = &text[start..start + text[start..].find('\0').unwrap()];
        let wanted = format!(" rc_lookahead={frames} ");
        assert!(settings.contains(&wanted), "{}: {settings}", segment.display());
    }
}

/// The colours a rendition's SPS declares (ffprobe reads its VUI): primaries, transfer, matrix.
fn declared_colours(playlist: &Path) -> Vec<String> {
    let entries = "stream=color_primaries,color_transfer,color_space";
    let info = crate::util::ffprobe::probe(&["-select_streams", "v:0", "-show_entries", entries], playlist);
    let stream = &info["streams"][0];
    ["color_primaries", "color_transfer", "color_space"]
        .map(|key| stream[key].as_str().unwrap_or("unknown").to_owned())
        .to_vec()
}

/// Scaling keeps the coded colours, so the rungs declare the source's: a BT.709 source's SD rungs
/// untagged would be shown as BT.601. An untagged source's rungs declare nothing.
#[test]
fn every_rung_declares_the_colours_of_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = dir.path().join("bt709.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(media("short"))
        .args(["-c", "copy", "-bsf:v"])
        .arg("h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1")
        .arg(&tagged)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "tagging the source failed");
    let bt709 = vec!["bt709".to_owned(); 3];
    assert_eq!(declared_colours(&tagged), bt709, "the tagged source");
    let rungs = ["--reps", "360,144", "--segment-duration", "1"];
    let (_tagged_dir, out) = cli::package_in_temp("hls", &tagged, &[&rungs[..], &FAST].concat());
    let (_plain_dir, plain) = cli::package_in_temp("hls", &media("short"), &[&rungs[..], &FAST].concat());
    for rung in ["360p", "144p"] {
        let playlist = out.join(rung).join("index.m3u8");
        assert_eq!(declared_colours(&playlist), bt709, "{}", playlist.display());
        let playlist = plain.join(rung).join("index.m3u8");
        assert_eq!(
            declared_colours(&playlist),
            vec!["unknown".to_owned(); 3],
            "{}",
            playlist.display()
        );
    }
}
