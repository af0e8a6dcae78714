//! Stream copy: the source's own packets, cut at its keyframes, with no decoding or encoding.

use std::path::{Path, PathBuf};

use ffmpeg::{Packet, codec, format};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::source;
use crate::input::watchdog::InputOptions;
use crate::package::codec_string::{self, Adts};
use crate::package::segment::EncodedRendition;
use crate::package::segment::{Cuts, Delivery, SegmentClock, SegmentFormat, Segmenter};
use crate::package::transcode::StreamPipeline;

/// One source stream segmented as it is.
pub struct StreamCopy {
    name: String,
    /// The source, which a stream that cannot be copied is the fault of.
    source: PathBuf,
    /// Made at the first packet when the stream's configuration is only in-band (see `Pending`).
    segmenter: Result<Segmenter, Pending>,
    /// Video waits for its first keyframe: a segment must be decodable alone.
    waiting_for_keyframe: bool,
    /// AAC from MPEG-TS comes in ADTS frames: their headers go, the AudioSpecificConfig they
    /// amount to becomes the stream's configuration.
    strip_adts: bool,
}

/// What a segmenter is made of, kept until the first packet: AAC from MPEG-TS has no
/// AudioSpecificConfig in its parameters, and only the first ADTS header tells it.
struct Pending {
    dir: PathBuf,
    format: SegmentFormat,
    context: codec::Context,
    clock: SegmentClock,
    delivery: Delivery,
    /// The source's display matrix, which the output track must carry too.
    display_matrix: Option<[i32; 9]>,
}

impl StreamCopy {
    pub fn new(
        source: &Path,
        name: &str,
        dir: &Path,
        format: SegmentFormat,
        stream: &format::stream::Stream,
        clock: SegmentClock,
        delivery: Delivery,
    ) -> Result<StreamCopy> {
        let params = stream.parameters();
        let video = params.medium() == ffmpeg::media::Type::Video;
        // The segment muxer picks its own tag (and hvc1 for HEVC in fMP4).
        let mut untagged = params.clone();
        codec_string::set_codec_tag(&mut untagged, None);
        let mut context = codec::context::Context::from_parameters(untagged)
            .map_err(Error::ffmpeg(format!("{name}: reading the stream's parameters")))?;
        context.set_time_base(stream.time_base());
        let pending = Pending {
            dir: dir.to_owned(),
            format,
            context,
            clock,
            delivery,
            display_matrix: source::display_matrix(stream),
        };
        let in_band = params.id() == codec::Id::AAC && codec_string::extradata(&pending.context).is_empty();
        let mut copy = StreamCopy {
            name: name.to_owned(),
            source: source.to_owned(),
            segmenter: Err(pending),
            waiting_for_keyframe: video,
            strip_adts: in_band,
        };
        if !in_band {
            copy.open()?;
        }
        Ok(copy)
    }

    /// Makes the segmenter from what was pending.
    fn open(&mut self) -> Result<&mut Segmenter> {
        if let Err(pending) = &self.segmenter {
            let video = pending.context.medium() == ffmpeg::media::Type::Video;
            // The clock of a stream copy is scheduled on the video's keyframes (`keyframe_scan`).
            let cuts = if video { Cuts::Keyframe } else { Cuts::Boundary };
            let mut segmenter = Segmenter::new(
                &self.name,
                &pending.dir,
                pending.format,
                &pending.context,
                pending.clock.clone(),
                cuts,
                0,
            )?
            .delivering(pending.delivery.clone())
            .displayed_with(pending.display_matrix);
            segmenter.describe(parameter_codecs(
                pending.context.id(),
                codec_string::extradata(&pending.context),
            ));
            self.segmenter = Ok(segmenter);
        }
        Ok(self.segmenter.as_mut().ok().expect("the segmenter was just made"))
    }

    /// The source's own bitstream is at fault: `reason` in the stream of this rendition.
    fn corrupt(&self, reason: &str) -> Error {
        Error::InputCorrupt {
            path: self.source.clone(),
            reason: format!("{}: {reason}", self.name),
        }
    }

    /// Takes the AudioSpecificConfig from the first ADTS header and makes the segmenter.
    fn open_from_adts(&mut self, header: Adts) -> Result<()> {
        if let Err(pending) = &mut self.segmenter {
            set_extradata(&mut pending.context, &header.audio_specific_config);
        }
        self.open().map(|_| ())
    }
}

/// Replaces the context's extradata with a copy of `data`, allocated as libav requires.
fn set_extradata(context: &mut codec::Context, data: &[u8]) {
    // SAFETY: the context is ours; extradata is allocated with av_mallocz and its padding, as
    // libav frees and reads it, and the old buffer is freed first.
    unsafe {
        let ctx = context.as_mut_ptr();
        ffmpeg::ffi::av_freep(std::ptr::addr_of_mut!((*ctx).extradata).cast());
        let padded = data.len() + ffmpeg::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buffer = ffmpeg::ffi::av_mallocz(padded).cast::<u8>();
        std::ptr::copy_nonoverlapping(data.as_ptr(), buffer, data.len());
        (*ctx).extradata = buffer;
        (*ctx).extradata_size = data.len() as i32;
    }
}

/// Whether video in `codec` can be stream-copied into `format` segments: H.264 anywhere, HEVC in
/// fMP4 only.
pub fn copyable(codec: codec::Id, format: SegmentFormat) -> bool {
    match codec {
        codec::Id::H264 => true,
        codec::Id::HEVC => format == SegmentFormat::Fmp4,
        _ => false,
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

/// Demuxes the file once, opened under `options`' timeouts, to find where a copy of its video
/// stream can be cut.
pub fn keyframe_scan(
    path: &Path,
    stream_index: usize,
    clock: &SegmentClock,
    options: &InputOptions,
) -> Result<KeyframeScan> {
    let mut input = source::open_input(path, options)?;
    let time_base = input.stream(stream_index).expect("chosen stream exists").time_base();
    let duration = (clock.duration() * 1e6).round() as i64;
    let mut boundaries = Vec::new();
    let mut last: Option<i64> = None;
    let (mut bytes, mut start, mut end) = (0_u64, i64::MAX, i64::MIN);
    let mut read_so_far = 0.0;
    while let Some(packet) = input.read().map_err(|f| source::read_error(path, f, read_so_far))? {
        let Some(pts) = packet.pts().filter(|_| packet.stream() == stream_index) else {
            continue;
        };
        bytes += packet.size() as u64;
        start = start.min(pts);
        end = end.max(pts + packet.duration().max(0));
        read_so_far = (end - start) as f64 * f64::from(time_base);
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
        codec::Id::H264 => codec_string::avc1_from_annexb(extradata),
        codec::Id::AAC => codec_string::mp4a_from_audio_specific_config(extradata),
        _ => None,
    }
}

impl StreamPipeline for StreamCopy {
    fn send(&mut self, packet: &Packet) -> Result<()> {
        if self.waiting_for_keyframe && !packet.is_key() {
            return Ok(());
        }
        self.waiting_for_keyframe = false;
        let mut packet = packet.clone();
        if self.strip_adts {
            let header = packet
                .data()
                .and_then(codec_string::adts)
                .ok_or_else(|| self.corrupt("an AAC packet without its ADTS header"))?;
            self.open_from_adts(header)?;
            let payload = packet
                .data()
                .map(|d| d[header.header_len..].to_vec())
                .unwrap_or_default();
            let mut stripped = Packet::copy(&payload);
            stripped.set_pts(packet.pts());
            stripped.set_dts(packet.dts());
            stripped.set_duration(packet.duration());
            stripped.set_flags(packet.flags());
            stripped.set_stream(packet.stream());
            packet = stripped;
        }
        self.open()?.write(packet)
    }

    fn finish(self: Box<Self>) -> Result<Vec<EncodedRendition>> {
        let segmenter = match self.segmenter {
            Ok(segmenter) => segmenter,
            Err(_) => return Err(self.corrupt("found no codec configuration in the source")),
        };
        Ok(vec![segmenter.finish()?])
    }
}
