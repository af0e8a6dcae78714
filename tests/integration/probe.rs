//! `stream-pack probe`: the table and the JSON, judged against ffprobe's view of the file.

use crate::util::ffprobe::{self, number, rational};
use crate::util::{cli, media};
use serde_json::Value;
use std::path::Path;

fn probe_table(source: &Path) -> String {
    let output = cli::run([Path::new("probe"), source]);
    cli::assert_success(&output);
    String::from_utf8(output.stdout).expect("the table is UTF-8")
}

fn probe_json(source: &Path) -> Value {
    let output = cli::run([Path::new("probe"), source, Path::new("--json")]);
    cli::assert_success(&output);
    serde_json::from_slice(&output.stdout).expect("probe --json prints JSON")
}

/// Whether the text says `<rate> fps` (or `<rate>fps`), e.g. `25 fps`, `25.00 fps`.
fn mentions_frame_rate(text: &str, rate: f64) -> bool {
    let separators = |c: char| c.is_whitespace() || ",;|()[]".contains(c);
    let tokens: Vec<String> = text
        .split(separators)
        .filter(|token| !token.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let is_rate = |token: &str| token.parse::<f64>().is_ok_and(|v| (v - rate).abs() < 1e-3);
    let glued = tokens
        .iter()
        .any(|token| token.strip_suffix("fps").is_some_and(is_rate));
    let spaced = tokens.windows(2).any(|pair| is_rate(&pair[0]) && pair[1] == "fps");
    glued || spaced
}

#[test]
fn table_describes_video_and_audio() {
    let table = probe_table(&media("main"));
    let lower = table.to_ascii_lowercase();
    for expected in ["h264", "640x360", "aac", "48000"] {
        assert!(lower.contains(expected), "no {expected:?} in the table:\n{table}");
    }
    assert!(mentions_frame_rate(&table, 25.0), "no 25 fps in the table:\n{table}");
}

#[test]
fn table_of_audio_only_file_has_no_video() {
    let table = probe_table(&media("audio_only"));
    let lower = table.to_ascii_lowercase();
    assert!(lower.contains("aac") && lower.contains("44100"), "table:\n{table}");
    assert!(!lower.contains("h264"), "an audio-only file shows video:\n{table}");
}

#[test]
fn json_matches_ffprobe_for_video_and_audio() {
    assert_matches_ffprobe(&media("main"));
}

#[test]
fn json_matches_ffprobe_for_a_rotated_video() {
    let source = media("portrait");
    assert_matches_ffprobe(&source);
    let json = probe_json(&source);
    let video = stream_of_kind(&json, "video");
    assert_eq!(video["rotation"].as_f64().map(f64::abs), Some(90.0));
}

#[test]
fn json_matches_ffprobe_for_audio_only() {
    let source = media("audio_only");
    assert_matches_ffprobe(&source);
    let json = probe_json(&source);
    let kinds: Vec<&Value> = json["streams"].as_array().expect("streams").iter().collect();
    assert!(kinds.iter().all(|s| s["kind"] == "audio"), "streams: {kinds:?}");
}

fn stream_of_kind<'a>(json: &'a Value, kind: &str) -> &'a Value {
    let streams = json["streams"].as_array().expect("streams is an array");
    streams
        .iter()
        .find(|stream| stream["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {json}"))
}

fn assert_matches_ffprobe(source: &Path) {
    let ours = probe_json(source);
    let theirs = ffprobe::streams_and_format(source);
    let duration = ours["format"]["duration"]
        .as_f64()
        .expect("format.duration is a number");
    assert_near(
        duration,
        number(&theirs["format"]["duration"]),
        0.002,
        "format.duration",
    );
    let ours_streams = ours["streams"].as_array().expect("streams is an array");
    let their_streams = theirs["streams"].as_array().expect("ffprobe streams");
    assert_eq!(ours_streams.len(), their_streams.len(), "stream count: {ours}");
    for theirs in their_streams {
        let index = &theirs["index"];
        let ours = ours_streams
            .iter()
            .find(|stream| stream["index"] == *index)
            .unwrap_or_else(|| panic!("no stream with index {index}: {ours}"));
        assert_stream_matches(ours, theirs);
    }
}

fn assert_stream_matches(ours: &Value, theirs: &Value) {
    let kind = theirs["codec_type"].as_str().expect("codec_type");
    let what = |field: &str| format!("stream {} ({kind}) {field}", theirs["index"]);
    assert_eq!(ours["kind"], kind, "{}", what("kind"));
    assert_eq!(ours["codec"], theirs["codec_name"], "{}", what("codec"));
    let profile = ours["profile"].as_str().unwrap_or_default();
    let their_profile = theirs["profile"].as_str().expect("ffprobe profile");
    assert!(
        profile.eq_ignore_ascii_case(their_profile),
        "{}: {profile:?}",
        what("profile")
    );
    let bit_rate = ours["bit_rate"].as_f64().expect("bit_rate is a number");
    let their_bit_rate = number(&theirs["bit_rate"]);
    assert_near(bit_rate, their_bit_rate, their_bit_rate * 0.01, &what("bit_rate"));
    let duration = ours["duration"].as_f64().expect("duration is a number");
    assert_near(duration, number(&theirs["duration"]), 0.002, &what("duration"));
    match kind {
        "video" => assert_video_matches(ours, theirs),
        "audio" => assert_audio_matches(ours, theirs),
        _ => {}
    }
}

fn assert_video_matches(ours: &Value, theirs: &Value) {
    for (field, their_field) in [
        ("width", "width"),
        ("height", "height"),
        ("sar", "sample_aspect_ratio"),
        ("dar", "display_aspect_ratio"),
    ] {
        assert_eq!(ours[field], theirs[their_field], "video {field}");
    }
    let frame_rate = ours["frame_rate"].as_f64().expect("frame_rate is a number");
    let their_rate = rational(theirs["avg_frame_rate"].as_str().expect("avg_frame_rate"));
    assert_near(frame_rate, their_rate, 1e-3, "video frame_rate");
    let level = ours["level"].as_f64().expect("level is a number");
    let their_level = number(&theirs["level"]);
    assert!(
        level == their_level || level == their_level / 10.0,
        "video level {level}, ffprobe says {their_level}"
    );
    // No display matrix may be reported as null rather than 0.
    let rotation = match &ours["rotation"] {
        Value::Null => 0.0,
        value => value.as_f64().expect("rotation is a number or null"),
    };
    assert_eq!(rotation.abs(), their_rotation(theirs).abs(), "video rotation");
}

/// The rotation of ffprobe's display matrix side data, 0 without one.
fn their_rotation(stream: &Value) -> f64 {
    stream["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|side_data| side_data["side_data_type"] == "Display Matrix")
        .map_or(0.0, |matrix| number(&matrix["rotation"]))
}

fn assert_audio_matches(ours: &Value, theirs: &Value) {
    let sample_rate = ours["sample_rate"].as_f64().expect("sample_rate is a number");
    assert_eq!(sample_rate, number(&theirs["sample_rate"]), "audio sample_rate");
    assert_eq!(ours["channels"], theirs["channels"], "audio channels");
}

fn assert_near(ours: f64, theirs: f64, tolerance: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= tolerance,
        "{what}: stream-pack says {ours}, ffprobe {theirs}"
    );
}

/// `stream-pack probe FILE | head -1`: a reader that stops early is no failure of the probe.
#[test]
fn probe_into_a_pipe_closed_early_exits_0_without_a_panic() {
    let (reader, writer) = std::io::pipe().expect("make a pipe");
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stream-pack"))
        .arg("probe")
        .arg(media("tiny"))
        .stdout(writer)
        .output()
        .expect("run stream-pack probe");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}

/// A Matroska file with a video and two SubRip streams: English for the hearing impaired (which
/// describes the sound too), and forced French signs with a title.
fn subtitled(dir: &Path) -> std::path::PathBuf {
    let srt = dir.join("cues.srt");
    std::fs::write(&srt, "1\n00:00:00,500 --> 00:00:01,200\nHello\n").unwrap();
    let path = dir.join("subtitled.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x180:rate=25:duration=2", "-i"])
        .arg(&srt)
        .arg("-i")
        .arg(&srt)
        .args([
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:s",
            "srt",
        ])
        .args([
            "-metadata:s:s:0",
            "language=eng",
            "-disposition:s:0",
            "hearing_impaired+descriptions",
        ])
        .args(["-metadata:s:s:1", "language=fre", "-metadata:s:s:1", "title=Panneaux"])
        .args(["-disposition:s:1", "forced"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the subtitled file");
    path
}

/// Subtitle streams are listed with their codec, language, title and disposition, as ffprobe
/// reads them, in the JSON and in the table.
#[test]
fn subtitle_streams_are_listed_as_ffprobe_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let source = subtitled(dir.path());
    let ours = probe_json(&source);
    let theirs = ffprobe::streams_and_format(&source);
    let ours = ours["streams"].as_array().expect("streams");
    let subtitles: Vec<&Value> = theirs["streams"]
        .as_array()
        .expect("ffprobe streams")
        .iter()
        .filter(|s| s["codec_type"] == "subtitle")
        .collect();
    assert_eq!(subtitles.len(), 2);
    for theirs in subtitles {
        let stream = ours
            .iter()
            .find(|s| s["index"] == theirs["index"])
            .unwrap_or_else(|| panic!("no stream {} in {ours:?}", theirs["index"]));
        assert_eq!(stream["kind"], "subtitle");
        assert_eq!(stream["codec"], theirs["codec_name"]);
        assert_eq!(stream["language"], theirs["tags"]["language"]);
        assert_eq!(stream["title"], theirs["tags"]["title"]);
        let mut their_dispositions: Vec<&str> = theirs["disposition"]
            .as_object()
            .expect("disposition")
            .iter()
            .filter(|(_, set)| set.as_i64() == Some(1))
            .map(|(name, _)| name.as_str())
            .collect();
        their_dispositions.sort_unstable();
        let mut dispositions: Vec<&str> = stream["disposition"]
            .as_array()
            .expect("disposition is an array")
            .iter()
            .map(|d| d.as_str().expect("a name"))
            .collect();
        dispositions.sort_unstable();
        assert_eq!(dispositions, their_dispositions, "stream {}", theirs["index"]);
    }
    let table = probe_table(&source);
    let lines: Vec<&str> = table
        .lines()
        .filter(|l| l.trim_start().starts_with('#') && l.contains(" subtitle "))
        .collect();
    assert_eq!(lines.len(), 2, "table:\n{table}");
    for (line, words) in lines.iter().zip([
        &["subrip", "[eng]", "hearing_impaired", "descriptions"][..],
        &["subrip", "[fre]", "\"Panneaux\"", "(forced)"][..],
    ]) {
        assert!(
            words.iter().all(|w| line.contains(w)),
            "{line:?} lacks one of {words:?}"
        );
    }
}
