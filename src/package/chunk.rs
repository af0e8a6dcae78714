//! A title in parts, for encoding on many machines: the VOD driver's stages (`vod`) run over one
//! chunk's frames or over the audio alone, and its last stages (manifests, delivery) over
//! renditions stitched from the parts. Every part uses the one-process run's clock, ladder and
//! encoder settings, so its segments are the ones a one-process run writes: IDRs on the same
//! grid, the same numbers and timestamps. `tools::scale_out` plans the parts and keeps their files.

use std::path::{Path, PathBuf};

use ffmpeg::{Packet, Rational};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::vod::{self, Written};
use super::{Job, PackageOptions, PackageReport, deliver, ladder_plan, load_ladder, regular_clock, start_tracking};
use crate::error::{Error, Result};
use crate::input::source::{AudioInput, Source, VideoInput};
use crate::package::audio::{self, AudioRendition};
use crate::package::ladder::Rung;
use crate::package::pipelines;
use crate::package::segment::{EncodedRendition, SegmentClock};
use crate::package::subtitles::source::{SourceSubtitles, SubtitleSelection};
use crate::progress::{Monitor, Stage};

/// The frames one chunk encodes, timestamps in the video stream's time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRange {
    pub first_pts: i64,
    pub last_pts: i64,
    /// The first frame encoded: the frames from here to `first_pts` (the pre-roll) warm up the
    /// encoders' rate control as the frames before a chunk do in a one-process run, and their
    /// packets are dropped. Without it a chunk's first segment loses 1–3 dB PSNR.
    pub preroll_pts: i64,
    /// The last frame encoded: the frames after `last_pts` (the post-roll) let the encoders' lookahead
    /// see past the chunk's end as it does in a one-process run, and their packets are dropped.
    pub postroll_pts: i64,
    /// Where decoding starts: the source's last keyframe at or before `preroll_pts`.
    pub seek_pts: i64,
    /// The title's number of the chunk's first segment.
    pub first_segment: u64,
}

impl FrameRange {
    /// Whether the frame at `pts` is encoded (kept, or pre- or post-roll).
    pub(crate) fn encodes(&self, pts: i64) -> bool {
        (self.preroll_pts..=self.postroll_pts).contains(&pts)
    }

    /// Whether the frame at `pts`, or a packet presented then, is the chunk's.
    pub(crate) fn keeps(&self, pts: i64) -> bool {
        (self.first_pts..=self.last_pts).contains(&pts)
    }

    /// Whether `packet` is a video packet past the range: no frame of the range decodes after
    /// it, as a frame is decoded no earlier than its presentation time.
    pub(crate) fn passed(&self, packet: &Packet, video: Option<&VideoInput>) -> bool {
        let decode_time = packet.dts().or(packet.pts());
        video.is_some_and(|v| v.index == packet.stream()) && decode_time.is_some_and(|t| t > self.postroll_pts)
    }
}

/// One segment of the title's video as the segment clock cuts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFrames {
    pub first_pts: i64,
    pub last_pts: i64,
    pub frames: u64,
}

/// What a plan is made from: the source's facts, the renditions a one-process run would make,
/// and where its segment clock cuts the video.
pub struct Title {
    pub duration: Option<f64>,
    pub start_micros: i64,
    pub video: Option<VideoInput>,
    pub audio_streams: Vec<AudioInput>,
    pub rungs: Vec<Rung>,
    /// The audio renditions' folders.
    pub audio: Vec<String>,
    /// Every video frame's timestamp, ascending.
    pub frames: Vec<i64>,
    pub segments: Vec<SegmentFrames>,
    /// The source's keyframes' timestamps, ascending.
    pub keyframes: Vec<i64>,
}

/// Reads what a plan needs from the source, demuxing its video without decoding it.
pub fn survey(options: &PackageOptions) -> Result<Title> {
    let mut source = Source::open(&options.input, &options.input_options)?;
    refuse_subtitles(&source, options)?;
    let rungs = ladder_plan(&source, &load_ladder(options)?, options)?.rungs;
    let audio = choose_audio(&source, options)?.into_iter().map(|a| a.dir).collect();
    let clock = regular_clock(&source, options);
    let (frames, keyframes) = match source.video.clone() {
        Some(video) => scan_video(&mut source, &video)?,
        None => (Vec::new(), Vec::new()),
    };
    let segments = match &source.video {
        Some(video) => cut(&frames, video, &clock),
        None => Vec::new(),
    };
    Ok(Title {
        duration: source.declared_duration(),
        start_micros: source.start_micros(),
        video: source.video.clone(),
        audio_streams: source.audio_streams.clone(),
        rungs,
        audio,
        frames,
        segments,
        keyframes,
    })
}

/// Subtitle renditions are cut like the whole video: not made from parts yet.
fn refuse_subtitles(source: &Source, options: &PackageOptions) -> Result<()> {
    let kept = SourceSubtitles::new(source, &options.subtitle_streams, &mut Vec::new())?.finish();
    match kept.is_empty() && options.subtitles.is_empty() {
        true => Ok(()),
        false => Err(super::invalid(
            "subtitles",
            "cannot be planned into chunks yet: leave out --subtitles and give --subtitle-streams none",
        )),
    }
}

/// The audio renditions a one-process run of `options` makes of the source.
fn choose_audio(source: &Source, options: &PackageOptions) -> Result<Vec<AudioRendition>> {
    let chosen = audio::choose(source, &options.audio, options.default_audio.as_deref())?;
    Ok(audio::with_surround(chosen, options.surround, |input| {
        !pipelines::copies_audio(options, input)
    }))
}

/// The video's frames' and keyframes' timestamps, ascending, from its packets; a video without
/// them (a raw elementary stream) cannot be cut frame-exact.
fn scan_video(source: &mut Source, video: &VideoInput) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut frames = Vec::new();
    let mut keyframes = Vec::new();
    while let Some(packet) = source.read(0.0)? {
        if packet.stream() != video.index {
            continue;
        }
        let Some(pts) = packet.pts() else {
            return Err(Error::Plan {
                path: source.path.clone(),
                reason: "cannot be planned into chunks: its video packets carry no timestamps to cut them by \
                         (package it with hls or dash, or remux it into MP4 first)"
                    .into(),
            });
        };
        frames.push(pts);
        if packet.is_key() {
            keyframes.push(pts);
        }
    }
    if frames.is_empty() {
        return Err(Error::Plan {
            path: source.path.clone(),
            reason: "cannot be planned into chunks: its video stream holds no frames".into(),
        });
    }
    frames.sort_unstable();
    keyframes.sort_unstable();
    Ok((frames, keyframes))
}

/// The segments the clock cuts the frames into.
fn cut(frames: &[i64], video: &VideoInput, clock: &SegmentClock) -> Vec<SegmentFrames> {
    frames
        .chunk_by(|a, b| clock.index_of(*a, video.time_base) == clock.index_of(*b, video.time_base))
        .map(|frames| SegmentFrames {
            first_pts: frames[0],
            last_pts: frames[frames.len() - 1],
            frames: frames.len() as u64,
        })
        .collect()
}

/// Encodes every rung of one chunk's frames into `root` (a folder per rung), with one decode:
/// the rungs' renditions, named by their folders.
pub fn encode_video(
    options: &PackageOptions,
    range: FrameRange,
    root: &Path,
    monitor: &mut dyn Monitor,
) -> Result<Vec<(String, EncodedRendition)>> {
    let mut source = Source::open(&options.input, &options.input_options)?;
    let Some(video) = source.video.clone() else {
        return Err(Error::NoMediaStreams {
            path: source.path.clone(),
        });
    };
    let rungs = ladder_plan(&source, &load_ladder(options)?, options)?.rungs;
    seek(&mut source, &video, &range)?;
    let job = Job::new(options, root, root, regular_clock(&source, options), None, false, None).with_range(range);
    let (encoded, _) = encode(&mut source, &rungs, &job, monitor)?;
    Ok(rungs.into_iter().map(|r| r.name).zip(encoded).collect())
}

/// Encodes the whole title's audio renditions into `root`, named by their folders.
pub fn encode_audio(
    options: &PackageOptions,
    root: &Path,
    monitor: &mut dyn Monitor,
) -> Result<Vec<(String, EncodedRendition)>> {
    let mut source = Source::open(&options.input, &options.input_options)?;
    let audio = choose_audio(&source, options)?;
    let names: Vec<String> = audio.iter().map(|a| a.dir.clone()).collect();
    let job = Job::new(options, root, root, regular_clock(&source, options), None, false, None).with_audio(audio);
    let (_, encoded) = encode(&mut source, &[], &job, monitor)?;
    Ok(names.into_iter().zip(encoded).collect())
}

/// The driver's pass over the source for one part's job.
fn encode(
    source: &mut Source,
    rungs: &[Rung],
    job: &Job,
    monitor: &mut dyn Monitor,
) -> Result<(Vec<EncodedRendition>, Vec<EncodedRendition>)> {
    let mut tracker = start_tracking(source, job.options, monitor)?;
    let mut texts = SourceSubtitles::new(source, &SubtitleSelection::None, &mut Vec::new())?;
    let encoded = vod::transcode(source, rungs, job, &mut texts, &mut tracker, monitor)?;
    job.take_flushed(&mut tracker);
    tracker.stage(Stage::Done, monitor);
    Ok(encoded)
}

/// Seeks to the range's seek point: decoding must start at a keyframe at or before it. A
/// demuxer without an index (MPEG-TS) may land elsewhere (on a frame after it, by decode time):
/// it is asked again from further back, the last time from the file's zero.
fn seek(source: &mut Source, video: &VideoInput, range: &FrameRange) -> Result<()> {
    let target = micros(range.seek_pts, video.time_base);
    for margin in [0, 1, 4, 16, 64].map(|seconds| seconds * 1_000_000) {
        let at = if margin == 64_000_000 { 0 } else { target - margin };
        source.seek(at)?;
        let (read, landed) = read_to_video(source, video)?;
        source.put_back(read);
        if landed.is_some_and(|video| video.key && video.pts <= range.seek_pts) {
            return Ok(());
        }
    }
    Err(Error::InputCorrupt {
        path: source.path.clone(),
        reason: format!("cannot seek to {:.3} s", target as f64 / 1e6),
    })
}

/// Where a seek landed: the first video packet read after it.
#[derive(Clone, Copy)]
struct Landing {
    key: bool,
    pts: i64,
}

/// The packets up to the first video packet, and where that one is (none without a PTS).
fn read_to_video(source: &mut Source, video: &VideoInput) -> Result<(Vec<Packet>, Option<Landing>)> {
    let mut read = Vec::new();
    while let Some(packet) = source.read(0.0)? {
        let landed = (packet.stream() == video.index).then(|| {
            packet.pts().map(|pts| Landing {
                key: packet.is_key(),
                pts,
            })
        });
        read.push(packet);
        if let Some(landing) = landed {
            return Ok((read, landing));
        }
    }
    Ok((read, None))
}

/// Microseconds from the file's zero to a timestamp, rounded down: a seek there lands on the
/// keyframe at the timestamp or an earlier one.
fn micros(ts: i64, time_base: Rational) -> i64 {
    let scaled = i128::from(ts) * i128::from(time_base.numerator()) * 1_000_000;
    scaled.div_euclid(i128::from(time_base.denominator())) as i64
}

/// A title's renditions stitched from its parts' segments, in the one-process run's order (the
/// rungs, then the audio), and the files to put in the package: their place in it and where
/// they are now.
pub struct Stitched {
    pub video: Vec<EncodedRendition>,
    pub audio: Vec<EncodedRendition>,
    pub files: Vec<(String, PathBuf)>,
}

/// Puts the stitched renditions' files in a package at `options`' destinations and writes its
/// manifests, through the one-process run's last stages.
pub fn publish(options: &PackageOptions, stitched: &Stitched, monitor: &mut dyn Monitor) -> Result<PackageReport> {
    let source = Source::open(&options.input, &options.input_options)?;
    let plan = ladder_plan(&source, &load_ladder(options)?, options)?;
    let audio = choose_audio(&source, options)?;
    if plan.rungs.len() != stitched.video.len() || audio.len() != stitched.audio.len() {
        return Err(Error::Plan {
            path: options.input.clone(),
            reason: "the source's renditions are not the ones the plan's chunks hold".into(),
        });
    }
    let (workspace, output, _) = vod::prepare_output(options)?;
    let publisher = options.publishing.start()?;
    let root = workspace.path().to_owned();
    let mut tracker = start_tracking(&source, options, monitor)?;
    let clock = regular_clock(&source, options);
    let job = Job::new(options, &root, &output, clock, None, false, publisher.as_ref()).with_audio(audio);
    tracker.stage(Stage::Publish, monitor);
    for (relative, path) in &stitched.files {
        place(path, &root.join(relative))?;
        job.hand_over_file(relative, &root.join(relative))?;
        options.input_options.cancel.check()?;
    }
    let written = Written {
        video: &stitched.video,
        audio: &stitched.audio,
        subtitles: &[],
    };
    let made = vod::write_manifests(&job, &source, plan, &written, None, Vec::new())?;
    let report = deliver(options, workspace, publisher, made, &mut tracker)?;
    tracker.stage(Stage::Done, monitor);
    Ok(report)
}

/// Puts a chunk's file at `to`: a hard link where the file system allows (the chunk's files
/// never change once written), a copy elsewhere.
fn place(from: &Path, to: &Path) -> Result<()> {
    let folder = to.parent().expect("a file in the package has a folder");
    std::fs::create_dir_all(folder).map_err(Error::io(folder))?;
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map(drop).map_err(Error::io(from))
}
