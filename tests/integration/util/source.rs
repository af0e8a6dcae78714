//! Facts of a source file, measured with ffprobe: what a package made from it must match.

use super::ffprobe::{self, number, rational};
use serde_json::Value;
use std::path::Path;

pub struct Source {
    pub video: Option<SourceVideo>,
    pub audio: Option<SourceAudio>,
}

pub struct SourceVideo {
    pub frame_rate: f64,
    /// The frame rate as ffprobe prints it: `25/1`, `30000/1001`.
    pub frame_rate_text: String,
    pub frames: usize,
    /// Last frame's presentation time + one frame − first frame's presentation time.
    pub duration: f64,
    /// The displayed picture's aspect ratio, reduced (rotation applied): 16:9, 9:16.
    pub aspect: (u64, u64),
    /// Presentation times of the keyframes, in seconds from the first frame.
    pub keyframes: Vec<f64>,
}

pub struct SourceAudio {
    pub sample_rate: u64,
    /// The language tag, unless absent or `und`.
    pub language: Option<String>,
    pub duration: f64,
}

/// How near two times (seconds) must be to be the same time.
const SAME_TIME: f64 = 0.001;

impl SourceAudio {
    /// The language a manifest must name for this stream: its tag in BCP 47, `und` without one.
    pub fn bcp47(&self) -> &str {
        bcp47(self.language.as_deref())
    }
}

/// A container's language tag as BCP 47 says it, for the ISO 639-2 codes the tests' sources
/// carry (written out here rather than taken from stream-pack's table): `und` for none.
pub fn bcp47(tag: Option<&str>) -> &str {
    match tag {
        None => "und",
        Some("eng") => "en",
        Some("jpn") => "ja",
        Some("fre" | "fra") => "fr",
        Some(other) => other,
    }
}

impl SourceVideo {
    pub fn frame_duration(&self) -> f64 {
        1.0 / self.frame_rate
    }

    /// Whether a keyframe is presented at `time` (seconds from the first frame).
    pub fn is_keyframe(&self, time: f64) -> bool {
        self.keyframes
            .iter()
            .any(|&keyframe| (keyframe - time).abs() <= SAME_TIME)
    }

    /// Where a segment of the source's packets starting at `start` ends when cut at the
    /// source's keyframes (`--copy`): at the first keyframe at least `requested` seconds
    /// later, or at the end of the video.
    pub fn keyframe_cut(&self, start: f64, requested: f64) -> f64 {
        let earliest = start + requested - SAME_TIME;
        self.keyframes
            .iter()
            .copied()
            .find(|&keyframe| keyframe >= earliest)
            .unwrap_or(self.duration)
    }
}

impl Source {
    pub fn probe(path: &Path) -> Self {
        let json = ffprobe::streams_and_format(path);
        let streams = json["streams"].as_array().expect("streams");
        let of_kind = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind);
        let video = of_kind("video").map(|stream| probe_video(path, stream));
        let audio = of_kind("audio").map(|stream| SourceAudio {
            sample_rate: number(&stream["sample_rate"]) as u64,
            language: stream["tags"]["language"]
                .as_str()
                .filter(|language| *language != "und")
                .map(str::to_owned),
            duration: number(&stream["duration"]),
        });
        Source { video, audio }
    }

    pub fn video(&self) -> &SourceVideo {
        self.video.as_ref().expect("the source has video")
    }

    pub fn audio(&self) -> &SourceAudio {
        self.audio.as_ref().expect("the source has audio")
    }

    /// The video's duration, or the audio's in an audio-only source.
    pub fn duration(&self) -> f64 {
        self.video
            .as_ref()
            .map_or_else(|| self.audio().duration, |video| video.duration)
    }
}

fn probe_video(path: &Path, stream: &Value) -> SourceVideo {
    let frame_rate_text = stream["avg_frame_rate"].as_str().expect("avg_frame_rate").to_string();
    let frame_rate = rational(&frame_rate_text);
    let frames = ffprobe::video_frames(path);
    let track = ffprobe::tracks(path)
        .into_iter()
        .find(|track| track.stream["codec_type"] == "video")
        .expect("a video track");
    let time_base = rational(track.stream["time_base"].as_str().expect("time_base"));
    let first = track.packets.iter().map(|p| p.pts).min().expect("video packets");
    let mut keyframes: Vec<f64> = track
        .packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| (p.pts - first) as f64 * time_base)
        .collect();
    keyframes.sort_by(f64::total_cmp);
    SourceVideo {
        frame_rate,
        frame_rate_text,
        frames: frames.count,
        duration: frames.span + 1.0 / frame_rate,
        aspect: display_aspect(stream),
        keyframes,
    }
}

/// ffprobe's display aspect ratio (`16:9`), swapped by a 90° display rotation.
fn display_aspect(stream: &Value) -> (u64, u64) {
    let text = stream["display_aspect_ratio"].as_str().expect("display_aspect_ratio");
    let (width, height) = text.split_once(':').expect("W:H");
    let (width, height): (u64, u64) = (width.parse().expect("W"), height.parse().expect("H"));
    let rotation = stream["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|side_data| side_data["side_data_type"] == "Display Matrix")
        .map_or(0.0, |matrix| number(&matrix["rotation"]));
    if rotation.abs() == 90.0 {
        (height, width)
    } else {
        (width, height)
    }
}
