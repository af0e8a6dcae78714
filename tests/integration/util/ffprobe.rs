//! FFmpeg's CLI tools as independent judges: stream facts, packets, decoding.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ffprobe -v error -of json ARGS FILE`, parsed.
pub fn probe(args: &[&str], file: &Path) -> Value {
    try_probe(args, file).unwrap_or_else(|error| panic!("ffprobe {args:?} {} failed: {error}", file.display()))
}

/// [`probe`], or ffprobe's stderr if it fails.
pub fn try_probe(args: &[&str], file: &Path) -> Result<Value, String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(input_options(file))
        .args(args)
        .arg(file)
        .output()
        .expect("run ffprobe");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("ffprobe prints JSON"))
}

/// Options for reading `file`: an HLS playlist may name key files (`.key`), which FFmpeg 5.1's
/// HLS demuxer opens from disk only when told to allow every file name extension. (The
/// checks of a package name every file it holds, so no other file can slip in this way.)
fn input_options(file: &Path) -> &'static [&'static str] {
    if file.extension().is_some_and(|extension| extension == "m3u8") {
        &["-allowed_extensions", "ALL"]
    } else {
        &[]
    }
}

/// A URL under which libav reads `files` one after another as one file (its `concat:`
/// protocol): an init segment followed by media segments is a fragmented MP4.
pub fn concat(files: &[PathBuf]) -> PathBuf {
    let paths: Vec<String> = files.iter().map(|file| file.display().to_string()).collect();
    PathBuf::from(format!("concat:{}", paths.join("|")))
}

/// ffprobe's `streams` and `format` of a file.
pub fn streams_and_format(file: &Path) -> Value {
    probe(&["-show_streams", "-show_format"], file)
}

/// A number that ffprobe prints either as a JSON number or as a decimal string.
pub fn number(value: &Value) -> f64 {
    match value {
        Value::Number(number) => number.as_f64().expect("finite number"),
        Value::String(text) => text.parse().unwrap_or_else(|_| panic!("not a number: {text:?}")),
        other => panic!("not a number: {other}"),
    }
}

/// A rational such as `25/1` or `30000/1001` as a float.
pub fn rational(text: &str) -> f64 {
    let (numerator, denominator) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("not a rational: {text:?}"));
    let numerator: f64 = numerator.parse().expect("numerator");
    let denominator: f64 = denominator.parse().expect("denominator");
    numerator / denominator
}

pub struct Packet {
    pub pts: i64,
    /// In the stream's time base; ffprobe omits it for some packets.
    pub duration: Option<i64>,
    pub size: u64,
    pub keyframe: bool,
}

/// One stream of a file with its packets in decode order.
pub struct Track {
    pub stream: Value,
    pub packets: Vec<Packet>,
}

/// Every stream of a file with its packets (`-show_packets -show_streams`).
pub fn tracks(file: &Path) -> Vec<Track> {
    let json = probe(&["-show_packets", "-show_streams"], file);
    let mut tracks: Vec<Track> = array(&json["streams"])
        .iter()
        .map(|stream| Track {
            stream: stream.clone(),
            packets: Vec::new(),
        })
        .collect();
    for packet in array(&json["packets"]) {
        let index = packet["stream_index"].as_u64().expect("stream_index") as usize;
        tracks[index].packets.push(Packet {
            pts: packet["pts"].as_i64().expect("every packet has a pts"),
            duration: packet["duration"].as_i64(),
            size: number(&packet["size"]) as u64,
            keyframe: packet["flags"].as_str().expect("flags").contains('K'),
        });
    }
    tracks
}

/// The number of audio packets in a file, all audio streams together.
pub fn audio_packets(file: &Path) -> usize {
    tracks(file)
        .iter()
        .filter(|t| t.stream["codec_type"] == "audio")
        .map(|t| t.packets.len())
        .sum()
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Decoded frames of the first video stream.
pub struct VideoFrames {
    pub count: usize,
    /// Presentation time of the last frame minus that of the first, in seconds.
    pub span: f64,
}

pub fn video_frames(file: &Path) -> VideoFrames {
    let json = probe(
        &["-select_streams", "v:0", "-show_entries", "frame=pts:stream=time_base"],
        file,
    );
    let time_base = rational(json["streams"][0]["time_base"].as_str().expect("time_base"));
    let pts: Vec<i64> = array(&json["frames"])
        .iter()
        .map(|frame| frame["pts"].as_i64().expect("every decoded frame has a pts"))
        .collect();
    let first = pts.iter().min().expect("at least one decoded frame");
    let last = pts.iter().max().expect("at least one decoded frame");
    VideoFrames {
        count: pts.len(),
        span: (last - first) as f64 * time_base,
    }
}

/// Asserts `ffmpeg -v error [-allowed_extensions ALL] -i FILE -map 0 -f null -` decodes every
/// stream without a single error message.
pub fn assert_decodes_cleanly(file: &Path) {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(input_options(file))
        .arg("-i")
        .arg(file)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && errors.is_empty(),
        "ffmpeg does not decode {} cleanly ({}):\n{errors}",
        file.display(),
        output.status
    );
}

/// Asserts the first video stream of `copy` holds the packets of `original`'s, not a new
/// encoding of them: the same presentation times (from the first, to the millisecond) and
/// the same decoded pictures; with `same_sizes` (a container that keeps samples as MP4 holds
/// them, unlike MPEG-TS, which adds access unit delimiters and parameter sets) the same sizes.
pub fn assert_same_video_packets(original: &Path, copy: &Path, same_sizes: bool) {
    let (theirs, ours) = (first_video(original), first_video(copy));
    let what = format!("the video packets of {} and {}", copy.display(), original.display());
    assert_eq!(
        presentation_millis(&ours),
        presentation_millis(&theirs),
        "{what}: times (ms)"
    );
    if same_sizes {
        let sizes = |track: &Track| track.packets.iter().map(|p| p.size).collect::<Vec<_>>();
        assert_eq!(sizes(&ours), sizes(&theirs), "{what}: sizes");
    }
    assert!(
        picture_hashes(copy) == picture_hashes(original),
        "{what}: decoded pictures differ"
    );
}

fn first_video(file: &Path) -> Track {
    tracks(file)
        .into_iter()
        .find(|track| track.stream["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in {}", file.display()))
}

/// Each packet's presentation time after the first's, in decode order, in milliseconds.
fn presentation_millis(track: &Track) -> Vec<i64> {
    let time_base = rational(track.stream["time_base"].as_str().expect("time_base"));
    let first = track.packets.iter().map(|p| p.pts).min().expect("packets");
    let millis = |pts: i64| ((pts - first) as f64 * time_base * 1000.0).round() as i64;
    track.packets.iter().map(|p| millis(p.pts)).collect()
}

/// The MD5 of every decoded picture of the first video stream, in presentation order.
fn picture_hashes(file: &Path) -> Vec<String> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg cannot decode {}", file.display());
    let text = String::from_utf8(output.stdout).expect("framemd5 is text");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.rsplit(',').next().unwrap_or_default().trim().to_string())
        .collect()
}
