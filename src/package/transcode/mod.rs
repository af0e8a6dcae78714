//! Decode once, scale to every rung in one filter graph, encode every rung in this process, and
//! encode the audio once for all of them. Frames at segment boundaries are forced to IDR here,
//! which is what makes every rung's segments start at the same instant.

pub mod copy;
pub mod encoding;

use std::ops::DerefMut;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use ffmpeg::{ChannelLayout, Packet, Rational, decoder, encoder, filter, format, frame, picture};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::source::{self, AudioInput, VideoInput};
use crate::package::chunk::FrameRange;
use crate::package::codec_string;
use crate::package::ladder::{Bitrate, Rung};
use crate::package::segment::{Cuts, Delivery, EncodedRendition, FrameSpan, SegmentClock, SegmentFormat, Segmenter};
use crate::package::transcode::encoding::{AudioCodec, VideoCodec, VideoEncoding};
use crate::progress::TrackPosition;

/// One source stream's way to segments: decoded and encoded (a ladder, the audio track) or
/// copied. The packaging loop feeds each its demuxed packets.
pub trait StreamPipeline {
    fn send(&mut self, packet: &Packet) -> Result<()>;
    /// Flushes everything and returns the renditions written.
    fn finish(self: Box<Self>) -> Result<Vec<EncodedRendition>>;
}

/// Several pipelines fed the same packets: a passed-through top rung and the encoded rungs below.
pub struct Fanout(pub Vec<Box<dyn StreamPipeline>>);

impl StreamPipeline for Fanout {
    fn send(&mut self, packet: &Packet) -> Result<()> {
        self.0.iter_mut().try_for_each(|pipeline| pipeline.send(packet))
    }

    fn finish(self: Box<Self>) -> Result<Vec<EncodedRendition>> {
        let mut renditions = Vec::new();
        for pipeline in self.0 {
            renditions.extend(pipeline.finish()?);
        }
        Ok(renditions)
    }
}

/// A pipeline on a thread of its own, fed copies of its packets: each audio stream decodes side
/// by side with the others and with the video ladder.
pub struct Threaded(Worker<Packet, Vec<EncodedRendition>>);

impl Threaded {
    pub fn start(mut pipeline: Box<dyn StreamPipeline + Send>) -> Threaded {
        Threaded(Worker::start(PACKET_QUEUE, move |queue| {
            until_finish(queue, |packet: Packet| pipeline.send(&packet))?;
            pipeline.finish()
        }))
    }
}

impl StreamPipeline for Threaded {
    fn send(&mut self, packet: &Packet) -> Result<()> {
        self.0.send(packet.clone())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<EncodedRendition>> {
        self.0.request_finish();
        self.0.join()
    }
}

/// A rung and the folder its segments go to.
pub struct RungOutput {
    pub rung: Rung,
    pub dir: PathBuf,
    /// Where its encoder tells how far it has encoded, for the progress reports.
    pub(crate) position: TrackPosition,
}

/// Where each rung's picture is scaled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scaling {
    /// Every rung from the source: each rung gets the picture a single scaler makes.
    #[default]
    Direct,
    /// Each rung from the closest larger rung (1080p → 720p → 480p …): the scalers cost half as
    /// much, but every rung made from another one is scaled twice or more and loses detail
    /// (measured in bench/RESULTS.md: 0.1–0.5 dB PSNR at the same bit rate on ladder (b)).
    Cascade,
}

named!(Scaling, "scaling", Scaling::Direct => "direct", Scaling::Cascade => "cascade");

/// What every rung's encoder shares.
pub struct VideoSettings {
    pub codec: VideoCodec,
    /// Index into `encoding::PRESETS`.
    pub preset: usize,
    pub scaling: Scaling,
    pub format: SegmentFormat,
    pub delivery: Delivery,
    /// The frames encoded: all, or one chunk's (decoded from an earlier keyframe on).
    pub range: Option<FrameRange>,
}

/// Turns libav's "try again" and "end of stream" answers into `None` and keeps real errors.
pub(crate) fn received(result: std::result::Result<(), ffmpeg::Error>) -> std::result::Result<bool, ffmpeg::Error> {
    match result {
        Ok(()) => Ok(true),
        Err(ffmpeg::Error::Eof) => Ok(false),
        Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a decoding error names: the file, the kind of stream and where in it.
struct DecodeContext {
    path: PathBuf,
    kind: &'static str,
    clock: SegmentClock,
    time_base: Rational,
}

impl DecodeContext {
    fn error(&self, pts: Option<i64>, e: ffmpeg::Error) -> Error {
        let at = pts.map_or(String::new(), |p| {
            format!(" at {:.3} s", self.clock.seconds(p, self.time_base))
        });
        Error::InputCorrupt {
            path: self.path.clone(),
            reason: format!("decoding {}{at}: {e}", self.kind),
        }
    }
}

/// The decode front end every decoding pipeline shares: packets in, frames out, and errors that
/// name the file, the kind of stream and where.
struct Decoding<D, F> {
    decoder: D,
    /// The frame last decoded.
    frame: F,
    context: DecodeContext,
}

impl<D, F> Decoding<D, F>
where
    D: DerefMut<Target = decoder::Opened>,
    F: DerefMut<Target = frame::Frame>,
{
    /// Sends a packet, or with `None` the end of the stream, which flushes the decoder.
    fn send(&mut self, packet: Option<&Packet>) -> Result<()> {
        match packet {
            Some(packet) => self
                .decoder
                .send_packet(packet)
                .map_err(|e| self.context.error(packet.pts(), e)),
            None => self.decoder.send_eof().map_err(|e| self.context.error(None, e)),
        }
    }

    /// Decodes the next frame into `frame`; false when the decoder needs more input first.
    fn receive(&mut self) -> Result<bool> {
        received(self.decoder.receive_frame(&mut self.frame)).map_err(|e| self.context.error(None, e))
    }
}

/// A pipeline that decodes its packets before anything else.
trait Decoded {
    type Decoder: DerefMut<Target = decoder::Opened>;
    type Frame: DerefMut<Target = frame::Frame>;

    fn decoding(&mut self) -> &mut Decoding<Self::Decoder, Self::Frame>;

    /// Takes the frame just decoded (`decoding().frame`) on through the pipeline.
    fn take_frame(&mut self) -> Result<()>;

    /// Sends a packet, or with `None` the end of the stream, and takes every frame the decoder
    /// then has ready.
    fn decode(&mut self, packet: Option<&Packet>) -> Result<()> {
        self.decoding().send(packet)?;
        while self.decoding().receive()? {
            self.take_frame()?;
        }
        Ok(())
    }
}

/// Feeds a frame to a filter graph's input, or with `None` the end of the frames, which flushes it.
pub(crate) fn feed_graph(graph: &mut filter::Graph, frame: Option<&frame::Frame>, doing: &str) -> Result<()> {
    let mut input = graph.get("in").expect("graph input");
    let mut source = input.source();
    match frame {
        Some(frame) => source.add(frame),
        None => source.flush(),
    }
    .map_err(Error::ffmpeg(doing))
}

/// The decoded video, split and scaled to every rung, each encoded and segmented.
pub struct VideoLadder {
    input: VideoInput,
    decoding: Decoding<decoder::Video, frame::Video>,
    outputs: Vec<RungOutput>,
    settings: VideoSettings,
    /// Built from the first decoded frame, whose format and size the graph must be told.
    running: Option<RunningLadder>,
    last_pts: Option<i64>,
}

struct RunningLadder {
    graph: filter::Graph,
    workers: Vec<RungWorker>,
}

impl VideoLadder {
    pub fn new(
        path: &Path,
        stream: &format::stream::Stream,
        input: VideoInput,
        outputs: Vec<RungOutput>,
        settings: VideoSettings,
        clock: SegmentClock,
    ) -> Result<VideoLadder> {
        let mut decoder = source::decoder_context(path, stream)?;
        decoder.set_packet_time_base(input.time_base);
        let decoder = decoder.video().map_err(Error::ffmpeg("opening the video decoder"))?;
        let context = DecodeContext {
            path: path.to_owned(),
            kind: "video",
            clock,
            time_base: input.time_base,
        };
        Ok(VideoLadder {
            input,
            decoding: Decoding {
                decoder,
                frame: frame::Video::empty(),
                context,
            },
            outputs,
            settings,
            running: None,
            last_pts: None,
        })
    }

    /// The frame's timestamp, made strictly increasing: the encoders and muxers require it, and
    /// a source with a missing or repeated timestamp gets the nominal frame step instead.
    fn next_pts(&mut self) -> i64 {
        let step = (1.0 / (f64::from(self.input.frame_rate) * f64::from(self.input.time_base)))
            .round()
            .max(1.0) as i64;
        let pts = match (self.decoding.frame.timestamp(), self.last_pts) {
            (Some(pts), Some(last)) if pts > last => pts,
            (Some(pts), None) => pts,
            (_, Some(last)) => last + step,
            (None, None) => 0,
        };
        self.last_pts = Some(pts);
        pts
    }

    fn rung_sizes(&self) -> Vec<(u32, u32)> {
        self.outputs.iter().map(|o| (o.rung.width, o.rung.height)).collect()
    }

    fn start(&mut self) -> Result<RunningLadder> {
        let mut graph = self.build_graph()?;
        let time_base = graph.get("out0").expect("graph output").sink().time_base();
        let sizes = self.rung_sizes();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = self
            .outputs
            .iter()
            .zip(encoder_threads(&sizes, cores))
            .map(|(out, threads)| {
                let clock = self.decoding.context.clock.clone();
                RungEncoder::new(out, time_base, &self.input, &self.settings, clock, threads)
                    .map(|encoder| Worker::start(FRAME_QUEUE, move |queue| encoder.run(queue)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RunningLadder { graph, workers })
    }

    fn build_graph(&self) -> Result<filter::Graph> {
        scaler_graph(
            &self.decoding.frame,
            &self.input,
            &self.rung_sizes(),
            self.settings.scaling,
        )
    }
}

/// `buffer → [rotate] → split → scale per rung → buffersink per rung`, all in one graph, for
/// frames like `frame` of `input`: output `out{i}` gives the picture of `sizes[i]`.
pub(crate) fn scaler_graph(
    frame: &frame::Video,
    input: &VideoInput,
    sizes: &[(u32, u32)],
    scaling: Scaling,
) -> Result<filter::Graph> {
    let sar = frame.aspect_ratio();
    let sar = if sar.numerator() > 0 { sar } else { Rational::new(1, 1) };
    let tb = input.time_base;
    let pix_fmt: ffmpeg::ffi::AVPixelFormat = frame.format().into();
    let args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        frame.width(),
        frame.height(),
        pix_fmt as i32,
        tb.numerator(),
        tb.denominator(),
        sar.numerator(),
        sar.denominator()
    );
    let mut graph = filter::Graph::new();
    let error = Error::ffmpeg;
    graph
        .add(&filter::find("buffer").expect("libavfilter has buffer"), "in", &args)
        .map_err(error("creating the scaler graph input"))?;
    for i in 0..sizes.len() {
        graph
            .add(
                &filter::find("buffersink").expect("libavfilter has buffersink"),
                &format!("out{i}"),
                "",
            )
            .map_err(error("creating the scaler graph outputs"))?;
    }
    let upright = match input.rotation {
        90 | 270 => (frame.height(), frame.width()),
        _ => (frame.width(), frame.height()),
    };
    let spec = ladder_graph_spec(input.rotation, upright, sizes, scaling);
    let mut parser = graph.output("in", 0).map_err(error("linking the scaler graph"))?;
    for i in 0..sizes.len() {
        parser = parser
            .input(&format!("out{i}"), 0)
            .map_err(error("linking the scaler graph"))?;
    }
    parser.parse(&spec).map_err(error("parsing the scaler graph"))?;
    graph.validate().map_err(error("configuring the scaler graph"))?;
    Ok(graph)
}

impl Decoded for VideoLadder {
    type Decoder = decoder::Video;
    type Frame = frame::Video;

    fn decoding(&mut self) -> &mut Decoding<decoder::Video, frame::Video> {
        &mut self.decoding
    }

    fn take_frame(&mut self) -> Result<()> {
        let pts = self.next_pts();
        if self.settings.range.is_some_and(|range| !range.encodes(pts)) {
            return Ok(());
        }
        self.decoding.frame.set_pts(Some(pts));
        if self.running.is_none() {
            self.running = Some(self.start()?);
        }
        let running = self.running.as_mut().expect("started");
        feed_graph(
            &mut running.graph,
            Some(&self.decoding.frame),
            "feeding the scaler graph",
        )?;
        running.pull()
    }
}

impl StreamPipeline for VideoLadder {
    fn send(&mut self, packet: &Packet) -> Result<()> {
        self.decode(Some(packet))
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<EncodedRendition>> {
        self.decode(None)?;
        let Some(mut running) = self.running.take() else {
            return Err(Error::InputCorrupt {
                path: self.decoding.context.path.clone(),
                reason: "no video frame could be decoded".into(),
            });
        };
        feed_graph(&mut running.graph, None, "flushing the scaler graph")?;
        running.pull()?;
        // Every encoder is told first and then waited for, so that they drain their lookahead
        // side by side rather than each only once the one before it is done.
        for worker in &mut running.workers {
            worker.request_finish();
        }
        running.workers.iter_mut().map(RungWorker::join).collect()
    }
}

impl RunningLadder {
    /// Hands every frame the graph has ready to its rung's encoder thread.
    fn pull(&mut self) -> Result<()> {
        for (i, worker) in self.workers.iter_mut().enumerate() {
            let mut sink = self.graph.get(&format!("out{i}")).expect("graph output");
            loop {
                let mut scaled = frame::Video::empty();
                if !received(sink.sink().frame(&mut scaled)).map_err(Error::ffmpeg("scaling"))? {
                    break;
                }
                worker.send(scaled)?;
            }
        }
        Ok(())
    }
}

/// The filter graph text: rotation as the display matrix asks, then a scaler per rung, fed as
/// `scaling` says (see `scaling_parents`); `upright` is the rotated source's size.
fn ladder_graph_spec(rotation: u32, upright: (u32, u32), sizes: &[(u32, u32)], scaling: Scaling) -> String {
    let rotate = match rotation {
        90 => "transpose=clock,",
        180 => "hflip,vflip,",
        270 => "transpose=cclock,",
        _ => "",
    };
    let parents = match scaling {
        Scaling::Direct => vec![None; sizes.len()],
        Scaling::Cascade => scaling_parents(upright, sizes),
    };
    let feeds = |node: Option<usize>| -> String {
        (0..sizes.len())
            .filter(|&i| parents[i] == node)
            .map(|i| format!("[to{i}]"))
            .collect()
    };
    let split = |outputs: String| format!("split={}{outputs}", outputs.matches('[').count());
    let mut spec = format!("[in]{rotate}{}", split(feeds(None)));
    for (i, (width, height)) in sizes.iter().enumerate() {
        spec.push_str(&format!(
            ";[to{i}]scale={width}:{height},setsar=1,format=yuv420p,{}",
            split(format!("[out{i}]{}", feeds(Some(i))))
        ));
    }
    spec
}

/// Which picture each rung is scaled from: the smallest rung above it that is at least as large
/// in both dimensions and not itself upscaled, or the source (`None`). Scaling 720p to 480p costs
/// far less than scaling 1080p to 480p, and the rungs come largest first.
fn scaling_parents(source: (u32, u32), rungs: &[(u32, u32)]) -> Vec<Option<usize>> {
    rungs
        .iter()
        .enumerate()
        .map(|(i, &(width, height))| {
            (0..i).rev().find(|&j| {
                let (w, h) = rungs[j];
                w >= width && h >= height && w <= source.0 && h <= source.1
            })
        })
        .collect()
}

/// Threads for each rung's encoder, in proportion to its share of the ladder's pixels. A single
/// x264 thread per rung spends the least CPU time (no waits between frame threads, fewer frames
/// buffered), and the rungs' threads already run side by side; but the largest rung alone would
/// then hold the job back, so each rung gets 1.5 threads per core of its share of the work, as
/// x264 takes for a whole machine by default.
fn encoder_threads(sizes: &[(u32, u32)], cores: usize) -> Vec<usize> {
    let pixels = |&(w, h): &(u32, u32)| f64::from(w) * f64::from(h);
    let total: f64 = sizes.iter().map(pixels).sum();
    sizes
        .iter()
        .map(|size| ((1.5 * cores as f64 * pixels(size) / total).ceil() as usize).max(1))
        .collect()
}

/// Depth of each rung's frame queue: enough to keep its encoder fed while the next frames are
/// decoded and scaled, small enough that memory stays a few frames per rung.
const FRAME_QUEUE: usize = 4;

/// Depth of each threaded pipeline's packet queue: an audio packet is small, and a few dozen
/// keep its thread busy while the demuxer reads on.
const PACKET_QUEUE: usize = 64;

/// What a worker thread is sent.
enum Work<T> {
    Item(T),
    Finish,
}

/// Takes every item the queue brings until `Finish`; a queue closed without it abandons the work.
fn until_finish<T>(queue: &Receiver<Work<T>>, mut take: impl FnMut(T) -> Result<()>) -> Result<()> {
    loop {
        match queue.recv() {
            Ok(Work::Item(item)) => take(item)?,
            Ok(Work::Finish) => return Ok(()),
            Err(mpsc::RecvError) => return Err(Error::Cancelled),
        }
    }
}

/// Work on a thread of its own, fed through a bounded queue: a rung's encoder and segmenter,
/// which encode (and mux and write) while the next frames are decoded and scaled, or a whole
/// audio pipeline, which decodes and encodes while the video does.
struct Worker<T, R> {
    work: Option<SyncSender<Work<T>>>,
    thread: Option<JoinHandle<Result<R>>>,
}

/// A rung's encoder thread, fed scaled frames.
type RungWorker = Worker<frame::Video, EncodedRendition>;

impl<T: Send + 'static, R: Send + 'static> Worker<T, R> {
    fn start(depth: usize, run: impl FnOnce(&Receiver<Work<T>>) -> Result<R> + Send + 'static) -> Worker<T, R> {
        let (work, queue) = mpsc::sync_channel(depth);
        let thread = std::thread::spawn(move || run(&queue));
        Worker {
            work: Some(work),
            thread: Some(thread),
        }
    }

    fn send(&mut self, item: T) -> Result<()> {
        let work = self.work.as_ref().expect("the queue is open until finish");
        if work.send(Work::Item(item)).is_err() {
            // The thread stopped on an error; it is the one to report.
            return Err(self.join().err().unwrap_or(Error::Cancelled));
        }
        Ok(())
    }

    /// Asks the thread to flush its work; `join` then gives what it made.
    fn request_finish(&mut self) {
        // A failed send means the thread already stopped with an error, which join returns.
        let _ = self.work.take().expect("finished once").send(Work::Finish);
    }

    fn join(&mut self) -> Result<R> {
        self.work = None;
        let thread = self.thread.take().expect("joined once");
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl<T, R> Drop for Worker<T, R> {
    /// A job that stops early closes the queue without `Finish`: the thread drops its encoder
    /// without flushing, and nothing is written after the job has returned.
    fn drop(&mut self) {
        self.work = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct RungEncoder {
    name: String,
    encoder: encoder::video::Encoder,
    segmenter: Segmenter,
    clock: SegmentClock,
    time_base: Rational,
    segment: Option<u64>,
    position: TrackPosition,
    /// Whether the encoder writes the frames' A/53 captions into its bitstream: libx264 does
    /// (its `a53cc` option, on by default); FFmpeg 5.1's libx265, libvpx and SVT-AV1 do not.
    keeps_captions: bool,
    /// Whether a frame with captions reached an encoder that keeps them.
    captions: bool,
    frames: Option<FrameSpan>,
    /// A chunk's frames: the others are its pre- and post-roll, encoded but not written.
    range: Option<FrameRange>,
}

impl RungEncoder {
    fn new(
        output: &RungOutput,
        time_base: Rational,
        input: &VideoInput,
        settings: &VideoSettings,
        clock: SegmentClock,
        threads: usize,
    ) -> Result<RungEncoder> {
        let rung = &output.rung;
        let spec = VideoEncoding {
            codec: settings.codec,
            preset: settings.preset,
            width: rung.width,
            height: rung.height,
            time_base,
            frame_rate: input.frame_rate,
            // No keyframe of the encoder's own inside a segment: one holds at most this many frames.
            keyint: settings.codec.keyint(clock.longest(), input.frame_rate),
            rate: rung.rate,
            threads,
            colour: input.colour,
        };
        let encoder = match rung.constant_quality {
            Some(crf) => encoding::open_constant_quality(&spec, crf, true, &rung.name)?,
            None => encoding::open_video(&spec, &rung.name)?,
        };
        let default_duration = (1.0 / (f64::from(input.frame_rate) * f64::from(time_base))).round() as i64;
        let segmenter = Segmenter::new(
            &rung.name,
            &output.dir,
            settings.format,
            &encoder,
            clock.clone(),
            settings.codec.cuts(),
            default_duration,
        )?
        .delivering(settings.delivery.clone())
        .numbered_from(settings.range.map_or(0, |range| range.first_segment));
        Ok(RungEncoder {
            name: rung.name.clone(),
            encoder,
            segmenter,
            clock,
            time_base,
            segment: None,
            position: output.position.clone(),
            keeps_captions: settings.codec == VideoCodec::H264,
            captions: false,
            frames: None,
            range: settings.range,
        })
    }

    /// Encodes a frame, forcing an IDR where it starts a segment and nowhere else: a frame keeps
    /// its decoded picture type otherwise, and the encoder would copy the source's keyframes.
    fn encode(&mut self, frame: &mut frame::Video) -> Result<()> {
        let pts = frame.pts().expect("frames carry timestamps");
        let index = self.clock.index_of(pts, self.time_base);
        let starts_segment = self.segment.is_none_or(|current| index > current);
        frame.set_kind(if starts_segment {
            picture::Type::I
        } else {
            picture::Type::None
        });
        self.segment = Some(index);
        if self.range.is_none_or(|range| range.keeps(pts)) {
            self.frames = Some(FrameSpan::with(self.frames, pts));
        }
        self.captions |= self.keeps_captions && frame.side_data(frame::side_data::Type::A53CC).is_some();
        self.encoder
            .send_frame(frame)
            .map_err(Error::ffmpeg(format!("{}: encoding", self.name)))?;
        self.drain()
    }

    /// The encoder thread: frames until `Finish`; a queue closed without it abandons the work.
    fn run(mut self, queue: &Receiver<Work<frame::Video>>) -> Result<EncodedRendition> {
        until_finish(queue, |mut frame| self.encode(&mut frame))?;
        self.finish()
    }

    fn drain(&mut self) -> Result<()> {
        let mut packet = Packet::empty();
        while received(self.encoder.receive_packet(&mut packet))
            .map_err(Error::ffmpeg(format!("{}: encoding", self.name)))?
        {
            tell_position(&self.position, &self.clock, &packet, self.time_base);
            let pts = packet.pts().or(packet.dts());
            let rolled = self.range.is_some_and(|range| pts.is_some_and(|pts| !range.keeps(pts)));
            let packet = std::mem::replace(&mut packet, Packet::empty());
            if !rolled {
                self.segmenter.write(packet)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<EncodedRendition> {
        self.encoder
            .send_eof()
            .map_err(Error::ffmpeg(format!("{}: finishing the encoder", self.name)))?;
        self.drain()?;
        let rendition = self.segmenter.finish()?;
        Ok(EncodedRendition {
            captions: Some(self.captions),
            frames: self.frames,
            ..rendition
        })
    }
}

/// What every audio rendition of a job is encoded to.
pub struct AudioSettings {
    pub codec: AudioCodec,
    pub bitrate: Bitrate,
    pub format: SegmentFormat,
    pub delivery: Delivery,
}

/// One rendition of an audio stream: where it goes, and its channels.
pub(crate) struct AudioOutput {
    /// Its folder's name in the package, which names it in messages and progress too.
    pub name: String,
    pub dir: PathBuf,
    /// 5.1 rather than the stereo downmix.
    pub surround: bool,
    /// Where it tells how far it has encoded, for the progress reports.
    pub position: TrackPosition,
}

/// An audio stream decoded once, each of its renditions (a stereo downmix, a 5.1 one) resampled,
/// encoded and segmented from the same decoded frames.
pub struct AudioTrack {
    decoding: Decoding<decoder::Audio, frame::Audio>,
    renditions: Vec<AudioEncode>,
}

/// One rendition's way from decoded frames to segments, on its stream's thread. Handing each
/// frame to a thread per rendition costs as much CPU as the second decode it replaces
/// (bench/RESULTS.md), for encoders that each need under 2 % of a core.
struct AudioEncode {
    name: String,
    encoder: encoder::audio::Encoder,
    segmenter: Segmenter,
    /// Built from the first decoded frame, whose format the graph must be told.
    graph: Option<filter::Graph>,
    /// The decoded frames' time base.
    input_time_base: Rational,
    position: TrackPosition,
    clock: SegmentClock,
}

#[cfg(test)]
thread_local! {
    /// Audio decoders opened on this thread, for the tests that check a stream is decoded once.
    pub(crate) static AUDIO_DECODERS_OPENED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl AudioTrack {
    pub(crate) fn new(
        path: &Path,
        stream: &format::stream::Stream,
        input: &AudioInput,
        outputs: Vec<AudioOutput>,
        settings: &AudioSettings,
        clock: SegmentClock,
    ) -> Result<AudioTrack> {
        let mut decoder = source::decoder_context(path, stream)?;
        decoder.set_packet_time_base(input.time_base);
        let decoder = decoder.audio().map_err(Error::ffmpeg("opening the audio decoder"))?;
        #[cfg(test)]
        AUDIO_DECODERS_OPENED.with(|opened| opened.set(opened.get() + 1));
        let renditions = outputs
            .into_iter()
            .map(|output| AudioEncode::new(output, input, settings, clock.clone()))
            .collect::<Result<Vec<_>>>()?;
        let context = DecodeContext {
            path: path.to_owned(),
            kind: "audio",
            clock,
            time_base: input.time_base,
        };
        Ok(AudioTrack {
            decoding: Decoding {
                decoder,
                frame: frame::Audio::empty(),
                context,
            },
            renditions,
        })
    }
}

impl AudioEncode {
    fn new(
        output: AudioOutput,
        input: &AudioInput,
        settings: &AudioSettings,
        clock: SegmentClock,
    ) -> Result<AudioEncode> {
        let encoder = encoding::open_audio(settings.codec, input, settings.bitrate, output.surround)?;
        let codecs = match settings.codec {
            AudioCodec::Aac => codec_string::mp4a_from_audio_specific_config(codec_string::extradata(&encoder))
                .ok_or_else(|| Error::Codec {
                    stream: output.name.clone(),
                    reason: "the AAC encoder gave no AudioSpecificConfig".into(),
                })?,
            AudioCodec::Opus => "opus".to_owned(),
        };
        let mut segmenter = Segmenter::new(
            &output.name,
            &output.dir,
            settings.format,
            &encoder,
            clock.clone(),
            Cuts::Boundary,
            i64::from(encoder.frame_size()),
        )?
        .delivering(settings.delivery.clone());
        segmenter.describe(Some(codecs));
        Ok(AudioEncode {
            name: output.name,
            encoder,
            segmenter,
            graph: None,
            input_time_base: input.time_base,
            position: output.position,
            clock,
        })
    }

    /// `abuffer → aresample → aformat → abuffersink` cutting frames of the encoder's size, in
    /// the encoder's own layout (swresample's standard downmix where it has fewer channels) and
    /// sample format: planar for AAC, packed (interleaved) for libopus, which reads only the
    /// first plane and would take a planar frame's left channel and whatever memory lies beyond
    /// it as interleaved samples.
    fn build_graph(&self, frame: &frame::Audio) -> Result<filter::Graph> {
        let time_base = self.input_time_base;
        let layout = if frame.channel_layout().bits() == 0 {
            ChannelLayout::default(i32::from(frame.channels()))
        } else {
            frame.channel_layout()
        };
        let args = format!(
            "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            time_base.numerator(),
            time_base.denominator(),
            frame.rate(),
            frame.format().name(),
            layout.bits()
        );
        let error = Error::ffmpeg;
        let mut graph = filter::Graph::new();
        graph
            .add(&filter::find("abuffer").expect("libavfilter has abuffer"), "in", &args)
            .map_err(error("creating the audio graph"))?;
        graph
            .add(
                &filter::find("abuffersink").expect("libavfilter has abuffersink"),
                "out",
                "",
            )
            .map_err(error("creating the audio graph"))?;
        let spec = format!(
            "aresample={},aformat=sample_fmts={}:channel_layouts=0x{:x}",
            self.encoder.rate(),
            self.encoder.format().name(),
            self.encoder.channel_layout().bits()
        );
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&spec))
            .map_err(error("parsing the audio graph"))?;
        graph.validate().map_err(error("configuring the audio graph"))?;
        graph
            .get("out")
            .expect("graph output")
            .sink()
            .set_frame_size(self.encoder.frame_size());
        Ok(graph)
    }

    /// Resamples and encodes a decoded frame, or with `None` flushes the resampler.
    fn take(&mut self, frame: Option<&frame::Audio>) -> Result<()> {
        let graph = match (self.graph.as_mut(), frame) {
            (Some(graph), _) => graph,
            (None, Some(frame)) => self.graph.insert(self.build_graph(frame)?),
            (None, None) => return Ok(()),
        };
        let doing = match frame {
            Some(_) => "feeding the audio resampler",
            None => "flushing the audio resampler",
        };
        feed_graph(graph, frame.map(|f| &**f), doing)?;
        self.pull()
    }

    fn pull(&mut self) -> Result<()> {
        let mut resampled = frame::Audio::empty();
        let graph = self.graph.as_mut().expect("built");
        let mut sink = graph.get("out").expect("graph output");
        while received(sink.sink().frame(&mut resampled)).map_err(Error::ffmpeg("resampling audio"))? {
            self.encoder
                .send_frame(&resampled)
                .map_err(Error::ffmpeg(format!("{}: encoding", self.name)))?;
            self.drain()?;
        }
        Ok(())
    }

    /// Segments every packet the encoder has ready, and tells how far the rendition has come.
    fn drain(&mut self) -> Result<()> {
        let mut packet = Packet::empty();
        while received(self.encoder.receive_packet(&mut packet))
            .map_err(Error::ffmpeg(format!("{}: encoding", self.name)))?
        {
            tell_position(&self.position, &self.clock, &packet, self.encoder.time_base());
            self.segmenter.write(std::mem::replace(&mut packet, Packet::empty()))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<EncodedRendition> {
        self.take(None)?;
        self.encoder
            .send_eof()
            .map_err(Error::ffmpeg(format!("{}: finishing the encoder", self.name)))?;
        self.drain()?;
        self.segmenter.finish()
    }
}

impl Decoded for AudioTrack {
    type Decoder = decoder::Audio;
    type Frame = frame::Audio;

    fn decoding(&mut self) -> &mut Decoding<decoder::Audio, frame::Audio> {
        &mut self.decoding
    }

    fn take_frame(&mut self) -> Result<()> {
        let pts = self.decoding.frame.timestamp();
        self.decoding.frame.set_pts(pts);
        let frame = &self.decoding.frame;
        self.renditions
            .iter_mut()
            .try_for_each(|rendition| rendition.take(Some(&shared(frame)?)))
    }
}

/// Tells a rendition's progress reports that it is encoded up to the end of `packet`: packets
/// leave a video encoder out of presentation order, and the position keeps the latest end.
fn tell_position(position: &TrackPosition, clock: &SegmentClock, packet: &Packet, time_base: Rational) {
    if let Some(pts) = packet.pts() {
        position.advance(clock.seconds(pts + packet.duration().max(0), time_base));
    }
}

/// A new reference to a decoded frame's samples: a graph's source takes the frame it is given and
/// leaves it empty, and each rendition's graph is given the same frame.
fn shared(frame: &frame::Audio) -> Result<frame::Audio> {
    let mut reference = frame::Audio::empty();
    add_reference(&mut reference, frame, "sharing a decoded audio frame")?;
    Ok(reference)
}

/// Makes the empty `reference` a new reference to `frame`'s buffers, without copying them.
pub(crate) fn add_reference(reference: &mut frame::Frame, frame: &frame::Frame, doing: &str) -> Result<()> {
    // SAFETY: both point at valid frames, and `reference` is empty, as av_frame_ref requires.
    let status = unsafe { ffmpeg::ffi::av_frame_ref(reference.as_mut_ptr(), frame.as_ptr()) };
    match status {
        0 => Ok(()),
        e => Err(Error::ffmpeg(doing)(ffmpeg::Error::from(e))),
    }
}

impl StreamPipeline for AudioTrack {
    fn send(&mut self, packet: &Packet) -> Result<()> {
        self.decode(Some(packet))
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<EncodedRendition>> {
        self.decode(None)?;
        self.renditions.into_iter().map(AudioEncode::finish).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER_B: [(u32, u32); 6] = [
        (1920, 1080),
        (1280, 720),
        (854, 480),
        (640, 360),
        (426, 240),
        (256, 144),
    ];

    #[test]
    fn each_rung_is_scaled_from_the_next_larger_one() {
        let parents = scaling_parents((1920, 1080), &LADDER_B);
        assert_eq!(parents, [None, Some(0), Some(1), Some(2), Some(3), Some(4)]);
    }

    #[test]
    fn no_rung_is_scaled_from_an_upscaled_one() {
        // A 720p source with an upscaled 1080p rung: 720p and below come from the source.
        let parents = scaling_parents((1280, 720), &LADDER_B[..3]);
        assert_eq!(parents, [None, None, Some(1)]);
    }

    #[test]
    fn no_rung_is_scaled_from_a_narrower_one() {
        let parents = scaling_parents((1920, 1080), &[(1280, 720), (1080, 1080), (640, 360)]);
        assert_eq!(parents, [None, None, Some(1)]);
    }

    #[test]
    fn direct_scaling_feeds_every_rung_from_the_source_and_cascade_from_the_rung_above() {
        let direct = ladder_graph_spec(0, (1920, 1080), &LADDER_B[..3], Scaling::Direct);
        assert!(direct.starts_with("[in]split=3[to0][to1][to2];"), "{direct}");
        assert_eq!(direct.matches("[to").count(), 6, "{direct}");
        let cascade = ladder_graph_spec(90, (1080, 1920), &[(1080, 1920), (720, 1280)], Scaling::Cascade);
        assert!(cascade.starts_with("[in]transpose=clock,split=1[to0];"), "{cascade}");
        assert!(
            cascade.contains("scale=1080:1920,setsar=1,format=yuv420p,split=2[out0][to1];"),
            "{cascade}"
        );
    }

    #[test]
    fn encoder_threads_follow_each_rungs_share_of_the_pixels() {
        assert_eq!(encoder_threads(&LADDER_B, 2), [2, 1, 1, 1, 1, 1]);
        assert_eq!(encoder_threads(&LADDER_B[1..3], 2), [3, 1]);
        assert_eq!(encoder_threads(&[(640, 360)], 4), [6]);
    }
}
