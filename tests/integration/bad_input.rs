//! Failures: each exits with its code, prints one `error:` line and leaves no package, not
//! even a staging folder, in OUT's parent.

use crate::util::{cli, ffprobe, file_names, media};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// Runs `stream-pack hls INPUT -o FRESH/out ARGS`, asserts it failed with `code` and left
/// FRESH empty; returns the `error:` line.
fn refused(input: &Path, args: &[&str], code: i32) -> String {
    refused_by("hls", input, args, code)
}

/// [`refused`] for any packaging command (`hls`, `dash`).
fn refused_by(command: &str, input: &Path, args: &[&str], code: i32) -> String {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let output = cli::package(command, input, &parent.path().join("out"), args);
    let error = cli::assert_failure(&output, code);
    let left = file_names(parent.path());
    assert!(left.is_empty(), "a failed run left {left:?} in OUT's parent");
    error
}

/// A folder for inputs made by a test, and a path in it.
fn input_file(name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let path = dir.path().join(name);
    (dir, path)
}

fn usage_error(args: &[&str]) {
    refused(&media("tiny"), args, 2);
}

#[test]
fn unknown_flag_is_a_usage_error() {
    usage_error(&["--no-such-flag"]);
}

#[test]
fn reps_that_are_not_heights_are_a_usage_error() {
    usage_error(&["--reps", "abc"]);
}

#[test]
fn zero_height_is_a_usage_error() {
    usage_error(&["--reps", "0"]);
}

#[test]
fn negative_segment_duration_is_a_usage_error() {
    usage_error(&["--segment-duration=-2"]);
}

#[test]
fn zero_segment_duration_is_a_usage_error() {
    usage_error(&["--segment-duration", "0"]);
}

/// A usage error whose message names each of `names`: refused for what the options mean
/// together, not as unknown flags.
fn usage_error_naming(command: &str, args: &[&str], names: &[&str]) {
    let error = refused_by(command, &media("tiny"), args, 2).to_lowercase();
    for name in names {
        assert!(error.contains(name), "the error does not name {name}: {error}");
    }
}

#[test]
fn h265_in_ts_segments_is_a_usage_error() {
    usage_error_naming("hls", &["--format", "ts", "--codec", "h265"], &["h265"]);
}

#[test]
fn vp9_in_ts_segments_is_a_usage_error() {
    usage_error_naming("hls", &["--codec", "vp9"], &["vp9"]);
}

#[test]
fn av1_in_ts_segments_is_a_usage_error() {
    usage_error_naming("hls", &["--codec", "av1"], &["av1"]);
}

#[test]
fn opus_in_ts_segments_is_a_usage_error() {
    usage_error_naming("hls", &["--audio-codec", "opus"], &["opus"]);
}

#[test]
fn copy_with_reps_is_a_usage_error() {
    for command in ["hls", "dash"] {
        usage_error_naming(command, &["--copy", "--reps", "90"], &["--copy", "--reps"]);
    }
}

#[test]
fn copy_with_codec_is_a_usage_error() {
    usage_error_naming("hls", &["--copy", "--codec", "h264"], &["--copy", "--codec"]);
    usage_error_naming("dash", &["--copy", "--codec", "h265"], &["--copy", "--codec"]);
}

fn input_error(input: &Path) {
    refused(input, &["--reps", "90"], 3);
}

#[test]
fn missing_input_is_an_input_error() {
    let (_dir, path) = input_file("missing.mp4");
    input_error(&path);
}

#[test]
fn empty_input_is_an_input_error() {
    let (_dir, path) = input_file("empty.mp4");
    std::fs::write(&path, b"").expect("write the input");
    input_error(&path);
}

#[test]
fn text_input_is_an_input_error() {
    let (_dir, path) = input_file("notes.mp4");
    std::fs::write(&path, "These are notes, not a video.\n".repeat(40)).expect("write the input");
    input_error(&path);
}

/// Named `.txt`, libav's tty demuxer would read text as ANSI-art video: it must still be refused.
#[test]
fn text_file_with_a_txt_name_is_an_input_error() {
    let (_dir, path) = input_file("notes.txt");
    std::fs::write(&path, "These are notes, not a video.\n".repeat(40)).expect("write the input");
    let error = refused(&path, &["--reps", "90"], 3);
    assert!(error.contains("text file"), "{error}");
}

/// 64 KiB from xorshift64: the same bytes on every run.
fn noise() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// Whether ffprobe itself can open the file.
fn ffprobe_opens(path: &Path) -> bool {
    let status = Command::new("ffprobe")
        .args(["-v", "quiet"])
        .arg(path)
        .status()
        .expect("run ffprobe");
    status.success()
}

#[test]
fn random_bytes_are_an_input_error() {
    let (_dir, path) = input_file("noise.mp4");
    std::fs::write(&path, noise()).expect("write the input");
    assert!(!ffprobe_opens(&path), "ffprobe opens the noise: pick another seed");
    input_error(&path);
}

/// The first half of the `main` source: its moov whole, its media data cut short.
fn truncated_mp4() -> (TempDir, PathBuf) {
    let whole = std::fs::read(media("main")).expect("read the main source");
    assert_eq!(&whole[4..8], b"ftyp");
    let ftyp_size = u32::from_be_bytes(whole[..4].try_into().expect("4 bytes")) as usize;
    let second_box = &whole[ftyp_size + 4..ftyp_size + 8];
    assert_eq!(second_box, b"moov", "the source is not faststart");
    let (dir, path) = input_file("truncated.mp4");
    std::fs::write(&path, &whole[..whole.len() / 2]).expect("write the input");
    assert!(ffprobe_opens(&path), "the cut must hit media data, not the moov box");
    (dir, path)
}

#[test]
fn truncated_mp4_is_an_input_error() {
    let (_dir, path) = truncated_mp4();
    input_error(&path);
}

/// Keys are generated as segments are made: a run failing midway leaves no key folder.
#[test]
fn truncated_mp4_is_an_input_error_when_encrypting_too() {
    let (_dir, path) = truncated_mp4();
    refused(&path, &["--reps", "90", "--encrypt", "--key-rotation", "1"], 3);
}

#[test]
fn file_without_audio_or_video_is_an_input_error() {
    let (dir, path) = input_file("subtitles.mkv");
    let srt = dir.path().join("subtitles.srt");
    let cue = "1\n00:00:00,000 --> 00:00:02,000\nHello\n\n2\n00:00:02,000 --> 00:00:04,000\nBye\n";
    std::fs::write(&srt, cue).expect("write the subtitles");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&srt)
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(made.success(), "ffmpeg could not make a subtitles-only mkv");
    let streams = ffprobe::streams_and_format(&path)["streams"].clone();
    let kinds: Vec<&str> = streams
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["subtitle"]);
    input_error(&path);
}

#[test]
fn probe_of_missing_input_is_an_input_error() {
    let (_dir, path) = input_file("missing.mp4");
    let output = cli::run([Path::new("probe"), path.as_path()]);
    cli::assert_failure(&output, 3);
}

#[test]
fn rung_above_the_source_is_refused_naming_its_height() {
    let error = refused(&media("tiny"), &["--reps", "720"], 5);
    let numbers: Vec<&str> = error.split(|c: char| !c.is_ascii_digit()).collect();
    assert!(
        numbers.contains(&"90"),
        "the error does not name the source height 90: {error}"
    );
}

/// A ladder whose every rung is above the `tiny` source (90 lines).
const TALL_LADDER: &str = r#"
[[rung]]
height = 720
video_bitrate = "3000k"

[[rung]]
height = 1080
video_bitrate = "6000k"
"#;

#[test]
fn empty_auto_ladder_is_refused() {
    let (_dir, ladder) = input_file("ladder.toml");
    std::fs::write(&ladder, TALL_LADDER).expect("write the ladder");
    let ladder = ladder.to_str().expect("UTF-8 path");
    refused(&media("tiny"), &["--ladder", ladder, "--reps", "auto"], 5);
}

#[test]
fn encrypting_dash_is_refused_naming_cenc() {
    usage_error_naming("dash", &["--encrypt"], &["cenc"]);
}

#[test]
fn encrypting_dash_with_hls_playlists_is_refused_naming_master_m3u8() {
    usage_error_naming("dash", &["--hls", "--encrypt"], &["master.m3u8"]);
}

/// A key file of `length` bytes, in a folder of its own.
fn key_file(length: usize) -> (TempDir, PathBuf) {
    let (dir, path) = input_file("secret.key");
    std::fs::write(&path, vec![0x5a; length]).expect("write the key file");
    (dir, path)
}

#[test]
fn encryption_key_rotation_with_a_given_key_is_a_usage_error() {
    let (dir, key) = key_file(16);
    let key = key.to_str().expect("UTF-8 path");
    let rotation = ["--encrypt", "--key-rotation", "2"];
    usage_error_naming(
        "hls",
        &[&rotation[..], &["--key-file", key]].concat(),
        &["--key-rotation", "--key-file"],
    );
    let info = dir.path().join("key.info");
    std::fs::write(&info, format!("secret.key\n{key}\n")).expect("write the key info");
    let info = info.to_str().expect("UTF-8 path");
    usage_error_naming(
        "hls",
        &[&rotation[..], &["--key-info", info]].concat(),
        &["--key-rotation", "--key-info"],
    );
}

#[test]
fn encryption_key_file_of_15_bytes_is_refused_naming_it() {
    let (_dir, key) = key_file(15);
    let args = [
        "--reps",
        "90",
        "--encrypt",
        "--key-file",
        key.to_str().expect("UTF-8 path"),
    ];
    let error = refused(&media("tiny"), &args, 4);
    assert!(
        error.contains("secret.key"),
        "the error does not name the key file: {error}"
    );
}

/// Players fetch 16 raw bytes from the key URI: a hex key file cannot be that URI.
#[test]
fn encryption_hex_key_file_without_a_key_url_is_refused_before_any_work() {
    let (_dir, key) = input_file("secret.key");
    std::fs::write(&key, "000102030405060708090a0b0c0d0e0f\n").expect("write the key file");
    // No --reps: the key is checked before the ladder, so the tiny source's empty ladder is not reached.
    let args = ["--encrypt", "--key-file", key.to_str().expect("UTF-8 path")];
    let error = refused(&media("tiny"), &args, 2);
    assert!(error.contains("secret.key") && error.contains("--key-url"), "{error}");
}
