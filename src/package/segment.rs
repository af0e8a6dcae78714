//! The segmenter: cuts one rendition's encoded packets into numbered segment files at the
//! boundaries of a shared `SegmentClock`, and records what it wrote.
//!
//! One libav muxer per rendition writes into memory through custom I/O; at a boundary the muxer is
//! flushed and the bytes so far become a segment. Keeping one muxer for the whole rendition keeps
//! its timestamps and continuity counters on one timeline, so the segments play back to back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use ffmpeg::{Dictionary, Packet, Rational, codec, format};
use ffmpeg_next as ffmpeg;
use stream_pack_formats::bmff;

use crate::error::{Error, Result};
use crate::package::codec_string;
use stream_pack_formats::cenc::{self, FragmentEncryptor};
use stream_pack_formats::sample_aes::NalFraming;
use stream_pack_formats::ts_pmt::{self, PmtError, SampleAesSignal};

use crate::package::crypto::{self, CommonKey, SampleCodec, SharedKeys};

/// Where segment boundaries fall: every `duration` from the source's start, or at the times of a
/// schedule (a stream copy's keyframes). Every rendition uses the same clock, so a frame or packet
/// at the same time falls in the same segment everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentClock {
    origin_micros: i64,
    duration_micros: i64,
    /// The last segment's index: no boundary at or after the media's end, so the encoders' tails
    /// (padding past the last frame) stay in the last segment instead of making a sliver.
    last_index: Option<u64>,
    /// Boundaries in microseconds from the origin, ascending, replacing the regular ones.
    schedule: Option<Arc<[i64]>>,
}

impl SegmentClock {
    /// `duration_seconds` must be positive; `origin_micros` is the source's start time.
    pub fn new(origin_micros: i64, duration_seconds: f64) -> SegmentClock {
        SegmentClock {
            origin_micros,
            duration_micros: ((duration_seconds * 1e6).round() as i64).max(1),
            last_index: None,
            schedule: None,
        }
    }

    /// The same clock for media lasting `seconds` from the origin.
    pub fn ending_at(self, seconds: f64) -> SegmentClock {
        let end = (seconds * 1e6).round() as i64;
        SegmentClock {
            last_index: Some(((end + self.duration_micros - 1) / self.duration_micros - 1).max(0) as u64),
            ..self
        }
    }

    /// A clock whose boundaries are these times, in microseconds from the origin.
    pub fn scheduled(self, boundaries: Vec<i64>) -> SegmentClock {
        SegmentClock {
            schedule: Some(boundaries.into()),
            ..self
        }
    }

    /// Microseconds from the origin to a timestamp, rounded down.
    pub fn micros(&self, ts: i64, time_base: Rational) -> i64 {
        let num = i128::from(time_base.numerator());
        let den = i128::from(time_base.denominator());
        let micros_times_den = i128::from(ts) * num * 1_000_000 - i128::from(self.origin_micros) * den;
        micros_times_den.div_euclid(den) as i64
    }

    /// The segment a timestamp falls in: the one whose start is the last boundary at or before it.
    /// Times before the origin (an encoder's priming samples) belong to the first segment.
    pub fn index_of(&self, ts: i64, time_base: Rational) -> u64 {
        let micros = self.micros(ts, time_base);
        let index = match &self.schedule {
            Some(boundaries) => boundaries.partition_point(|b| *b <= micros) as u64,
            None => micros.div_euclid(self.duration_micros).max(0) as u64,
        };
        self.last_index.map_or(index, |last| index.min(last))
    }

    /// The segment duration in seconds.
    pub fn duration(&self) -> f64 {
        self.duration_micros as f64 / 1e6
    }

    /// The longest segment, in seconds, that the boundaries make: the duration, or a schedule's
    /// widest gap between boundaries if wider.
    pub fn longest(&self) -> f64 {
        let widest = self.schedule.as_ref().map_or(0, |boundaries| {
            std::iter::once(&0)
                .chain(boundaries.iter())
                .zip(boundaries.iter())
                .map(|(a, b)| b - a)
                .max()
                .unwrap_or(0)
        });
        widest.max(self.duration_micros) as f64 / 1e6
    }

    /// Seconds from the origin to a timestamp.
    pub fn seconds(&self, ts: i64, time_base: Rational) -> f64 {
        ts as f64 * f64::from(time_base) - self.origin_micros as f64 / 1e6
    }
}

/// The container of the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentFormat {
    /// MPEG-2 transport stream segments (`.ts`).
    #[default]
    Ts,
    /// CMAF fragmented MP4: an init segment (`init.mp4`) and media segments (`.m4s`).
    Fmp4,
}

impl SegmentFormat {
    pub fn extension(self) -> &'static str {
        match self {
            SegmentFormat::Ts => "ts",
            SegmentFormat::Fmp4 => "m4s",
        }
    }

    fn muxer(self) -> &'static str {
        match self {
            SegmentFormat::Ts => "mpegts",
            SegmentFormat::Fmp4 => "mp4",
        }
    }

    /// Muxer options. For TS: timestamps go through unshifted (every rendition keeps the source's
    /// timeline, so audio and video stay in sync across playlists) and the muxer adds 2 × max_delay,
    /// which is how it applies `TIMELINE_OFFSET_MICROS`.
    fn options(self) -> Dictionary<'static> {
        let mut options = Dictionary::new();
        match self {
            SegmentFormat::Ts => {
                options.set("avoid_negative_ts", "disabled");
                options.set("max_delay", &(TIMELINE_OFFSET_MICROS / 2).to_string());
            }
            SegmentFormat::Fmp4 => {
                // Fragments only where we flush; ftyp+moov with no samples up front; moof-relative
                // offsets; no mfra index at the end; the CMAF brand. Not the `cmaf` flag: it
                // implies version-1 trun with negative composition offsets, which FFmpeg's mov
                // demuxer reads shifted by the most negative one, so libav-based players would
                // see video later than audio. Positive offsets and an edit list
                // (`Segmenter::write_init`) keep every reader in sync.
                options.set("movflags", "+frag_custom+empty_moov+default_base_moof+skip_trailer");
                options.set("brand", "cmfc");
            }
        }
        options
    }
}

/// Every segment's timestamps are the source's plus this, in every format: the encoders' first
/// DTS (B-frame delay) and AAC priming fall before the source's start and must stay positive.
/// 1.4 s is what the ffmpeg CLI's TS output uses.
pub const TIMELINE_OFFSET_MICROS: i64 = 1_400_000;

/// Where a segmenter starts a new segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cuts {
    /// At each clock boundary, on any packet: audio, where every packet is a sync sample.
    Boundary,
    /// At each clock boundary, which must fall on a keyframe: one the encoder was told to put
    /// there, or a source keyframe the schedule of a stream copy was made of. A packet there that
    /// is not one means the package would be misaligned.
    Keyframe,
    /// At every keyframe: an encoder that places them itself, once per segment.
    EveryKeyframe,
}

/// Facts about one written segment, measured from its packets and bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentFacts {
    /// File name, relative to the rendition's folder.
    pub uri: String,
    /// Seconds: to the next segment's start, or for the last one to the end of its last frame.
    pub duration: f64,
    /// The key period (`crypto::KeySchedule`) that encrypts the segment, if encrypted.
    pub key: Option<usize>,
    /// `start` and `duration` in the stream's timescale, as written: the first presentation time
    /// in the segment (the PTS in TS, the tfdt in fMP4), source time + `TIMELINE_OFFSET_MICROS`.
    pub start_ticks: i64,
    pub duration_ticks: i64,
    pub bytes: u64,
}

impl SegmentFacts {
    pub fn bitrate(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.duration
    }
}

/// A `Write` into shared memory: the muxer writes, the segmenter takes the bytes at each cut.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("segment buffer lock"))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("segment buffer lock").extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The segment being written; times in the muxer's stream time base.
struct OpenSegment {
    index: u64,
    first_pts: i64,
    end_pts: i64,
    first_dts: i64,
}

/// What the segmenters of one job share beyond the clock: the keys that encrypt their segments
/// (AES-128 `keys`, or the `common` key of CMAF common encryption), and the job thread to tell of
/// every file they complete.
#[derive(Clone, Default)]
pub struct Delivery {
    pub keys: Option<SharedKeys>,
    pub common: Option<Arc<CommonKey>>,
    pub events: Option<Sender<Completed>>,
}

/// A file a segmenter has finished writing: from then on it never changes.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The rendition's folder name inside the package.
    pub rendition: String,
    /// Where the file is on disk.
    pub path: PathBuf,
    /// The media segment's facts; `None` for an fMP4 init segment.
    pub segment: Option<SegmentFacts>,
    /// The rendition's codec string, once known (always by its first media segment).
    pub codecs: Option<String>,
    /// The rendition's facts, without its segments.
    pub stream: SegmentedStream,
}

impl Completed {
    /// The file's path inside the package, with `/` separators.
    pub fn relative(&self) -> String {
        let file = self
            .path
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        format!("{}/{file}", self.rendition)
    }
}

/// Writes one rendition's packets, in decode order, as `segment00000.ts`, `segment00001.ts`…
/// (`.m4s` after an `init.mp4` for fMP4).
pub struct Segmenter {
    name: String,
    dir: PathBuf,
    format: SegmentFormat,
    muxer: format::context::Output,
    buffer: SharedBuffer,
    clock: SegmentClock,
    packet_time_base: Rational,
    stream_time_base: Rational,
    /// Packet duration to assume where the encoder sets none, in the packet time base.
    default_duration: i64,
    cuts: Cuts,
    current: Option<OpenSegment>,
    written: Vec<SegmentFacts>,
    init: Option<String>,
    /// The RFC 6381 codec string: from the init segment's sample description, the stream's
    /// parameters (`describe`), or an in-band H.264 SPS.
    codecs: Option<String>,
    /// H.264 in TS carries its SPS in the stream, where the codec string is read from.
    annexb_h264: bool,
    delivery: Delivery,
    /// `TIMELINE_OFFSET_MICROS` in the stream time base.
    offset_ticks: i64,
    /// The first packet's PTS − DTS. fMP4 decode times are moved later by this much, so that each
    /// fragment's tfdt is its first sample's (an IDR's) presentation time, as DASH needs; the init
    /// segment's edit list takes the same amount off every composition time.
    decode_shift: Option<i64>,
    /// The fMP4 init segment as the muxer wrote it, until the first packet tells its edit list.
    pending_init: Option<Vec<u8>>,
    /// The display matrix (rotation) of a copied stream, for the fMP4 track header.
    display_matrix: Option<[i32; 9]>,
    /// Common encryption of the fMP4 track, from its init segment on.
    encryptor: Option<FragmentEncryptor>,
    /// What SAMPLE-AES would encrypt in this stream's packets; `None` for other codecs.
    sample_codec: Option<SampleCodec>,
    /// The number of the first segment: 0, or where a chunk of a title starts.
    first_number: u64,
    /// How the PMTs of a SAMPLE-AES package signal this stream; `None` for other codecs.
    sample_signal: Option<Result<SampleAesSignal, PmtError>>,
}

/// One rendition as written: its segments and the RFC 6381 codec string of its bitstream.
#[derive(Debug, Clone)]
pub struct EncodedRendition {
    pub media: SegmentedStream,
    pub codecs: String,
    /// Whether its video carries CEA-608/708 captions (A/53): `None` when the pass cannot tell,
    /// a bitstream copied without being decoded.
    pub captions: Option<bool>,
    /// The frames an encoded video rendition was given; `None` for others.
    pub frames: Option<FrameSpan>,
}

/// How many frames an encoder was given, and the first and last one's timestamps (in the
/// source stream's time base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    pub frames: u64,
    pub first_pts: i64,
    pub last_pts: i64,
}

impl FrameSpan {
    /// The span with one more frame.
    pub fn with(span: Option<FrameSpan>, pts: i64) -> FrameSpan {
        match span {
            Some(span) => FrameSpan {
                frames: span.frames + 1,
                first_pts: span.first_pts.min(pts),
                last_pts: span.last_pts.max(pts),
            },
            None => FrameSpan {
                frames: 1,
                first_pts: pts,
                last_pts: pts,
            },
        }
    }
}

/// Everything a segmenter wrote for one rendition.
#[derive(Debug, Clone)]
pub struct SegmentedStream {
    /// The fMP4 init segment's file name; `None` for TS.
    pub init: Option<String>,
    /// Ticks per second of the `*_ticks` fields: the track's timescale in fMP4.
    pub timescale: u32,
    /// The ticks at which the source starts: its start time + `TIMELINE_OFFSET_MICROS`.
    pub presentation_offset: i64,
    pub segments: Vec<SegmentFacts>,
}

/// The file name of a rendition's fMP4 init segment.
pub const INIT_SEGMENT: &str = "init.mp4";

impl Segmenter {
    /// A segmenter for the stream the opened `encoder` produces, writing into `dir`.
    pub fn new(
        name: &str,
        dir: &Path,
        format: SegmentFormat,
        encoder: &codec::Context,
        clock: SegmentClock,
        cuts: Cuts,
        default_duration: i64,
    ) -> Result<Segmenter> {
        let context = || format!("{name}: starting the {} muxer", format.muxer());
        let buffer = SharedBuffer::default();
        let io = format::context::StreamIo::from_write(buffer.clone()).map_err(Error::ffmpeg(context()))?;
        let mut muxer = format::output_to_stream(io, None, Some(format.muxer())).map_err(Error::ffmpeg(context()))?;
        let packet_time_base = encoder.time_base();
        {
            let mut stream = muxer.add_stream_with(encoder).map_err(Error::ffmpeg(context()))?;
            stream.set_time_base(packet_time_base);
            if format == SegmentFormat::Fmp4 && encoder.id() == codec::Id::HEVC {
                // HLS wants hvc1 (parameter sets in the sample description only), never hev1.
                codec_string::set_codec_tag(&mut stream.parameters(), Some(b"hvc1"));
            }
        }
        write_header(&mut muxer, format.options(), dir, format.muxer())?;
        let stream_time_base = muxer.stream(0).expect("the muxer has its stream").time_base();
        let (init, init_codecs, pending_init) = match format {
            // An encoder's Annex B parameter sets are in its extradata; a copied stream's come
            // with its first keyframe (`write`).
            SegmentFormat::Ts => (
                None,
                codec_string::avc1_from_annexb(codec_string::extradata(encoder)),
                None,
            ),
            SegmentFormat::Fmp4 => {
                let bytes = buffer.take();
                let codecs = bmff::sample_entry(&bytes)
                    .ok()
                    .and_then(|(kind, boxes)| codec_string::from_sample_entry(&kind, &boxes));
                (Some(INIT_SEGMENT.to_owned()), codecs, Some(bytes))
            }
        };
        Ok(Segmenter {
            name: name.to_owned(),
            dir: dir.to_owned(),
            format,
            muxer,
            buffer,
            clock,
            packet_time_base,
            stream_time_base,
            default_duration,
            cuts,
            current: None,
            written: Vec::new(),
            init,
            codecs: init_codecs,
            annexb_h264: format == SegmentFormat::Ts && encoder.id() == codec::Id::H264,
            delivery: Delivery::default(),
            offset_ticks: ffmpeg::Rescale::rescale(
                &TIMELINE_OFFSET_MICROS,
                Rational::new(1, 1_000_000),
                stream_time_base,
            ),
            decode_shift: None,
            pending_init,
            display_matrix: None,
            encryptor: None,
            sample_codec: sample_codec_of(encoder),
            first_number: 0,
            sample_signal: sample_signal_of(encoder),
        })
    }

    /// Writes one encoded packet, first closing the current segment if the packet starts a new one.
    pub fn write(&mut self, mut packet: Packet) -> Result<()> {
        let pts = packet.pts().or(packet.dts()).ok_or_else(|| Error::Codec {
            stream: self.name.clone(),
            reason: "the encoder produced a packet without a timestamp".into(),
        })?;
        if self.codecs.is_none() && self.annexb_h264 {
            self.codecs = packet.data().and_then(codec_string::avc1_from_annexb);
        }
        let index = self.clock.index_of(pts, self.packet_time_base);
        if packet.duration() <= 0 {
            packet.set_duration(self.default_duration);
        }
        packet.set_stream(0);
        packet.rescale_ts(self.packet_time_base, self.stream_time_base);
        let (pts, dts) = (packet.pts().unwrap_or(0), packet.dts().or(packet.pts()).unwrap_or(0));
        let end = pts + packet.duration();
        let on_boundary = self.current.as_ref().is_none_or(|open| index > open.index);
        let starts_segment = match self.cuts {
            Cuts::Boundary | Cuts::Keyframe => on_boundary,
            Cuts::EveryKeyframe => self.current.is_none() || packet.is_key(),
        };
        if starts_segment {
            if self.cuts != Cuts::Boundary && !packet.is_key() {
                return Err(Error::Codec {
                    stream: self.name.clone(),
                    reason: format!(
                        "the frame at {:.3} s starts a segment but was not encoded as a keyframe",
                        self.clock.seconds(pts, self.stream_time_base)
                    ),
                });
            }
            let shift = *self.decode_shift.get_or_insert(pts - dts);
            self.write_init()?;
            if self.current.is_some() {
                self.cut(self.start_of(pts, dts, shift))?;
            }
            self.current = Some(OpenSegment {
                index,
                first_pts: pts,
                end_pts: end,
                first_dts: dts,
            });
        }
        let open = self.current.as_mut().expect("a segment is open");
        open.first_pts = open.first_pts.min(pts);
        open.end_pts = open.end_pts.max(end);
        if let Some(encrypted) = self.encrypt_samples(&packet)? {
            packet = encrypted;
        }
        packet
            .write(&mut self.muxer)
            .map_err(Error::ffmpeg(format!("{}: muxing a packet", self.name)))?;
        Ok(())
    }

    /// The packet with SAMPLE-AES applied under the open segment's key, when the package is
    /// SAMPLE-AES encrypted.
    fn encrypt_samples(&self, packet: &Packet) -> Result<Option<Packet>> {
        let Some(keys) = &self.delivery.keys else {
            return Ok(None);
        };
        let mut keys = keys.lock().expect("key schedule lock");
        if !keys.sample_aes() {
            return Ok(None);
        }
        let Some(codec) = self.sample_codec else {
            return Err(self.mux_error("sample-aes encrypts H.264 and AAC only".into()));
        };
        let period = keys.for_segment(self.written.len())?;
        let mut encrypted = Packet::copy(&period.encrypt_sample(codec, packet.data().unwrap_or_default()));
        encrypted.set_pts(packet.pts());
        encrypted.set_dts(packet.dts());
        encrypted.set_duration(packet.duration());
        encrypted.set_flags(packet.flags());
        encrypted.set_stream(packet.stream());
        Ok(Some(encrypted))
    }

    /// Writes the fMP4 init segment, once, with an edit list that starts the presentation at the
    /// decode shift: the muxer writes version-0 trun whose composition offsets are PTS − DTS,
    /// decode times are moved later by the shift, and the edit list takes it off again.
    fn write_init(&mut self) -> Result<()> {
        let Some(bytes) = self.pending_init.take() else {
            return Ok(());
        };
        let failed = |e: bmff::BoxError| self.mux_error(format!("completing the init segment: {e}"));
        let shift = self.decode_shift.unwrap_or(0);
        let mut bytes = match u64::try_from(shift) {
            Ok(media_time) if media_time > 0 => bmff::with_edit_list(&bytes, media_time).map_err(failed)?,
            _ => bytes,
        };
        if let Some(matrix) = &self.display_matrix {
            bmff::set_track_matrix(&mut bytes, matrix).map_err(failed)?;
        }
        if let Some(common) = self.delivery.common.clone() {
            bytes = self.protect_init(&bytes, &common)?;
        }
        let path = self.dir.join(INIT_SEGMENT);
        std::fs::write(&path, bytes).map_err(Error::io(&path))?;
        self.tell(path, None);
        Ok(())
    }

    /// The init segment with its track protected and the signalled systems' `pssh` boxes, and the
    /// encryptor of the track's fragments, with an IV of its own.
    fn protect_init(&mut self, init: &[u8], common: &CommonKey) -> Result<Vec<u8>> {
        let failed = |e: cenc::CencError| self.mux_error(format!("encrypting the init segment: {e}"));
        let track = cenc::track_info(init).map_err(failed)?;
        let audio = track.codec == cenc::Codec::Audio;
        let protection = common.protection(audio);
        let psshs = common.init_psshs(audio);
        let clear_lead = common.options.clear_lead > 0.0;
        let protected = cenc::protect_init(init, &protection, &psshs, clear_lead).map_err(failed)?;
        self.encryptor = Some(FragmentEncryptor::new(protection, track).map_err(failed)?);
        Ok(protected)
    }

    /// Where a segment whose first packet (in decode order) has these times starts, as written:
    /// its presentation time in TS, in fMP4 the decode time the fragment's tfdt gets.
    fn start_of(&self, pts: i64, dts: i64, decode_shift: i64) -> i64 {
        match self.format {
            SegmentFormat::Ts => pts + self.offset_ticks,
            SegmentFormat::Fmp4 => dts + decode_shift + self.offset_ticks,
        }
    }

    /// Flushes the muxer and stores what it wrote since the last cut as the open segment, which
    /// lasts until `next_start`.
    fn cut(&mut self, next_start: i64) -> Result<()> {
        // SAFETY: the muxer is open; a null packet asks it to flush its queued data (the TS muxer
        // holds audio PES back), and avio_flush hands the I/O buffer to our writer.
        unsafe {
            let ctx = self.muxer.as_mut_ptr();
            if ffmpeg::ffi::av_write_frame(ctx, std::ptr::null_mut()) < 0 {
                return Err(self.mux_error("flushing the muxer failed".into()));
            }
            ffmpeg::ffi::avio_flush((*ctx).pb);
        }
        self.store(Some(next_start))?;
        self.request_headers_in_next_segment();
        Ok(())
    }

    /// Each TS segment must start with PAT and PMT to be decodable alone. The muxer writes them
    /// before video keyframes by itself; audio-only segments need them asked for.
    fn request_headers_in_next_segment(&mut self) {
        match self.format {
            SegmentFormat::Ts => {
                // SAFETY: priv_data of an open mpegts muxer is its option-bearing context.
                unsafe {
                    let ctx = self.muxer.as_mut_ptr();
                    ffmpeg::ffi::av_opt_set(
                        (*ctx).priv_data,
                        c"mpegts_flags".as_ptr(),
                        c"+resend_headers".as_ptr(),
                        0,
                    );
                }
            }
            SegmentFormat::Fmp4 => {}
        }
    }

    /// Writes the open segment, lasting until `next_start` or, for the last one, to the end of
    /// its last frame, and tells the job.
    fn store(&mut self, next_start: Option<i64>) -> Result<()> {
        let open = self.current.take().expect("a segment is open");
        let mut bytes = self.buffer.take();
        let start = match self.format {
            SegmentFormat::Ts => open.first_pts + self.offset_ticks,
            SegmentFormat::Fmp4 => {
                let decode_start = self.start_of(open.first_pts, open.first_dts, self.decode_shift.unwrap_or(0));
                let base = u64::try_from(decode_start)
                    .map_err(|_| self.mux_error("a fragment would start before time zero".into()))?;
                bmff::set_decode_time(&mut bytes, base)
                    .and_then(|()| self.renumber(&mut bytes))
                    .map_err(|e| self.mux_error(format!("rewriting the muxer's fragment: {e}")))?;
                decode_start
            }
        };
        let clear_lead = self.delivery.common.as_ref().map_or(0.0, |c| c.options.clear_lead);
        // Audio's first segment starts before 0 s (the encoder's priming): without a lead, none is clear.
        let clear = clear_lead > 0.0 && self.clock.seconds(open.first_pts, self.stream_time_base) < clear_lead;
        if let Some(encryptor) = &mut self.encryptor {
            let done = if clear {
                encryptor.leave_clear(&mut bytes)
            } else {
                encryptor.protect(&mut bytes)
            };
            if let Err(e) = done {
                return Err(self.mux_error(format!("encrypting a fragment: {e}")));
            }
        }
        let index = self.written.len();
        let number = self.first_number + index as u64;
        let uri = format!("segment{number:05}.{}", self.format.extension());
        let path = self.dir.join(&uri);
        let (size, key) = match &self.delivery.keys {
            Some(keys) => {
                let mut keys = keys.lock().expect("key schedule lock");
                let size = if keys.sample_aes() {
                    // The samples were encrypted before muxing; the PMTs still say they are clear.
                    self.signal_sample_aes(&mut bytes)?;
                    std::fs::write(&path, &bytes).map_err(Error::io(&path))?;
                    bytes.len() as u64
                } else {
                    crypto::write_encrypted(&path, &bytes, keys.for_segment(index)?)?
                };
                (size, Some(keys.period_of(index)))
            }
            None => {
                std::fs::write(&path, &bytes).map_err(Error::io(&path))?;
                (bytes.len() as u64, None)
            }
        };
        let end = next_start.unwrap_or(open.end_pts + self.offset_ticks);
        let facts = SegmentFacts {
            uri,
            duration: (end - start) as f64 * f64::from(self.stream_time_base),
            key,
            start_ticks: start,
            duration_ticks: end - start,
            bytes: size,
        };
        self.tell(path, Some(facts.clone()));
        self.written.push(facts);
        Ok(())
    }

    /// Rewrites the PMTs of a SAMPLE-AES segment with the encrypted stream type and descriptors
    /// Apple's spec gives.
    fn signal_sample_aes(&self, ts: &mut [u8]) -> Result<()> {
        let signalled = match &self.sample_signal {
            Some(Ok(signal)) => ts_pmt::signal_sample_aes(ts, signal),
            Some(Err(e)) => Err(e.clone()),
            None => return Err(self.mux_error("sample-aes encrypts H.264 and AAC only".into())),
        };
        signalled.map_err(|e| self.mux_error(format!("signalling SAMPLE-AES in the PMT: {e}")))
    }

    /// A muxer failure in this rendition's folder.
    fn mux_error(&self, reason: String) -> Error {
        Error::Mux {
            path: self.dir.clone(),
            reason,
        }
    }

    /// Tells the job of a completed file. A job that stopped listening is ending anyway, and its
    /// own error says why.
    fn tell(&self, path: PathBuf, segment: Option<SegmentFacts>) {
        if let Some(events) = &self.delivery.events {
            let _ = events.send(Completed {
                rendition: self.name.clone(),
                path,
                segment,
                codecs: self.codecs.clone(),
                stream: self.stream(Vec::new()),
            });
        }
    }

    /// Encrypts every media segment with the delivery's keys (AES-128: not the init segment;
    /// common encryption: the init segment protected too), and tells its listener of every file
    /// from the init segment on.
    pub fn delivering(self, delivery: Delivery) -> Segmenter {
        Segmenter { delivery, ..self }
    }

    /// Has the fMP4 track shown through this display matrix (ISO/IEC 14496-12 §8.3.2, as libav
    /// states it in stream side data). MPEG-TS has no place for one: a rotated stream is not
    /// copied into TS (`package`).
    pub fn displayed_with(self, display_matrix: Option<[i32; 9]>) -> Segmenter {
        Segmenter { display_matrix, ..self }
    }

    /// Numbers the segments from `first` (files and fMP4 sequence numbers): a chunk of a title
    /// (`package::chunk`) continues the numbering of the chunks before it.
    pub fn numbered_from(self, first: u64) -> Segmenter {
        Segmenter {
            first_number: first,
            ..self
        }
    }

    /// The fragment's mfhd sequence number moved on by the segments before the first.
    fn renumber(&self, fragment: &mut [u8]) -> std::result::Result<(), bmff::BoxError> {
        match u32::try_from(self.first_number) {
            Ok(0) => Ok(()),
            Ok(offset) => bmff::offset_sequence_number(fragment, offset),
            Err(_) => Err(bmff::BoxError::Overflow(0)),
        }
    }

    /// Gives the codec string where the init segment and the bitstream cannot tell it (audio in TS).
    pub fn describe(&mut self, codecs: Option<String>) {
        if self.codecs.is_none() {
            self.codecs = codecs;
        }
    }

    /// Writes the last segment and returns the facts of all of them.
    pub fn finish(mut self) -> Result<EncodedRendition> {
        self.write_init()?;
        self.muxer
            .write_trailer()
            .map_err(Error::ffmpeg(format!("{}: finishing the muxer", self.name)))?;
        if self.current.is_some() {
            self.store(None)?;
        }
        let codecs = self.codecs.take().ok_or_else(|| Error::Codec {
            stream: self.name.clone(),
            reason: "found no codec configuration in the stream".into(),
        })?;
        let segments = std::mem::take(&mut self.written);
        Ok(EncodedRendition {
            media: self.stream(segments),
            codecs,
            captions: None,
            frames: None,
        })
    }

    fn stream(&self, segments: Vec<SegmentFacts>) -> SegmentedStream {
        let tb = self.stream_time_base;
        SegmentedStream {
            init: self.init.clone(),
            presentation_offset: ffmpeg::Rescale::rescale(
                &(self.clock.origin_micros + TIMELINE_OFFSET_MICROS),
                Rational::new(1, 1_000_000),
                tb,
            ),
            // Muxers state their stream time base as 1/timescale.
            timescale: (tb.denominator() / tb.numerator().max(1)) as u32,
            segments,
        }
    }
}

/// How a SAMPLE-AES PMT signals `encoder`'s stream: AAC by its AudioSpecificConfig.
fn sample_signal_of(encoder: &codec::Context) -> Option<Result<SampleAesSignal, PmtError>> {
    match encoder.id() {
        codec::Id::H264 => Some(Ok(SampleAesSignal::h264())),
        codec::Id::AAC => Some(SampleAesSignal::aac(codec_string::extradata(encoder))),
        _ => None,
    }
}

/// What SAMPLE-AES encrypts in the packets of `encoder`'s stream: H.264 framed as its extradata
/// says (an avcC record means length-prefixed NAL units), or AAC frames.
fn sample_codec_of(encoder: &codec::Context) -> Option<SampleCodec> {
    match encoder.id() {
        codec::Id::H264 => Some(SampleCodec::H264(match codec_string::extradata(encoder) {
            [1, _, _, _, lengths, ..] => NalFraming::Length(usize::from(lengths & 3) + 1),
            _ => NalFraming::AnnexB,
        })),
        codec::Id::AAC => Some(SampleCodec::Aac),
        _ => None,
    }
}

/// Writes a muxer's header, failing if the muxer ignored any option: libav drops unknown
/// options silently, and a segment written without them would be wrong without a word.
pub(crate) fn write_header(
    muxer: &mut format::context::Output,
    options: Dictionary,
    path: &Path,
    container: &str,
) -> Result<()> {
    let unused = muxer.write_header_with(options).map_err(|source| Error::Ffmpeg {
        context: format!("{}: starting the {container} muxer", path.display()),
        source,
    })?;
    match unused.iter().next() {
        Some((key, _)) => Err(Error::Mux {
            path: path.to_owned(),
            reason: format!("starting the {container} muxer: the muxer ignored option {key}"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_puts_each_time_in_the_segment_whose_boundary_precedes_it() {
        let clock = SegmentClock::new(0, 2.0);
        let tb = Rational::new(1, 25);
        assert_eq!(clock.index_of(0, tb), 0);
        assert_eq!(clock.index_of(49, tb), 0);
        assert_eq!(clock.index_of(50, tb), 1);
        assert_eq!(clock.index_of(-2, tb), 0);
    }

    #[test]
    fn clock_cuts_ntsc_frames_at_the_first_frame_past_each_boundary() {
        let clock = SegmentClock::new(0, 2.0);
        let tb = Rational::new(1001, 30000);
        // Frame 59 is at 1.968 s, frame 60 at 2.002 s: the boundary falls between them.
        assert_eq!(clock.index_of(59, tb), 0);
        assert_eq!(clock.index_of(60, tb), 1);
        assert_eq!(clock.index_of(120, tb), 2);
        assert_eq!(clock.index_of(119, tb), 1);
    }

    #[test]
    fn no_boundary_at_or_after_the_end() {
        let clock = SegmentClock::new(0, 1.0).ending_at(2.0);
        let tb = Rational::new(1, 48_000);
        assert_eq!(clock.index_of(47_999, tb), 0);
        assert_eq!(clock.index_of(48_000, tb), 1);
        // An encoder's padding past the end stays in the last segment.
        assert_eq!(clock.index_of(96_000, tb), 1);
        assert_eq!(SegmentClock::new(0, 2.0).ending_at(5.005).index_of(5 * 48_000, tb), 2);
    }

    #[test]
    fn a_schedule_replaces_the_regular_boundaries() {
        let clock = SegmentClock::new(0, 2.0).scheduled(vec![2_960_000, 5_920_000]);
        let tb = Rational::new(1, 25);
        assert_eq!(clock.index_of(73, tb), 0);
        assert_eq!(clock.index_of(74, tb), 1);
        assert_eq!(clock.index_of(147, tb), 1);
        assert_eq!(clock.index_of(148, tb), 2);
    }

    #[test]
    fn the_longest_segment_is_the_widest_scheduled_gap() {
        assert_eq!(SegmentClock::new(0, 2.0).longest(), 2.0);
        let clock = SegmentClock::new(0, 2.0).scheduled(vec![2_960_000, 5_000_000, 9_500_000]);
        assert_eq!(clock.longest(), 4.5);
    }

    #[test]
    fn clock_counts_from_the_source_start() {
        let clock = SegmentClock::new(1_400_000, 6.0);
        let tb = Rational::new(1, 90_000);
        assert_eq!(clock.index_of(126_000, tb), 0);
        assert_eq!(clock.index_of(126_000 + 539_999, tb), 0);
        assert_eq!(clock.index_of(126_000 + 540_000, tb), 1);
        assert!((clock.seconds(126_000 + 540_000, tb) - 6.0).abs() < 1e-9);
    }
}
