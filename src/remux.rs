//! Stream copy: the source's own packets, cut at its keyframes, with no decoding or encoding.

use std::path::Path;

use ffmpeg::{Packet, codec, format};
use ffmpeg_next as ffmpeg;

use crate::codecs;
use crate::crypto::SharedKeys;
use crate::error::{Error, Result};
use crate::segment::{Cuts, SegmentClock, SegmentFormat, Segmenter};
use crate::source;
use crate::transcode::{EncodedRendition, StreamPipeline};

/// One source stream segmented as it is.
pub struct StreamCopy {
    name: String,
    segmenter: Segmenter,
    /// Video waits for its first keyframe: a segment must be decodable alone.
    waiting_for_keyframe: bool,
    codecs: Option<String>,
}

impl StreamCopy {
    pub fn new(
        name: &str,
        dir: &Path,
        format: SegmentFormat,
        stream: &format::stream::Stream,
        clock: SegmentClock,
        keys: Option<SharedKeys>,
    ) -> Result<StreamCopy> {
        let params = stream.parameters();
        let video = params.medium() == ffmpeg::media::Type::Video;
        let mut context = codec::context::Context::from_parameters(params.clone())
            .map_err(Error::ffmpeg(format!("{name}: reading the stream's parameters")))?;
        context.set_time_base(stream.time_base());
        // SAFETY: the context is ours; a container tag (avc1, hev1, mp4a) means nothing to the
        // output muxer, which picks its own (and hvc1 for HEVC in fMP4).
        unsafe { (*context.as_mut_ptr()).codec_tag = 0 };
        // The clock of a stream copy is scheduled on the video's keyframes (`keyframe_scan`).
        let cuts = if video { Cuts::Keyframe } else { Cuts::Boundary };
        let default_duration = 0;
        let segmenter = Segmenter::new(name, dir, format, &context, clock, cuts, default_duration)?.encrypted(keys);
        let codecs = segmenter
            .init_codecs()
            .map(str::to_owned)
            .or_else(|| parameter_codecs(params.id(), crate::encoders::extradata(&context)));
        Ok(StreamCopy {
            name: name.to_owned(),
            segmenter,
            waiting_for_keyframe: video,
            codecs,
        })
    }
}

/// What one quick demux pass finds about the video stream before packaging.
#[derive(Debug, Clone)]
pub struct KeyframeScan {
    /// Segment boundaries in microseconds from the clock's origin: the video's keyframes, each the
    /// first at least one segment duration after the previous boundary, so no segment but the
    /// last is shorter than asked. Known before packaging, so the audio (and, with a passed-through
    /// top rung, every encoded rung) is cut at the same instants.
    pub boundaries: Vec<i64>,
    /// The video's average bit rate over its span, in bits per second.
    pub bitrate: f64,
}

/// Demuxes the file once to find where a copy of its video stream can be cut.
pub fn keyframe_scan(path: &Path, stream_index: usize, clock: &SegmentClock) -> Result<KeyframeScan> {
    let mut input = source::open_input(path)?;
    let time_base = input.stream(stream_index).expect("chosen stream exists").time_base();
    let duration = (clock.duration() * 1e6).round() as i64;
    let mut boundaries = Vec::new();
    let mut last: Option<i64> = None;
    let (mut bytes, mut start, mut end) = (0_u64, i64::MAX, i64::MIN);
    loop {
        let mut packet = Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                return Err(Error::InputCorrupt {
                    path: path.to_owned(),
                    reason: format!("reading keyframes: {e}"),
                });
            }
        }
        let Some(pts) = packet.pts().filter(|_| packet.stream() == stream_index) else {
            continue;
        };
        bytes += packet.size() as u64;
        start = start.min(pts);
        end = end.max(pts + packet.duration().max(0));
        if !packet.is_key() {
            continue;
        }
        let at = clock.micros(pts, time_base);
        match last {
            Some(previous) if at - previous < duration => {}
            Some(_) => {
                boundaries.push(at);
                last = Some(at);
            }
            None => last = Some(at),
        }
    }
    let span = (end - start) as f64 * f64::from(time_base);
    Ok(KeyframeScan {
        boundaries,
        bitrate: if span > 0.0 { bytes as f64 * 8.0 / span } else { 0.0 },
    })
}

/// The codec string from the stream's own configuration: an H.264 avcC or Annex B SPS, an AAC
/// AudioSpecificConfig.
fn parameter_codecs(id: codec::Id, extradata: &[u8]) -> Option<String> {
    match id {
        codec::Id::H264 if extradata.first() == Some(&1) && extradata.len() >= 4 => Some(format!(
            "avc1.{:02X}{:02X}{:02X}",
            extradata[1], extradata[2], extradata[3]
        )),
        codec::Id::H264 => codecs::avc1_from_annexb(extradata),
        codec::Id::AAC => codecs::mp4a_from_audio_specific_config(extradata),
        _ => None,
    }
}

impl StreamPipeline for StreamCopy {
    fn send(&mut self, packet: &Packet) -> Result<()> {
        if self.waiting_for_keyframe && !packet.is_key() {
            return Ok(());
        }
        self.waiting_for_keyframe = false;
        if self.codecs.is_none() {
            self.codecs = packet.data().and_then(codecs::avc1_from_annexb);
        }
        self.segmenter.write(packet.clone())
    }

    fn segment_count(&self) -> usize {
        self.segmenter.segment_count()
    }

    fn finish(self: Box<Self>) -> Result<Vec<EncodedRendition>> {
        let codecs = self
            .codecs
            .ok_or_else(|| Error::Encoder(format!("{}: found no codec configuration in the source", self.name)))?;
        Ok(vec![EncodedRendition {
            media: self.segmenter.finish()?,
            codecs,
        }])
    }
}
