//! Opening inputs: checks that turn a missing, empty or unreadable file into one clear error, and
//! the facts about the chosen video and audio streams that the later stages need.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg::{Packet, Rational, codec, color, format, media};
use ffmpeg_next as ffmpeg;
use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::input::fetch;
use crate::input::live::{LiveInput, LiveSource};
/// Every opener starts with these; they live with the watchdog, which live inputs share.
use crate::input::watchdog::{self, Failure, InputOptions, WatchedInput, failure_reason};
use crate::location::Location;
use crate::output::publish::PublishOptions;
use crate::progress::Monitor;

/// The video stream stream-pack transcodes.
#[derive(Debug, Clone)]
pub struct VideoInput {
    pub index: usize,
    pub codec: codec::Id,
    pub width: u32,
    pub height: u32,
    /// Sample aspect ratio; 0/1 when the file states none.
    pub sample_aspect: Rational,
    /// Clockwise rotation, in degrees, that a player applies for display (0, 90, 180 or 270).
    pub rotation: u32,
    pub frame_rate: Rational,
    pub time_base: Rational,
    pub pixel_format: format::Pixel,
    pub colour: Colour,
}

/// The colour description a video stream declares (H.264/HEVC VUI, container tags). Scaling keeps
/// the coded colours, so every rung declares the source's: an untagged SD rung is shown as BT.601,
/// which shifts the colours of a BT.709 source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub primaries: color::Primaries,
    pub transfer: color::TransferCharacteristic,
    pub matrix: color::Space,
}

impl Default for Colour {
    /// Nothing declared.
    fn default() -> Colour {
        Colour {
            primaries: color::Primaries::Unspecified,
            transfer: color::TransferCharacteristic::Unspecified,
            matrix: color::Space::Unspecified,
        }
    }
}

impl VideoInput {
    /// The picture as shown: width stretched by the sample aspect ratio, sides swapped by rotation.
    pub fn display_geometry(&self) -> DisplayGeometry {
        let sar = if self.sample_aspect.numerator() > 0 && self.sample_aspect.denominator() > 0 {
            f64::from(self.sample_aspect)
        } else {
            1.0
        };
        let width = f64::from(self.width) * sar;
        let height = f64::from(self.height);
        if self.rotation % 180 == 90 {
            DisplayGeometry {
                width: height,
                height: width,
            }
        } else {
            DisplayGeometry { width, height }
        }
    }

    /// The display aspect ratio, reduced: 16:9, or 9:16 for a portrait picture.
    pub fn display_aspect(&self) -> (u32, u32) {
        let sar = self.sample_aspect;
        let (sar_num, sar_den) = if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator() as u64, sar.denominator() as u64)
        } else {
            (1, 1)
        };
        let (w, h) = (u64::from(self.width) * sar_num, u64::from(self.height) * sar_den);
        let divisor = gcd(w, h).max(1);
        let (w, h) = ((w / divisor) as u32, (h / divisor) as u32);
        if self.rotation % 180 == 90 { (h, w) } else { (w, h) }
    }

    /// Seconds per frame at the nominal frame rate.
    pub fn frame_duration(&self) -> f64 {
        1.0 / f64::from(self.frame_rate)
    }
}

/// The picture as a viewer sees it: after sample aspect ratio and rotation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisplayGeometry {
    pub width: f64,
    pub height: f64,
}

impl DisplayGeometry {
    pub fn short_side(&self) -> f64 {
        self.width.min(self.height)
    }

    fn is_portrait(&self) -> bool {
        self.height > self.width
    }

    /// The frame size whose short side is `short`, keeping this aspect ratio, rounded to even.
    pub fn scaled_to(&self, short: u32) -> (u32, u32) {
        let long = round_even(f64::from(short) * self.width.max(self.height) / self.short_side());
        let short = round_even(f64::from(short));
        if self.is_portrait() {
            (short, long)
        } else {
            (long, short)
        }
    }
}

fn round_even(value: f64) -> u32 {
    ((value / 2.0).round() as u32 * 2).max(2)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// An audio stream of the source.
#[derive(Debug, Clone)]
pub struct AudioInput {
    pub index: usize,
    pub codec: codec::Id,
    pub sample_rate: u32,
    pub channels: u16,
    pub time_base: Rational,
    pub language: Option<String>,
    /// The stream's `title` tag.
    pub title: Option<String>,
    pub disposition: AudioDisposition,
}

/// What the container says an audio stream is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioDisposition {
    /// The stream a player should start with.
    pub default: bool,
    /// A commentary: never picked for the viewer automatically.
    pub comment: bool,
    /// An audio description of the picture, for viewers who cannot see it.
    pub visual_impaired: bool,
}

/// An opened input with its chosen streams.
pub struct Source {
    /// The file, or the live source as text, for messages.
    pub path: PathBuf,
    pub input: Reader,
    pub video: Option<VideoInput>,
    /// The best audio stream, as libav ranks them: whether the source has any audio (what is
    /// packaged is chosen from `audio_streams`).
    pub audio: Option<AudioInput>,
    /// Every audio stream, in the container's order.
    pub audio_streams: Vec<AudioInput>,
    /// The temporary file an object-storage input was downloaded to, deleted with the source.
    _fetched: Option<TempPath>,
    /// Packets read ahead and put back, read again first.
    put_back: VecDeque<Packet>,
}

/// Where packets come from: a file or URL read as fast as it can be, or a live source; both under
/// their timeouts.
pub enum Reader {
    File(WatchedInput),
    Live(LiveInput),
}

impl std::ops::Deref for Reader {
    type Target = format::context::Input;

    fn deref(&self) -> &format::context::Input {
        match self {
            Reader::File(input) => input,
            Reader::Live(input) => input,
        }
    }
}

impl Source {
    /// Opens `path` under `options`' timeouts and picks the best video and audio streams.
    pub fn open(path: &Path, options: &InputOptions) -> Result<Source> {
        Source::choose(path, Reader::File(open_input(path, options)?))
    }

    /// [`Source::open`] for an input that may be an object in a bucket (`s3://`, `gs://`,
    /// `az://`), which libav cannot read: it is first downloaded to a temporary file, kept while
    /// the source is open, with `storage`'s client settings, its progress reported to `monitor`.
    pub fn fetch_and_open(
        path: &Path,
        options: &InputOptions,
        storage: &PublishOptions,
        monitor: &mut dyn Monitor,
    ) -> Result<Source> {
        match fetch::fetch(&Location::of_path(path), storage, monitor)? {
            Some(file) => {
                let source = Source::open(&file, options)?;
                Ok(Source {
                    _fetched: Some(file),
                    ..source
                })
            }
            None => Source::open(path, options),
        }
    }

    /// Opens a live source under `options`' timeouts and picks its streams.
    pub fn open_live(source: &LiveSource, options: &InputOptions) -> Result<Source> {
        let input = LiveInput::open(source, options)?;
        Source::choose(Path::new(&source.to_string()), Reader::Live(input))
    }

    /// The next packet, `None` at the end; `read_so_far` (seconds) places a read error.
    pub fn read(&mut self, read_so_far: f64) -> Result<Option<Packet>> {
        if let Some(packet) = self.put_back.pop_front() {
            return Ok(Some(packet));
        }
        match &mut self.input {
            Reader::Live(input) => input.read(),
            Reader::File(input) => input.read().map_err(|f| read_error(&self.path, f, read_so_far)),
        }
    }

    fn choose(path: &Path, input: Reader) -> Result<Source> {
        let video = input
            .streams()
            .best(media::Type::Video)
            .filter(|s| !is_cover_art(s))
            .map(|s| video_input(path, &s))
            .transpose()?;
        let audio_streams = input
            .streams()
            .filter(|s| s.parameters().medium() == media::Type::Audio)
            .map(|s| audio_input(path, &s))
            .collect::<Result<Vec<_>>>()?;
        let best = input.streams().best(media::Type::Audio).map(|s| s.index());
        let audio = audio_streams.iter().find(|a| Some(a.index) == best).cloned();
        if video.is_none() && audio.is_none() {
            return Err(Error::NoMediaStreams { path: path.to_owned() });
        }
        Ok(Source {
            path: path.to_owned(),
            input,
            video,
            audio,
            audio_streams,
            _fetched: None,
            put_back: VecDeque::new(),
        })
    }

    /// Has `packets`, read ahead, read again before the rest, in their order.
    pub fn put_back(&mut self, packets: Vec<Packet>) {
        self.put_back.extend(packets);
    }

    /// Moves the reading of a file to the last keyframe at or before `micros` from the file's
    /// zero (not from its start time), as near as its demuxer can.
    pub fn seek(&mut self, micros: i64) -> Result<()> {
        self.put_back.clear();
        let Reader::File(input) = &mut self.input else {
            return Err(Error::Usage(format!(
                "{}: a live source cannot seek",
                self.path.display()
            )));
        };
        input.seek(micros, ..micros).map_err(|e| Error::InputCorrupt {
            path: self.path.clone(),
            reason: format!("seeking to {:.3} s: {e}", micros as f64 / 1e6),
        })
    }

    /// The duration the container declares, in seconds, if it declares one.
    pub fn declared_duration(&self) -> Option<f64> {
        declared_duration(&self.input)
    }

    /// The container's start time in microseconds (0 when unknown): the zero of every segment clock.
    pub fn start_micros(&self) -> i64 {
        // SAFETY: reads a plain field of the open input context.
        let start = unsafe { (*self.input.as_ptr()).start_time };
        if start == ffmpeg::ffi::AV_NOPTS_VALUE { 0 } else { start }
    }
}

pub(crate) fn declared_duration(input: &format::context::Input) -> Option<f64> {
    let duration = input.duration();
    (duration > 0 && duration != ffmpeg::ffi::AV_NOPTS_VALUE)
        .then(|| duration as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
}

/// Opens a file, or a URL libav reads itself (`http(s)://…`), under `options`' timeouts, after the
/// checks libav would report less clearly. A piece of it that cannot be read (a segment of a
/// playlist) is an error, named, when it is met.
pub(crate) fn open_input(path: &Path, options: &InputOptions) -> Result<WatchedInput> {
    let location = Location::of_path(path);
    if !location.is_url() {
        watchdog::check_file(path)?;
    }
    let mut dictionary = watchdog::protocol_options(&location, options.stall_timeout);
    if options.web_from_file {
        dictionary.set("protocol_whitelist", &format!("file,{}", watchdog::WEB_PROTOCOLS));
    }
    let input =
        WatchedInput::open(path.as_os_str(), None, options, dictionary, true).map_err(|failure| match failure {
            Failure::NeverStarted(waited) => Error::LiveNeverStarted {
                url: path.display().to_string(),
                waited,
            },
            Failure::Libav(e) if !location.is_url() => Error::InputUnreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            },
            failure => input_error(path, failure, "opening it".into()),
        })?;
    // libav's `tty` demuxer renders any text file as ANSI art video: a text file is not media.
    if input.format().name() == "tty" {
        return Err(Error::InputUnreadable {
            path: path.to_owned(),
            reason: "it is a text file".into(),
        });
    }
    Ok(input)
}

/// A read of the input at `path` that stopped after `read_so_far` seconds of media.
pub(crate) fn read_error(path: &Path, failure: Failure, read_so_far: f64) -> Error {
    input_error(path, failure, format!("reading after {read_so_far:.2} s"))
}

/// An open or read of the file or URL at `path` that stopped `when` (`reading after 2.00 s`).
fn input_error(path: &Path, failure: Failure, when: String) -> Error {
    match (failure, Location::of_path(path).is_url()) {
        (Failure::Cancelled, _) => Error::Cancelled,
        (Failure::Missing { url: piece, reason }, _) => Error::InputIncomplete {
            path: path.to_owned(),
            piece,
            reason,
        },
        (Failure::Hole { from, to }, _) => Error::InputIncomplete {
            path: path.to_owned(),
            piece: format!("the media from {from:.2} s to {to:.2} s"),
            reason: "a segment is cut short or empty".into(),
        },
        (Failure::Libav(e), false) => Error::InputCorrupt {
            path: path.to_owned(),
            reason: format!("{when}: {e}"),
        },
        (failure, _) => Error::Remote {
            url: path.display().to_string(),
            reason: format!("{when}: {}", failure_reason(failure)),
        },
    }
}

/// A file cut short still demuxes cleanly up to the cut; compare with what its header declares.
pub(crate) fn check_complete(path: &Path, declared: Option<f64>, media_end: f64) -> Result<()> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let tolerance = 0.5 + 0.02 * declared;
    if media_end + tolerance < declared {
        return Err(Error::InputTruncated {
            path: path.to_owned(),
            end: media_end,
            declared,
        });
    }
    Ok(())
}

/// An attached picture (album art) is a video stream of one frame, not video to package.
fn is_cover_art(stream: &format::stream::Stream) -> bool {
    stream.disposition().contains(format::stream::Disposition::ATTACHED_PIC)
}

/// The error of libav refusing a stream's parameters, naming the file and the stream.
pub(crate) fn reading_parameters(path: &Path, stream: &format::stream::Stream) -> impl FnOnce(ffmpeg::Error) -> Error {
    Error::ffmpeg(format!(
        "{}: reading the parameters of stream #{}",
        path.display(),
        stream.index()
    ))
}

fn video_input(path: &Path, stream: &format::stream::Stream) -> Result<VideoInput> {
    let decoder = decoder_context(path, stream)?
        .video()
        .map_err(reading_parameters(path, stream))?;
    if decoder.width() == 0 || decoder.height() == 0 {
        return Err(Error::InputCorrupt {
            path: path.to_owned(),
            reason: format!("video stream #{} has no frame size", stream.index()),
        });
    }
    let frame_rate = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .ok_or_else(|| Error::InputCorrupt {
            path: path.to_owned(),
            reason: format!("video stream #{} has no frame rate", stream.index()),
        })?;
    Ok(VideoInput {
        index: stream.index(),
        codec: decoder.id(),
        width: decoder.width(),
        height: decoder.height(),
        sample_aspect: decoder.aspect_ratio(),
        rotation: clockwise_rotation(stream),
        frame_rate,
        time_base: stream.time_base(),
        pixel_format: decoder.format(),
        colour: Colour {
            primaries: decoder.color_primaries(),
            transfer: decoder.color_transfer_characteristic(),
            matrix: decoder.color_space(),
        },
    })
}

fn audio_input(path: &Path, stream: &format::stream::Stream) -> Result<AudioInput> {
    let decoder = decoder_context(path, stream)?
        .audio()
        .map_err(reading_parameters(path, stream))?;
    if decoder.rate() == 0 || decoder.channels() == 0 {
        return Err(Error::InputCorrupt {
            path: path.to_owned(),
            reason: format!("audio stream #{} has no sample rate or channels", stream.index()),
        });
    }
    Ok(AudioInput {
        index: stream.index(),
        codec: decoder.id(),
        sample_rate: decoder.rate(),
        channels: decoder.channels(),
        time_base: stream.time_base(),
        language: language(stream),
        title: title(stream),
        disposition: audio_disposition(stream),
    })
}

pub(crate) fn audio_disposition(stream: &format::stream::Stream) -> AudioDisposition {
    use format::stream::Disposition;
    let disposition = stream.disposition();
    AudioDisposition {
        default: disposition.contains(Disposition::DEFAULT),
        comment: disposition.contains(Disposition::COMMENT),
        visual_impaired: disposition.contains(Disposition::VISUAL_IMPAIRED),
    }
}

/// A decoder for the stream, or an error naming the codec libav cannot decode.
pub(crate) fn decoder_context(path: &Path, stream: &format::stream::Stream) -> Result<codec::decoder::Decoder> {
    let params = stream.parameters();
    if codec::decoder::find(params.id()).is_none() {
        return Err(Error::InputUnreadable {
            path: path.to_owned(),
            reason: format!(
                "no decoder for the {:?} codec of stream #{}",
                params.id(),
                stream.index()
            ),
        });
    }
    let mut context = codec::context::Context::from_parameters(params).map_err(reading_parameters(path, stream))?;
    // Frame-threaded decoding on every core: one decoder feeds every rung's encoder.
    if let Ok(parallelism) = std::thread::available_parallelism() {
        context.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: parallelism.get(),
            ..Default::default()
        });
    }
    Ok(context.decoder())
}

/// The stream's language tag, unless it is absent or `und`.
pub(crate) fn language(stream: &format::stream::Stream) -> Option<String> {
    stream
        .metadata()
        .get("language")
        .filter(|l| !l.is_empty() && *l != "und")
        .map(str::to_owned)
}

/// The stream's `title` tag.
pub(crate) fn title(stream: &format::stream::Stream) -> Option<String> {
    stream.metadata().get("title").map(str::to_owned)
}

/// The stream's display matrix (ISO/IEC 14496-12 §8.3.2, as libav states it), if it has one.
pub(crate) fn display_matrix(stream: &format::stream::Stream) -> Option<[i32; 9]> {
    let data = stream
        .side_data()
        .find(|d| d.kind() == codec::packet::side_data::Type::DisplayMatrix)?;
    let matrix: Vec<i32> = data
        .data()
        .chunks_exact(4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    matrix.get(..9)?.try_into().ok()
}

/// The rotation in the stream's display matrix as libav states it (degrees counterclockwise,
/// ffprobe's `rotation`), if the stream has one.
pub(crate) fn display_matrix_rotation(stream: &format::stream::Stream) -> Option<f64> {
    let matrix = display_matrix(stream)?;
    // SAFETY: `matrix` holds the nine 32-bit values av_display_rotation_get reads.
    let degrees = unsafe { ffmpeg::ffi::av_display_rotation_get(matrix.as_ptr()) };
    (!degrees.is_nan()).then_some(degrees)
}

/// The clockwise rotation a player applies for display, a multiple of 90 (0 when none).
fn clockwise_rotation(stream: &format::stream::Stream) -> u32 {
    display_matrix_rotation(stream).map_or(0, |ccw| ((-ccw / 90.0).round() as i64 * 90).rem_euclid(360) as u32)
}
