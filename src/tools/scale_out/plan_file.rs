//! `plan.json`: what every task of a scale-out run reads (documented in README.md, "Scale out").
//! Version 1.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::source::{AudioInput, VideoInput};
use crate::package::PackageOptions;
use crate::package::chunk::{FrameRange, SegmentFrames, Title};
use crate::package::ladder::Rung;
use crate::package::segment::SegmentFormat;
use crate::package::transcode::encoding::{self, PRESETS, VideoCodec};

pub const VERSION: u32 = 1;

/// Frames after each chunk encoded and dropped, so that the encoders' lookahead sees past the
/// chunk's end as in a one-process run: the longest x264 lookahead of the preset (a small rung's),
/// the longest of any preset for other encoders.
fn postroll_frames(options: &PackageOptions) -> usize {
    let preset = encoding::preset_index(&options.encoder_preset).unwrap_or(PRESETS.len() - 1);
    match options.video_codec {
        VideoCodec::H264 => encoding::x264_lookahead(preset, 0),
        _ => encoding::x264_lookahead(PRESETS.len() - 1, 0),
    }
}

/// A title planned into chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    /// The stream-pack version that made the plan: every task must run the same one, whose
    /// encoders make the same segments.
    pub stream_pack: String,
    /// The `hls` or `dash` command line planned (the command's name first), read again by every
    /// task with the same parser, so every option means what it meant to `plan`; relative paths
    /// in it are relative to `cwd`.
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub source: SourceFacts,
    pub output: OutputFacts,
    /// What the command's options resolve to, checked again by every task.
    pub settings: Settings,
    pub ladder: Vec<RungFacts>,
    /// The audio renditions' folders, all encoded by the last task.
    pub audio: Vec<String>,
    pub chunk_duration: f64,
    /// Seconds of video before each chunk encoded to warm up the encoders, then dropped.
    pub preroll: f64,
    pub chunks: Vec<Chunk>,
    /// Array tasks: one per chunk, then one for the audio if the title has any.
    pub tasks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFacts {
    pub path: PathBuf,
    /// Seconds, as the container declares it.
    pub duration: Option<f64>,
    /// The container's start time: the zero of the segment clock.
    pub start_micros: i64,
    pub video: Option<VideoFacts>,
    pub audio: Vec<AudioFacts>,
}

/// A source audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioFacts {
    pub stream: usize,
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
    pub language: Option<String>,
}

impl From<&AudioInput> for AudioFacts {
    fn from(audio: &AudioInput) -> AudioFacts {
        AudioFacts {
            stream: audio.index,
            codec: format!("{:?}", audio.codec).to_lowercase(),
            channels: audio.channels,
            sample_rate: audio.sample_rate,
            language: audio.language.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFacts {
    pub stream: usize,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// `num/den`, as are the time base's.
    pub frame_rate: String,
    /// The time base of every `*_pts` of the plan and the chunks' sidecars.
    pub time_base: String,
    pub frames: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFacts {
    /// `ts` or `fmp4`.
    pub format: String,
    /// `hls`, `dash`: the manifests written.
    pub manifests: Vec<String>,
    /// Where `assemble` puts the package: the local folder (if any) and every remote one.
    pub destinations: Vec<String>,
}

/// The encoder settings every chunk is encoded with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub video_codec: String,
    pub encoder_preset: String,
    pub scaling: String,
    pub audio_codec: String,
    pub audio_bitrate: u64,
    pub segment_duration: f64,
}

impl Settings {
    pub fn of(options: &PackageOptions) -> Settings {
        Settings {
            video_codec: options.video_codec.to_string(),
            encoder_preset: options.encoder_preset.clone(),
            scaling: options.scaling.to_string(),
            audio_codec: options.audio_codec.to_string(),
            audio_bitrate: options.audio_bitrate.0,
            segment_duration: options.segment_duration,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungFacts {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate: u64,
    pub maxrate: u64,
    pub bufsize: u64,
}

impl From<&Rung> for RungFacts {
    fn from(rung: &Rung) -> RungFacts {
        RungFacts {
            name: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            bitrate: rung.rate.bitrate.0,
            maxrate: rung.rate.maxrate.0,
            bufsize: rung.rate.bufsize.0,
        }
    }
}

/// Whole segments of the video, frame-exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u64,
    pub segments: u64,
    pub frames: u64,
    #[serde(flatten)]
    pub range: FrameRange,
}

/// What the plan is made of besides the title.
pub struct Planning<'a> {
    pub options: &'a PackageOptions,
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub chunk_duration: f64,
    /// Seconds of video before each chunk encoded and dropped.
    pub preroll: f64,
}

impl Plan {
    pub fn new(title: &Title, planning: Planning) -> Plan {
        let options = planning.options;
        let per_chunk = (planning.chunk_duration / options.segment_duration).round().max(1.0) as usize;
        let preroll = title
            .video
            .as_ref()
            .map_or(0, |v| (planning.preroll / f64::from(v.time_base)).round() as i64);
        let frames = Frames {
            all: &title.frames,
            keyframes: &title.keyframes,
            preroll,
            postroll: postroll_frames(options),
        };
        let chunks = chunk_list(&title.segments, &frames, per_chunk);
        let tasks = chunks.len() as u64 + u64::from(!title.audio.is_empty());
        Plan {
            version: VERSION,
            stream_pack: env!("CARGO_PKG_VERSION").into(),
            command: planning.command,
            cwd: planning.cwd,
            source: SourceFacts {
                path: std::path::absolute(&options.input).unwrap_or_else(|_| options.input.clone()),
                duration: title.duration,
                start_micros: title.start_micros,
                video: title.video.as_ref().map(|v| video_facts(v, &title.segments)),
                audio: title.audio_streams.iter().map(AudioFacts::from).collect(),
            },
            output: output_facts(options),
            settings: Settings::of(options),
            ladder: title.rungs.iter().map(RungFacts::from).collect(),
            audio: title.audio.clone(),
            chunk_duration: planning.chunk_duration,
            preroll: planning.preroll,
            chunks,
            tasks,
        }
    }

    /// The audio task's index, if the title has audio: the last.
    pub fn audio_task(&self) -> Option<u64> {
        (!self.audio.is_empty()).then_some(self.chunks.len() as u64)
    }

    /// Refuses a plan this stream-pack cannot run as its maker did.
    pub fn check_runnable(&self, path: &std::path::Path) -> Result<()> {
        let refuse = |reason: String| {
            Err(Error::Plan {
                path: path.to_owned(),
                reason,
            })
        };
        if self.version != VERSION {
            return refuse(format!(
                "plan version {}: this stream-pack reads version {VERSION}",
                self.version
            ));
        }
        let numbered = self.chunks.iter().enumerate().all(|(i, c)| c.index == i as u64);
        let tasks = self.chunks.len() as u64 + u64::from(!self.audio.is_empty());
        if !numbered || tasks != self.tasks || self.chunks.is_empty() != self.ladder.is_empty() {
            return refuse("its chunks, rungs and tasks do not agree: the file was edited".into());
        }
        if self.stream_pack != env!("CARGO_PKG_VERSION") {
            return refuse(format!(
                "made by stream-pack {}, and this is {}: every task must run the same version",
                self.stream_pack,
                env!("CARGO_PKG_VERSION")
            ));
        }
        Ok(())
    }
}

fn video_facts(video: &VideoInput, segments: &[SegmentFrames]) -> VideoFacts {
    let ratio = |r: ffmpeg_next::Rational| format!("{}/{}", r.numerator(), r.denominator());
    VideoFacts {
        stream: video.index,
        codec: format!("{:?}", video.codec).to_lowercase(),
        width: video.width,
        height: video.height,
        frame_rate: ratio(video.frame_rate),
        time_base: ratio(video.time_base),
        frames: segments.iter().map(|s| s.frames).sum(),
    }
}

fn output_facts(options: &PackageOptions) -> OutputFacts {
    let manifests = [(options.manifests.hls, "hls"), (options.manifests.dash, "dash")];
    let local = (!options.publishing.remote_only).then(|| options.output.display().to_string());
    let remotes = options.publishing.remotes.iter().map(ToString::to_string);
    OutputFacts {
        format: match options.format {
            SegmentFormat::Ts => "ts",
            SegmentFormat::Fmp4 => "fmp4",
        }
        .into(),
        manifests: manifests
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| (*name).into())
            .collect(),
        destinations: local.into_iter().chain(remotes).collect(),
    }
}

/// The video's frames and keyframes (timestamps, ascending), and the pre-roll in ticks.
struct Frames<'a> {
    all: &'a [i64],
    keyframes: &'a [i64],
    preroll: i64,
    /// Frames.
    postroll: usize,
}

impl Frames<'_> {
    /// The first frame of the pre-roll of a chunk starting at `first_pts`.
    fn preroll_start(&self, first_pts: i64) -> i64 {
        let from = self.all.partition_point(|pts| *pts < first_pts - self.preroll);
        self.all.get(from).copied().unwrap_or(first_pts).min(first_pts)
    }

    /// The last frame of the post-roll of a chunk ending at `last_pts`.
    fn postroll_end(&self, last_pts: i64) -> i64 {
        let last = self.all.partition_point(|pts| *pts <= last_pts);
        let end = (last + self.postroll).min(self.all.len());
        self.all[..end].last().copied().unwrap_or(last_pts).max(last_pts)
    }

    /// The last keyframe at or before `pts`.
    fn seek_point(&self, pts: i64) -> i64 {
        let after = self.keyframes.partition_point(|k| *k <= pts);
        self.keyframes[..after].last().copied().unwrap_or(pts)
    }
}

/// The video's segments in runs of `per_chunk` (the last run may be shorter), each with its
/// pre-roll, decoded from the last keyframe at or before it.
fn chunk_list(segments: &[SegmentFrames], frames: &Frames, per_chunk: usize) -> Vec<Chunk> {
    let mut first_segment = 0;
    let mut chunks = Vec::new();
    for run in segments.chunks(per_chunk) {
        let first_pts = run[0].first_pts;
        let preroll_pts = frames.preroll_start(first_pts);
        chunks.push(Chunk {
            index: chunks.len() as u64,
            segments: run.len() as u64,
            frames: run.iter().map(|s| s.frames).sum(),
            range: FrameRange {
                first_pts,
                last_pts: run[run.len() - 1].last_pts,
                preroll_pts,
                postroll_pts: frames.postroll_end(run[run.len() - 1].last_pts),
                seek_pts: frames.seek_point(preroll_pts),
                first_segment,
            },
        });
        first_segment += run.len() as u64;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first_pts: i64, frames: u64) -> SegmentFrames {
        SegmentFrames {
            first_pts,
            last_pts: first_pts + frames as i64 - 1,
            frames,
        }
    }

    #[test]
    fn chunks_hold_whole_segments_with_their_pre_and_post_roll_decoded_from_a_keyframe() {
        let segments: Vec<SegmentFrames> = (0..5).map(|i| segment(i * 25, 25)).collect();
        let all: Vec<i64> = (0..125).collect();
        let frames = Frames {
            all: &all,
            keyframes: &[0, 40, 90, 100],
            preroll: 8,
            postroll: 3,
        };
        let chunks = chunk_list(&segments, &frames, 2);
        let summary: Vec<(u64, u64, i64, i64, i64, i64, i64)> = chunks
            .iter()
            .map(|c| {
                let r = &c.range;
                (
                    r.first_segment,
                    c.segments,
                    r.first_pts,
                    r.last_pts,
                    r.preroll_pts,
                    r.postroll_pts,
                    r.seek_pts,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, 2, 0, 49, 0, 52, 0),
                (2, 2, 50, 99, 42, 102, 40),
                (4, 1, 100, 124, 92, 124, 90)
            ]
        );
        assert_eq!(chunks.iter().map(|c| c.frames).sum::<u64>(), 125);
    }
}
