//! The source's streams on their way to segments: the video's pipeline (the ladder, the source's
//! own stream copied, or both with a passed-through top rung) and each audio rendition's, each
//! fed its stream's packets.

use ffmpeg::{Packet, Rational, codec};
use ffmpeg_next as ffmpeg;

use super::{Job, PackageOptions};
use crate::error::{Error, Result};
use crate::input::source::{AudioInput, Source, VideoInput};
use crate::package::audio::AudioRendition;
use crate::package::ladder::Rung;
use crate::package::segment::{EncodedRendition, SegmentClock};
use crate::package::transcode::copy::StreamCopy;
use crate::package::transcode::encoding;
use crate::package::transcode::{
    AudioOutput, AudioSettings, AudioTrack, Fanout, RungOutput, StreamPipeline, Threaded, VideoLadder, VideoSettings,
};
use crate::progress::TrackPosition;

/// A source stream and the pipeline its packets go to.
struct Fed {
    index: usize,
    time_base: Rational,
    pipeline: Box<dyn StreamPipeline>,
}

impl Fed {
    fn new(source: &Source, index: usize, pipeline: Box<dyn StreamPipeline>) -> Fed {
        let time_base = source.input.stream(index).expect("chosen stream exists").time_base();
        Fed {
            index,
            time_base,
            pipeline,
        }
    }
}

/// The pipelines of one job, and how far into the media their packets reach.
pub(super) struct Pipelines {
    video: Option<Fed>,
    audio: Vec<Fed>,
    /// Each encoded rendition's position (the video rungs', then the audio's), told by its thread.
    tracks: Vec<TrackPosition>,
    /// The audio renditions of pipelines already finished.
    finished_audio: Vec<EncodedRendition>,
    media_end: f64,
}

/// A packet's pipeline, and where the packet starts on the segment clock if it is timed.
pub(super) struct Routed<'p> {
    pub pipeline: &'p mut dyn StreamPipeline,
    pub start: Option<f64>,
}

impl Pipelines {
    pub fn new(source: &Source, rungs: &[Rung], job: &Job) -> Result<Pipelines> {
        let mut tracks = Vec::new();
        // A job without rungs (a title's audio encoded apart from its video) leaves the video out.
        let video = match source.video.as_ref().filter(|_| !rungs.is_empty()) {
            Some(input) => {
                let (pipeline, positions) = video_pipeline(source, input, rungs, job)?;
                tracks.extend(positions);
                Some(Fed::new(source, input.index, pipeline))
            }
            None => None,
        };
        let audio = audio_streams(&job.audio)
            .into_iter()
            .map(|renditions| {
                let (pipeline, positions) = audio_pipeline(source, renditions, job)?;
                tracks.extend(positions);
                let index = renditions[0].input.index;
                Ok(Fed::new(source, index, Box::new(Threaded::start(pipeline))))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipelines {
            video,
            audio,
            tracks,
            finished_audio: Vec::new(),
            media_end: 0.0,
        })
    }

    /// The encoded renditions' positions, which their threads keep up to date.
    pub fn tracks(&self) -> Vec<TrackPosition> {
        self.tracks.clone()
    }

    /// Seconds from the clock's origin to the end of the latest packet routed.
    pub fn media_end(&self) -> f64 {
        self.media_end
    }

    /// The pipeline of the packet's stream, `None` for a stream no pipeline takes.
    pub fn route(&mut self, packet: &Packet, clock: &SegmentClock) -> Option<Routed<'_>> {
        let index = packet.stream();
        let fed = self
            .video
            .iter_mut()
            .chain(self.audio.iter_mut())
            .find(|fed| fed.index == index)?;
        let start = packet.pts().or(packet.dts()).map(|pts| {
            let end = clock.seconds(pts + packet.duration().max(0), fed.time_base);
            self.media_end = self.media_end.max(end);
            clock.seconds(pts, fed.time_base)
        });
        Some(Routed {
            pipeline: fed.pipeline.as_mut(),
            start,
        })
    }

    /// Flushes the audio pipelines, whose threads may have stopped on an error the packet loop
    /// has not heard of yet: called at the end of the input, it reports that error first, as
    /// it would be had the audio been decoded in the loop.
    pub fn finish_audio(&mut self) -> Result<()> {
        for fed in std::mem::take(&mut self.audio) {
            self.finished_audio.extend(fed.pipeline.finish()?);
        }
        Ok(())
    }

    /// Flushes every pipeline: the video renditions, then the audio ones in the job's order.
    pub fn finish(mut self) -> Result<(Vec<EncodedRendition>, Vec<EncodedRendition>)> {
        self.finish_audio()?;
        let video = self.video.map(|v| v.pipeline.finish()).transpose()?.unwrap_or_default();
        Ok((video, self.finished_audio))
    }
}

/// The ladder (or, with `copy`, the source's own stream) for the video, with the encoded rungs'
/// positions.
fn video_pipeline(
    source: &Source,
    input: &VideoInput,
    rungs: &[Rung],
    job: &Job,
) -> Result<(Box<dyn StreamPipeline>, Vec<TrackPosition>)> {
    let (options, root, clock) = (job.options, job.root, job.clock.clone());
    let stream = source.input.stream(input.index).expect("chosen stream exists");
    let mut outputs = rungs
        .iter()
        .map(|rung| {
            let dir = root.join(&rung.name);
            std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
            Ok(RungOutput {
                rung: rung.clone(),
                dir,
                position: TrackPosition::new(&rung.name),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let copy = if options.copy || job.passthrough {
        let encoded = outputs.split_off(1);
        let out = &outputs[0];
        let copy = StreamCopy::new(
            &source.path,
            &out.rung.name,
            &out.dir,
            options.format,
            &stream,
            clock.clone(),
            job.delivery.clone(),
        )?;
        outputs = encoded;
        Some(Box::new(copy) as Box<dyn StreamPipeline>)
    } else {
        None
    };
    if outputs.is_empty() {
        return Ok((copy.expect("a rendition per rung"), Vec::new()));
    }
    let positions = outputs.iter().map(|output| output.position.clone()).collect();
    let settings = VideoSettings {
        codec: options.video_codec,
        preset: encoding::preset_index(&options.encoder_preset)?,
        scaling: options.scaling,
        format: options.format,
        delivery: job.delivery.clone(),
        range: job.range,
    };
    let ladder: Box<dyn StreamPipeline> = Box::new(VideoLadder::new(
        &source.path,
        &stream,
        input.clone(),
        outputs,
        settings,
        clock,
    )?);
    let pipeline: Box<dyn StreamPipeline> = match copy {
        Some(copy) => Box::new(Fanout(vec![copy, ladder])),
        None => ladder,
    };
    Ok((pipeline, positions))
}

/// The job's renditions grouped by source stream: a stream's stereo and 5.1 renditions are next
/// to each other in the job.
fn audio_streams(renditions: &[AudioRendition]) -> Vec<&[AudioRendition]> {
    renditions.chunk_by(|a, b| a.input.index == b.input.index).collect()
}

/// A source stream's renditions (all of one stream): decoded once and each encoded, or copied
/// when `copy` and the source's is AAC; with the encoded renditions' positions.
fn audio_pipeline(
    source: &Source,
    renditions: &[AudioRendition],
    job: &Job,
) -> Result<(Box<dyn StreamPipeline + Send>, Vec<TrackPosition>)> {
    let (options, clock, input) = (job.options, job.clock.clone(), &renditions[0].input);
    let stream = source.input.stream(input.index).expect("chosen stream exists");
    let mut outputs = Vec::new();
    for rendition in renditions {
        let dir = job.root.join(&rendition.dir);
        std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
        outputs.push(AudioOutput {
            name: rendition.dir.clone(),
            dir,
            surround: rendition.surround,
            position: TrackPosition::new(&rendition.dir),
        });
    }
    if copies_audio(options, input) {
        let [copied] = &outputs[..] else {
            unreachable!("a copied stream has one rendition: with_surround adds none")
        };
        let copy = StreamCopy::new(
            &source.path,
            &copied.name,
            &copied.dir,
            options.format,
            &stream,
            clock,
            job.delivery.clone(),
        )?;
        return Ok((Box::new(copy), Vec::new()));
    }
    let settings = AudioSettings {
        codec: options.audio_codec,
        bitrate: options.audio_bitrate,
        format: options.format,
        delivery: job.delivery.clone(),
    };
    let positions = outputs.iter().map(|output| output.position.clone()).collect();
    let track = AudioTrack::new(&source.path, &stream, input, outputs, &settings, clock)?;
    Ok((Box::new(track), positions))
}

/// Whether the source's audio is packaged as it is: with `copy`, when it is AAC.
pub(super) fn copies_audio(options: &PackageOptions, input: &AudioInput) -> bool {
    options.copy && input.codec == codec::Id::AAC
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use crate::package::transcode::AUDIO_DECODERS_OPENED;
    use crate::package::{PackageOptions, package};
    use crate::progress::Silent;

    /// The channel count of each audio stream ffprobe (not stream-pack) finds in a media playlist.
    fn channels(playlist: &Path) -> Vec<u64> {
        let output = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "a",
                "-show_entries",
                "stream=channels",
            ])
            .args(["-of", "json"])
            .arg(playlist)
            .output()
            .expect("ffprobe runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let facts: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ffprobe's JSON");
        let streams = facts["streams"].as_array().expect("streams");
        streams.iter().filter_map(|s| s["channels"].as_u64()).collect()
    }

    #[test]
    fn a_multichannel_stream_is_decoded_once_for_its_stereo_and_surround_renditions() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("two-streams.mkv");
        let made = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", "sine=f=440:r=48000:d=2"])
            .args(["-f", "lavfi", "-i", "sine=f=660:r=44100:d=2"])
            .args(["-map", "0", "-map", "1", "-c:a", "aac", "-ac:a:0", "6", "-ac:a:1", "2"])
            .arg(&source)
            .status()
            .expect("ffmpeg runs");
        assert!(made.success());
        let out = dir.path().join("out");
        AUDIO_DECODERS_OPENED.with(|opened| opened.set(0));
        package(&PackageOptions::hls(&source, &out), &mut Silent).unwrap();
        assert_eq!(
            AUDIO_DECODERS_OPENED.with(|opened| opened.get()),
            2,
            "one decoder per source stream"
        );
        let layouts: Vec<Vec<u64>> = [
            "audio-und/index.m3u8",
            "audio-und-5.1/index.m3u8",
            "audio-und-2/index.m3u8",
        ]
        .map(|playlist| channels(&out.join(playlist)))
        .into();
        assert_eq!(layouts, [[2], [6], [2]], "three renditions from the two streams");
    }
}
