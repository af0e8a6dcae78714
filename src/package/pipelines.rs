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
    AudioSettings, AudioTrack, Fanout, RungOutput, StreamPipeline, Threaded, VideoLadder, VideoSettings,
};

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
        let video = match &source.video {
            Some(input) => Some(Fed::new(
                source,
                input.index,
                video_pipeline(source, input, rungs, job)?,
            )),
            None => None,
        };
        // A stream's stereo and 5.1 renditions (next to each other in the job) share its packets.
        let mut audio: Vec<Fed> = Vec::new();
        for rendition in &job.audio {
            let pipeline = Box::new(Threaded::start(audio_pipeline(source, rendition, job)?));
            match audio.last_mut() {
                Some(fed) if fed.index == rendition.input.index => {
                    let sibling = std::mem::replace(&mut fed.pipeline, Box::new(Fanout(Vec::new())));
                    fed.pipeline = Box::new(Fanout(vec![sibling, pipeline]));
                }
                _ => audio.push(Fed::new(source, rendition.input.index, pipeline)),
            }
        }
        Ok(Pipelines {
            video,
            audio,
            finished_audio: Vec::new(),
            media_end: 0.0,
        })
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

/// The ladder (or, with `copy`, the source's own stream) for the video.
fn video_pipeline(source: &Source, input: &VideoInput, rungs: &[Rung], job: &Job) -> Result<Box<dyn StreamPipeline>> {
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
        return Ok(copy.expect("a rendition per rung"));
    }
    let settings = VideoSettings {
        codec: options.video_codec,
        preset: encoding::preset_index(&options.encoder_preset)?,
        scaling: options.scaling,
        format: options.format,
        delivery: job.delivery.clone(),
    };
    let ladder: Box<dyn StreamPipeline> = Box::new(VideoLadder::new(
        &source.path,
        &stream,
        input.clone(),
        outputs,
        settings,
        clock,
    )?);
    Ok(match copy {
        Some(copy) => Box::new(Fanout(vec![copy, ladder])),
        None => ladder,
    })
}

/// An audio rendition: encoded once, or copied when `copy` and the source's is AAC.
fn audio_pipeline(source: &Source, audio: &AudioRendition, job: &Job) -> Result<Box<dyn StreamPipeline + Send>> {
    let (options, clock, input) = (job.options, job.clock.clone(), &audio.input);
    let dir = job.root.join(&audio.dir);
    std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
    let stream = source.input.stream(input.index).expect("chosen stream exists");
    if copies_audio(options, input) {
        return Ok(Box::new(StreamCopy::new(
            &source.path,
            &audio.dir,
            &dir,
            options.format,
            &stream,
            clock,
            job.delivery.clone(),
        )?));
    }
    let settings = AudioSettings {
        codec: options.audio_codec,
        bitrate: options.audio_bitrate,
        format: options.format,
        delivery: job.delivery.clone(),
        surround: audio.surround,
    };
    Ok(Box::new(AudioTrack::new(
        &source.path,
        &stream,
        input.clone(),
        &dir,
        &settings,
        clock,
    )?))
}

/// Whether the source's audio is packaged as it is: with `copy`, when it is AAC.
pub(super) fn copies_audio(options: &PackageOptions, input: &AudioInput) -> bool {
    options.copy && input.codec == codec::Id::AAC
}
